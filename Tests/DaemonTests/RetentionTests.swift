import Daemon
import DroplineSupport
import Foundation
import GRDB
import Logging
import Modeling
import Store
import Testing
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// The rules' `retention:`: handled batches leave the inbox, archived or deleted, and nothing else does.
@Suite("Retention of handled batches, in-process on a manual clock")
struct RetentionTests {
    static func rules(_ action: String, days: Int) -> String {
        """
        version: 1
        retention:
          handled_batches: \(action)
          after_days: \(days)
        rules:
          - name: note-batch
            on: batch_landed
            match: production/{stage}/{batch}
            when: batch != 'bad'
            do:
              - run: {command: ["true"]}
          - name: fail-bad
            on: batch_landed
            match: production/{stage}/bad
            do:
              - run: {command: ["false"]}

        """
    }

    static func daemon(_ rules: String, clock: ManualClock) throws -> (DroplineRoot, Index, WatchDaemon) {
        let root = try DroplineRoot.create(at: FileManager.default.temporaryDirectory.appendingPathComponent("dropline-retention-\(UUID().uuidString)").path)
        try rules.write(toFile: root.path + "/rules.yaml", atomically: true, encoding: .utf8)
        let index = try Index(path: root.index)
        var options = WatchOptions(training: TrainingConfiguration.defaults(architecture: "small-cnn"))
        options.settleSeconds = 10
        let log = Logger.daemon(DaemonLogHandler.Sink(file: root.logs + "/watch.log", echo: false))
        let daemon = try WatchDaemon(root: root, options: options, log: log, clock: clock, index: index)
        try daemon.start()
        return (root, index, daemon)
    }

    static func batch(_ root: DroplineRoot, _ relative: String, files: Int = 3) throws {
        let folder = root.productionInbox + "/" + relative
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for i in 0..<files { try Data("image \(i) of \(relative)".utf8).write(to: URL(fileURLWithPath: folder + "/\(i).jpg")) }
        _ = FileManager.default.createFile(atPath: folder + "/_READY", contents: nil)
    }

    @Test("archive: served batches move to archive/production/<stage>/<batch> (a second one with the same name gets ~2); a failed batch and one still arriving stay")
    func archive() throws {
        let clock = ManualClock()
        let (root, index, daemon) = try Self.daemon(Self.rules("archive", days: 0), clock: clock)
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        try Self.batch(root, "s1/b1")
        try Self.batch(root, "s1/bad")
        try daemon.tick()
        try daemon.runQueuedJobs()
        // still arriving: no marker, not settled
        try FileManager.default.createDirectory(atPath: root.productionInbox + "/s1/arriving", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root.productionInbox + "/s1/arriving/0.jpg"))
        clock.advance(by: 3601)
        try daemon.tick()
        #expect(FileSystem.isRealDirectory(root.path + "/archive/production/s1/b1"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path + "/archive/production/s1/b1").sorted() == ["0.jpg", "1.jpg", "2.jpg", "_READY"])
        #expect(!FileManager.default.fileExists(atPath: root.productionInbox + "/s1/b1"))
        #expect(FileManager.default.fileExists(atPath: root.productionInbox + "/s1/bad"), "a failed batch stays for the user")
        #expect(FileManager.default.fileExists(atPath: root.productionInbox + "/s1/arriving"))
        #expect(try index.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE kind = 'batch_archived'") } == 1)

        // the same name dropped again (after a look that found it gone): served, then archived beside the first
        try daemon.tick()
        try Self.batch(root, "s1/b1", files: 2)
        try daemon.tick()
        try daemon.runQueuedJobs()
        clock.advance(by: 3601)
        try daemon.tick()
        #expect(FileSystem.isRealDirectory(root.path + "/archive/production/s1/b1~2"))
        #expect(try index.jobs(limit: 10).filter { $0.path == "production/s1/b1" }.count == 2, "each content served once")
    }

    @Test("delete after N days: nothing goes before its time; then the batch is removed")
    func deleteAfterDays() throws {
        let clock = ManualClock(Date().timeIntervalSince1970)
        let (root, _, daemon) = try Self.daemon(Self.rules("delete", days: 7), clock: clock)
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        try Self.batch(root, "s1/b1")
        try daemon.tick()
        try daemon.runQueuedJobs()
        clock.advance(by: 3601)
        try daemon.tick()
        #expect(FileManager.default.fileExists(atPath: root.productionInbox + "/s1/b1"), "deleted before its 7 days")
        clock.advance(by: 7 * 86400)
        try daemon.tick()
        #expect(!FileManager.default.fileExists(atPath: root.productionInbox + "/s1/b1"))
        #expect(!FileManager.default.fileExists(atPath: root.path + "/archive"))
    }

    @Test("a link planted where the archive goes: the batch stays, the sweep reports it, nothing is written through the link")
    func plantedArchiveLink() throws {
        let clock = ManualClock()
        let (root, _, daemon) = try Self.daemon(Self.rules("archive", days: 0), clock: clock)
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-outside-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: outside) }
        try FileManager.default.createSymbolicLink(atPath: root.path + "/archive", withDestinationPath: outside)
        try Self.batch(root, "s1/b1")
        try daemon.tick()
        try daemon.runQueuedJobs()
        clock.advance(by: 3601)
        try daemon.tick()
        let log = (try? String(contentsOfFile: root.logs + "/watch.log", encoding: .utf8)) ?? ""
        #expect(log.contains("retention: could not archive") && log.contains("not a real folder"), "\(log)")
        #expect(FileManager.default.fileExists(atPath: root.productionInbox + "/s1/b1"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
    }

    @Test("a batch whose name cannot be a path (a newline, $(...)) is refused by the scan and never archived; a FIFO inside a served batch is moved with it, never opened")
    func hostileNames() throws {
        let clock = ManualClock()
        let (root, _, daemon) = try Self.daemon(Self.rules("archive", days: 0), clock: clock)
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        try Self.batch(root, "s1/bad\nname")
        try Self.batch(root, "s1/$(touch x)")
        try Self.batch(root, "s1/b1")
        mkfifo(root.productionInbox + "/s1/b1/pipe.jpg", 0o644)
        try daemon.tick()
        try daemon.runQueuedJobs()
        clock.advance(by: 3601)
        try daemon.tick()
        #expect(FileManager.default.fileExists(atPath: root.productionInbox + "/s1/bad\nname"))
        #expect(FileManager.default.fileExists(atPath: root.productionInbox + "/s1/$(touch x)"))
        #expect(FileSystem.entryType(root.path + "/archive/production/s1/b1/pipe.jpg") == .fifo)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path + "/archive/production/s1") == ["b1"])
    }
}
