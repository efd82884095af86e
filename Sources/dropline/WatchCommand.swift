import ArgumentParser
import Daemon
import DroplineSupport
import Foundation
import Logging
import Modeling
import Pipeline
import Reports
import Rules
import Store
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "The daemon: watch the inbox and the flags, and act on them through <root>/rules.yaml.",
        discussion: """
        A production batch (a folder under inbox/production/, or inbox/production/<stage>/) is complete when \
        its marker file appears (default _READY, written last) or, without one, after --settle seconds with no \
        change. Each complete batch and each flag (flags/drift, flags/retrain, flags/quality) becomes a job in \
        the index's durable queue, run through the rules one at a time (--jobs N: N at once); a handled flag moves to flags/done/. \
        The same batch content is processed once. Inotify on local disks; polling on NFS, SMB/CIFS and FUSE \
        mounts, or with --poll. One daemon per root: the daemon holds the root's lease (<root>/.dropline-lease.json, \
        renewed every third of --lease-seconds); a second `watch` refuses and names the owner, and `watch --standby` waits \
        and takes over when the owner stops, dies, or does not renew its lease in time. A locked index or a full disk \
        makes the daemon degraded (shown by `dropline status`): the work stays queued and is retried with back-off. \
        SIGTERM or SIGINT stops it after the current step (a second one stops at once; \
        the next start cleans up). Logs go to standard error and <root>/logs/watch.log. A changed rules file is \
        reloaded; an invalid one is reported and the previous rules stay in force. \
        With --executor slurm, serve runs and trainings are submitted to Slurm instead of running in this process: \
        a batch is split into shards (dropline.yaml's slurm.shard_images, 500 by default) run as one job array, \
        with the merge (drift check, run folder, index) after it (--dependency=afterok); lost shards are submitted \
        again up to slurm.resubmissions times; trainings go to slurm.training_partition with slurm.training_gres \
        (docs/scale-out.md). The nodes must see the root at the same path.
        """
    )

    @OptionGroup var root: RootArgument
    @Option(help: "Poll every this many seconds instead of using inotify.") var poll: Double?
    @Option(help: "Seconds without change after which a batch without a marker is complete (default: dropline.yaml's watch.settle_seconds, or 60).") var settle: Double?
    @Option(help: "Seconds between full rescans of the inbox (between them, handled batches whose folders did not change are not walked).") var rescan = WatchOptions.defaultFullRescanSeconds
    @Option(help: "The marker file a producer writes last in a batch (default: dropline.yaml's watch.marker, or _READY).") var marker: String?
    @Option(help: "Architecture of retraining runs: scratch, small-cnn or backbone:<model.json> (default: the champion's recipe; scratch when there is no champion).") var arch: String?
    @Option(help: "Square input size of retraining runs (default: the champion's).") var imageSize: Int?
    @Option(help: "Maximum epochs of retraining runs (default: the champion's).") var epochs: Int?
    @Option(help: "How many jobs run at once (1: one pipeline at a time, in queue order; default: dropline.yaml's watch.jobs, or 1).") var jobs: Int?
    @Flag(help: "Queue the failed jobs again at start-up (after fixing their cause).") var retryFailed = false
    @Flag(help: "Handle what is queued and complete now, then exit (batches still settling are waited for).") var once = false
    @Flag(help: "When another daemon owns the root, wait and take over when it stops or its lease expires (instead of refusing).") var standby = false
    @Option(help: "Seconds the daemon's lease lasts without renewal (renewed every third of it); a standby takes over after that.") var leaseSeconds = 30.0
    @Option(help: "Where the pipelines run: in-process (this daemon) or slurm (submitted with sbatch; docs/scale-out.md).") var executor = "in-process"
    @Option(help: "With --executor slurm: the partition of serve runs (default: dropline.yaml's slurm.partition, or the cluster's default).") var partition: String?

    func validate() throws {
        if let poll, poll <= 0 { throw ValidationError("--poll must be a positive number of seconds") }
        if let settle, settle < 0 { throw ValidationError("--settle must be zero or more seconds") }
        if rescan <= 0 { throw ValidationError("--rescan must be a positive number of seconds") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if leaseSeconds < 3 { throw ValidationError("--lease-seconds must be at least 3") }
        guard executor == "in-process" || executor == "slurm" else { throw ValidationError("--executor is in-process or slurm, not '\(executor)'") }
        if partition != nil, executor != "slurm" { throw ValidationError("--partition is for --executor slurm") }
        if let partition, partition.range(of: #"^[A-Za-z0-9_.-]{1,64}$"#, options: .regularExpression) == nil {
            throw ValidationError("--partition is a Slurm partition name (letters, digits, . _ -)")
        }
        if executor == "slurm", !SlurmCommands.installed {
            throw ValidationError("--executor slurm needs Slurm's sbatch, squeue and scancel on PATH (Debian: apt-get install slurm-client), and a cluster they reach")
        }
    }

    func run() async throws {
        let dropline = try DroplineRoot(existing: root.root)
        // the command line, else the root's dropline.yaml, else the defaults
        let configuration = try RootConfiguration.load(root: dropline.path)
        var options = WatchOptions(training: try TrainingConfiguration.defaults(forArch: arch ?? "scratch", imageSize: imageSize, epochs: epochs))
        options.overrides = TrainingOverrides(arch: arch, imageSize: imageSize, epochs: epochs)
        options.marker = marker ?? configuration.watch.marker ?? options.marker
        options.settleSeconds = settle ?? configuration.watch.settleSeconds ?? options.settleSeconds
        options.fullRescanSeconds = rescan
        options.pollSeconds = poll
        options.once = once
        options.retryFailed = retryFailed
        options.concurrentJobs = jobs ?? configuration.watch.jobs ?? options.concurrentJobs
        options.standby = standby
        options.leaseSeconds = leaseSeconds
        options.executor = executor == "slurm" ? .slurm(partition: partition) : .inProcess
        let log = Logger.daemon(DaemonLogHandler.Sink(file: dropline.logs + "/watch.log"))
        let chosen = options
        try await WatchService(log: log) { stop in try WatchDaemon.launch(root: dropline, options: chosen, log: log, stop: stop) }.runUntilStopped()
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The daemon's state, the job queue, the champion model, recent jobs, runs and unhandled flags.")
    @OptionGroup var root: RootArgument
    @Option(help: "How many recent jobs and runs to show.") var limit = 10
    @Flag(help: "Print JSON.") var json = false

    struct Daemon: Encodable { var state: String; var pid: Int; var alive: Bool; var mode: String; var startedAt: String; var heartbeatAt: String; var rulesError: String? }
    /// The holder of the root's lease (the daemon that owns the root), from the lease file.
    struct Owner: Encodable {
        var host: String; var pid: Int32; var startedAt: String; var heartbeatAt: String; var leaseSeconds: Double
        var state: String; var detail: String?; var alive: Bool; var why: String?
    }
    /// A hand-run command working on the root now.
    struct OtherOwner: Encodable { var command: String; var host: String; var pid: Int32; var startedAt: String }
    struct Output: Encodable {
        /// Set on a machine that does not hold the index: what was read is the snapshot the index's
        /// machine published (docs/nas.md), as of `taken_at`.
        var snapshot: IndexSnapshot.Info?
        /// A shared PostgreSQL index (without a password), and the daemons that work on the root now.
        var sharedIndex: String?
        var daemons: [OtherOwner]
        var owner: Owner?
        var otherOwners: [OtherOwner]
        var daemon: Daemon?
        var queued: [Job]
        var running: [Job]
        var recentJobs: [Job]
        var champion: Registry.Model?
        var recentRuns: [RunRecord]
        /// Slurm jobs the daemons submitted (`watch --executor slurm`), newest first, with the state last seen.
        var slurmJobs: [ClusterJob]
        var pendingFlags: [String]
        /// Batches that landed and that no rule served, newest first.
        var unservedBatches: [Job]
        /// Inbox entries refused (links, special files, unsafe names), newest first.
        var refused: [Refusal]
        /// The dashboard and the metrics file (absent until the first job or `dropline report`).
        var dashboard: String?
        var metrics: String?
        /// The newest served batch: its drift decision and its accuracy estimated without labels.
        var lastBatch: LastBatch?
    }
    struct LastBatch: Encodable {
        var run: String; var batch: String; var servedAt: String; var drift: Bool
        var estimatedAccuracy: Double?; var estimatedAccuracyDrop: Double?
        /// The data-quality checks it broke (nil: not checked), in words.
        var qualityViolations: Int?; var quality: [String]?
    }

    func run() throws {
        let dropline = try DroplineRoot(existing: root.root)
        let (index, snapshot) = try RootIndex.reading(dropline, announce: false)
        let holder = DaemonLease.read(dropline)
        let daemon = try index.daemonState().map { d in
            // a pid means something only on the machine that holds the index; elsewhere the lease on the share tells
            let alive = snapshot == nil ? kill(pid_t(d.pid), 0) == 0 : holder.map { $0.pid == Int32(d.pid) && Owners.liveness($0).isAlive } ?? false
            return Daemon(state: d.state.rawValue, pid: d.pid, alive: d.state == .running && alive, mode: d.mode,
                          startedAt: d.startedAt, heartbeatAt: d.heartbeatAt, rulesError: d.rulesError)
        }
        let registry = Registry(index: index)
        let reports = Reports(root: dropline, index: index)
        let pending = WatchDaemon.pendingFlags(in: dropline)
        let lease = holder.map { holder -> Owner in
            let liveness = Owners.liveness(holder)
            var why: String?
            if case .gone(let reason) = liveness { why = reason }
            return Owner(host: holder.host, pid: holder.pid, startedAt: holder.startedAt, heartbeatAt: holder.heartbeatAt, leaseSeconds: holder.ttlSeconds,
                         state: holder.state, detail: holder.detail, alive: liveness.isAlive, why: why)
        }
        let others = Owners.live(dropline).filter { $0.command != "watch" }.map { OtherOwner(command: $0.command, host: $0.host, pid: $0.pid, startedAt: $0.startedAt) }
        var shared: String?
        if case .postgresql(let location) = try dropline.indexLocation() { shared = location.description }
        let watchers = Owners.live(dropline).filter { $0.command == "watch" }.map { OtherOwner(command: $0.command, host: $0.host, pid: $0.pid, startedAt: $0.startedAt) }
        let output = Output(snapshot: snapshot, sharedIndex: shared, daemons: shared == nil ? [] : watchers, owner: lease, otherOwners: others, daemon: daemon, queued: try index.jobs(states: [.queued]).reversed(), running: try index.jobs(states: [.running]),
                            recentJobs: try index.jobs(limit: limit), champion: try registry.models().first { $0.state == .champion },
                            recentRuns: try index.runs(limit: limit), slurmJobs: try index.recentClusterJobs(limit: limit), pendingFlags: pending,
                            unservedBatches: try index.jobs(states: [.skipped], limit: 200).filter { $0.event == .batchLanded }.prefix(limit).map { $0 },
                            refused: try index.refusals(limit: limit),
                            dashboard: FileSystem.entryType(reports.dashboard) != nil ? reports.dashboard : nil,
                            metrics: FileSystem.entryType(reports.metricsFile) != nil ? reports.metricsFile : nil,
                            lastBatch: try index.batchTimeline(limit: 1).last.map {
                                LastBatch(run: $0.run, batch: $0.subject, servedAt: $0.finishedAt, drift: $0.drift,
                                          estimatedAccuracy: $0.estimatedAccuracy, estimatedAccuracyDrop: $0.estimatedAccuracyDrop,
                                          qualityViolations: $0.qualityViolations, quality: try index.qualityCheck(run: $0.run)?.violations.map(\.detail))
                            })
        if json { return try JSONOutput.print(output) }
        if let s = output.snapshot { print("index:    on \(s.host) (\(s.indexPath)); read from the snapshot it published at \(s.takenAt)") }
        if let shared = output.sharedIndex {
            print("index:    \(shared), shared by \(output.daemons.count) live daemon(s)" + output.daemons.map { "\n          \($0.host) pid \($0.pid), since \($0.startedAt)" }.joined())
        } else if let o = output.owner {
            let state = o.alive ? (o.state == "degraded" ? "DEGRADED: \(o.detail ?? "")" : o.state) : "gone (\(o.why ?? "")); a new `dropline watch` takes over"
            print("owner:    \(o.host) pid \(o.pid), started \(o.startedAt), lease renewed \(o.heartbeatAt) (lasts \(Int(o.leaseSeconds)) s): \(state)")
        } else {
            print("owner:    none (no daemon holds the root's lease)")
        }
        for other in output.otherOwners { print("also:     `dropline \(other.command)` on \(other.host) pid \(other.pid), since \(other.startedAt)") }
        if let d = output.daemon {
            let liveness = d.state == "running" ? (d.alive ? "running (pid \(d.pid))" : "not running (pid \(d.pid) is gone; it did not stop cleanly)") : "stopped"
            print("daemon:   \(liveness), \(d.mode), started \(d.startedAt), last heartbeat \(d.heartbeatAt)")
            if let e = d.rulesError { print("rules:    INVALID, previous rules in force: \(e)") }
        } else {
            print("daemon:   never started (run `dropline watch \(root.root)`)")
        }
        print("champion: " + (output.champion.map { "v\($0.version) (stage \($0.stage), validation accuracy \(String(format: "%.4f", $0.validationAccuracy)))" } ?? "none"))
        if let b = output.lastBatch {
            let estimate = b.estimatedAccuracy.map { String(format: "; estimated accuracy %.1f%% (%.1f points below held-out)", 100 * $0, 100 * (b.estimatedAccuracyDrop ?? 0)) } ?? ""
            let quality = b.qualityViolations.map { $0 == 0 ? "; data quality within the constraints" : "; \($0) DATA-QUALITY violation(s)" } ?? "; data quality not checked"
            print("batch:    \(b.batch) served \(b.servedAt): \(b.drift ? "DRIFT" : "no drift")\(estimate)\(quality)")
            for line in b.quality ?? [] { print("          \(DisplayText.escaped(line))") }
        }
        print("queue:    \(output.queued.count) queued, \(output.running.count) running" + (output.running.first.map { " (job \($0.id): \($0.event) \($0.path))" } ?? ""))
        print("dashboard: " + (output.dashboard ?? "not written yet (`dropline report \(root.root)` writes it)") + (output.metrics.map { "; metrics: \($0)" } ?? ""))
        if !pending.isEmpty { print("flags not yet handled: " + pending.map(DisplayText.escaped).joined(separator: ", ")) }
        if !output.unservedBatches.isEmpty {
            print("\nbatches no rule served (edit rules.yaml; `dropline rules check \(root.root)` says which layouts are served):")
            var table = TextTable("JOB", "BATCH", "FINISHED", "WHY")
            for j in output.unservedBatches { table.add(["\(j.id)", j.path, j.finishedAt ?? "-", String((j.detail ?? "").prefix(160))]) }
            print(table.render())
        }
        if !output.refused.isEmpty {
            print("\nrefused in the inbox (never read):")
            var table = TextTable("AT", "PATH", "REASON")
            for r in output.refused { table.add([r.at, r.path, r.reason]) }
            print(table.render())
        }
        if !output.recentJobs.isEmpty {
            print("\nrecent jobs:")
            var table = TextTable("JOB", "STATE", "EVENT", "PATH", "FINISHED", "DETAIL")
            for j in output.recentJobs { table.add(["\(j.id)", j.state.rawValue, j.event.rawValue, j.path, j.finishedAt ?? "-", String((j.detail ?? "").prefix(120))]) }
            print(table.render())
        }
        if !output.slurmJobs.isEmpty {
            print("\nslurm jobs (state as last seen by the daemon):")
            var table = TextTable("SLURM JOB", "STEP", "STATE", "JOB", "RUN", "ATTEMPT", "UPDATED", "DETAIL")
            for c in output.slurmJobs {
                table.add([c.clusterJobId, c.step, c.state, "\(c.jobId)", c.runId ?? "-", "\(c.attempt)", c.updatedAt, String((c.detail ?? "").prefix(100))])
            }
            print(table.render())
        }
        if !output.recentRuns.isEmpty {
            print("\nrecent runs:")
            var table = TextTable("RUN", "KIND", "SUBJECT", "STATUS", "MODEL", "STARTED")
            for r in output.recentRuns { table.add([r.id, r.kind.rawValue, r.subject, r.status.rawValue, r.modelVersion.map { "v\($0)" } ?? "-", r.startedAt]) }
            print(table.render())
        }
    }
}
