import Logging
import DriftStatistics
import DroplineSupport
import Explainability
import Foundation
import Imaging
import Modeling
import Monitoring
import Store
import SystemFiles
import Synchronization
import JSONFiles

/// Recovery from a process that died: runs left running, published runs not yet indexed, flags not yet raised.
extension Pipelines {
    /// Recovers the work of owners that are gone (a process that died, a daemon whose lease
    /// expired): their runs left "running" are failed and their staging folders removed, or, when the
    /// folder was already published (it died between the rename and the index), completed from the
    /// manifest. Runs of owners that still live (a daemon beside a hand-run command, or the reverse)
    /// are never touched. Then `reconcilePublished()`.
    public func recover() throws {
        var keep = Set<String>()
        for run in try index.interruptedRuns() {
            let meta: Logger.Metadata = ["run": "\(run.id)"]
            if inFlight.withLock({ $0.contains(run.id) }) || (run.owner != nil && run.owner == owner?.id) {
                keep.insert(run.id)
                continue
            }
            if case .alive(let holder) = Owners.liveness(run.owner, in: root) {
                logger.info("run \(run.id) belongs to \(holder.command) on \(holder.host) (pid \(holder.pid)), which is running; left alone", metadata: meta)
                keep.insert(run.id)
                continue
            }
            let published = try FileManager.default.contentsOfDirectory(atPath: root.runs).first { $0.hasPrefix(run.id + "-") }
            if let published, let manifest = try? Self.readManifest(root.runs + "/" + published), manifest.outcome == "succeeded" {
                logger.info("completing run \(run.id) from its published manifest", metadata: meta)
                try complete(manifest: manifest, folder: root.runs + "/" + published)
                if manifest.kind == "serve", try raiseMissingDriftFlag(run: run.id) { logger.info("run \(run.id) found drift: raised its flag", metadata: meta) }
                if manifest.kind == "serve", try raiseMissingDataQualityFlag(run: run.id) {
                    logger.info("run \(run.id) found data-quality violations: raised their flag", metadata: meta)
                }
            } else {
                logger.info("run \(run.id) was interrupted (its owner is gone: \(Self.goneReason(run.owner, root))); marking it failed", metadata: meta)
                try index.failRun(id: run.id, error: "interrupted: the process stopped before the run was published")
            }
        }
        // staging folders of live owners' runs stay; model staging (vNNNN) is touched only under the lock that publishes models
        let names = FileSystem.names(in: root.staging)
        for name in names where !name.hasPrefix("v") && !keep.contains(where: { name.hasPrefix($0 + "-") }) {
            try FileManager.default.removeItem(atPath: root.staging + "/" + name)
            logger.info("removed unpublished staging folder \(name)")
        }
        try root.withLock("models") {
            for name in FileSystem.names(in: root.staging) where name.hasPrefix("v") {
                try FileManager.default.removeItem(atPath: root.staging + "/" + name)
                logger.info("removed unpublished staging folder \(name)")
            }
        }
        try reconcilePublished()
    }

    static func goneReason(_ owner: String?, _ root: DroplineRoot) -> String {
        if case .gone(let why) = Owners.liveness(owner, in: root) { return why }
        return "alive"
    }

    /// Published folders without their rows: a run folder whose manifest says it succeeded but whose
    /// row is failed, missing, or running under an owner that is gone (or this process, no longer
    /// working on it) is completed from the manifest; a model folder no indexed run accounts for is
    /// indexed from its training run, or moved to `outputs/.orphans/` when none names it. Afterwards
    /// every published folder has its row. Returns how many it completed.
    @discardableResult
    public func reconcilePublished() throws -> Int {
        var completed = 0
        for name in FileSystem.names(in: root.runs).sorted() {
            let parts = name.split(separator: "-", maxSplits: 2)
            guard parts.count == 3 else { continue }
            let runID = parts[0] + "-" + parts[1]
            guard !inFlight.withLock({ $0.contains(String(runID)) }) else { continue }
            let row = try index.run(String(runID))
            if row?.status == .succeeded { continue }
            if let row, row.status == .running, row.owner != owner?.id || row.owner == nil, Owners.liveness(row.owner, in: root).isAlive { continue }
            guard let manifest = try? Self.readManifest(root.runs + "/" + name), manifest.outcome == "succeeded", manifest.runId == runID else {
                logger.warning("outputs/runs/\(name) has no readable manifest of a succeeded run; it is left as it is (look at it, then remove it)")
                continue
            }
            let kind: RunKind = manifest.kind == "train" ? .train : .serve
            try index.reopenRun(id: manifest.runId, kind: kind, subject: manifest.subject, modelVersion: kind == .serve ? manifest.modelVersion : nil,
                                startedAt: manifest.startedAt, owner: owner?.id)
            logger.info("indexing published run \(manifest.runId) from its manifest (it was published but not indexed)", metadata: ["run": "\(manifest.runId)"])
            try root.withLock("models") { try complete(manifest: manifest, folder: root.runs + "/" + name) }
            if kind == .serve {
                _ = try raiseMissingDriftFlag(run: manifest.runId)
                _ = try raiseMissingDataQualityFlag(run: manifest.runId)
            }
            completed += 1
        }
        let indexed = Set(try index.models().map { ($0.folder as NSString).lastPathComponent })
        for name in FileSystem.names(in: root.models) where name.hasPrefix("v") && !indexed.contains(name) {
            // a model being published by a live training run is under the models lock
            try root.withLock("models") {
                guard try index.model(folder: "outputs/models/" + name) == nil, FileSystem.entryType(root.models + "/" + name) != nil else { return }
                let orphans = root.outputs + "/.orphans"
                try FileManager.default.createDirectory(atPath: orphans, withIntermediateDirectories: true)
                let destination = orphans + "/" + name + "-" + ISOTime.now().replacingOccurrences(of: ":", with: "")
                try FileManager.default.moveItem(atPath: root.models + "/" + name, toPath: destination)
                logger.warning("outputs/models/\(name) had no indexed training run; moved to \(root.relative(destination)) (no model version exists without its row)")
            }
        }
        return completed
    }

    /// A serve run that found drift writes its flag after the run is indexed: a process that died in
    /// between (or a run that `recover()` completed from its manifest) left none. Writes it now, unless
    /// one was written since the run started. Returns whether it wrote one.
    public func raiseMissingDriftFlag(run runID: String) throws -> Bool {
        guard let served = try index.servedRun(id: runID), served.drift == true,
              let batchFolder = try unraisedFlag(.drift, of: served) else { return false }
        let report = try Self.readDriftReport(run: root.path + "/" + served.folder)
        try writeDriftFlag(batch: served.subject, folder: batchFolder, run: runID, version: served.modelVersion, report: report)
        return true
    }

    /// The same for a serve run whose batch broke its data-quality constraints: its flag, written
    /// after the run is indexed, is raised now unless one was written since the run started.
    public func raiseMissingDataQualityFlag(run runID: String) throws -> Bool {
        guard let served = try index.servedRun(id: runID), let check = try index.qualityCheck(run: runID), !check.violations.isEmpty,
              let batchFolder = try unraisedFlag(.dataQuality, of: served) else { return false }
        let report = try SnakeCaseJSON.read(QualityReport.self, from: root.path + "/" + served.folder + "/monitoring/" + MonitoringComponent.qualityReportFile)
        try writeDataQualityFlag(batch: served.subject, folder: batchFolder, run: runID, version: served.modelVersion, report: report)
        return true
    }

    /// The batch folder of a served run whose flag of `kind` was not written since the run started
    /// (nil: it was, or the run's batch is not known).
    func unraisedFlag(_ kind: FlagKind, of served: ServedRun) throws -> String? {
        guard let batchPath = served.batchPath else { return nil }
        let batchFolder = root.path + "/" + batchPath
        let flag = root.relative(FlagFiles.path(root, kind: kind.rawValue,
                                                name: FlagFiles.name(batch: served.subject, batchPath: productionLocation(batchFolder).batchPath)))
        return try index.flagCount(kind: kind, path: flag, since: served.startedAt) == 0 ? batchFolder : nil
    }
}
