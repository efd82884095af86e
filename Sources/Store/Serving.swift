import Foundation
import GRDB

/// Completing published runs, and what serving recorded: batches, images, predictions, drift
/// decisions and results, explanations, ground truth and quality.
extension Index {
    /// Completes a published training run: its end, outputs and inputs, and its model version as a
    /// candidate (promoted in the same transaction when `decide`, the automatic policy, says so).
    public func completeTrainRun(id: String, folder: String, outputs: [String: String], inputs: [RunInput], model: NewModel,
                                 decide: ((PromotionQuestion) throws -> PromotionAnswer)?) throws {
        try writing { db in
            try finishRun(db, id: id, folder: folder, outputs: outputs)
            try Self.insertInputs(db, run: id, inputs)
            try Self.register(db, model, decide: decide)
        }
    }

    /// Completes a published serve run: its end, outputs and inputs, and everything it found, in one
    /// transaction.
    public func completeServeRun(id: String, folder: String, outputs: [String: String], inputs: [RunInput], rows: ServeRows) throws {
        try writing { db in
            try finishRun(db, id: id, folder: folder, outputs: outputs)
            try Self.insertInputs(db, run: id, inputs)
            try db.execute(sql: "INSERT INTO batches (name, folder, content_sha256, images, landed_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           arguments: [rows.batchName, rows.batchFolder, rows.batchSha256, rows.batchImages, rows.landedAt])
            let batchID = try db.value(Int64.self, sql: "SELECT id FROM batches WHERE name = ? AND content_sha256 = ?",
                                             arguments: [rows.batchName, rows.batchSha256])!
            try db.execute(sql: "UPDATE runs SET batch_id = ? WHERE id = ?", arguments: [batchID, id])
            for image in rows.images {
                try db.execute(sql: "INSERT INTO images (batch_id, path, sha256, bytes, outcome, reason) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                               arguments: [batchID, image.path, image.sha256, image.bytes, image.outcome, image.reason])
            }
            for p in rows.predictions {
                try db.execute(sql: "INSERT INTO predictions (run_id, path, image_sha256, predicted, confidence, top3) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [id, p.path, p.imageSha256, p.predicted, min(max(p.confidence, 0), 1), p.top3])
            }
            try db.execute(sql: """
                INSERT INTO drift_decisions (run_id, drift, reason, artifacts_sha256, batch_size, reference_size, estimated_accuracy, estimated_accuracy_drop)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [id, rows.drift ? 1 : 0, rows.driftReason, rows.artifactsSha256, rows.batchSize, rows.referenceSize,
                                 rows.estimatedAccuracy.map { min(max($0, 0), 1) }, rows.estimatedAccuracyDrop])
            for f in rows.driftResults {
                try db.execute(sql: """
                    INSERT INTO drift_results (run_id, detector, feature, statistic, p_value, adjusted_p_value, psi, psi_tier)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [id, f.detector, f.feature, f.statistic, f.pValue, f.adjustedPValue, f.psi, f.psiTier])
            }
            for e in rows.explanations {
                try db.execute(sql: """
                    INSERT INTO explanations (run_id, path, image_sha256, heatmap, predicted, steps, delta, relative_delta)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [id, e.path, e.imageSha256, e.heatmap, e.predicted, e.steps, e.delta, e.relativeDelta])
            }
            if let q = rows.quality {
                try db.execute(sql: "INSERT INTO quality_checks (run_id, baseline_sha256, images, refused, violations) VALUES (?, ?, ?, ?, ?)",
                               arguments: [id, q.baselineSha256, q.images, q.refused, q.violations.count])
                for v in q.violations {
                    let images = String(decoding: try JSONEncoder().encode(v.images), as: UTF8.self)
                    try db.execute(sql: """
                        INSERT INTO quality_violations (run_id, property, check_kind, observed, allowed, detail, concerned, images)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [id, v.property, v.check, min(max(v.observed, 0), 1), min(max(v.allowed, 0), 1), v.detail, v.concerned, images])
                }
            }
        }
    }

    /// A serve run's data-quality check: nil when none was recorded (served before data quality
    /// was checked).
    public func qualityCheck(run: String) throws -> ServeRows.QualityCheck? {
        try reading { db in
            guard let check = try db.fetchOne(sql: "SELECT * FROM quality_checks WHERE run_id = ?", arguments: [run]) else { return nil }
            let violations = try db.fetchAll(sql: "SELECT * FROM quality_violations WHERE run_id = ? ORDER BY \(db.insertionOrder)", arguments: [run]).map { row in
                QualityViolationRow(property: row["property"], check: row["check_kind"], observed: row["observed"], allowed: row["allowed"],
                                    detail: row["detail"], concerned: row["concerned"],
                                    images: (try? JSONDecoder().decode([String].self, from: Data((row["images"] as String).utf8))) ?? [])
            }
            return ServeRows.QualityCheck(baselineSha256: check["baseline_sha256"], images: check["images"], refused: check["refused"], violations: violations)
        }
    }

    static let servedRunSelect = """
        SELECT r.id, r.subject, r.folder, r.model_version, r.started_at, r.batch_id, i.path AS batch_path, b.folder AS batch_folder,
               d.drift, d.reason FROM runs r
        LEFT JOIN run_inputs i ON i.run_id = r.id AND i.role = 'processing/batch'
        LEFT JOIN batches b ON b.id = r.batch_id
        LEFT JOIN drift_decisions d ON d.run_id = r.id
        WHERE r.kind = 'serve' AND r.status = 'succeeded'
        """

    static func servedRun(_ row: Row) -> ServedRun {
        ServedRun(run: row["id"], subject: row["subject"], folder: row["folder"], modelVersion: row["model_version"], startedAt: row["started_at"],
                  batchId: row["batch_id"], batchPath: row["batch_path"], batchFolder: row["batch_folder"],
                  drift: (row["drift"] as Int?).map { $0 == 1 }, driftReason: row["reason"])
    }

    /// A succeeded serve run, with its batch and drift decision.
    public func servedRun(id: String) throws -> ServedRun? {
        try reading { db in try db.fetchOne(sql: Self.servedRunSelect + " AND r.id = ?", arguments: [id]).map(Self.servedRun) }
    }

    /// The latest succeeded serve run of the batch named `subject`.
    public func latestServedRun(subject: String) throws -> ServedRun? {
        try reading { db in
            try db.fetchOne(sql: Self.servedRunSelect + " AND r.subject = ? ORDER BY r.finished_at DESC LIMIT 1", arguments: [subject]).map(Self.servedRun)
        }
    }

    /// The latest succeeded serve run of the batch at `batchPath` (relative to the root).
    public func latestServedRun(batchPath: String) throws -> ServedRun? {
        try reading { db in
            try db.fetchOne(sql: Self.servedRunSelect + " AND i.path = ? ORDER BY r.finished_at DESC LIMIT 1", arguments: [batchPath]).map(Self.servedRun)
        }
    }

    /// The folders (relative to the root) of the served batches named `subject`: more than one when
    /// the same name stands in two stages.
    public func servedBatchPaths(subject: String) throws -> [String] {
        try reading { db in
            try db.values(String.self, sql: """
                SELECT DISTINCT i.path FROM runs r JOIN run_inputs i ON i.run_id = r.id AND i.role = 'processing/batch'
                WHERE r.kind = 'serve' AND r.status = 'succeeded' AND r.subject = ? ORDER BY i.path
                """, arguments: [subject])
        }
    }

    /// The first serve run that succeeded on the batch at `batchPath` (relative to the root) since
    /// `since`: a restarted job does not serve a batch twice.
    public func servedRun(batchPath: String, since: String) throws -> String? {
        try reading { db in
            try db.value(String.self, sql: """
                SELECT r.id FROM runs r JOIN run_inputs i ON i.run_id = r.id
                WHERE r.kind = 'serve' AND r.status = 'succeeded' AND i.role = 'processing/batch' AND i.path = ? AND r.started_at >= ?
                ORDER BY r.started_at LIMIT 1
                """, arguments: [batchPath, since])
        }
    }

    /// The first training run on `stage` that succeeded since `since`, with its model version.
    public func trainedRun(stage: String, since: String) throws -> (run: String, version: Int)? {
        try reading { db in
            try db.fetchOne(sql: """
                SELECT id, model_version FROM runs WHERE kind = 'train' AND status = 'succeeded' AND subject = ? AND started_at >= ?
                AND model_version IS NOT NULL ORDER BY started_at LIMIT 1
                """, arguments: [stage, since]).map { ($0["id"], $0["model_version"]) }
        }
    }

    /// How many served batches in a row, the latest included, found drift (for hysteresis rules).
    public func driftStreak() throws -> Int {
        try reading { db in
            let decisions = try db.values(Int.self, sql: """
                SELECT d.drift FROM drift_decisions d JOIN runs r ON r.id = d.run_id
                WHERE r.kind = 'serve' AND r.status = 'succeeded' ORDER BY r.started_at DESC, r.id DESC LIMIT 1000
                """)
            return decisions.prefix { $0 == 1 }.count
        }
    }

    /// The predictions of a serve run.
    public func predictions(run: String) throws -> [PredictionRecord] {
        try reading { db in
            try db.fetchAll(sql: "SELECT path, image_sha256, predicted, confidence FROM predictions WHERE run_id = ?", arguments: [run])
                .map { PredictionRecord(path: $0["path"], imageSha256: $0["image_sha256"], predicted: $0["predicted"], confidence: $0["confidence"]) }
        }
    }

    /// A serve run's drift decision, its extreme figures and its predictions (the study's tables).
    public func driftSummary(run: String) throws -> DriftSummary? {
        try reading { db in
            guard let decision = try db.fetchOne(sql: "SELECT drift, reason, estimated_accuracy FROM drift_decisions WHERE run_id = ?", arguments: [run]) else { return nil }
            let extremes = try db.fetchOne(sql: "SELECT min(adjusted_p_value) AS p, max(statistic) AS d FROM drift_results WHERE run_id = ?", arguments: [run])
            let predictions = try db.fetchAll(sql: "SELECT path, predicted FROM predictions WHERE run_id = ?", arguments: [run])
                .map { (path: $0["path"] as String, predicted: $0["predicted"] as String) }
            return DriftSummary(run: run, drift: (decision["drift"] as Int) == 1, reason: decision["reason"],
                                minimumAdjustedPValue: extremes?["p"], maximumStatistic: extremes?["d"], predictions: predictions,
                                estimatedAccuracy: decision["estimated_accuracy"])
        }
    }

    /// Records ground truth and the quality it shows, and (when `flag` is given) the quality flag;
    /// `beforeCommit` runs inside the transaction (it writes the flag file: if that fails, nothing is
    /// recorded).
    public func recordQuality(_ rows: QualityRows, flag: (path: String, subject: String)?, beforeCommit: () throws -> Void) throws {
        try writing { db in
            for label in rows.labels {
                try db.execute(sql: """
                    INSERT INTO ground_truth (batch_id, image_sha256, true_class) VALUES (?, ?, ?)
                    ON CONFLICT (batch_id, image_sha256) DO UPDATE SET true_class = excluded.true_class
                    """,
                               arguments: [rows.batchId, label.sha256, label.trueClass])
            }
            try db.execute(sql: """
                INSERT INTO quality (run_id, labelled, accuracy, constraint_accuracy, below_constraint, metrics, at) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id) DO UPDATE SET labelled = excluded.labelled, accuracy = excluded.accuracy,
                    constraint_accuracy = excluded.constraint_accuracy, below_constraint = excluded.below_constraint, metrics = excluded.metrics, at = excluded.at
                """, arguments: [rows.run, rows.labels.count, rows.accuracy, rows.constraintAccuracy, rows.belowConstraint ? 1 : 0, rows.metrics, Self.now()])
            if let flag { try Self.recordFlag(db, kind: .quality, path: flag.path, subject: flag.subject) }
            try Self.event(db, kind: "labels_merged", subject: rows.batch, detail: rows.summary)
            try beforeCommit()
        }
    }
}

/// The flags table: every flag Dropline raised or handled, with its outcome.
extension Index {
    /// Records a raised flag (`path` relative to the root).
    public func recordFlag(kind: FlagKind, path: String, subject: String) throws {
        try writing { db in try Self.recordFlag(db, kind: kind, path: path, subject: subject) }
    }

    static func recordFlag(_ db: IndexTransaction, kind: FlagKind, path: String, subject: String) throws {
        try db.execute(sql: "INSERT INTO flags (kind, path, subject, created_at) VALUES (?, ?, ?, ?)", arguments: [kind.rawValue, path, subject, now()])
    }

    /// How many flags of `kind` at `path` were raised since `since`.
    public func flagCount(kind: FlagKind, path: String, since: String) throws -> Int {
        try reading { db in
            try db.value(Int.self, sql: "SELECT count(*) FROM flags WHERE kind = ? AND path = ? AND created_at >= ?", arguments: [kind.rawValue, path, since]) ?? 0
        }
    }

    /// The most recent flags, newest first.
    public func flags(limit: Int) throws -> [FlagRecord] {
        try reading { db in
            try db.fetchAll(sql: "SELECT * FROM flags ORDER BY created_at DESC, id DESC LIMIT ?", arguments: [limit]).map {
                FlagRecord(kind: FlagKind(rawValue: $0["kind"]) ?? .retrain, path: $0["path"], subject: $0["subject"], createdAt: $0["created_at"],
                           handledAt: $0["handled_at"], outcome: $0["outcome"])
            }
        }
    }

    /// Marks the flag at `path` handled with its outcome; a flag dropped by hand (not raised by
    /// Dropline) gets its row now.
    public func handleFlag(kind: FlagKind, path: String, subject: String, createdAt: String, outcome: String) throws {
        try writing { db in
            try db.execute(sql: "UPDATE flags SET handled_at = ?, outcome = ? WHERE path = ? AND handled_at IS NULL",
                           arguments: [Self.now(), outcome, path])
            if db.changesCount == 0 {
                try db.execute(sql: "INSERT INTO flags (kind, path, subject, created_at, handled_at, outcome) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [kind.rawValue, path, subject, createdAt, Self.now(), outcome])
            }
        }
    }
}
