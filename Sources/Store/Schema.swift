import GRDB

/// The index's schema, as named, append-only migrations: a migration, once released, is never
/// edited; changes come as new migrations. Constraints in the schema do the checking (GRDB's advice:
/// trust SQLite more than yourself).
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-initial") { db in
            try db.execute(sql: v1)
        }
        migrator.registerMigration("v2-daemon") { db in
            try db.execute(sql: v2)
        }
        migrator.registerMigration("v3-baseline") { db in
            try db.execute(sql: v3)
        }
        migrator.registerMigration("v4-not-regular") { db in
            try db.execute(sql: v4)
        }
        migrator.registerMigration("v5-root-identity") { db in
            try db.execute(sql: v5)
        }
        migrator.registerMigration("v6-owners") { db in
            try db.execute(sql: v6)
        }
        migrator.registerMigration("v7-accuracy-estimate") { db in
            try db.execute(sql: v7)
        }
        migrator.registerMigration("v8-data-quality") { db in
            try db.execute(sql: v8)
        }
        return migrator
    }

    /// Every table of the first schema. Times are ISO 8601 UTC text; booleans are 0 or 1; paths are
    /// relative to the root; hashes are lowercase hex SHA-256.
    static let v1 = """
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        folder TEXT NOT NULL,
        content_sha256 TEXT NOT NULL CHECK (length(content_sha256) = 64),
        images INTEGER NOT NULL CHECK (images >= 0),
        landed_at TEXT NOT NULL,
        UNIQUE (name, content_sha256)
    );

    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER REFERENCES batches(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        bytes INTEGER NOT NULL CHECK (bytes >= 0),
        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'junk', 'empty', 'truncated', 'corrupt', 'unsupported', 'too_large', 'unreadable')),
        reason TEXT,
        UNIQUE (batch_id, path)
    );
    CREATE INDEX images_by_hash ON images(sha256);

    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('train', 'serve')),
        subject TEXT NOT NULL,
        batch_id INTEGER REFERENCES batches(id),
        model_version INTEGER REFERENCES models(version),
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        folder TEXT UNIQUE,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        error TEXT,
        CHECK ((status = 'succeeded') = (folder IS NOT NULL)),
        CHECK ((status = 'running') = (finished_at IS NULL))
    );

    CREATE TABLE run_inputs (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        PRIMARY KEY (run_id, role, path)
    );

    CREATE TABLE component_outputs (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        key TEXT NOT NULL CHECK (key GLOB 'processing/?*' OR key GLOB 'algorithm/?*' OR key GLOB 'monitoring/?*' OR key GLOB 'explainability/?*'),
        path TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    );

    CREATE TABLE models (
        version INTEGER PRIMARY KEY CHECK (version > 0),
        folder TEXT NOT NULL UNIQUE,
        content_sha256 TEXT NOT NULL UNIQUE CHECK (length(content_sha256) = 64),
        stage TEXT NOT NULL,
        parent_version INTEGER REFERENCES models(version),
        train_run_id TEXT REFERENCES runs(id),
        validation_accuracy REAL NOT NULL CHECK (validation_accuracy BETWEEN 0 AND 1),
        state TEXT NOT NULL CHECK (state IN ('candidate', 'champion', 'archived')),
        created_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX one_champion ON models(state) WHERE state = 'champion';

    CREATE TABLE promotions (
        id INTEGER PRIMARY KEY,
        version INTEGER NOT NULL REFERENCES models(version),
        from_state TEXT CHECK (from_state IN ('candidate', 'champion', 'archived')),
        to_state TEXT NOT NULL CHECK (to_state IN ('candidate', 'champion', 'archived')),
        at TEXT NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL
    );

    CREATE TABLE predictions (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        image_sha256 TEXT NOT NULL CHECK (length(image_sha256) = 64),
        predicted TEXT NOT NULL,
        confidence REAL NOT NULL CHECK (confidence BETWEEN 0 AND 1),
        top3 TEXT NOT NULL,
        PRIMARY KEY (run_id, path)
    );

    CREATE TABLE drift_decisions (
        run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
        drift INTEGER NOT NULL CHECK (drift IN (0, 1)),
        reason TEXT NOT NULL,
        artifacts_sha256 TEXT NOT NULL,
        batch_size INTEGER NOT NULL,
        reference_size INTEGER NOT NULL
    );

    CREATE TABLE drift_results (
        run_id TEXT NOT NULL REFERENCES drift_decisions(run_id) ON DELETE CASCADE,
        detector TEXT NOT NULL,
        feature INTEGER NOT NULL CHECK (feature >= 0),
        statistic REAL NOT NULL CHECK (statistic BETWEEN 0 AND 1),
        p_value REAL NOT NULL CHECK (p_value BETWEEN 0 AND 1),
        adjusted_p_value REAL NOT NULL CHECK (adjusted_p_value BETWEEN 0 AND 1),
        psi REAL NOT NULL,
        psi_tier TEXT NOT NULL CHECK (psi_tier IN ('stable', 'moderate', 'major')),
        PRIMARY KEY (run_id, detector, feature)
    );

    CREATE TABLE explanations (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        image_sha256 TEXT,
        heatmap TEXT NOT NULL,
        predicted TEXT NOT NULL,
        steps INTEGER NOT NULL CHECK (steps >= 2),
        delta REAL NOT NULL,
        relative_delta REAL NOT NULL,
        PRIMARY KEY (run_id, path)
    );

    CREATE TABLE flags (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('drift', 'retrain', 'quality')),
        path TEXT NOT NULL,
        subject TEXT NOT NULL,
        created_at TEXT NOT NULL,
        handled_at TEXT,
        outcome TEXT,
        UNIQUE (path, created_at),
        CHECK ((handled_at IS NULL) = (outcome IS NULL))
    );

    CREATE TABLE ground_truth (
        batch_id INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
        image_sha256 TEXT NOT NULL CHECK (length(image_sha256) = 64),
        true_class TEXT NOT NULL,
        PRIMARY KEY (batch_id, image_sha256)
    );

    CREATE TABLE quality (
        run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
        labelled INTEGER NOT NULL CHECK (labelled >= 0),
        accuracy REAL NOT NULL CHECK (accuracy BETWEEN 0 AND 1),
        constraint_accuracy REAL NOT NULL,
        below_constraint INTEGER NOT NULL CHECK (below_constraint IN (0, 1)),
        metrics TEXT NOT NULL,
        at TEXT NOT NULL
    );

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT,
        detail TEXT
    );
    CREATE INDEX events_by_time ON events(at);
    """

    /// The watch daemon's durable job queue, the rule firings it records, and its heartbeat.
    static let v2 = """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        event TEXT NOT NULL CHECK (event IN ('batch_landed', 'flag_created', 'model_trained', 'labels_landed', 'schedule')),
        path TEXT NOT NULL,
        content_sha256 TEXT NOT NULL CHECK (length(content_sha256) = 64),
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'skipped')),
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        detail TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        UNIQUE (event, path, content_sha256)
    );
    CREATE INDEX jobs_by_state ON jobs(state, id);

    CREATE TABLE rule_firings (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        rule TEXT NOT NULL,
        fired INTEGER NOT NULL CHECK (fired IN (0, 1)),
        reason TEXT NOT NULL,
        actions TEXT NOT NULL,
        outcome TEXT,
        at TEXT NOT NULL
    );

    CREATE TABLE daemon (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER NOT NULL,
        mode TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('running', 'stopped')),
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        rules_file TEXT NOT NULL,
        rules_error TEXT
    );
    """

    /// The promotion baseline: the champion of the time a model was trained, evaluated on the new
    /// model's own validation set, so that the policy compares two models on the same images.
    static let v3 = """
    ALTER TABLE models ADD COLUMN baseline_version INTEGER REFERENCES models(version);
    ALTER TABLE models ADD COLUMN baseline_accuracy REAL CHECK (baseline_accuracy BETWEEN 0 AND 1);
    """

    /// A refused image may also be `not_regular`: a symbolic link, FIFO, socket or device in a batch,
    /// never opened (SQLite cannot change a CHECK in place: the table is rebuilt, rows kept).
    static let v4 = """
    CREATE TABLE images_v4 (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER REFERENCES batches(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        bytes INTEGER NOT NULL CHECK (bytes >= 0),
        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'junk', 'empty', 'truncated', 'corrupt', 'unsupported', 'too_large', 'unreadable', 'not_regular')),
        reason TEXT,
        UNIQUE (batch_id, path)
    );
    INSERT INTO images_v4 SELECT id, batch_id, path, sha256, bytes, outcome, reason FROM images;
    DROP TABLE images;
    ALTER TABLE images_v4 RENAME TO images;
    CREATE INDEX images_by_hash ON images(sha256);
    """

    /// The root this index belongs to: the same id is in `<root>/.dropline-root.json`, so a missing,
    /// replaced or foreign index is noticed instead of silently starting anew.
    static let v5 = """
    CREATE TABLE root_identity (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        root_id TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """

    /// Who does a run or a job: the owner id of the process (`OwnerSession`), so that recovery fails
    /// or requeues only the work of owners that are gone. NULL: recorded before owners were tracked.
    static let v6 = """
    ALTER TABLE runs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    """

    /// A served batch's accuracy estimated from the model's calibrated confidences, beside its drift
    /// decision (NULL: no calibration, or served before estimates existed).
    static let v7 = """
    ALTER TABLE drift_decisions ADD COLUMN estimated_accuracy REAL CHECK (estimated_accuracy BETWEEN 0 AND 1);
    ALTER TABLE drift_decisions ADD COLUMN estimated_accuracy_drop REAL;
    """

    /// Data quality: each serve run's checks against the model version's constraints (one row per
    /// violation, with the images concerned as a JSON list of root-relative paths), whether the run
    /// was checked at all, and the data_quality flag kind.
    static let v8 = """
    CREATE TABLE quality_checks (
        run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
        baseline_sha256 TEXT CHECK (baseline_sha256 IS NULL OR length(baseline_sha256) = 64),
        images INTEGER NOT NULL CHECK (images >= 0),
        refused INTEGER NOT NULL CHECK (refused >= 0),
        violations INTEGER NOT NULL CHECK (violations >= 0)
    );
    CREATE TABLE quality_violations (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        property TEXT NOT NULL,
        check_kind TEXT NOT NULL CHECK (check_kind IN ('range', 'share', 'duplicate_rate', 'refusal_rate')),
        observed REAL NOT NULL CHECK (observed BETWEEN 0 AND 1),
        allowed REAL NOT NULL CHECK (allowed BETWEEN 0 AND 1),
        detail TEXT NOT NULL,
        concerned INTEGER NOT NULL CHECK (concerned >= 0),
        images TEXT NOT NULL,
        PRIMARY KEY (run_id, property, check_kind, detail)
    );
    CREATE TABLE flags_v8 (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('drift', 'retrain', 'quality', 'data_quality')),
        path TEXT NOT NULL,
        subject TEXT NOT NULL,
        created_at TEXT NOT NULL,
        handled_at TEXT,
        outcome TEXT,
        UNIQUE (path, created_at),
        CHECK ((handled_at IS NULL) = (outcome IS NULL))
    );
    INSERT INTO flags_v8 SELECT id, kind, path, subject, created_at, handled_at, outcome FROM flags;
    DROP TABLE flags;
    ALTER TABLE flags_v8 RENAME TO flags;
    """
}
