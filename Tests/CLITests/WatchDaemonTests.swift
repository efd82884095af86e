import Foundation
import ShareSupport
import GRDB
import Imaging
import Randomness
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `dropline watch` on a temporary root with real (small, synthetic) PNG images.
@Suite("dropline watch", .enabled(if: Binary.path != nil, "the dropline executable was not built"), .serialized)
struct WatchDaemonTests {
    final class Daemon {
        let process = Process()
        let logPath: String

        init(root: String, arguments: [String], environment: [String: String] = [:]) throws {
            logPath = root + "/logs/watch.log"
            process.executableURL = URL(fileURLWithPath: Binary.path!)
            process.arguments = ["watch", root] + arguments
            if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
            process.standardError = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try process.run()
        }

        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

        func stop() -> Int32 {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    static func image(_ label: Int, _ g: inout SeededGenerator) -> RGBImage {
        var image = RGBImage(width: 32, height: 32)
        for y in 0..<32 {
            for x in 0..<32 {
                func c(_ k: Int) -> UInt8 { UInt8(max(0, min(255, (k == label ? 180.0 : 60.0) + 25 * g.nextGaussian()))) }
                image[x, y] = RGB(c(0), c(1), c(2))
            }
        }
        return image
    }

    static func writeBatch(_ folder: String, count: Int, seed: UInt64, pause: Double = 0.02) throws {
        var g = SeededGenerator(seed: seed)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for i in 0..<count {
            // written the way a copy does: a temporary name, then the final one
            try ImageEncoder.write(image(i % 3, &g), to: folder + "/img-\(i).png.part")
            try FileManager.default.moveItem(atPath: folder + "/img-\(i).png.part", toPath: folder + "/img-\(i).png")
            usleep(UInt32(pause * 1_000_000))
        }
    }

    /// The jobs of batches, flags and labels (model_trained jobs are checked on their own).
    static func jobs(_ root: String) throws -> [(path: String, state: String)] {
        let queue = try DatabaseQueue(path: root + "/index.sqlite")
        return try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT path, state FROM jobs WHERE event != 'model_trained' ORDER BY id").map { ($0["path"], $0["state"]) }
        }
    }

    /// Options of every training run in these tests: small and fast.
    static let training = ["--arch", "small-cnn", "--image-size", "32", "--epochs", "2"]

    /// Stage "original" of a root's training inbox: 3 colour classes of PNGs.
    static func writeTrainingData(_ root: String, seed: UInt64) throws {
        var g = SeededGenerator(seed: seed)
        for (folder, count) in [("train", 20), ("validation", 8)] {
            for (label, name) in ["red", "green", "blue"].enumerated() {
                let path = root + "/inbox/training/original/\(folder)/\(name)"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                for i in 0..<count { try ImageEncoder.write(image(label, &g), to: path + "/\(i).png") }
            }
        }
    }

    /// A new root with stage "original" (3 colour classes of PNGs) and a first model trained on it.
    static func trainedRoot(seed: UInt64) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-watch-\(UUID().uuidString)").path
        guard try Binary.run(["init", root]).status == 0 else { throw CocoaError(.fileWriteUnknown) }
        try writeTrainingData(root, seed: seed)
        let trained = try Binary.run(["train", root, "--stage", "original"] + Self.training)
        guard trained.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: trained.stderr]) }
        return root
    }

    /// Waits until `condition` holds (checked every 0.2 s), up to `seconds`.
    static func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        try ShareSupport.eventually(seconds, condition)
    }

    @Test("batches are processed once, after their marker or after the settle period; a dropped retrain flag trains and promotes; a broken rules edit keeps the previous rules; SIGTERM stops cleanly")
    func endToEnd() throws {
        let root = try Self.trainedRoot(seed: 5)
        defer { try? FileManager.default.removeItem(atPath: root) }

        // A model_trained rule (a user's own) that records each new model version.
        let trainedLog = root + "/trained.txt"
        try (try String(contentsOfFile: root + "/rules.yaml", encoding: .utf8) + """

          - name: note-new-models
            on: model_trained
            do:
              - run: {command: [sh, -c, 'echo v$DROPLINE_MODEL_VERSION $DROPLINE_MODEL_STATE >> "$0"', "\(trainedLog)"]}

        """).write(toFile: root + "/rules.yaml", atomically: true, encoding: .utf8)
        let daemon = try Daemon(root: root, arguments: ["--settle", "4"] + Self.training)
        #expect(Self.eventually(20) { daemon.log.contains("watching") })

        // 1. With a marker: nothing before the marker, then one job.
        let b1 = root + "/inbox/production/original/b1"
        try Self.writeBatch(b1, count: 9, seed: 11)
        usleep(1_500_000)
        #expect(try Self.jobs(root).isEmpty, "a batch without its marker was queued before the settle period")
        _ = FileManager.default.createFile(atPath: b1 + "/_READY", contents: nil)
        #expect(try Self.eventually(60) { try Self.jobs(root).contains { $0.path == "production/original/b1" && $0.state == "succeeded" } }, "\(daemon.log)")
        #expect(daemon.log.contains("batch production/original/b1 landed (marker, 9 file(s))"))

        // 2. Without a marker: not before the settle period, then once.
        let b2 = root + "/inbox/production/original/b2"
        try Self.writeBatch(b2, count: 6, seed: 12)
        usleep(1_500_000)
        #expect(try !Self.jobs(root).contains { $0.path == "production/original/b2" })
        #expect(try Self.eventually(60) { try Self.jobs(root).contains { $0.path == "production/original/b2" && $0.state == "succeeded" } }, "\(daemon.log)")
        #expect(daemon.log.contains("batch production/original/b2 landed (settled, 6 file(s))"))

        // 2b. 2,000 files copied with `cp -r` (no marker): seen whole, once.
        let source = root + "/big-source"
        try Self.writeBatch(source, count: 2000, seed: 14, pause: 0)
        let copy = Process()
        copy.executableURL = URL(fileURLWithPath: "/bin/cp")
        copy.arguments = ["-r", source, root + "/inbox/production/original/big"]
        try copy.run()
        copy.waitUntilExit()
        #expect(copy.terminationStatus == 0)
        #expect(try Self.eventually(180) { try Self.jobs(root).contains { $0.path == "production/original/big" && $0.state == "succeeded" } }, "\(daemon.log)")
        #expect(daemon.log.contains("batch production/original/big landed (settled, 2000 file(s))"), "\(daemon.log)")
        #expect(try Self.jobs(root).filter { $0.path == "production/original/big" }.count == 1)

        // 3. A retrain flag dropped by hand: training, promotion by the default policy, the flag moved to done.
        try Data("{}".utf8).write(to: URL(fileURLWithPath: root + "/flags/retrain/original.json"))
        #expect(try Self.eventually(120) { try Self.jobs(root).contains { $0.path == "flags/retrain/original.json" && $0.state != "queued" && $0.state != "running" } },
                "\(daemon.log)")
        #expect(try Self.jobs(root).first { $0.path == "flags/retrain/original.json" }?.state == "succeeded", "\(daemon.log)")
        #expect(!FileManager.default.fileExists(atPath: root + "/flags/retrain/original.json"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/flags/done").contains { $0.hasPrefix("retrain-job") })
        let models = try DatabaseQueue(path: root + "/index.sqlite").read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM models") }
        #expect(models == 2)
        let firings = try DatabaseQueue(path: root + "/index.sqlite").read { db in
            try String.fetchAll(db, sql: "SELECT rule FROM rule_firings WHERE fired = 1 ORDER BY id")
        }
        #expect(firings.filter { $0 != "note-new-models" } == ["infer-every-batch", "infer-every-batch", "infer-every-batch", "retrain-on-request"])
        // model_trained: the model trained before the daemon started, and the one the flag trained.
        #expect(Self.eventually(10) { ((try? String(contentsOfFile: trainedLog, encoding: .utf8)) ?? "").split(separator: "\n").count == 2 })
        #expect(try String(contentsOfFile: trainedLog, encoding: .utf8) == "v1 champion\nv2 champion\n")

        // 4. A broken rules edit is reported; the previous rules stay in force.
        let rules = root + "/rules.yaml"
        let good = try String(contentsOfFile: rules, encoding: .utf8)
        try (good + "\n  - name: broken\n    on: batch_arived\n    do: [infer: {}]\n").write(toFile: rules, atomically: true, encoding: .utf8)
        #expect(Self.eventually(10) { daemon.log.contains("previous rules stay in force") }, "\(daemon.log)")
        let status = try Binary.run(["status", root, "--json"])
        #expect(status.stdout.contains("batch_arived"))
        let b3 = root + "/inbox/production/original/b3"
        try Self.writeBatch(b3, count: 3, seed: 13, pause: 0)
        _ = FileManager.default.createFile(atPath: b3 + "/_READY", contents: nil)
        #expect(try Self.eventually(60) { try Self.jobs(root).contains { $0.path == "production/original/b3" && $0.state == "succeeded" } }, "\(daemon.log)")

        // 4b. Ground truth for b1 (moved in whole): merged, with the batch's accuracy in the index.
        var csv = "image,class\n"
        for i in 0..<9 { csv += "img-\(i).png,\(["red", "green", "blue"][i % 3])\n" }
        try csv.write(toFile: root + "/inbox/labels/b1.csv.part", atomically: false, encoding: .utf8)
        try FileManager.default.moveItem(atPath: root + "/inbox/labels/b1.csv.part", toPath: root + "/inbox/labels/b1.csv")
        #expect(try Self.eventually(30) { try Self.jobs(root).contains { $0.path == "labels/b1.csv" && $0.state == "succeeded" } }, "\(daemon.log)")
        let labelled = try DatabaseQueue(path: root + "/index.sqlite").read { db in try Int.fetchOne(db, sql: "SELECT sum(labelled) FROM quality") }
        #expect(labelled == 9)

        // 5. SIGTERM: a clean stop, recorded.
        #expect(daemon.stop() == 0)
        let text = try Binary.run(["status", root]).stdout
        #expect(text.contains("daemon:   stopped"), "\(text)")

        // 6. A restart does not process the same content again.
        try good.write(toFile: rules, atomically: true, encoding: .utf8)
        let again = try Binary.run(["watch", root, "--once", "--settle", "0"] + Self.training)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("already in the job queue"))
        #expect(try Self.jobs(root).filter { $0.path.hasPrefix("production/") }.count == 4)
    }

    @Test("a daemon killed in the middle of a job loses nothing and repeats nothing when it starts again")
    func killedMidJob() throws {
        let root = try Self.trainedRoot(seed: 6)
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["b1", "b2"] {
            try Self.writeBatch(root + "/inbox/production/original/" + name, count: 6, seed: name == "b1" ? 21 : 22, pause: 0)
            _ = FileManager.default.createFile(atPath: root + "/inbox/production/original/\(name)/_READY", contents: nil)
        }
        // Killed (SIGKILL, like a power cut) after b1's run folder is published, before the index knows.
        let killed = try Binary.run(["watch", root, "--once"] + Self.training, environment: ["DROPLINE_FAULT": "infer-after-run-published"])
        #expect(killed.signal == SIGKILL)
        #expect(try Self.jobs(root).map(\.state) == ["running", "queued"])

        let again = try Binary.run(["watch", root, "--once"] + Self.training)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("requeued 1 job(s)"))
        #expect(again.stderr.contains("already done by run"), "\(again.stderr)")
        #expect(try Self.jobs(root).map(\.state) == ["succeeded", "succeeded"])
        let serveRuns = try DatabaseQueue(path: root + "/index.sqlite").read { db in
            try String.fetchAll(db, sql: "SELECT subject FROM runs WHERE kind = 'serve' AND status = 'succeeded' ORDER BY subject")
        }
        #expect(serveRuns == ["b1", "b2"])
    }

    @Test("a daemon killed after indexing a drifted batch but before writing its flag raises the flag when it starts again, and retrains")
    func killedBeforeDriftFlag() throws {
        let root = try Self.trainedRoot(seed: 8)
        defer { try? FileManager.default.removeItem(atPath: root) }
        // a batch from elsewhere: dark, noisy images unlike the training colours
        let batch = root + "/inbox/production/original/dark"
        try FileManager.default.createDirectory(atPath: batch, withIntermediateDirectories: true)
        var g = SeededGenerator(seed: 51)
        for i in 0..<30 {
            var image = RGBImage(width: 32, height: 32)
            for y in 0..<32 { for x in 0..<32 { let v = UInt8(max(0, min(255, 20 + 15 * g.nextGaussian()))); image[x, y] = RGB(v, v, v) } }
            try ImageEncoder.write(image, to: batch + "/\(i).png")
        }
        _ = FileManager.default.createFile(atPath: batch + "/_READY", contents: nil)
        let killed = try Binary.run(["watch", root, "--once"] + Self.training, environment: ["DROPLINE_FAULT": "infer-after-index"])
        #expect(killed.signal == SIGKILL)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/flags/drift").isEmpty)

        let again = try Binary.run(["watch", root, "--once"] + Self.training)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("its drift flag, not written then, raised now"), "\(again.stderr)")
        // dark grey frames also break the data-quality constraints: that flag, lost too, is raised and reported
        #expect(again.stderr.contains("its data-quality flag, not written then, raised now"), "\(again.stderr)")
        #expect(try Self.jobs(root).map(\.path) == ["production/original/dark", "flags/drift/original~dark.json", "flags/data_quality/original~dark.json"])
        #expect(try Self.jobs(root).allSatisfy { $0.state == "succeeded" }, "\(again.stderr)")
        let versions = try DatabaseQueue(path: root + "/index.sqlite").read { db in try Int.fetchAll(db, sql: "SELECT version FROM models ORDER BY version") }
        #expect(versions == [1, 2])
    }

    @Test("with --jobs 2, two batches served at once in one process give what each served alone gives: predictions, drift statistics, explanations")
    func concurrentServing() throws {
        let root = try Self.trainedRoot(seed: 9)
        defer { try? FileManager.default.removeItem(atPath: root) }
        // serving only: a drift flag must not retrain (and change the champion) between the two ways
        try """
            version: 1
            rules:
              - name: infer-every-batch
                on: batch_landed
                match: production/{stage}/{batch}
                do:
                  - infer: {}

            """.write(toFile: root + "/rules.yaml", atomically: true, encoding: .utf8)
        let batches = ["p", "q"]
        for (i, name) in batches.enumerated() {
            let folder = root + "/inbox/production/original/" + name
            try Self.writeBatch(folder, count: 150, seed: 90 + UInt64(i), pause: 0)
            _ = FileManager.default.createFile(atPath: folder + "/_READY", contents: nil)
        }
        let together = try Binary.run(["watch", root, "--once", "--jobs", "2"])
        #expect(together.status == 0, "\(together.stderr)")
        let index = try DatabaseQueue(path: root + "/index.sqlite")
        let served = try index.read { db in try Row.fetchAll(db, sql: "SELECT state, started_at, finished_at FROM jobs WHERE event = 'batch_landed'") }
        try #require(served.count == 2 && served.allSatisfy { ($0["state"] as String) == "succeeded" }, "\(served)\n\(together.stderr)")
        let (a, b) = (served[0], served[1])
        #expect((a["started_at"] as String) < (b["finished_at"] as String) && (b["started_at"] as String) < (a["finished_at"] as String),
                "the two batches were not served at the same time: \(served)")
        let concurrent = try SharedIndexDaemonTests.servedRuns(root)
        for name in batches {
            let alone = try Binary.run(["infer", root, root + "/inbox/production/original/" + name])
            try #require(alone.status == 0, "\(alone.stderr)")
        }
        let all = try SharedIndexDaemonTests.servedRuns(root)
        for name in batches {
            let runs = all.filter { ($0["subject"] as? String) == name }
            try #require(runs.count == 2, "\(all)")
            let first = try #require(concurrent.first { ($0["subject"] as? String) == name }?["folder"] as? String)
            let second = try #require(runs.first { ($0["folder"] as? String) != first }?["folder"] as? String)
            let p1 = try SlurmExecutorTests.predictions(root, run: first), p2 = try SlurmExecutorTests.predictions(root, run: second)
            #expect(p1.count == 150 && p1.keys == p2.keys, "\(name)")
            #expect(p1.allSatisfy { path, p in p2[path]?.0 == p.0 && abs((p2[path]?.1 ?? -1) - p.1) <= 1e-6 }, "\(name): the predictions differ")
            let d1 = try SlurmExecutorTests.driftJSON(root, run: first), d2 = try SlurmExecutorTests.driftJSON(root, run: second)
            #expect(d1.drift == d2.drift && d1.detectors == d2.detectors, "\(name): the drift statistics differ")
            let e1 = try Self.explanations(root, run: first), e2 = try Self.explanations(root, run: second)
            #expect(!e1.isEmpty && e1.keys == e2.keys, "\(name): other images explained")
            for (sha, x) in e1 {
                let y = try #require(e2[sha])
                #expect(x.predicted == y.predicted && x.steps == y.steps && abs(x.sum - y.sum) <= 1e-4 * max(1, abs(x.sum)) && abs(x.delta - y.delta) <= 1e-4,
                        "\(name): \(sha.prefix(12)) explained \(x) together, \(y) alone")
            }
        }
    }

    /// A serve run's explanations by image hash: the class, the points, the attribution's sum and the relative delta.
    static func explanations(_ root: String, run folder: String) throws -> [String: (predicted: String, steps: Int, sum: Double, delta: Double)] {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/" + folder + "/explainability/explanations/explanations.json"))
        let list = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        var result: [String: (String, Int, Double, Double)] = [:]
        for e in list {
            result[e["sha256"] as? String ?? "?"] = (e["predicted"] as? String ?? "?", e["steps"] as? Int ?? -1,
                                                    e["attribution_sum"] as? Double ?? .nan, e["relative_delta"] as? Double ?? .nan)
        }
        return result
    }

    @Test("with --jobs 2, jobs run side by side: two trainings at once get distinct model versions, and each job ends once")
    func concurrentJobs() throws {
        let root = try Self.trainedRoot(seed: 7)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.copyItem(atPath: root + "/inbox/training/original", toPath: root + "/inbox/training/second")
        // two retrain flags only, so that both jobs are claimed at once and their overlap is certain
        for stage in ["original", "second"] {
            try Data("{}".utf8).write(to: URL(fileURLWithPath: root + "/flags/retrain/\(stage).json"))
        }
        let result = try Binary.run(["watch", root, "--once", "--jobs", "2"] + Self.training)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try Self.jobs(root).map(\.path) == ["flags/retrain/original.json", "flags/retrain/second.json"])
        #expect(try Self.jobs(root).allSatisfy { $0.state == "succeeded" }, "\(result.stderr)")
        let index = try DatabaseQueue(path: root + "/index.sqlite")
        let (versions, folders, trainings) = try index.read { db in
            (try Int.fetchAll(db, sql: "SELECT version FROM models ORDER BY version"),
             try String.fetchAll(db, sql: "SELECT folder FROM models ORDER BY version"),
             try Row.fetchAll(db, sql: "SELECT started_at, finished_at FROM jobs WHERE path LIKE 'flags/retrain/%'"))
        }
        #expect(versions == [1, 2, 3])
        #expect(folders.allSatisfy { FileManager.default.fileExists(atPath: root + "/" + $0 + "/model/model.json") })
        // the two trainings overlapped in time (ISO 8601 UTC strings compare in time order)
        let (a, b) = (trainings[0], trainings[1])
        #expect((a["started_at"] as String) < (b["finished_at"] as String) && (b["started_at"] as String) < (a["finished_at"] as String))
        // every model version raised model_trained once
        let trained = try index.read { db in try String.fetchAll(db, sql: "SELECT path FROM jobs WHERE event = 'model_trained' ORDER BY path") }
        #expect(trained == ["outputs/models/v0001", "outputs/models/v0002", "outputs/models/v0003"])
        // ... after the promotion decision of its version (rules/README.md: `model.state` is after the rule's promote action)
        let late = try index.read { db in
            try Row.fetchAll(db, sql: """
                SELECT j.path, j.created_at, max(p.at) AS decided FROM jobs j JOIN models m ON m.folder = j.path
                JOIN promotions p ON p.version = m.version WHERE j.event = 'model_trained' AND m.version > 1 GROUP BY j.id
                """).filter { ($0["created_at"] as String) < ($0["decided"] as String) }.map { $0["path"] as String }
        }
        #expect(late.isEmpty, "model_trained raised before the promotion decision of \(late)")
    }
}
