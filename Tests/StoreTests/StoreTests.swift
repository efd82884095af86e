import Foundation
import GRDB
import ShareSupport
import Store
import Testing

/// Where a test's index is: every index test runs on each.
enum Backend: String, CustomTestStringConvertible, Sendable {
    case memory, disk, postgresql

    var testDescription: String { rawValue }

    /// Every backend this machine has; PostgreSQL is left out, with a message, when there is no server.
    static let all: [Backend] = {
        guard PostgresServer.available else {
            print("note: the PostgreSQL cases of the index tests are skipped: \(PostgresServer.unavailable)")
            return [.memory, .disk]
        }
        return [.memory, .disk, .postgresql]
    }()
    static let durable = all.filter { $0 != .memory }
}

enum Indexes {
    /// Where this test process's temporary roots go; removed when the process exits, since the
    /// disk indexes that `make` opens live as long as the tests that hold them.
    static let scratch: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-store-tests-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: Indexes.scratch) }
        return path
    }()

    static func temporaryRoot() throws -> DroplineRoot {
        try DroplineRoot.create(at: scratch + "/root-\(UUID().uuidString)")
    }

    /// A new, empty index on `backend`, and a way to open it again (a restart).
    static func make(_ backend: Backend) throws -> (index: Index, reopen: () throws -> Index) {
        switch backend {
        case .memory:
            let index = try Index()
            return (index, { index })
        case .disk:
            let path = try temporaryRoot().index
            return (try Index(path: path), { try Index(path: path) })
        case .postgresql:
            let location = try postgresLocation()
            return (try Index(postgresql: location), { try Index(postgresql: location) })
        }
    }

    /// A new database on the test process's PostgreSQL server, its password in a private file.
    static func postgresLocation(on given: PostgresServer? = nil) throws -> PostgresLocation {
        let server = try given ?? PostgresServer.shared()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-pgpass-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: file, contents: Data((server.password + "\n").utf8), attributes: [.posixPermissions: 0o600])
        return try PostgresLocation(url: try server.newDatabase(), passwordFile: file)
    }
}

@Suite("Index")
struct IndexTests {
    let hash = String(repeating: "ab", count: 32)

    static let migrations = ["v1-initial", "v2-daemon", "v3-baseline", "v4-not-regular", "v5-root-identity", "v6-owners", "v7-accuracy-estimate",
                             "v8-data-quality", "v9-job-leases", "v10-cluster-jobs"]

    @Test("the named migrations are applied once; a durable index keeps its data (SQLite on disk in WAL mode)", arguments: Backend.all)
    func migrations(backend: Backend) throws {
        let (first, reopen) = try Indexes.make(backend)
        #expect(try first.appliedMigrations() == Self.migrations)
        #expect(first.backend == (backend == .postgresql ? "postgresql" : "sqlite"))
        guard backend != .memory else { return }
        try first.startRun(id: "r1", kind: .train, subject: "original")
        if backend == .disk { #expect(try first.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") } == "wal") }
        let again = try reopen()
        #expect(try again.run("r1")?.status == .running)
        #expect(try again.appliedMigrations() == Self.migrations)
    }

    @Test("a run goes from running to succeeded with its folder and outputs, or to failed with its reason", arguments: Backend.all)
    func runLifecycle(backend: Backend) throws {
        let index = try Indexes.make(backend).index
        try index.startRun(id: "r1", kind: .serve, subject: "batch-1", inputs: [RunInput(role: "image", path: "inbox/production/batch-1/a.jpg", sha256: hash)])
        #expect(try index.interruptedRuns().map(\.id) == ["r1"])
        try index.finishRun(id: "r1", folder: "outputs/runs/r1-serve-batch-1",
                            outputs: ["algorithm/predictions": "outputs/runs/r1-serve-batch-1/predictions.csv"])
        let run = try #require(try index.run("r1"))
        #expect(run.status == .succeeded && run.folder == "outputs/runs/r1-serve-batch-1" && run.finishedAt != nil)
        #expect(try index.outputs(of: "r1") == ["algorithm/predictions": "outputs/runs/r1-serve-batch-1/predictions.csv"])
        #expect(throws: StoreError.self) { try index.finishRun(id: "r1", folder: "x", outputs: [:]) }
        try index.startRun(id: "r2", kind: .train, subject: "stage-1")
        try index.failRun(id: "r2", error: "disk full")
        #expect(try index.run("r2")?.status == .failed && index.run("r2")?.error == "disk full")
        #expect(try index.interruptedRuns().isEmpty)
        #expect(try index.runs().map(\.id).sorted() == ["r1", "r2"])
        let events = try index.inspect(sql: "SELECT kind FROM events ORDER BY id").map { $0["kind"] as String }
        #expect(events == ["run_started", "run_succeeded", "run_started", "run_failed"])
    }

    @Test("the schema refuses inconsistent rows", arguments: Backend.all)
    func constraints(backend: Backend) throws {
        let index = try Indexes.make(backend).index
        func refused(_ sql: String, _ arguments: [(any DatabaseValueConvertible)?] = []) -> Bool {
            (try? index.tamper(sql: sql, arguments: arguments)) == nil
        }
        let now = Index.now()
        // a succeeded run must name its published folder; a running one has no end time
        #expect(refused("INSERT INTO runs (id, kind, subject, status, started_at, finished_at) VALUES ('x', 'train', 's', 'succeeded', ?, ?)", [now, now]))
        #expect(refused("INSERT INTO runs (id, kind, subject, status, started_at, finished_at) VALUES ('x', 'train', 's', 'running', ?, ?)", [now, now]))
        #expect(refused("INSERT INTO runs (id, kind, subject, status, started_at) VALUES ('x', 'deploy', 's', 'running', ?)", [now]))
        // component output keys carry their component's prefix
        try index.startRun(id: "r", kind: .train, subject: "s")
        #expect(refused("INSERT INTO component_outputs (run_id, key, path) VALUES ('r', 'other/x', 'p')"))
        #expect(refused("INSERT INTO component_outputs (run_id, key, path) VALUES ('r', 'monitoring/', 'p')"))
        #expect(!refused("INSERT INTO component_outputs (run_id, key, path) VALUES ('r', 'monitoring/artifacts/latest', 'p')"))
        // rows need their run (foreign keys are on)
        #expect(refused("INSERT INTO run_inputs (run_id, role, path, sha256) VALUES ('missing', 'image', 'p', ?)", [hash]))
        // at most one champion
        let insertModel = "INSERT INTO models (version, folder, content_sha256, stage, validation_accuracy, state, created_at) VALUES (?, ?, ?, 's', 0.9, ?, ?)"
        #expect(!refused(insertModel, [1, "outputs/models/v0001", String(repeating: "1", count: 64), "champion", now]))
        #expect(refused(insertModel, [2, "outputs/models/v0002", String(repeating: "2", count: 64), "champion", now]))
        #expect(!refused(insertModel, [2, "outputs/models/v0002", String(repeating: "2", count: 64), "candidate", now]))
        #expect(refused(insertModel, [3, "outputs/models/v0003", String(repeating: "3", count: 64), "deployed", now]))
        // a flag is handled with an outcome, or not at all
        #expect(refused("INSERT INTO flags (kind, path, subject, created_at, handled_at) VALUES ('drift', 'f', 's', ?, ?)", [now, now]))
        // one running job per path
        try index.enqueue(event: .batchLanded, path: "production/s/b1", contentSha256: hash)
        try index.enqueue(event: .batchLanded, path: "production/s/b1", contentSha256: String(repeating: "cd", count: 32))
        #expect(!refused("UPDATE jobs SET state = 'running' WHERE id = (SELECT min(id) FROM jobs)"))
        #expect(refused("UPDATE jobs SET state = 'running' WHERE id = (SELECT max(id) FROM jobs)"))
    }
}

@Suite("Root folder")
struct RootTests {
    @Test("init creates the layout; an unrelated folder is refused with the remedy")
    func layout() throws {
        let root = try Indexes.temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        for folder in ["inbox/training", "inbox/production", "inbox/labels", "outputs/models", "outputs/runs", "flags/drift",
                       "flags/retrain", "flags/quality", "flags/done", "logs"] {
            #expect(FileManager.default.fileExists(atPath: root.path + "/" + folder), "\(folder)")
        }
        #expect(try DroplineRoot(existing: root.path + "/").path == root.path)
        do {
            _ = try DroplineRoot(existing: root.path + "/inbox")
            Issue.record("accepted a folder that is not a root")
        } catch {
            #expect("\(error)".contains("dropline init"))
        }
    }

    @Test("publication renames a complete staging folder once; leftovers of dead runs are removed")
    func publication() throws {
        let root = try Indexes.temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let staging = root.staging + "/run-a"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: staging + "/manifest.json", contents: Data("{}".utf8))
        try root.publish(staging: staging, as: root.runs + "/run-a")
        #expect(FileManager.default.fileExists(atPath: root.runs + "/run-a/manifest.json"))
        #expect(!FileManager.default.fileExists(atPath: staging))
        try FileManager.default.createDirectory(atPath: root.staging + "/run-a", withIntermediateDirectories: true)
        #expect(throws: StoreError.self) { try root.publish(staging: root.staging + "/run-a", as: root.runs + "/run-a") }
        #expect(try root.removeStagingLeftovers() == ["run-a"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.staging).isEmpty)
        #expect(root.relative(root.runs + "/run-a") == "outputs/runs/run-a")
    }
}

@Suite("Job queue")
struct JobQueueTests {
    let hashA = String(repeating: "a", count: 64), hashB = String(repeating: "b", count: 64)

    @Test("the same event with the same content is queued once; new content is a new job; force queues a finished job again", arguments: Backend.all)
    func deduplication(backend: Backend) throws {
        let index = try Indexes.make(backend).index
        #expect(try index.enqueue(event: .batchLanded, path: "production/s/b1", contentSha256: hashA) != nil)
        #expect(try index.enqueue(event: .batchLanded, path: "production/s/b1", contentSha256: hashA) == nil)
        #expect(try index.enqueue(event: .batchLanded, path: "production/s/b1", contentSha256: hashB) != nil)
        let first = try #require(try index.claimNextJob())
        #expect(first.contentSha256 == hashA && first.state == .running && first.attempts == 1)
        try index.finishJob(first.id, state: .succeeded, detail: "ok")
        #expect(try index.enqueue(event: .batchLanded, path: "production/s/b1", contentSha256: hashA) == nil)
        let again = try #require(try index.enqueue(event: .batchLanded, path: "production/s/b1", contentSha256: hashA, force: true))
        #expect(again.id == first.id && again.state == .queued)
    }

    @Test("jobs run in order, and a job left running by a dead process is queued again, not lost or repeated twice", arguments: Backend.durable)
    func restart(backend: Backend) throws {
        let (index, reopen) = try Indexes.make(backend)
        do {
            try index.enqueue(event: .batchLanded, path: "production/s/b1", contentSha256: hashA)
            try index.enqueue(event: .flagCreated, path: "flags/retrain/s.json", contentSha256: hashB)
            #expect(try index.claimNextJob()?.path == "production/s/b1")
        }
        let reopened = try reopen()
        #expect(try reopened.requeueInterruptedJobs { _ in true } == 1)
        let job = try #require(try reopened.claimNextJob())
        #expect(job.path == "production/s/b1" && job.attempts == 2)
        try reopened.finishJob(job.id, state: .succeeded, detail: "ok")
        #expect(try reopened.claimNextJob()?.path == "flags/retrain/s.json")
        #expect(try reopened.claimNextJob() == nil)
        #expect(try reopened.jobs(states: [.succeeded]).map(\.path) == ["production/s/b1"])
    }
}

@Suite("Store owns the index")
struct LayeringTests {
    @Test("no SQL and no GRDB or PostgresNIO import in any module but Store")
    func noSQLOutsideStore() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources").path
        var offenders: [String] = []
        for module in try FileManager.default.contentsOfDirectory(atPath: sources) where module != "Store" {
            guard let files = FileManager.default.enumerator(atPath: sources + "/" + module) else { continue }
            while let file = files.nextObject() as? String {
                guard file.hasSuffix(".swift") else { continue }
                let text = try String(contentsOfFile: sources + "/" + module + "/" + file, encoding: .utf8)
                for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
                where line.contains("import GRDB") || line.contains("import PostgresNIO") || line.range(of: #"(^|[^A-Za-z])sql:"#, options: .regularExpression) != nil
                    || line.contains("Row.fetch") {
                    offenders.append("\(module)/\(file):\(number + 1): \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        #expect(offenders.isEmpty, "\(offenders.joined(separator: "\n"))")
    }
}

extension LayeringTests {
    @Test("every module imports only from layers below its own, as Package.swift's layer comments say")
    func importsPointDown() throws {
        let top = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let manifest = try String(contentsOf: top.appendingPathComponent("Package.swift"), encoding: .utf8)
        var layers: [String: Int] = [:]
        var current = -1  // the C targets come first
        for line in manifest.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            // a layer marker: "// L<n>" alone or "// L<n>: what it holds"
            if line.hasPrefix("// L"), let n = Int(line.dropFirst(4).prefix(while: \.isNumber)),
               line.dropFirst(4).drop(while: \.isNumber).first.map({ $0 == ":" }) ?? true { current = n }
            // `.target(name: "X"`, `.systemLibrary(name: "X"`, or `name: "X"` on its own line (multi-line targets)
            for marker in [".target(name: \"", ".systemLibrary(name: \"", "name: \""] where line.hasPrefix(marker) {
                layers[String(line.dropFirst(marker.count).prefix { $0 != "\"" })] = current
            }
        }
        let sources = top.appendingPathComponent("Sources").path
        var wrong: [String] = []
        for module in try FileManager.default.contentsOfDirectory(atPath: sources) {
            guard let own = layers[module] else { wrong.append("\(module) has no layer in Package.swift"); continue }
            guard let files = FileManager.default.enumerator(atPath: sources + "/" + module) else { continue }
            while let file = files.nextObject() as? String {
                guard file.hasSuffix(".swift") else { continue }
                for line in try String(contentsOfFile: sources + "/" + module + "/" + file, encoding: .utf8).split(separator: "\n") {
                    let words = line.split(separator: " ")
                    guard let at = words.firstIndex(of: "import"), at <= 1, at + 1 < words.count else { continue }
                    let imported = String(words[at + 1])
                    if let layer = layers[imported], layer >= own, imported != module {
                        wrong.append("\(module) (L\(own)) imports \(imported) (L\(layer)) in \(file)")
                    }
                }
            }
        }
        #expect(wrong.isEmpty, "\(Set(wrong).sorted().joined(separator: "\n"))")
        #expect(layers["dropline"] == 10 && layers["Store"] == 3 && layers["Reports"] == 7 && layers["Daemon"] == 8 && layers["Charts"] == 0 && layers["SystemFiles"] == 1, "\(layers)")
    }
}

@Suite("Flags and rule firings as records")
struct FlagAndFiringRecordTests {
    @Test("a raised flag is recorded, then handled with its outcome; a dropped one gets its row when handled; firings keep their order", arguments: Backend.all)
    func records(backend: Backend) throws {
        let index = try Indexes.make(backend).index
        try index.recordFlag(kind: .drift, path: "flags/drift/b1.json", subject: "b1")
        try index.handleFlag(kind: .drift, path: "flags/drift/b1.json", subject: "b1", createdAt: Index.now(), outcome: "succeeded: retrained")
        try index.handleFlag(kind: .retrain, path: "flags/retrain/original.json", subject: "original", createdAt: Index.now(), outcome: "skipped: no rule fired")
        let flags = try index.flags(limit: 10)
        #expect(Set(flags.map(\.path)) == ["flags/drift/b1.json", "flags/retrain/original.json"])
        #expect(flags.allSatisfy { $0.handledAt != nil } && flags.first { $0.kind == .drift }?.outcome == "succeeded: retrained")
        let job = try #require(try index.enqueue(event: .flagCreated, path: "flags/drift/b1.json", contentSha256: String(repeating: "c", count: 64)))
        try index.recordFiring(job: job.id, rule: "a", fired: false, reason: "it is for batch_landed", actions: [], outcome: nil)
        try index.recordFiring(job: job.id, rule: "b", fired: true, reason: "it matched", actions: ["train stage s"], outcome: "trained")
        let firings = try index.firings(job: job.id)
        #expect(firings.map(\.rule) == ["a", "b"] && firings.map(\.fired) == [false, true] && firings[1].outcome == "trained")
    }
}
