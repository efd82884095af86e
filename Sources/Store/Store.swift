import DroplineSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import GRDB
import SystemFiles

/// # Store
///
/// Where everything Dropline produces lives: a root folder with the drop inbox, an output tree of
/// immutable run folders and model versions, and `index.sqlite`, the index of all of it.
///
/// Published folders are immutable: a run writes into `outputs/.staging/<name>` and is renamed into
/// `outputs/runs/<name>` (or `outputs/models/vNNNN`) only when complete, so a crash leaves no published
/// folder behind; staging leftovers are removed at the next start. Rows that point at a folder are
/// written in the same transaction that marks the run succeeded, after the rename.

/// A Dropline root folder and the paths inside it.
public struct DroplineRoot: Sendable {
    public let path: String

    public var inbox: String { path + "/inbox" }
    public var trainingInbox: String { inbox + "/training" }
    public var productionInbox: String { inbox + "/production" }
    public var labelsInbox: String { inbox + "/labels" }
    public var outputs: String { path + "/outputs" }
    public var models: String { outputs + "/models" }
    public var runs: String { outputs + "/runs" }
    public var staging: String { outputs + "/.staging" }
    public var flags: String { path + "/flags" }
    public var logs: String { path + "/logs" }
    public var index: String { path + "/index.sqlite" }

    public func flags(_ kind: String) -> String { flags + "/" + kind }

    /// Every folder of a root, in creation order.
    var folders: [String] {
        [path, inbox, trainingInbox, productionInbox, labelsInbox, outputs, models, runs, staging, flags,
         flags("drift"), flags("retrain"), flags("quality"), flags("data_quality"), flags("done"), logs]
    }

    /// Creates the layout (missing folders only; an existing root is left as it is) and its index,
    /// with the root's id in both. A root that lost its index is refused unless `newIndex` (which
    /// starts an empty one): a missing index is never silently replaced.
    ///
    /// A root on a network or FUSE file system (or any root given `stateDirectory`) gets its index
    /// on this machine's local disk, in `stateDirectory` (default `StateDirectory.default`), recorded
    /// in the root (`IndexPlacement`); an index already inside such a root is refused unless
    /// `moveIndex`. `adoptIndex` makes this machine the index's from the root's snapshot.
    ///
    /// With `postgresql`, the index is that database (several daemons may then share the root); a
    /// root whose index is already PostgreSQL keeps using the recorded one.
    public static func create(at path: String, newIndex: Bool = false, stateDirectory: String? = nil, moveIndex: Bool = false,
                              adoptIndex: Bool = false, postgresql: PostgresLocation? = nil) throws -> DroplineRoot {
        let root = DroplineRoot(path: Self.normalized(path))
        for folder in root.folders {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        if let location = try postgresql ?? PostgresIndexRecord.read(root)?.location {
            guard stateDirectory == nil, !moveIndex, !adoptIndex, !newIndex else {
                throw StoreError("--state-dir, --move-index, --adopt-index and --new-index are for SQLite indexes; \(root.path)'s index is PostgreSQL (\(location))")
            }
            try Index.preparePostgreSQL(root: root, location: location)
            return root
        }
        if let placement = try IndexPlacement.read(root) {
            if adoptIndex {
                _ = try DaemonLease.whileHolding(root, command: "init") { try Index.adopt(root: root, stateDirectory: stateDirectory ?? StateDirectory.default) }
                return root
            }
            if let stateDirectory, (placement.path as NSString).deletingLastPathComponent != stateDirectory + "/" + placement.rootId {
                throw StoreError("the index of \(root.path) is recorded at \(placement.host):\(placement.path), not in \(stateDirectory); leave out --state-dir (moving an index between state directories is done by hand: docs/nas.md)")
            }
            try Index.prepare(root: root, at: try root.openableIndex(), newIndex: newIndex)
        } else if adoptIndex {
            throw StoreError("the index of \(root.path) is inside the root (no .dropline-index.json); there is no snapshot to adopt")
        } else if stateDirectory != nil || moveIndex || MountKind.remote(root.path) != nil {
            _ = try Index.place(root: root, stateDirectory: stateDirectory ?? StateDirectory.default, moveIndex: moveIndex)
        } else {
            try Index.prepare(root: root, at: root.index, newIndex: newIndex)
        }
        return root
    }

    /// An existing root; an error saying to run `dropline init` when the layout is not there.
    public init(existing path: String) throws {
        self.init(path: Self.normalized(path))
        for folder in [inbox, outputs, flags] where !FileManager.default.fileExists(atPath: folder) {
            throw StoreError("'\(path)' is not a Dropline root (no \((folder as NSString).lastPathComponent)/); create it with `dropline init \(path)`")
        }
    }

    init(path: String) { self.path = path }

    static func normalized(_ path: String) -> String {
        path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// A path relative to the root (as the index stores paths).
    public func relative(_ absolute: String) -> String {
        absolute.hasPrefix(path + "/") ? String(absolute.dropFirst(path.count + 1)) : absolute
    }

    /// Publishes a complete staging folder under `destination` (absolute) by renaming it; the
    /// destination must not exist: published folders are never replaced.
    public func publish(staging folder: String, as destination: String) throws {
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw StoreError("'\(relative(destination))' is already published; published folders are never replaced")
        }
        try Syscall.retrying("rename", path: destination) { rename(folder, destination) }
    }

    /// Runs `body` holding an exclusive advisory lock (flock) on `outputs/.<name>.lock`, so that
    /// concurrent jobs of one daemon, and other Dropline processes on the same root, take turns (for
    /// example in allocating model version numbers). The kernel releases the lock if the process dies.
    public func withLock<T>(_ name: String, _ body: () throws -> T) throws -> T {
        let file = outputs + "/." + name + ".lock"
        let descriptor = try Syscall.retrying("open", path: file) { open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) }
        defer { close(descriptor) }
        try Syscall.retrying("flock", path: file) { flock(descriptor, LOCK_EX) }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    /// Removes staging folders left by runs that died (their work was never published).
    @discardableResult
    public func removeStagingLeftovers() throws -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: staging)) ?? []
        for name in names { try FileManager.default.removeItem(atPath: staging + "/" + name) }
        return names
    }
}

/// A store operation that cannot be done, with what to do about it.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A run as the index records it.
public struct RunRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "runs"
    public var id: String
    public var kind: RunKind
    public var subject: String
    public var batchId: Int64?
    public var modelVersion: Int?
    public var status: RunStatus
    public var folder: String?
    public var startedAt: String
    public var finishedAt: String?
    public var error: String?
    /// The owner id of the process that runs it (nil: from before owners were tracked).
    public var owner: String?

    enum CodingKeys: String, CodingKey {
        case id, kind, subject, status, folder, error, owner
        case batchId = "batch_id", modelVersion = "model_version", startedAt = "started_at", finishedAt = "finished_at"
    }
}

/// The index: `index.sqlite` through GRDB's connection pool in WAL mode (readers never wait for
/// the writer), or a PostgreSQL database shared by several daemons (`PostgresIndexConnection`), with
/// the schema's named migrations applied on open. Every invariant-bearing change is one transaction;
/// every query is written once for both backends (`IndexTransaction`).
public final class Index: Sendable {
    enum Storage: Sendable {
        case sqlite(any DatabaseWriter)
        case postgresql(PostgresIndexConnection)
    }

    let storage: Storage
    /// A private copy of a root's snapshot, removed when this index is released (`openSnapshot`).
    let snapshotCopy: String?
    /// Whether this is a read-only copy of a snapshot (`Index.openSnapshot`), not an index.
    public var isSnapshot: Bool { snapshotCopy != nil }

    /// How long a write waits for another process's lock before it fails with SQLITE_BUSY (the
    /// daemon is then degraded and retries with back-off: `Trouble`).
    public static let defaultBusySeconds = 10.0

    /// Opens (creating and migrating as needed) the index at `path`.
    public init(path: String, busySeconds: Double = Index.defaultBusySeconds) throws {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(busySeconds)
        let pool = try DatabasePool(path: path, configuration: configuration)
        try Schema.migrator.migrate(pool)
        storage = .sqlite(pool)
        snapshotCopy = nil
    }

    /// Opens (creating and migrating as needed) the PostgreSQL index at `location`.
    public init(postgresql location: PostgresLocation) throws {
        let connection = try PostgresIndexConnection(location: location)
        try Schema.migratePostgreSQL(connection)
        storage = .postgresql(connection)
        snapshotCopy = nil
    }

    /// A read-only copy of a snapshot at `path`, a private local file, removed with this index.
    init(snapshot path: String) throws {
        var configuration = IndexSnapshot.readOnly
        configuration.foreignKeysEnabled = true
        storage = .sqlite(try DatabaseQueue(path: path, configuration: configuration))
        snapshotCopy = path
    }

    deinit {
        if let snapshotCopy { unlink(snapshotCopy) }
    }

    /// An in-memory index (tests).
    public init() throws {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        let queue = try DatabaseQueue(configuration: configuration)
        try Schema.migrator.migrate(queue)
        storage = .sqlite(queue)
        snapshotCopy = nil
    }

    /// Which backend holds the index: `sqlite` or `postgresql`.
    public var backend: String {
        switch storage {
        case .sqlite: "sqlite"
        case .postgresql: "postgresql"
        }
    }

    /// Whether several daemons may share this index (PostgreSQL), instead of one per root.
    public var isShared: Bool { if case .postgresql = storage { true } else { false } }

    /// The SQLite database (snapshots, placement and checks that only SQLite has).
    var writer: any DatabaseWriter {
        get throws {
            guard case .sqlite(let writer) = storage else { throw StoreError("this is a PostgreSQL index: it has no SQLite file") }
            return writer
        }
    }

    /// Names of the applied migrations, oldest first.
    public func appliedMigrations() throws -> [String] {
        switch storage {
        case .sqlite(let writer): Schema.inOrder(try writer.read { db in try Schema.migrator.appliedIdentifiers(db) })
        case .postgresql(let connection): Schema.inOrder(try connection.transaction(.read) { db in try Schema.appliedPostgreSQLMigrations(db) })
        }
    }

    /// One read transaction (a consistent snapshot), on either backend.
    func reading<T>(_ body: (IndexTransaction) throws -> T) throws -> T {
        switch storage {
        case .sqlite(let writer): try writer.read { db in try body(IndexTransaction(.sqlite(db))) }
        case .postgresql(let connection): try connection.transaction(.read, body)
        }
    }

    /// One write transaction; writers take turns, on one machine or several.
    func writing<T>(_ body: (IndexTransaction) throws -> T) throws -> T {
        switch storage {
        case .sqlite(let writer): try writer.write { db in try body(IndexTransaction(.sqlite(db))) }
        case .postgresql(let connection): try connection.transaction(.write, body)
        }
    }

    /// A transaction that claims rows with `FOR UPDATE SKIP LOCKED` (PostgreSQL) instead of taking
    /// the writers' turn; on SQLite an ordinary write.
    func claiming<T>(_ body: (IndexTransaction) throws -> T) throws -> T {
        switch storage {
        case .sqlite(let writer): try writer.write { db in try body(IndexTransaction(.sqlite(db))) }
        case .postgresql(let connection): try connection.transaction(.claim, body)
        }
    }

    /// Direct access to the SQLite database, for tests that inspect the rows; Dropline's own code goes
    /// through the methods of this module (no SQL outside Store).
    public func read<T>(_ body: (Database) throws -> T) throws -> T { try writer.read(body) }
    public func write<T>(_ body: (Database) throws -> T) throws -> T { try writer.write(body) }

    /// Rows of a query, on either backend, for tests that inspect them (`?` placeholders).
    public func inspect(sql: String, arguments: [(any DatabaseValueConvertible)?] = []) throws -> [Row] {
        try reading { db in try db.fetchAll(sql: sql, arguments: arguments) }
    }

    /// Runs a statement, on either backend, for tests that break rows on purpose.
    public func tamper(sql: String, arguments: [(any DatabaseValueConvertible)?] = []) throws {
        try writing { db in try db.execute(sql: sql, arguments: arguments) }
    }

    /// Records a run as started, with its inputs (role, relative path, SHA-256).
    public func startRun(id: String, kind: RunKind, subject: String, batchID: Int64? = nil, modelVersion: Int? = nil,
                         inputs: [RunInput] = [], owner: String? = nil) throws {
        try writing { db in
            try Self.insert(db, RunRecord(id: id, kind: kind, subject: subject, batchId: batchID, modelVersion: modelVersion, status: .running,
                                          folder: nil, startedAt: Self.now(), finishedAt: nil, error: nil, owner: owner))
            try Self.insertInputs(db, run: id, inputs)
            try Self.event(db, kind: "run_started", subject: id, detail: "\(kind.rawValue) \(subject)")
        }
    }

    static func insert(_ db: IndexTransaction, _ run: RunRecord) throws {
        try db.execute(sql: """
            INSERT INTO runs (id, kind, subject, batch_id, model_version, status, folder, started_at, finished_at, error, owner)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [run.id, run.kind.rawValue, run.subject, run.batchId, run.modelVersion, run.status.rawValue, run.folder, run.startedAt,
                             run.finishedAt, run.error, run.owner])
    }

    static func run(_ db: IndexTransaction, _ id: String) throws -> RunRecord? {
        try db.record(RunRecord.self, sql: "SELECT * FROM runs WHERE id = ?", arguments: [id])
    }

    static func insertInputs(_ db: IndexTransaction, run: String, _ inputs: [RunInput]) throws {
        for input in inputs {
            try db.execute(sql: "INSERT INTO run_inputs (run_id, role, path, sha256) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           arguments: [run, input.role, input.path, input.sha256])
        }
    }

    /// Marks a run succeeded with its published folder and component outputs, plus any extra rows
    /// `also` writes, in one transaction (call after the folder is published).
    func finishRun(_ db: IndexTransaction, id: String, folder: String, outputs: [String: String]) throws {
        try db.execute(sql: "UPDATE runs SET status = 'succeeded', folder = ?, finished_at = ? WHERE id = ? AND status = 'running'",
                       arguments: [folder, Self.now(), id])
        guard db.changesCount == 1 else { throw StoreError("run \(id) is not running") }
        for (key, path) in outputs.sorted(by: { $0.key < $1.key }) {
            try db.execute(sql: "INSERT INTO component_outputs (run_id, key, path) VALUES (?, ?, ?)", arguments: [id, key, path])
        }
        try Self.event(db, kind: "run_succeeded", subject: id, detail: folder)
    }

    /// Marks a run succeeded with its published folder, component outputs and inputs, in one
    /// transaction (call after the folder is published).
    public func finishRun(id: String, folder: String, outputs: [String: String], inputs: [RunInput] = []) throws {
        try writing { db in
            try finishRun(db, id: id, folder: folder, outputs: outputs)
            try Self.insertInputs(db, run: id, inputs)
        }
    }

    /// Marks a run failed, keeping the reason.
    public func failRun(id: String, error: String) throws {
        try writing { db in
            try db.execute(sql: "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ? AND status = 'running'",
                           arguments: [Self.now(), error, id])
            try Self.event(db, kind: "run_failed", subject: id, detail: error)
        }
    }

    /// Puts back as running, under `owner`, a run whose folder was published but whose row says
    /// otherwise (an error between the rename and the index marked it failed, or it was never
    /// recorded): so that it can be completed from its manifest. Returns whether anything changed.
    @discardableResult
    public func reopenRun(id: String, kind: RunKind, subject: String, modelVersion: Int?, startedAt: String, owner: String?) throws -> Bool {
        try writing { db in
            if let existing = try Self.run(db, id) {
                guard existing.status == .failed else { return false }
                try db.execute(sql: "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, owner = ? WHERE id = ?", arguments: [owner, id])
            } else {
                try Self.insert(db, RunRecord(id: id, kind: kind, subject: subject, batchId: nil, modelVersion: modelVersion, status: .running,
                                              folder: nil, startedAt: startedAt, finishedAt: nil, error: nil, owner: owner))
            }
            try Self.event(db, kind: "run_reopened", subject: id, detail: "published but not indexed: completing it from its manifest")
            return true
        }
    }

    /// Runs still marked running (after a crash: to be failed and their staging removed).
    public func interruptedRuns() throws -> [RunRecord] {
        try reading { db in try db.records(RunRecord.self, sql: "SELECT * FROM runs WHERE status = 'running' ORDER BY started_at") }
    }

    /// The most recent runs, newest first.
    public func runs(limit: Int = 50) throws -> [RunRecord] {
        try reading { db in try db.records(RunRecord.self, sql: "SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT ?", arguments: [limit]) }
    }

    public func run(_ id: String) throws -> RunRecord? {
        try reading { db in try Self.run(db, id) }
    }

    /// Component outputs of a run, by key.
    public func outputs(of run: String) throws -> [String: String] {
        try reading { db in
            Dictionary(uniqueKeysWithValues: try db.fetchAll(sql: "SELECT key, path FROM component_outputs WHERE run_id = ?", arguments: [run])
                .map { ($0["key"] as String, $0["path"] as String) })
        }
    }

    public func event(kind: String, subject: String?, detail: String?) throws {
        try writing { db in try Self.event(db, kind: kind, subject: subject, detail: detail) }
    }

    static func event(_ db: IndexTransaction, kind: String, subject: String?, detail: String?) throws {
        try db.execute(sql: "INSERT INTO events (at, kind, subject, detail) VALUES (?, ?, ?, ?)", arguments: [now(), kind, subject, detail])
    }

    /// ISO 8601 UTC with milliseconds: sorts as text in time order.
    public static func now() -> String {
        ISOTime.now()
    }

    /// A new run id: UTC time to the second and a random suffix, e.g. 20261121T071500Z-3fa9.
    public static func newRunID() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.string(from: Date()) + "-" + String(format: "%04x", UInt16.random(in: 0...UInt16.max))
    }
}
