import Foundation
import GRDB

/// One served batch on the dashboard's time axis.
public struct BatchPoint: Sendable, Equatable {
    public var run: String
    public var subject: String
    public var folder: String
    public var finishedAt: String
    public var modelVersion: Int?
    public var drift: Bool
    public var reason: String
    public var batchSize: Int
    public var minimumAdjustedPValue: Double?
    public var maximumStatistic: Double?
    public var estimatedAccuracy: Double?
    public var estimatedAccuracyDrop: Double?
    /// How many data-quality checks the batch broke; nil when it was not checked (the model version
    /// had no baseline, or the run predates data quality).
    public var qualityViolations: Int?
}

/// A served batch's accuracy from merged ground truth.
public struct AccuracyPoint: Sendable, Equatable {
    public var run: String
    public var subject: String
    public var servedAt: String
    public var labelledAt: String
    public var labelled: Int
    public var accuracy: Double
    public var constraintAccuracy: Double
    public var belowConstraint: Bool
}

/// What the metrics file counts, over the root's whole history.
public struct IndexTotals: Sendable, Equatable {
    public struct Runs: Sendable, Equatable {
        public var kind: String, status: String, count: Int, seconds: Double
    }
    public var runs: [Runs] = []
    public var imagesServed = 0
    /// Files refused in served batches, by outcome (`not_regular`, `corrupt`, ...).
    public var refusals: [String: Int] = [:]
    public var driftDecisions: [Bool: Int] = [:]
    public var jobs: [String: Int] = [:]
    public var flags: [String: Int] = [:]
    public var unhandledFlags = 0
}

/// The index's answers for the reports (the run pages, the dashboard and the metrics file).
extension Index {
    /// Served batches that succeeded, oldest first (the newest `limit`).
    public func batchTimeline(limit: Int = 500) throws -> [BatchPoint] {
        try reading { db in
            try db.fetchAll(sql: """
                SELECT * FROM (
                  SELECT r.id, r.subject, r.folder, r.finished_at, r.model_version, d.drift, d.reason, d.batch_size, d.estimated_accuracy, d.estimated_accuracy_drop,
                         (SELECT min(adjusted_p_value) FROM drift_results x WHERE x.run_id = r.id) AS p,
                         (SELECT max(statistic) FROM drift_results x WHERE x.run_id = r.id) AS statistic,
                         CASE WHEN q.baseline_sha256 IS NULL THEN NULL ELSE q.violations END AS quality_violations
                  FROM runs r JOIN drift_decisions d ON d.run_id = r.id LEFT JOIN quality_checks q ON q.run_id = r.id
                  WHERE r.kind = 'serve' AND r.status = 'succeeded'
                  ORDER BY r.finished_at DESC, r.id DESC LIMIT ?) AS recent
                ORDER BY finished_at, id
                """, arguments: [limit]).map {
                BatchPoint(run: $0["id"], subject: $0["subject"], folder: $0["folder"], finishedAt: $0["finished_at"], modelVersion: $0["model_version"],
                           drift: ($0["drift"] as Int) == 1, reason: $0["reason"], batchSize: $0["batch_size"],
                           minimumAdjustedPValue: $0["p"], maximumStatistic: $0["statistic"],
                           estimatedAccuracy: $0["estimated_accuracy"], estimatedAccuracyDrop: $0["estimated_accuracy_drop"],
                           qualityViolations: $0["quality_violations"])
            }
        }
    }

    /// Served batches with merged ground truth, in serving order.
    public func accuracyTimeline(limit: Int = 500) throws -> [AccuracyPoint] {
        try reading { db in
            try db.fetchAll(sql: """
                SELECT * FROM (
                  SELECT r.id, r.subject, r.finished_at, q.at, q.labelled, q.accuracy, q.constraint_accuracy, q.below_constraint
                  FROM quality q JOIN runs r ON r.id = q.run_id
                  ORDER BY r.finished_at DESC, r.id DESC LIMIT ?) AS recent
                ORDER BY finished_at, id
                """, arguments: [limit]).map {
                AccuracyPoint(run: $0["id"], subject: $0["subject"], servedAt: $0["finished_at"], labelledAt: $0["at"], labelled: $0["labelled"],
                              accuracy: $0["accuracy"], constraintAccuracy: $0["constraint_accuracy"], belowConstraint: ($0["below_constraint"] as Int) == 1)
            }
        }
    }

    /// The accuracy merged for one served run, if any.
    public func accuracy(run: String) throws -> AccuracyPoint? {
        try reading { db in
            try db.fetchOne(sql: """
                SELECT r.id, r.subject, r.finished_at, q.at, q.labelled, q.accuracy, q.constraint_accuracy, q.below_constraint
                FROM quality q JOIN runs r ON r.id = q.run_id WHERE r.id = ?
                """, arguments: [run]).map {
                AccuracyPoint(run: $0["id"], subject: $0["subject"], servedAt: $0["finished_at"], labelledAt: $0["at"], labelled: $0["labelled"],
                              accuracy: $0["accuracy"], constraintAccuracy: $0["constraint_accuracy"], belowConstraint: ($0["below_constraint"] as Int) == 1)
            }
        }
    }

    /// Runs that failed, newest first.
    public func failedRuns(limit: Int) throws -> [RunRecord] {
        try reading { db in
            try db.records(RunRecord.self, sql: "SELECT * FROM runs WHERE status = 'failed' ORDER BY finished_at DESC, id DESC LIMIT ?", arguments: [limit])
        }
    }

    /// Runs of one kind, newest first.
    public func runs(kind: RunKind, limit: Int) throws -> [RunRecord] {
        try reading { db in
            try db.records(RunRecord.self, sql: "SELECT * FROM runs WHERE kind = ? ORDER BY started_at DESC, id DESC LIMIT ?", arguments: [kind.rawValue, limit])
        }
    }

    /// The time of the newest record that changes what a run's page shows: the run's end, its
    /// model's promotions (training runs) or its merged ground truth (serve runs).
    public func lastChange(run: String) throws -> String? {
        try reading { db in
            try db.value(String.self, sql: """
                SELECT max(t) FROM (
                  SELECT finished_at AS t FROM runs WHERE id = ?
                  UNION ALL SELECT p.at FROM promotions p JOIN models m ON m.version = p.version WHERE m.train_run_id = ?
                  UNION ALL SELECT at FROM quality WHERE run_id = ?) AS changes
                """, arguments: [run, run, run])
        }
    }

    /// Counts over the whole history, for the metrics file.
    public func totals() throws -> IndexTotals {
        try reading { db in
            var t = IndexTotals()
            t.runs = try db.fetchAll(sql: """
                SELECT kind, status, count(*) AS n,
                       coalesce(sum(CASE WHEN finished_at IS NULL THEN 0 ELSE \(db.secondsBetween("started_at", "finished_at")) END), 0) AS seconds
                FROM runs GROUP BY kind, status ORDER BY kind, status
                """).map { IndexTotals.Runs(kind: $0["kind"], status: $0["status"], count: $0["n"], seconds: $0["seconds"]) }
            t.imagesServed = try db.value(Int.self, sql: "SELECT count(*) FROM predictions") ?? 0
            for row in try db.fetchAll(sql: "SELECT outcome, count(*) AS n FROM images WHERE outcome <> 'ok' GROUP BY outcome") {
                t.refusals[row["outcome"]] = row["n"]
            }
            for row in try db.fetchAll(sql: "SELECT drift, count(*) AS n FROM drift_decisions GROUP BY drift") {
                t.driftDecisions[(row["drift"] as Int) == 1] = row["n"]
            }
            for row in try db.fetchAll(sql: "SELECT state, count(*) AS n FROM jobs GROUP BY state") { t.jobs[row["state"]] = row["n"] }
            for row in try db.fetchAll(sql: "SELECT kind, count(*) AS n FROM flags GROUP BY kind") { t.flags[row["kind"]] = row["n"] }
            t.unhandledFlags = try db.value(Int.self, sql: "SELECT count(*) FROM flags WHERE handled_at IS NULL") ?? 0
            return t
        }
    }
}
