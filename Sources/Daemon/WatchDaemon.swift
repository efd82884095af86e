import DroplineSupport
import FolderWatch
import Foundation
public import Modeling
import Pipeline
import Rules
public import Store
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How the daemon watches and what it trains with.
public struct WatchOptions: Sendable {
    /// The marker file a producer writes last in a batch folder.
    public var marker = "_READY"
    /// Seconds without a change in names, sizes and mtimes after which a batch without a marker is complete.
    public var settleSeconds = 60.0
    /// Poll every this many seconds instead of using inotify (nil: inotify on local disks, polling
    /// every `defaultPollSeconds` on network and FUSE mounts).
    public var pollSeconds: Double?
    public static let defaultPollSeconds = 5.0
    /// The configuration of retraining runs the rules start.
    public var training: TrainingConfiguration
    /// Process the jobs already queued and whatever is complete at start-up, then stop.
    public var once = false
    /// Queue the failed jobs again at start-up.
    public var retryFailed = false
    /// How many jobs run at once. 1 (the default) runs one pipeline at a time, in queue order. More
    /// runs that many jobs side by side on worker threads (jobs on the same path still run in order;
    /// model versions are allocated under a lock); on a 2-core machine it mainly lets quick jobs
    /// (flags, labels, notifications) pass a long training run.
    public var concurrentJobs = 1

    public init(training: TrainingConfiguration) { self.training = training }
}

/// Set from a signal handler, read by the loop between steps.
public final class StopRequest: Sendable {
    let flag = Atomic<Bool>(false)
    public init() {}
    public func request() { flag.store(true, ordering: .sequentiallyConsistent) }
    public var requested: Bool { flag.load(ordering: .sequentiallyConsistent) }
}

/// The watch daemon: watches the inbox and the flags, queues what lands in the index's durable job
/// queue, and runs its jobs through the rules, one at a time or `concurrentJobs` at once.
///
/// It is a synchronous loop rather than a swift-service-lifecycle service: the pipelines it runs are
/// synchronous and CPU-bound, and all graceful shutdown needs here is a stop flag checked between
/// steps (a step is never interrupted half-way; the pipelines publish by rename, and a second signal
/// exits at once, leaving `recover` to clean up on the next start).
///
/// Unchecked Sendable: worker threads run `handle(_:rules:)`, which touches
/// only immutable configuration, the index (a GRDB queue, serialized), the log (Sendable), the rules
/// snapshot it is given, and `running` (a mutex). The scanning state (`tracker`, `offered`, `rules`)
/// belongs to the loop's thread.
public final class WatchDaemon: @unchecked Sendable {
    public let root: DroplineRoot
    let options: WatchOptions
    let pipelines: Pipelines
    let log: DaemonLog
    var rules: RuleSet
    var rulesStamp: FileStamp?
    var rulesError: String?
    var tracker: BatchTracker
    let scanner: InboxScanner
    let startedAt = Index.now()
    var mode = "inotify"
    /// The last minute (since the epoch) whose schedules were queued.
    var scheduledThrough = Int(Date().timeIntervalSince1970 / 60)

    /// The flag folders the daemon acts on.
    public static let flagKinds = ["drift", "retrain", "quality"]

    /// Flag files not handled yet (still in their folder), as `flags/<kind>/<name>.json`, sorted per kind.
    public static func pendingFlags(in root: DroplineRoot) -> [String] {
        flagKinds.flatMap { kind in
            ((try? FileManager.default.contentsOfDirectory(atPath: root.flags(kind))) ?? []).filter { $0.hasSuffix(".json") }.sorted()
                .map { "flags/\(kind)/\($0)" }
        }
    }
    /// Files already offered to the queue, by path relative to the root, with the stamp they had:
    /// unchanged files are not read, hashed and offered again on every wake-up.
    var offered: [String: FileStamp] = [:]
    /// Model folders already offered as model_trained.
    var offeredModels: Set<String> = []
    /// Jobs running on worker threads (with `concurrentJobs` > 1).
    let running = Mutex<Set<Int64>>([])
    /// Runs the rules' `run` actions, bounded.
    let commands = CommandRunner()
    /// The stop request of `run(stop:)`, which running commands watch too.
    var stopRequest: StopRequest?

    public init(root: DroplineRoot, options: WatchOptions, log: DaemonLog) throws {
        self.root = root
        self.options = options
        self.log = log
        pipelines = try Pipelines(root: root)
        pipelines.policy.automatic = false  // the rules' promote action decides
        pipelines.log = { message in log.info(message) }
        scanner = InboxScanner(marker: options.marker)
        tracker = BatchTracker(settleSeconds: options.settleSeconds)
        do { rules = try RuleSet.load(file: root.path + "/rules.yaml") } catch {
            throw DaemonError("the rules file is invalid, so the daemon does not start: \(error). Fix it (check with `dropline rules check \(root.path)`) and start again")
        }
        rulesStamp = FileStamp(path: root.path + "/rules.yaml")
    }

    /// Runs until `stop` is requested (or, with `once`, until nothing is left to do).
    public func run(stop: StopRequest) throws {
        stopRequest = stop
        try pipelines.recover()
        let requeued = try pipelines.index.requeueInterruptedJobs()
        if requeued > 0 { log.info("requeued \(requeued) job(s) the previous daemon left running", ["jobs": "\(requeued)"]) }
        if options.retryFailed {
            let retried = try pipelines.index.requeueFailedJobs()
            log.info("queued \(retried) failed job(s) again (--retry-failed)")
        }

        var watcher: InotifyWatcher?
        var pollSeconds = options.pollSeconds
        if pollSeconds == nil, let type = MountKind.remote(root.inbox) {
            pollSeconds = WatchOptions.defaultPollSeconds
            log.info("the inbox is on a \(type) mount, where inotify sees no changes made by other machines; polling every \(Int(WatchOptions.defaultPollSeconds)) s")
        }
        if pollSeconds == nil {
            do { watcher = try InotifyWatcher(root: root.inbox) } catch {
                pollSeconds = WatchOptions.defaultPollSeconds
                log.warning("\(error); polling every \(Int(WatchOptions.defaultPollSeconds)) s instead")
            }
        }
        mode = pollSeconds.map { "polling every \($0) s" } ?? "inotify"
        log.info("watching \(root.path) (\(mode)); \(rules.rules.count) rule(s); marker \(options.marker), settle \(options.settleSeconds) s")
        for layout in rules.servedLayouts() where !layout.served {
            log.warning("the rules serve no batch in inbox/\(layout.layout)/ (\(layout.reason ?? "")); such batches are recorded as not served")
        }
        try heartbeat(state: .running)

        while !stop.requested {
            reloadRulesIfChanged()
            try scanBatches()
            try scanLabels()
            try scanFlags()
            try queueSchedules()
            try queueTrainedModels()
            try startWorkers(stop: stop)
            try heartbeat(state: .running)
            let busy = !running.withLock { $0.isEmpty }
            if options.once && !busy && tracker.nextDeadline(now: Self.now()) == nil {
                // a job that ended since the last scan may have raised a flag or trained a model
                try scanFlags()
                try queueTrainedModels()
                if try pipelines.index.jobs(states: [.queued], limit: 1).isEmpty { break }
                continue
            }
            // Wake up for changes, for the next settle deadline, or at least every few seconds (to
            // see flags, rules edits and stop requests).
            var timeout = pollSeconds ?? 2
            if busy { timeout = min(timeout, 0.2) }  // a worker may finish and raise a flag
            if let deadline = tracker.nextDeadline(now: Self.now()) { timeout = max(0.05, min(timeout, deadline - Self.now())) }
            if let active = watcher {
                do { _ = try active.wait(timeout: min(timeout, 1)) } catch {
                    // out of inotify watches: say so and poll from now on
                    log.warning("\(error)")
                    watcher = nil
                    pollSeconds = WatchOptions.defaultPollSeconds
                    mode = "polling every \(WatchOptions.defaultPollSeconds) s"
                }
            } else {
                Self.sleep(min(timeout, 0.5))
            }
        }
        if !running.withLock({ $0.isEmpty }) {
            log.info("waiting for the running jobs to finish their current step")
            while !running.withLock({ $0.isEmpty }) { Self.sleep(0.1) }
        }
        try heartbeat(state: .stopped)
        log.info("stopped")
    }

    /// Claims queued jobs while fewer than `concurrentJobs` run (one by default), each on its own
    /// thread with the rules in force when it was claimed; a job's failure to record its end is
    /// logged, and the job is requeued at the next start.
    func startWorkers(stop: StopRequest) throws {
        while !stop.requested, running.withLock({ $0.count }) < max(1, options.concurrentJobs), let job = try pipelines.index.claimNextJob() {
            running.withLock { _ = $0.insert(job.id) }
            let snapshot = rules
            let thread = Thread { [self] in
                do { try handle(job, rules: snapshot) } catch {
                    log.error("job \(job.id) could not be recorded: \(error); it is queued again at the next start", ["job": "\(job.id)"])
                }
                running.withLock { _ = $0.remove(job.id) }
            }
            thread.name = "dropline-job-\(job.id)"
            thread.start()
        }
    }

    // MARK: - Finding work

    func scanBatches() throws {
        let scan = scanner.scan(root.productionInbox)
        try report(scan.refused.map { ("inbox/production/" + $0.path, $0.reason) }, area: "inbox/production/")
        let snapshots = scan.batches
        for ready in tracker.update(snapshots, now: Self.now()) {
            guard let snapshot = snapshots[ready.name] else { continue }
            let folder = root.productionInbox + "/" + ready.name
            let hash: String
            do { hash = try Self.contentHash(folder: folder, snapshot: snapshot) } catch {
                log.warning("cannot read batch \(ready.name) yet (\(error)); will look again")
                continue
            }
            tracker.markHandled(ready.name, files: snapshot.files)
            let path = "production/" + ready.name
            if let job = try pipelines.index.enqueue(event: .batchLanded, path: path, contentSha256: hash) {
                log.info("batch \(path) landed (\(ready.completion.rawValue), \(ready.files) file(s)); queued job \(job.id)", ["job": "\(job.id)"])
            } else {
                log.info("batch \(path) with this content is already in the job queue (queued, done or failed); not queuing it again (to rerun it: `dropline infer \(root.path) \(folder)`; failed jobs: `dropline watch --retry-failed`)")
            }
        }
    }

    /// Labels files (`inbox/labels/<batch>.csv`) become labels_landed jobs, once per content, as soon
    /// as they appear: write them under a temporary name (`*.part`, `*.tmp`) and rename. A partial file
    /// fails with the reason in its job, and the complete file is new content, so a new job.
    func scanLabels() throws {
        try offerFiles(in: root.labelsInbox, as: "labels", event: .labelsLanded) { $0.lowercased().hasSuffix(".csv") }
    }

    /// Queues the schedule rules due in the minutes since the last check (local time, as cron). A
    /// schedule that came due while the daemon was down is not caught up, as with cron.
    func queueSchedules() throws {
        let current = Int(Self.now() / 60)
        guard current > scheduledThrough else { return }
        defer { scheduledThrough = current }
        let calendar = Calendar.current
        for minute in max(scheduledThrough + 1, current - 59)...current {
            let c = calendar.dateComponents([.minute, .hour, .day, .month, .weekday], from: Date(timeIntervalSince1970: Double(minute * 60)))
            for rule in rules.due(minute: c.minute!, hour: c.hour!, day: c.day!, month: c.month!, weekday: c.weekday! - 1) {
                let path = "schedule/" + rule.name
                if let job = try pipelines.index.enqueue(event: .schedule, path: path, contentSha256: SHA256.hash(Array("\(path)@\(minute)".utf8))) {
                    log.info("schedule of rule \(rule.name) (\(rule.cron!)) is due; queued job \(job.id)", ["job": "\(job.id)", "rule": rule.name])
                }
            }
        }
    }

    /// Every model version in the registry (trained by a rule or by `dropline train`) raises
    /// model_trained once, keyed by its content hash.
    func queueTrainedModels() throws {
        for model in try pipelines.index.models() where offeredModels.insert(model.folder).inserted {
            let (folder, hash) = (model.folder, model.contentSha256)
            if let job = try pipelines.index.enqueue(event: .modelTrained, path: folder, contentSha256: hash) {
                log.info("model \(folder) is new; queued job \(job.id)", ["job": "\(job.id)"])
            }
        }
    }

    func scanFlags() throws {
        for kind in Self.flagKinds {
            try offerFiles(in: root.flags(kind), as: "flags/" + kind, event: .flagCreated) { $0.hasSuffix(".json") }
        }
    }

    /// The largest flag or labels file read (a flag is a small JSON object; labels a CSV of names).
    static let maximumRequestBytes = 16 << 20

    /// Offers each file of `folder` whose name `accepts` to the queue as `event` with its content
    /// hash (the queue drops content it has seen); files unchanged since the last offer are skipped.
    /// Only regular files with safe names are read (links, FIFOs and the like are refused with their
    /// reason, never opened).
    func offerFiles(in folder: String, as prefix: String, event: EventKind, accepts: (String) -> Bool) throws {
        var refused: [(String, String)] = []
        for name in InboxScanner.entries(folder) where accepts(name) && !scanner.ignored(name) {
            let path = folder + "/" + name, relative = prefix + "/" + name
            let stem = String(name.prefix(upTo: name.lastIndex(of: ".") ?? name.endIndex))
            if let problem = SafeName.problem(stem, what: "file name") {
                refused.append((root.relative(path), "\(problem); \(SafeName.remedy)"))
                continue
            }
            guard let type = FileSystem.entryType(path) else { continue }
            guard type == .regular else {
                refused.append((root.relative(path), NotRegularFile(path: path, type: type).reason))
                continue
            }
            guard let stamp = FileStamp(regularFile: path), offered[relative] != stamp else { continue }
            let data: [UInt8]
            do { data = try AtomicFile.read(path, limit: Self.maximumRequestBytes, links: .refuse) } catch {
                refused.append((root.relative(path), "cannot be read: \(error)"))
                continue
            }
            offered[relative] = stamp
            if let job = try pipelines.index.enqueue(event: JobEvent(event), path: relative, contentSha256: SHA256.hash(data)) {
                log.info("\(event == .flagCreated ? "flag" : "labels") \(relative) found; queued job \(job.id)", ["job": "\(job.id)"])
            }
        }
        try report(refused, area: prefix + "/")
    }

    /// Refusals already recorded, by area (a folder the daemon scans) -> path -> reason: each is
    /// logged and indexed once while it stands, and again if it comes back after being fixed.
    var refusals: [String: [String: String]] = [:]

    /// Logs and indexes the refusals a scan of one area found that were not already recorded.
    func report(_ found: [(path: String, reason: String)], area: String) throws {
        var current: [String: String] = [:]
        for (path, reason) in found { current[path] = reason }
        for (path, reason) in current.sorted(by: { $0.key < $1.key }) where refusals[area]?[path] != reason {
            log.warning("refused \(path): \(reason)", ["path": path])
            try pipelines.index.recordRefusal(path: path, reason: reason)
        }
        refusals[area] = current
    }

    // MARK: - Running a job

    func handle(_ job: Job, rules: RuleSet) throws {
        log.info("job \(job.id): \(job.event) \(job.path)", ["job": "\(job.id)"])
        let event: Event?
        do { event = try makeEvent(job) } catch {
            try finish(job, state: .failed, detail: "\(error)")
            return
        }
        guard let event else {
            try finish(job, state: .skipped, detail: "\(job.path) is gone")
            return
        }
        let decisions = rules.decide(event)
        var outcomes: [String] = []
        var failed: String?
        for decision in decisions {
            guard decision.fired, failed == nil else {
                try pipelines.index.recordFiring(job: job.id, rule: decision.rule, fired: false,
                                                 reason: failed == nil ? decision.reason : "not run: an earlier action failed", actions: [], outcome: nil)
                continue
            }
            log.info("rule \(decision.rule) fires: \(decision.actions.map(\.description).joined(separator: ", "))", ["job": "\(job.id)", "rule": decision.rule])
            var results: [String] = []
            var trained: Int?
            for action in decision.actions {
                do {
                    let result = try perform(action, event: event, job: job, trained: &trained)
                    results.append(result)
                    log.info(result, ["job": "\(job.id)", "rule": decision.rule])
                } catch {
                    failed = "\(action): \(error)"
                    log.error("rule \(decision.rule): \(action) failed: \(error)", ["job": "\(job.id)", "rule": decision.rule])
                    break
                }
            }
            let outcome = (results + (failed.map { ["failed: " + $0] } ?? [])).joined(separator: "; ")
            try pipelines.index.recordFiring(job: job.id, rule: decision.rule, fired: true, reason: decision.reason,
                                             actions: decision.actions.map(\.description), outcome: outcome)
            outcomes.append("\(decision.rule): \(outcome.isEmpty ? "ignored" : outcome)")
        }
        let state: JobState = failed != nil ? .failed : (outcomes.isEmpty ? .skipped : .succeeded)
        var detail = outcomes.joined(separator: " | ")
        if outcomes.isEmpty {
            // say why, with the reasons of the rules that are for this event
            let relevant = zip(decisions, rules.rules).filter { $1.on == event.kind }.map { "\($0.0.rule): \($0.0.reason)" }
            detail = (event.kind == .batchLanded ? "no rule serves this batch" : "no rule fired") + (relevant.isEmpty ? "" : " (" + relevant.joined(separator: "; ") + ")")
            if event.kind == .batchLanded {
                // a batch nobody serves should not go unnoticed
                log.warning("batch \(job.path) is not served: \(detail); see `dropline rules explain \(root.path) --event batch_landed --path \(job.path)`",
                            ["job": "\(job.id)"])
            }
        }
        try finish(job, state: state, detail: detail)
    }

    func makeEvent(_ job: Job) throws -> Event? {
        guard let kind = EventKind(rawValue: job.event.rawValue) else { throw DaemonError("unknown event \(job.event.rawValue)") }
        switch kind {
        case .flagCreated:
            let path = root.path + "/" + job.path
            guard FileSystem.entryType(path) != nil else { return nil }
            return try Event.flag(relativePath: job.path, json: try AtomicFile.read(path, limit: Self.maximumRequestBytes, links: .refuse))
        case .schedule:
            return Event(kind: .schedule, path: job.path)
        case .modelTrained:
            guard let model = try pipelines.index.model(folder: job.path) else { return nil }
            var fields: [String: Value] = ["model.version": .number(Double(model.version)), "model.stage": .string(model.stage),
                                           "model.validation_accuracy": .number(model.validationAccuracy), "model.state": .string(model.state.rawValue)]
            if let run = model.trainRunId { fields["model.run"] = .string(run) }
            return Event(kind: .modelTrained, path: job.path, fields: fields)
        default:
            guard FileManager.default.fileExists(atPath: root.inbox + "/" + job.path) else { return nil }
            return Event(kind: kind, path: job.path)
        }
    }

    func perform(_ action: PlannedAction, event: Event, job: Job, trained: inout Int?) throws -> String {
        // A job the daemon was interrupted in may already have finished some of its runs (the
        // pipelines' recovery completes a run that was published): those are not run twice.
        let since = job.attempts > 1 ? job.startedAt : nil
        switch action {
        case .infer(let batch):
            if let since, let run = try pipelines.index.servedRun(batchPath: "inbox/" + batch, since: since) {
                let raised = try pipelines.raiseMissingDriftFlag(run: run)
                return "inferred \(batch): already done by run \(run) before the restart" + (raised ? "; its drift flag, not written then, raised now" : "")
            }
            // the path was built from names the scanner checked; it must still be a real folder inside
            // the production inbox now (a producer may have swapped it for a link since)
            let folder = root.inbox + "/" + batch
            guard FileSystem.isRealDirectory(folder), FileSystem.isInside(folder, root.productionInbox) else {
                throw DaemonError("\(DisplayText.escaped(batch)) is no longer a folder inside inbox/production/ (it was removed or replaced by a link); not served")
            }
            let (run, drift) = try pipelines.infer(batch: folder)
            return "inferred \(batch): run \(run), \(drift ? "drift: flag raised" : "no drift")"
        case .train(let stage):
            if let since, let (run, version) = try pipelines.index.trainedRun(stage: stage, since: since) {
                trained = version
                return "trained stage \(stage): already done by run \(run) (model version \(version)) before the restart"
            }
            let (run, version) = try pipelines.train(stage: stage, configuration: options.training)
            trained = version
            return "trained stage \(stage): run \(run), model version \(version)"
        case .promote(let policy):
            let newest = try pipelines.index.newestCandidate()
            guard let version = trained ?? newest else { return "nothing to promote: no new candidate" }
            return try pipelines.promote(version: version, policy: policy, actor: "rules")
        case .mergeLabels(let file):
            let result = try GroundTruth(root: root, index: pipelines.index).merge(labels: root.inbox + "/" + file)
            return String(format: "merged labels %@: %d labelled image(s) of batch %@, accuracy %.4f%@", file, result.labelled, result.batch, result.accuracy,
                          result.belowConstraint ? String(format: " below the constraint %.4f: quality flag raised", result.constraintAccuracy) : "")
        case .run(let arguments, let timeout):
            let result = commands.run(arguments, environment: environment(for: event), timeout: timeout, stop: stopRequest)
            let shown = PlannedAction.commandLine(arguments)
            let output = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
            guard result.succeeded else {
                let timing = result.ending == .timedOut ? " after \(Int(timeout)) s (SIGTERM, then SIGKILL after \(Int(commands.grace)) s)" : ""
                throw DaemonError("`\(shown)` \(result.ending)\(timing)" + (output.isEmpty ? "" : ": \(DisplayText.escaped(output))"))
            }
            return "ran `\(shown)` in \(String(format: "%.1f", result.seconds)) s" + (output.isEmpty ? "" : ": \(DisplayText.escaped(output))")
        }
    }

    /// The event for a `run` action's program: DROPLINE_ROOT, DROPLINE_EVENT, DROPLINE_PATH, and each
    /// field upper-cased with `_` for anything but ASCII letters and digits (`flag.stage` ->
    /// DROPLINE_FLAG_STAGE). Fields never overwrite the three fixed names.
    func environment(for event: Event) -> [String: String] {
        var environment: [String: String] = [:]
        for (key, value) in event.fields.sorted(by: { $0.key < $1.key }).prefix(200) {
            let name = "DROPLINE_" + String(key.prefix(100)).uppercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? String($0) : "_" }.joined()
            environment[name] = value.text
        }
        environment["DROPLINE_ROOT"] = root.path
        environment["DROPLINE_EVENT"] = event.kind.rawValue
        environment["DROPLINE_PATH"] = event.path
        return environment
    }

    /// Ends a job; a flag job's file moves to flags/done/ and its outcome goes into the flags table.
    func finish(_ job: Job, state: JobState, detail: String) throws {
        try pipelines.index.finishJob(job.id, state: state, detail: detail)
        let line = "job \(job.id) \(state.rawValue): \(detail)" + (state == .failed ? " (fix the cause, then `dropline watch --retry-failed` runs it again)" : "")
        if state == .failed { log.error(line, ["job": "\(job.id)"]) } else { log.info(line, ["job": "\(job.id)"]) }
        guard job.event == .flagCreated else { return }
        let source = root.path + "/" + job.path
        guard FileManager.default.fileExists(atPath: source) else { return }
        let parts = job.path.split(separator: "/")
        let kind = String(parts[1])
        let done = root.flags("done") + "/\(kind)-job\(job.id)-" + parts.last!
        try FileManager.default.moveItem(atPath: source, toPath: done)
        try pipelines.index.handleFlag(kind: FlagKind(rawValue: kind) ?? .retrain, path: job.path, subject: String(parts.last!.dropLast(5)),
                                       createdAt: job.createdAt, outcome: "\(state.rawValue): \(detail)")
    }

    // MARK: - Rules reload, heartbeat

    func reloadRulesIfChanged() {
        let file = root.path + "/rules.yaml"
        let stamp = FileStamp(path: file)
        guard stamp != rulesStamp else { return }
        rulesStamp = stamp
        do {
            rules = try RuleSet.load(file: file)
            rulesError = nil
            log.info("reloaded \(file): \(rules.rules.count) rule(s)")
        } catch {
            rulesError = error.description
            log.error("the edited rules file is invalid, the previous rules stay in force: \(error)")
        }
        try? heartbeat(state: .running)
    }

    func heartbeat(state: DaemonState.State) throws {
        try pipelines.index.daemonHeartbeat(pid: getpid(), mode: mode, state: state, startedAt: startedAt,
                                            rulesFile: "rules.yaml", rulesError: rulesError)
    }

    // MARK: - Helpers

    /// SHA-256 over the batch's "hash  relative path" lines; a link or special file is never
    /// opened: its line says what it is instead.
    static func contentHash(folder: String, snapshot: BatchSnapshot) throws -> String {
        var listing = ""
        for file in snapshot.files.keys.sorted() {
            if let special = snapshot.special[file] {
                listing += "\(SHA256.hash(Array(special.utf8)))  \(file) (special)\n"
            } else {
                listing += "\(try SHA256.hash(file: folder + "/" + file, links: .refuse))  \(file)\n"
            }
        }
        return SHA256.hash(Array(listing.utf8))
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    static func sleep(_ seconds: Double) { usleep(UInt32(max(0, seconds) * 1_000_000)) }
}

public struct DaemonError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Structured log lines (time, level, message, key=value fields) to standard error and to
/// `<root>/logs/watch.log`.
public final class DaemonLog: Sendable {
    let file: FileHandle?
    let echo: Bool

    /// `echo`: also to standard error (off when a caller such as `dropline simulate` prints its own progress).
    public init(file path: String?, echo: Bool = true) {
        self.echo = echo
        if let path {
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            file = FileHandle(forWritingAtPath: path)
            _ = try? file?.seekToEnd()
        } else {
            file = nil
        }
    }

    public func info(_ message: String, _ fields: [String: String] = [:]) { write("info", message, fields) }
    public func warning(_ message: String, _ fields: [String: String] = [:]) { write("warning", message, fields) }
    public func error(_ message: String, _ fields: [String: String] = [:]) { write("error", message, fields) }

    func write(_ level: String, _ message: String, _ fields: [String: String]) {
        // one event, one line: names from outside cannot start a forged line (DisplayText)
        let extra = fields.sorted { $0.key < $1.key }.map { " \($0.key)=\(DisplayText.escaped($0.value))" }.joined()
        let line = "\(Index.now()) \(level) \(DisplayText.escaped(message))\(extra)\n"
        if echo { FileHandle.standardError.write(Data(line.utf8)) }
        file?.write(Data(line.utf8))
    }
}

extension JobEvent {
    /// The queue's name for a rules event (the same text).
    init(_ kind: EventKind) { self = JobEvent(rawValue: kind.rawValue)! }
}
