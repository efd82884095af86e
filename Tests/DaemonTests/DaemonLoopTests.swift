import Daemon
import DroplineSupport
import Foundation
import Logging
import Modeling
import Store
import Testing
import SystemFiles

/// The daemon in-process, one look at a time, with a manual clock: settle periods, schedules and
/// reloads are checked in milliseconds, with real files in a temporary root.
@Suite("The watch daemon in-process, on a manual clock")
struct DaemonLoopTests {
    let root: DroplineRoot
    let clock = ManualClock()
    let index: Index
    let daemon: WatchDaemon

    static let rules = """
    version: 1
    rules:
      - name: note-batch
        on: batch_landed
        match: production/{stage}/{batch}
        do:
          - run: {command: ["true"]}
      - name: note-flag
        on: flag_created
        kind: retrain
        do:
          - run: {command: [sh, -c, 'test -n "$DROPLINE_FLAG_STAGE"']}
      - name: every-five-minutes
        on: schedule
        cron: "*/5 * * * *"
        do:
          - run: {command: ["true"]}

    """

    init() throws {
        root = try DroplineRoot.create(at: FileManager.default.temporaryDirectory.appendingPathComponent("dropline-daemon-\(UUID().uuidString)").path)
        try Self.rules.write(toFile: root.path + "/rules.yaml", atomically: true, encoding: .utf8)
        index = try Index(path: root.index)
        var options = WatchOptions(training: TrainingConfiguration.defaults(architecture: "small-cnn"))
        options.settleSeconds = 60
        let log = Logger.daemon(DaemonLogHandler.Sink(file: root.logs + "/watch.log", echo: false))
        daemon = try WatchDaemon(root: root, options: options, log: log, clock: clock, index: index)
        try daemon.start()
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: root.path) }

    func write(_ relative: String, _ text: String = "image bytes") throws {
        let path = root.inbox + "/" + relative
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    func jobs(_ event: JobEvent) throws -> [Job] { try index.jobs(limit: 100).filter { $0.event == event }.reversed() }

    var log: String { (try? String(contentsOfFile: root.logs + "/watch.log", encoding: .utf8)) ?? "" }

    @Test("a batch without its marker is not processed before the settle time, then once")
    func settle() throws {
        defer { cleanUp() }
        try write("production/s1/b1/a.jpg")
        try daemon.tick()
        #expect(try jobs(.batchLanded).isEmpty)
        clock.advance(by: 59)
        try daemon.tick()
        #expect(try jobs(.batchLanded).isEmpty, "queued before the settle period")
        #expect(daemon.nextDeadline.map { $0 - clock.now() } == 1)
        clock.advance(by: 1)
        try daemon.tick()
        #expect(try jobs(.batchLanded).map(\.path) == ["production/s1/b1"])
        #expect(try daemon.runQueuedJobs() == 1)
        #expect(try jobs(.batchLanded).map(\.state) == [.succeeded])
        clock.advance(by: 600)
        try daemon.tick()
        #expect(try jobs(.batchLanded).count == 1, "the same content was queued again")
    }

    @Test("a batch that keeps changing is queued once, for its final content, after it stops changing; files being written do not count")
    func growing() throws {
        defer { cleanUp() }
        for i in 0..<5 {
            try write("production/s1/b2/\(i).jpg")
            try write("production/s1/b2/\(i + 1).jpg.part", "half")
            try daemon.tick()
            clock.advance(by: 30)
        }
        #expect(try jobs(.batchLanded).isEmpty)
        clock.advance(by: 60)
        try daemon.tick()
        #expect(try jobs(.batchLanded).count == 1)
        #expect(log.contains("batch production/s1/b2 landed (settled, 5 file(s))"))
    }

    @Test("after every job the dashboard and the metrics file are written again, and at least every 30 s of the clock")
    func reportsAfterJobs() throws {
        defer { cleanUp() }
        try write("production/s1/b1/a.jpg")
        try write("production/s1/b1/_READY", "")
        func metrics() -> String { (try? String(contentsOfFile: root.outputs + "/metrics/dropline.prom", encoding: .utf8)) ?? "" }
        try daemon.step()
        let deadline = Date().addingTimeInterval(20)
        while try jobs(.batchLanded).first?.state != .succeeded, Date() < deadline { usleep(20_000) }
        try daemon.step()
        #expect(metrics().contains("dropline_jobs_total{outcome=\"succeeded\"} 1"), "\(metrics())")
        let dashboard = try String(contentsOfFile: root.outputs + "/dashboard.html", encoding: .utf8)
        #expect(dashboard.contains("Dropline dashboard") && dashboard.hasSuffix("</html>\n"))
        // no job ended: not written again before 30 s of the clock, then written
        try FileManager.default.removeItem(atPath: root.outputs + "/metrics/dropline.prom")
        try daemon.step()
        #expect(metrics().isEmpty)
        clock.advance(by: 31)
        try daemon.step()
        #expect(metrics().contains("dropline_daemon_up 1"), "the daemon holds the lease: \(metrics())")
    }

    @Test("the marker completes a batch at once; new content after it reopens the batch: one new job once it settles")
    func marker() throws {
        defer { cleanUp() }
        try write("production/s1/b3/a.jpg")
        try write("production/s1/b3/_READY", "")
        try daemon.tick()
        #expect(try jobs(.batchLanded).count == 1)
        try write("production/s1/b3/b.jpg")
        try daemon.tick()
        clock.advance(by: 30)
        try write("production/s1/b3/c.jpg")
        try daemon.tick()
        #expect(try jobs(.batchLanded).count == 1, "served again while files were still arriving")
        clock.advance(by: 60)
        try daemon.tick()
        #expect(try jobs(.batchLanded).count == 2)
        #expect(log.contains("batch production/s1/b3 landed (settled, 3 file(s))"))
    }

    @Test("a schedule fires once per due minute, and not for minutes before the daemon started")
    func schedule() throws {
        defer { cleanUp() }
        let start = clock.now()
        clock.advance(by: 3600)  // 12 due five-minute marks in the hour
        try daemon.tick()
        try daemon.tick()
        #expect(try jobs(.schedule).count == 12, "from \(start)")
        #expect(try daemon.runQueuedJobs() == 12)
    }

    @Test("a dropped flag becomes a job with its values in the environment; its file moves to flags/done/")
    func flags() throws {
        defer { cleanUp() }
        try Data(#"{"stage": "original"}"#.utf8).write(to: URL(fileURLWithPath: root.flags("retrain") + "/original.json"))
        try daemon.tick()
        #expect(try jobs(.flagCreated).map(\.path) == ["flags/retrain/original.json"])
        try daemon.runQueuedJobs()
        #expect(try jobs(.flagCreated).map(\.state) == [.succeeded])
        #expect(FileSystem.names(in: root.flags("done")).count == 1 && FileSystem.names(in: root.flags("retrain")).isEmpty)
    }

    @Test("with the shipped rules, a data-quality flag is reported in the log and the job's record, and nothing is trained")
    func dataQualityReported() throws {
        defer { cleanUp() }
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("rules/default.yaml").path
        try String(contentsOfFile: shipped, encoding: .utf8).write(toFile: root.path + "/rules.yaml", atomically: true, encoding: .utf8)
        let flag = #"{"kind": "data_quality", "batch": "b7", "stage": "s1", "violations": 2, "reason": "2 data-quality violation(s): width: 10 of 10 images below"}"#
        try Data(flag.utf8).write(to: URL(fileURLWithPath: root.flags("data_quality") + "/s1~b7.json"))
        try daemon.tick()
        try daemon.runQueuedJobs()
        let job = try #require(try jobs(.flagCreated).first)
        #expect(job.path == "flags/data_quality/s1~b7.json" && job.state == .succeeded)
        #expect(job.detail?.contains("reported flag_created flags/data_quality/s1~b7.json: 2 data-quality violation(s)") == true, "\(job.detail ?? "")")
        #expect(log.contains("reported flag_created flags/data_quality/s1~b7.json"))
        #expect(try index.runs(limit: 10).isEmpty, "a report must not train")
        #expect(FileSystem.names(in: root.flags("data_quality")).isEmpty && FileSystem.names(in: root.flags("done")).count == 1)
        // a reason written to forge log lines is one escaped line, and a huge one is cut
        let forged = #"{"kind": "data_quality", "reason": "fine\n2026-01-01 job 1 succeeded: all clear"}"#
        try Data(forged.utf8).write(to: URL(fileURLWithPath: root.flags("data_quality") + "/forged.json"))
        let huge = "{\"reason\": \"" + String(repeating: "x", count: 100_000) + "\"}"
        try Data(huge.utf8).write(to: URL(fileURLWithPath: root.flags("data_quality") + "/huge.json"))
        try daemon.tick()
        try daemon.runQueuedJobs()
        #expect(!log.contains("\n2026-01-01 job 1 succeeded") && log.contains(#"fine\n2026-01-01 job 1 succeeded: all clear"#))
        let cut = try #require(try jobs(.flagCreated).first { $0.path.hasSuffix("huge.json") })
        #expect(cut.state == .succeeded && (cut.detail?.count ?? 0) < 1_200 && cut.detail?.hasSuffix("... (cut)") == true)
    }

    @Test("an invalid rules edit keeps the previous rules; a valid one takes effect; a batch no rule serves is recorded so")
    func reload() throws {
        defer { cleanUp() }
        try "version: 1\nrules: [".write(toFile: root.path + "/rules.yaml", atomically: true, encoding: .utf8)
        try write("production/s1/b4/a.jpg")
        try write("production/s1/b4/_READY", "")
        try daemon.tick()
        try daemon.runQueuedJobs()
        #expect(log.contains("the previous rules stay in force"))
        #expect(try jobs(.batchLanded).map(\.state) == [.succeeded])
        try "version: 1\nrules:\n  - {name: only-flags, on: flag_created, do: [run: {command: [\"true\"]}]}\n"
            .write(toFile: root.path + "/rules.yaml", atomically: true, encoding: .utf8)
        try write("production/s1/b5/a.jpg")
        try write("production/s1/b5/_READY", "")
        try daemon.tick()
        try daemon.runQueuedJobs()
        let unserved = try #require(try jobs(.batchLanded).last)
        #expect(unserved.state == .skipped && unserved.detail?.hasPrefix("no rule serves this batch") == true)
        // its producer can read that on the share, outside the batch folder
        let outcome = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root.path + "/outcomes/" + unserved.path + ".json"))) as? [String: Any]
        #expect(outcome?["outcome"] as? String == "not_served" && (outcome?["detail"] as? String)?.hasPrefix("no rule serves this batch") == true)
        #expect(outcome?["content_sha256"] as? String == unserved.contentSha256 && outcome?["run"] == nil)
        // a link planted where a stage's outcomes go is not followed out of the root
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-outside-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let stage = unserved.path.split(separator: "/").dropLast().joined(separator: "/")
        try FileManager.default.removeItem(atPath: root.path + "/outcomes/" + stage)
        try FileManager.default.createSymbolicLink(atPath: root.path + "/outcomes/" + stage, withDestinationPath: outside)
        try write(unserved.path + "/again.jpg")  // new content: the batch is reported again once it settles
        try daemon.tick()
        clock.advance(by: 61)
        try daemon.tick()
        try daemon.runQueuedJobs()
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "an outcome was written through the link")
        #expect(log.contains("could not write the outcome") && log.contains("is not a real folder"))
        #expect(log.contains("batch production/s1/b5 is not served"))
    }
}

extension DaemonLoopTests {
    @Test("a flag dropped again after it was handled is a new request; the same file seen by a restarted daemon is not")
    func requests() throws {
        defer { cleanUp() }
        let flag = root.flags("retrain") + "/original.json"
        try Data(#"{"stage": "original"}"#.utf8).write(to: URL(fileURLWithPath: flag))
        try daemon.tick()
        // a second daemon on the same root (a restart) sees the same, unhandled file: no new job
        var options = WatchOptions(training: TrainingConfiguration.defaults(architecture: "small-cnn"))
        options.settleSeconds = 60
        let restarted = try WatchDaemon(root: root, options: options, log: Logger.daemon(DaemonLogHandler.Sink(file: nil, echo: false)), clock: clock, index: index)
        try restarted.tick()
        #expect(try jobs(.flagCreated).count == 1)
        try daemon.runQueuedJobs()
        #expect(try jobs(.flagCreated).map(\.state) == [.succeeded])
        // the same request dropped again, byte for byte
        try Data(#"{"stage": "original"}"#.utf8).write(to: URL(fileURLWithPath: flag))
        try daemon.tick()
        #expect(try jobs(.flagCreated).count == 2, "a request dropped again was not acted on")
        try daemon.runQueuedJobs()
        #expect(try jobs(.flagCreated).map(\.state) == [.succeeded, .succeeded])
        #expect(FileSystem.names(in: root.flags("done")).count == 2)
    }
}

extension DaemonLoopTests {
    @Test("a folder holding only its marker is a batch and gets a job (its outcome says it held no image); an empty folder without one is not a batch yet")
    func markerOnly() throws {
        defer { cleanUp() }
        try FileManager.default.createDirectory(atPath: root.productionInbox + "/s1/empty", withIntermediateDirectories: true)
        try daemon.tick()
        clock.advance(by: 120)
        try daemon.tick()
        #expect(try jobs(.batchLanded).isEmpty)
        try write("production/s1/only-marker/_READY", "")
        try daemon.tick()
        #expect(try jobs(.batchLanded).map(\.path) == ["production/s1/only-marker"])
    }
}
