import DroplineSupport
import Foundation
import JSONFiles
import SystemFiles

/// The record of a root whose index is a PostgreSQL database: `<root>/.dropline-postgresql.json`,
/// the location without a password (`PostgresLocation`), the root's id and when it was recorded.
/// Every machine that mounts the root opens the same database.
public struct PostgresIndexRecord: Codable, Sendable, Equatable {
    public var location: PostgresLocation
    public var rootId: String?
    public var recordedAt: String

    static func file(_ root: DroplineRoot) -> String { root.path + "/.dropline-postgresql.json" }

    /// The root's record, or nil when its index is SQLite. A link or special file where the record
    /// goes is refused: the record says which database is the index.
    public static func read(_ root: DroplineRoot) throws -> PostgresIndexRecord? {
        try RootRecord.read(PostgresIndexRecord.self, from: file(root), what: "it names the root's PostgreSQL index",
                            remedy: "with `dropline init \(root.path) --index postgresql://...`")
    }

    func write(_ root: DroplineRoot) throws { try SnakeCaseJSON.write(self, to: Self.file(root)) }
}

extension Index {
    /// Makes `location` the index of `root` (`dropline init --index`): a new root, or one whose
    /// index already is that database. A root with a SQLite index is refused (its record would be
    /// left behind), and so is a database that is another root's index.
    static func preparePostgreSQL(root: DroplineRoot, location: PostgresLocation) throws {
        if let existing = try PostgresIndexRecord.read(root) {
            guard existing.location.host == location.host, existing.location.port == location.port, existing.location.database == location.database else {
                throw StoreError("the index of \(root.path) is \(existing.location), not \(location); a root keeps one index")
            }
        } else if try FileSystem.entryType(root.index) != nil || IndexPlacement.read(root) != nil {
            throw StoreError("\(root.path) already has a SQLite index; moving an index from SQLite to PostgreSQL is not supported: create a new root with --index")
        }
        let index = try Index(postgresql: location)
        try index.checkIdentity(root: root, file: try RootIdentity.read(root))
        let id = try RootIdentity.read(root)?.rootId
        try PostgresIndexRecord(location: location, rootId: id, recordedAt: Index.now()).write(root)
    }
}
