import DroplineSupport
import Foundation
import Modeling
import NeuralNetwork
import Testing
import SystemFiles
import JSONFiles

@Suite("Training on a pretrained backbone", .enabled(if: SharedMaterial.locate() != nil, "../shared is not present: backbone training tests are skipped"))
struct BackboneTrainingTests {
    static var backbone: String { SharedMaterial.locate()! + "/models/mobilenet_v2_0.35_224_tfjs/model.json" }

    /// A few real photos of three classes, linked from ../shared into a temporary dataset.
    static func subset() throws -> String {
        let source = SharedMaterial.locate()! + "/datasets/imagenette-mini"
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-subset-\(UUID().uuidString)").path
        for (split, count) in [("train", 10), ("validation", 5)] {
            for name in ["church", "golf_ball", "tench"] {
                try FileManager.default.createDirectory(atPath: "\(root)/\(split)/\(name)", withIntermediateDirectories: true)
                let files = try FileManager.default.contentsOfDirectory(atPath: "\(source)/\(split)/\(name)").sorted().prefix(count)
                for f in files { try FileManager.default.createSymbolicLink(atPath: "\(root)/\(split)/\(name)/\(f)", withDestinationPath: "\(source)/\(split)/\(name)/\(f)") }
            }
        }
        return root
    }

    @Test("the default linear head is the probe: every penalty tried with and without flipped copies and the choice recorded; head sgd trains by epochs; an old recipe without a head is sgd")
    func logisticHead() throws {
        let root = try Self.subset()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var c = TrainingConfiguration.defaults(architecture: "backbone")
        c.backbonePath = Self.backbone
        #expect(c.head == "logistic" && c.fitsLinearProbe && c.summary.contains("logistic head"))
        let train = try ImageFolderDataset(root: root + "/train", preprocessing: c.preprocessing, links: .follow)
        let validation = try ImageFolderDataset(root: root + "/validation", preprocessing: c.preprocessing, classes: train.classes, links: .follow)
        let probe = try Trainer(configuration: c).train(train: train, validation: validation).description
        let selection = try #require(probe.headSelection)
        #expect(selection.candidates.count == 2 * LinearProbe.grid.count && selection.candidates.contains(selection.chosen))
        #expect(selection.chosen.validationAccuracy == selection.candidates.map(\.validationAccuracy).max())
        #expect(abs(probe.metrics.accuracy - selection.chosen.validationAccuracy) < 1e-12 && probe.metrics.accuracy >= 0.8)
        #expect(probe.network.layers.allSatisfy { if case .dropout = $0.operation { false } else { true } }, "a probe head has no dropout layer")
        c.head = "sgd"
        c.epochs = 3
        c.batchSize = 10
        let sgd = try Trainer(configuration: c).train(train: train, validation: validation).description
        #expect(sgd.headSelection == nil && sgd.history.count == 3)
        // a recipe written before the option decodes without a head: trained by epochs, as it was
        let json = try SnakeCaseJSON.encoder().encode(c)
        var object = try JSONSerialization.jsonObject(with: json) as! [String: Any]
        object.removeValue(forKey: "head")
        let old = try SnakeCaseJSON.decoder().decode(TrainingConfiguration.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(old.head == nil && !old.fitsLinearProbe)
    }

    @Test("a head (with and without fine-tuning) trains, and the saved model reproduces its validation accuracy", arguments: [0, 4])
    func headAndFineTune(fineTune: Int) throws {
        let root = try Self.subset()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var c = TrainingConfiguration.defaults(architecture: "backbone")
        c.backbonePath = Self.backbone
        c.epochs = 4
        c.batchSize = 10
        c.fineTuneConvolutions = fineTune
        // the subset is made of links: a dataset of one's own may be, and says so
        #expect(throws: DatasetError.self) { try ImageFolderDataset(root: root + "/train", preprocessing: c.preprocessing) }
        let train = try ImageFolderDataset(root: root + "/train", preprocessing: c.preprocessing, links: .follow)
        let validation = try ImageFolderDataset(root: root + "/validation", preprocessing: c.preprocessing, classes: train.classes, links: .follow)
        let result = try Trainer(configuration: c).train(train: train, validation: validation)
        let d = result.description
        #expect(d.metrics.accuracy >= 0.8, "validation accuracy \(d.metrics.accuracy)")
        #expect(d.backbone?.fineTunedConvolutions == fineTune)
        #expect(d.backbone?.weightsSha256 == "871179f09e824817dc433bda185c0a51e6706466f088745e8d51b49a9126ee04")
        let imported = try KerasImport.load(modelJSON: Self.backbone)
        let conv1 = d.network.layer(named: "Conv_1")!
        if fineTune > 0 {
            #expect(conv1.trainable)
            #expect(d.network.layer(named: "Conv_1_bn")?.trainable == false)
            #expect(result.parameters["Conv_1.weight"] != imported.parameters["Conv_1.weight"], "the fine-tuned convolution did not change")
        } else {
            #expect(!conv1.trainable)
            #expect(result.parameters["Conv_1.weight"] == imported.parameters["Conv_1.weight"])
        }
        #expect(result.parameters["block_15_project.weight"] == imported.parameters["block_15_project.weight"], "a frozen layer changed")

        let folder = root + "/model"
        try ModelArtifact.save(d, parameters: result.parameters, to: folder)
        let reloaded = try Classifier(model: folder).evaluate(validation)
        #expect(abs(reloaded.accuracy - d.metrics.accuracy) < 1e-9, "saved \(reloaded.accuracy) vs trained \(d.metrics.accuracy)")
        #expect(abs(reloaded.loss - d.metrics.loss) < 1e-3)
    }
}
