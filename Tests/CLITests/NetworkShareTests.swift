import Foundation
import GRDB
import ShareSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A root on a real network share (a loopback SFTP server, two sshfs clients), with the real binary:
/// the daemon's machine and a producer's machine. The second machine runs in its own UTS namespace
/// (its own host name) with its own state directory, as another computer would.
@Suite("A root on a network share, end to end", .enabled(if: Binary.path != nil && SFTPShare.available, "needs the dropline executable; \(SFTPShare.unavailable)"),
       .serialized)
struct NetworkShareTests {
    /// A machine that runs `dropline`: its host name (nil: this machine's) and its local state directory.
    struct Machine {
        var host: String?
        var state: String

        var environment: [String: String] { ["DROPLINE_STATE_DIR": state] }

        /// The executable and arguments that run `dropline <arguments>` on this machine.
        func command(_ arguments: [String]) -> (String, [String]) {
            guard let host else { return (Binary.path!, arguments) }
            return ("/usr/bin/unshare", ["--uts", "sh", "-c", "hostname \(host) && exec \"$0\" \"$@\"", Binary.path!] + arguments)
        }

        func run(_ arguments: [String]) throws -> Binary.Result { try runWith(arguments, extra: [:]) }

        /// The same with `extra` added to the environment.
        func runWith(_ arguments: [String], extra: [String: String]) throws -> Binary.Result {
            let (executable, all) = command(arguments)
            let out = FileManager.default.temporaryDirectory.path + "/dropline-out-\(UUID().uuidString)"
            let err = FileManager.default.temporaryDirectory.path + "/dropline-err-\(UUID().uuidString)"
            defer { unlink(out); unlink(err) }
            let status = SFTPShare.wait(try SFTPShare.spawn(executable, all, environment: environment.merging(extra) { $1 }, stdout: out, stderr: err))
            return Binary.Result(status: status, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                                 stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "", signal: nil)
        }

        /// `dropline watch` on this machine, its standard error in a local file (the root's log is on
        /// the share, written by whichever daemon runs).
        final class Daemon {
            let pid: Int32
            let errorPath = FileManager.default.temporaryDirectory.path + "/dropline-daemon-\(UUID().uuidString).log"

            init(_ machine: Machine, _ arguments: [String], extra: [String: String] = [:]) throws {
                let (executable, all) = machine.command(["watch"] + arguments)
                pid = try SFTPShare.spawn(executable, all, environment: machine.environment.merging(extra) { $1 }, stderr: errorPath)
            }

            /// Waits for the daemon to end by itself; its exit status (-1: a signal ended it).
            func wait() -> Int32 {
                defer { unlink(errorPath) }
                return SFTPShare.wait(pid)
            }

            var log: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

            func kill(_ signal: Int32) -> Int32 {
                Glibc.kill(pid, signal)
                defer { unlink(errorPath) }
                return SFTPShare.wait(pid)
            }
        }
    }

    static func json(_ result: Binary.Result) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? [:]
    }

    /// The index a machine holds, opened read-only by the test (a local file on that machine).
    static func index(_ machine: Machine) throws -> DatabaseQueue {
        let folders = try FileManager.default.contentsOfDirectory(atPath: machine.state).filter { !$0.hasPrefix(".") }
        guard let folder = folders.first else { throw CocoaError(.fileNoSuchFile) }
        var configuration = Configuration()
        configuration.readonly = true
        return try DatabaseQueue(path: machine.state + "/" + folder + "/index.sqlite", configuration: configuration)
    }

    static func servedBatches(_ machine: Machine) throws -> [String: Int] {
        let rows = try index(machine).read { db in
            try Row.fetchAll(db, sql: """
                SELECT i.path AS path, count(*) AS runs FROM runs r JOIN run_inputs i ON i.run_id = r.id
                WHERE r.kind = 'serve' AND r.status = 'succeeded' AND i.role = 'processing/batch' GROUP BY i.path
                """)
        }
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["path"] as String, $0["runs"] as Int) })
    }

    static func integrity(_ machine: Machine) throws -> [String] {
        try index(machine).read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
    }

    static func tool(_ path: String, _ arguments: [String]) throws -> Int32 { try SFTPShare.tool(path, arguments) }

    @Test("producers copy through their own mount (marker, slow, cp -r, rsync); the daemon polls and serves each batch once, whole; another machine reads status from the snapshot and cannot start a second daemon; the owner is killed, a standby on another machine adopts the index and serves on; both indexes pass integrity_check")
    func daemonAndProducersOnShare() throws {
        let share = try SFTPShare()
        defer { share.close() }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-nas-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let a = Machine(host: nil, state: base + "/state-a"), b = Machine(host: "machine-b", state: base + "/state-b")
        let onA = share.mounts[0] + "/root", onB = share.mounts[1] + "/root"
        let training = WatchDaemonTests.training

        #expect(try a.run(["init", onA]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: share.export + "/root/index.sqlite"), "the index is not on the share")
        try WatchDaemonTests.writeTrainingData(onA, seed: 61)
        let trained = try a.run(["train", onA, "--stage", "original"] + training)
        #expect(trained.status == 0, "\(trained.stderr)")

        let daemonA = try Machine.Daemon(a, [onA, "--settle", "4", "--lease-seconds", "3"] + training)
        #expect(WatchDaemonTests.eventually(20) { daemonA.log.contains("polling every 5") }, "\(daemonA.log)")

        // producers on machine B, through its mount
        let production = onB + "/inbox/production/original"
        let source = base + "/source"
        try WatchDaemonTests.writeBatch(source, count: 6, seed: 62, pause: 0)
        try WatchDaemonTests.writeBatch(production + "/b-marker", count: 6, seed: 63, pause: 0.3)
        _ = FileManager.default.createFile(atPath: production + "/b-marker/_READY", contents: nil)
        #expect(try Self.tool("/bin/cp", ["-r", source, production + "/b-cp"]) == 0)
        #expect(try Self.tool("/usr/bin/rsync", ["-r", source + "/", production + "/b-rsync"]) == 0)
        try FileManager.default.createDirectory(atPath: production + "/b-slow", withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source).sorted().prefix(5) {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: production + "/b-slow/" + name)
            usleep(1_000_000)
        }
        let batches = ["b-marker": 6, "b-cp": 6, "b-rsync": 6, "b-slow": 5]
        let expected = Dictionary(uniqueKeysWithValues: batches.keys.map { ("inbox/production/original/" + $0, 1) })
        #expect(try WatchDaemonTests.eventually(120) { try Self.servedBatches(a) == expected }, "\(daemonA.log)")
        usleep(6_000_000)  // a few more polls: nothing is served again
        #expect(try Self.servedBatches(a) == expected)
        // each producer reads its outcome through its own mount: served once, every file
        for (batch, count) in batches {
            #expect(WatchDaemonTests.eventually(10) { FileManager.default.fileExists(atPath: onB + "/outcomes/production/original/\(batch).json") })
            let outcome = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: onB + "/outcomes/production/original/\(batch).json"))) as? [String: Any]
            #expect(outcome?["outcome"] as? String == "served" && (outcome?["run"] as? [String: Any])?["images"] as? Int == count, "\(batch): \(outcome ?? [:])")
        }

        // machine B: status from the snapshot; no second daemon; no command that writes
        #expect(WatchDaemonTests.eventually(20) {
            let status = Self.json((try? b.run(["status", onB, "--json"])) ?? Binary.Result(status: 1, stdout: "", stderr: ""))
            return (status["snapshot"] as? [String: Any])?["host"] as? String == ThisProcess.host
                && (status["owner"] as? [String: Any])?["pid"] as? Int == Int(daemonA.pid)
                && (status["recent_runs"] as? [[String: Any]])?.filter { $0["kind"] as? String == "serve" }.count == 4
        })
        let second = try b.run(["watch", onB, "--once"] + training)
        #expect(second.status != 0 && second.stderr.contains("another daemon owns this root"), "\(second.stderr)")
        let write = try b.run(["train", onB, "--stage", "original"] + training)
        #expect(write.status != 0 && write.stderr.contains("not on this machine"), "\(write.stderr)")
        #expect(try Self.integrity(a) == ["ok"])

        // the owner dies; a standby on machine B takes the lease and, once machine A counts as gone, the index
        let standby = try Machine.Daemon(b, [onB, "--standby", "--settle", "4", "--lease-seconds", "3"] + training)
        #expect(WatchDaemonTests.eventually(20) { standby.log.contains("standing by") }, "\(standby.log)")
        _ = daemonA.kill(SIGKILL)
        #expect(WatchDaemonTests.eventually(60) { standby.log.contains("took over the index") }, "\(standby.log)")
        try WatchDaemonTests.writeBatch(onA + "/inbox/production/original/b-after", count: 4, seed: 64, pause: 0)
        _ = FileManager.default.createFile(atPath: onA + "/inbox/production/original/b-after/_READY", contents: nil)
        var after = expected
        after["inbox/production/original/b-after"] = 1
        #expect(try WatchDaemonTests.eventually(90) { try Self.servedBatches(b) == after }, "\(standby.log)")
        #expect(try Self.integrity(b) == ["ok"])
        // machine A now reads the snapshot machine B publishes
        #expect(WatchDaemonTests.eventually(20) {
            (Self.json((try? a.run(["status", onA, "--json"])) ?? Binary.Result(status: 1, stdout: "", stderr: ""))["snapshot"] as? [String: Any])?["host"] as? String == "machine-b"
        })
        #expect(standby.kill(SIGTERM) == 0)
        let onShare = FileManager.default.enumerator(atPath: share.export)!.compactMap { $0 as? String }
        #expect(!onShare.contains { $0.hasSuffix("-wal") || $0.hasSuffix("-shm") || $0.hasSuffix("index.sqlite") }, "\(onShare)")
    }
}


extension NetworkShareTests {
    @Test("the index's machine dies after a run is published and before it is indexed: the machine that adopts the snapshot indexes the run from its folder and does not serve the batch again")
    func adoptionReusesPublishedRun() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-adopt-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let a = Machine(host: "machine-a", state: base + "/state-a"), b = Machine(host: "machine-b", state: base + "/state-b")
        let root = base + "/root"
        let training = WatchDaemonTests.training
        #expect(try a.run(["init", root, "--state-dir", a.state]).status == 0)
        try WatchDaemonTests.writeTrainingData(root, seed: 71)
        #expect(try a.run(["train", root, "--stage", "original"] + training).status == 0)
        // machine A's daemon publishes its first snapshot, then the batch lands: no snapshot until a job
        // ends or 30 s pass, except the one taken before each job runs
        let daemonA = try Machine.Daemon(a, [root, "--lease-seconds", "3"] + training, extra: ["DROPLINE_FAULT": "infer-after-run-published"])
        #expect(WatchDaemonTests.eventually(20) { daemonA.log.contains("watching") })
        usleep(3_000_000)
        try WatchDaemonTests.writeBatch(root + "/inbox/production/original/b1", count: 5, seed: 72, pause: 0)
        _ = FileManager.default.createFile(atPath: root + "/inbox/production/original/b1/_READY", contents: nil)
        // it dies (SIGKILL) right after the serve run's folder is published, before its rows
        #expect(daemonA.wait() == -1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/outputs/runs").contains { $0.contains("-serve-") })

        // machine B stands by, takes the lease and, once machine A's heartbeats are old, the index
        let adopted = try b.run(["watch", root, "--standby", "--once", "--lease-seconds", "3"] + training)
        #expect(adopted.status == 0, "\(adopted.stderr)")
        #expect(adopted.stderr.contains("took over the index"), "\(adopted.stderr)")
        #expect(try Self.servedBatches(b) == ["inbox/production/original/b1": 1], "served once, by the run machine A published")
        let detail = try Self.index(b).read { db in try String.fetchOne(db, sql: "SELECT detail FROM jobs WHERE event = 'batch_landed' AND path = 'production/original/b1'") }
        #expect(detail?.contains("already done by run") == true, "\(detail ?? "no job")")
        #expect(try Self.integrity(b) == ["ok"])
    }
}

/// What this machine is called (as the binary sees it).
enum ThisProcess {
    static var host: String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count - 1)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
