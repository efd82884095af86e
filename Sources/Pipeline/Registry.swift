import DroplineSupport
import Foundation
import GRDB
public import Modeling
public import Store

/// The model registry: versions, their states, and the audit history of every change.
public struct Registry {
    public let index: Index

    public init(index: Index) { self.index = index }

    public struct Model: Codable, Sendable {
        public var version: Int
        public var folder: String
        public var contentSha256: String
        public var stage: String
        public var parentVersion: Int?
        public var trainRunId: String?
        public var validationAccuracy: Double
        public var state: String
        public var createdAt: String
    }

    public struct Promotion: Codable, Sendable {
        public var version: Int
        public var fromState: String?
        public var toState: String
        public var at: String
        public var reason: String
        public var actor: String
    }

    static func model(_ row: Row) -> Model {
        Model(version: row["version"], folder: row["folder"], contentSha256: row["content_sha256"], stage: row["stage"],
              parentVersion: row["parent_version"], trainRunId: row["train_run_id"], validationAccuracy: row["validation_accuracy"],
              state: row["state"], createdAt: row["created_at"])
    }

    public func models() throws -> [Model] {
        try index.read { db in try Row.fetchAll(db, sql: "SELECT * FROM models ORDER BY version").map(Self.model) }
    }

    public func model(_ version: Int) throws -> Model? {
        try index.read { db in try Row.fetchOne(db, sql: "SELECT * FROM models WHERE version = ?", arguments: [version]).map(Self.model) }
    }

    /// Every state change, oldest first (of one version when given).
    public func history(version: Int? = nil) throws -> [Promotion] {
        try index.read { db in
            let rows = version == nil
                ? try Row.fetchAll(db, sql: "SELECT * FROM promotions ORDER BY at, id")
                : try Row.fetchAll(db, sql: "SELECT * FROM promotions WHERE version = ? ORDER BY at, id", arguments: [version])
            return rows.map { Promotion(version: $0["version"], fromState: $0["from_state"], toState: $0["to_state"], at: $0["at"],
                                        reason: $0["reason"], actor: $0["actor"]) }
        }
    }

    /// The champion at `time` (ISO 8601) and the promotion that made it so, or nil.
    public func champion(at time: String) throws -> Promotion? {
        try index.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM promotions WHERE to_state = 'champion' AND at <= ? ORDER BY at DESC, id DESC LIMIT 1",
                             arguments: [time]).map { Promotion(version: $0["version"], fromState: $0["from_state"], toState: $0["to_state"],
                                                                at: $0["at"], reason: $0["reason"], actor: $0["actor"]) }
        }
    }

    /// Makes `version` the champion by hand.
    public func promote(_ version: Int, reason: String, actor: String = "user") throws {
        try index.write { db in
            guard let state = try String.fetchOne(db, sql: "SELECT state FROM models WHERE version = ?", arguments: [version]) else {
                throw StoreError("there is no model version \(version)")
            }
            guard state != "champion" else { throw StoreError("version \(version) is already the champion") }
            try Pipelines.promote(db, version: version, reason: reason, actor: actor)
        }
    }

    /// Puts back the champion before the current one. Returns its version.
    @discardableResult
    public func rollback(reason: String, actor: String = "user") throws -> Int {
        try index.write { db in
            guard let current = try Int.fetchOne(db, sql: "SELECT version FROM models WHERE state = 'champion'") else {
                throw StoreError("there is no champion to roll back")
            }
            guard let previous = try Int.fetchOne(db, sql: """
                SELECT version FROM promotions WHERE to_state = 'champion' AND version != ? ORDER BY at DESC, id DESC LIMIT 1
                """, arguments: [current]) else {
                throw StoreError("version \(current) is the only champion there has been; nothing to roll back to")
            }
            try Pipelines.promote(db, version: previous, reason: "rollback from version \(current): \(reason)", actor: actor)
            return previous
        }
    }
}

/// Ground truth for a batch: merged with the batch's latest predictions, recorded as quality, and a
/// quality flag when accuracy falls below the model's constraint (its validation accuracy minus
/// `tolerance`).
public struct GroundTruth {
    public let root: DroplineRoot
    public let index: Index
    /// How far below its validation accuracy a model may fall on labelled production data.
    public var tolerance = 0.05

    public init(root: DroplineRoot, index: Index) {
        self.root = root
        self.index = index
    }

    public struct Result: Codable, Sendable {
        public var batch: String
        public var run: String
        public var labelled: Int
        public var unmatched: [String]
        public var accuracy: Double
        public var constraintAccuracy: Double
        public var belowConstraint: Bool
        public var metrics: ClassificationMetrics
    }

    /// Reads `<batch>.csv` (header `image,class`; image = path relative to the batch folder, or SHA-256).
    public func merge(labels file: String) throws -> Result {
        let batch = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        do { try SafeName.check(batch, what: "batch name of the labels file") } catch { throw StoreError("'\(DisplayText.escaped(file))': \(error)") }
        let rows = CSV.parse(String(decoding: try AtomicFile.read(file, limit: 64 << 20, links: .refuse), as: UTF8.self))
        guard let header = rows.first, header.count >= 2, header[0].lowercased() == "image", header[1].lowercased() == "class" else {
            throw StoreError("'\(file)' must start with the header line image,class")
        }
        return try index.write { db in
            guard let run = try Row.fetchOne(db, sql: """
                SELECT r.id, r.batch_id, r.model_version, b.folder FROM runs r JOIN batches b ON b.id = r.batch_id
                WHERE r.kind = 'serve' AND r.status = 'succeeded' AND r.subject = ? ORDER BY r.finished_at DESC LIMIT 1
                """, arguments: [batch]) else {
                throw StoreError("no served batch named '\(batch)' (the labels file's name must be the batch's name)")
            }
            let runID: String = run["id"], batchID: Int64 = run["batch_id"], version: Int = run["model_version"], folder: String = run["folder"]
            let predictions = try Row.fetchAll(db, sql: "SELECT path, image_sha256, predicted FROM predictions WHERE run_id = ?", arguments: [runID])
            var byPath: [String: (String, String)] = [:], byHash: [String: (String, String)] = [:]
            for p in predictions {
                let path: String = p["path"], hash: String = p["image_sha256"], predicted: String = p["predicted"]
                let relative = path.hasPrefix(folder + "/") ? String(path.dropFirst(folder.count + 1)) : path
                byPath[relative] = (hash, predicted)
                byHash[hash] = (hash, predicted)
            }
            let model = try Row.fetchOne(db, sql: "SELECT folder, validation_accuracy FROM models WHERE version = ?", arguments: [version])!
            let classes = try ModelArtifact.load(root.path + "/" + (model["folder"] as String) + "/model").description.classes
            var labels: [Int] = [], predicted: [Int] = [], unmatched: [String] = []
            for row in rows.dropFirst() where row.count >= 2 && !row[0].isEmpty {
                guard let (hash, guess) = byPath[row[0]] ?? byHash[row[0].lowercased()] else {
                    unmatched.append(row[0])
                    continue
                }
                guard let t = classes.firstIndex(of: row[1]), let p = classes.firstIndex(of: guess) else {
                    throw StoreError("'\(file)': class '\(row[1])' of \(row[0]) is not one of the model's classes (\(classes.joined(separator: ", ")))")
                }
                try db.execute(sql: "INSERT OR REPLACE INTO ground_truth (batch_id, image_sha256, true_class) VALUES (?, ?, ?)",
                               arguments: [batchID, hash, row[1]])
                labels.append(t)
                predicted.append(p)
            }
            guard !labels.isEmpty else { throw StoreError("'\(file)' labels none of the batch's images") }
            let metrics = ClassificationMetrics(classes: classes, labels: labels, predictions: predicted, loss: .nan)
            let constraint = (model["validation_accuracy"] as Double) - tolerance
            let below = metrics.accuracy < constraint
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            var recorded = metrics
            recorded.loss = 0
            try db.execute(sql: """
                INSERT OR REPLACE INTO quality (run_id, labelled, accuracy, constraint_accuracy, below_constraint, metrics, at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [runID, labels.count, metrics.accuracy, constraint, below ? 1 : 0,
                                 String(decoding: try encoder.encode(recorded), as: UTF8.self), Index.now()])
            if below {
                var flag = QualityFlag(batch: batch, run: runID, modelVersion: version, accuracy: metrics.accuracy,
                                       constraintAccuracy: constraint, createdAt: Index.now())
                // The stage of a batch served from inbox/production/<stage>/<batch>: what a rule retrains on.
                if let input = try String.fetchOne(db, sql: "SELECT path FROM run_inputs WHERE run_id = ? AND role = 'processing/batch'", arguments: [runID]),
                   let located = Pipelines.productionStage(input) {
                    flag.stage = located.stage
                    flag.batchPath = located.batchPath
                }
                let path = try FlagFiles.write(flag, kind: "quality", batch: batch, in: root)
                try db.execute(sql: "INSERT INTO flags (kind, path, subject, created_at) VALUES ('quality', ?, ?, ?)",
                               arguments: [root.relative(path), batch, Index.now()])
            }
            try db.execute(sql: "INSERT INTO events (at, kind, subject, detail) VALUES (?, 'labels_merged', ?, ?)",
                           arguments: [Index.now(), batch, String(format: "%d labelled, accuracy %.4f", labels.count, metrics.accuracy)])
            return Result(batch: batch, run: runID, labelled: labels.count, unmatched: unmatched, accuracy: metrics.accuracy,
                          constraintAccuracy: constraint, belowConstraint: below, metrics: recorded)
        }
    }
}
