import DroplineSupport
import FolderWatch
import Foundation
public import Logging
public import Modeling
import Pipeline
import Reports
import Rules
public import Store
import Synchronization
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// How the daemon watches and what it trains with.
public struct WatchOptions: Sendable {
    /// The marker file a producer writes last in a batch folder.
    public var marker = "_READY"
    /// Where the pipelines of jobs run: in this process, or submitted to Slurm (`--executor slurm`).
    public var executor = Executor.inProcess
    /// Seconds without a change in names, sizes and mtimes after which a batch without a marker is complete.
    public var settleSeconds = 60.0
    /// Poll every this many seconds instead of using inotify (nil: inotify on local disks, polling
    /// every `defaultPollSeconds` on network and FUSE mounts).
    public var pollSeconds: Double?
    public static let defaultPollSeconds = 5.0
    /// Every this many seconds the inbox is listed and walked whole, whatever the folders'
    /// modification times say (between, settled batches are skipped while their folders are
    /// unchanged: `IncrementalScanner`).
    public var fullRescanSeconds = WatchOptions.defaultFullRescanSeconds
    public static let defaultFullRescanSeconds = IncrementalScanner.defaultFullRescanSeconds
    /// The recipe of retraining runs when there is no champion yet (with one, its recipe:
    /// `Pipelines.retrainingRecipe`).
    public var training: TrainingConfiguration
    /// What the command line said of retraining runs (`watch --arch/--image-size/--epochs`): applied
    /// over the champion's recipe, before a rule's own `train` options.
    public var overrides = TrainingOverrides()
    /// Process the jobs already queued and whatever is complete at start-up, then stop.
    public var once = false
    /// Queue the failed jobs again at start-up.
    public var retryFailed = false
    /// How many jobs run at once. 1 (the default) runs one pipeline at a time, in queue order. More
    /// runs that many jobs side by side on worker threads (jobs on the same path still run in order;
    /// model versions are allocated under a lock); on a 2-core machine it mainly lets quick jobs
    /// (flags, labels, notifications) pass a long training run.
    public var concurrentJobs = 1
    /// Wait for the root's lease instead of refusing when another daemon holds it, and take over
    /// when that daemon is gone or its lease expires.
    public var standby = false
    /// The lease's time-to-live: renewed every third of it; a standby takes over when it was not
    /// renewed for this long (a holder on this machine whose process is gone: at once).
    public var leaseSeconds = 30.0

    public init(training: TrainingConfiguration) { self.training = training }
}

/// Set on a graceful stop (a signal through `WatchService`), read by the loop between steps and by
/// running commands.
public final class StopRequest: Sendable {
    let flag = Atomic<Bool>(false)
    public init() {}
    public func request() { flag.store(true, ordering: .sequentiallyConsistent) }
    public var requested: Bool { flag.load(ordering: .sequentiallyConsistent) }
}

/// The watch daemon: its event sources (`EventSource`: the inbox, the flag folders, labels, the
/// rules' schedules, the registry) offer work to the index's durable job queue, and its job runner
/// (`JobRunner`) runs each job through the rules, whose actions (`DaemonAction`) it performs.
///
/// The loop is synchronous: the pipelines it runs are synchronous and CPU-bound, and a step is never
/// interrupted half-way (the pipelines publish by rename). `WatchService` runs it under
/// swift-service-lifecycle, whose signal handling asks it to stop between steps. Time comes from a
/// `DaemonClock`, so tests drive settle periods and schedules with a manual clock, one `tick()` at a
/// time, in milliseconds.
///
/// Unchecked Sendable: the scanning state (sources, rules) belongs to the loop's thread; worker
/// threads use only the job runner.
public final class WatchDaemon: @unchecked Sendable {
    public let root: DroplineRoot
    let options: WatchOptions
    let pipelines: Pipelines
    let log: Logger
    let clock: any DaemonClock
    let queue: EventQueue
    var inbox: InboxSource
    var retention = RetentionSweep()
    var sources: [any EventSource]
    var runner: JobRunner
    var rules: RuleSet
    var rulesStamp: FileStamp?
    var rulesError: String?
    let startedAt = Index.now()
    var mode = "inotify"
    /// Why the daemon cannot work now (the index locked, the disk full), with when it looks again.
    var degraded: (reason: String, retryAt: Double, delay: Double)?
    /// This daemon as the root's owner (created at `start`, or given by a test).
    public private(set) var session: OwnerSession?

    /// Flag files not handled yet (still in their folder), as `flags/<kind>/<name>.json`, sorted per kind.
    public static func pendingFlags(in root: DroplineRoot) -> [String] { DroppedFileSource.pendingFlags(in: root) }

    /// `session`: the root's lease, already taken (`launch`); without one, `start` takes it.
    public init(root: DroplineRoot, options: WatchOptions, log: Logger, clock: any DaemonClock = SystemClock(), index: (any DroplineIndex)? = nil,
                session: OwnerSession? = nil) throws {
        self.root = root
        self.options = options
        self.log = log
        self.clock = clock
        pipelines = Pipelines(root: root, index: try index ?? Index.open(root: root, quickCheck: true))
        pipelines.policy.automatic = false  // the rules' promote action decides
        pipelines.logger = log
        queue = EventQueue(root: root, index: pipelines.index, log: log)
        inbox = InboxSource(marker: options.marker, settleSeconds: options.settleSeconds, fullRescanSeconds: options.fullRescanSeconds,
                            trustSeconds: IncrementalScanner.trustSeconds(for: root.productionInbox))
        let gate = TrainingGate()
        sources = DroppedFileSource.flags(root) + [DroppedFileSource.labels(root), ScheduleSource(now: clock.now()), ModelSource(busy: { gate.busy })]
        runner = JobRunner(root: root, pipelines: pipelines, log: log, training: options.training, overrides: options.overrides, concurrentJobs: options.concurrentJobs, stop: nil)
        runner.trainingJobs = gate
        do { rules = try RuleSet.load(file: root.path + "/rules.yaml") } catch {
            throw DaemonError("the rules file is invalid, so the daemon does not start: \(error). Fix it (check with `dropline rules check \(root.path)`) and start again")
        }
        rulesStamp = FileStamp(path: root.path + "/rules.yaml")
        do { pipelines.configuration = try RootConfiguration.load(root: root.path) } catch {
            throw DaemonError("the root's configuration is invalid, so the daemon does not start: \(error). Fix it (check with `dropline config \(root.path)`) and start again")
        }
        configurationStamp = FileStamp(path: root.path + "/" + RootConfiguration.fileName)
        if let session { own(session) }
    }

    /// The daemon as a user starts it: takes the root's lease (a standby waits for it) before the
    /// index is opened, since a standby on another machine cannot open the index of the daemon it
    /// replaces: when the index is recorded on another machine, it adopts the root's snapshot once
    /// every owner on that machine is gone (`Index.adopt`, docs/nas.md). Nil: stopped while standing by.
    public static func launch(root: DroplineRoot, options: WatchOptions, log: Logger, stop: StopRequest) throws -> WatchDaemon? {
        let clock = SystemClock()
        let session: OwnerSession
        if try PostgresIndexRecord.read(root) != nil {
            // a shared index: every daemon of the root works, each its own owner (docs/scale-out.md)
            session = try OwnerSession(root: root, command: "watch", ttlSeconds: options.leaseSeconds)
            do { return try WatchDaemon(root: root, options: options, log: log, clock: clock, session: session) } catch {
                session.end()
                throw error
            }
        } else if options.standby {
            guard let taken = try standBy(root: root, options: options, log: log, clock: clock, stop: stop) else { return nil }
            session = taken
        } else {
            var observation = DaemonLease.Observation()
            session = try acquireLease(root: root, options: options, log: log, observation: &observation)
        }
        do {
            guard try adoptIndexIfElsewhere(root: root, options: options, log: log, clock: clock, stop: stop) else {
                session.end()
                return nil
            }
            return try WatchDaemon(root: root, options: options, log: log, clock: clock, session: session)
        } catch {
            session.end()
            throw error
        }
    }

    /// Holding the lease: when the index is recorded on another machine, waits (a standby) until no
    /// owner lives there and adopts the snapshot. False: stopped while waiting.
    static func adoptIndexIfElsewhere(root: DroplineRoot, options: WatchOptions, log: Logger, clock: any DaemonClock, stop: StopRequest) throws -> Bool {
        guard case .elsewhere(let elsewhere) = try root.indexLocation() else { return true }
        guard let host = elsewhere.host else { throw DaemonError("\(elsewhere)") }
        var announced = false
        while !stop.requested {
            let busy = Owners.live(root).filter { $0.host == host }
            if busy.isEmpty {
                let info = try Index.adopt(root: root)
                log.warning("took over the index of \(root.path) from \(host), which is gone: adopted the snapshot it published at \(info.takenAt); runs published after it are indexed from their folders")
                return true
            }
            guard options.standby else {
                throw DaemonError("\(elsewhere)\n(\(host) still works on the root: `dropline \(busy[0].command)` pid \(busy[0].pid), heartbeat \(busy[0].heartbeatAt))")
            }
            if !announced {
                log.info("holding the lease; waiting for \(host), which holds the index, to stop (`dropline \(busy[0].command)` pid \(busy[0].pid) is alive there, last heartbeat \(busy[0].heartbeatAt))")
                announced = true
            }
            clock.sleep(1)
        }
        return false
    }

    /// Start-up: the root's lease (refused with the holder's name when another daemon holds it;
    /// `waitForLease` is the standby's way), recovery of gone owners' work, the queue's interrupted
    /// jobs, the heartbeat.
    public func start(stop: StopRequest? = nil) throws {
        let gate = runner.trainingJobs
        runner = JobRunner(root: root, pipelines: pipelines, log: log, training: options.training, overrides: options.overrides, concurrentJobs: options.concurrentJobs, stop: stop)
        runner.trainingJobs = gate
        runner.marker = options.marker
        runner.executor = options.executor
        if (try? IndexPlacement.read(root)) != nil {
            // the index is on this machine's disk, the root on a share: see `JobRunner.beforeRun`
            runner.beforeRun = { [weak self] job in
                self?.publishSnapshot(else: "a machine adopting an older one may repeat job \(job.id)")
            }
        }
        runner.owner = session?.id
        runner.jobLeaseSeconds = jobLeaseSeconds
        if session == nil {
            if pipelines.index.isShared {
                own(try OwnerSession(root: root, command: "watch", ttlSeconds: options.leaseSeconds))
            } else {
                var observation = DaemonLease.Observation()
                try takeLease(&observation)
            }
        }
        Owners.live(root, prune: true)  // heartbeat files of owners that are gone
        try pipelines.recover()
        let requeued = try requeueGoneOwnersJobs()
        if requeued > 0 { log.info("requeued \(requeued) job(s) the previous daemon left running", metadata: ["jobs": "\(requeued)"]) }
        if options.retryFailed {
            let retried = try pipelines.index.requeueFailedJobs()
            log.info("queued \(retried) failed job(s) again (--retry-failed)")
        }
        for layout in rules.servedLayouts() where !layout.served {
            log.warning("the rules serve no batch in inbox/\(layout.layout)/ (\(layout.reason ?? "")); such batches are recorded as not served")
        }
        try heartbeat(state: .running)
    }

    /// Queues again the jobs left running by owners that are gone (never this daemon's own).
    func requeueGoneOwnersJobs() throws -> Int {
        let me = session?.id
        return try pipelines.index.requeueInterruptedJobs { owner in owner != me && !Owners.liveness(owner, in: self.root).isAlive }
    }

    /// One attempt at the root's lease; throws `DaemonError` naming the holder when it is taken.
    func takeLease(_ observation: inout DaemonLease.Observation) throws {
        own(try Self.acquireLease(root: root, options: options, log: log, observation: &observation))
    }

    /// Becomes the owner `session` (which holds the lease).
    func own(_ session: OwnerSession) {
        let log = self.log
        session.onLeaseLost = { why in log.error("lost the lease: \(why); stopping without touching anything more") }
        self.session = session
        pipelines.owner = session
        runner.owner = session.id
    }

    static func acquireLease(root: DroplineRoot, options: WatchOptions, log: Logger, observation: inout DaemonLease.Observation) throws -> OwnerSession {
        let session = try OwnerSession(root: root, command: "watch", ttlSeconds: options.leaseSeconds)
        do {
            let how = try DaemonLease.acquire(session, observation: &observation)
            if how != "free" { log.warning("took over the lease of \(root.path): \(how)") }
        } catch let held as LeaseHeld {
            session.end()
            throw DaemonError("\(held) — one daemon per root. Stop it first, or start this one with `--standby` to take over when it stops or its lease expires")
        }
        return session
    }

    /// Standby: tries for the lease every second until it is taken (true) or `stop` is requested.
    public func waitForLease(stop: StopRequest) throws -> Bool {
        guard let session = try Self.standBy(root: root, options: options, log: log, clock: clock, stop: stop) else { return false }
        own(session)
        return true
    }

    /// Tries for the lease every second until it is taken or `stop` is requested (nil).
    static func standBy(root: DroplineRoot, options: WatchOptions, log: Logger, clock: any DaemonClock, stop: StopRequest) throws -> OwnerSession? {
        var observation = DaemonLease.Observation()
        var announced = false
        while !stop.requested {
            do {
                return try acquireLease(root: root, options: options, log: log, observation: &observation)
            } catch is DaemonError {
                if !announced, let holder = DaemonLease.read(root) {
                    log.info("standing by: \(holder.host) pid \(holder.pid) holds the lease of \(root.path) (since \(holder.startedAt)); taking over when it stops or does not renew it for \(Int(holder.ttlSeconds)) s")
                    announced = true
                }
            }
            clock.sleep(1)
        }
        return nil
    }

    /// Releases the lease and the owner's heartbeat (a clean stop).
    public func end() {
        session?.end()
    }

    /// One look at everything: the rules file, every event source. Queued jobs are left to the
    /// caller (`run` starts workers; tests call `runQueuedJobs`).
    public func tick() throws {
        reloadRulesIfChanged()
        reloadConfigurationIfChanged()
        let now = clock.now()
        try inbox.collect(now: now, rules: rules, queue: queue)
        try retention.sweepIfDue(now: now, retention: rules.retention, root: root, index: pipelines.index, inbox: &inbox, log: log)
        for i in sources.indices { try sources[i].collect(now: now, rules: rules, queue: queue) }
    }

    /// Runs the queued jobs on this thread, in order (tests; no worker threads). Returns how many ran.
    @discardableResult
    public func runQueuedJobs() throws -> Int {
        let count = try runner.runQueued(rules: rules)
        if let why = runner.takeTransient() { enterDegraded(why) }
        return count
    }

    /// Waits for the jobs running on worker threads (`step` starts them).
    public func waitForJobs() { runner.waitForWorkers() }

    /// When a batch still settling must be looked at again (nil: none is waiting).
    public var nextDeadline: Double? { inbox.nextDeadline(now: clock.now()) }

    /// Runs until `stop` is requested (or, with `once`, until nothing is left to do). A standby first
    /// waits for the lease.
    public func run(stop: StopRequest) throws {
        if options.standby, session == nil, !pipelines.index.isShared {
            guard try waitForLease(stop: stop) else { return }
        }
        defer { end() }
        try start(stop: stop)
        var waker = Waker(root: root, options: options, clock: clock, log: log)
        let bell = waker.bell
        let listener: PostgresListener?
        do { listener = try pipelines.index.listenForJobs { bell.ring() } } catch {
            log.warning("cannot listen for jobs other daemons queue (\(error)); seeing them at the next look instead")
            listener = nil
        }
        defer { listener?.stop() }
        waker.listening = listener != nil
        mode = waker.mode
        log.info("watching \(root.path) (\(mode)); \(rules.rules.count) rule(s); marker \(options.marker), settle \(options.settleSeconds) s")
        try heartbeat(state: .running)
        while !stop.requested {
            if let lost = session?.leaseLost {
                runner.waitForWorkers()
                throw DaemonError("stopped: \(lost)")
            }
            guard try step() else {
                waker.wait(timeout: max(0.05, (degraded?.retryAt ?? clock.now()) - clock.now()))
                continue
            }
            if options.once && !runner.busy && nextDeadline == nil {
                // a job that ended since the last look may have raised a flag or trained a model
                try tick()
                if try pipelines.index.jobs(states: [.queued], limit: 1).isEmpty { break }
                continue
            }
            // Wake up for changes, for the next settle deadline, or at least every few seconds (to
            // see flags, rules edits and stop requests).
            var timeout = waker.pollSeconds ?? 2
            if runner.busy { timeout = min(timeout, 0.2) }  // a worker may finish and raise a flag
            if let deadline = nextDeadline { timeout = max(0.05, min(timeout, deadline - clock.now())) }
            waker.wait(timeout: timeout)
            mode = waker.mode
        }
        runner.waitForWorkers()
        try? heartbeat(state: .stopped)
        lastSnapshot = nil
        publishSnapshotIfDue()
        lastReports = nil
        refreshReportsIfDue()
        log.info("stopped")
    }

    /// One look and the workers it calls for, unless degraded; a transient failure (the index
    /// locked, the disk full) makes the daemon degraded instead of stopping it. Returns false while
    /// degraded (the caller waits until `degraded.retryAt`).
    @discardableResult
    public func step() throws -> Bool {
        if let d = degraded {
            guard clock.now() >= d.retryAt else { return false }
            if let still = probe() {
                let delay = min(d.delay * 2, Self.maximumBackoff)
                degraded = (still, clock.now() + delay, delay)
                log.warning("still degraded: \(still); next try in \(Int(delay)) s")
                return false
            }
            try resume(after: d.reason)
        }
        do {
            try sweepGoneOwners()
            try tick()
            try renewJobLeasesIfDue()
            try runner.startWorkers(rules: rules)
            try heartbeat(state: .running)
            publishSnapshotIfDue()
            refreshReportsIfDue()
        } catch {
            guard let why = Trouble.transient(error) else { throw error }
            enterDegraded(why)
            return false
        }
        if let why = runner.takeTransient() {
            enterDegraded(why)
            return false
        }
        return true
    }

    static let maximumBackoff = 30.0

    /// How long this daemon's claimed jobs are held without renewal: three times its heartbeat's
    /// time-to-live (`--lease-seconds`), renewed every sixth of it while jobs run.
    var jobLeaseSeconds: Double { 3 * options.leaseSeconds }
    var lastRenewal: Double?

    func renewJobLeasesIfDue() throws {
        guard let owner = session?.id, runner.busy else { return }
        let now = clock.now()
        if let last = lastRenewal, now - last < jobLeaseSeconds / 6 { return }
        lastRenewal = now
        try pipelines.index.renewJobLeases(owner: owner, leaseSeconds: jobLeaseSeconds)
    }
    /// How often the running daemon looks for work of owners that went away meanwhile (a daemon it
    /// took the lease from that was hung, not dead; a hand-run command that was killed).
    static let sweepSeconds = 60.0
    var lastSweep: Double?

    /// Recovers gone owners' runs and requeues their jobs, at most every `sweepSeconds`.
    func sweepGoneOwners() throws {
        let now = clock.now()
        guard now - (lastSweep ?? now) >= Self.sweepSeconds || lastSweep == nil else { return }
        defer { lastSweep = now }
        guard lastSweep != nil else { return }  // start() has just recovered
        try pipelines.recover()
        let requeued = try requeueGoneOwnersJobs()
        if requeued > 0 { log.info("requeued \(requeued) job(s) whose owner is gone", metadata: ["jobs": "\(requeued)"]) }
    }

    /// The index's snapshot for other machines (docs/nas.md): after jobs end, at most every
    /// `snapshotSeconds`, and at least every `snapshotRefreshSeconds` (the daemon's heartbeat).
    static let snapshotSeconds = 2.0
    static let snapshotRefreshSeconds = 30.0
    var lastSnapshot: (at: Double, ended: Int)?

    func publishSnapshotIfDue() {
        let now = clock.now(), ended = runner.endedJobs.load(ordering: .relaxed)
        if let last = lastSnapshot {
            let changed = ended != last.ended && now - last.at >= Self.snapshotSeconds
            guard changed || now - last.at >= Self.snapshotRefreshSeconds else { return }
        }
        lastSnapshot = (now, ended)
        publishSnapshot(else: "other machines see an older one until the next")
    }

    /// The run pages, the dashboard and the metrics file (docs/reports.md): after every job that
    /// ended, and at least every `reportsRefreshSeconds` (the metrics' heartbeat). A failure is a
    /// warning: the pages are views, and the next refresh writes them.
    static let reportsRefreshSeconds = 30.0
    var lastReports: (at: Double, ended: Int)?

    func refreshReportsIfDue() {
        let now = clock.now(), ended = runner.endedJobs.load(ordering: .relaxed)
        if let last = lastReports, ended == last.ended, now - last.at < Self.reportsRefreshSeconds { return }
        lastReports = (now, ended)
        guard let index = pipelines.index as? Index else { return }
        do {
            let outcome = try Reports(root: root, index: index).refresh()
            for failure in outcome.failures { log.warning("the page of run \(failure.run) could not be made: \(failure.error)") }
        } catch {
            log.warning("the dashboard or the metrics file could not be written (\(error)); the next refresh tries again")
        }
    }

    /// Publishes the index's snapshot now (the loop, or a job's thread before it runs); a failure is
    /// logged with what it means (`consequence`).
    func publishSnapshot(else consequence: String) {
        guard let index = pipelines.index as? Index else { return }
        // a daemon that lost its lease (it was suspended) must not overwrite its successor's snapshot
        if let session, DaemonLease.read(root)?.id != session.id { return }
        do { try index.publishSnapshot(root: root) } catch {
            log.warning("could not publish the index's snapshot (\(error)); \(consequence)")
        }
    }

    /// Whether the daemon is degraded now, and why.
    public var degradedReason: String? { degraded?.reason }

    func enterDegraded(_ why: String) {
        if degraded == nil {
            log.error("degraded: \(why); the work stays queued, and the daemon tries again with back-off (1 s, doubling up to \(Int(Self.maximumBackoff)) s)")
            degraded = (why, clock.now() + 1, 1)
        }
        try? session?.heartbeat(state: "degraded", detail: .some(why))
    }

    /// What still stands in the way: a write to the index and a small file in the output tree.
    func probe() -> String? {
        do {
            try heartbeat(state: .running)
            try AtomicFile.write([UInt8](repeating: 0, count: 64 * 1024), to: root.staging + "/.probe")
            unlink(root.staging + "/.probe")
            return nil
        } catch {
            return Trouble.transient(error) ?? "\(error)"
        }
    }

    /// Back from degraded: published runs not indexed are indexed, and this daemon's jobs that were
    /// left running (their end could not be recorded) are queued again.
    func resume(after reason: String) throws {
        degraded = nil
        try pipelines.reconcilePublished()
        let me = session?.id
        let busy = runner.runningJobs
        let requeued = try requeueGoneOwnersJobs()
        var mine = 0
        for job in try pipelines.index.jobs(states: [.running], limit: 1000) where job.owner == me && !busy.contains(job.id) {
            try pipelines.index.requeueJob(job.id, detail: "requeued: its end could not be recorded (\(reason))")
            mine += 1
        }
        try? session?.heartbeat(state: "running", detail: .some(nil))
        let again = requeued + mine > 0 ? "; \(requeued + mine) job(s) queued again" : ""
        log.info("resumed: the daemon was degraded (\(reason)) and can work again\(again)")
    }

    // MARK: - Rules reload, heartbeat

    var configurationStamp: FileStamp?

    /// dropline.yaml edited: the new thresholds and recipe for the next jobs; an invalid edit keeps
    /// the previous configuration, as with the rules.
    func reloadConfigurationIfChanged() {
        let stamp = FileStamp(path: root.path + "/" + RootConfiguration.fileName)
        guard stamp != configurationStamp else { return }
        configurationStamp = stamp
        do {
            pipelines.configuration = try RootConfiguration.load(root: root.path)
            log.info("reloaded \(RootConfiguration.fileName)")
        } catch {
            log.error("the edited \(RootConfiguration.fileName) is invalid, the previous configuration stays in force: \(error)")
        }
    }

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
}

/// What the loop waits on between looks: inotify on local disks (a change wakes it early), or the
/// clock on network and FUSE mounts (inotify sees nothing written by other machines) and with `--poll`.
struct Waker {
    var watcher: InotifyWatcher?
    var pollSeconds: Double?
    /// Rung when another daemon sharing the index queued a job (LISTEN/NOTIFY).
    let bell = JobBell()
    /// Whether the bell can ring: waits are then cut into short slices that look at it.
    var listening = false
    let clock: any DaemonClock
    let log: Logger

    init(root: DroplineRoot, options: WatchOptions, clock: any DaemonClock, log: Logger) {
        self.clock = clock
        self.log = log
        pollSeconds = options.pollSeconds
        if pollSeconds == nil, let type = MountKind.remote(root.inbox) {
            pollSeconds = WatchOptions.defaultPollSeconds
            log.info("the inbox is on a \(type) mount, where inotify sees no changes made by other machines; polling every \(Int(WatchOptions.defaultPollSeconds)) s")
        }
        if let type = MountKind.remote(root.inbox), options.settleSeconds < Self.attributeCacheSeconds {
            log.warning("""
                the inbox is on a \(type) mount, whose attribute cache can hide a producer's changes from this machine for up to \
                \(Int(Self.attributeCacheSeconds)) s (NFS's default acdirmax): a batch without a marker may look settled before it is \
                (--settle is \(Int(options.settleSeconds)) s). Have producers write \(options.marker) last, or settle longer (docs/nas.md)
                """)
        }
        if pollSeconds == nil {
            do { watcher = try InotifyWatcher(root: root.inbox) } catch {
                pollSeconds = WatchOptions.defaultPollSeconds
                log.warning("\(error); polling every \(Int(WatchOptions.defaultPollSeconds)) s instead")
            }
        }
    }

    /// How long a network client may cache attributes by default (NFS's acdirmax).
    static let attributeCacheSeconds = 60.0

    var mode: String { pollSeconds.map { "polling every \($0) s" } ?? "inotify" }

    mutating func wait(timeout: Double) {
        if listening {
            // until the timeout, a change in the inbox, or the bell
            let end = clock.now() + timeout
            while !bell.take() {
                let left = end - clock.now()
                guard left > 0 else { return }
                guard let active = watcher else {
                    clock.sleep(min(left, 0.1))
                    continue
                }
                do { if try active.wait(timeout: min(left, 0.1)) { return } } catch {
                    log.warning("\(error)")
                    watcher = nil
                    pollSeconds = WatchOptions.defaultPollSeconds
                }
            }
            return
        }
        guard let active = watcher else { return clock.sleep(min(timeout, 0.5)) }
        do { _ = try active.wait(timeout: min(timeout, 1)) } catch {
            // out of inotify watches: say so and poll from now on
            log.warning("\(error)")
            watcher = nil
            pollSeconds = WatchOptions.defaultPollSeconds
        }
    }
}

/// A flag another thread sets to cut the daemon's wait short.
final class JobBell: Sendable {
    let rung = Atomic<Bool>(false)
    func ring() { rung.store(true, ordering: .sequentiallyConsistent) }
    /// Whether it rang since the last look (and silence again).
    func take() -> Bool { rung.exchange(false, ordering: .sequentiallyConsistent) }
}
