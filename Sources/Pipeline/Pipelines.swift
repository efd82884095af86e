import DriftStatistics
import DroplineSupport
public import Explainability
import Foundation
import Imaging
public import Modeling
import Monitoring
public import Store

/// What a run did, written as `manifest.json` at the top of its published folder.
public struct RunManifest: Codable, Sendable {
    public var runId: String
    public var kind: String
    public var subject: String
    public var modelVersion: Int?
    public var components: [ComponentManifest]
    public var droplineVersion: String
    public var startedAt: String
    public var finishedAt: String
    public var outcome: String
    /// Training runs: the champion of the time evaluated on this run's validation set (what the
    /// promotion policy compares the new model with).
    public var baseline: Baseline? = nil

    public struct Baseline: Codable, Sendable {
        public var version: Int
        public var accuracy: Double
    }
}

/// Both pipelines, on a Dropline root.
public final class Pipelines {
    public let root: DroplineRoot
    public let index: any DroplineIndex
    public var policy = PromotionPolicy()
    public var log: @Sendable (String) -> Void = { _ in }
    public var trainingReport: @Sendable (TrainingEvent) -> Void = { _ in }

    /// The pipelines on `root` with its SQLite index.
    public convenience init(root: DroplineRoot) throws {
        self.init(root: root, index: try Index(path: root.index))
    }

    /// The pipelines on `root` with the given index (any backend).
    public init(root: DroplineRoot, index: any DroplineIndex) {
        self.root = root
        self.index = index
    }

    /// Marks runs left "running" by a process that died as failed and removes their staging folders.
    /// A run whose folder was already published (it died between the rename and the index) is
    /// completed from its manifest instead.
    public func recover() throws {
        for run in try index.interruptedRuns() {
            let published = try FileManager.default.contentsOfDirectory(atPath: root.runs).first { $0.hasPrefix(run.id + "-") }
            if let published, let manifest = try? Self.readManifest(root.runs + "/" + published), manifest.outcome == "succeeded" {
                log("completing run \(run.id) from its published manifest")
                try complete(manifest: manifest, folder: root.runs + "/" + published)
                if manifest.kind == "serve", try raiseMissingDriftFlag(run: run.id) { log("run \(run.id) found drift: raised its flag") }
            } else {
                log("run \(run.id) was interrupted; marking it failed")
                try index.failRun(id: run.id, error: "interrupted: the process stopped before the run was published")
            }
        }
        for leftover in try root.removeStagingLeftovers() { log("removed unpublished staging folder \(leftover)") }
    }

    // MARK: - Training

    /// Trains on `inbox/training/<stage>` and publishes a new model version. Returns the run id and version.
    @discardableResult
    public func train(stage: String, configuration: TrainingConfiguration) throws -> (run: String, version: Int) {
        let stageFolder = try checkedStageFolder(stage)
        let runID = Index.newRunID()
        let name = "\(runID)-train-\(Self.safe(stage))"
        let staging = root.staging + "/" + name
        let started = Index.now()
        try index.startRun(id: runID, kind: .train, subject: stage)
        do {
            log("processing")
            var processing = ProcessingComponent(imageSize: configuration.imageSize)
            processing.seed = configuration.seed
            let p = try processing.train(stage: stageFolder, output: staging + "/processing")
            FaultInjection.point("train-after-processing")
            log("training (\(configuration.architecture))")
            var algorithm = AlgorithmComponent()
            algorithm.report = trainingReport
            let a = try algorithm.train(processed: staging + "/processing", configuration: configuration, output: staging + "/algorithm")
            let baseline = championBaseline(validation: stageFolder + "/validation")
            log("fitting drift monitoring")
            let m = try MonitoringComponent().train(images: stageFolder + "/train", holdout: stageFolder + "/validation",
                                                    model: staging + "/algorithm/model", output: staging + "/monitoring")
            log("explaining a validation sample")
            let e = try ExplainabilityComponent().run(mode: .train, images: stageFolder + "/validation", model: staging + "/algorithm/model",
                                                      budget: .sample(8), output: staging + "/explainability")
            // From choosing the version number to indexing it, one training at a time (concurrent
            // daemon jobs, or `dropline train` beside the daemon, would otherwise pick the same number).
            let version = try root.withLock("models") {
                let version = try nextVersion()
                let manifest = RunManifest(runId: runID, kind: "train", subject: stage, modelVersion: version, components: [p, a, m, e],
                                           droplineVersion: DroplineVersion.current, startedAt: started, finishedAt: Index.now(), outcome: "succeeded",
                                           baseline: baseline)
                try Self.writeManifest(manifest, to: staging)
                try root.publish(staging: staging, as: root.runs + "/" + name)
                FaultInjection.point("train-after-run-published")
                try complete(manifest: manifest, folder: root.runs + "/" + name)
                FaultInjection.point("train-after-index")
                return version
            }
            return (runID, version)
        } catch {
            try? index.failRun(id: runID, error: "\(error)")
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// `inbox/training/<stage>`, after checking that the stage is a safe name (a flag's `stage` is
    /// whatever the flag's writer put there) and that the folder, its train/ and validation/ and
    /// their class folders are real folders inside the training inbox once every link is resolved.
    func checkedStageFolder(_ stage: String) throws -> String {
        do { try SafeName.check(stage, what: "stage") } catch { throw ComponentError("\(error); no training folder is built from it") }
        let stageFolder = root.trainingInbox + "/" + stage
        for folder in [stageFolder, stageFolder + "/train", stageFolder + "/validation"] {
            guard FileSystem.entryType(folder) != nil else {
                throw ComponentError("stage '\(stage)' needs \(root.relative(stageFolder))/train/<class>/ and validation/<class>/")
            }
            guard FileSystem.isRealDirectory(folder), FileSystem.isInside(folder, root.trainingInbox) else {
                throw ComponentError("\(root.relative(folder)) is not a real folder inside inbox/training/ (a link, or a special file); links are never followed there")
            }
        }
        for split in ["train", "validation"] {
            for entry in FileSystem.names(in: stageFolder + "/" + split) where !entry.hasPrefix(".") {
                let path = stageFolder + "/" + split + "/" + entry
                if case .symbolicLink = FileSystem.entryType(path) {
                    throw ComponentError("\(root.relative(path)) is a link; class folders must be real folders inside the stage (links are never followed)")
                }
                if FileSystem.isRealDirectory(path), DropFolderJunk.reason(for: entry + "/x") == nil, let problem = SafeName.problem(entry, what: "class folder") {
                    throw ComponentError("\(root.relative(path)): \(problem); \(SafeName.remedy)")
                }
            }
        }
        return stageFolder
    }

    /// The champion's accuracy on a new model's validation set, or nil when there is no champion or
    /// it cannot be evaluated there (other classes): the policy then compares validation accuracies.
    func championBaseline(validation: String) -> RunManifest.Baseline? {
        guard let champion = try? champion() else { return nil }
        do {
            log("evaluating champion version \(champion.version) on the same validation set")
            let classifier = try Classifier(model: root.path + "/" + champion.folder + "/model")
            let dataset = try ImageFolderDataset(root: validation, preprocessing: classifier.preprocessing, classes: classifier.classes)
            return RunManifest.Baseline(version: champion.version, accuracy: try classifier.evaluate(dataset).accuracy)
        } catch {
            log("champion version \(champion.version) cannot be evaluated on \(root.relative(validation)) (\(error)); the policy will compare validation accuracies")
            return nil
        }
    }

    // MARK: - Serving

    /// Runs the batch-inference pipeline on a batch folder with the champion model. Returns the run
    /// id and the drift decision.
    @discardableResult
    public func infer(batch folder: String, budget: ExplanationBudget? = nil) throws -> (run: String, drift: Bool) {
        guard let champion = try champion() else {
            throw ComponentError("there is no champion model yet; train one with `dropline train \(root.path) --stage <stage>`")
        }
        let batchName = (folder as NSString).lastPathComponent
        let runID = Index.newRunID()
        let name = "\(runID)-serve-\(Self.safe(batchName))"
        let staging = root.staging + "/" + name
        let started = Index.now()
        let modelFolder = root.path + "/" + champion.folder + "/model"
        try index.startRun(id: runID, kind: .serve, subject: batchName, modelVersion: champion.version)
        do {
            let classifier = try Classifier(model: modelFolder)
            log("processing \(batchName)")
            let p = try ProcessingComponent(imageSize: classifier.preprocessing.imageSize).serve(batch: folder, output: staging + "/processing")
            FaultInjection.point("infer-after-processing")
            log("predicting")
            let a = try AlgorithmComponent().serve(processed: staging + "/processing", model: modelFolder, output: staging + "/algorithm")
            log("checking drift")
            let (m, report) = try MonitoringComponent().serve(batch: folder, artifacts: root.path + "/" + champion.folder + "/drift",
                                                              model: modelFolder, output: staging + "/monitoring")
            log("explaining")
            let chosen = budget ?? .drift(report: staging + "/monitoring/drift.json", count: 8)
            let e = try ExplainabilityComponent().run(mode: .serve, images: folder, model: modelFolder, budget: chosen, output: staging + "/explainability")
            let manifest = RunManifest(runId: runID, kind: "serve", subject: batchName, modelVersion: champion.version, components: [p, a, m, e],
                                       droplineVersion: DroplineVersion.current, startedAt: started, finishedAt: Index.now(), outcome: "succeeded")
            try Self.writeManifest(manifest, to: staging)
            try root.publish(staging: staging, as: root.runs + "/" + name)
            FaultInjection.point("infer-after-run-published")
            try complete(manifest: manifest, folder: root.runs + "/" + name)
            FaultInjection.point("infer-after-index")
            if report.drift { try writeDriftFlag(batch: batchName, folder: folder, run: runID, version: champion.version, report: report) }
            return (runID, report.drift)
        } catch {
            try? index.failRun(id: runID, error: "\(error)")
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// A serve run that found drift writes its flag after the run is indexed: a process that died in
    /// between (or a run that `recover()` completed from its manifest) left none. Writes it now, unless
    /// one was written since the run started. Returns whether it wrote one.
    public func raiseMissingDriftFlag(run runID: String) throws -> Bool {
        guard let served = try index.servedRun(id: runID), served.drift == true, let batchPath = served.batchPath else { return false }
        let flag = root.relative(FlagFiles.path(root, kind: "drift", batch: served.subject))
        guard try index.flagCount(kind: .drift, path: flag, since: served.startedAt) == 0 else { return false }
        let report = try Self.readDriftReport(run: root.path + "/" + served.folder)
        try writeDriftFlag(batch: served.subject, folder: root.path + "/" + batchPath, run: runID, version: served.modelVersion, report: report)
        return true
    }

    // MARK: - Index rows

    /// Writes a published run's rows from its manifest and files, in one transaction.
    func complete(manifest: RunManifest, folder: String) throws {
        var outputs: [String: String] = [:]
        for component in manifest.components {
            for (key, path) in component.outputs {
                outputs[key] = root.relative(folder + "/" + component.component.rawValue + "/" + path)
            }
        }
        // Inputs as each component saw them: a folder and the SHA-256 over its files' paths and hashes.
        let inputs = manifest.components.flatMap { component in
            component.inputs.map { RunInput(role: component.component.rawValue + "/" + $0.role, path: root.relative($0.path), sha256: $0.sha256) }
        }
        let relativeFolder = root.relative(folder)
        if manifest.kind == "train", let version = manifest.modelVersion {
            try publishModelVersion(version, from: folder)
            FaultInjection.point("train-after-model-published")
            let modelFolder = Self.versionName(version)
            let hash = String(decoding: try AtomicFile.read(root.models + "/" + modelFolder + "/model/content.sha256"), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let (description, _, _) = try ModelArtifact.load(root.models + "/" + modelFolder + "/model")
            let model = NewModel(version: version, folder: "outputs/models/" + modelFolder, contentSha256: hash, stage: manifest.subject,
                                 trainRun: manifest.runId, validationAccuracy: description.metrics.accuracy,
                                 baseline: manifest.baseline.map { ($0.version, $0.accuracy) })
            try index.completeTrainRun(id: manifest.runId, folder: relativeFolder, outputs: outputs, inputs: inputs, model: model,
                                       decide: policy.automatic ? { self.answer($0) } : nil)
        } else {
            try index.completeServeRun(id: manifest.runId, folder: relativeFolder, outputs: outputs, inputs: inputs,
                                       rows: try serveRows(manifest: manifest, folder: folder))
        }
    }

    /// Publishes outputs/models/vNNNN (the model and the drift artifacts fitted for it) from a
    /// published training run folder, unless it is already there (completion may be repeated after a crash).
    func publishModelVersion(_ version: Int, from runFolder: String) throws {
        let destination = root.models + "/" + Self.versionName(version)
        guard !FileManager.default.fileExists(atPath: destination) else { return }
        let staging = root.staging + "/" + Self.versionName(version)
        try? FileManager.default.removeItem(atPath: staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: runFolder + "/algorithm/model", toPath: staging + "/model")
        try FileManager.default.copyItem(atPath: runFolder + "/monitoring/artifacts", toPath: staging + "/drift")
        try root.publish(staging: staging, as: destination)
    }

    /// The promotion policy's answer for the registry (`PromotionPolicy.decide` on the index's values).
    func answer(_ question: PromotionQuestion) -> PromotionAnswer {
        let c = question.candidate
        let baseline = c.baselineVersion.flatMap { v in c.baselineAccuracy.map { PromotionPolicy.Baseline(version: v, accuracy: $0) } }
        let decision = policy.decide(candidate: PromotionPolicy.Candidate(version: c.version, accuracy: c.validationAccuracy, stage: c.stage),
                                     champion: question.champion.map { PromotionPolicy.Champion(version: $0.version, accuracy: $0.validationAccuracy) },
                                     baseline: baseline)
        return PromotionAnswer(promote: decision.promotes, reason: decision.reason)
    }

    /// The `promote` action of the rules: `default` applies the promotion policy to `version`,
    /// `always` promotes it, `never` leaves it a candidate. Returns what was decided.
    public func promote(version: Int, policy name: String, actor: String) throws -> String {
        let answer = try index.promote(version: version, actor: actor) { question in
            switch name {
            case "always": PromotionAnswer(promote: true, reason: "rules: policy always")
            case "never": PromotionAnswer(promote: false, reason: "policy never")
            default: self.answer(question)
            }
        }
        guard let answer else { return "version \(version) is already the champion" }
        switch name {
        case "always": return "promoted version \(version) (policy always)"
        case "never": return "kept version \(version) as candidate (policy never)"
        default: return answer.promote ? "promoted version \(version): \(answer.reason)" : "kept version \(version) as candidate: \(answer.reason)"
        }
    }

    /// The rows of a published serve run, read from its files.
    func serveRows(manifest: RunManifest, folder: String) throws -> ServeRows {
        let processing = manifest.components.first { $0.component == .processing }!
        let batchInput = processing.inputs[0]
        let processed = try ProcessedBatch(folder: folder + "/processing")
        var images = processed.entries.map { entry in
            ServeRows.Image(path: root.relative(entry.original), sha256: entry.sha256, bytes: Int(FileSystem.size(entry.original) ?? 0), outcome: "ok", reason: nil)
        }
        for r in processing.rejected {
            // a refused link or special file is never opened: no hash (zeros), its own size
            let regular = FileSystem.entryType(r.path) == .regular
            images.append(ServeRows.Image(path: root.relative(r.path),
                                          sha256: (regular ? try? SHA256.hash(file: r.path, links: .refuse) : nil) ?? String(repeating: "0", count: 64),
                                          bytes: regular ? Int(FileSystem.size(r.path) ?? 0) : 0, outcome: r.outcome, reason: r.reason))
        }
        var predictions: [ServeRows.Prediction] = []
        let rows = CSV.parse(String(decoding: try AtomicFile.read(folder + "/algorithm/predictions.csv"), as: UTF8.self)).dropFirst()
        for row in rows where row.count == 10 {
            let top = stride(from: 4, to: 10, by: 2).compactMap { i -> TopClass? in
                row[i].isEmpty ? nil : TopClass(label: row[i], probability: Double(row[i + 1]) ?? 0)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            predictions.append(ServeRows.Prediction(path: root.relative(row[0]), imageSha256: row[1], predicted: row[2], confidence: Double(row[3]) ?? 0,
                                                    top3: String(decoding: try encoder.encode(top), as: UTF8.self)))
        }
        let report = try Self.readDriftReport(run: folder)
        let results = report.detectors.flatMap { detector in
            detector.features.map { f in
                ServeRows.DriftResult(detector: detector.name, feature: f.feature, statistic: f.statistic, pValue: f.pValue,
                                      adjustedPValue: f.adjustedPValue, psi: f.psi, psiTier: f.psiTier.rawValue)
            }
        }
        let explanations = try SnakeCaseJSON.read([Explanation].self, from: folder + "/explainability/explanations/explanations.json").map { e in
            ServeRows.Explanation(path: root.relative(e.path), imageSha256: e.sha256, heatmap: root.relative(folder + "/explainability/explanations/" + e.heatmap),
                                  predicted: e.predicted, steps: e.steps, delta: e.delta, relativeDelta: e.relativeDelta)
        }
        return ServeRows(batchName: manifest.subject, batchFolder: root.relative(batchInput.path), batchSha256: batchInput.sha256,
                         batchImages: batchInput.files, landedAt: manifest.startedAt, images: images, predictions: predictions, drift: report.drift,
                         driftReason: report.reason, artifactsSha256: report.artifacts, batchSize: report.batchSize, referenceSize: report.referenceSize,
                         driftResults: results, explanations: explanations)
    }

    /// One of a prediction's top classes, as the index stores them (JSON).
    struct TopClass: Encodable {
        var label: String
        var probability: Double
    }

    /// The stage of a batch at `inbox/production/<stage>/<batch>` (a path relative to the root), and
    /// its path relative to inbox/: what flags carry so that rules retrain on the batch's stage.
    static func productionStage(_ relativePath: String) -> (stage: String, batchPath: String)? {
        let parts = relativePath.split(separator: "/").map(String.init)
        guard parts.count == 4, parts[0] == "inbox", parts[1] == "production" else { return nil }
        return (parts[2], parts[1...].joined(separator: "/"))
    }

    /// flags/drift/<batch>.json, written atomically: what the rules act on. `stage` is the stage
    /// folder of a batch under inbox/production/<stage>/ (what the default rules retrain on); a batch
    /// served from elsewhere has no stage, and the retrain rule then says so instead of guessing.
    func writeDriftFlag(batch: String, folder: String, run: String, version: Int, report: DriftReport) throws {
        // How many serve runs in a row, up to and including this one, found drift: for rules with
        // hysteresis (retrain only after two drifted batches in a row).
        let inARow = try index.driftStreak()
        let located = productionLocation(folder)
        let flag = DriftFlag(batch: batch, stage: located.stage, batchPath: located.batchPath, run: run, modelVersion: version, reason: report.reason,
                             detectors: report.detectors.map { .init(name: $0.name, drift: $0.drift, minimumAdjustedPValue: $0.minimumAdjustedPValue,
                                                                     maximumStatistic: $0.maximumStatistic) },
                             createdAt: Index.now(), batchesInARow: inARow)
        let path = try FlagFiles.write(flag, kind: "drift", batch: batch, in: root)
        try index.recordFlag(kind: .drift, path: root.relative(path), subject: batch)
    }

    /// Where a batch folder lies under inbox/production/: its stage (for `production/<stage>/<batch>`)
    /// and its path relative to inbox/, or neither for a folder elsewhere.
    func productionLocation(_ folder: String) -> (stage: String?, batchPath: String?) {
        let absolute = URL(fileURLWithPath: folder).standardizedFileURL.resolvingSymlinksInPath().path
        let rootPath = URL(fileURLWithPath: root.path).standardizedFileURL.resolvingSymlinksInPath().path
        guard absolute.hasPrefix(rootPath + "/") else { return (nil, nil) }
        let relative = String(absolute.dropFirst(rootPath.count + 1))
        if let located = Self.productionStage(relative) { return (located.stage, located.batchPath) }
        if relative.hasPrefix("inbox/production/") { return (nil, String(relative.dropFirst("inbox/".count))) }  // no stage folder
        return (nil, nil)
    }

    // MARK: - Helpers

    public struct ModelRow: Sendable {
        public var version: Int
        public var folder: String
    }

    public func champion() throws -> ModelRow? {
        try index.champion().map { ModelRow(version: $0.version, folder: $0.folder) }
    }

    func nextVersion() throws -> Int {
        let indexed = try index.highestModelVersion()
        let published = ((try? FileManager.default.contentsOfDirectory(atPath: root.models)) ?? [])
            .compactMap { $0.hasPrefix("v") ? Int($0.dropFirst()) : nil }.max() ?? 0
        return max(indexed, published) + 1  // (recover() runs first, so every published run is indexed)
    }

    static func versionName(_ version: Int) -> String { String(format: "v%04d", version) }

    /// A name safe as one path component.
    static func safe(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
    }

    static func writeManifest(_ manifest: RunManifest, to folder: String) throws {
        try SnakeCaseJSON.write(manifest, to: folder + "/manifest.json")
    }

    /// The drift decision of a published serve run folder.
    static func readDriftReport(run folder: String) throws -> DriftReport {
        try SnakeCaseJSON.read(DriftReport.self, from: folder + "/monitoring/drift.json")
    }

    static func readManifest(_ folder: String) throws -> RunManifest {
        try SnakeCaseJSON.read(RunManifest.self, from: folder + "/manifest.json")
    }
}
