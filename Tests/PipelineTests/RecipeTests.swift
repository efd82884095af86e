import DroplineSupport
import Foundation
import Imaging
import JSONFiles
import Modeling
import Monitoring
import Pipeline
import Randomness
import Rules
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

@Suite("A root's configuration changes what the pipelines do")
struct ConfigurationEffectTests {
    @Test("drift thresholds decide the batch's verdict and are recorded; the quality tolerance decides the flag; the recipe's arch comes from it")
    func thresholds() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        var c = RootConfiguration()
        c.thresholds.driftMinimumStatistic = 1.0  // no feature can reach it: never drift
        pipelines.configuration = c
        let (strict, drifted) = try pipelines.infer(batch: root.productionInbox + "/batch-1")
        #expect(!drifted)
        let folder = root.path + "/" + (try #require(try pipelines.index.run(strict)?.folder))
        let report = try SnakeCaseJSON.read(DriftReport.self, from: folder + "/monitoring/drift.json")
        #expect(report.thresholds.minimumStatistic == 1.0 && report.reason.contains("1.000"), "\(report.reason)")
        c.thresholds.driftMinimumStatistic = 0
        c.thresholds.driftPValue = 0.5  // everything at p < 0.25 drifts
        pipelines.configuration = c
        let (loose, _) = try pipelines.infer(batch: root.productionInbox + "/batch-1")
        let looseReport = try SnakeCaseJSON.read(DriftReport.self, from: root.path + "/" + (try #require(try pipelines.index.run(loose)?.folder)) + "/monitoring/drift.json")
        #expect(looseReport.thresholds.pValue == 0.5 && looseReport.detectors.first?.level == 0.25)
        // quality: with a tolerance of 1 no accuracy is below the constraint
        c.thresholds.qualityTolerance = 1
        pipelines.configuration = c
        var lines = "image,class\n"
        for i in 0..<24 { lines += "img \(i).png,red\n" }
        try lines.write(toFile: root.labelsInbox + "/batch-1.csv", atomically: true, encoding: .utf8)
        let merged = try GroundTruth(pipelines).merge(labels: root.labelsInbox + "/batch-1.csv")
        #expect(!merged.belowConstraint && merged.constraintAccuracy <= 0)
        // the recipe: the configuration's epochs over the champion's
        c.training.epochs = 7
        pipelines.configuration = c
        let recipe = try pipelines.retrainingRecipe(fallback: TrainingConfiguration.defaults(architecture: "scratch"), overrides: [])
        #expect(recipe.configuration.epochs == 7 && recipe.configuration.architecture == "small-cnn" && recipe.source.contains("(dropline.yaml)"))
    }

    @Test("the promotion margin decides whether a slightly worse model is promoted")
    func margin() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        var c = RootConfiguration()
        c.thresholds.promotionMargin = 1  // any model is at least the champion's minus 1
        pipelines.configuration = c
        let (_, version) = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        #expect(try pipelines.champion()?.version == version)
        let reason = try #require(try pipelines.index.promotionReason(version: version))
        #expect(reason.contains("margin 1.00"), "\(reason)")
    }
}

@Suite("Accuracy estimated without labels, end to end")
struct EstimateTests {
    @Test("training calibrates on the validation images; serving estimates the batch's accuracy into drift.json, the index and the drift flag")
    func estimate() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let artifacts = try SnakeCaseJSON.read(DriftArtifactsDescription.self, from: root.models + "/v0001/drift/drift.json")
        let calibration = try #require(artifacts.calibration)
        #expect(calibration.images == 24 && calibration.temperature > 0 && calibration.nllAfter <= calibration.nllBefore + 1e-12)
        let run = try #require(try pipelines.sqlite.runs(kind: .serve, limit: 1).first)
        let report = try SnakeCaseJSON.read(DriftReport.self, from: root.path + "/" + (try #require(run.folder)) + "/monitoring/drift.json")
        let estimate = try #require(report.estimate)
        #expect(estimate.images == 24 && estimate.accuracy > 0 && estimate.accuracy <= 1 && estimate.referenceAccuracy == calibration.accuracy)
        // with or without a shift calibration (kept only where it beats confidence on its own sets), the method says which
        let confidence = try #require(estimate.confidence)
        if let shift = calibration.shiftCalibration {
            #expect(estimate.method == "cbpe_shift_calibrated" && estimate.accuracy == shift.estimate(confidence: confidence))
        } else {
            #expect(estimate.method == "cbpe_temperature" && estimate.accuracy == confidence)
        }
        let indexed = try #require(try pipelines.sqlite.batchTimeline(limit: 1).last)
        #expect(indexed.estimatedAccuracy == estimate.accuracy && indexed.estimatedAccuracyDrop == estimate.accuracyDrop)
        // a drift flag carries it, for rules that retrain only on harm: a batch of grey noise, unlike any training image
        let odd = root.productionInbox + "/grey"
        try FileManager.default.createDirectory(atPath: odd, withIntermediateDirectories: true)
        var g = SeededGenerator(seed: 9)
        for i in 0..<24 {
            var image = RGBImage(width: 32, height: 32)
            for j in 0..<image.pixels.count { image.pixels[j] = UInt8(truncatingIfNeeded: 100 + Int(g.next() % 60)) }
            try ImageEncoder.write(image, to: odd + "/\(i).png")
        }
        let (oddRun, drifted) = try pipelines.infer(batch: odd)
        #expect(drifted)
        let oddReport = try SnakeCaseJSON.read(DriftReport.self, from: root.path + "/" + (try #require(try pipelines.index.run(oddRun)?.folder)) + "/monitoring/drift.json")
        // (the toy model is right on all its shifted sets, so its map may cap both estimates at 100%)
        #expect((oddReport.estimate?.confidence ?? 1) < confidence && (oddReport.estimate?.accuracy ?? 1) <= estimate.accuracy,
                "the model is less sure of noise than of its own kind of images")
        let flags = FileSystem.names(in: root.flags("drift"))
        let flag = try JSONSerialization.jsonObject(with: Data(AtomicFile.read(root.flags("drift") + "/" + (try #require(flags.first))))) as! [String: Any]
        #expect(flag["estimated_accuracy"] as? Double != nil && flag["estimated_accuracy_drop"] as? Double != nil, "\(flag)")
    }
}

@Suite("Accuracy under shift on real photos", .enabled(if: SharedMaterial.path("models/mobilenet_v2_0.35_224_tfjs/model.json") != nil,
                                                         "../shared is absent: the real-photo estimate test is skipped"))
struct ShiftEstimateTests {
    @Test("trained on the backbone, the model learns its accuracy under shift; on heavily noised photos the estimate is near the truth where confidence is far above it")
    func noisedPhotos() throws {
        let shared = try #require(SharedMaterial.locate())
        let root = try DroplineRoot.create(at: FileManager.default.temporaryDirectory.appendingPathComponent("dropline-shift-\(UUID().uuidString)").path)
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let classes = ["church", "garbage_truck", "golf_ball", "parachute", "tench"]
        func files(_ split: String, _ name: String, _ range: Range<Int>) throws -> [String] {
            let folder = shared + "/datasets/imagenette-mini/" + split + "/" + name
            return try Array(FileManager.default.contentsOfDirectory(atPath: folder).sorted()[range]).map { folder + "/" + $0 }
        }
        for name in classes {
            for (split, range) in [("train", 0..<12), ("validation", 0..<20)] {
                let folder = root.inbox + "/training/original/" + split + "/" + name
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for f in try files(split, name, range) { try FileManager.default.copyItem(atPath: f, toPath: folder + "/" + (f as NSString).lastPathComponent) }
            }
        }
        // 40 unseen photos, blurred and buried in noise as the study's noisy stage is, and their labels
        var g = SeededGenerator(seed: 17)
        let batch = root.productionInbox + "/noised"
        try FileManager.default.createDirectory(atPath: batch, withIntermediateDirectories: true)
        var truth: [String: String] = [:]
        for name in classes {
            for (i, f) in try files("test", name, 0..<8).enumerated() {
                let photo = try ImageDecoder.decode(file: f).image
                let noised = photo.blurred(sigma: 3).withGaussianNoise(sigma: 55, using: &g)
                try ImageEncoder.write(noised, to: batch + "/\(name)-\(i).png")
                truth["\(name)-\(i).png"] = name
            }
        }
        let pipelines = try Pipelines(root: root)
        var c = TrainingConfiguration.defaults(architecture: "backbone")
        c.backbonePath = shared + "/models/mobilenet_v2_0.35_224_tfjs/model.json"
        try pipelines.train(stage: "original", configuration: c)
        let artifacts = try SnakeCaseJSON.read(DriftArtifactsDescription.self, from: root.models + "/v0001/drift/drift.json")
        let shift = try #require(artifacts.calibration?.shiftCalibration, "the map is kept: on real photos the model is overconfident under shift")
        #expect(shift.sets.count == ShiftCalibration.setCount && shift.sets.filter { $0.shift == "none" }.count == 2)
        #expect(shift.sets.allSatisfy { $0.images == 100 } && shift.leaveOneOutError < shift.confidenceOnlyError)
        #expect(shift.sets.contains { $0.confidence - $0.accuracy > 0.15 }, "some shifted sets fool the confidence: \(shift.sets)")
        let (run, _) = try pipelines.infer(batch: batch)
        let report = try SnakeCaseJSON.read(DriftReport.self, from: root.path + "/" + (try #require(try pipelines.index.run(run)?.folder)) + "/monitoring/drift.json")
        let estimate = try #require(report.estimate)
        let confidence = try #require(estimate.confidence)
        #expect(estimate.method == "cbpe_shift_calibrated" && estimate.accuracy == shift.estimate(confidence: confidence))
        let predictions = try pipelines.index.predictions(run: run)
        let right = predictions.filter { truth[($0.path as NSString).lastPathComponent] == $0.predicted }.count
        let accuracy = Double(right) / Double(predictions.count)
        #expect(predictions.count == 40)
        let seen = "estimated \(estimate.accuracy), calibrated confidence \(confidence), truth \(accuracy)"
        #expect(confidence - accuracy > 0.1, "the calibrated confidence is fooled by the noise: \(seen)")
        #expect(abs(estimate.accuracy - accuracy) < abs(confidence - accuracy) - 0.03, "the map corrects it: \(seen)")
    }
}
