import Foundation
import GRDB
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Two processes on one root, for real: two daemons, a standby taking over from a daemon killed in
/// the middle of a batch, a hand-run `dropline train` beside a daemon that is training.
@Suite("One owner per root, with real processes", .enabled(if: Binary.path != nil, "the dropline executable was not built"), .serialized)
struct OwnershipProcessTests {
    typealias Daemon = WatchDaemonTests.Daemon

    static func rows(_ root: String, _ sql: String) throws -> [String] {
        try DatabaseQueue(path: root + "/index.sqlite").read { db in try String.fetchAll(db, sql: sql) }
    }

    static func status(_ root: String) throws -> [String: Any] {
        let result = try Binary.run(["status", root, "--json"])
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
    }

    @Test("a second watch refuses and names the owner; a standby takes over from a daemon killed mid-batch and serves it once")
    func standbyTakesOver() throws {
        let root = try WatchDaemonTests.trainedRoot(seed: 31)
        defer { try? FileManager.default.removeItem(atPath: root) }
        // the first daemon stops for a while in the middle of serving a batch, to be killed there
        let first = try Daemon(root: root, arguments: ["--poll", "0.5"] + WatchDaemonTests.training,
                               environment: ["DROPLINE_PAUSE": "infer-after-processing=30"])
        #expect(WatchDaemonTests.eventually(20) { first.log.contains("watching") })
        let owner = try Self.status(root)["owner"] as? [String: Any]
        #expect(owner?["pid"] as? Int == Int(first.process.processIdentifier) && owner?["alive"] as? Bool == true)

        let second = try Binary.run(["watch", root, "--once"] + WatchDaemonTests.training)
        #expect(second.status != 0)
        #expect(second.stderr.contains("another daemon owns this root") && second.stderr.contains("pid \(first.process.processIdentifier)")
                && second.stderr.contains("--standby"), "\(second.stderr)")

        let standby = try Daemon(root: root, arguments: ["--poll", "0.5", "--standby"] + WatchDaemonTests.training)
        #expect(WatchDaemonTests.eventually(10) { standby.log.contains("standing by") }, "\(standby.log)")
        try WatchDaemonTests.writeBatch(root + "/inbox/production/original/b1", count: 6, seed: 32, pause: 0)
        _ = FileManager.default.createFile(atPath: root + "/inbox/production/original/b1/broken.jpg", contents: Data("not a jpeg".utf8))
        _ = FileManager.default.createFile(atPath: root + "/inbox/production/original/b1/_READY", contents: nil)
        #expect(try WatchDaemonTests.eventually(30) { try Self.rows(root, "SELECT status FROM runs WHERE kind = 'serve'") == ["running"] })
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()

        // (its one broken file in seven is within chance of the refusal tolerance: no data-quality flag)
        #expect(try WatchDaemonTests.eventually(60) { try WatchDaemonTests.jobs(root).map(\.state) == ["succeeded"] }, "\(standby.log)")
        #expect(standby.log.contains("took over the lease") && standby.log.contains("is not running"))
        #expect(try Self.rows(root, "SELECT status FROM runs WHERE kind = 'serve' ORDER BY started_at") == ["failed", "succeeded"])
        // the producer's outcome file: served once, by the run that succeeded, with the refused file
        // (written just after the job's end is recorded)
        #expect(WatchDaemonTests.eventually(10) { FileManager.default.fileExists(atPath: root + "/outcomes/production/original/b1.json") })
        let outcome = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/outcomes/production/original/b1.json"))) as? [String: Any]
        let run = outcome?["run"] as? [String: Any]
        #expect(outcome?["outcome"] as? String == "served")
        let succeeded = try Self.rows(root, "SELECT id FROM runs WHERE kind = 'serve' AND status = 'succeeded'")
        #expect(run?["id"] as? String == succeeded.first)
        #expect(run?["images"] as? Int == 6 && run?["drift"] as? Bool != nil)
        #expect((run?["refused"] as? [[String: Any]])?.map { $0["path"] as? String } == ["inbox/production/original/b1/broken.jpg"])
        let batchFiles = try FileManager.default.contentsOfDirectory(atPath: root + "/inbox/production/original/b1")
        #expect(batchFiles.count == 8 && !batchFiles.contains { $0.contains("outcome") }, "the batch folder is left as the producer wrote it")
        let newOwner = try Self.status(root)["owner"] as? [String: Any]
        #expect(newOwner?["pid"] as? Int == Int(standby.process.processIdentifier))
        #expect(standby.stop() == 0)
        #expect(try Self.status(root)["owner"] == nil, "a clean stop releases the lease")
        try CrashSafetyTests.checkConsistent(root)
    }

    @Test("files removed and added while a batch is being served, after its one read: the run serves what it read, as batch.json records, and the next run serves the new content")
    func changedMidRun() throws {
        let root = try WatchDaemonTests.trainedRoot(seed: 39)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let batch = root + "/inbox/production/original/b1"
        try WatchDaemonTests.writeBatch(batch, count: 6, seed: 40, pause: 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binary.path!)
        process.arguments = ["infer", root, batch]
        process.environment = ProcessInfo.processInfo.environment.merging(["DROPLINE_PAUSE": "infer-after-processing=3"]) { $1 }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        #expect(try WatchDaemonTests.eventually(20) { try Self.rows(root, "SELECT status FROM runs WHERE kind = 'serve'") == ["running"] })
        usleep(500_000)
        try FileManager.default.removeItem(atPath: batch + "/img-1.png")
        try FileManager.default.copyItem(atPath: batch + "/img-2.png", toPath: batch + "/img-9.png")
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(stderr)")
        func servedFiles() throws -> [[String]] {
            try Self.rows(root, "SELECT folder FROM runs WHERE kind = 'serve' AND status = 'succeeded' ORDER BY started_at").map { folder in
                let frozen = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/" + folder + "/batch.json"))) as? [String: Any]
                return ((frozen?["entries"] as? [[String: Any]]) ?? []).compactMap { $0["relative"] as? String }
            }
        }
        #expect(try servedFiles() == [(0..<6).map { "img-\($0).png" }], "the run serves and records the files it read")
        try CrashSafetyTests.checkConsistent(root)
        #expect(try Binary.run(["infer", root, batch]).status == 0)
        #expect(try servedFiles().last == ["img-0.png", "img-2.png", "img-3.png", "img-4.png", "img-5.png", "img-9.png"])
    }

    @Test("a hand-run train beside a daemon that is training touches none of its work: two runs, two versions, nothing left behind")
    func handRunBesideDaemon() throws {
        let root = try WatchDaemonTests.trainedRoot(seed: 33)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let daemon = try Daemon(root: root, arguments: ["--poll", "0.5"] + WatchDaemonTests.training,
                                environment: ["DROPLINE_PAUSE": "train-after-processing=6"])
        #expect(WatchDaemonTests.eventually(20) { daemon.log.contains("watching") })
        try Data(#"{"stage": "original"}"#.utf8).write(to: URL(fileURLWithPath: root + "/flags/retrain/original.json"))
        #expect(try WatchDaemonTests.eventually(30) { try Self.rows(root, "SELECT status FROM runs WHERE kind = 'train' ORDER BY started_at") == ["succeeded", "running"] })

        let byHand = try Binary.run(["train", root, "--stage", "original"] + WatchDaemonTests.training)
        #expect(byHand.status == 0, "\(byHand.stderr)")
        #expect(byHand.stderr.contains("which is running; left alone"), "\(byHand.stderr)")
        #expect(try WatchDaemonTests.eventually(60) { try Self.rows(root, "SELECT state FROM jobs WHERE event = 'flag_created'") == ["succeeded"] }, "\(daemon.log)")
        #expect(try Self.rows(root, "SELECT status FROM runs WHERE kind = 'train'") == ["succeeded", "succeeded", "succeeded"])
        #expect(try Self.rows(root, "SELECT CAST(version AS TEXT) FROM models ORDER BY version") == ["1", "2", "3"])
        #expect(daemon.stop() == 0)
        try CrashSafetyTests.checkConsistent(root)
    }
}

/// The daemon on a root whose disk fills up (a small tmpfs), then has room again.
@Suite("A full disk", .enabled(if: Binary.path != nil && getuid() == 0, "needs the dropline executable and root (to mount a small tmpfs)"), .serialized)
struct FullDiskTests {
    @Test("the disk fills: the daemon stays up, degraded with the reason in status; room again: the batch is served once")
    func fullDisk() throws {
        let trained = try WatchDaemonTests.trainedRoot(seed: 35)
        defer { try? FileManager.default.removeItem(atPath: trained) }
        let mount = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-full-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let mounted = Process()
        mounted.executableURL = URL(fileURLWithPath: "/bin/mount")
        mounted.arguments = ["-t", "tmpfs", "-o", "size=48m", "tmpfs", mount]
        try mounted.run()
        mounted.waitUntilExit()
        guard mounted.terminationStatus == 0 else {
            print("skipped: this machine cannot mount a tmpfs here")
            return
        }
        defer {
            let unmount = Process()
            unmount.executableURL = URL(fileURLWithPath: "/bin/umount")
            unmount.arguments = ["-l", mount]
            try? unmount.run()
            unmount.waitUntilExit()
            try? FileManager.default.removeItem(atPath: mount)
        }
        let root = mount + "/root"
        try FileManager.default.copyItem(atPath: trained, toPath: root)
        let daemon = try WatchDaemon(root: root)
        #expect(WatchDaemonTests.eventually(20) { daemon.process.log.contains("watching") })

        // a batch lands (it settles in 2 s), and the disk fills to the last block before it is served
        try WatchDaemonTests.writeBatch(root + "/inbox/production/original/b1", count: 6, seed: 36, pause: 0)
        let filler = mount + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT, 0o644)
        let block = [UInt8](repeating: 1, count: 1 << 16)
        while write(fd, block, block.count) > 0 {}
        while write(fd, block, 512) > 0 {}
        close(fd)
        #expect(try WatchDaemonTests.eventually(30) {
            let owner = try OwnershipProcessTests.status(root)["owner"] as? [String: Any]
            return owner?["state"] as? String == "degraded"
        }, "\(daemon.process.log)")
        let owner = try OwnershipProcessTests.status(root)["owner"] as? [String: Any]
        #expect((owner?["detail"] as? String)?.contains("full") == true || (owner?["detail"] as? String)?.contains("space") == true, "\(owner ?? [:])")
        #expect(daemon.process.process.isRunning)

        try FileManager.default.removeItem(atPath: filler)
        #expect(try WatchDaemonTests.eventually(90) {
            try WatchDaemonTests.jobs(root).contains { $0.path == "production/original/b1" && $0.state == "succeeded" }
        }, "\(daemon.process.log)")
        #expect(daemon.process.log.contains("degraded") && daemon.process.log.contains("resumed"))
        #expect(try OwnershipProcessTests.rows(root, "SELECT status FROM runs WHERE kind = 'serve' AND status = 'succeeded'").count == 1)
        #expect(daemon.process.stop() == 0)
        try CrashSafetyTests.checkConsistent(root)
    }

    /// The daemon with a settle period short enough for the test.
    struct WatchDaemon {
        let process: WatchDaemonTests.Daemon
        init(root: String) throws {
            process = try WatchDaemonTests.Daemon(root: root, arguments: ["--poll", "0.5", "--settle", "2"] + WatchDaemonTests.training)
        }
    }
}

/// A file the daemon cannot read (permissions), made readable later: the daemon runs as an ordinary
/// user (`nobody`, through setpriv), since root reads everything.
@Suite("An unreadable file", .enabled(if: Binary.path != nil && getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
                                      "needs the dropline executable, root and setpriv (to run the daemon as another user)"), .serialized)
struct UnreadableFileTests {
    @Test("the batch waits with the reason in status, and is served once, whole, when the file can be read")
    func madeReadable() throws {
        let root = try WatchDaemonTests.trainedRoot(seed: 37)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let batch = root + "/inbox/production/original/b1"
        try WatchDaemonTests.writeBatch(batch, count: 6, seed: 38, pause: 0)
        try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: batch + "/img-2.png")
        _ = FileManager.default.createFile(atPath: batch + "/_READY", contents: nil)
        let chown = try Binary.runTool("/bin/chown", ["-R", "65534:65534", root])
        #expect(chown == 0)
        try FileManager.default.setAttributes([.ownerAccountID: 0, .groupOwnerAccountID: 0], ofItemAtPath: batch + "/img-2.png")

        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        daemon.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", Binary.path!, "watch", root, "--poll", "0.5"] + WatchDaemonTests.training
        daemon.standardOutput = FileHandle.nullDevice
        let errors = root + "/logs/watch-as-nobody.err"
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        daemon.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try daemon.run()
        var stderr: String { (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "" }
        defer { if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) } }

        #expect(try WatchDaemonTests.eventually(30) {
            let status = try Binary.run(["status", root])
            return status.stdout.contains("inbox/production/original/b1") && status.stdout.contains("cannot be read yet")
        }, "\(stderr)")
        usleep(1_500_000)  // several scans: still not queued
        #expect(try WatchDaemonTests.jobs(root).isEmpty)
        let outcomeFile = URL(fileURLWithPath: root + "/outcomes/production/original/b1.json")
        let waiting = try JSONSerialization.jsonObject(with: Data(contentsOf: outcomeFile)) as? [String: Any]
        #expect(waiting?["outcome"] as? String == "waiting" && (waiting?["detail"] as? String)?.contains("img-2.png") == true, "\(waiting ?? [:])")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: batch + "/img-2.png")
        #expect(try WatchDaemonTests.eventually(60) { try WatchDaemonTests.jobs(root).map(\.state) == ["succeeded"] })
        #expect(try OwnershipProcessTests.rows(root, "SELECT CAST(images AS TEXT) FROM batches") == ["6"])
        // the outcome is rewritten just after the job's end is recorded
        #expect(WatchDaemonTests.eventually(10) {
            ((try? JSONSerialization.jsonObject(with: Data(contentsOf: outcomeFile))) as? [String: Any])?["outcome"] as? String == "served"
        })
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
    }
}

extension Binary {
    /// Runs a system tool; returns its exit status.
    static func runTool(_ path: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
