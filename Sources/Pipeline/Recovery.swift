import Logging
import DriftStatistics
import DroplineSupport
import Explainability
import Foundation
import Imaging
import Modeling
import Monitoring
import Store

/// Recovery from a process that died: runs left running, published runs not yet indexed, flags not yet raised.
extension Pipelines {
    /// Marks runs left "running" by a process that died as failed and removes their staging folders.
    /// A run whose folder was already published (it died between the rename and the index) is
    /// completed from its manifest instead.
    public func recover() throws {
        for run in try index.interruptedRuns() {
            let published = try FileManager.default.contentsOfDirectory(atPath: root.runs).first { $0.hasPrefix(run.id + "-") }
            if let published, let manifest = try? Self.readManifest(root.runs + "/" + published), manifest.outcome == "succeeded" {
                logger.info("completing run \(run.id) from its published manifest", metadata: ["run": "\(run.id)"])
                try complete(manifest: manifest, folder: root.runs + "/" + published)
                if manifest.kind == "serve", try raiseMissingDriftFlag(run: run.id) { logger.info("run \(run.id) found drift: raised its flag", metadata: ["run": "\(run.id)"]) }
            } else {
                logger.info("run \(run.id) was interrupted; marking it failed", metadata: ["run": "\(run.id)"])
                try index.failRun(id: run.id, error: "interrupted: the process stopped before the run was published")
            }
        }
        for leftover in try root.removeStagingLeftovers() { logger.info("removed unpublished staging folder \(leftover)") }
    }

    /// A serve run that found drift writes its flag after the run is indexed: a process that died in
    /// between (or a run that `recover()` completed from its manifest) left none. Writes it now, unless
    /// one was written since the run started. Returns whether it wrote one.
    public func raiseMissingDriftFlag(run runID: String) throws -> Bool {
        guard let served = try index.servedRun(id: runID), served.drift == true, let batchPath = served.batchPath else { return false }
        let batchFolder = root.path + "/" + batchPath
        let flag = root.relative(FlagFiles.path(root, kind: "drift", name: FlagFiles.name(batch: served.subject, batchPath: productionLocation(batchFolder).batchPath)))
        guard try index.flagCount(kind: .drift, path: flag, since: served.startedAt) == 0 else { return false }
        let report = try Self.readDriftReport(run: root.path + "/" + served.folder)
        try writeDriftFlag(batch: served.subject, folder: batchFolder, run: runID, version: served.modelVersion, report: report)
        return true
    }
}
