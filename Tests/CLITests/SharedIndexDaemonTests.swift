import Foundation
import ShareSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Several real `dropline watch` daemons on one root whose index is a PostgreSQL database (a private
/// server per test process: `PostgresServer`).
@Suite("Daemons sharing a PostgreSQL index", .enabled(if: Binary.path != nil && PostgresServer.available, "needs the dropline executable and \(PostgresServer.unavailable)"),
       .serialized)
struct SharedIndexDaemonTests {
    typealias Daemon = WatchDaemonTests.Daemon

    /// A new root on a new database of the test server, with stage "original" trained.
    static func sharedRoot(seed: UInt64) throws -> (root: String, url: String, passwordFile: String) {
        let server = try PostgresServer.shared()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-shared-\(UUID().uuidString)").path
        let passwordFile = root + ".pgpass"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data((server.password + "\n").utf8), attributes: [.posixPermissions: 0o600])
        let url = try server.newDatabase()
        let made = try Binary.run(["init", root, "--index", url, "--password-file", passwordFile])
        guard made.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: made.stderr]) }
        try WatchDaemonTests.writeTrainingData(root, seed: seed)
        let trained = try Binary.run(["train", root, "--stage", "original"] + WatchDaemonTests.training)
        guard trained.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: trained.stderr]) }
        return (root, url, passwordFile)
    }

    /// Rows of the root's index, through `dropline runs --json` / `jobs`: what a user sees.
    static func json(_ arguments: [String]) throws -> Any {
        let result = try Binary.run(arguments)
        guard result.status == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: result.stderr]) }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }

    static func jobs(_ root: String) throws -> [[String: Any]] {
        let status = try json(["status", root, "--json", "--limit", "100"]) as? [String: Any]
        return (status?["recent_jobs"] as? [[String: Any]]) ?? []
    }

    static func servedRuns(_ root: String) throws -> [[String: Any]] {
        let runs = (try json(["runs", root, "--json", "--limit", "200"]) as? [[String: Any]]) ?? []
        return runs.filter { ($0["kind"] as? String) == "serve" && ($0["status"] as? String) == "succeeded" }
    }

    @Test("init records the database, never a password; status names it; a second init on the root keeps it")
    func initRecordsLocation() throws {
        let (root, url, passwordFile) = try Self.sharedRoot(seed: 30)
        defer { try? FileManager.default.removeItem(atPath: root); unlink(passwordFile) }
        let password = try PostgresServer.shared().password
        let record = try String(contentsOfFile: root + "/.dropline-postgresql.json", encoding: .utf8)
        #expect(record.contains("\"database\"") && record.contains(passwordFile) && !record.contains(password))
        #expect(!FileManager.default.fileExists(atPath: root + "/index.sqlite"))
        let again = try Binary.run(["init", root])
        #expect(again.status == 0 && again.stdout.contains(url), "\(again.stdout)\(again.stderr)")
        #expect(!again.stdout.contains(password) && !again.stderr.contains(password))
        let sqliteRoot = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-sqlite-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: sqliteRoot) }
        #expect(try Binary.run(["init", sqliteRoot]).status == 0)
        let refused = try Binary.run(["init", sqliteRoot, "--index", url, "--password-file", passwordFile])
        #expect(refused.status != 0 && refused.stderr.contains("already has a SQLite index"), "\(refused.stderr)")
    }

    @Test("two daemons and one PostgreSQL index serve a stream of batches: every batch once, the work shared between them")
    func twoDaemons() throws {
        let (root, _, passwordFile) = try Self.sharedRoot(seed: 31)
        defer { try? FileManager.default.removeItem(atPath: root); unlink(passwordFile) }
        let daemons = try (0..<2).map { _ in try Daemon(root: root, arguments: ["--settle", "30", "--lease-seconds", "3"] + WatchDaemonTests.training) }
        defer { daemons.forEach { _ = $0.stop() } }
        let names = (1...8).map { "b\($0)" }
        for (i, name) in names.enumerated() {
            let folder = root + "/inbox/production/original/" + name
            try WatchDaemonTests.writeBatch(folder, count: 6, seed: 100 + UInt64(i), pause: 0)
            _ = FileManager.default.createFile(atPath: folder + "/_READY", contents: nil)
            if i == 3 { usleep(1_500_000) }  // two bursts of four
        }
        let done = try WatchDaemonTests.eventually(120) {
            let batchJobs = try Self.jobs(root).filter { ($0["event"] as? String) == "batch_landed" }
            return batchJobs.count == names.count && batchJobs.allSatisfy { ($0["state"] as? String) == "succeeded" }
        }
        let finalJobs = try Self.jobs(root)
        #expect(done, "\(finalJobs)")
        let served = try Self.servedRuns(root)
        #expect(served.compactMap { $0["subject"] as? String }.sorted() == names.sorted(), "each batch served once: \(served.map { $0["subject"] ?? "" })")
        let owners = Set(served.compactMap { $0["owner"] as? String })
        #expect(owners.count == 2, "both daemons served batches: \(owners)")
        #expect(daemons.allSatisfy { $0.process.isRunning })
    }

    @Test("a daemon cut off mid-job: its job's lease expires, the other daemon claims it and serves the batch, once")
    func cutOffMidJob() throws {
        let (root, _, passwordFile) = try Self.sharedRoot(seed: 32)
        defer { try? FileManager.default.removeItem(atPath: root); unlink(passwordFile) }
        // the first daemon stops (SIGSTOP: no more heartbeats or renewals) in the middle of serving b1
        let first = try Daemon(root: root, arguments: ["--settle", "30", "--lease-seconds", "3"] + WatchDaemonTests.training,
                               environment: ["DROPLINE_PAUSE": "infer-after-processing=60"])
        let folder = root + "/inbox/production/original/b1"
        try WatchDaemonTests.writeBatch(folder, count: 6, seed: 200, pause: 0)
        _ = FileManager.default.createFile(atPath: folder + "/_READY", contents: nil)
        let claimed = try WatchDaemonTests.eventually(60) { try Self.jobs(root).contains { ($0["state"] as? String) == "running" } }
        #expect(claimed)
        usleep(500_000)
        kill(first.process.processIdentifier, SIGSTOP)
        defer { kill(first.process.processIdentifier, SIGKILL); first.process.waitUntilExit() }
        let second = try Daemon(root: root, arguments: ["--settle", "30", "--lease-seconds", "3"] + WatchDaemonTests.training)
        defer { _ = second.stop() }
        let served = try WatchDaemonTests.eventually(90) {
            try Self.jobs(root).contains { ($0["event"] as? String) == "batch_landed" && ($0["state"] as? String) == "succeeded" }
        }
        let finalJobs = try Self.jobs(root)
        #expect(served, "\(finalJobs)")
        let job = try #require(try Self.jobs(root).first { ($0["event"] as? String) == "batch_landed" })
        #expect((job["attempts"] as? Int) == 2 && (job["detail"] as? String ?? "").isEmpty == false)
        #expect(try Self.servedRuns(root).compactMap { $0["subject"] as? String } == ["b1"])
    }
}
