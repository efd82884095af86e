import DroplineSupport
public import Explainability
import Foundation
import Imaging
import Logging
public import Modeling
import Monitoring
import Store
import SystemFiles
import Synchronization
import JSONFiles

/// # A batch served in shards
///
/// The batch-inference pipeline split for a batch scheduler (the Slurm executor): the daemon plans
/// the run (`serveSharded`: the batch frozen, the run started, its staging folder holding the plan),
/// each shard task runs processing, the algorithm, monitoring's per-image work and explainability on
/// its slice of the batch (`runShard`, in any process on any machine that sees the root; it never
/// touches the index), and the merge (`mergeShards`, after every shard succeeded) runs the drift
/// and data-quality checks on the whole batch, merges everything into the one run folder, and
/// publishes and indexes the run as the in-process pipeline does. The outputs are the in-process
/// pipeline's: the same predictions (each image is classified alone), the same drift features
/// (JSON keeps each Double exactly) and so the same drift decision, and the same explained images
/// (`ExplanationPicker` keys are per image, so the batch's top K are among the shards' top Ks).
/// Explanations are seeded and named by the image's position in the batch.

/// What the shard tasks and the merge of a sharded serve run read: `shards/plan.json` in its staging folder.
public struct ShardPlan: Codable, Sendable, Equatable {
    public struct Slice: Codable, Sendable, Equatable {
        /// Entries `start..<end` of the frozen batch (batch.json).
        public var start: Int
        public var end: Int
    }
    public var runId: String
    /// The run folder's name (under staging now, under outputs/runs once published).
    public var name: String
    public var batchFolder: String
    public var batchName: String
    public var modelVersion: Int
    /// The model version's folder relative to the root (the model the run was planned with, even if
    /// the champion changes before the shards run).
    public var modelFolder: String
    public var budget: String
    public var shards: [Slice]
    public var startedAt: String

    public static let file = "shards/plan.json"

    /// Slices of at most `size` entries over `count`, as even as they can be.
    public static func slices(count: Int, size: Int) -> [Slice] {
        guard count > 0 else { return [Slice(start: 0, end: 0)] }
        let n = (count + max(1, size) - 1) / max(1, size), base = count / n, extra = count % n
        var start = 0
        return (0..<n).map { i in
            let end = start + base + (i < extra ? 1 : 0)
            defer { start = end }
            return Slice(start: start, end: end)
        }
    }
}

/// What one shard task leaves for the merge: `shards/NNNN/state.json`, written last (its presence
/// means the shard is complete).
struct ShardState: Codable {
    var items: [ImageCollection.Item]
    var rejected: [Rejection]
    var predictions: [Prediction]
    var facts: [ImageFacts]
    var features: DriftFeatures
    var offers: [ExplanationOffer]
    var seconds: [String: Double]
    var host: String
}

/// A shard or a merge that cannot do its work: the batch changed, the plan is unreadable, a shard's
/// output is missing. Its text names the file and what to do; the executor records it as the
/// run's error and does not submit the task again.
public struct ShardError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// The batch's files are not the ones planned: the batch is served again when it settles.
    public var superseded = false
    public init(_ description: String, superseded: Bool = false) {
        self.description = description
        self.superseded = superseded
    }
}

extension Pipelines {

    /// The sharded serve run's staging folder of a plan.
    public func shardStaging(_ plan: ShardPlan) -> String { root.staging + "/" + plan.name }

    /// Serves a batch in shards: freezes the batch (every file hashed; `BatchSuperseded` when it is
    /// no longer the content `queued`), starts the run, writes the plan (slices of at most
    /// `shardImages` files) into its staging folder, and hands it to `execute`, which runs the
    /// shards and the merge (a batch scheduler's jobs) and returns when they have ended. The run is
    /// then whatever the merge made of it: published and indexed (its drift decision returned), or
    /// failed. An error of `execute` fails the run and removes its staging, unless the merge had
    /// published it (then it is completed from its manifest, and served).
    public func serveSharded(batch given: String, queued: QueuedBatch?, shardImages: Int, budget: ExplanationBudget = .outliers(8),
                             execute: (ShardPlan) throws -> Void) throws -> (run: String, drift: Bool) {
        let folder = given.hasPrefix("/") ? given : FileManager.default.currentDirectoryPath + "/" + given
        guard let champion = try champion() else {
            throw ComponentError("there is no champion model yet; train one with `dropline train \(root.path) --stage <stage>`")
        }
        let frozen = try FrozenBatch.capture(folder: folder, listing: Self.listing(folder, marker: queued?.marker ?? "_READY"))
        if let queued, frozen.contentSha256 != queued.contentSha256 { throw BatchSuperseded(folder: root.relative(folder)) }
        let batchName = (folder as NSString).lastPathComponent
        let runID = Index.newRunID()
        let plan = ShardPlan(runId: runID, name: "\(runID)-serve-\(Self.safe(batchName))", batchFolder: folder, batchName: batchName,
                             modelVersion: champion.version, modelFolder: champion.folder, budget: budget.description,
                             shards: ShardPlan.slices(count: frozen.entries.count, size: shardImages), startedAt: Index.now())
        let staging = shardStaging(plan)
        try startRun(id: runID, kind: .serve, subject: batchName, modelVersion: champion.version)
        return try guarded(run: runID, staging: staging) {
            try FileManager.default.createDirectory(atPath: staging + "/shards", withIntermediateDirectories: true)
            try SnakeCaseJSON.write(frozen, to: staging + "/batch.json")
            try SnakeCaseJSON.write(plan, to: staging + "/" + ShardPlan.file)
            logger.info("serving \(batchName) (\(frozen.entries.count) file(s)) in \(plan.shards.count) shard(s)", metadata: ["run": "\(runID)", "batch": "\(batchName)"])
            do { try execute(plan) } catch {
                // a merge cancelled after it published the run: the run is complete, only its rows may be missing
                if let folder = publishedFolder(runID), let manifest = try? Self.readManifest(folder), manifest.outcome == "succeeded" {
                    if try index.run(runID)?.status == .running { try complete(manifest: manifest, folder: folder) }
                } else {
                    throw error
                }
            }
            return try shardedOutcome(runID)
        }
    }

    /// The published folder of a run, if it was published.
    func publishedFolder(_ runID: String) -> String? {
        FileSystem.names(in: root.runs).first { $0.hasPrefix(runID + "-") }.map { root.runs + "/" + $0 }
    }

    /// A sharded run's end as the index has it once its jobs ended.
    func shardedOutcome(_ runID: String) throws -> (run: String, drift: Bool) {
        guard let run = try index.run(runID) else { throw ShardError("run \(runID) is not in the index") }
        switch run.status {
        case .succeeded:
            guard let folder = publishedFolder(runID) else { throw ShardError("run \(runID) is indexed but its folder is not in outputs/runs") }
            return (runID, try Self.readDriftReport(run: folder).drift)
        case .failed:
            throw ShardError(run.error ?? "run \(runID) failed")
        default:
            throw ShardError("run \(runID)'s jobs ended without publishing it (the merge did not run)")
        }
    }

    /// The plan of a sharded run's staging folder.
    public static func readPlan(staging: String) throws -> ShardPlan {
        do { return try SnakeCaseJSON.read(ShardPlan.self, from: staging + "/" + ShardPlan.file) } catch {
            throw ShardError("\(staging)/\(ShardPlan.file) cannot be read (\(error)); the run's staging folder is incomplete or was removed by a recovery: its batch is served again by the daemon's next attempt")
        }
    }

    static func shardFolder(_ staging: String, _ task: Int) -> String { staging + "/shards/" + String(format: "%04d", task) }

    /// Runs shard `task` of a planned run (`dropline shard run`): reads its slice of the frozen batch
    /// (each file checked against its planned hash), classifies it, gathers its drift features and
    /// outlier scores, explains its budget's choice, and writes it all into `shards/NNNN/` of the
    /// staging folder: into a fresh `NNNN.partial` first, renamed when complete, so a task killed
    /// midway (a node lost, a job cancelled) leaves nothing the merge could take for its output.
    /// Touches no index. A task run again replaces the earlier output.
    public func runShard(staging: String, task: Int) throws {
        do { try serveShard(staging: staging, task: task) } catch {
            // the task's own failure (not a lost node, which writes nothing): the executor does not submit it again
            let failure = ShardFailure(error: "\(error)", superseded: (error as? ShardError)?.superseded ?? false, host: ProcessInfo.processInfo.hostName)
            try? SnakeCaseJSON.write(failure, to: Self.shardFolder(staging, task) + ".error.json")
            throw error
        }
    }

    func serveShard(staging: String, task: Int) throws {
        let plan = try Self.readPlan(staging: staging)
        guard plan.shards.indices.contains(task) else {
            throw ShardError("task \(task) is not a shard of run \(plan.runId) (it has \(plan.shards.count): 0 to \(plan.shards.count - 1))")
        }
        let frozen = try SnakeCaseJSON.read(FrozenBatch.self, from: staging + "/batch.json")
        let slice = plan.shards[task]
        let planned = Array(frozen.entries[slice.start..<slice.end])
        // a folder of this process's own: a task submitted again may start while a lost one still runs
        let done = Self.shardFolder(staging, task), partial = done + ".partial-\(ProcessInfo.processInfo.hostName)-\(getpid())-\(UUID().uuidString.prefix(8))"
        let model = ModelRow(version: plan.modelVersion, folder: plan.modelFolder)
        let serving = try ServeSessions(self, model: model, batch: plan.batchFolder, staging: partial, budget: try ExplanationBudget(parsing: plan.budget))
        serving.explaining.indexOffset = slice.start
        serving.explaining.stemsByPosition = true
        var clock = StageClock(), predictions: [Prediction] = []
        let progress = self.progress("shard \(task)", planned.count, "images")
        let read = try FrozenBatch.freezing(folder: plan.batchFolder, listing: planned.map { ($0.relative, $0.special) }, preparations: serving.preparations,
                                            progress: progress) { chunk in
            predictions += try serving.add(chunk, clock: &clock)
        }
        progress?.finish()
        if read.entries != planned {
            let changed = zip(planned, read.entries).first { $0 != $1 }?.0 ?? planned.last
            throw ShardError("\(plan.batchFolder)/\(changed?.relative ?? "") changed since the batch was planned; this content is not served, the new content is served once it settles",
                             superseded: true)
        }
        _ = try serving.explaining.finish()
        clock.lap(.explainability)
        let state = ShardState(items: serving.monitoring.features.items, rejected: serving.monitoring.features.rejected, predictions: predictions,
                               facts: serving.monitoring.facts, features: serving.monitoring.features, offers: serving.explaining.chosenOffers,
                               seconds: clock.seconds, host: ProcessInfo.processInfo.hostName)
        try SnakeCaseJSON.write(state, to: partial + "/state.json")
        try? FileManager.default.removeItem(atPath: done)
        do { try FileManager.default.moveItem(atPath: partial, toPath: done) } catch {
            // another task of this shard finished at the same moment: its output is this one's
            guard FileSystem.entryType(done + "/state.json") != nil else { throw error }
            try? FileManager.default.removeItem(atPath: partial)
        }
    }

    /// The shards of a planned run that have not completed (no `shards/NNNN/state.json`).
    public static func incompleteShards(staging: String, plan: ShardPlan) -> [Int] {
        plan.shards.indices.filter { FileSystem.entryType(shardFolder(staging, $0) + "/state.json") == nil }
    }

    /// The merge of a sharded run (`dropline shard merge`, after every shard task succeeded): the
    /// drift and data-quality checks on the whole batch's features, the components' outputs and
    /// manifests over the whole batch (the shards' results in batch order), the explanations
    /// chosen among the shards', then the run published, indexed and its flags raised, as the
    /// in-process pipeline ends. Refuses a run that is no longer running (a recovery failed it) and a
    /// shard without output, naming it. On an error the run fails and its staging is removed.
    @discardableResult
    public func mergeShards(staging: String) throws -> (run: String, drift: Bool) {
        let plan = try Self.readPlan(staging: staging)
        let run = try index.run(plan.runId)
        guard run?.status == .running else {
            throw ShardError("run \(plan.runId) is no longer running (\(run.map { $0.error ?? "it is \($0.status.rawValue)" } ?? "it is not in the index")); nothing is merged")
        }
        inFlight.withLock { _ = $0.insert(plan.runId) }
        return try guarded(run: plan.runId, staging: staging) {
            var clock = StageClock()
            let missing = Self.incompleteShards(staging: staging, plan: plan)
            guard missing.isEmpty else {
                throw ShardError("shard(s) \(missing.map(String.init).joined(separator: ", ")) of run \(plan.runId) have no output in \(staging)/shards/; their tasks did not complete")
            }
            let states = try plan.shards.indices.map { try SnakeCaseJSON.read(ShardState.self, from: Self.shardFolder(staging, $0) + "/state.json") }
            let model = ModelRow(version: plan.modelVersion, folder: plan.modelFolder)
            let serving = try ServeSessions(self, model: model, batch: plan.batchFolder, staging: staging, budget: try ExplanationBudget(parsing: plan.budget))
            for state in states {
                try serving.processing.add(state.items, images: [], rejected: state.rejected)
                serving.algorithm.add(state.items, predictions: state.predictions)
                serving.monitoring.features.append(state.features)
                serving.monitoring.facts += state.facts
                serving.explaining.record(state.items, rejected: state.rejected)
            }
            var seconds: [String: Double] = [:]
            for state in states { seconds.merge(state.seconds, uniquingKeysWith: +) }
            logger.info("merging \(states.count) shard(s) of \(plan.batchName)", metadata: ["run": "\(plan.runId)", "batch": "\(plan.batchName)"])
            let shards = plan.shards.indices.map { (folder: Self.shardFolder(staging, $0) + "/explainability", offers: states[$0].offers) }
            let outcome = try publishServe(serving, run: plan.runId, name: plan.name, batch: plan.batchName, folder: plan.batchFolder, model: model,
                                           started: plan.startedAt, clock: &clock, extraSeconds: seconds) {
                let manifest = try serving.explaining.finish(adopting: shards)
                // the shards' own outputs were merged (and a lost task's partial folder is of no use): only
                // the plan stays, as the run's record of its split
                for name in FileSystem.names(in: staging + "/shards") where name != "plan.json" {
                    try? FileManager.default.removeItem(atPath: staging + "/shards/" + name)
                }
                return manifest
            }
            return outcome
        }
    }
}

/// What a shard task that failed on its own account leaves (`shards/NNNN.error.json`): the executor
/// records its error and does not submit the task again.
public struct ShardFailure: Codable, Sendable {
    public var error: String
    /// The batch's files changed since it was planned (it is served again when it settles).
    public var superseded: Bool
    public var host: String
}
