import DroplineSupport
import Foundation
import GRDB
import JSONFiles
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// # Where the index lives
///
/// SQLite's WAL mode needs shared memory between the processes of one machine, and its locks are
/// not reliable on NFS, SMB or FUSE: "all processes using a database must be on the same host". So an
/// index is only ever opened on a local disk of the machine that holds it:
///
/// - A root on a local disk keeps `index.sqlite` inside it, as it always has.
/// - A root on a network (or FUSE) file system keeps its index on the local disk of one machine, in a
///   *state directory* (`dropline init --state-dir`, default `StateDirectory.default`), and records
///   where in `<root>/.dropline-index.json` (host, path, root id). That machine runs the daemon and the
///   hand-run commands that write.
/// - Every other machine (and any process that sees the index over the network) never opens it: it
///   reads the *snapshot* the index's machine publishes atomically in the root
///   (`outputs/.index/snapshot.sqlite`, `IndexSnapshot`): `status`, `runs`, `show`, `models list`.
/// - When the index's machine is gone for good, another machine adopts the latest snapshot (a standby
///   daemon that takes the lease over does so on its own; by hand, `dropline init --adopt-index`);
///   work published after that snapshot is indexed again from the run folders' manifests.
public struct IndexPlacement: Codable, Sendable, Equatable {
    /// The machine whose local disk holds the index.
    public var host: String
    /// The index's absolute path on that machine.
    public var path: String
    public var rootId: String
    public var recordedAt: String

    static func file(_ root: DroplineRoot) -> String { root.path + "/.dropline-index.json" }

    /// The root's record, or nil when its index is inside it. A link or special file where the record
    /// goes is refused: the record says which file gets opened as the index.
    public static func read(_ root: DroplineRoot) throws -> IndexPlacement? {
        try RootRecord.read(IndexPlacement.self, from: file(root), what: "it says where the root's index is",
                            remedy: "on the index's machine with `dropline init \(root.path) --state-dir <dir>`")
    }

    func write(_ root: DroplineRoot) throws { try SnakeCaseJSON.write(self, to: Self.file(root)) }
}

/// The small JSON records Dropline keeps at a root's top (where the index is; which database it is):
/// read without following links, bounded, and refused with the file named and the remedy.
enum RootRecord {
    static func read<T: Decodable>(_ type: T.Type, from file: String, what: String, remedy: String) throws -> T? {
        guard let kind = FileSystem.entryType(file) else { return nil }
        guard kind == .regular else {
            throw StoreError("'\(file)' is not a regular file (it is a \(kind)); it is not a record Dropline wrote. Remove it, then write it again \(remedy)")
        }
        do {
            return try SnakeCaseJSON.decoder().decode(T.self, from: Data(try AtomicFile.read(file, limit: 64 * 1024, links: .refuse)))
        } catch {
            throw StoreError("'\(file)' cannot be read (\(error)); \(what). Restore it, or write it again \(remedy)")
        }
    }
}

/// Where this process finds a root's index.
public enum IndexLocation: Sendable, Equatable {
    /// On a local disk of this machine, at this path: this process may open it.
    case here(String)
    /// Not openable here: only the snapshot may be read.
    case elsewhere(IndexElsewhere)
    /// A PostgreSQL database, which every machine opens.
    case postgresql(PostgresLocation)
}

/// The index of a root cannot be opened from this machine, and what to do instead.
public struct IndexElsewhere: Error, CustomStringConvertible, Sendable, Equatable {
    public var root: String
    /// The machine holding the index (nil: whichever machine has the root on its local disk).
    public var host: String?
    public var path: String
    /// Why not here.
    public var reason: String

    public var description: String {
        if let host {
            return """
                the index of \(root) is not on this machine: \(reason). A root on a network share keeps its index on \
                the local disk of one machine, which runs its daemon (docs/nas.md). Run this command on \(host); from here, \
                `dropline status`, `runs`, `show` and `models list` read the snapshot \(host) publishes. If \(host) is gone \
                for good, `dropline init \(root) --adopt-index` makes this machine the index's (from that snapshot)
                """
        }
        return """
            \(reason), where SQLite cannot be used safely (its WAL mode and locks do not work across machines). Run this \
            command on the machine whose local disk holds \(root); from here, `dropline status`, `runs`, `show` and `models \
            list` read the snapshot that machine publishes. Or move the index to this machine's local disk: stop every \
            Dropline process on the root, then run `dropline init \(root) --move-index` here (docs/nas.md)
            """
    }
}

/// The local folder that holds the indexes of network roots on this machine.
public enum StateDirectory {
    /// `$DROPLINE_STATE_DIR`; else `/var/lib/dropline` for root; else `$XDG_STATE_HOME/dropline`, or
    /// `~/.local/state/dropline`.
    public static var `default`: String {
        let environment = ProcessInfo.processInfo.environment
        if let chosen = environment["DROPLINE_STATE_DIR"], !chosen.isEmpty { return chosen }
        if getuid() == 0 { return "/var/lib/dropline" }
        if let xdg = environment["XDG_STATE_HOME"], xdg.hasPrefix("/") { return xdg + "/dropline" }
        return NSHomeDirectory() + "/.local/state/dropline"
    }

    /// The folder that holds root `rootId`'s index in the state directory `chosen` (made absolute),
    /// both created and checked.
    static func folder(_ chosen: String, rootId: String) throws -> String {
        let stateDirectory = chosen.hasPrefix("/") ? chosen : FileManager.default.currentDirectoryPath + "/" + chosen
        try prepare(stateDirectory)
        try prepare(stateDirectory + "/" + rootId)
        return stateDirectory + "/" + rootId
    }

    /// Creates `folder` (a real folder, on a local disk) or says why it cannot hold an index.
    static func prepare(_ folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        guard FileSystem.isRealDirectory(folder) else {
            throw StoreError("the state directory '\(folder)' is not a folder (a link or a file is there); choose another with --state-dir")
        }
        if let type = MountKind.remote(folder) {
            throw StoreError("the state directory '\(folder)' is on a \(type) file system; an index must be on a local disk of this machine: choose a local folder with --state-dir (or DROPLINE_STATE_DIR)")
        }
    }
}

extension DroplineRoot {
    /// Where this process finds the index (see the note on `IndexPlacement`).
    public func indexLocation() throws -> IndexLocation {
        if let record = try PostgresIndexRecord.read(self) { return .postgresql(record.location) }
        if let placement = try IndexPlacement.read(self) {
            guard placement.host == ThisProcess.host else {
                return .elsewhere(IndexElsewhere(root: path, host: placement.host, path: placement.path,
                                                 reason: "it is on \(placement.host)'s local disk (\(placement.path))"))
            }
            let folder = (placement.path as NSString).deletingLastPathComponent
            if let type = MountKind.remote(folder) {
                return .elsewhere(IndexElsewhere(root: path, host: placement.host, path: placement.path,
                                                 reason: "its recorded place \(placement.path) is on a \(type) file system here"))
            }
            return .here(placement.path)
        }
        if let type = MountKind.remote(path) {
            return .elsewhere(IndexElsewhere(root: path, host: nil, path: index,
                                             reason: "the root \(path) is on a \(type) file system here and its index is inside it"))
        }
        return .here(index)
    }

    /// The index's path when this process may open it; `IndexElsewhere` otherwise.
    public func openableIndex() throws -> String {
        switch try indexLocation() {
        case .here(let path): return path
        case .elsewhere(let elsewhere): throw elsewhere
        case .postgresql(let location): throw StoreError("the index of \(path) is the PostgreSQL database \(location), not a file")
        }
    }
}

extension Index {
    /// Creates the index of a root on a network file system in `stateDirectory` on this machine's
    /// local disk and records it in the root (`dropline init` on such a root). A root whose index is
    /// inside it is refused unless `moveIndex`, which moves it (no Dropline process may be working on
    /// the root meanwhile).
    static func place(root: DroplineRoot, stateDirectory chosen: String, moveIndex: Bool) throws -> String {
        let identity = try RootIdentity.read(root) ?? {
            let fresh = RootIdentity(rootId: UUID().uuidString.lowercased(), createdAt: Index.now())
            try fresh.write(root)
            return fresh
        }()
        let folder = try StateDirectory.folder(chosen, rootId: identity.rootId)
        let path = folder + "/index.sqlite"
        if FileSystem.entryType(root.index) != nil {
            guard moveIndex else {
                throw StoreError("""
                    \(root.path) is on a \(MountKind.remote(root.path) ?? "network") file system and its index is inside it, \
                    where SQLite cannot be used safely. Move it to this machine's local disk: stop every Dropline process on \
                    the root, then run `dropline init \(root.path) --move-index` (it goes to \(folder))
                    """)
            }
            try move(root: root, to: path)
        } else {
            try prepare(root: root, at: path, newIndex: FileSystem.entryType(path) == nil)
        }
        try IndexPlacement(host: ThisProcess.host, path: path, rootId: identity.rootId, recordedAt: Index.now()).write(root)
        if moveIndex {
            // the old files are renamed, never opened again by mistake; kept until the user removes them
            let stamp = ISOTime.now().replacingOccurrences(of: ":", with: "")
            for suffix in ["", "-wal", "-shm"] where FileSystem.entryType(root.index + suffix) != nil {
                try Syscall.retrying("rename", path: root.index + suffix) { rename(root.index + suffix, root.index + suffix + ".moved-" + stamp) }
            }
        }
        return path
    }

    /// Copies the index inside a network root (with its write-ahead log) to `destination` and checks
    /// the copy. Refused while any Dropline process works on the root.
    static func move(root: DroplineRoot, to destination: String) throws {
        let live = Owners.live(root)
        if let busy = live.first {
            throw StoreError("`dropline \(busy.command)` (\(busy.host) pid \(busy.pid)) is working on \(root.path); stop every Dropline process on the root before moving its index")
        }
        if let holder = DaemonLease.read(root), Owners.liveness(holder).isAlive {
            throw StoreError("a daemon (\(holder.host) pid \(holder.pid)) holds \(root.path); stop it before moving the index")
        }
        guard FileSystem.entryType(destination) == nil else {
            throw StoreError("\(destination) already exists; move it aside before moving the index of \(root.path) there")
        }
        let temporary = destination + ".moving"
        for suffix in ["", "-wal"] {
            unlink(temporary + suffix)
            if FileSystem.entryType(root.index + suffix) == .regular {
                try AtomicFile.write(try AtomicFile.read(root.index + suffix, limit: 1 << 40, links: .refuse), to: temporary + suffix)
            }
        }
        try checkCopy(temporary, of: root) { copy in  // opening it replays the copied log
            let result = try copy.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
            guard result == ["ok"] else { throw StoreError("the copy fails SQLite's integrity check (\(result.prefix(3).joined(separator: "; "))); the index stays where it is") }
        }
        try Syscall.retrying("rename", path: destination) { rename(temporary, destination) }
    }

    /// Opens a copied index at `temporary` (migrating it), lets `body` check or mend it, checks it is
    /// `root`'s, and folds its write-ahead log in, so that the single file can be renamed into place.
    static func checkCopy(_ temporary: String, of root: DroplineRoot, _ body: (Index) throws -> Void) throws {
        do {
            let copy = try Index(path: temporary)
            try body(copy)
            try copy.checkIdentity(root: root, file: try RootIdentity.read(root))
            try copy.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        }
        for suffix in ["-wal", "-shm"] { unlink(temporary + suffix) }
    }

    /// Makes this machine the index's from the root's latest snapshot, when the machine that held it
    /// is gone: no owner on it is alive, and the caller holds the root's lease (the daemon that took it
    /// over) or takes it for the moment (`dropline init --adopt-index`). Returns the snapshot adopted.
    public static func adopt(root: DroplineRoot, stateDirectory chosen: String = StateDirectory.default) throws -> IndexSnapshot.Info {
        guard let placement = try IndexPlacement.read(root) else {
            throw StoreError("the index of \(root.path) is inside the root (no .dropline-index.json); there is nothing to adopt")
        }
        let mine = placement.host == ThisProcess.host
        if mine, FileSystem.entryType(placement.path) != nil {
            throw StoreError("the index of \(root.path) is already on this machine (\(placement.path)); nothing to adopt")
        }
        if let busy = Owners.live(root).first(where: { $0.host == placement.host && $0.host != ThisProcess.host }) {
            throw StoreError("\(placement.host) is still working on \(root.path) (`dropline \(busy.command)` pid \(busy.pid), heartbeat \(busy.heartbeatAt)); its index stays there")
        }
        let path = try StateDirectory.folder(chosen, rootId: placement.rootId) + "/index.sqlite"
        let temporary = path + ".adopting"
        for suffix in ["", "-wal", "-shm", "-journal"] { unlink(temporary + suffix) }
        let info = try IndexSnapshot.copy(root: root, to: temporary)
        try checkCopy(temporary, of: root) { adopted in
            try adopted.write { db in try db.execute(sql: "DROP TABLE IF EXISTS \(IndexSnapshot.infoTable)") }
        }
        if FileSystem.entryType(path) != nil {
            let aside = path + ".replaced-" + ISOTime.now().replacingOccurrences(of: ":", with: "")
            try Syscall.retrying("rename", path: path) { rename(path, aside) }
        }
        try Syscall.retrying("rename", path: path) { rename(temporary, path) }
        try IndexPlacement(host: ThisProcess.host, path: path, rootId: placement.rootId, recordedAt: Index.now()).write(root)
        return info
    }
}
