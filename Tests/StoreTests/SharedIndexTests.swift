import Foundation
import ShareSupport
import Store
import Synchronization
import Testing

@Suite("Job leases, on every backend")
struct JobLeaseTests {
    let hash = String(repeating: "e", count: 64)

    @Test("a claimed job is held for its lease while renewed; once its lease expires another daemon claims it again, once", arguments: Backend.durable)
    func expiry(backend: Backend) throws {
        let (first, reopen) = try Indexes.make(backend)
        let second = try reopen()
        try first.enqueue(event: .batchLanded, path: "production/s/b1", contentSha256: hash)
        let claimed = try #require(try first.claimNextJob(owner: "daemon-a", leaseSeconds: 1.5))
        #expect(claimed.owner == "daemon-a" && claimed.leaseUntil != nil)
        for _ in 0..<4 {
            usleep(500_000)
            #expect(try first.renewJobLeases(owner: "daemon-a", leaseSeconds: 1.5) == 1)
            #expect(try second.claimNextJob(owner: "daemon-b", leaseSeconds: 1.5) == nil, "taken while its lease was renewed")
        }
        usleep(2_000_000)  // daemon-a stops renewing: killed, or cut off from the index
        let again = try #require(try second.claimNextJob(owner: "daemon-b", leaseSeconds: 30))
        #expect(again.id == claimed.id && again.owner == "daemon-b" && again.attempts == 2)
        #expect(again.detail?.contains("reclaimed: the lease of daemon-a expired") == true)
        #expect(try first.renewJobLeases(owner: "daemon-a", leaseSeconds: 1.5) == 0, "the old holder no longer renews it")
        #expect(try first.claimNextJob(owner: "daemon-a", leaseSeconds: 1.5) == nil)
        try second.finishJob(again.id, state: .succeeded, detail: "served")
        #expect(try first.jobs().first?.leaseUntil == nil)
    }
}

@Suite("A PostgreSQL index shared by several processes", .enabled(if: PostgresServer.available, "\(PostgresServer.unavailable)"))
struct SharedPostgresIndexTests {
    @Test("claimers on several connections at once: every job claimed exactly once, never two of one path at a time")
    func concurrentClaims() throws {
        let location = try Indexes.postgresLocation()
        let indexes = try (0..<3).map { _ in try Index(postgresql: location) }
        var expected = 0
        for batch in 0..<30 {
            for version in 0..<(batch % 3 == 0 ? 2 : 1) {  // some paths have two versions, which must run one after the other
                try indexes[0].enqueue(event: .batchLanded, path: "production/s/b\(batch)", contentSha256: String(repeating: "\(version)", count: 64))
                expected += 1
            }
        }
        let claims = Mutex<[Int64]>([]), running = Mutex<Set<String>>([]), overlaps = Mutex<[String]>([]), errors = Mutex<[String]>([])
        let threads = (0..<6).map { t in
            Thread {
                let index = indexes[t % indexes.count]
                do {
                    var idle = 0
                    while idle < 20 {
                        guard let job = try index.claimNextJob(owner: "claimer-\(t)", leaseSeconds: 60) else {
                            idle += 1
                            usleep(20_000)
                            continue
                        }
                        idle = 0
                        claims.withLock { $0.append(job.id) }
                        let clash = running.withLock { !$0.insert(job.path).inserted }
                        if clash { overlaps.withLock { $0.append(job.path) } }
                        usleep(UInt32.random(in: 1_000...10_000))
                        running.withLock { _ = $0.remove(job.path) }
                        try index.finishJob(job.id, state: .succeeded, detail: "done by \(t)")
                    }
                } catch {
                    errors.withLock { $0.append("\(error)") }
                }
            }
        }
        threads.forEach { $0.start() }
        while threads.contains(where: { !$0.isFinished }) { usleep(50_000) }
        #expect(errors.withLock { $0 }.isEmpty, "\(errors.withLock { $0 })")
        let ids = claims.withLock { $0 }
        #expect(ids.count == expected && Set(ids).count == expected, "\(ids.count) claims of \(Set(ids).count) jobs; \(expected) queued")
        #expect(overlaps.withLock { $0 }.isEmpty, "two jobs of one path ran at once: \(overlaps.withLock { $0 })")
        #expect(try indexes[1].jobs(states: [.succeeded], limit: 1000).count == expected)
    }

    @Test("a job queued by one process wakes another through LISTEN/NOTIFY")
    func notification() throws {
        let location = try Indexes.postgresLocation()
        let producer = try Index(postgresql: location), listener = try Index(postgresql: location)
        let woken = Atomic<Int>(0)
        let listening = try #require(try listener.listenForJobs { woken.add(1, ordering: .relaxed) })
        defer { listening.stop() }
        try producer.enqueue(event: .batchLanded, path: "production/s/b1", contentSha256: String(repeating: "a", count: 64))
        let deadline = Date().addingTimeInterval(10)
        while woken.load(ordering: .relaxed) == 0 && Date() < deadline { usleep(20_000) }
        #expect(woken.load(ordering: .relaxed) >= 1)
        #expect(try Index().listenForJobs { } == nil, "SQLite has no listener")
    }

    @Test("the server restarting: the call that finds it gone is a transient trouble; the next one reconnects")
    func reconnect() throws {
        let server = try PostgresServer.own()  // restarted: the other tests' server must stay up
        defer { server.stop() }
        let location = try Indexes.postgresLocation(on: server)
        let index = try Index(postgresql: location)
        try index.startRun(id: "r1", kind: .train, subject: "original")
        try server.restart()
        var lost: (any Error)?
        do { _ = try index.run("r1") } catch { lost = error }
        if let lost { #expect(Trouble.transient(lost) != nil, "\(lost)") }
        #expect(try index.run("r1")?.status == .running)
    }

    @Test("credentials: never in the URL; a password file must be private, a regular file, and is never shown")
    func credentials() throws {
        let server = try PostgresServer.shared()
        let url = try server.newDatabase()
        do {
            _ = try PostgresLocation(url: url.replacingOccurrences(of: "dropline@", with: "dropline:secret@"))
            Issue.record("a password in the URL was accepted")
        } catch {
            #expect("\(error)".contains("PGPASSWORD") && !"\(error)".contains("secret"))
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-pgcred-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let open = folder + "/open", link = folder + "/link", wrong = folder + "/wrong"
        _ = FileManager.default.createFile(atPath: open, contents: Data(server.password.utf8), attributes: [.posixPermissions: 0o644])
        #expect(throws: StoreError.self) { try PostgresLocation(url: url, passwordFile: open) }
        do { _ = try PostgresLocation(url: url, passwordFile: open) } catch { #expect("\(error)".contains("chmod 600")) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: open)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: open)
        do { _ = try PostgresLocation(url: url, passwordFile: link); Issue.record("a link was followed") } catch { #expect("\(error)".contains("not a regular file")) }
        _ = FileManager.default.createFile(atPath: wrong, contents: Data("not-the-password\n".utf8), attributes: [.posixPermissions: 0o600])
        do {
            _ = try Index(postgresql: try PostgresLocation(url: url, passwordFile: wrong))
            Issue.record("a wrong password connected")
        } catch {
            #expect("\(error)".contains("cannot connect to the index at postgresql://dropline@127.0.0.1") && !"\(error)".contains("not-the-password"))
        }
        #expect(try Index(postgresql: try PostgresLocation(url: url, passwordFile: open)).appliedMigrations().count == IndexTests.migrations.count)
    }

    @Test("hostile locations: a FIFO or another user's password file is refused without blocking; a control character in a name is refused; a name with $(...) is only a name the server does not know")
    func hostileLocations() throws {
        let server = try PostgresServer.shared()
        let url = try server.newDatabase()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-pghostile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let fifo = folder + "/fifo", theirs = folder + "/theirs"
        #expect(mkfifo(fifo, 0o600) == 0)
        do { _ = try PostgresLocation(url: url, passwordFile: fifo); Issue.record("a FIFO was read") } catch { #expect("\(error)".contains("not a regular file")) }
        _ = FileManager.default.createFile(atPath: theirs, contents: Data(server.password.utf8), attributes: [.posixPermissions: 0o600])
        #expect(chown(theirs, 65534, 65534) == 0)
        do { _ = try PostgresLocation(url: url, passwordFile: theirs); Issue.record("another user's file was used") } catch { #expect("\(error)".contains(theirs)) }
        let base = url[..<url.lastIndex(of: "/")!]
        for name in ["db%0Aforged", "db%1B%5B31m"] {
            do { _ = try PostgresLocation(url: base + "/" + name); Issue.record("\(name) was accepted") } catch { #expect("\(error)".contains("control character")) }
        }
        let marker = FileManager.default.currentDirectoryPath + "/dropline-pwned"
        let odd = try PostgresLocation(url: base + "/x%24(touch%20dropline-pwned)")
        #expect(odd.database == "x$(touch dropline-pwned)")
        setenv("PGPASSWORD", server.password, 1)
        defer { unsetenv("PGPASSWORD") }
        do { _ = try Index(postgresql: odd); Issue.record("a database that does not exist was opened") } catch {
            #expect("\(error)".contains("cannot connect"))
        }
        #expect(FileManager.default.fileExists(atPath: marker) == false)
    }

    @Test("two processes opening a fresh database at once migrate it once")
    func concurrentMigration() throws {
        let server = try PostgresServer.shared()
        let url = try server.newDatabase()
        setenv("PGPASSWORD", server.password, 1)
        defer { unsetenv("PGPASSWORD") }
        let location = try PostgresLocation(url: url)
        let results = Mutex<[Result<[String], any Error>]>([])
        let threads = (0..<4).map { _ in
            Thread {
                let result = Result { try Index(postgresql: location).appliedMigrations() }
                results.withLock { $0.append(result) }
            }
        }
        threads.forEach { $0.start() }
        #expect(eventually(60, every: 0.05) { results.withLock { $0.count } == 4 })
        for result in results.withLock({ $0 }) { #expect(try result.get() == IndexTests.migrations) }
    }
}

@Suite("A root's PostgreSQL record, untrusted")
struct PostgresRecordTests {
    @Test("a link, a FIFO or broken JSON where the record should be: opening the root refuses, naming the file and the remedy, and never follows the link")
    func hostileRecord() throws {
        let root = try DroplineRoot.create(at: FileManager.default.temporaryDirectory.appendingPathComponent("dropline-pgrecord-\(UUID().uuidString)").path)
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let record = root.path + "/.dropline-postgresql.json"
        try? FileManager.default.removeItem(atPath: root.index)
        let elsewhere = root.path + "/elsewhere.json"
        try Data(#"{"location": {"host": "evil.example"}}"#.utf8).write(to: URL(fileURLWithPath: elsewhere))
        let cases: [(String, () throws -> Void, String)] = [
            ("link", { try FileManager.default.createSymbolicLink(atPath: record, withDestinationPath: elsewhere) }, "not a regular file"),
            ("fifo", { #expect(mkfifo(record, 0o600) == 0) }, "not a regular file"),
            ("broken", { try Data("{\"location\": ".utf8).write(to: URL(fileURLWithPath: record)) }, "cannot be read"),
        ]
        for (name, make, expected) in cases {
            try? FileManager.default.removeItem(atPath: record)
            try make()
            do { _ = try Index.open(root: root); Issue.record("\(name): the root opened") } catch {
                #expect("\(error)".contains(record) && "\(error)".contains(expected) && "\(error)".contains("dropline init"), "\(name): \(error)")
                #expect(!"\(error)".contains("evil.example"))
            }
        }
    }
}
