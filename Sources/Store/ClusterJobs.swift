import Foundation
public import GRDB

/// A batch-scheduler job (Slurm) a daemon submitted for one of its queue's jobs: a shard array, the
/// merge after it, a training. Recorded when submitted and whenever the daemon sees its state change.
public struct ClusterJob: Codable, Sendable, Equatable, FetchableRecord {
    /// The scheduler's id (`1234`, or `1234_[0-7]` for an array as a whole).
    public var clusterJobId: String
    /// The daemon's job it serves.
    public var jobId: Int64
    public var runId: String?
    /// `shards`, `merge` or `train`.
    public var step: String
    /// The scheduler's word for its state (PENDING, RUNNING, COMPLETED, FAILED, NODE_FAIL, CANCELLED, ...).
    public var state: String
    public var detail: String?
    /// 1 for the first submission of its step, then one more per resubmission.
    public var attempt: Int
    public var submittedAt: String
    public var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case step, state, detail, attempt
        case clusterJobId = "cluster_job_id", jobId = "job_id", runId = "run_id", submittedAt = "submitted_at", updatedAt = "updated_at"
    }

    public init(clusterJobId: String, jobId: Int64, runId: String?, step: String, state: String, detail: String? = nil, attempt: Int = 1) {
        self.clusterJobId = clusterJobId
        self.jobId = jobId
        self.runId = runId
        self.step = step
        self.state = state
        self.detail = detail
        self.attempt = attempt
        submittedAt = Index.now()
        updatedAt = submittedAt
    }

    /// The states a scheduler job does not leave.
    public static let endedStates: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "NODE_FAIL", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL",
                                                  "DEADLINE", "PREEMPTED", "GONE", "SUPERSEDED"]
    public var ended: Bool { Self.endedStates.contains(state) }
}

extension Index {
    /// Records a submitted scheduler job.
    public func recordClusterJob(_ job: ClusterJob) throws {
        try writing { db in
            try db.execute(sql: """
                INSERT INTO cluster_jobs (cluster_job_id, job_id, run_id, step, state, detail, attempt, submitted_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (cluster_job_id) DO UPDATE SET state = excluded.state, detail = excluded.detail, updated_at = excluded.updated_at
                """, arguments: [job.clusterJobId, job.jobId, job.runId, job.step, job.state, job.detail, job.attempt, job.submittedAt, job.updatedAt])
        }
    }

    /// Records the state a scheduler job was seen in (nothing when it was already recorded so).
    public func updateClusterJob(_ id: String, state: String, detail: String?) throws {
        try writing { db in
            try db.execute(sql: "UPDATE cluster_jobs SET state = ?, detail = ?, updated_at = ? WHERE cluster_job_id = ? AND (state <> ? OR COALESCE(detail, '') <> COALESCE(?, ''))",
                           arguments: [state, detail, Self.now(), id, state, detail])
        }
    }

    /// The scheduler jobs of a daemon's job, oldest first.
    public func clusterJobs(job: Int64) throws -> [ClusterJob] {
        try reading { db in
            try db.records(ClusterJob.self, sql: "SELECT * FROM cluster_jobs WHERE job_id = ? ORDER BY submitted_at, cluster_job_id", arguments: [job])
        }
    }

    /// The most recent scheduler jobs, newest first (what `status` shows).
    public func recentClusterJobs(limit: Int) throws -> [ClusterJob] {
        try reading { db in
            try db.records(ClusterJob.self, sql: "SELECT * FROM cluster_jobs ORDER BY updated_at DESC, cluster_job_id DESC LIMIT ?", arguments: [limit])
        }
    }
}
