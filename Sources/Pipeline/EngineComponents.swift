import DroplineSupport
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
        let started = ComponentRun.now()
        try ComponentRun.requireFolder(processed + "/train", "processed training data")
        try ComponentRun.prepare(output)
        let preprocessing = configuration.preprocessing
        let train = try ImageFolderDataset(root: processed + "/train", preprocessing: preprocessing)
        let validation = try ImageFolderDataset(root: processed + "/validation", preprocessing: preprocessing, classes: train.classes)
        let result = try Trainer(configuration: configuration, report: report).train(train: train, validation: validation)
        let hash = try ModelArtifact.save(result.description, parameters: result.parameters, to: output + "/model")
        try SnakeCaseJSON.write(result.description.metrics, to: output + "/metrics.json")
        let manifest = ComponentManifest(
            component: .algorithm, mode: .train,
            inputs: [.init(role: "train", path: processed + "/train", files: train.items.count, sha256: train.contentHash),
                     .init(role: "validation", path: processed + "/validation", files: validation.items.count, sha256: validation.contentHash)],
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
        let started = ComponentRun.now()
        let files = try ProcessedBatch(folder: processed)
        try ComponentRun.prepare(output)
        let classifier = try Classifier(model: model)
        var lines = ["path,sha256,predicted,confidence,top1,p1,top2,p2,top3,p3"]
        for start in stride(from: 0, to: files.entries.count, by: 64) {
            let chunk = files.entries[start..<min(start + 64, files.entries.count)]
            let images = try chunk.map { try ImageDecoder.decode(file: processed + "/images/" + $0.processed).image }
            for (entry, p) in zip(chunk, try classifier.predict(images)) {
                var fields = [entry.original, entry.sha256, p.label, String(format: "%.6f", p.confidence)]
                for t in p.top { fields += [t.label, String(format: "%.6f", t.probability)] }
                while fields.count < 10 { fields.append("") }
                lines.append(fields.map(CSV.field).joined(separator: ","))
            }
        }
        try AtomicFile.write(Array((lines.joined(separator: "\n") + "\n").utf8), to: output + "/predictions.csv")
        let manifest = ComponentManifest(
            component: .algorithm, mode: .serve,
            inputs: [.init(role: "processed", path: processed, files: files.entries.count, sha256: files.contentHash)],
            outputs: ["algorithm/predictions": "predictions.csv"],
            parameters: ["model": model, "model_content_sha256": classifier.contentHash],
            rejected: [], droplineVersion: DroplineVersion.current, startedAt: started, finishedAt: ComponentRun.now(), outcome: "succeeded")
        try manifest.write(to: output)
        return manifest
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
        let rows = CSV.parse(String(decoding: data, as: UTF8.self))
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

    public func train(images: String, holdout: String?, model: String?, expectedBatchSize: Int = 40, output: String) throws -> ComponentManifest {
        let started = ComponentRun.now()
        try ComponentRun.requireFolder(images, "training images")
        try ComponentRun.prepare(output)
        let classifier = try model.map { try Classifier(model: $0) }
        let side = max(64, classifier?.preprocessing.imageSize ?? 64)
        let collection = ImageCollection(paths: [images], side: side)
        let held = classifier == nil ? nil : holdout.map { ImageCollection(paths: [$0], side: side) }
        let hash = try DriftMonitor.fit(images: collection, trainingData: images, to: output + "/artifacts", model: classifier,
                                        holdout: held, expectedBatchSize: expectedBatchSize)
        var inputs: [ComponentManifest.Input] = [.init(role: "train", path: images, files: collection.items.count, sha256: collection.contentHash)]
        if let held, let holdout { inputs.append(.init(role: "holdout", path: holdout, files: held.items.count, sha256: held.contentHash)) }
        let manifest = ComponentManifest(
            component: .monitoring, mode: .train, inputs: inputs, outputs: ["monitoring/artifacts": "artifacts"],
            parameters: ["artifacts_sha256": hash, "model_content_sha256": classifier?.contentHash ?? "", "expected_batch_size": "\(expectedBatchSize)"],
            rejected: collection.rejected + (held?.rejected ?? []), droplineVersion: DroplineVersion.current, startedAt: started,
            finishedAt: ComponentRun.now(), outcome: "succeeded")
        try manifest.write(to: output)
        return manifest
    }

    public func serve(batch: String, artifacts: String, model: String?, output: String, frozen: FrozenBatch? = nil) throws -> (ComponentManifest, DriftReport) {
        let started = ComponentRun.now()
        try ComponentRun.requireFolder(batch, "batch")
        try ComponentRun.prepare(output)
        let classifier = try model.map { try Classifier(model: $0) }
        let monitor = try DriftMonitor(artifacts: artifacts, model: classifier)
        let collection = try ImageCollection.of(batch, frozen: frozen, side: max(64, classifier?.preprocessing.imageSize ?? 64))
        let report = try monitor.check(collection, name: (batch as NSString).lastPathComponent)
        try SnakeCaseJSON.write(report, to: output + "/drift.json")
        let manifest = ComponentManifest(
            component: .monitoring, mode: .serve,
            inputs: [.init(role: "batch", path: batch, files: collection.items.count, sha256: collection.contentHash)],
            outputs: ["monitoring/drift": "drift.json"],
            parameters: ["artifacts": artifacts, "artifacts_sha256": monitor.contentHash, "drift": "\(report.drift)"],
            rejected: collection.rejected, droplineVersion: DroplineVersion.current, startedAt: started,
            finishedAt: ComponentRun.now(), outcome: "succeeded")
        try manifest.write(to: output)
        return (manifest, report)
    }
}

/// Explainability: integrated gradients for a seeded sample of validation images (train mode) or for
/// a batch within a budget (serve mode).
public struct ExplainabilityComponent {
    public var steps = 50
    public var baseline: Baseline = .black
    public var seed: UInt64 = 1
    public init() {}

    public func run(mode: ComponentMode, images: String, model: String, budget: ExplanationBudget, output: String,
                    frozen: FrozenBatch? = nil) throws -> ComponentManifest {
        let started = ComponentRun.now()
        try ComponentRun.requireFolder(images, "images")
        try ComponentRun.prepare(output)
        let classifier = try Classifier(model: model)
        let explainer = try Explainer(classifier: classifier)
        explainer.steps = steps
        explainer.baseline = baseline
        let collection = try ImageCollection.of(images, frozen: frozen, side: classifier.preprocessing.imageSize)
        let predictions = try classifier.predict(collection.images)
        let chosen = try budget.select(paths: collection.items.map(\.path), confidences: predictions.map(\.confidence), seed: seed)
        try FileManager.default.createDirectory(atPath: output + "/explanations", withIntermediateDirectories: true)
        var explanations: [Explanation] = []
        for (n, index) in chosen.enumerated() {
            let item = collection.items[index]
            let stem = String(format: "%04d", n + 1)
            explanations.append(try explainer.explain(collection.images[index], path: item.path, sha256: item.sha256, stem: stem,
                                                      folder: output + "/explanations", seed: seed &+ UInt64(index)))
        }
        try SnakeCaseJSON.write(explanations, to: output + "/explanations/explanations.json")
        let manifest = ComponentManifest(
            component: .explainability, mode: mode,
            inputs: [.init(role: mode == .train ? "validation" : "batch", path: images, files: collection.items.count, sha256: collection.contentHash)],
            outputs: ["explainability/explanations": "explanations"],
            parameters: ["model_content_sha256": classifier.contentHash, "budget": budget.description, "steps": "\(steps)",
                         "baseline": baseline.rawValue, "seed": "\(seed)", "explained": "\(explanations.count)"],
            rejected: collection.rejected, droplineVersion: DroplineVersion.current, startedAt: started,
            finishedAt: ComponentRun.now(), outcome: "succeeded")
        try manifest.write(to: output)
        return manifest
    }
}

extension ImageCollection {
    /// A component's images: the frozen batch's files when the pipeline froze it, else the folder as it is now.
    static func of(_ folder: String, frozen: FrozenBatch?, side: Int) throws -> ImageCollection {
        if let frozen { return try ImageCollection(frozen: frozen, side: side) }
        return ImageCollection(paths: [folder], side: side)
    }
}
