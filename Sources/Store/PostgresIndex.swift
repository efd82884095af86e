import DroplineSupport
public import Foundation
import Synchronization
import GRDB
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// # A PostgreSQL index
///
/// Several daemons, on several machines, can share one root when its index is a PostgreSQL
/// database instead of `index.sqlite` (`dropline init <root> --index postgresql://...`). The schema
/// and its named migrations are SQLite's (`Schema.postgresql` translates each one), and every query
/// is the same SQL (`IndexTransaction`): the two backends differ only in how a transaction is held.
///
/// - A write takes `pg_advisory_xact_lock` on the index first, so writers take turns as they do on
///   SQLite (whose single writer is what every invariant-bearing transaction was written for),
///   whichever machine they run on.
/// - A job is claimed without that lock, with `SELECT ... FOR UPDATE SKIP LOCKED` (`claimNextJob`):
///   daemons claiming at once take different jobs and never wait for each other.
/// - A read is one REPEATABLE READ, READ ONLY transaction: a consistent snapshot, as WAL gives.
///
/// The client is postgres-nio, used through its EventLoopFuture API and waited for on the calling
/// thread: Dropline's callers are synchronous, and the futures complete on NIO's own threads, so a
/// caller on Swift's cooperative pool cannot starve them. One connection per process, guarded by a
/// lock (transactions of one process take turns), reopened when the server dropped it.

/// Where a PostgreSQL index is, as recorded in the root (`.dropline-index.json`): never a password.
public struct PostgresLocation: Codable, Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var database: String
    public var user: String
    /// A file holding the password (one line), readable by its owner only; nil: `PGPASSWORD` (or none).
    public var passwordFile: String?
    /// `require`: TLS, or no connection; `disable` (the default): plain TCP, for loopback and trusted networks.
    public var sslMode: String

    /// Parses `postgresql://user@host:port/database[?sslmode=require]`. A password in the URL is
    /// refused: the URL is recorded in the root and shown by `status`.
    public init(url: String, passwordFile: String? = nil) throws {
        guard let components = URLComponents(string: url), components.scheme == "postgresql" || components.scheme == "postgres" else {
            throw StoreError("'\(url)' is not a PostgreSQL URL; write postgresql://USER@HOST:PORT/DATABASE")
        }
        guard components.password == nil else {
            throw StoreError("the URL carries a password, which would be recorded in the root; put it in PGPASSWORD, or in a file readable only by you given with --password-file")
        }
        guard let host = components.host, !host.isEmpty else { throw StoreError("'\(url)' names no host; write postgresql://USER@HOST:PORT/DATABASE") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else { throw StoreError("'\(url)' names no database; write postgresql://USER@HOST:PORT/DATABASE") }
        guard let user = components.user, !user.isEmpty else { throw StoreError("'\(url)' names no user; write postgresql://USER@HOST:PORT/DATABASE") }
        let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
        guard mode == "disable" || mode == "require" else { throw StoreError("sslmode=\(mode) is not supported: use sslmode=require (TLS) or sslmode=disable") }
        for item in components.queryItems ?? [] where item.name != "sslmode" {
            throw StoreError("the URL's '\(item.name)' option is not supported (only sslmode)")
        }
        // the names go into the root's record, status lines and logs: a newline or an escape would forge them
        for (what, name) in [("host", host), ("database", database), ("user", user)]
        where name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw StoreError("the URL's \(what) name has a control character (a newline, an escape); give the name as the server knows it")
        }
        self.host = host
        self.port = components.port ?? 5432
        self.database = database
        self.user = user
        self.passwordFile = passwordFile
        self.sslMode = mode
        if passwordFile != nil { _ = try password() }
    }

    /// The URL without a password: what logs and `status` show.
    public var description: String {
        "postgresql://\(user)@\(host):\(port)/\(database)" + (sslMode == "require" ? "?sslmode=require" : "")
    }

    /// The password: from `passwordFile` (which must be a regular file, not a link, readable by its
    /// owner only), else `PGPASSWORD`, else none.
    func password() throws -> String? {
        guard let passwordFile else { return ProcessInfo.processInfo.environment["PGPASSWORD"] }
        var info = stat()
        guard lstat(passwordFile, &info) == 0 else {
            throw StoreError("the PostgreSQL password file \(passwordFile) cannot be read (\(String(cString: strerror(errno)))); restore it, or give another with --password-file")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw StoreError("the PostgreSQL password file \(passwordFile) is not a regular file (a link is not followed); give the file itself") }
        guard info.st_mode & 0o077 == 0 else {
            throw StoreError(String(format: "the PostgreSQL password file %@ can be read by others (mode %o); `chmod 600 %@`", passwordFile, Int(info.st_mode & 0o777), passwordFile))
        }
        guard info.st_uid == geteuid() else { throw StoreError("the PostgreSQL password file \(passwordFile) belongs to another user; it must be yours") }
        let text = try AtomicFile.read(passwordFile, limit: 4096, links: .refuse)
        guard let line = String(decoding: text, as: UTF8.self).split(whereSeparator: \.isNewline).first, !line.isEmpty else {
            throw StoreError("the PostgreSQL password file \(passwordFile) is empty; write the password on its first line")
        }
        return String(line)
    }
}

/// Rows of a PostgreSQL result as SQLite storage values, by position and by name.
struct PostgresRowValues {
    var ordered: [DatabaseValue]
    var named: [String: DatabaseValue]
}

/// One transaction's access to the connection (`PostgresIndexConnection.transaction`).
struct PostgresSession {
    let connection: PostgresConnection
    let logger: Logger

    func query(_ sql: String, _ arguments: IndexTransaction.Arguments) throws -> (rows: [PostgresRowValues], affected: Int) {
        var bindings = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument?.databaseValue.storage ?? .null {
            case .null: bindings.appendNull()
            case .int64(let value): bindings.append(value)
            case .double(let value): bindings.append(value)
            case .string(let value): bindings.append(value)
            case .blob(let value): bindings.append(ByteBuffer(bytes: value))
            }
        }
        let result: PostgresQueryResult
        do {
            result = try connection.query(PostgresQuery(unsafeSQL: Self.numbered(sql), binds: bindings), logger: logger).wait()
        } catch {
            throw PostgresIndexError(error, sql: sql)
        }
        let rows = try result.rows.map { row in
            var values = PostgresRowValues(ordered: [], named: [:])
            for cell in row {
                let value = try Self.value(cell)
                values.ordered.append(value)
                values.named[cell.columnName] = value
            }
            return values
        }
        return (rows, result.metadata.rows ?? 0)
    }

    /// Statements without parameters, one after another (the migrations: statements end with a `;`
    /// at the end of a line, since postgres-nio sends every query as one prepared statement).
    func script(_ sql: String) throws {
        let statements = sql.components(separatedBy: ";\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .map { $0.hasSuffix(";") ? String($0.dropLast()) : $0 }.filter { !$0.isEmpty }
        for statement in statements { _ = try query(statement, []) }
    }

    /// `?` placeholders as PostgreSQL's `$1, $2, ...` (a `?` inside a quoted literal is left alone).
    static func numbered(_ sql: String) -> String {
        var out = ""
        out.reserveCapacity(sql.count + 16)
        var quoted = false
        var number = 0
        for character in sql {
            if character == "'" { quoted.toggle() }
            if character == "?" && !quoted {
                number += 1
                out += "$\(number)"
            } else {
                out.append(character)
            }
        }
        return out
    }

    static func value(_ cell: PostgresCell) throws -> DatabaseValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .bool: return (try cell.decode(Bool.self) ? 1 : 0).databaseValue
        case .int2, .int4, .int8, .oid: return try cell.decode(Int64.self).databaseValue
        case .float4, .float8: return try cell.decode(Double.self).databaseValue
        case .numeric:
            // sums of integers are NUMERIC in PostgreSQL: integral ones come back as integers, as SQLite's do
            let decimal = try cell.decode(Decimal.self)
            let double = NSDecimalNumber(decimal: decimal).doubleValue
            return double == double.rounded() && abs(double) < 9e15 ? Int64(double).databaseValue : double.databaseValue
        case .bytea: return Data(try cell.decode(ByteBuffer.self).readableBytesView).databaseValue
        default: return try cell.decode(String.self).databaseValue
        }
    }
}

/// A PostgreSQL error with the statement it came from (the SQLSTATE code kept for callers that
/// handle one, such as a lost race on a unique index).
public struct PostgresIndexError: Error, CustomStringConvertible, Sendable {
    /// SQLSTATE, e.g. 23505 (unique violation); nil when the server was not reached.
    public var sqlState: String?
    public var message: String
    /// The server could not be reached, or dropped the connection: worth waiting for.
    public var isConnectionLost: Bool

    init(_ error: any Error, sql: String?) {
        if let psql = error as? PSQLError {
            sqlState = psql.serverInfo?[.sqlState]
            let text = psql.serverInfo?[.message] ?? "\(psql.code)"
            let detail = psql.serverInfo?[.detail].map { " (\($0))" } ?? ""
            message = text + detail + (sql.map { " in: \($0.prefix(160))" } ?? "")
            isConnectionLost = [PSQLError.Code.connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection].contains(psql.code)
                || sqlState?.hasPrefix("08") == true || sqlState == "57P01"
        } else {
            sqlState = nil
            message = "\(error)"
            isConnectionLost = true
        }
    }

    public var description: String { "PostgreSQL: \(message)" }
}

/// The connection of one process to a PostgreSQL index.
final class PostgresIndexConnection: @unchecked Sendable {
    let location: PostgresLocation
    let logger: Logger
    let lock = NSLock()
    /// Guarded by `lock`.
    var connection: PostgresConnection?
    /// postgres-nio's connection ids (for its logs): one sequence for the process.
    static let nextID = Atomic<Int>(1)

    /// The key of the advisory lock every write takes (the same on every machine).
    static let writeLockKey: Int64 = 0x4452_4F50_4C49_4E45  // "DROPLINE"

    init(location: PostgresLocation) throws {
        self.location = location
        var logger = Logger(label: "dropline.index.postgresql")
        logger.logLevel = .critical  // postgres-nio logs every query at debug; errors reach the caller
        self.logger = logger
        lock.lock()
        defer { lock.unlock() }
        _ = try connected()
    }

    deinit {
        if let connection { try? connection.close().wait() }
    }

    /// Guarded by `lock`: the open connection, reopened when the server dropped it.
    func connected() throws -> PostgresConnection {
        if let connection, !connection.isClosed { return connection }
        connection = nil
        do {
            let opened = try Self.open(location, logger: logger)
            connection = opened
            return opened
        } catch {
            let failure = PostgresIndexError(error, sql: nil)
            throw PostgresIndexError(copying: failure, message: "cannot connect to the index at \(location): \(failure.message)")
        }
    }

    /// A new connection to `location` (TLS when its sslmode is require; ten seconds to connect).
    static func open(_ location: PostgresLocation, logger: Logger) throws -> PostgresConnection {
        let tls: PostgresConnection.Configuration.TLS
        if location.sslMode == "require" {
            tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        } else {
            tls = .disable
        }
        var configuration = PostgresConnection.Configuration(host: location.host, port: location.port, username: location.user,
                                                             password: try location.password(), database: location.database, tls: tls)
        configuration.options.connectTimeout = .seconds(10)
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        return try PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration, id: id, logger: logger).wait()
    }

    enum Kind { case read, write, claim, schema }

    /// Runs `body` in one transaction: a write under the index's advisory lock, a claim without it
    /// (READ COMMITTED, for SKIP LOCKED), a read as a REPEATABLE READ snapshot. Rolled back when
    /// `body` throws.
    func transaction<T>(_ kind: Kind, _ body: (IndexTransaction) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        let session = PostgresSession(connection: try connected(), logger: logger)
        switch kind {
        case .read: try session.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        case .write, .schema:
            try session.script("BEGIN")
            _ = try session.query("SELECT pg_advisory_xact_lock(?)", [Self.writeLockKey])
        case .claim: try session.script("BEGIN")
        }
        do {
            let result = try body(IndexTransaction(.postgresql(session)))
            try session.script("COMMIT")
            return result
        } catch {
            try? session.script("ROLLBACK")
            throw error
        }
    }

    /// Runs `handler` whenever a NOTIFY arrives on `channel`, on a connection of its own (reopened
    /// when lost) until the returned listener is stopped.
    func listen(channel: String, _ handler: @escaping @Sendable () -> Void) throws -> PostgresListener {
        try PostgresListener(location: location, channel: channel, logger: logger, handler: handler)
    }
}

extension PostgresIndexError {
    init(copying other: PostgresIndexError, message: String) {
        self = other
        self.message = message
    }
}

/// A LISTEN on its own connection: wakes a daemon when another one queued a job.
public final class PostgresListener: @unchecked Sendable {
    let connection: PostgresConnection
    let context: PostgresListenContext

    init(location: PostgresLocation, channel: String, logger: Logger, handler: @escaping @Sendable () -> Void) throws {
        do {
            connection = try PostgresIndexConnection.open(location, logger: logger)
            context = connection.addListener(channel: channel) { _, _ in handler() }
            _ = try connection.simpleQuery("LISTEN \(channel)").wait()
        } catch {
            throw PostgresIndexError(error, sql: "LISTEN \(channel)")
        }
    }

    /// Whether notifications can still arrive (false: the connection was lost; listen again).
    public var isListening: Bool { !connection.isClosed }

    public func stop() {
        context.stop()
        try? connection.close().wait()
    }

    deinit { stop() }
}
