import Logging
import DriftStatistics
import DroplineSupport
public import Explainability
import Foundation
import Imaging
import Modeling
import Monitoring
import Store

/// The batch-inference pipeline: the four components in serve mode on a batch, and its drift flag.
extension Pipelines {

    /// Runs the batch-inference pipeline on a batch folder with the champion model. Returns the run
    /// id and the drift decision.
    @discardableResult
    public func infer(batch folder: String, budget: ExplanationBudget? = nil) throws -> (run: String, drift: Bool) {
        guard let champion = try champion() else {
            throw ComponentError("there is no champion model yet; train one with `dropline train \(root.path) --stage <stage>`")
        }
        let batchName = (folder as NSString).lastPathComponent
        let runID = Index.newRunID()
        let meta: Logger.Metadata = ["run": "\(runID)", "batch": "\(batchName)"]
        let name = "\(runID)-serve-\(Self.safe(batchName))"
        let staging = root.staging + "/" + name
        let started = Index.now()
        let modelFolder = root.path + "/" + champion.folder + "/model"
        try index.startRun(id: runID, kind: .serve, subject: batchName, modelVersion: champion.version)
        do {
            let classifier = try Classifier(model: modelFolder)
            logger.info("processing \(batchName)", metadata: meta)
            let p = try ProcessingComponent(imageSize: classifier.preprocessing.imageSize).serve(batch: folder, output: staging + "/processing")
            FaultInjection.point("infer-after-processing")
            logger.info("predicting", metadata: meta)
            let a = try AlgorithmComponent().serve(processed: staging + "/processing", model: modelFolder, output: staging + "/algorithm")
            logger.info("checking drift", metadata: meta)
            let (m, report) = try MonitoringComponent().serve(batch: folder, artifacts: root.path + "/" + champion.folder + "/drift",
                                                              model: modelFolder, output: staging + "/monitoring")
            logger.info("explaining", metadata: meta)
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
        let path = try FlagFiles.write(flag, kind: "drift", name: FlagFiles.name(batch: batch, batchPath: located.batchPath), in: root)
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
}
