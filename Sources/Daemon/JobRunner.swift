import DroplineSupport
import Foundation
import Logging
import Modeling
import Pipeline
import Rules
import Store
import Synchronization
import SystemFiles

/// Runs the queue's jobs through the rules: claims them, decides with the rules in force when each
/// was claimed, performs the fired rules' actions in order (`DaemonAction`, one file per action),
/// and records every rule's decision and the job's end. With `concurrentJobs` > 1, jobs run on worker
/// threads side by side (jobs on the same path still run in order: `claimNextJob`).
///
/// Unchecked Sendable: worker threads touch only immutable configuration, the index (serialized),
/// the logger (Sendable) and `running` (a mutex).
final class JobRunner: @unchecked Sendable {
    let root: DroplineRoot
    let pipelines: Pipelines
    let log: Logger
    let training: TrainingConfiguration
    let overrides: TrainingOverrides
    let concurrentJobs: Int
    let commands = CommandRunner()
    let stop: StopRequest?
    /// Jobs running on worker threads.
    let running = Mutex<Set<Int64>>([])
    /// The owner id jobs are claimed under (the daemon's session).
    var owner: String?
    /// How long a claimed job is held without renewal (`WatchDaemon.renewJobLeasesIfDue` renews it).
    var jobLeaseSeconds = Index.defaultJobLeaseSeconds
    /// The marker producers write last.
    var marker = "_READY"
    /// Where the pipelines run: here, or as Slurm jobs.
    var executor = Executor.inProcess
    /// A transient trouble a job ran into (the daemon goes degraded; the job was queued again).
    let transient = Mutex<String?>(nil)

    var runningJobs: Set<Int64> { running.withLock { $0 } }
    /// How many jobs ended (the daemon publishes the index's snapshot when it changes).
    let endedJobs = Atomic<Int>(0)
    /// Jobs whose rules train a model, from their decision to their end: a model they register is
    /// not announced (model_trained) before the job's promote action has decided on it.
    var trainingJobs = TrainingGate()
    /// Called with each claimed job before it runs (on the job's thread): the daemon of a root on a
    /// network share publishes the index's snapshot there, so that any run the job publishes belongs
    /// to a job the snapshot holds, and a machine adopting it reuses the run instead of serving again.
    var beforeRun: (@Sendable (Job) -> Void)?

    /// The transient trouble seen since the last call, if any.
    func takeTransient() -> String? { transient.withLock { t in defer { t = nil }; return t } }

    init(root: DroplineRoot, pipelines: Pipelines, log: Logger, training: TrainingConfiguration, overrides: TrainingOverrides = TrainingOverrides(),
         concurrentJobs: Int, stop: StopRequest?) {
        self.root = root
        self.pipelines = pipelines
        self.log = log
        self.training = training
        self.overrides = overrides
        self.concurrentJobs = max(1, concurrentJobs)
        self.stop = stop
    }

    var busy: Bool { !running.withLock { $0.isEmpty } }

    /// Claims queued jobs while fewer than `concurrentJobs` run, each on its own thread with the
    /// rules given; a job's failure to record its end is logged, and the job is requeued at the next start.
    func startWorkers(rules: RuleSet) throws {
        while stop?.requested != true, running.withLock({ $0.count }) < concurrentJobs, let job = try pipelines.index.claimNextJob(owner: owner, leaseSeconds: jobLeaseSeconds) {
            running.withLock { _ = $0.insert(job.id) }
            let thread = Thread { [self] in
                do { try handle(job, rules: rules) } catch {
                    noteFailure(of: job, error)
                }
                running.withLock { _ = $0.remove(job.id) }
            }
            thread.name = "dropline-job-\(job.id)"
            thread.start()
        }
    }

    /// Runs every queued job on the calling thread, in queue order, until none is left (tests and
    /// `--once` callers that want no threads). Returns how many ran.
    @discardableResult
    func runQueued(rules: RuleSet) throws -> Int {
        var count = 0
        while stop?.requested != true, transient.withLock({ $0 == nil }), let job = try pipelines.index.claimNextJob(owner: owner, leaseSeconds: jobLeaseSeconds) {
            do { try handle(job, rules: rules) } catch {
                guard Trouble.transient(error) != nil else { throw error }
                noteFailure(of: job, error)
            }
            count += 1
        }
        return count
    }

    /// Waits for the worker threads to end their current job.
    func waitForWorkers() {
        guard busy else { return }
        log.info("waiting for the running jobs to finish their current step")
        while busy { usleep(100_000) }
    }

    /// A job whose end could not be recorded: transient (queued again when the daemon resumes) or not
    /// (queued again at the next start).
    func noteFailure(of job: Job, _ error: any Error) {
        if let why = Trouble.transient(error) {
            transient.withLock { $0 = $0 ?? why }
            try? pipelines.index.requeueJob(job.id, detail: "waiting: \(why)")
            log.warning("job \(job.id) waits: \(why); it runs again when the daemon resumes", metadata: ["job": "\(job.id)"])
        } else {
            log.error("job \(job.id) could not be recorded: \(error); it is queued again at the next start", metadata: ["job": "\(job.id)"])
        }
    }

    // MARK: - One job

    func handle(_ job: Job, rules: RuleSet) throws {
        let meta: Logger.Metadata = ["job": "\(job.id)"]
        log.info("job \(job.id): \(job.event.rawValue) \(job.path)", metadata: meta)
        if job.attempts > 1 {
            // an earlier attempt's daemon may have died after publishing its run and before indexing
            // it: that run is completed from its manifest first, so the job finds it instead of serving again
            try pipelines.recover()
        }
        beforeRun?(job)
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
        let trains = decisions.contains { $0.fired && $0.actions.contains { if case .train = $0 { true } else { false } } }
        if trains { trainingJobs.count.add(1, ordering: .sequentiallyConsistent) }
        defer { if trains { trainingJobs.count.subtract(1, ordering: .sequentiallyConsistent) } }
        var outcomes: [String] = []
        var failed: String?
        for decision in decisions {
            guard decision.fired, failed == nil else {
                try pipelines.index.recordFiring(job: job.id, rule: decision.rule, fired: false,
                                                 reason: failed == nil ? decision.reason : "not run: an earlier action failed", actions: [], outcome: nil)
                continue
            }
            let ruleMeta: Logger.Metadata = ["job": "\(job.id)", "rule": "\(decision.rule)"]
            log.info("rule \(decision.rule) fires: \(decision.actions.map(\.description).joined(separator: ", "))", metadata: ruleMeta)
            var results: [String] = []
            var context = ActionContext(root: root, pipelines: pipelines, job: job, event: event, training: training, overrides: overrides, commands: commands, stop: stop)
            context.marker = marker
            if case .slurm(let partition) = executor {
                // the settings as dropline.yaml has them now (the daemon reloads it when it changes)
                context.slurm = SlurmExecutor(settings: SlurmSettings(pipelines.configuration.slurm, partition: partition), log: log)
            }
            for action in decision.actions {
                do {
                    let result = try action.performer.perform(&context)
                    results.append(result)
                    log.info("\(result)", metadata: ruleMeta)
                } catch {
                    // a locked index or a full disk is not the job's fault: it waits and runs again
                    if Trouble.transient(error) != nil { throw error }
                    failed = "\(action): \(error)"
                    log.error("rule \(decision.rule): \(action) failed: \(error)", metadata: ruleMeta)
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
                            metadata: meta)
            }
        }
        try finish(job, state: state, detail: detail)
    }

    /// The rules' view of a job's event, read now (a flag's values, a model's fields); nil when
    /// what it concerns is gone.
    func makeEvent(_ job: Job) throws -> Event? {
        guard let kind = EventKind(rawValue: job.event.rawValue) else { throw DaemonError("unknown event \(job.event.rawValue)") }
        switch kind {
        case .flagCreated:
            let path = root.path + "/" + job.path
            guard FileSystem.entryType(path) != nil else { return nil }
            return try Event.flag(relativePath: job.path, json: try AtomicFile.read(path, limit: DroppedFileSource.maximumBytes, links: .refuse))
        case .schedule:
            return Event(kind: .schedule, path: job.path)
        case .modelTrained:
            guard let model = try pipelines.index.model(folder: job.path) else { return nil }
            var fields: [String: Value] = ["model.version": .number(Double(model.version)), "model.stage": .string(model.stage),
                                           "model.validation_accuracy": .number(model.validationAccuracy), "model.state": .string(model.state.rawValue)]
            if let run = model.trainRunId { fields["model.run"] = .string(run) }
            return Event(kind: .modelTrained, path: job.path, fields: fields)
        default:
            guard FileSystem.entryType(root.inbox + "/" + job.path) != nil else { return nil }
            return Event(kind: kind, path: job.path)
        }
    }

    /// Ends a job; a flag job's file moves to flags/done/ and its outcome goes into the flags table.
    func finish(_ job: Job, state: JobState, detail: String) throws {
        try pipelines.index.finishJob(job.id, state: state, detail: detail)
        endedJobs.add(1, ordering: .relaxed)
        let line = "job \(job.id) \(state.rawValue): \(detail)" + (state == .failed ? " (fix the cause, then `dropline watch --retry-failed` runs it again)" : "")
        if state == .failed { log.error("\(line)", metadata: ["job": "\(job.id)"]) } else { log.info("\(line)", metadata: ["job": "\(job.id)"]) }
        if job.event == .batchLanded {
            // the producer's view; the job's record is what counts, so a failure here is only logged
            do { try BatchOutcome.write(root: root, index: pipelines.index, job: job, state: state, detail: detail) } catch {
                log.warning("could not write the outcome of \(job.path) for its producer: \(error)", metadata: ["job": "\(job.id)"])
            }
        }
        guard job.event == .flagCreated else { return }
        let source = root.path + "/" + job.path
        guard FileSystem.entryType(source) != nil else { return }
        let parts = job.path.split(separator: "/")
        let kind = String(parts[1])
        let done = root.flags("done") + "/\(kind)-job\(job.id)-" + parts.last!
        try FileManager.default.moveItem(atPath: source, toPath: done)
        try pipelines.index.handleFlag(kind: FlagKind(rawValue: kind) ?? .retrain, path: job.path, subject: String(parts.last!.dropLast(5)),
                                       createdAt: job.createdAt, outcome: "\(state.rawValue): \(detail)")
    }
}

/// How many jobs are training now (shared by the runner and the model source, which outlives a
/// runner replaced at start-up).
final class TrainingGate: Sendable {
    let count = Atomic<Int>(0)
    var busy: Bool { count.load(ordering: .sequentiallyConsistent) > 0 }
}
