import Foundation
import Modeling
import Pipeline
import Store
import SystemFiles
import Testing

@Suite("Retraining keeps its recipe")
struct RecipeTests {
    @Test("a retraining takes the champion's recipe; the command line's and then the rule's options change it; no champion: the fallback")
    func recipe() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        let scratch = TrainingConfiguration.defaults(architecture: "scratch")
        let none = try pipelines.retrainingRecipe(fallback: scratch, overrides: [])
        #expect(none.configuration == scratch && none.source.contains("no champion"))
        var trained = Fixture.configuration()  // small-cnn, 32 px, 3 epochs
        trained.rotationDegrees = 7
        trained.seed = 42
        _ = try pipelines.train(stage: "original", configuration: trained)
        let kept = try pipelines.retrainingRecipe(fallback: scratch, overrides: [TrainingOverrides(), TrainingOverrides()])
        #expect(kept.configuration == trained, "the champion's own recipe, not the fallback")
        #expect(kept.source == "the recipe of champion v1")
        let longer = try pipelines.retrainingRecipe(fallback: scratch, overrides: [TrainingOverrides(imageSize: 40), TrainingOverrides(epochs: 5)])
        #expect(longer.configuration.epochs == 5 && longer.configuration.imageSize == 40 && longer.configuration.rotationDegrees == 7
                && longer.configuration.architecture == "small-cnn")
        // another architecture: its defaults, the seed kept; the rule's options come last
        let other = try pipelines.retrainingRecipe(fallback: scratch, overrides: [TrainingOverrides(epochs: 9), TrainingOverrides(arch: "scratch")])
        #expect(other.configuration.architecture == "scratch" && other.configuration.imageSize == 96 && other.configuration.seed == 42)
        #expect(other.configuration.epochs == scratch.epochs, "the architecture's defaults after the earlier epochs: the rule's change wins")
        // and the retraining really is built so
        let (_, version) = try pipelines.train(stage: "original", configuration: kept.configuration)
        let model = try ModelArtifact.load(root.models + String(format: "/v%04d/model", version)).description
        #expect(model.configuration == trained && model.preprocessing.imageSize == 32)
    }

    @Test("a backbone that changed since the champion was built on it is refused, naming it; an arch given instead is used")
    func backboneChanged() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-backbone-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try AtomicFile.write(Array(#"{"format": "layers-model"}"#.utf8), to: folder + "/model.json")
        try AtomicFile.write([1, 2, 3], to: folder + "/group1-shard1of2.bin")
        try AtomicFile.write([4, 5], to: folder + "/group1-shard2of2.bin")
        let hashes = try BackboneOrigin.fileHashes(modelJson: folder + "/model.json")
        let origin = BackboneOrigin(modelJson: folder + "/model.json", topologySha256: hashes.topology, weightsSha256: hashes.weights,
                                    cut: "global_pool", frozenLayers: 10, fineTunedConvolutions: nil)
        #expect(origin.changed() == nil)
        try AtomicFile.write([4, 6], to: folder + "/group1-shard2of2.bin")
        #expect(origin.changed()?.contains("weight shards") == true)
        try AtomicFile.write([4, 5], to: folder + "/group1-shard2of2.bin")
        #expect(origin.changed() == nil)
        try FileManager.default.removeItem(atPath: folder + "/model.json")
        #expect(origin.changed()?.contains("no longer readable") == true)
    }
}
