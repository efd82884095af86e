import DroplineSupport
import Foundation
import GRDB
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// # The index's snapshot on the root
///
/// The machine that holds the index publishes a consistent copy of it in the root,
/// `outputs/.index/snapshot.sqlite`, for every machine that may not open the index itself
/// (`IndexPlacement`): the daemon after jobs end (at most every few seconds) and at least every
/// `WatchDaemon` period, and the hand-run commands that change the index when they finish. The copy
/// is made with `VACUUM INTO` on the local disk (a transaction-consistent copy, without blocking the
/// daemon's writes), turned into a rollback-journal database with a `snapshot_info` row (who, when),
/// and written to the root by rename, so a reader never sees half of one. Readers never open the file
/// on the share: they copy it to a private local file and open that read-only.
public enum IndexSnapshot {
    public static func file(_ root: DroplineRoot) -> String { root.outputs + "/.index/snapshot.sqlite" }
    static let infoTable = "snapshot_info"

    /// Who published a snapshot and when.
    public struct Info: Codable, Sendable, Equatable {
        public var host: String
        public var takenAt: String
        /// The index it copies, on `host`.
        public var indexPath: String
    }

    /// Copies the published snapshot to the local file `destination`; returns its info. A missing
    /// snapshot, a link or special file, or a file that is not a snapshot is an error that says so.
    static func copy(root: DroplineRoot, to destination: String) throws -> Info {
        let source = file(root)
        guard let type = FileSystem.entryType(source) else {
            throw StoreError("\(root.relative(source)) is missing from \(root.path): the index's machine has not published a snapshot yet (it does when its daemon or a command that writes runs there)")
        }
        guard type == .regular else {
            throw StoreError("\(root.relative(source)) in \(root.path) is not a regular file (it is a \(type)); Dropline publishes only regular files there. Remove it; the index's machine publishes a new one")
        }
        try AtomicFile.copy(source, to: destination, links: .refuse)
        do {
            let queue = try DatabaseQueue(path: destination, configuration: readOnly)
            guard let info = try queue.read({ db in
                try Row.fetchOne(db, sql: "SELECT host, taken_at, index_path FROM \(infoTable) LIMIT 1")
                    .map { Info(host: $0["host"], takenAt: $0["taken_at"], indexPath: $0["index_path"]) }
            }) else { throw StoreError("it has no snapshot_info row") }
            return info
        } catch {
            unlink(destination)
            throw StoreError("\(root.relative(source)) in \(root.path) is not a snapshot of a Dropline index (\(error)); remove it, and the index's machine publishes a new one")
        }
    }

    static var readOnly: Configuration {
        var configuration = Configuration()
        configuration.readonly = true
        return configuration
    }
}

extension Index {
    /// The index's path on disk (nil for an in-memory index).
    var localPath: String? {
        guard case .sqlite(let writer) = storage else { return nil }
        let path = writer.path
        return path.isEmpty || path == ":memory:" ? nil : path
    }

    /// Publishes a snapshot of this index in `root` (see `IndexSnapshot`). Returns false for an
    /// in-memory index, which has nothing to publish.
    @discardableResult
    public func publishSnapshot(root: DroplineRoot) throws -> Bool {
        guard let path = localPath, !isSnapshot else { return false }
        let temporary = (path as NSString).deletingLastPathComponent + "/.snapshot-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sqlite"
        defer { for suffix in ["", "-journal", "-wal", "-shm"] { unlink(temporary + suffix) } }
        // VACUUM INTO may not run inside a transaction; a read without one does not block writers
        try writer.unsafeRead { db in try db.execute(sql: "VACUUM INTO ?", arguments: [temporary]) }
        let copy = try DatabaseQueue(path: temporary)
        try copy.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
            try db.execute(sql: "CREATE TABLE \(IndexSnapshot.infoTable) (host TEXT NOT NULL, taken_at TEXT NOT NULL, index_path TEXT NOT NULL)")
            try db.execute(sql: "INSERT INTO \(IndexSnapshot.infoTable) (host, taken_at, index_path) VALUES (?, ?, ?)",
                           arguments: [ThisProcess.host, Index.now(), FileSystem.resolved(path) ?? path])
        }
        try copy.close()
        let folder = (IndexSnapshot.file(root) as NSString).deletingLastPathComponent
        if FileSystem.entryType(folder) == nil { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false) }
        guard FileSystem.isRealDirectory(folder) else {
            throw StoreError("\(root.relative(folder)) in \(root.path) is not a folder (a link or a file is there); remove it so the index's snapshot can be published")
        }
        try AtomicFile.copy(temporary, to: IndexSnapshot.file(root))
        return true
    }

    /// Opens a private, read-only copy of the root's published snapshot (the copy is removed when
    /// the index is released), checked to be this root's.
    public static func openSnapshot(root: DroplineRoot) throws -> (index: Index, info: IndexSnapshot.Info) {
        let local = FileManager.default.temporaryDirectory.path + "/dropline-snapshot-\(getpid())-\(UUID().uuidString.prefix(8)).sqlite"
        let info = try IndexSnapshot.copy(root: root, to: local)
        let index = try Index(snapshot: local)
        if let file = try RootIdentity.read(root) {
            let stored = try index.read { db in try String.fetchOne(db, sql: "SELECT root_id FROM root_identity WHERE id = 1") }
            guard stored == file.rootId else {
                throw StoreError("\(root.relative(IndexSnapshot.file(root))) in \(root.path) is a snapshot of another root's index (id \(stored ?? "none"); this root's is \(file.rootId)); remove it, and the index's machine publishes a new one")
            }
        }
        return (index, info)
    }

    /// The index this process may read: the index itself where this machine holds it, else the
    /// root's snapshot (with its info).
    public static func openForReading(root: DroplineRoot) throws -> (index: Index, snapshot: IndexSnapshot.Info?) {
        switch try root.indexLocation() {
        case .here, .postgresql:
            return (try open(root: root), nil)
        case .elsewhere(let elsewhere):
            do {
                let (index, info) = try openSnapshot(root: root)
                return (index, info)
            } catch {
                throw StoreError("\(elsewhere.reason), so this machine reads its snapshot; but \(error)")
            }
        }
    }
}
