import DroplineSupport
import Logging
import Rules
import Store

/// Where the daemon's work comes from: the inbox, the flag folders, the labels folder, the rules'
/// schedules and the model registry. Each source looks at what it watches, offers what is new to the
/// durable job queue (which drops content it has seen), and says when it wants to look again.
/// File-system events are only wake-ups; a source's look is the truth.
protocol EventSource {
    /// Looks for what is new at time `now` and offers it to `queue`.
    mutating func collect(now: Double, rules: RuleSet, queue: EventQueue) throws
    /// The next time (seconds since the epoch) this source must look again even without a wake-up
    /// (a batch that may settle), or nil.
    func nextDeadline(now: Double) -> Double?
}

extension EventSource {
    func nextDeadline(now: Double) -> Double? { nil }
}

/// What sources offer events to: the job queue, the log, and the record of refusals.
final class EventQueue {
    let root: DroplineRoot
    let index: any DroplineIndex
    let log: Logger
    /// Refusals already recorded, by area (a folder the daemon scans) -> path -> reason: each is
    /// logged and indexed once while it stands, and again if it comes back after being fixed.
    var refusals: [String: [String: String]] = [:]

    init(root: DroplineRoot, index: any DroplineIndex, log: Logger) {
        self.root = root
        self.index = index
        self.log = log
    }

    /// Queues `event` on `path` with its content hash; logs `what` when it is new.
    @discardableResult
    func offer(_ event: JobEvent, path: String, contentSha256: String, what: String) throws -> Job? {
        guard let job = try index.enqueue(event: event, path: path, contentSha256: contentSha256) else { return nil }
        log.info("\(what); queued job \(job.id)", metadata: ["job": "\(job.id)"])
        return job
    }

    /// Logs and indexes the refusals one look at `area` found that were not already recorded.
    func report(_ found: [(path: String, reason: String)], area: String) throws {
        var current: [String: String] = [:]
        for (path, reason) in found { current[path] = reason }
        for (path, reason) in current.sorted(by: { $0.key < $1.key }) where refusals[area]?[path] != reason {
            log.warning("refused \(path): \(reason)", metadata: ["path": "\(path)"])
            try index.recordRefusal(path: path, reason: reason)
        }
        refusals[area] = current
    }
}
