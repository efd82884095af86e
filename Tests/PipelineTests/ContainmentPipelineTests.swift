import DroplineSupport
import Foundation
import GRDB
import Pipeline
import Store
import Testing
#if canImport(Glibc)
import Glibc
import Hashing
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
