import Foundation
import GRDB
import JSONFiles
import SystemFiles

/// A root's identity: an id written both in `<root>/.dropline-root.json` and in its index, checked
/// whenever the index is opened. A deleted index is an error with the remedy (never an empty new one),
/// and so is an index that belongs to another root or is damaged.
struct RootIdentity: Codable, Equatable {
    var rootId: String
    var createdAt: String

    static func file(_ root: DroplineRoot) -> String { root.path + "/.dropline-root.json" }

    static func read(_ root: DroplineRoot) throws -> RootIdentity? {
        guard FileSystem.entryType(file(root)) != nil else { return nil }
        do { return try SnakeCaseJSON.read(RootIdentity.self, from: file(root)) } catch {
            throw StoreError("'\(file(root))' cannot be read (\(error)); it names the root's index. Restore it from a backup, or remove it to let the index name the root again")
        }
    }

    func write(_ root: DroplineRoot) throws { try SnakeCaseJSON.write(self, to: Self.file(root)) }
}

extension Index {
    /// Opens the index of an existing root and checks that it is this root's: present, readable, and
    /// carrying the root's id (an index from before root ids adopts a new one). With `quickCheck`,
    /// SQLite's `quick_check` must pass too (the daemon checks at start).
    public static func open(root: DroplineRoot, quickCheck: Bool = false) throws -> Index {
        if let record = try PostgresIndexRecord.read(root) {
            let index = try Index(postgresql: record.location)
            try index.checkIdentity(root: root, file: try RootIdentity.read(root))
            return index
        }
        let path = try root.openableIndex()
        let identity = try RootIdentity.read(root)
        guard FileSystem.entryType(path) != nil else {
            if path != root.index {
                throw StoreError("""
                    the index of \(root.path) is missing from this machine (\(path), recorded in .dropline-index.json): restore it from \
                    a backup; or start from the root's latest snapshot with `dropline init \(root.path) --adopt-index`
                    """)
            }
            throw StoreError("""
                \(root.relative(root.index)) is missing from \(root.path)\(identity.map { " (root id \($0.rootId))" } ?? ""): \
                restore it from a backup; or, to start an empty index and lose the record of runs, models and jobs \
                (the folders stay), run `dropline init \(root.path) --new-index`
                """)
        }
        let index: Index
        do {
            index = try Index(path: path)
            if quickCheck {
                let result = try index.writer.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
                guard result == ["ok"] else { throw StoreError(result.prefix(3).joined(separator: "; ")) }
            }
        } catch {
            throw StoreError("""
                \(root.relative(path)) of \(root.path) is damaged or not a Dropline index (\(error)): \
                restore it from a backup, or move it aside and run `dropline init \(root.path) --new-index`
                """)
        }
        try index.checkIdentity(root: root, file: identity)
        return index
    }

    /// Creates (or, for an existing root, opens) the index of `root`: what `dropline init` does. A root
    /// that has an id but lost its index is refused unless `newIndex`, which starts an empty one.
    static func prepare(root: DroplineRoot, at path: String, newIndex: Bool) throws {
        let identity = try RootIdentity.read(root)
        let present = FileSystem.entryType(path) != nil
        if identity != nil && !present && !newIndex {
            _ = try open(root: root)  // throws the "missing" error with its remedy
        }
        if newIndex && present {
            throw StoreError("\(root.relative(path)) exists for \(root.path); --new-index only replaces a missing index (move the old one aside first)")
        }
        let index = try Index(path: path)
        if newIndex || identity == nil {
            let existing = try index.reading { db in try db.value(String.self, sql: "SELECT root_id FROM root_identity WHERE id = 1") }
            let id = RootIdentity(rootId: existing ?? identity?.rootId ?? UUID().uuidString.lowercased(), createdAt: Index.now())
            try index.writing { db in
                try db.execute(sql: """
                    INSERT INTO root_identity (id, root_id, created_at) VALUES (1, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET root_id = excluded.root_id, created_at = excluded.created_at
                    """, arguments: [id.rootId, id.createdAt])
            }
            if identity == nil { try id.write(root) }
        }
        try index.checkIdentity(root: root, file: try RootIdentity.read(root))
    }

    /// The index's root id against the root's file: adopt when neither has one, mend the file from the
    /// index, refuse an index that is not this root's.
    func checkIdentity(root: DroplineRoot, file: RootIdentity?) throws {
        let name: String
        if case .postgresql(let connection) = storage { name = "the PostgreSQL index \(connection.location)" } else { name = root.relative(root.index) }
        let stored = try reading { db in
            try db.fetchOne(sql: "SELECT root_id, created_at FROM root_identity WHERE id = 1").map { RootIdentity(rootId: $0["root_id"], createdAt: $0["created_at"]) }
        }
        switch (stored, file) {
        case (nil, nil):  // a root from before root ids: both get one now
            let id = RootIdentity(rootId: UUID().uuidString.lowercased(), createdAt: Index.now())
            try writing { db in try db.execute(sql: "INSERT INTO root_identity (id, root_id, created_at) VALUES (1, ?, ?)", arguments: [id.rootId, id.createdAt]) }
            try id.write(root)
        case (let stored?, nil):
            try stored.write(root)
        case (nil, let file?):
            throw StoreError("""
                \(name) in \(root.path) is not this root's index (it has no root id; the root's is \(file.rootId)): \
                it was replaced by a new or foreign file. Restore the root's index from a backup, or move it aside and run \
                `dropline init \(root.path) --new-index`
                """)
        case (let stored?, let file?) where stored.rootId != file.rootId:
            throw StoreError("""
                \(name) of \(root.path) belongs to another root (id \(stored.rootId); this root's is \(file.rootId)): \
                put back this root's index, or move it aside and run `dropline init \(root.path) --new-index`
                """)
        default:
            break
        }
    }
}
