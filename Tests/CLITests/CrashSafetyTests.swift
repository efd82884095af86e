import Foundation
import GRDB
import Testing

/// SIGKILL at every named point of real `dropline train` and `dropline infer` processes: the index and
/// the tree stay consistent, and recovering then running again completes the work exactly once.
@Suite("Crash safety", .enabled(if: Binary.path != nil, "the dropline executable was not built"), .serialized)
struct CrashSafetyTests {
    /// A root with stage "original" and batch-1, from the generated colour dataset.
    static func root() throws -> String {
        let data = try ModelCommandTests.dataset()
        let root = data + "/root"
        #expect(try Binary.run(["init", root]).status == 0)
        try FileManager.default.createDirectory(atPath: root + "/inbox/training/original", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: data + "/train", toPath: root + "/inbox/training/original/train")
        try FileManager.default.copyItem(atPath: data + "/validation", toPath: root + "/inbox/training/original/validation")
        try FileManager.default.copyItem(atPath: data + "/test", toPath: root + "/inbox/production/batch-1")
        return root
    }

    static let train = ["--stage", "original", "--arch", "small-cnn", "--epochs", "1", "--image-size", "32"]

    static func run(_ arguments: [String], fault: String? = nil) throws -> Binary.Result {
        try Binary.run(arguments, environment: fault.map { ["DROPLINE_FAULT": $0] } ?? [:])
    }

    /// Every path the index names exists; every published run and model folder is indexed; nothing
    /// is left running or staged.
    static func checkConsistent(_ root: String) throws {
        let db = try DatabaseQueue(path: root + "/index.sqlite")
        try db.read { db in
            let paths = try String.fetchAll(db, sql: """
                SELECT folder FROM runs WHERE folder IS NOT NULL UNION ALL SELECT path FROM component_outputs
                UNION ALL SELECT folder FROM models UNION ALL SELECT heatmap FROM explanations
                """)
            for path in paths { #expect(FileManager.default.fileExists(atPath: root + "/" + path), "indexed but missing: \(path)") }
            let runFolders = Set(try String.fetchAll(db, sql: "SELECT folder FROM runs WHERE status = 'succeeded'"))
            for name in try FileManager.default.contentsOfDirectory(atPath: root + "/outputs/runs") {
                #expect(runFolders.contains("outputs/runs/" + name), "published but not indexed: \(name)")
            }
            let modelFolders = Set(try String.fetchAll(db, sql: "SELECT folder FROM models"))
            for name in try FileManager.default.contentsOfDirectory(atPath: root + "/outputs/models") {
                #expect(modelFolders.contains("outputs/models/" + name), "published model not indexed: \(name)")
            }
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM runs WHERE status = 'running'") == 0)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/outputs/.staging").isEmpty)
    }

    static func succeeded(_ root: String, kind: String) throws -> Int {
        try DatabaseQueue(path: root + "/index.sqlite").read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM runs WHERE kind = ? AND status = 'succeeded'", arguments: [kind]) ?? 0
        }
    }

    @Test("training killed at each point", arguments: ["train-after-processing", "train-after-run-published",
                                                      "train-after-model-published", "train-after-index"])
    func training(point: String) throws {
        let root = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: (root as NSString).deletingLastPathComponent) }
        let killed = try Self.run(["train", root] + Self.train, fault: point)
        #expect(killed.signal == SIGKILL, "\(point): \(killed.stderr)")
        #expect(try Self.run(["recover", root]).status == 0)
        try Self.checkConsistent(root)
        // the work is then done exactly once: rerun only when the crash came before it was complete
        if try Self.succeeded(root, kind: "train") == 0 {
            #expect(try Self.run(["train", root] + Self.train).status == 0)
        }
        try Self.checkConsistent(root)
        #expect(try Self.succeeded(root, kind: "train") == 1)
        let models = try Self.run(["models", "list", root, "--json"])
        #expect((try JSONSerialization.jsonObject(with: Data(models.stdout.utf8)) as? [[String: Any]])?.map { $0["state"] as? String } == ["champion"])
    }

    @Test("inference killed at each point", arguments: ["infer-after-processing", "infer-after-run-published", "infer-after-index"])
    func inference(point: String) throws {
        let root = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: (root as NSString).deletingLastPathComponent) }
        #expect(try Self.run(["train", root] + Self.train).status == 0)
        let killed = try Self.run(["infer", root, root + "/inbox/production/batch-1"], fault: point)
        #expect(killed.signal == SIGKILL, "\(point): \(killed.stderr)")
        #expect(try Self.run(["recover", root]).status == 0)
        try Self.checkConsistent(root)
        if try Self.succeeded(root, kind: "serve") == 0 {
            #expect(try Self.run(["infer", root, root + "/inbox/production/batch-1"]).status == 0)
        }
        try Self.checkConsistent(root)
        #expect(try Self.succeeded(root, kind: "serve") == 1)
        try DatabaseQueue(path: root + "/index.sqlite").read { (db: Database) throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM predictions") == 18)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM batches") == 1)
        }
    }
}
