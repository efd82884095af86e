import Daemon
import DroplineSupport
import Foundation
import GRDB
import Logging
import Modeling
import Store
import Testing

/// A locked index does not stop the daemon: it is degraded (its lease says so, for `dropline
/// status`), retries with back-off on its clock, and resumes with nothing lost or done twice.
@Suite("The daemon degraded and back")
struct DegradedTests {
    @Test("the index locked by another process: degraded with the reason, back-off, then resumed; the batch is queued and run once")
    func lockedIndex() throws {
        let root = try DroplineRoot.create(at: FileManager.default.temporaryDirectory.appendingPathComponent("dropline-degraded-\(UUID().uuidString)").path)
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        try DaemonLoopTests.rules.write(toFile: root.path + "/rules.yaml", atomically: true, encoding: .utf8)
        let clock = ManualClock()
        let index = try Index(path: root.index, busySeconds: 0.2)
        var options = WatchOptions(training: TrainingConfiguration.defaults(architecture: "small-cnn"))
        options.settleSeconds = 0
        let daemon = try WatchDaemon(root: root, options: options, log: Logger.daemon(DaemonLogHandler.Sink(file: root.logs + "/watch.log", echo: false)),
                                     clock: clock, index: index)
        try daemon.start()
        defer { daemon.end() }
        #expect(DaemonLease.read(root)?.state == "running")

        // another process holds the write lock
        var unsafe = Configuration()
        unsafe.allowsUnsafeTransactions = true  // a transaction left open across accesses: the lock held
        let locker = try DatabaseQueue(path: root.index, configuration: unsafe)
        try locker.writeWithoutTransaction { try $0.execute(sql: "BEGIN IMMEDIATE") }
        try FileManager.default.createDirectory(atPath: root.productionInbox + "/s/b1", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root.productionInbox + "/s/b1/a.jpg"))
        #expect(try daemon.step() == false)
        #expect(daemon.degradedReason?.contains("locked") == true)
        #expect(DaemonLease.read(root)?.state == "degraded" && DaemonLease.read(root)?.detail?.contains("locked") == true)
        // not yet time to look again; then still locked: the wait doubles
        #expect(try daemon.step() == false)
        clock.advance(by: 1)
        #expect(try daemon.step() == false)
        let log = try String(contentsOfFile: root.logs + "/watch.log", encoding: .utf8)
        #expect(log.contains("still degraded") && log.contains("next try in 2 s"))

        try locker.writeWithoutTransaction { try $0.execute(sql: "COMMIT") }
        clock.advance(by: 2)
        #expect(try daemon.step() == true)
        #expect(daemon.degradedReason == nil && DaemonLease.read(root)?.state == "running")
        daemon.waitForJobs()
        try daemon.tick()
        #expect(try daemon.runQueuedJobs() == 0)
        let jobs = try index.jobs(limit: 10)
        #expect(jobs.map(\.state) == [.succeeded] && jobs.map(\.path) == ["production/s/b1"])
        #expect(try String(contentsOfFile: root.logs + "/watch.log", encoding: .utf8).contains("resumed"))
    }

    @Test("a job left running by an owner that went away while this daemon runs (a hung daemon it took over from) is queued again within a minute")
    func goneOwnerSwept() throws {
        let root = try DroplineRoot.create(at: FileManager.default.temporaryDirectory.appendingPathComponent("dropline-sweep-\(UUID().uuidString)").path)
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        try DaemonLoopTests.rules.write(toFile: root.path + "/rules.yaml", atomically: true, encoding: .utf8)
        let clock = ManualClock()
        let index = try Index(path: root.index)
        let daemon = try WatchDaemon(root: root, options: WatchOptions(training: TrainingConfiguration.defaults(architecture: "small-cnn")),
                                     log: Logger.daemon(DaemonLogHandler.Sink(file: root.logs + "/watch.log", echo: false)), clock: clock, index: index)
        try daemon.start()
        defer { daemon.end() }
        #expect(try daemon.step())
        // a job claimed by another daemon that then stopped for good
        try Data(#"{"stage": "original"}"#.utf8).write(to: URL(fileURLWithPath: root.flags("retrain") + "/original.json"))
        try index.enqueue(event: .flagCreated, path: "flags/retrain/original.json", contentSha256: String(repeating: "a", count: 64))
        #expect(try index.claimNextJob(owner: "elsewhere-1-00000000") != nil)
        clock.advance(by: 30)
        #expect(try daemon.step())
        #expect(try index.jobs(states: [.running]).count == 1, "swept before the minute")
        clock.advance(by: 31)
        #expect(try daemon.step())
        daemon.waitForJobs()
        #expect(try daemon.step())  // the queue's next job, if any (the file seen by this daemon's own scan)
        daemon.waitForJobs()
        #expect(try index.jobs(states: [.running, .queued]).isEmpty)
        #expect(try index.jobs(limit: 10).last?.state == .succeeded, "the swept job ran")
        #expect(try String(contentsOfFile: root.logs + "/watch.log", encoding: .utf8).contains("requeued 1 job(s) whose owner is gone"))
    }
}
