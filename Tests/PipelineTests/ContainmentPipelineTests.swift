import DroplineSupport
import Imaging
import Randomness
import Foundation
import GRDB
import Pipeline
import Store
import Testing
import Hashing
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

@Suite("Pipelines read only regular files inside the root")
struct ContainmentPipelineTests {
    @Test("a stage with .. or / , or a stage folder that is a link out of the root, trains nothing and says why")
    func stageTraversal() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        for stage in ["../../..", "../training/original", "a/b", "..", "x$(id)"] {
            #expect(throws: ComponentError.self, "\(stage)") { try pipelines.train(stage: stage, configuration: Fixture.configuration()) }
        }
        // a link to a complete stage outside the root
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-outside-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outside) }
        try FileManager.default.copyItem(atPath: root.trainingInbox + "/original", toPath: outside)
        #expect(symlink(outside, root.trainingInbox + "/elsewhere") == 0)
        #expect { try pipelines.train(stage: "elsewhere", configuration: Fixture.configuration()) } throws: {
            "\($0)".contains("not a real folder inside inbox/training/")
        }
        // a class folder that is a link
        try FileManager.default.copyItem(atPath: root.trainingInbox + "/original", toPath: root.trainingInbox + "/linked-class")
        try FileManager.default.removeItem(atPath: root.trainingInbox + "/linked-class/train/red")
        #expect(symlink(outside + "/train/red", root.trainingInbox + "/linked-class/train/red") == 0)
        #expect { try pipelines.train(stage: "linked-class", configuration: Fixture.configuration()) } throws: { "\($0)".contains("is a link") }
        #expect(try pipelines.sqlite.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM models") } == 0)
    }

    @Test("a link to /etc/passwd and a FIFO in a batch are refused with their reason; nothing of the target is read or hashed")
    func linksInBatch() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        _ = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let batch = root.productionInbox + "/batch-1"
        #expect(symlink("/etc/passwd", batch + "/passwd.png") == 0)
        #expect(mkfifo(batch + "/pipe.png", 0o644) == 0)
        let (run, _) = try pipelines.infer(batch: batch)
        let passwdHash = try SHA256.hash(file: "/etc/passwd")
        try pipelines.sqlite.read { db in
            let refused = try Row.fetchAll(db, sql: "SELECT path, sha256, bytes, outcome, reason FROM images WHERE outcome = 'not_regular' ORDER BY path")
            #expect(refused.map { $0["path"] as String } == ["inbox/production/batch-1/passwd.png", "inbox/production/batch-1/pipe.png"])
            #expect(refused.allSatisfy { ($0["sha256"] as String) == String(repeating: "0", count: 64) && ($0["bytes"] as Int) == 0 })
            #expect((refused[0]["reason"] as String).contains("symbolic link to '/etc/passwd'"))
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM images WHERE sha256 = ?", arguments: [passwdHash]) == 0)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM predictions WHERE run_id = ? AND (path LIKE '%passwd%' OR path LIKE '%pipe%')", arguments: [run]) == 0)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM predictions WHERE run_id = ?", arguments: [run]) == 24)
        }
    }
}

@Suite("Batch identity: a batch is its path under the inbox")
struct BatchIdentityTests {
    @Test("two batches of one name in two stages get two drift flags; labels name the batch by its path, and a bare name that is ambiguous is refused with the choices")
    func sameNameTwoStages() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        _ = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        var g = SeededGenerator(seed: 19)
        for stage in ["stage-a", "stage-c"] {
            let batch = root.productionInbox + "/\(stage)/b1"
            try FileManager.default.createDirectory(atPath: batch, withIntermediateDirectories: true)
            for i in 0..<24 {
                var image = RGBImage(width: 32, height: 32)
                for y in 0..<32 { for x in 0..<32 { let v = UInt8(235 + Int(g.next() % 20)); image[x, y] = RGB(v, v, v) } }
                try ImageEncoder.write(image, to: batch + "/\(stage)-\(i).png")
            }
            #expect(try pipelines.infer(batch: batch).drift)
        }
        #expect(FileSystem.names(in: root.flags("drift")) == ["stage-a~b1.json", "stage-c~b1.json"])
        let flag = try FlagFiles.read(DriftFlag.self, from: root.flags("drift") + "/stage-c~b1.json")
        #expect(flag.stage == "stage-c" && flag.batchPath == "production/stage-c/b1")

        // labels for stage-c's b1, named by its path
        let labels = root.labelsInbox + "/stage-c~b1.csv"
        try ("image,class\n" + (0..<24).map { "stage-c-\($0).png,red" }.joined(separator: "\n") + "\n").write(toFile: labels, atomically: true, encoding: .utf8)
        let result = try GroundTruth(root: root, index: pipelines.index).merge(labels: labels)
        #expect(result.labelled == 24 && result.batch == "b1")
        let served = try #require(try pipelines.index.servedRun(id: result.run))
        #expect(served.batchPath == "inbox/production/stage-c/b1")
        // the bare name stands for two batches
        let bare = root.labelsInbox + "/b1.csv"
        try "image,class\nstage-a-0.png,red\n".write(toFile: bare, atomically: true, encoding: .utf8)
        #expect { try GroundTruth(root: root, index: pipelines.index).merge(labels: bare) } throws: {
            "\($0)".contains("2 served batches are named 'b1'") && "\($0)".contains("stage-a~b1.csv or stage-c~b1.csv")
        }
    }
}

@Suite("Every batch gets an outcome")
struct DegenerateBatchTests {
    @Test("a one-image batch is served and says it was too small to test; a batch of only broken or empty files is served with every refusal recorded")
    func smallAndBroken() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        _ = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let one = root.productionInbox + "/s/one"
        try FileManager.default.createDirectory(atPath: one, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: root.trainingInbox + "/original/train/red/0.png", toPath: one + "/a.png")
        let (run, drift) = try pipelines.infer(batch: one)
        #expect(!drift)
        let served = try #require(try pipelines.index.servedRun(id: run))
        #expect(served.drift == false && served.driftReason?.hasPrefix("not tested: the batch has 1 usable image") == true)
        #expect(try pipelines.index.predictions(run: run).count == 1)

        let broken = root.productionInbox + "/s/broken"
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: broken + "/zero.jpg", contents: Data())
        _ = FileManager.default.createFile(atPath: broken + "/text.png", contents: Data("not an image".utf8))
        let (brokenRun, _) = try pipelines.infer(batch: broken)
        let outcome = try #require(try pipelines.index.servedRun(id: brokenRun))
        #expect(outcome.driftReason?.hasPrefix("not tested: the batch has 0 usable images") == true)
        try pipelines.sqlite.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT path, outcome FROM images WHERE batch_id = ? ORDER BY path", arguments: [outcome.batchId])
            #expect(rows.map { $0["outcome"] as String } == ["unsupported", "empty"])
        }
    }
}
