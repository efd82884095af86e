import ArgumentParser
import DroplineSupport
import Foundation
import Imaging
import Modeling
import NeuralNetwork
import SystemFiles

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Train, evaluate and run image classifiers.",
        subcommands: [Train.self, Eval.self, Predict.self]
    )

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a classifier on class folders and write a model folder.",
            discussion: """
            --data holds train/<class>/ and validation/<class>/ folders. Architectures: scratch (Dropline's \
            small ResNet, default 96 px), small-cnn (the reference CNN of ../shared/PEERS.md), or \
            backbone:<model.json> (a Keras / TensorFlow.js model, frozen, with a new head trained on its \
            features; default 224 px). The epoch with the best validation accuracy is kept. The model folder \
            holds weights.safetensors, model.json and content.sha256.
            """
        )

        @Option(help: "A folder with train/ and validation/ class folders.")
        var data: String

        @Option(help: "The model folder to create (must not exist).")
        var out: String

        @Option(help: "scratch, small-cnn, or backbone:<path to model.json>.")
        var arch = "scratch"

        @Option(help: "Cut the backbone at this layer (default: its global average pool).")
        var cut: String?

        @Option(help: "Maximum epochs (default: 40 from scratch, 60 for a backbone head).")
        var epochs: Int?

        @Option(help: "Square input size in pixels (default: 96 from scratch, 224 for a backbone).")
        var imageSize: Int?

        @Option(help: "Examples per training step.")
        var batchSize: Int?

        @Option(help: "Peak learning rate of the cosine schedule.")
        var learningRate: Float?

        @Option(help: "Stop after this many epochs without validation improvement (0: never).")
        var patience: Int?

        @Option(help: "Backbone head: one hidden layer of this many units (default: linear).")
        var hiddenUnits: Int?

        @Option(help: "Backbone: also train its last N convolution layers (the cut moves back past residual connections).")
        var fineTune = 0

        @Option(help: "Backbone, linear head: logistic (the default: logistic regression on standardised features, its L2 strength chosen on the validation split) or sgd (trained by epochs with the optimizer).")
        var head: String?

        @Option(help: "Seed for initialisation, shuffling and augmentation.")
        var seed: UInt64 = 1

        @Flag(help: "Print the result as JSON.")
        var json = false

        func validate() throws {
            if let epochs, epochs <= 0 { throw ValidationError("--epochs must be positive") }
            if let imageSize, imageSize < 16 || imageSize > 1024 { throw ValidationError("--image-size must be between 16 and 1024") }
            if let batchSize, batchSize <= 0 { throw ValidationError("--batch-size must be positive") }
            if !["scratch", "small-cnn"].contains(arch) && !arch.hasPrefix("backbone:") {
                throw ValidationError("--arch must be scratch, small-cnn or backbone:<model.json>, not '\(arch)'")
            }
        }

        func run() throws {
            var c = try TrainingConfiguration.defaults(forArch: arch)
            let architecture = c.architecture
            ThreadPolicy.settle { architecture == "backbone" }
            if architecture == "backbone" { c.backboneCut = cut }
            if let epochs { c.epochs = epochs }
            if let imageSize { c.imageSize = imageSize }
            if let batchSize { c.batchSize = batchSize }
            if let learningRate { c.learningRate = learningRate }
            if let patience { c.patience = patience }
            if let hiddenUnits { c.hiddenUnits = hiddenUnits }
            if let head {
                guard ["logistic", "sgd"].contains(head) else { throw ValidationError("--head must be logistic or sgd, not '\(head)'") }
                guard architecture == "backbone" else { throw ValidationError("--head applies to --arch backbone:<model.json>") }
                c.head = head
            }
            guard fineTune == 0 || architecture == "backbone" else { throw ValidationError("--fine-tune applies to --arch backbone:<model.json>") }
            c.fineTuneConvolutions = fineTune
            c.seed = seed
            if FileManager.default.fileExists(atPath: out) {
                throw ValidationError("'\(out)' already exists; choose another --out or remove it")
            }
            let train = try Loading.dataset(data + "/train", preprocessing: c.preprocessing)
            let validation = try Loading.dataset(data + "/validation", preprocessing: c.preprocessing, classes: train.classes)
            let display = TrainingDisplay(quiet: json)
            let result = try Trainer(configuration: c, report: display.handle).train(train: train, validation: validation)
            let hash = try ModelArtifact.save(result.description, parameters: result.parameters, to: out)
            let d = result.description
            if json {
                try JSONOutput.print(TrainSummary(model: out, contentSHA256: hash, architecture: d.architecture, bestEpoch: d.bestEpoch,
                                                  epochsRun: d.history.count, trainingSeconds: d.trainingSeconds, validation: d.metrics,
                                                  history: d.history, rejected: train.rejected + validation.rejected))
            } else {
                print("model: \(out) (content sha256 \(hash.prefix(16))...)")
                print(String(format: "kept epoch %d of %d; training took %.1f s", d.bestEpoch, d.history.count, d.trainingSeconds))
                print("validation:\n" + d.metrics.report())
            }
        }
    }

    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Accuracy, loss, per-class precision and recall, and the confusion matrix on class folders."
        )

        @Option(help: "A model folder.")
        var model: String

        @Option(help: "A folder with one sub-folder per class (the model's class names).")
        var data: String

        @Flag(help: "Print the metrics as JSON.")
        var json = false

        func run() throws {
            let classifier = try Classifier(model: model)
            let dataset = try Loading.dataset(data, preprocessing: classifier.preprocessing, classes: classifier.classes)
            let metrics = try classifier.evaluate(dataset)
            if json {
                try JSONOutput.print(EvalSummary(model: model, data: data, metrics: metrics, rejected: dataset.rejected))
            } else {
                print(metrics.report())
                for r in dataset.rejected { print("skipped \(r.path): \(r.outcome): \(r.reason)") }
            }
        }
    }

    struct Predict: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Classify images; files that cannot be used are reported with the reason."
        )

        @Option(help: "A model folder.")
        var model: String

        @Argument(help: "Image files or folders.")
        var paths: [String]

        @Flag(help: "One JSON array of records on standard output.")
        var json = false

        struct Record: Encodable {
            var path: String
            var outcome: String
            var label: String?
            var confidence: Double?
            var top: [ClassProbability]?
            var reason: String?
        }

        func run() throws {
            let classifier = try Classifier(model: model)
            let files = ImageInspector.expand(paths).filter { DropFolderJunk.reason(for: $0.relative) == nil }
            var records: [Record] = []
            let progress = TerminalProgress("classifying", total: files.count, unit: "images", enabled: files.count > 64 ? nil : false)
            for chunk in stride(from: 0, to: files.count, by: 64) {
                var images: [RGBImage] = [], positions: [Int] = []
                for file in files[chunk..<min(chunk + 64, files.count)] {
                    do {
                        images.append(try ImageDecoder.decode(file: file.path, options: classifier.preprocessing.decodeOptions).image)
                        positions.append(records.count)
                        records.append(Record(path: file.path, outcome: "ok"))
                    } catch {
                        records.append(Record(path: file.path, outcome: error.kind.rawValue, reason: error.reason))
                    }
                    progress.advance()
                }
                for (position, prediction) in zip(positions, try classifier.predict(images)) {
                    records[position].label = prediction.label
                    records[position].confidence = prediction.confidence
                    records[position].top = prediction.top
                }
            }
            progress.finish()
            if json {
                try JSONOutput.print(records)
                return
            }
            var table = TextTable("PATH", "CLASS", "CONFIDENCE", "TOP 3")
            for r in records {
                if r.outcome == "ok" {
                    table.add([r.path, r.label!, String(format: "%.3f", r.confidence!),
                               r.top!.map { "\($0.label) \(String(format: "%.2f", $0.probability))" }.joined(separator: ", ")])
                } else {
                    table.add([r.path, "-", "-", "\(r.outcome): \(r.reason ?? "")"])
                }
            }
            print(table.render())
        }
    }
}

struct TrainSummary: Encodable {
    var model: String
    var contentSHA256: String
    var architecture: String
    var bestEpoch: Int
    var epochsRun: Int
    var trainingSeconds: Double
    var validation: ClassificationMetrics
    var history: [EpochRecord]
    var rejected: [Rejection]
}

struct EvalSummary: Encodable {
    var model: String
    var data: String
    var metrics: ClassificationMetrics
    var rejected: [Rejection]
}

/// Loads class folders with a progress line, reporting skipped files.
enum Loading {
    static func dataset(_ folder: String, preprocessing: Preprocessing, classes: [String]? = nil) throws -> ImageFolderDataset {
        let progress = TerminalProgress("loading \(folder)", total: ImageFolderDataset.fileCount(folder), unit: "images")
        // the user's own dataset folder: links inside are followed (the inbox never is)
        let dataset = try ImageFolderDataset(root: folder, preprocessing: preprocessing, classes: classes, progress: progress, links: .follow)
        progress.finish()
        for r in dataset.rejected { Console.note("skipped \(r.path): \(r.outcome): \(r.reason)") }
        return dataset
    }
}

/// Training progress on standard error: a redrawn batch line on a terminal, one line per epoch.
final class TrainingDisplay: @unchecked Sendable {
    let quiet: Bool
    let terminal = isatty(STDERR_FILENO) == 1
    init(quiet: Bool) { self.quiet = quiet }

    func handle(_ event: TrainingEvent) {
        switch event {
        case .loading(let what):
            Console.note(what)
        case .features(let done, let total):
            if terminal { FileHandle.standardError.write(Data("\rbackbone features: \(done)/\(total)\u{1B}[K\(done == total ? "\n" : "")".utf8)) }
        case .batch(let epoch, let done, let total, let loss, let rate):
            if terminal {
                FileHandle.standardError.write(Data(String(format: "\repoch %d: batch %d/%d, loss %.4f, %.0f img/s\u{1B}[K", epoch, done, total, loss, rate).utf8))
            }
        case .epoch(let r, let best):
            let line = String(format: "epoch %3d  loss %.4f  acc %.3f  val loss %.4f  val acc %.3f  lr %.5f  %.0f img/s  %.1fs%@",
                              r.epoch, r.trainLoss, r.trainAccuracy, r.validationLoss, r.validationAccuracy, r.learningRate,
                              r.imagesPerSecond, r.seconds, best ? "  *" : "")
            Console.note((terminal ? "\r\u{1B}[K" : "") + line)
        case .stopped(let why):
            Console.note("early stop: \(why)")
        case .fitting(let done, let total):
            if terminal { FileHandle.standardError.write(Data("\rlogistic head: \(done)/\(total) penalties fitted\u{1B}[K\(done == total ? "\n" : "")".utf8)) }
        }
    }
}
