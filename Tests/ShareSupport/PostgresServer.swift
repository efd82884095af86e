import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL server for tests: Debian's postgresql, a private cluster (`initdb` into a
/// temporary folder, run as the `postgres` user, on a free loopback port, password authentication
/// with SCRAM), started once per test process and stopped when it exits. Each test takes a database
/// of its own (`newDatabase`). Needs root and Debian's postgresql package (`.ci/run` installs it).
public final class PostgresServer: @unchecked Sendable {
    public let base: String
    public let port: Int
    public let user = "dropline"
    public let password: String
    let bin: String

    public static var binaries: String? {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }.map { "/usr/lib/postgresql/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }

    public static var available: Bool { getuid() == 0 && binaries != nil && getpwnam("postgres") != nil }
    public static let unavailable = "needs root and a PostgreSQL server (apt-get install postgresql; .ci/run installs it)"

    nonisolated(unsafe) static var started: PostgresServer?
    static let lock = NSLock()

    /// The server `scripts/postgres-test-server start` runs (`.ci/run` starts it), when it runs.
    static let ciFolder = "/tmp/dropline-pg-tests"

    /// The server of this test process: the one `.ci/run` started, else one started on first use
    /// (and stopped at exit).
    public static func shared() throws -> PostgresServer {
        try lock.withLock {
            if let started { return started }
            if let running = PostgresServer(adopting: ciFolder) {
                started = running
                return running
            }
            let server = try PostgresServer()
            started = server
            atexit { PostgresServer.started?.stop() }
            return server
        }
    }

    /// Whether this process started the server (and stops it), or found it running.
    let adopted: Bool

    /// The server in `folder` when it answers (its port and password files are there).
    init?(adopting folder: String) {
        guard let bin = Self.binaries, let port = (try? String(contentsOfFile: folder + "/port", encoding: .utf8)).flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
              let password = try? String(contentsOfFile: folder + "/password", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              (try? SFTPShare.tool(bin + "/pg_isready", ["-q", "-h", "127.0.0.1", "-p", "\(port)"])) == 0 else { return nil }
        self.bin = bin
        self.base = folder
        self.port = port
        self.password = password
        adopted = true
    }

    /// A server of its own (a test that stops it must not stop the others'); stop it with `stop()`.
    public static func own() throws -> PostgresServer { try PostgresServer() }

    init() throws {
        guard let bin = Self.binaries, let account = getpwnam("postgres") else { throw SFTPShare.Failure(description: Self.unavailable) }
        self.bin = bin
        adopted = false
        base = "/tmp/dropline-pg-\(UUID().uuidString.prefix(8))"
        password = UUID().uuidString
        port = try SFTPShare.freePort()
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        try password.write(toFile: base + "/password", atomically: true, encoding: .utf8)
        chown(base, account.pointee.pw_uid, account.pointee.pw_gid)
        chown(base + "/password", account.pointee.pw_uid, account.pointee.pw_gid)
        try run(bin + "/initdb", ["-D", base + "/data", "-U", user, "--pwfile=" + base + "/password", "-A", "scram-sha-256", "-E", "UTF8",
                                  "--locale=C.UTF-8"], "initdb")
        try run(bin + "/pg_ctl", ["-D", base + "/data", "-l", base + "/server.log", "-w", "-t", "60", "-o",
                                  "-p \(port) -k \(base) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", "start"], "pg_ctl start")
    }

    func run(_ tool: String, _ arguments: [String], _ what: String) throws {
        let status = try SFTPShare.tool("/usr/sbin/runuser", ["-u", "postgres", "--", tool] + arguments)
        guard status == 0 else {
            let log = (try? String(contentsOfFile: base + "/server.log", encoding: .utf8)) ?? ""
            throw SFTPShare.Failure(description: "\(what) failed with status \(status)\n\(log.suffix(2000))")
        }
    }

    /// A new, empty database; its URL (without the password, which is `password`: give it as PGPASSWORD).
    public func newDatabase() throws -> String {
        let name = "t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        try sql("CREATE DATABASE \(name)")
        return url(name)
    }

    public func url(_ database: String) -> String { "postgresql://\(user)@127.0.0.1:\(port)/\(database)" }

    /// Runs SQL with psql against the `postgres` database.
    public func sql(_ statement: String, database: String = "postgres") throws {
        let pid = try SFTPShare.spawn(bin + "/psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", user, "-d", database, "-v", "ON_ERROR_STOP=1", "-c", statement],
                                      environment: ["PGPASSWORD": password], stderr: base + "/psql.err")
        guard SFTPShare.wait(pid) == 0 else {
            throw SFTPShare.Failure(description: "psql \(statement): \((try? String(contentsOfFile: base + "/psql.err", encoding: .utf8)) ?? "")")
        }
    }

    /// Stops the server now, dropping every connection (`pg_ctl stop -m immediate`), and starts it again.
    public func restart() throws {
        try run(bin + "/pg_ctl", ["-D", base + "/data", "-m", "immediate", "-w", "stop"], "pg_ctl stop")
        try run(bin + "/pg_ctl", ["-D", base + "/data", "-l", base + "/server.log", "-w", "-t", "60", "-o",
                                  "-p \(port) -k \(base) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", "start"], "pg_ctl start")
    }

    public func stop() {
        guard !adopted else { return }  // the CI's server outlives this process
        _ = try? SFTPShare.tool("/usr/sbin/runuser", ["-u", "postgres", "--", bin + "/pg_ctl", "-D", base + "/data", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: base)
    }
}
