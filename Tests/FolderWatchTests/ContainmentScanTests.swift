import DroplineSupport
import FolderWatch
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Inbox scanning: only real folders and safe names are batches; nothing is followed")
struct ContainmentScanTests {
    static func inbox() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-scan-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func file(_ path: String) {
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: 10))
    }

    @Test("links as batches or stages, loose files and unsafe names are refused with their reason")
    func refusals() throws {
        let inbox = try Self.inbox()
        defer { try? FileManager.default.removeItem(atPath: inbox) }
        let outside = try Self.inbox()
        defer { try? FileManager.default.removeItem(atPath: outside) }
        Self.file(outside + "/secret.jpg")
        Self.file(inbox + "/good/a.jpg")
        Self.file(inbox + "/stage-1/b1/a.jpg")
        #expect(symlink(outside, inbox + "/linked") == 0)
        #expect(symlink(outside, inbox + "/stage-1/linked-batch") == 0)
        Self.file(inbox + "/x$(touch${IFS}PWNED)/a.jpg")
        Self.file(inbox + "/stage-1/nl\nforged/a.jpg")
        Self.file(inbox + "/loose.jpg")
        #expect(mkfifo(inbox + "/pipe", 0o644) == 0)
        let scan = InboxScanner().scan(inbox)
        #expect(Set(scan.batches.keys) == ["good", "stage-1/b1"])
        let reasons = Dictionary(uniqueKeysWithValues: scan.refused.map { ($0.path, $0.reason) })
        #expect(Set(reasons.keys) == ["linked", "stage-1/linked-batch", "x$(touch${IFS}PWNED)", "stage-1/nl\nforged", "loose.jpg", "pipe"])
        #expect(reasons["linked"]?.contains("symbolic link to '\(outside)'") == true)
        #expect(reasons["x$(touch${IFS}PWNED)"]?.contains("'$'") == true)
        #expect(reasons["stage-1/nl\nforged"]?.contains("control character") == true)
        #expect(reasons["loose.jpg"]?.contains("outside any batch folder") == true)
        #expect(reasons["pipe"]?.contains("FIFO") == true)
    }

    @Test("links and FIFOs inside a batch are entries of it (refused when served), never opened; link loops end the walk")
    func specialEntries() throws {
        let inbox = try Self.inbox()
        defer { try? FileManager.default.removeItem(atPath: inbox) }
        Self.file(inbox + "/b1/a.jpg")
        #expect(symlink("/etc/passwd", inbox + "/b1/passwd.jpg") == 0)
        #expect(mkfifo(inbox + "/b1/pipe.jpg", 0o644) == 0)
        #expect(symlink(".", inbox + "/b1/self") == 0)
        #expect(symlink("..", inbox + "/b1/up") == 0)
        let snapshot = InboxScanner().snapshot(inbox + "/b1")
        #expect(Set(snapshot.files.keys) == ["a.jpg", "passwd.jpg", "pipe.jpg", "self", "up"])
        #expect(Set(snapshot.special.keys) == ["passwd.jpg", "pipe.jpg", "self", "up"])
        #expect(snapshot.special["passwd.jpg"] == "a symbolic link to '/etc/passwd'")
    }

    @Test("two links to . and one to .. in the watched tree: the inotify set-up ends and watches only real folders")
    func inotifyLinkLoop() throws {
        let root = try Self.inbox()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/production/b1/sub", withIntermediateDirectories: true)
        #expect(symlink(".", root + "/production/b1/a") == 0)
        #expect(symlink(".", root + "/production/b1/b") == 0)
        #expect(symlink("..", root + "/production/b1/sub/up") == 0)
        #expect(symlink("/", root + "/production/rootfs") == 0)
        let watcher = try InotifyWatcher(root: root)
        #expect(watcher.watchCount == 4)  // root, production, b1, sub
        // a link to a folder made while watching is not followed either
        #expect(symlink(".", root + "/production/b1/sub/again") == 0)
        _ = try watcher.wait(timeout: 0.5)
        #expect(watcher.watchCount == 4)
    }
}
