import DroplineSupport
import Foundation
import Logging
import Modeling
import Pipeline
import Rules
import Store
import SystemFiles
import JSONFiles

/// How the daemon runs the pipelines of its jobs: in its own process, or as Slurm jobs.
public enum Executor: Sendable, Equatable {
    case inProcess
    /// `partition` from `--partition` (over dropline.yaml's `slurm.partition`).
    case slurm(partition: String?)
}

/// The Slurm executor's settings: dropline.yaml's `slurm:` section, with `--partition` over it.
struct SlurmSettings: Sendable {
    var partition: String?
    var trainingPartition: String?
    var trainingGres: String?
    var shardImages = 500
    var arrayWidth: Int?
    var resubmissions = 2
    var cpusPerTask = 1
    var timeLimit: String?
    var executable: String
    /// Seconds between looks at the jobs' states.
    var pollSeconds = 1.0

    init(_ configuration: RootConfiguration.Slurm, partition: String?) {
        let c = configuration
        self.partition = partition ?? c.partition
        trainingPartition = c.trainingPartition ?? self.partition
        trainingGres = c.trainingGres
        shardImages = c.shardImages ?? shardImages
        arrayWidth = c.arrayWidth
        resubmissions = c.resubmissions ?? resubmissions
        cpusPerTask = c.cpusPerTask ?? cpusPerTask
        timeLimit = c.timeLimit
        executable = c.executable ?? ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
    }
}

/// A Slurm job of a run that ended without doing its work and is not submitted again: cancelled
/// (`scancel`), or failed more often than `slurm.resubmissions` allows. The run is failed with it.
struct SlurmJobsEnded: Error, CustomStringConvertible {
    var description: String
}

/// Runs the daemon's pipelines as Slurm jobs. A serve run: the batch is planned in the daemon
/// (`Pipelines.serveSharded`: frozen, the run started, the plan in its staging folder), its shards
/// are one job array (`dropline shard run`, processing, the algorithm, monitoring's per-image work
/// and explainability per shard), and the merge (`dropline shard merge`: the drift and data-quality
/// checks on the whole batch, the one run folder, publishing and indexing) is a job after it with
/// `--dependency=afterok`. The daemon watches the jobs with squeue and records each Slurm job and its
/// state in the index (`dropline status` shows them):
///
/// - every shard completed and the merge completed: the run is served, once;
/// - shards that failed without an error of their own (a node lost, a preemption, a time limit):
///   once the array has ended, the shards without output are submitted again as a new array with a
///   new merge, at most `resubmissions` times; a merge lost the same way is submitted again alone;
/// - a shard that failed with an error (the batch changed: it is served again when it settles; an
///   unreadable plan) or a failed merge: the run fails with that error, nothing is submitted again;
/// - a job cancelled (`scancel`): the run's other jobs are cancelled and, once none of its tasks is
///   left on a node (a cancelled task is COMPLETING while its processes end), the run fails, recorded as
///   cancelled; a merge cancelled after it published the run leaves a served run, completed from its
///   manifest. Never a half-published run: the merge publishes by one rename.
///
/// A training is one job on `training_partition` (with `--gres` when `training_gres` is set) running
/// `dropline train` with the recipe the daemon chose; its run and model version are found in the
/// index when it completes.
final class SlurmExecutor: @unchecked Sendable {
    let settings: SlurmSettings
    let slurm = SlurmCommands()
    let log: Logger

    init(settings: SlurmSettings, log: Logger) {
        self.settings = settings
        self.log = log
    }

    // MARK: Serving

    func infer(_ pipelines: Pipelines, job: Job, batch folder: String, queued: QueuedBatch?) throws -> (run: String, drift: Bool) {
        cancelLeftovers(pipelines, job: job)
        return try pipelines.serveSharded(batch: folder, queued: queued, shardImages: settings.shardImages) { plan in
            try supervise(pipelines, job: job, plan: plan)
        }
    }

    /// A job run again (its daemon died, or its lease expired) cancels what its earlier attempt left
    /// running on the cluster: that attempt's run was recovered (failed, or completed when published).
    func cancelLeftovers(_ pipelines: Pipelines, job: Job) {
        guard job.attempts > 1, let earlier = try? pipelines.index.clusterJobs(job: job.id) else { return }
        let running = earlier.filter { !$0.ended }
        guard !running.isEmpty else { return }
        log.info("job \(job.id): cancelling the Slurm jobs of its earlier attempt: \(running.map(\.clusterJobId).joined(separator: ", "))")
        slurm.cancel(running.map(\.clusterJobId))
        for j in running { try? pipelines.index.updateClusterJob(j.clusterJobId, state: "CANCELLED", detail: "cancelled: the daemon's job was taken over") }
    }

    static func quoted(_ word: String) -> String { "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'" }

    func script(_ words: [String]) -> String {
        """
        #!/bin/sh
        # submitted by dropline watch --executor slurm
        export OMP_NUM_THREADS=\(settings.cpusPerTask)
        exec \(([settings.executable] + words).map(Self.quoted).joined(separator: " "))\(words.last == "--task" ? " \"$SLURM_ARRAY_TASK_ID\"" : "")

        """
    }

    func common(name: String, logs: String, log file: String, partition: String?) -> [String] {
        var options = ["--job-name=" + name, "--output=" + logs + "/" + file, "--chdir=/", "--no-requeue", "--cpus-per-task=\(settings.cpusPerTask)",
                       "--export=ALL"]
        if let partition { options.append("--partition=" + partition) }
        if let limit = settings.timeLimit { options.append("--time=" + limit) }
        return options
    }

    /// Submits the shard array for `shards` and the merge after it; records both.
    func submitRound(_ pipelines: Pipelines, job: Job, plan: ShardPlan, shards: [Int], round: Int) throws -> (array: String, merge: String) {
        let staging = pipelines.shardStaging(plan), logs = staging + "/slurm"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let root = pipelines.root.path
        var indices = SlurmCommands.arrayIndices(shards)
        if let width = settings.arrayWidth { indices += "%\(width)" }
        let array = try slurm.submit(common(name: "dropline-shards-\(plan.runId)", logs: logs, log: "shard-%A_%a.log", partition: settings.partition)
                                        + ["--array=" + indices],
                                     script: script(["shard", "run", root, "--run", plan.name, "--task"]))
        try pipelines.index.recordClusterJob(ClusterJob(clusterJobId: array, jobId: job.id, runId: plan.runId, step: "shards", state: "PENDING",
                                                        detail: "\(shards.count) shard(s): \(indices)", attempt: round))
        let merge = try submitMerge(pipelines, job: job, plan: plan, after: array, attempt: round)
        log.info("run \(plan.runId): submitted shard array \(array) (tasks \(indices)) and merge \(merge) after it", metadata: ["job": "\(job.id)", "run": "\(plan.runId)"])
        return (array, merge)
    }

    func submitMerge(_ pipelines: Pipelines, job: Job, plan: ShardPlan, after array: String?, attempt: Int) throws -> String {
        let logs = pipelines.shardStaging(plan) + "/slurm"
        var options = common(name: "dropline-merge-\(plan.runId)", logs: logs, log: "merge-%j.log", partition: settings.partition)
        if let array { options += ["--dependency=afterok:" + array, "--kill-on-invalid-dep=yes"] }
        let merge = try slurm.submit(options, script: script(["shard", "merge", pipelines.root.path, "--run", plan.name]))
        try pipelines.index.recordClusterJob(ClusterJob(clusterJobId: merge, jobId: job.id, runId: plan.runId, step: "merge", state: "PENDING",
                                                        detail: array.map { "after \($0)" }, attempt: attempt))
        return merge
    }

    /// Why a shard task failed on its own account (`shard run` writes `shards/NNNN.error.json`).
    static func shardErrors(_ staging: String) -> [(shard: Int, error: ShardFailure)] {
        FileSystem.names(in: staging + "/shards").compactMap { name -> (Int, ShardFailure)? in
            guard name.hasSuffix(".error.json"), let n = Int(name.prefix(4)),
                  let failure = try? SnakeCaseJSON.read(ShardFailure.self, from: staging + "/shards/" + name) else { return nil }
            return (n, failure)
        }
    }

    func supervise(_ pipelines: Pipelines, job: Job, plan: ShardPlan) throws {
        let staging = pipelines.shardStaging(plan)
        var round = 1, mergeAttempts = 1
        /// The merge was submitted again without a dependency (the array's end no longer concerns it).
        var mergeAlone = false
        var (array, merge) = try submitRound(pipelines, job: job, plan: plan, shards: Array(plan.shards.indices), round: round)
        var seen: [String: String] = [:]
        var unanswered: Date?
        while true {
            usleep(UInt32(settings.pollSeconds * 1_000_000))
            guard let tasks = try look([array, merge], since: &unanswered, run: "run \(plan.runId)") else { continue }
            let shardTasks = tasks.filter { $0.id.hasPrefix(array + "_") }
            let mergeTask = tasks.first { $0.id == merge }
            record(pipelines, array: array, tasks: shardTasks, merge: merge, mergeTask: mergeTask, seen: &seen)
            let mergeState = mergeTask?.state ?? "GONE"
            if mergeState == "COMPLETED" { return }
            let arrayEnded = shardTasks.allSatisfy { ClusterJob.endedStates.contains($0.state) } && !shardTasks.contains { $0.id.contains("[") }
            if let cancelled = shardTasks.first(where: { $0.state == "CANCELLED" }) {
                cancelAndSettle([array, merge], run: "run \(plan.runId)")
                try? pipelines.index.updateClusterJob(merge, state: "CANCELLED", detail: "cancelled with its shards")
                throw SlurmJobsEnded(description: "cancelled: Slurm task \(cancelled.id) of run \(plan.runId) was cancelled (scancel); the run's other jobs were cancelled and nothing was published")
            }
            if let failure = Self.shardErrors(staging).first {
                cancelAndSettle([array, merge], run: "run \(plan.runId)")
                if failure.error.superseded { throw BatchSuperseded(folder: pipelines.root.relative(plan.batchFolder)) }
                throw SlurmJobsEnded(description: "shard \(failure.shard) failed: \(failure.error.error)")
            }
            // the merge ended the run itself (failed it with its error, or published it): the index says which
            if mergeState == "FAILED" { return }
            if mergeState == "GONE", try pipelines.index.run(plan.runId)?.status != .running { return }
            if mergeState == "CANCELLED" && arrayEnded && shardTasks.allSatisfy({ $0.state == "COMPLETED" }) {
                throw SlurmJobsEnded(description: "cancelled: the merge \(merge) of run \(plan.runId) was cancelled (scancel)")
            }
            if ["NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "TIMEOUT", "OUT_OF_MEMORY"].contains(mergeState) && arrayEnded {
                guard mergeAttempts <= settings.resubmissions else {
                    throw SlurmJobsEnded(description: "the merge of run \(plan.runId) ended \(mergeState) \(mergeAttempts) time(s); not submitted again (slurm.resubmissions is \(settings.resubmissions))")
                }
                mergeAttempts += 1
                log.warning("run \(plan.runId): merge \(merge) ended \(mergeState) on \(mergeTask?.nodes ?? "?"); submitting it again", metadata: ["job": "\(job.id)"])
                merge = try submitMerge(pipelines, job: job, plan: plan, after: nil, attempt: mergeAttempts)
                continue
            }
            // by Slurm's word, not the files': a running merge removes the shards' outputs it has merged
            guard arrayEnded, !mergeAlone, shardTasks.contains(where: { $0.state != "COMPLETED" }) else { continue }
            let missing = Pipelines.incompleteShards(staging: staging, plan: plan)
            if missing.isEmpty {
                // a task lost after its output was complete: the merge has all it needs, but its
                // dependency failed, so it runs again without one
                slurm.cancel([merge])
                try? pipelines.index.updateClusterJob(merge, state: "CANCELLED", detail: "its dependency failed after every shard's output was complete; submitted again alone")
                merge = try submitMerge(pipelines, job: job, plan: plan, after: nil, attempt: mergeAttempts)
                mergeAlone = true
                continue
            }
            // shards lost without an error of their own: the array has ended, so its merge never runs
            slurm.cancel([merge])
            try? pipelines.index.updateClusterJob(merge, state: "CANCELLED", detail: "its shards \(SlurmCommands.arrayIndices(missing)) failed; submitted again")
            let lost = shardTasks.filter { $0.state != "COMPLETED" }.map { "\($0.id) \($0.state)\($0.nodes.isEmpty ? "" : " on \($0.nodes)")" }
            guard round <= settings.resubmissions else {
                throw SlurmJobsEnded(description: "shard(s) \(SlurmCommands.arrayIndices(missing)) of run \(plan.runId) failed \(round) time(s) (last: \(lost.joined(separator: ", "))); not submitted again (slurm.resubmissions is \(settings.resubmissions))")
            }
            round += 1
            log.warning("run \(plan.runId): shard task(s) \(lost.joined(separator: ", ")); submitting shard(s) \(SlurmCommands.arrayIndices(missing)) again (round \(round))",
                        metadata: ["job": "\(job.id)", "run": "\(plan.runId)"])
            (array, merge) = try submitRound(pipelines, job: job, plan: plan, shards: missing, round: round)
            mergeAlone = false
        }
    }

    /// How long a cancelled run's tasks may take to leave the nodes (slurmd signals them, waits
    /// KillWait, then kills them) before the run is failed anyway.
    static let settling = 120.0

    /// Cancels `ids` and waits until no task of theirs is still on a node: a cancelled task is
    /// COMPLETING while its processes end, and could still write into the run's staging folder,
    /// which the failed run removes.
    func cancelAndSettle(_ ids: [String], run: String) {
        slurm.cancel(ids)
        let start = Date()
        while Date().timeIntervalSince(start) < Self.settling {
            guard let tasks = try? slurm.tasks(ids) else {
                log.warning("\(run): cannot see its cancelled Slurm jobs; failing it without waiting for them to end")
                return
            }
            let lingering = tasks.filter { !ClusterJob.endedStates.contains($0.state) }
            if lingering.isEmpty { return }
            usleep(UInt32(settings.pollSeconds * 1_000_000))
        }
        log.warning("\(run): its cancelled Slurm jobs did not end within \(Int(Self.settling)) s; failing it anyway")
    }

    /// How long squeue may fail in a row (slurmctld restarting, a network cut) before the run gives up.
    static let patience = 300.0

    /// One look at the jobs' states; nil while squeue fails (the jobs go on without the daemon
    /// watching), an error once it has failed for `patience` seconds (the jobs are then cancelled,
    /// if Slurm hears it).
    func look(_ ids: [String], since unanswered: inout Date?, run: String) throws -> [SlurmCommands.Task]? {
        do {
            let tasks = try slurm.tasks(ids)
            unanswered = nil
            return tasks
        } catch let error as SlurmError {
            if unanswered == nil { log.warning("\(run): cannot see the Slurm jobs (\(error)); looking again every \(settings.pollSeconds) s for up to \(Int(Self.patience)) s") }
            let first = unanswered ?? Date()
            unanswered = first
            guard Date().timeIntervalSince(first) < Self.patience else {
                slurm.cancel(ids)
                throw SlurmJobsEnded(description: "Slurm has not answered for \(Int(Self.patience)) s (\(error)); \(run) is given up")
            }
            return nil
        }
    }

    /// Records the array's and the merge's states when they change: the array as one row (its
    /// tasks counted by state), the merge as its own.
    func record(_ pipelines: Pipelines, array: String, tasks: [SlurmCommands.Task], merge: String, mergeTask: SlurmCommands.Task?, seen: inout [String: String]) {
        var counts: [String: Int] = [:]
        for t in tasks { counts[t.state, default: 0] += 1 }
        let summary = counts.keys.sorted().map { "\(counts[$0]!) \($0.lowercased())" }.joined(separator: ", ")
        let state = counts.keys.contains("RUNNING") ? "RUNNING" : counts.count == 1 ? counts.keys.first! : counts.isEmpty ? "GONE"
            : counts.keys.contains("PENDING") ? "RUNNING" : counts.keys.first { $0 != "COMPLETED" } ?? "COMPLETED"
        let nodes = Set(tasks.map(\.nodes).filter { !$0.isEmpty }).sorted().joined(separator: ",")
        let detail = "tasks: " + summary + (nodes.isEmpty ? "" : "; nodes " + nodes)
        if seen[array] != state + detail {
            seen[array] = state + detail
            try? pipelines.index.updateClusterJob(array, state: state, detail: detail)
        }
        let m = mergeTask.map { ($0.state, $0.reason == "None" ? ($0.nodes.isEmpty ? nil : "on " + $0.nodes) : $0.reason) } ?? ("GONE", nil)
        if seen[merge] != m.0 + (m.1 ?? "") {
            seen[merge] = m.0 + (m.1 ?? "")
            try? pipelines.index.updateClusterJob(merge, state: m.0, detail: m.1)
        }
    }

    // MARK: Training

    func train(_ pipelines: Pipelines, job: Job, stage: String, configuration: TrainingConfiguration) throws -> (run: String, version: Int) {
        cancelLeftovers(pipelines, job: job)
        let since = Index.now()
        let folder = pipelines.root.staging + "/slurm-train-job\(job.id)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try SnakeCaseJSON.write(configuration, to: folder + "/recipe.json")
        var options = common(name: "dropline-train-\(stage)", logs: pipelines.root.logs, log: "slurm-train-%j.log", partition: settings.trainingPartition)
        if let gres = settings.trainingGres { options.append("--gres=" + gres) }
        let id = try slurm.submit(options, script: script(["shard", "train", pipelines.root.path, "--stage", stage, "--recipe", folder + "/recipe.json"]))
        try pipelines.index.recordClusterJob(ClusterJob(clusterJobId: id, jobId: job.id, runId: nil, step: "train", state: "PENDING",
                                                        detail: "stage \(stage) on \(settings.trainingPartition ?? "the default partition")"
                                                            + (settings.trainingGres.map { " with --gres=\($0)" } ?? "")))
        log.info("training stage \(stage) as Slurm job \(id)", metadata: ["job": "\(job.id)"])
        var last = ""
        var unanswered: Date?
        while true {
            usleep(UInt32(settings.pollSeconds * 1_000_000))
            guard let tasks = try look([id], since: &unanswered, run: "training job \(id)") else { continue }
            let task = tasks.first
            let state = task?.state ?? "GONE"
            if state != last {
                last = state
                try? pipelines.index.updateClusterJob(id, state: state, detail: task.map { $0.nodes.isEmpty ? $0.reason : "on " + $0.nodes })
            }
            guard ClusterJob.endedStates.contains(state) else { continue }
            if let trained = try pipelines.index.trainedRun(stage: stage, since: since) { return trained }
            throw SlurmJobsEnded(description: "the training of stage \(stage), Slurm job \(id), ended \(state) without a model (its log: logs/slurm-train-\(id).log)")
        }
    }
}
