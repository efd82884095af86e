import DroplineSupport
public import Explainability
import Foundation
public import Imaging
public import Modeling
public import Monitoring
import SystemFiles
import JSONFiles

/// # The serve components, fed a chunk at a time
///
/// Each serve component as a session: opened on its output folder, given the batch one chunk of
/// prepared images at a time, finished into its outputs and manifest. The batch-inference pipeline
/// reads each image once and hands every chunk to all four; a component run alone feeds its own
/// session from its folder, so both give the same outputs. Nothing a session keeps grows with the
/// batch but one result per image (a CSV line, a feature row, an outlier score).

/// The files a session has seen, for its manifest's input line.
struct SessionInputs {
    var items: [ImageCollection.Item] = []
    var rejected: [Rejection] = []

    mutating func add(_ items: [ImageCollection.Item], rejected: [Rejection]) {
        self.items += items
        self.rejected += rejected
    }

    var contentHash: String { ImageCollection.contentHash(of: items) }
}

extension ProcessingComponent {
    /// Processing in serve mode, a chunk at a time: files.csv (processed name, original path,
    /// SHA-256), and the resized images in images/ when `writeImages` (the standalone component
    /// always writes them; the pipeline only when asked, `dropline infer --keep-processed`).
    public final class ServeSession {
        let batch: String, output: String, imageSize: Int, writeImages: Bool, started = ComponentRun.now()
        let progress: (@Sendable () -> Void)?
        var lines = ["processed,original,sha256"]
        var inputs = SessionInputs()

        public init(_ component: ProcessingComponent, batch: String, output: String, writeImages: Bool) throws {
            try ComponentRun.requireFolder(batch, "batch")
            try ComponentRun.prepare(output)
            if writeImages { try FileManager.default.createDirectory(atPath: output + "/images", withIntermediateDirectories: true) }
            self.batch = batch
            self.output = output
            self.imageSize = component.imageSize
            self.writeImages = writeImages
            progress = component.progress
        }

        /// `images` are prepared at the processing size, parallel to `items`.
        public func add(_ items: [ImageCollection.Item], images: [RGBImage], rejected: [Rejection]) throws {
            let first = inputs.items.count
            inputs.add(items, rejected: rejected)
            for (n, item) in items.enumerated() {
                lines.append([writeImages ? String(format: "%06d.png", first + n) : "", item.path, item.sha256].map(CSV.field).joined(separator: ","))
            }
            guard writeImages else { return }
            // several files written at once: each atomic write is several round trips on a network mount
            let folder = output + "/images", tick = progress
            try InFlight.forEach(images.count) { n in
                try ImageEncoder.write(images[n], to: folder + String(format: "/%06d.png", first + n), format: .png)
                tick?()
            }
        }

        public func finish() throws -> ComponentManifest {
            try AtomicFile.write(Array((lines.joined(separator: "\n") + "\n").utf8), to: output + "/files.csv")
            var outputs = ["processing/files": "files.csv"]
            if writeImages { outputs["processing/images"] = "images" }
            let manifest = ComponentManifest(
                component: .processing, mode: .serve,
                inputs: [.init(role: "batch", path: batch, files: inputs.items.count, sha256: inputs.contentHash)],
                outputs: outputs, parameters: ["image_size": "\(imageSize)", "images_written": "\(writeImages)"], rejected: inputs.rejected,
                droplineVersion: DroplineVersion.current, startedAt: started, finishedAt: ComponentRun.now(), outcome: "succeeded")
            try manifest.write(to: output)
            return manifest
        }
    }
}

extension AlgorithmComponent {
    /// The algorithm in serve mode, a chunk at a time: predictions.csv.
    public final class ServeSession {
        let input: String, output: String, classifier: Classifier, started = ComponentRun.now()
        let role: String
        var lines = ["path,sha256,predicted,confidence,top1,p1,top2,p2,top3,p3"]
        var inputs = SessionInputs()

        /// `input` and `role` name what the predictions are of (a processed folder, or the batch).
        public init(classifier: Classifier, input: String, role: String, output: String) throws {
            try ComponentRun.prepare(output)
            self.classifier = classifier
            self.input = input
            self.role = role
            self.output = output
        }

        public func add(_ items: [ImageCollection.Item], predictions: [Prediction]) {
            inputs.add(items, rejected: [])
            for (item, p) in zip(items, predictions) {
                var fields = [item.path, item.sha256, p.label, String(format: "%.6f", p.confidence)]
                for t in p.top { fields += [t.label, String(format: "%.6f", t.probability)] }
                while fields.count < 10 { fields.append("") }
                lines.append(fields.map(CSV.field).joined(separator: ","))
            }
        }

        public func finish(model: String) throws -> ComponentManifest {
            try AtomicFile.write(Array((lines.joined(separator: "\n") + "\n").utf8), to: output + "/predictions.csv")
            let manifest = ComponentManifest(
                component: .algorithm, mode: .serve,
                inputs: [.init(role: role, path: input, files: inputs.items.count, sha256: inputs.contentHash)],
                outputs: ["algorithm/predictions": "predictions.csv"],
                parameters: ["model": model, "model_content_sha256": classifier.contentHash],
                rejected: [], droplineVersion: DroplineVersion.current, startedAt: started, finishedAt: ComponentRun.now(), outcome: "succeeded")
            try manifest.write(to: output)
            return manifest
        }
    }
}

extension MonitoringComponent {
    /// Monitoring in serve mode, a chunk at a time: drift.json.
    public final class ServeSession {
        let batch: String, artifacts: String, output: String, monitor: DriftMonitor, started = ComponentRun.now()
        let quality: DataQualityBaseline?
        /// The limits the batch's data quality is checked with (the baseline's own when nil).
        public var qualityLimits: QualityLimits?
        var features = DriftFeatures()
        /// The images' facts, parallel to `features.items` (which also hold their paths and hashes).
        var facts: [ImageFacts] = []

        /// `quality`: the model version's data-quality baseline, nil when it has none (the batch is
        /// then not checked, and its quality.json says so).
        public init(monitor: DriftMonitor, quality: DataQualityBaseline?, batch: String, artifacts: String, output: String) throws {
            try ComponentRun.requireFolder(batch, "batch")
            try ComponentRun.prepare(output)
            self.monitor = monitor
            self.quality = quality
            self.batch = batch
            self.artifacts = artifacts
            self.output = output
        }

        /// `images` at the monitoring side (`Preprocessing.monitoringSide`), with the files' `facts`
        /// for the data-quality check; `probabilities`: the model's softmax on exactly these images,
        /// when the caller has it. Returns the images' outlier scores.
        public func add(_ items: [ImageCollection.Item], images: [RGBImage], facts: [ImageFacts], rejected: [Rejection],
                        probabilities: [Double]? = nil) throws -> [Double] {
            precondition(items.count == facts.count, "\(items.count) items for \(facts.count) facts")
            self.facts += facts
            return try monitor.add(images, items: items, rejected: rejected, probabilities: probabilities, to: &features)
        }

        /// The drift report and the data-quality report, written as drift.json and quality.json.
        public func finish() throws -> (ComponentManifest, DriftReport) {
            try finishBoth().0
        }

        public func finishBoth() throws -> ((ComponentManifest, DriftReport), QualityReport) {
            let name = (batch as NSString).lastPathComponent
            let report = monitor.check(features, name: name)
            try SnakeCaseJSON.write(report, to: output + "/drift.json")
            let checked = quality?.check(batch: name, facts: facts, paths: features.items.map(\.path), sha256s: features.items.map(\.sha256),
                                         refused: features.rejected.map(\.path), limits: qualityLimits)
                ?? QualityReport.unchecked(batch: name, images: facts.count, refused: features.rejected.count)
            try SnakeCaseJSON.write(checked, to: output + "/" + MonitoringComponent.qualityReportFile)
            let inputs = SessionInputs(items: features.items, rejected: features.rejected)
            let manifest = ComponentManifest(
                component: .monitoring, mode: .serve,
                inputs: [.init(role: "batch", path: batch, files: inputs.items.count, sha256: inputs.contentHash)],
                outputs: ["monitoring/drift": "drift.json", "monitoring/quality": MonitoringComponent.qualityReportFile],
                parameters: ["artifacts": artifacts, "artifacts_sha256": monitor.contentHash, "drift": "\(report.drift)",
                             "quality_sha256": quality?.contentHash ?? "", "quality_violations": quality == nil ? "not checked" : "\(checked.violations.count)"],
                rejected: inputs.rejected, droplineVersion: DroplineVersion.current, startedAt: started,
                finishedAt: ComponentRun.now(), outcome: "succeeded")
            try manifest.write(to: output)
            return ((manifest, report), checked)
        }
    }
}

extension ExplainabilityComponent {
    /// Explainability, a chunk at a time: the budget's images are chosen as they pass
    /// (`ExplanationPicker`, keeping only the chosen ones' prepared images) and explained at the end.
    public final class Session {
        struct Candidate {
            var item: ImageCollection.Item
            var prepared: RGBImage
            var prediction: Prediction
            var offer: ExplanationOffer
        }

        let component: ExplainabilityComponent, mode: ComponentMode, images: String, output: String, budget: ExplanationBudget
        let explainer: Explainer, started = ComponentRun.now()
        var picker: ExplanationPicker<Candidate>
        var inputs = SessionInputs()

        public init(_ component: ExplainabilityComponent, mode: ComponentMode, classifier: Classifier, images: String, budget: ExplanationBudget,
                    output: String) throws {
            try ComponentRun.requireFolder(images, "images")
            picker = try ExplanationPicker(budget: budget, seed: component.seed)
            try ComponentRun.prepare(output)
            explainer = try Explainer(classifier: classifier)
            explainer.steps = component.steps
            explainer.method = component.method
            explainer.baseline = component.baseline
            explainer.adaptive = component.adaptive
            explainer.passesPerImage = component.passesPerImage
            self.component = component
            self.mode = mode
            self.images = images
            self.budget = budget
            self.output = output
        }

        /// `prepared` at the model's input, with the model's predictions for them; `outlierScores`
        /// from the drift check when there is one. (A merge of shards, `finish(adopting:)`, gives only
        /// the items, for the manifest's inputs: `record`.)
        public func add(_ items: [ImageCollection.Item], prepared: [RGBImage], predictions: [Prediction], outlierScores: [Double]?,
                        rejected: [Rejection]) {
            let first = indexOffset + inputs.items.count
            inputs.add(items, rejected: rejected)
            for n in items.indices {
                let offer = ExplanationOffer(index: first + n, path: items[n].path, confidence: predictions[n].confidence, outlierScore: outlierScores?[n])
                picker.offer(index: offer.index, path: offer.path, confidence: offer.confidence, outlierScore: offer.outlierScore) {
                    Candidate(item: items[n], prepared: prepared[n], prediction: predictions[n], offer: offer)
                }
            }
        }

        /// Where this session's images start in the batch (a shard of a batch: the images before its
        /// own); the budget's draws and the explanations' seeds go by batch position.
        public var indexOffset = 0
        /// Name the files of each explanation by the image's batch position (`000042.png`) instead of
        /// its rank among the chosen: a shard's explanations keep their names when merged.
        public var stemsByPosition = false
        /// What the budget chose, with what it chose them by, once `finish` has run (a shard's record,
        /// so that the merge re-chooses among the shards' choices: `finish(adopting:)`).
        public private(set) var chosenOffers: [ExplanationOffer] = []

        public func finish() throws -> ComponentManifest {
            try FileManager.default.createDirectory(atPath: output + "/explanations", withIntermediateDirectories: true)
            let chosen = try picker.chosen()
            chosenOffers = chosen.map(\.payload.offer)
            let candidates = chosen.map { chosen in
                Explainer.Candidate(prepared: chosen.payload.prepared, prediction: chosen.payload.prediction, path: chosen.payload.item.path,
                                    sha256: chosen.payload.item.sha256, seed: component.seed &+ UInt64(chosen.index),
                                    stem: stemsByPosition ? Self.stem(chosen.index) : nil)
            }
            let explanations = try explainer.explainAll(candidates, folder: output + "/explanations")
            return try finish(explanations)
        }

        /// The batch's explanations from its shards' (each explained its own budget's choice with
        /// `stemsByPosition`): the budget chooses again among the shards' choices, which gives the
        /// batch's own choice (every key is the image's alone, so each of the batch's top K is in its
        /// shard's top K), and their files are moved here. The session was given every shard's images
        /// (with empty `prepared`: nothing is explained again).
        public func finish(adopting shards: [(folder: String, offers: [ExplanationOffer])]) throws -> ComponentManifest {
            let folder = output + "/explanations"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            var merged = try ExplanationPicker<(folder: String, offer: ExplanationOffer)>(budget: budget, seed: component.seed)
            for shard in shards {
                for offer in shard.offers {
                    merged.offer(index: offer.index, path: offer.path, confidence: offer.confidence, outlierScore: offer.outlierScore) { (shard.folder, offer) }
                }
            }
            let explanations = try merged.chosen().map { chosen -> Explanation in
                let stem = Self.stem(chosen.index), from = chosen.payload.folder + "/explanations/"
                let explanation = try SnakeCaseJSON.read(Explanation.self, from: from + stem + ".json")
                for name in [stem + ".json", explanation.heatmap] + (explanation.attribution.map { [$0] } ?? []) {
                    try? FileManager.default.removeItem(atPath: folder + "/" + name)  // a merge run again after a crash
                    try FileManager.default.moveItem(atPath: from + name, toPath: folder + "/" + name)
                }
                return explanation
            }
            return try finish(explanations)
        }

        /// The images a merge of shards stands for (nothing is offered: the shards chose).
        public func record(_ items: [ImageCollection.Item], rejected: [Rejection]) {
            inputs.add(items, rejected: rejected)
        }

        static func stem(_ index: Int) -> String { String(format: "%06d", index + 1) }

        func finish(_ explanations: [Explanation]) throws -> ComponentManifest {
            try SnakeCaseJSON.write(explanations, to: output + "/explanations/explanations.json")
            let manifest = ComponentManifest(
                component: .explainability, mode: mode,
                inputs: [.init(role: mode == .train ? "validation" : "batch", path: images, files: inputs.items.count, sha256: inputs.contentHash)],
                outputs: ["explainability/explanations": "explanations"],
                parameters: ["model_content_sha256": explainer.classifier.contentHash, "budget": budget.description,
                             "steps": "\(component.steps)", "method": component.method.rawValue,
                             "adaptive": component.adaptive ? (component.method.isNested
                                ? "refined while the delta is at or above \(explainer.tolerance), within \(component.passesPerImage) points per image"
                                : "twice the steps for the worst deltas at or above \(explainer.tolerance), within \(component.passesPerImage) passes per image") : "no",
                             "baseline": component.baseline.rawValue, "seed": "\(component.seed)", "explained": "\(explanations.count)"],
                rejected: inputs.rejected, droplineVersion: DroplineVersion.current, startedAt: started,
                finishedAt: ComponentRun.now(), outcome: "succeeded")
            try manifest.write(to: output)
            return manifest
        }
    }
}

/// An image the explanation budget was offered, with what it is chosen by (its batch position, its
/// confidence, its outlier score): a shard's choices, for the merge to choose among.
public struct ExplanationOffer: Codable, Sendable, Equatable {
    public var index: Int
    public var path: String
    public var confidence: Double
    public var outlierScore: Double?
}
