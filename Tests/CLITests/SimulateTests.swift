import Foundation
import GRDB
import Imaging
import Randomness
import Testing

/// `dropline simulate` and `dropline demo`, end to end through the real daemon (small data, short trainings).
@Suite("dropline simulate and demo", .enabled(if: Binary.path != nil, "the dropline executable was not built"), .serialized)
struct SimulateTests {
    static func temporary(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("dropline-\(name)-\(UUID().uuidString)").path
    }

    /// Three colour classes with pixel noise: a flip changes nothing statistically, a rotation's black corners do.
    static func dataset() throws -> String {
        let root = temporary("study-data")
        var g = SeededGenerator(seed: 41)
        for (split, count) in [("train", 24), ("validation", 8), ("test", 16)] {
            for (label, name) in ["red", "green", "blue"].enumerated() {
                let folder = "\(root)/\(split)/\(name)"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for i in 0..<count { try ImageEncoder.write(WatchDaemonTests.image(label, &g), to: "\(folder)/\(i).png") }
            }
        }
        return root
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test("simulate: seven steps in the study's order; no drift on original; drift on rotation retrains on that stage; both tables, report and results")
    func simulate() throws {
        let (data, root) = (try Self.dataset(), Self.temporary("study-root"))
        defer { for p in [data, root] { try? FileManager.default.removeItem(atPath: p) } }
        let result = try Binary.run(["simulate", "--data", data, "--root", root, "--json"] + WatchDaemonTests.training)
        #expect(result.status == 0, "\(result.stderr)")
        let study = try Self.json(result.stdout)
        let steps = try #require(study["steps"] as? [[String: Any]])
        #expect(steps.map { $0["test_set"] as? String } == ["original", "stage-1", "stage-2", "stage-3", "stage-4", "stage-5", "noisy"])
        #expect(steps.map { $0["images"] as? Int } == Array(repeating: 48, count: 7))
        #expect(steps[0]["drift"] as? Bool == false, "\(steps[0])")
        #expect(steps[0]["retrained"] as? Bool == false)
        let rotated = steps[2]
        #expect(rotated["drift"] as? Bool == true, "\(rotated)")
        #expect(rotated["new_model_stage"] as? String == "stage-2")
        // each batch is served by the champion of its time: the newest model promoted before it
        var champion = 1
        for step in steps {
            #expect(step["serving_model"] as? Int == champion, "\(step)")
            if step["promoted"] as? Bool == true, let v = step["new_model"] as? Int { champion = v }
        }
        // every drifted batch retrained on its own stage; the next batch is served by the champion of the time
        for step in steps where step["drift"] as? Bool == true {
            #expect(step["retrained"] as? Bool == true && step["new_model_stage"] as? String == step["test_set"] as? String, "\(step)")
        }
        let retrained = steps.filter { $0["retrained"] as? Bool == true }.count
        let models = try #require(study["models"] as? [[String: Any]])
        #expect(models.count == 1 + retrained)
        #expect(models.allSatisfy { ($0["scores"] as? [String: Any])?.count == 7 })
        let report = try String(contentsOfFile: root + "/simulation/report.md", encoding: .utf8)
        #expect(report.contains("## (a) Batch inference, step by step") && report.contains("| 7 | noisy |"))
        #expect(FileManager.default.fileExists(atPath: root + "/simulation/results.json"))
        // the daemon really ran: batch jobs and flag jobs in the queue, flags handled
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/flags/drift").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/flags/done").filter { $0.hasPrefix("drift-") }.count == retrained)
        // data-quality flags (the noisier stages' files are larger than the training images') are reported, never retrained on
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/flags/data_quality").isEmpty)
        // the ground truth merged for every step (without quality flags), and the dashboard written by the daemon
        let labelled = try DatabaseQueue(path: root + "/index.sqlite").read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM quality") }
        #expect(labelled == 7)
        let dashboard = try String(contentsOfFile: root + "/outputs/dashboard.html", encoding: .utf8)
        let accuracy = try #require(dashboard.components(separatedBy: "<section id=\"accuracy\">").last?.components(separatedBy: "</section>").first)
        #expect(accuracy.components(separatedBy: "class=\"point\"").count - 1 == 14, "per step, the accuracy measured and the one estimated")
        #expect(dashboard.components(separatedBy: "class=\"marker\"").count - 1 >= 2 * retrained, "the retrainings and promotions marked")

        // a second run into the same root is refused, and nothing there is touched
        let again = try Binary.run(["simulate", "--data", data, "--root", root] + WatchDaemonTests.training)
        #expect(again.status != 0 && again.stderr.contains("already exists and is not empty"), "\(again.stderr)")
    }

    @Test("demo: Fashion-MNIST from the Debian package, through the study, with both tables", .enabled(if: FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist"),
          "dataset-fashion-mnist is not installed (README's first command installs it)"))
    func demo() throws {
        let root = Self.temporary("demo")
        defer { for p in [root, root + "-data"] { try? FileManager.default.removeItem(atPath: p) } }
        let result = try Binary.run(["demo", "--root", root, "--per-class", "12", "--epochs", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("(a) batch inference, step by step") && result.stdout.contains("(b) accuracy / loss"))
        #expect(result.stdout.contains("report:  \(root)/simulation/report.md"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "-data/train").count == 10)
        // --replace starts over on a root an earlier demo made
        let again = try Binary.run(["demo", "--root", root, "--per-class", "12", "--epochs", "1", "--replace", "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(((try Self.json(again.stdout))["steps"] as? [Any])?.count == 7)
    }
}
