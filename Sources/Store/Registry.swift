import Foundation
public import GRDB

/// The model registry: versions, their states, and the audit history of every change. Every state
/// change is one transaction with its `promotions` row; at most one champion (the schema checks it).
public struct Registry: Sendable {
    public let index: any DroplineIndex

    public init(index: any DroplineIndex) { self.index = index }

    public typealias Model = ModelRecord
    public typealias Promotion = PromotionRecord

    public func models() throws -> [Model] { try index.models() }
    public func model(_ version: Int) throws -> Model? { try index.model(version: version) }
    public func history(version: Int? = nil) throws -> [Promotion] { try index.history(version: version) }
    public func champion(at time: String) throws -> Promotion? { try index.champion(at: time) }

    /// Makes `version` the champion by hand.
    public func promote(_ version: Int, reason: String, actor: String = "user") throws {
        try index.promoteByHand(version: version, reason: reason, actor: actor)
    }

    /// Puts back the champion before the current one. Returns its version.
    @discardableResult
    public func rollback(reason: String, actor: String = "user") throws -> Int {
        try index.rollback(reason: reason, actor: actor)
    }
}

extension ModelRecord: FetchableRecord {
    public init(row: Row) {
        self.init(version: row["version"], folder: row["folder"], contentSha256: row["content_sha256"], stage: row["stage"],
                  parentVersion: row["parent_version"], trainRunId: row["train_run_id"], validationAccuracy: row["validation_accuracy"],
                  state: ModelState(rawValue: row["state"]) ?? .candidate, createdAt: row["created_at"],
                  baselineVersion: row["baseline_version"], baselineAccuracy: row["baseline_accuracy"])
    }
}

extension PromotionRecord: FetchableRecord {
    public init(row: Row) {
        self.init(version: row["version"], fromState: (row["from_state"] as String?).flatMap(ModelState.init(rawValue:)),
                  toState: ModelState(rawValue: row["to_state"]) ?? .candidate, at: row["at"], reason: row["reason"], actor: row["actor"])
    }
}

/// The registry's queries and state changes.
extension Index {
    public func models() throws -> [ModelRecord] {
        try reading { db in try db.records(ModelRecord.self, sql: "SELECT * FROM models ORDER BY version") }
    }

    public func model(version: Int) throws -> ModelRecord? { try reading { db in try Self.model(db, version: version) } }

    /// The model version published in `folder` (relative to the root).
    public func model(folder: String) throws -> ModelRecord? {
        try reading { db in try db.record(ModelRecord.self, sql: "SELECT * FROM models WHERE folder = ?", arguments: [folder]) }
    }

    public func champion() throws -> ModelRecord? { try reading { db in try Self.champion(db) } }

    /// The highest version in the registry (0 when empty).
    public func highestModelVersion() throws -> Int {
        try reading { db in try db.value(Int.self, sql: "SELECT coalesce(max(version), 0) FROM models") ?? 0 }
    }

    /// The newest candidate, if any.
    public func newestCandidate() throws -> Int? {
        try reading { db in try db.value(Int.self, sql: "SELECT max(version) FROM models WHERE state = 'candidate'") }
    }

    /// Every state change, oldest first (of one version when given).
    public func history(version: Int? = nil) throws -> [PromotionRecord] {
        try reading { db in
            version == nil
                ? try db.records(PromotionRecord.self, sql: "SELECT * FROM promotions ORDER BY at, id")
                : try db.records(PromotionRecord.self, sql: "SELECT * FROM promotions WHERE version = ? ORDER BY at, id", arguments: [version])
        }
    }

    /// The champion at `time` (ISO 8601) and the promotion that made it so, or nil.
    public func champion(at time: String) throws -> PromotionRecord? {
        try reading { db in
            try db.record(PromotionRecord.self, sql: "SELECT * FROM promotions WHERE to_state = 'champion' AND at <= ? ORDER BY at DESC, id DESC LIMIT 1",
                                         arguments: [time])
        }
    }

    /// The reason of the last promotion of `version` to champion.
    public func promotionReason(version: Int) throws -> String? {
        try reading { db in
            try db.value(String.self, sql: "SELECT reason FROM promotions WHERE version = ? AND to_state = 'champion' ORDER BY id DESC LIMIT 1",
                                arguments: [version])
        }
    }

    /// Asks `decide` (the promotion policy) whether `version` becomes champion, in one transaction
    /// with the recording of the answer, so the champion cannot change in between. Returns the
    /// answer; nil when `version` is already the champion.
    public func promote(version: Int, actor: String, decide: (PromotionQuestion) throws -> PromotionAnswer) throws -> PromotionAnswer? {
        try writing { db in
            guard let candidate = try Self.model(db, version: version) else { throw StoreError("there is no model version \(version)") }
            if candidate.state == .champion { return nil }
            let answer = try decide(PromotionQuestion(candidate: candidate, champion: try Self.champion(db)))
            if answer.promote { try Self.promote(db, version: version, reason: answer.reason, actor: actor) }
            return answer
        }
    }

    /// Makes `version` the champion by hand (the registry's `promote`).
    public func promoteByHand(version: Int, reason: String, actor: String) throws {
        try writing { db in
            guard let model = try Self.model(db, version: version) else { throw StoreError("there is no model version \(version)") }
            guard model.state != .champion else { throw StoreError("version \(version) is already the champion") }
            try Self.promote(db, version: version, reason: reason, actor: actor)
        }
    }

    /// Puts back the champion before the current one. Returns its version.
    @discardableResult
    public func rollback(reason: String, actor: String) throws -> Int {
        try writing { db in
            guard let current = try Self.champion(db) else { throw StoreError("there is no champion to roll back") }
            guard let previous = try db.value(Int.self, sql: """
                SELECT version FROM promotions WHERE to_state = 'champion' AND version != ? ORDER BY at DESC, id DESC LIMIT 1
                """, arguments: [current.version]) else {
                throw StoreError("version \(current.version) is the only champion there has been; nothing to roll back to")
            }
            try Self.promote(db, version: previous, reason: "rollback from version \(current.version): \(reason)", actor: actor)
            return previous
        }
    }

    static func model(_ db: IndexTransaction, version: Int) throws -> ModelRecord? {
        try db.record(ModelRecord.self, sql: "SELECT * FROM models WHERE version = ?", arguments: [version])
    }

    static func champion(_ db: IndexTransaction) throws -> ModelRecord? {
        try db.record(ModelRecord.self, sql: "SELECT * FROM models WHERE state = 'champion'")
    }

    /// Registers a new candidate version from its training run (and, with `decide`, applies the
    /// promotion policy in the same transaction).
    static func register(_ db: IndexTransaction, _ model: NewModel, decide: ((PromotionQuestion) throws -> PromotionAnswer)?) throws {
        let parent = try champion(db)?.version
        try db.execute(sql: """
            INSERT INTO models (version, folder, content_sha256, stage, parent_version, train_run_id, validation_accuracy, state, created_at,
                                baseline_version, baseline_accuracy)
            VALUES (?, ?, ?, ?, ?, ?, ?, 'candidate', ?, ?, ?)
            """, arguments: [model.version, model.folder, model.contentSha256, model.stage, parent, model.trainRun, model.validationAccuracy, now(),
                             model.baseline?.version, model.baseline.map { min(max($0.accuracy, 0), 1) }])
        try db.execute(sql: "UPDATE runs SET model_version = ? WHERE id = ?", arguments: [model.version, model.trainRun])
        try db.execute(sql: "INSERT INTO promotions (version, from_state, to_state, at, reason, actor) VALUES (?, NULL, 'candidate', ?, ?, 'pipeline')",
                       arguments: [model.version, now(), "trained on stage \(model.stage) by run \(model.trainRun)"])
        if let decide, let candidate = try Self.model(db, version: model.version) {
            let answer = try decide(PromotionQuestion(candidate: candidate, champion: try champion(db)))
            if answer.promote { try promote(db, version: model.version, reason: answer.reason, actor: "policy") }
        }
    }

    /// Makes `version` the champion (archiving the previous one), with the reason in the audit history.
    static func promote(_ db: IndexTransaction, version: Int, reason: String, actor: String) throws {
        if let previous = try champion(db)?.version, previous != version {
            try db.execute(sql: "UPDATE models SET state = 'archived' WHERE version = ?", arguments: [previous])
            try db.execute(sql: "INSERT INTO promotions (version, from_state, to_state, at, reason, actor) VALUES (?, 'champion', 'archived', ?, ?, ?)",
                           arguments: [previous, now(), "replaced by version \(version)", actor])
        }
        let from = try db.value(String.self, sql: "SELECT state FROM models WHERE version = ?", arguments: [version])
        try db.execute(sql: "UPDATE models SET state = 'champion' WHERE version = ?", arguments: [version])
        try db.execute(sql: "INSERT INTO promotions (version, from_state, to_state, at, reason, actor) VALUES (?, ?, 'champion', ?, ?, ?)",
                       arguments: [version, from, now(), reason, actor])
    }
}
