import Logging
import DriftStatistics
import DroplineSupport
public import Explainability
import Foundation
import Imaging
public import Modeling
import Monitoring
import Rules
import Store
public import FolderWatch
import JSONFiles

extension FrozenBatch {
    /// The batch as a scan counted it (the daemon's queue and the serve run both freeze through this,
    /// so their content hashes agree).
    public static func capture(folder: String, snapshot: BatchSnapshot) throws -> FrozenBatch {
        try capture(folder: folder, listing: snapshot.files.keys.map { ($0, snapshot.special[$0]) })
    }
}

/// What the daemon queued a batch for: its content hash and the marker its producers write.
public struct QueuedBatch: Sendable {
    public var contentSha256: String
    public var marker: String
    public init(contentSha256: String, marker: String) {
        self.contentSha256 = contentSha256
        self.marker = marker
    }
}

/// A queued batch whose content changed before its job ran: not served (its new content is queued
/// when it settles).
public struct BatchSuperseded: Error, CustomStringConvertible, Sendable {
    public var folder: String
    public init(folder: String) { self.folder = folder }
    public var description: String {
        "\(folder) changed since it was queued; this content is not served, the new content is served once it settles"
    }
}

/// The four serve components of a run, opened on its staging folder with a model version's model,
/// drift artifacts and data-quality baseline, and the root's thresholds; fed one chunk at a time.
final class ServeSessions {
    let staging: String, modelFolder: String
    let classifier: Classifier
    let preparations: [Preprocessing]
    let processing: ProcessingComponent.ServeSession
    let algorithm: AlgorithmComponent.ServeSession
    let monitoring: MonitoringComponent.ServeSession
    let explaining: ExplainabilityComponent.Session

    init(_ pipelines: Pipelines, model: Pipelines.ModelRow, batch folder: String, staging: String, budget: ExplanationBudget) throws {
        let root = pipelines.root, configuration = pipelines.configuration
        self.staging = staging
        modelFolder = root.path + "/" + model.folder + "/model"
        // the model and the drift artifacts are loaded and verified once; every component uses them
        classifier = try Classifier(model: modelFolder)
        let artifacts = root.path + "/" + model.folder + "/drift"
        let monitor = try DriftMonitor(artifacts: artifacts, model: classifier)
        // the root's thresholds, when dropline.yaml sets them, over the ones fitted with the artifacts
        if let p = configuration.thresholds.driftPValue { monitor.thresholds.pValue = p }
        if let d = configuration.thresholds.driftMinimumStatistic { monitor.thresholds.minimumStatistic = d }
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let side = classifier.preprocessing.imageSize, monitoringSide = Preprocessing.monitoringSide(side)
        preparations = side == monitoringSide ? [.serving(side)] : [.serving(side), .serving(monitoringSide)]
        processing = try ProcessingComponent.ServeSession(ProcessingComponent(imageSize: side), batch: folder, output: staging + "/processing",
                                                          writeImages: pipelines.keepProcessedImages)
        algorithm = try AlgorithmComponent.ServeSession(classifier: classifier, input: folder, role: "batch", output: staging + "/algorithm")
        let quality = try DataQualityBaseline.load(root.path + "/" + model.folder + "/" + MonitoringComponent.qualityFolder)
        monitoring = try MonitoringComponent.ServeSession(monitor: monitor, quality: quality, batch: folder, artifacts: artifacts, output: staging + "/monitoring")
        monitoring.qualityLimits = configuration.qualityLimits(over: quality?.constraints.limits)
        var explainability = ExplainabilityComponent()
        if let steps = pipelines.explanationSteps {
            explainability.steps = steps
            explainability.method = .gaussLegendre
            explainability.adaptive = false
        }
        explaining = try ExplainabilityComponent.Session(explainability, mode: .serve, classifier: classifier, images: folder,
                                                         budget: budget, output: staging + "/explainability")
    }

    /// One chunk through the four components (each file read, hashed and decoded once by the caller).
    /// Returns the chunk's predictions.
    @discardableResult
    func add(_ chunk: FrozenChunk, clock: inout StageClock) throws -> [Prediction] {
        clock.lap(.processing)  // reading, hashing, decoding, resizing
        let model = chunk.images[0], monitored = chunk.images[preparations.count - 1]
        try processing.add(chunk.items, images: model, rejected: chunk.rejected)
        clock.lap(.processing)
        let (predictions, probabilities) = try classifier.classify(model)
        algorithm.add(chunk.items, predictions: predictions)
        clock.lap(.algorithm)
        let scores = try monitoring.add(chunk.items, images: monitored, facts: chunk.facts, rejected: chunk.rejected,
                                        probabilities: preparations.count == 1 ? probabilities : nil)
        clock.lap(.monitoring)
        explaining.add(chunk.items, prepared: model, predictions: predictions, outlierScores: scores, rejected: chunk.rejected)
        clock.lap(.explainability)
        return predictions
    }
}

/// The batch-inference pipeline: the four components in serve mode on a batch, and its drift flag.
extension Pipelines {

    /// Runs the batch-inference pipeline on a batch folder with the champion model. Returns the run
    /// id and the drift decision.
    ///
    /// The batch is frozen first (`FrozenBatch`: every file's path, size and hash), and every component
    /// reads exactly that snapshot, written as `batch.json` in the run folder. With `queued` (the
    /// daemon's job), a batch whose content is no longer the one queued is not served
    /// (`BatchSuperseded`: its new content is queued when it settles).
    @discardableResult
    public func infer(batch given: String, budget: ExplanationBudget? = nil, queued: QueuedBatch? = nil) throws -> (run: String, drift: Bool) {
        // every path recorded (predictions, drift, explanations, the run pages' originals) is absolute:
        // a batch named relative to this process's directory means nothing to the next reader
        let folder = given.hasPrefix("/") ? given : FileManager.default.currentDirectoryPath + "/" + given
        guard let champion = try champion() else {
            throw ComponentError("there is no champion model yet; train one with `dropline train \(root.path) --stage <stage>`")
        }
        let listing = Self.listing(folder, marker: queued?.marker ?? "_READY")
        let batchName = (folder as NSString).lastPathComponent
        let runID = Index.newRunID()
        let meta: Logger.Metadata = ["run": "\(runID)", "batch": "\(batchName)"]
        let name = "\(runID)-serve-\(Self.safe(batchName))"
        let staging = root.staging + "/" + name
        let started = Index.now()
        try startRun(id: runID, kind: .serve, subject: batchName, modelVersion: champion.version)
        return try guarded(run: runID, staging: staging) {
            let serving = try ServeSessions(self, model: champion, batch: folder, staging: staging, budget: budget ?? .outliers(8))
            logger.info("serving \(batchName) (\(listing.count) file(s)): processing, predicting, checking drift", metadata: meta)
            let progress = self.progress("serving", listing.count, "images")
            // One pass: each file read, hashed and decoded once, prepared at the model's side and the
            // drift monitor's (the same image when they are equal, and then the model's softmax is the
            // softmax detector's input too), a chunk at a time so memory does not grow with the batch.
            // The batch is frozen by that same read (batch.json: every file's path, size and hash),
            // so every component saw exactly the bytes it records.
            var clock = StageClock()
            let frozen = try FrozenBatch.freezing(folder: folder, listing: listing, preparations: serving.preparations, progress: progress) { chunk in
                try serving.add(chunk, clock: &clock)
            }
            progress?.finish()
            if let queued, frozen.contentSha256 != queued.contentSha256 {
                throw BatchSuperseded(folder: root.relative(folder))
            }
            try SnakeCaseJSON.write(frozen, to: staging + "/batch.json")
            FaultInjection.point("infer-after-processing")
            return try publishServe(serving, run: runID, name: name, batch: batchName, folder: folder, model: champion, started: started, clock: &clock) {
                logger.info("explaining", metadata: meta)
                return try serving.explaining.finish()
            }
        }
    }

    /// Ends a serve run whose sessions have seen the whole batch: finishes the components (the
    /// explanations by `explain`), writes the run's manifest, publishes and indexes the run, and
    /// raises its drift and data-quality flags.
    func publishServe(_ serving: ServeSessions, run runID: String, name: String, batch batchName: String, folder: String, model: ModelRow,
                      started: String, clock: inout StageClock, extraSeconds: [String: Double] = [:],
                      explain: () throws -> ComponentManifest) throws -> (run: String, drift: Bool) {
        let meta: Logger.Metadata = ["run": "\(runID)", "batch": "\(batchName)"]
        let p = try serving.processing.finish()
        clock.lap(.processing)
        let a = try serving.algorithm.finish(model: serving.modelFolder)
        clock.lap(.algorithm)
        let ((m, report), qualityReport) = try serving.monitoring.finishBoth()
        clock.lap(.monitoring)
        let e = try explain()
        clock.lap(.explainability)
        var manifest = RunManifest(runId: runID, kind: "serve", subject: batchName, modelVersion: model.version, components: [p, a, m, e],
                                   droplineVersion: DroplineVersion.current, startedAt: started, finishedAt: Index.now(), outcome: "succeeded")
        // a sharded run's: the shard tasks' time per component, and the merge's
        manifest.seconds = clock.seconds.merging(extraSeconds, uniquingKeysWith: +)
        try publishAndIndex(manifest, staging: serving.staging, name: name, faults: ("infer-after-run-published", "infer-after-index"))
        if !qualityReport.passed {
            logger.warning("\(batchName): \(qualityReport.reason)", metadata: meta)
            try writeDataQualityFlag(batch: batchName, folder: folder, run: runID, version: model.version, report: qualityReport)
        }
        if report.drift { try writeDriftFlag(batch: batchName, folder: folder, run: runID, version: model.version, report: report) }
        return (runID, report.drift)
    }

    /// The batch folder's files as the inbox scanner counts them (finished files, no marker, no junk;
    /// links and special files as entries, with what they are).
    static func listing(_ folder: String, marker: String) -> [(relative: String, special: String?)] {
        let snapshot = InboxScanner(marker: marker).snapshot(folder)
        return snapshot.files.keys.map { ($0, snapshot.special[$0]) }
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
        var flagged = flag
        flagged.estimatedAccuracy = report.estimate?.accuracy
        flagged.estimatedAccuracyDrop = report.estimate?.accuracyDrop
        let path = try FlagFiles.write(flagged, kind: "drift", name: FlagFiles.name(batch: batch, batchPath: located.batchPath), in: root)
        try index.recordFlag(kind: .drift, path: root.relative(path), subject: batch)
    }

    /// flags/data_quality/<batch>.json, written atomically: the batch broke its data-quality
    /// constraints. The default rules report it and do not retrain.
    func writeDataQualityFlag(batch: String, folder: String, run: String, version: Int, report: QualityReport) throws {
        let located = productionLocation(folder)
        let flag = DataQualityFlag(batch: batch, stage: located.stage, batchPath: located.batchPath, run: run, modelVersion: version,
                                   reason: report.reason, violations: report.violations.map { .init($0) }, createdAt: Index.now())
        try FileManager.default.createDirectory(atPath: root.flags(FlagKind.dataQuality.rawValue), withIntermediateDirectories: true)
        let path = try FlagFiles.write(flag, kind: FlagKind.dataQuality.rawValue, name: FlagFiles.name(batch: batch, batchPath: located.batchPath), in: root)
        try index.recordFlag(kind: .dataQuality, path: root.relative(path), subject: batch)
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
}
