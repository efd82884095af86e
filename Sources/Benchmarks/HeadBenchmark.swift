import DroplineSupport
import Foundation
import Imaging
import Modeling
import NeuralNetwork
import Tensor
import SystemFiles

/// The backbone's head against a linear probe, in the same run: Dropline's default head
/// (`head: logistic`) and its earlier one (`head: sgd`, trained by epochs) are trained by the real
/// `Trainer` on a photo set's train/ and validation/ and scored on its test/; scikit-learn's
/// `LogisticRegression` on the same backbone's pooled features, standardised, its C chosen on the
/// validation split over the same grid, is the peer (scripts/linear_probe_peer.py, run by `python`).
public struct HeadBenchmark {
    public struct Configuration: Sendable {
        /// A folder with train/, validation/ and test/ class folders.
        public var data: String
        public var backbone: String
        public var python = "python3"
        public var peerScript: String
        public var scratch: String
        public var log: @Sendable (String) -> Void = { _ in }
        public init(data: String, backbone: String, peerScript: String, scratch: String) {
            self.data = data
            self.backbone = backbone
            self.peerScript = peerScript
            self.scratch = scratch
        }
    }

    public struct Row: Codable, Sendable {
        public var head: String
        public var validationAccuracy: Double
        public var testAccuracy: Double
        public var seconds: Double
        public var detail: String
    }

    public struct Report: Codable, Sendable {
        public var data: String
        public var classes: [String]
        public var trainImages: Int
        public var validationImages: Int
        public var testImages: Int
        public var rows: [Row]
        /// Dropline's default head's test accuracy minus the probe's, in points (nil without the peer).
        public var marginPoints: Double?
        public var notes: [String]
    }

    public let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run() throws -> Report {
        let c = configuration
        var recipe = try TrainingConfiguration.defaults(forArch: "backbone:" + c.backbone)
        let preprocessing = recipe.preprocessing
        c.log("reading \(c.data)")
        let train = try ImageFolderDataset(root: c.data + "/train", preprocessing: preprocessing, links: .follow)
        let validation = try ImageFolderDataset(root: c.data + "/validation", preprocessing: preprocessing, classes: train.classes, links: .follow)
        let test = try ImageFolderDataset(root: c.data + "/test", preprocessing: preprocessing, classes: train.classes, links: .follow)
        var rows: [Row] = [], notes: [String] = []
        try FileManager.default.createDirectory(atPath: c.scratch, withIntermediateDirectories: true)
        for head in ["logistic", "sgd"] {
            recipe.head = head
            c.log("training the \(head) head")
            let started = Date()
            let result = try Trainer(configuration: recipe).train(train: train, validation: validation)
            let seconds = Date().timeIntervalSince(started)
            let folder = c.scratch + "/model-\(head)-\(UUID().uuidString)"
            _ = try ModelArtifact.save(result.description, parameters: result.parameters, to: folder)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let accuracy = try Classifier(model: folder).evaluate(test).accuracy
            let detail = result.description.headSelection.map { s in
                String(format: "C %.3g%@, %d candidates", s.chosen.c, s.chosen.augmented ? " with flipped copies" : "", s.candidates.count)
            } ?? "epoch \(result.description.bestEpoch) of \(result.description.history.count) kept"
            rows.append(Row(head: head == "logistic" ? "dropline logistic (default)" : "dropline sgd (by epochs)",
                            validationAccuracy: result.description.metrics.accuracy, testAccuracy: accuracy, seconds: seconds, detail: detail))
        }
        // the peer's features: the same backbone, cut at its global pool, on the same prepared images
        c.log("computing the backbone's features for the peer")
        let imported = try KerasImport.load(modelJSON: c.backbone)
        let predictor = try Predictor(network: imported.network, parameters: imported.parameters)
        func features(_ d: ImageFolderDataset) throws -> Tensor {
            let values = try predictor.predict(count: d.images.count, chunk: 16, fill: { i, slot in preprocessing.write(d.images[i], into: slot) }, done: { _ in })
            return Tensor(shape: [d.images.count, values.count / max(d.images.count, 1)], data: values)
        }
        func labels(_ d: ImageFolderDataset) -> Tensor { Tensor(shape: [d.items.count], data: d.items.map { Float($0.label) }) }
        let file = c.scratch + "/features-\(UUID().uuidString).safetensors"
        try AtomicFile.write(try SafeTensors.encode(["train_x": try features(train), "train_y": labels(train), "validation_x": try features(validation),
                                                     "validation_y": labels(validation), "test_x": try features(test), "test_y": labels(test)]), to: file)
        defer { try? FileManager.default.removeItem(atPath: file) }
        c.log("running the scikit-learn probe (\(c.python) \(c.peerScript))")
        let peer = Self.runPeer(python: c.python, script: c.peerScript, features: file)
        notes.append("Dropline's seconds include computing the backbone's features of every image (and of each flipped copy); the probe's are its fits alone, on features given")
        var margin: Double?
        switch peer {
        case .success(let p):
            rows.append(Row(head: "scikit-learn probe", validationAccuracy: p.validationAccuracy, testAccuracy: p.testAccuracy, seconds: p.seconds,
                            detail: String(format: "C %.3g", p.c)))
            margin = 100 * (rows[0].testAccuracy - p.testAccuracy)
        case .failure(let why):
            notes.append("the scikit-learn probe did not run: \(why)")
        }
        return Report(data: c.data, classes: train.classes, trainImages: train.items.count, validationImages: validation.items.count, testImages: test.items.count,
                      rows: rows, marginPoints: margin, notes: notes)
    }

    struct PeerResult: Decodable {
        var c: Double
        var validationAccuracy: Double
        var testAccuracy: Double
        var seconds: Double
    }

    struct PeerFailure: Error, CustomStringConvertible { var description: String }

    static func runPeer(python: String, script: String, features: String) -> Result<PeerResult, PeerFailure> {
        let result: (status: Int32, output: String, errors: String)
        do { result = try Pillow.run(python, [script, features]) } catch { return .failure(PeerFailure(description: "\(error)")) }
        guard result.status == 0 else { return .failure(PeerFailure(description: "exit status \(result.status): \(result.errors)")) }
        let output = Data(result.output.utf8)
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return .success(try decoder.decode(PeerResult.self, from: output))
        } catch {
            return .failure(PeerFailure(description: "its output is not the expected JSON (\(error))"))
        }
    }
}
