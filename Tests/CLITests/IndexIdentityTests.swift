import Foundation
import GRDB
import Testing

/// The index defends itself: a deleted, replaced or damaged index is an error with the remedy, never
/// a silently new, empty one.
@Suite("The index's identity", .enabled(if: Binary.path != nil, "the dropline executable was not built"), .serialized)
struct IndexIdentityTests {
    static func root() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-identity-\(UUID().uuidString)").path
        #expect(try Binary.run(["init", root]).status == 0)
        return root
    }

    @Test("a deleted index stops every command with the remedy and is not re-created; init --new-index starts an empty one")
    func deleted() throws {
        let root = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(FileManager.default.fileExists(atPath: root + "/.dropline-root.json"))
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: root + "/index.sqlite" + suffix) }
        for command in [["status", root], ["runs", root], ["models", "list", root], ["init", root], ["watch", root, "--once"]] {
            let result = try Binary.run(command)
            #expect(result.status != 0, "\(command) went on without its index")
            #expect(result.stderr.contains("index.sqlite is missing") && result.stderr.contains("--new-index"), "\(command): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/index.sqlite"), "a command created an empty index")
        #expect(try Binary.run(["init", root, "--new-index"]).status == 0)
        #expect(try Binary.run(["status", root]).status == 0)
    }

    @Test("another root's index in its place, or a damaged file, is refused with the remedy")
    func replacedOrDamaged() throws {
        let root = try Self.root(), other = try Self.root()
        defer { for r in [root, other] { try? FileManager.default.removeItem(atPath: r) } }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: root + "/index.sqlite" + suffix) }
        try FileManager.default.copyItem(atPath: other + "/index.sqlite", toPath: root + "/index.sqlite")
        let foreign = try Binary.run(["status", root])
        #expect(foreign.status != 0 && foreign.stderr.contains("belongs to another root"), "\(foreign.stderr)")

        try FileManager.default.removeItem(atPath: root + "/index.sqlite")
        try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: root + "/index.sqlite"))
        let damaged = try Binary.run(["status", root])
        #expect(damaged.status != 0 && damaged.stderr.contains("damaged or not a Dropline index"), "\(damaged.stderr)")
        let watch = try Binary.run(["watch", root, "--once"])
        #expect(watch.status != 0 && watch.stderr.contains("damaged"), "\(watch.stderr)")
    }

    @Test("a root from before root ids adopts one on its next command, in the index and in the root")
    func legacy() throws {
        let root = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.removeItem(atPath: root + "/.dropline-root.json")
        try DatabaseQueue(path: root + "/index.sqlite").write { db in try db.execute(sql: "DELETE FROM root_identity") }
        #expect(try Binary.run(["status", root]).status == 0)
        let id = try DatabaseQueue(path: root + "/index.sqlite").read { db in try String.fetchOne(db, sql: "SELECT root_id FROM root_identity") }
        let file = try String(contentsOfFile: root + "/.dropline-root.json", encoding: .utf8)
        #expect(id != nil && file.contains(id!))
    }
}
