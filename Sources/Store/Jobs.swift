import DroplineSupport
import Foundation
public import GRDB

/// A job of the watch daemon's queue: an event (a landed batch, a flag) with the content hash it
/// had when it was queued. The same event with the same content is queued once; new content is a
/// new job.
public struct Job: Codable, Sendable, Equatable, FetchableRecord {
    public var id: Int64
    public var event: JobEvent
    public var path: String
    public var contentSha256: String
    public var state: JobState
    public var attempts: Int
    public var detail: String?
    public var createdAt: String
    public var startedAt: String?
    public var finishedAt: String?
    /// The owner id of the daemon that claimed it (while running).
    public var owner: String?
    /// Until when its daemon holds it (while running; renewed by that daemon): after that, any
    /// daemon sharing the index may claim it again.
    public var leaseUntil: String?

    enum CodingKeys: String, CodingKey {
        case id, event, path, state, attempts, detail, owner
        case contentSha256 = "content_sha256", createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
        case leaseUntil = "lease_until"
    }
}

/// The durable job queue, in the index: jobs survive restarts, and a job left running by a process
/// that died is queued again (its pipeline run was already recovered to a clean state).
extension Index {
    /// Queues a job; returns it, or nil when the same event with the same content was queued before
    /// (unless `force`, which queues it again).
    @discardableResult
    public func enqueue(event: JobEvent, path: String, contentSha256: String, force: Bool = false) throws -> Job? {
        try writing { db in
            if let existing = try db.record(Job.self, sql: "SELECT * FROM jobs WHERE event = ? AND path = ? AND content_sha256 = ?",
                                               arguments: [event.rawValue, path, contentSha256]) {
                guard force, existing.state != .queued, existing.state != .running else { return nil }
                try db.execute(sql: "UPDATE jobs SET state = 'queued', detail = 'forced again', started_at = NULL, finished_at = NULL WHERE id = ?",
                               arguments: [existing.id])
                try Self.notifyJobQueued(db)
                return try db.record(Job.self, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [existing.id])
            }
            try Self.notifyJobQueued(db)
            return try db.record(Job.self, sql: "INSERT INTO jobs (event, path, content_sha256, state, created_at) VALUES (?, ?, ?, 'queued', ?) RETURNING *",
                                 arguments: [event.rawValue, path, contentSha256, Self.now()])
        }
    }

    /// Takes the oldest queued job, or a running one whose lease expired (its daemon stopped
    /// renewing it: killed, or cut off), and marks it running under `owner` with a lease of
    /// `leaseSeconds` by the index's clock. A job queued again after an interruption keeps the start
    /// time of its first attempt. Jobs on a path that is running (another version of the same batch,
    /// flag or file) wait for it, so each path's jobs run in order.
    ///
    /// On PostgreSQL the row is taken with `FOR UPDATE SKIP LOCKED`: daemons claiming at once take
    /// different jobs without waiting for each other; two that pick jobs of the same path are told
    /// apart by the schema (one running job per path), and the loser looks again.
    public func claimNextJob(owner: String?, leaseSeconds: Double) throws -> Job? {
        for _ in 0..<20 {
            do {
                return try claiming { db in
                    let now = try Self.databaseNow(db)
                    let until = ISOTime.string((ISOTime.parse(now) ?? Date()).addingTimeInterval(leaseSeconds))
                    let lock = db.dialect == .postgresql ? " FOR UPDATE SKIP LOCKED" : ""
                    guard let job = try db.record(Job.self, sql: """
                        SELECT * FROM jobs WHERE (state = 'queued' OR (state = 'running' AND lease_until < ?))
                        AND path NOT IN (SELECT path FROM jobs WHERE state = 'running' AND (lease_until IS NULL OR lease_until >= ?))
                        ORDER BY id LIMIT 1\(lock)
                        """, arguments: [now, now]) else { return nil }
                    let detail = job.state == .running ? "reclaimed: the lease of \(job.owner ?? "its daemon") expired at \(job.leaseUntil ?? "?")" : job.detail
                    // started_at is the first attempt's start: a retried job looks for runs it finished since then
                    return try db.record(Job.self, sql: """
                        UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = coalesce(started_at, ?), owner = ?, lease_until = ?, detail = ?
                        WHERE id = ? RETURNING *
                        """, arguments: [now, owner, until, detail, job.id])
                }
            } catch let error as PostgresIndexError where error.sqlState == "23505" || error.sqlState == "40001" {
                continue  // another daemon took a job of the same path first
            }
        }
        throw StoreError("could not claim a job: other daemons kept taking the same paths first; the next look tries again")
    }

    /// How long a claimed job is held without renewal, by default: three times the daemon's
    /// heartbeat time-to-live, so that a daemon another machine judges gone by its heartbeat has
    /// also lost its jobs' leases.
    public static let defaultJobLeaseSeconds = 90.0

    /// The channel daemons sharing a PostgreSQL index listen on: a NOTIFY is sent (at commit) with
    /// every job queued.
    static let jobsChannel = "dropline_jobs"

    static func notifyJobQueued(_ db: IndexTransaction) throws {
        guard db.dialect == .postgresql else { return }
        try db.execute(sql: "SELECT pg_notify(?, '')", arguments: [jobsChannel])
    }

    /// Calls `wake` (on another thread) whenever a process queues a job in this index; nil on
    /// SQLite, whose one daemon queues its own jobs. Stop the listener to end it.
    public func listenForJobs(_ wake: @escaping @Sendable () -> Void) throws -> PostgresListener? {
        guard case .postgresql(let connection) = storage else { return nil }
        return try connection.listen(channel: Self.jobsChannel, wake)
    }

    /// Renews the leases of the jobs `owner` runs, by the index's clock; returns how many.
    @discardableResult
    public func renewJobLeases(owner: String, leaseSeconds: Double) throws -> Int {
        try claiming { db in
            let until = ISOTime.string((ISOTime.parse(try Self.databaseNow(db)) ?? Date()).addingTimeInterval(leaseSeconds))
            try db.execute(sql: "UPDATE jobs SET lease_until = ? WHERE owner = ? AND state = 'running'", arguments: [until, owner])
            return db.changesCount
        }
    }

    /// The index's clock: the server's on PostgreSQL (one clock for every machine that shares it),
    /// this machine's on SQLite (one machine).
    static func databaseNow(_ db: IndexTransaction) throws -> String {
        switch db.dialect {
        case .sqlite: return now()
        case .postgresql:
            return try db.value(String.self, sql: #"SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#) ?? now()
        }
    }

    /// Ends a job: succeeded, failed or skipped, with what happened.
    public func finishJob(_ id: Int64, state: JobState, detail: String) throws {
        try writing { db in
            try db.execute(sql: "UPDATE jobs SET state = ?, detail = ?, finished_at = ?, lease_until = NULL WHERE id = ?", arguments: [state.rawValue, detail, Self.now(), id])
        }
    }

    /// Queues again the jobs left running by owners that are gone (`isGone` says, per owner id; nil:
    /// from before owners were tracked); returns how many.
    public func requeueInterruptedJobs(isGone: (String?) -> Bool) throws -> Int {
        let owners = try reading { db in try db.fetchAll(sql: "SELECT id, owner FROM jobs WHERE state = 'running'").map { ($0["id"] as Int64, $0["owner"] as String?) } }
        let gone = owners.filter { isGone($0.1) }.map(\.0)
        guard !gone.isEmpty else { return 0 }
        return try writing { db in
            var count = 0
            for id in gone {
                try db.execute(sql: "UPDATE jobs SET state = 'queued', owner = NULL, lease_until = NULL, detail = 'requeued: the daemon that ran it stopped' WHERE id = ? AND state = 'running'",
                               arguments: [id])
                count += db.changesCount
            }
            return count
        }
    }

    /// Puts a running job back in the queue (its daemon could not go on: a full disk, a locked index).
    public func requeueJob(_ id: Int64, detail: String) throws {
        try writing { db in
            try db.execute(sql: "UPDATE jobs SET state = 'queued', owner = NULL, lease_until = NULL, detail = ? WHERE id = ? AND state = 'running'", arguments: [detail, id])
            try Self.notifyJobQueued(db)
        }
    }

    /// Queues failed jobs again (after the cause was fixed, e.g. a first model was trained); returns how many.
    public func requeueFailedJobs() throws -> Int {
        try writing { db in
            try db.execute(sql: "UPDATE jobs SET state = 'queued', detail = 'retrying: ' || coalesce(detail, ''), started_at = NULL, finished_at = NULL WHERE state = 'failed'")
            return db.changesCount
        }
    }

    public func jobs(states: [JobState]? = nil, limit: Int = 50) throws -> [Job] {
        try reading { db in
            if let states {
                let marks = states.map { _ in "?" }.joined(separator: ", ")
                return try db.records(Job.self, sql: "SELECT * FROM jobs WHERE state IN (\(marks)) ORDER BY id DESC LIMIT ?",
                                        arguments: states.map(\.rawValue) + [limit])
            }
            return try db.records(Job.self, sql: "SELECT * FROM jobs ORDER BY id DESC LIMIT ?", arguments: [limit])
        }
    }

    /// Records one rule's decision on a job.
    public func recordFiring(job: Int64, rule: String, fired: Bool, reason: String, actions: [String], outcome: String?) throws {
        try writing { db in
            try db.execute(sql: "INSERT INTO rule_firings (job_id, rule, fired, reason, actions, outcome, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [job, rule, fired, reason, actions.joined(separator: "; "), outcome, Self.now()])
        }
    }

    /// Every rule's decision on a job, in the order the rules were checked.
    public func firings(job: Int64) throws -> [RuleFiring] {
        try reading { db in
            try db.fetchAll(sql: "SELECT * FROM rule_firings WHERE job_id = ? ORDER BY id", arguments: [job]).map {
                RuleFiring(job: $0["job_id"], rule: $0["rule"], fired: ($0["fired"] as Int) == 1, reason: $0["reason"], actions: $0["actions"],
                           outcome: $0["outcome"], at: $0["at"])
            }
        }
    }

    /// The latest job on `path`.
    public func latestJob(path: String) throws -> Job? {
        try reading { db in try db.record(Job.self, sql: "SELECT * FROM jobs WHERE path = ? ORDER BY id DESC LIMIT 1", arguments: [path]) }
    }

    /// How many jobs on `path` have ended, and how many jobs (on any path) are queued or running.
    public func jobProgress(path: String) throws -> (ended: Int, busy: Int) {
        try reading { db in
            (try db.value(Int.self, sql: "SELECT count(*) FROM jobs WHERE path = ? AND state IN ('succeeded', 'failed', 'skipped')", arguments: [path]) ?? 0,
             try db.value(Int.self, sql: "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')") ?? 0)
        }
    }

    /// The outcome of the last rule that fired on a job on `path`.
    public func lastFiredOutcome(path: String) throws -> String? {
        try reading { db in
            try db.value(String.self, sql: """
                SELECT f.outcome FROM rule_firings f JOIN jobs j ON j.id = f.job_id WHERE j.path = ? AND f.fired = 1 ORDER BY f.id DESC LIMIT 1
                """, arguments: [path])
        }
    }

    /// The daemon's heartbeat row, if a daemon ever ran on this root.
    public func daemonState() throws -> DaemonState? {
        try reading { db in
            try db.fetchOne(sql: "SELECT * FROM daemon WHERE id = 1").map {
                DaemonState(pid: $0["pid"], mode: $0["mode"], state: DaemonState.State(rawValue: $0["state"]) ?? .stopped, startedAt: $0["started_at"],
                            heartbeatAt: $0["heartbeat_at"], rulesFile: $0["rules_file"], rulesError: $0["rules_error"])
            }
        }
    }

    /// The daemon's heartbeat row: what `dropline status` reads.
    public func daemonHeartbeat(pid: Int32, mode: String, state: DaemonState.State, startedAt: String, rulesFile: String, rulesError: String?) throws {
        try writing { db in
            try db.execute(sql: """
                INSERT INTO daemon (id, pid, mode, state, started_at, heartbeat_at, rules_file, rules_error) VALUES (1, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, mode = excluded.mode, state = excluded.state, started_at = excluded.started_at,
                    heartbeat_at = excluded.heartbeat_at, rules_file = excluded.rules_file, rules_error = excluded.rules_error
                """, arguments: [pid, mode, state.rawValue, startedAt, Self.now(), rulesFile, rulesError])
        }
    }
}
