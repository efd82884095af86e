import DroplineSupport
import Foundation
import Imaging
import Modeling
import NeuralNetwork
import Testing
import SystemFiles

@Suite("Datasets")
struct DatasetTests {
    @Test("junk is skipped, broken files are rejected with their reason, classes are the sorted folders")
    func junkAndBroken() throws {
        let root = try SyntheticData.write(perClass: ["train": 4])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let train = root + "/train"
        _ = FileManager.default.createFile(atPath: train + "/red/.DS_Store", contents: Data([0, 0, 0, 1]))
        _ = FileManager.default.createFile(atPath: train + "/red/._000.png", contents: Data([0, 5, 22, 7]))
        _ = FileManager.default.createFile(atPath: train + "/blue/cut.png", contents: Data(try ImageEncoder.png(RGBImage(width: 40, height: 40)).prefix(50)))
        try FileManager.default.createDirectory(atPath: train + "/@eaDir", withIntermediateDirectories: true)
        let d = try ImageFolderDataset(root: train, preprocessing: Preprocessing(imageSize: 16, normalization: .unit))
        #expect(d.classes == ["blue", "green", "red"])
        #expect(d.items.count == 12)
        #expect(d.rejected.count == 1 && d.rejected[0].path.hasSuffix("cut.png") && d.rejected[0].outcome == "truncated")
        #expect(d.classCounts == [4, 4, 4])
        #expect(d.images.allSatisfy { $0.width == 16 && $0.height == 16 })
        #expect(d.contentHash.count == 64)
        // the same files give the same hash; another file set another
        let again = try ImageFolderDataset(root: train, preprocessing: Preprocessing(imageSize: 24, normalization: .unit))
        #expect(again.contentHash == d.contentHash)
    }

    @Test("a folder with one class, or with classes the model does not know, is a clear error")
    func classErrors() throws {
        let root = try SyntheticData.write(perClass: ["train": 2])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let p = Preprocessing(imageSize: 16, normalization: .unit)
        #expect(throws: DatasetError.self) { try ImageFolderDataset(root: root + "/train", preprocessing: p, classes: ["blue", "green"]) }
        #expect(throws: DatasetError.self) { try ImageFolderDataset(root: root + "/train/red", preprocessing: p) }
        #expect(throws: DatasetError.self) { try ImageFolderDataset(root: root + "/missing", preprocessing: p) }
    }
}

@Suite("Training and model artifacts")
struct TrainingTests {
    static func quickConfiguration() -> TrainingConfiguration {
        var c = TrainingConfiguration.defaults(architecture: "small-cnn")
        c.imageSize = 32
        c.epochs = 8
        c.batchSize = 12
        c.learningRate = 0.05
        c.patience = 0
        return c
    }

    @Test("a small CNN learns a 3-class problem; the saved model reloads and classifies the same")
    func trainSaveLoad() throws {
        let root = try SyntheticData.write()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let c = Self.quickConfiguration()
        let train = try ImageFolderDataset(root: root + "/train", preprocessing: c.preprocessing)
        let validation = try ImageFolderDataset(root: root + "/validation", preprocessing: c.preprocessing, classes: train.classes)
        nonisolated(unsafe) var epochs = 0
        let result = try Trainer(configuration: c) { event in if case .epoch = event { epochs += 1 } }.train(train: train, validation: validation)
        #expect(epochs == 8)
        #expect(result.description.metrics.accuracy >= 0.9, "validation accuracy \(result.description.metrics.accuracy)")
        #expect(result.description.history.count == 8)
        #expect(result.description.training.sha256 == train.contentHash)

        let folder = root + "/model"
        let hash = try ModelArtifact.save(result.description, parameters: result.parameters, to: folder)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).sorted() == ["model", "test", "train", "validation"])
        let classifier = try Classifier(model: folder)
        #expect(classifier.contentHash == hash)
        let test = try ImageFolderDataset(root: root + "/test", preprocessing: classifier.preprocessing, classes: classifier.classes)
        let metrics = try classifier.evaluate(test)
        #expect(metrics.accuracy >= 0.9, "test accuracy \(metrics.accuracy)")
        // predictions from the reloaded model match the in-memory one
        let predictor = try Predictor(network: result.description.network, parameters: result.parameters)
        let images = Array(test.images.prefix(4))
        var input: [Float] = []
        for image in images { input += image.floats(layout: .chw, normalization: c.preprocessing.normalization) }
        let direct = try predictor.predict(input, count: 4)
        let loaded = try classifier.logits(images)
        #expect(zip(direct, loaded).allSatisfy { abs($0 - $1) < 1e-4 })
        let predictions = try classifier.predict(images)
        #expect(predictions.allSatisfy { $0.top.count == 3 && $0.confidence >= $0.top[1].probability })
        #expect(throws: ArtifactError.self) { try ModelArtifact.save(result.description, parameters: result.parameters, to: folder) }
    }

    @Test("a changed model.json or weights file is refused with the reason")
    func tamper() throws {
        let root = try SyntheticData.write(perClass: ["train": 6, "validation": 3])
        defer { try? FileManager.default.removeItem(atPath: root) }
        var c = Self.quickConfiguration()
        c.epochs = 1
        let train = try ImageFolderDataset(root: root + "/train", preprocessing: c.preprocessing)
        let validation = try ImageFolderDataset(root: root + "/validation", preprocessing: c.preprocessing, classes: train.classes)
        let result = try Trainer(configuration: c).train(train: train, validation: validation)
        let folder = root + "/model"
        try ModelArtifact.save(result.description, parameters: result.parameters, to: folder)
        var weights = try AtomicFile.read(folder + "/weights.safetensors")
        weights[weights.count - 1] ^= 1
        try AtomicFile.write(weights, to: folder + "/weights.safetensors")
        do {
            _ = try ModelArtifact.load(folder)
            Issue.record("loaded damaged weights")
        } catch let error as ArtifactError {
            #expect(error.reason.contains("weights.safetensors does not match"))
        }
        var json = try AtomicFile.read(folder + "/model.json")
        json[json.count - 3] = UInt8(ascii: " ")
        try AtomicFile.write(json, to: folder + "/model.json")
        do {
            _ = try ModelArtifact.load(folder)
            Issue.record("loaded a changed model.json")
        } catch let error as ArtifactError {
            #expect(error.reason.contains("content.sha256"))
        }
    }

    @Test("the cosine schedule warms up linearly and decays to the minimum")
    func schedule() {
        let s = CosineSchedule(base: 1, warmupSteps: 4, totalSteps: 14)
        #expect(s.rate(at: 0) == 0.25 && s.rate(at: 3) == 1)
        #expect(abs(s.rate(at: 9) - 0.5) < 1e-6)
        #expect(s.rate(at: 14) == 0 && s.rate(at: 100) == 0)
    }
}
