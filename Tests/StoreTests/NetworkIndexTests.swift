import Foundation
import GRDB
import ShareSupport
import Store
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Where the index lives (docs/nas.md): never inside a root on a network file system, never opened
/// from a machine that does not hold it; other machines read the snapshot; a machine that is gone
/// for good is replaced by adopting that snapshot.
@Suite("The index of a root on a network share", .serialized)
struct NetworkIndexTests {
    static func temporary(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("dropline-\(name)-\(UUID().uuidString.prefix(8))").path
    }

    /// Rewrites the root's placement record as if the index were on `host`.
    static func placeOn(_ host: String, _ root: DroplineRoot) throws {
        let file = root.path + "/.dropline-index.json"
        var record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as! [String: Any]
        record["host"] = host
        try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: file))
    }

    /// A heartbeat file of an owner on another machine, `age` seconds old.
    static func foreignOwner(_ root: DroplineRoot, host: String, age: Double) throws {
        let at = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-age))
        let record: [String: Any] = ["id": "foreign-\(host)", "host": host, "boot_id": "x", "pid": 4242, "process_start": 1, "command": "train",
                                     "started_at": at, "heartbeat_at": at, "ttl_seconds": 30, "sequence": 1, "state": "running"]
        try FileManager.default.createDirectory(atPath: root.outputs + "/.owners", withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: root.outputs + "/.owners/foreign-\(host).json"))
    }

    /// A root whose index machine A holds (state folder `base/state-a`), with an `on-a` event in
    /// the snapshot A published.
    static func rootHeldByMachineA(_ base: String) throws -> DroplineRoot {
        let root = try DroplineRoot.create(at: base + "/root", stateDirectory: base + "/state-a")
        let first = try Index.open(root: root)
        try first.event(kind: "on-a", subject: "s", detail: nil)
        try first.publishSnapshot(root: root)
        try placeOn("machine-a", root)
        return root
    }

    @Test("init on a share puts the index on the local disk, records it in the root, publishes a snapshot; nothing SQLite is on the share", .enabled(if: SFTPShare.available, "\(SFTPShare.unavailable)"))
    func initOnShare() throws {
        let share = try SFTPShare()
        defer { share.close() }
        let state = Self.temporary("state")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let root = try DroplineRoot.create(at: share.mounts[0] + "/root", stateDirectory: state)
        guard case .here(let path) = try root.indexLocation() else { Issue.record("the index is not here"); return }
        #expect(path.hasPrefix(state + "/") && path.hasSuffix("/index.sqlite"))
        let index = try Index.open(root: root)
        try index.event(kind: "test", subject: "s", detail: nil)
        #expect(try index.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") } == "wal", "WAL on the local disk")
        #expect(try index.publishSnapshot(root: root))
        let onShare = FileManager.default.enumerator(atPath: share.export)!.compactMap { $0 as? String }
        #expect(!onShare.contains { $0.hasSuffix(".sqlite") && !$0.hasSuffix(".index/snapshot.sqlite") || $0.contains("-wal") || $0.contains("-shm") || $0.contains("-journal") }, "\(onShare)")
        // the second client (another machine) reads the snapshot, never the index
        let there = try DroplineRoot(existing: share.mounts[1] + "/root")
        try Self.placeOn("another-machine", there)
        #expect(throws: IndexElsewhere.self) { try Index.open(root: there) }
        let (copy, info) = try Index.openForReading(root: there)
        #expect(info?.host == ThisProcess.host && info?.indexPath == path)
        #expect(copy.isSnapshot)
        #expect(try copy.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE kind = 'test'") } == 1)
        #expect(throws: (any Error).self) { try copy.event(kind: "write", subject: "s", detail: nil) }
        #expect(try index.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") } == ["ok"])
    }

    @Test("an index inside a root on a share is refused with the remedy; --move-index moves it, keeps every row, and renames the old file", .enabled(if: SFTPShare.available, "\(SFTPShare.unavailable)"))
    func moveIndexOffShare() throws {
        let share = try SFTPShare(clients: 1)
        defer { share.close() }
        let state = Self.temporary("state")
        defer { try? FileManager.default.removeItem(atPath: state) }
        // made on the server's own disk (a root from before this release), then seen through the mount
        let local = try DroplineRoot.create(at: share.export + "/root")
        try Index.open(root: local).event(kind: "before-move", subject: "s", detail: nil)
        let mounted = try DroplineRoot(existing: share.mounts[0] + "/root")
        do {
            _ = try Index.open(root: mounted)
            Issue.record("opened an index inside a root on a network file system")
        } catch let error as IndexElsewhere {
            #expect(error.host == nil && error.description.contains("--move-index") && error.description.contains("fuse.sshfs"))
        }
        #expect(throws: StoreError.self) { try DroplineRoot.create(at: mounted.path, stateDirectory: state) }
        _ = try DroplineRoot.create(at: mounted.path, stateDirectory: state, moveIndex: true)
        let moved = try Index.open(root: mounted)
        #expect(try moved.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE kind = 'before-move'") } == 1)
        #expect(!FileManager.default.fileExists(atPath: share.export + "/root/index.sqlite"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: share.export + "/root").contains { $0.hasPrefix("index.sqlite.moved-") })
        #expect(try moved.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") } == ["ok"])
    }

    @Test("adopting the snapshot: refused while an owner on the index's machine lives; done when it is gone; the placement then names this machine")
    func adopt() throws {
        let base = Self.temporary("adopt")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = try Self.rootHeldByMachineA(base)
        #expect(throws: IndexElsewhere.self) { try Index.open(root: root) }

        try Self.foreignOwner(root, host: "machine-a", age: 5)
        #expect(throws: StoreError.self) { try DroplineRoot.create(at: root.path, stateDirectory: base + "/state-b", adoptIndex: true) }
        try Self.foreignOwner(root, host: "machine-a", age: 3600)
        _ = try DroplineRoot.create(at: root.path, stateDirectory: base + "/state-b", adoptIndex: true)
        guard case .here(let path) = try root.indexLocation() else { Issue.record("not adopted"); return }
        #expect(path.hasPrefix(base + "/state-b/"))
        let adopted = try Index.open(root: root)
        #expect(try adopted.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE kind = 'on-a'") } == 1)
        #expect(try adopted.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE name = 'snapshot_info'") } == 0)
        try adopted.event(kind: "on-b", subject: "s", detail: nil)
    }

    @Test("a link or FIFO where the placement record or the snapshot goes is refused, never followed")
    func plantedFiles() throws {
        let base = Self.temporary("planted")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = try DroplineRoot.create(at: base + "/root", stateDirectory: base + "/state")
        try Index.open(root: root).publishSnapshot(root: root)
        try Self.placeOn("machine-a", root)
        let snapshot = root.outputs + "/.index/snapshot.sqlite"
        try FileManager.default.removeItem(atPath: snapshot)
        mkfifo(snapshot, 0o644)
        #expect(throws: StoreError.self) { try Index.openForReading(root: root) }
        unlink(snapshot)
        try FileManager.default.createSymbolicLink(atPath: snapshot, withDestinationPath: "/etc/passwd")
        #expect(throws: StoreError.self) { try Index.openForReading(root: root) }

        let record = root.path + "/.dropline-index.json"
        try FileManager.default.moveItem(atPath: record, toPath: base + "/elsewhere.json")
        try FileManager.default.createSymbolicLink(atPath: record, withDestinationPath: base + "/elsewhere.json")
        do {
            _ = try root.indexLocation()
            Issue.record("followed a link planted as the placement record")
        } catch let error as StoreError {
            #expect(error.message.contains("not a regular file"))
        }
    }

    @Test("an adoption that crashed half-way (a partial copy left, an older index in the state folder) is done again whole; the older index is kept aside")
    func adoptAfterCrash() throws {
        let base = Self.temporary("readopt")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = try Self.rootHeldByMachineA(base)
        let id = try #require(try IndexPlacement.read(root)).rootId
        let folder = base + "/state-b/" + id
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data("half a copy".utf8).write(to: URL(fileURLWithPath: folder + "/index.sqlite.adopting"))
        try Data("an older index".utf8).write(to: URL(fileURLWithPath: folder + "/index.sqlite"))
        _ = try Index.adopt(root: root, stateDirectory: base + "/state-b")
        let adopted = try Index.open(root: root)
        #expect(try adopted.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE kind = 'on-a'") } == 1)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder)
        #expect(names.contains { $0.hasPrefix("index.sqlite.replaced-") } && !names.contains("index.sqlite.adopting"), "\(names)")
    }

    @Test("a move that crashed after recording the new place, before renaming the old file: the recorded index is opened, the old one never")
    func moveCrashedBeforeRename() throws {
        let base = Self.temporary("moved")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = try DroplineRoot.create(at: base + "/root")
        try Index.open(root: root).event(kind: "before-move", subject: "s", detail: nil)
        _ = try DroplineRoot.create(at: root.path, stateDirectory: base + "/state", moveIndex: true)
        try Index.open(root: root).event(kind: "after-move", subject: "s", detail: nil)
        // the old file back under its name, as a crash before the rename leaves it
        let old = try #require(try FileManager.default.contentsOfDirectory(atPath: root.path).first { $0.hasPrefix("index.sqlite.moved-") })
        try FileManager.default.moveItem(atPath: root.path + "/" + old, toPath: root.index)
        let opened = try Index.open(root: root)
        #expect(try opened.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE kind = 'after-move'") } == 1)
    }

    @Test("two processes publishing snapshots at once while others read them: every reader gets a whole snapshot")
    func concurrentPublishers() throws {
        let base = Self.temporary("publishers")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = try DroplineRoot.create(at: base + "/root", stateDirectory: base + "/state")
        let path = try root.openableIndex()
        let writers = [try Index(path: path), try Index(path: path)]
        try writers[0].publishSnapshot(root: root)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for n in 0..<15 {
                do {
                    if worker < 2 {
                        try writers[worker].event(kind: "w\(worker)", subject: "\(n)", detail: nil)
                        try writers[worker].publishSnapshot(root: root)
                    } else {
                        let (copy, info) = try Index.openSnapshot(root: root)
                        _ = try copy.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM events") }
                        if info.indexPath.isEmpty { failures.withLock { $0.append("no index path") } }
                    }
                } catch { failures.withLock { $0.append("\(error)") } }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        let (last, _) = try Index.openSnapshot(root: root)
        #expect(try last.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") } == ["ok"])
    }
}
