public import DroplineSupport
public import Explainability
import Foundation
import Imaging
public import Modeling
public import Monitoring
import SystemFiles
import Hashing
import JSONFiles

/// Algorithm: train mode trains a model on processed train/validation folders; serve mode predicts a
/// processed batch and writes predictions.csv.
public struct AlgorithmComponent {
    public var report: @Sendable (TrainingEvent) -> Void = { _ in }
    public init() {}

    public func train(processed: String, configuration: TrainingConfiguration, output: String) throws -> ComponentManifest {
        try ComponentRun.requireFolder(processed + "/train", "processed training data")
        let preprocessing = configuration.preprocessing
        let train = try ImageFolderDataset(root: processed + "/train", preprocessing: preprocessing)
        let validation = try ImageFolderDataset(root: processed + "/validation", preprocessing: preprocessing, classes: train.classes)
        return try self.train(train: train, validation: validation, configuration: configuration, output: output)
    }

    /// Train mode on datasets in memory (the training pipeline's, from processing's in-memory output).
    public func train(train: ImageFolderDataset, validation: ImageFolderDataset, configuration: TrainingConfiguration, output: String) throws -> ComponentManifest {
        let started = ComponentRun.now()
        try ComponentRun.prepare(output)
        let result = try Trainer(configuration: configuration, report: report).train(train: train, validation: validation)
        let hash = try ModelArtifact.save(result.description, parameters: result.parameters, to: output + "/model")
        try SnakeCaseJSON.write(result.description.metrics, to: output + "/metrics.json")
        let manifest = ComponentManifest(
            component: .algorithm, mode: .train,
            inputs: [.init(role: "train", path: train.root, files: train.items.count, sha256: train.contentHash),
                     .init(role: "validation", path: validation.root, files: validation.items.count, sha256: validation.contentHash)],
            outputs: ["algorithm/model": "model", "algorithm/metrics": "metrics.json"],
            parameters: ["architecture": configuration.architecture, "epochs": "\(configuration.epochs)", "seed": "\(configuration.seed)",
                         "model_content_sha256": hash, "validation_accuracy": "\(result.description.metrics.accuracy)"],
            rejected: train.rejected + validation.rejected, droplineVersion: DroplineVersion.current, startedAt: started,
            finishedAt: ComponentRun.now(), outcome: "succeeded")
        try manifest.write(to: output)
        return manifest
    }

    /// `processed` is a processing serve output (images/ and files.csv).
    public func serve(processed: String, model: String, output: String) throws -> ComponentManifest {
        let files = try ProcessedBatch(folder: processed)
        if let unwritten = files.entries.first(where: { $0.processed.isEmpty }) {
            throw ComponentError("'\(processed)' lists \(unwritten.original) without a processed image (a pipeline run that did not keep them); run `dropline component processing --mode serve` on the batch, or `dropline infer --keep-processed`")
        }
        let session = try ServeSession(classifier: try Classifier(model: model), input: processed, role: "processed", output: output)
        for start in stride(from: 0, to: files.entries.count, by: FrozenBatch.chunkSize) {
            let chunk = files.entries[start..<min(start + FrozenBatch.chunkSize, files.entries.count)]
            let images = try chunk.map { try ImageDecoder.decode(file: processed + "/images/" + $0.processed).image }
            let items = chunk.map { ImageCollection.Item(path: $0.original, relativePath: $0.original, sha256: $0.sha256) }
            session.add(items, predictions: try session.classifier.predict(images))
        }
        return try session.finish(model: model)
    }
}

/// A processing serve output: processed file name -> original path and hash.
public struct ProcessedBatch {
    public struct Entry: Sendable {
        public var processed: String
        public var original: String
        public var sha256: String
    }

    public let entries: [Entry]

    public init(folder: String) throws {
        guard let data = FileManager.default.contents(atPath: folder + "/files.csv") else {
            throw ComponentError("'\(folder)' is not a processing serve output (no files.csv); run `dropline component processing --mode serve` first")
        }
        let rows = try CSV.parse(String(decoding: data, as: UTF8.self), file: folder + "/files.csv")
        guard rows.first == ["processed", "original", "sha256"] else {
            throw ComponentError("'\(folder)/files.csv' does not start with the header processed,original,sha256")
        }
        entries = rows.dropFirst().filter { $0.count == 3 }.map { Entry(processed: $0[0], original: $0[1], sha256: $0[2]) }
    }

    var contentHash: String {
        var h = SHA256()
        for e in entries.sorted(by: { $0.original < $1.original }) { h.update(Array("\(e.original)\t\(e.sha256)\n".utf8)) }
        return h.finalize()
    }
}

/// Monitoring: train mode fits drift artifacts on raw training images (softmax reference from the
/// validation images); serve mode checks a raw batch and writes drift.json.
public struct MonitoringComponent {
    public init() {}

    public func train(images: String, holdout: String?, model: String?, expectedBatchSize: Int = 40, progress: (any ProgressReporter)? = nil,
                      output: String) throws -> ComponentManifest {
        try ComponentRun.requireFolder(images, "training images")
        let classifier = try model.map { try Classifier(model: $0) }
        let side = Preprocessing.monitoringSide(classifier?.preprocessing.imageSize)
        let collection = ImageCollection(paths: [images], side: side, facts: true)
        let held = classifier == nil ? nil : holdout.map { ImageCollection(paths: [$0], side: side, facts: true) }
        // held-out images in one folder per class (as a stage's validation/ is) are labelled by it, so the
        // artifacts are calibrated as the training pipeline's are; otherwise they are not calibrated
        var labels: [Int]?
        if let classifier, let held {
            let found = held.items.map { item in item.relativePath.split(separator: "/").dropLast().first.flatMap { classifier.classes.firstIndex(of: String($0)) } }
            if !found.isEmpty, found.allSatisfy({ $0 != nil }) { labels = found.map { $0! } }
        }
        return try train(collection, from: images, holdout: held, from: holdout, classifier: classifier, holdoutLabels: labels,
                         expectedBatchSize: expectedBatchSize,
                         progress: labels == nil ? nil : progress,
                         output: output)
    }

    /// Train mode on images in memory, prepared at the monitoring side (`Preprocessing.monitoringSide`).
    public func train(_ collection: ImageCollection, from images: String, holdout held: ImageCollection?, from holdout: String?, classifier: Classifier?,
                      holdoutLabels: [Int]? = nil, expectedBatchSize: Int = 40, progress: (any ProgressReporter)? = nil, output: String) throws -> ComponentManifest {
        let started = ComponentRun.now()
        try ComponentRun.prepare(output)
        let hash = try DriftMonitor.fit(images: collection, trainingData: images, to: output + "/artifacts", model: classifier,
                                        holdout: held, expectedBatchSize: expectedBatchSize, holdoutLabels: holdoutLabels, progress: progress)
        // the data-quality baseline, from every raw training image read (the held-out ones too)
        let all = [collection] + (held.map { [$0] } ?? [])
        let quality = try DataQualityBaseline.fit(
            facts: all.flatMap(\.facts), sha256s: all.flatMap { $0.items.map(\.sha256) }, refused: all.reduce(0) { $0 + $1.rejected.count },
            trainingData: [images] + (holdout.map { [$0] } ?? []), trainingDataSha256: ImageCollection.contentHash(of: all.flatMap(\.items)),
            to: output + "/" + Self.qualityFolder)
        var inputs: [ComponentManifest.Input] = [.init(role: "train", path: images, files: collection.items.count, sha256: collection.contentHash)]
        if let held, let holdout { inputs.append(.init(role: "holdout", path: holdout, files: held.items.count, sha256: held.contentHash)) }
        let manifest = ComponentManifest(
            component: .monitoring, mode: .train, inputs: inputs, outputs: ["monitoring/artifacts": "artifacts", "monitoring/quality": Self.qualityFolder],
            parameters: ["artifacts_sha256": hash, "model_content_sha256": classifier?.contentHash ?? "", "expected_batch_size": "\(expectedBatchSize)",
                         "quality_sha256": quality.contentHash],
            rejected: collection.rejected + (held?.rejected ?? []), droplineVersion: DroplineVersion.current, startedAt: started,
            finishedAt: ComponentRun.now(), outcome: "succeeded")
        try manifest.write(to: output)
        return manifest
    }

    /// Serve mode: the drift check against `artifacts`, and the data-quality check against `quality`
    /// (a baseline folder; by default the one beside the artifacts, `<artifacts>/../quality`, the
    /// layout of a model version and of a training run's monitoring output).
    public func serve(batch: String, artifacts: String, quality: String? = nil, model: String?, output: String,
                      frozen: FrozenBatch? = nil) throws -> (ComponentManifest, DriftReport) {
        try ComponentRun.requireFolder(batch, "batch")
        let classifier = try model.map { try Classifier(model: $0) }
        let baseline = try DataQualityBaseline.load(quality ?? Self.qualityFolder(beside: artifacts))
        let session = try ServeSession(monitor: try DriftMonitor(artifacts: artifacts, model: classifier), quality: baseline, batch: batch,
                                       artifacts: artifacts, output: output)
        try ImageCollection.forEachChunk(of: batch, frozen: frozen, preparations: [.serving(Preprocessing.monitoringSide(classifier?.preprocessing.imageSize))],
                                         facts: true) { chunk in
            _ = try session.add(chunk.items, images: chunk.images[0], facts: chunk.facts, rejected: chunk.rejected)
        }
        return try session.finish()
    }

    /// The data-quality baseline's folder name, beside the drift artifacts.
    public static let qualityFolder = "quality"
    /// A serve run's data-quality report, beside drift.json.
    public static let qualityReportFile = "quality.json"

    /// The baseline folder beside a drift artifacts folder (`…/drift` of a model version, `…/artifacts` of a run).
    public static func qualityFolder(beside artifacts: String) -> String {
        let trimmed = artifacts.hasSuffix("/") ? String(artifacts.dropLast()) : artifacts
        return (trimmed as NSString).deletingLastPathComponent + "/" + qualityFolder
    }
}

/// Explainability: integrated gradients for a seeded sample of validation images (train mode) or for
/// a batch within a budget (serve mode).
public struct ExplainabilityComponent {
    /// Points per image of the first attribution: 63 of the nested cosine trapezoid
    /// (`Quadrature.cosineTrapezoid`), then refinement where an image needs it. On the MobileNetV2
    /// backbone model, whose ReLU6 saturations make the path integrand kinked, this rule leaves a
    /// median relative completeness delta of 2.3% at 63 points and 1.1% at 127, Gauss-Legendre 3.4% at
    /// 50 (Captum's default) and 0.6% at 200 (48 imagenette test photos; docs/monitoring.md).
    public var steps = 63
    public var method: Quadrature = .cosineTrapezoid
    /// Refine, in rounds, the images whose relative delta is still at or above 1%: each refinement
    /// doubles an image's points and keeps the ones it has (`Explainer.refine`), while the set stays
    /// within `passesPerImage` points per image. 120 per image reach a median delta of 0.85% on those
    /// 48 photos, in 0.7 times the time Captum takes for its 50 steps (`dropline bench pipeline`).
    public var adaptive = true
    public var passesPerImage = 120
    public var baseline: Baseline = .black
    public var seed: UInt64 = 1
    public init() {}

    public func run(mode: ComponentMode, images: String, model: String, budget: ExplanationBudget, output: String,
                    frozen: FrozenBatch? = nil) throws -> ComponentManifest {
        let classifier = try Classifier(model: model)
        let session = try Session(self, mode: mode, classifier: classifier, images: images, budget: budget, output: output)
        try ImageCollection.forEachChunk(of: images, frozen: frozen, preparations: [.serving(classifier.preprocessing.imageSize)]) { chunk in
            session.add(chunk.items, prepared: chunk.images[0], predictions: try classifier.predict(chunk.images[0]), outlierScores: nil,
                        rejected: chunk.rejected)
        }
        return try session.finish()
    }
}

extension ImageCollection {
    /// A component's images, a chunk at a time: the frozen batch's files when the pipeline froze it,
    /// else the folder as it is now (loaded whole: a component run alone on a folder).
    /// With `facts`, the chunks carry the images' `ImageFacts` (the monitoring component's data-quality check).
    static func forEachChunk(of folder: String, frozen: FrozenBatch?, preparations: [Preprocessing], facts: Bool = false,
                             _ body: (FrozenChunk) throws -> Void) throws {
        if let frozen { return try frozen.forEachChunk(preparations: preparations, facts: facts, body) }
        let chunk = ImageCollection.load([folder], preparations: preparations, facts: facts)
        try body(chunk)
    }
}

extension Preprocessing {
    /// How the serve components prepare a batch's images at `side`: shorter side resized, centre
    /// crop, pixels in [0, 1] (the model's own normalisation is applied when the tensor is written).
    static func serving(_ side: Int) -> Preprocessing { Preprocessing(imageSize: side, normalization: .unit) }
}
