import DroplineSupport
import Foundation
import Testing
import SystemFiles
#if canImport(Glibc)
import Glibc
import Hashing
#endif

/// A fresh folder under the temporary directory, removed by the caller.
func scratchFolder(_ name: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-\(name)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite("Only regular files: links, FIFOs and devices are refused, never followed or opened blocking")
struct RegularFileTests {
    @Test("a symbolic link is refused where links are refused, and says where it points; followed where allowed")
    func links() throws {
        let folder = try scratchFolder("links")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data("secret".utf8).write(to: URL(fileURLWithPath: folder + "/target"))
        #expect(symlink(folder + "/target", folder + "/link") == 0)
        #expect(try AtomicFile.read(folder + "/link") == Array("secret".utf8))
        #expect {
            _ = try AtomicFile.read(folder + "/link", links: .refuse)
        } throws: { error in
            guard let error = error as? NotRegularFile else { return false }
            return error.type == .symbolicLink(target: folder + "/target") && error.description.contains("symbolic link to")
        }
        #expect(throws: NotRegularFile.self) { try SHA256.hash(file: folder + "/link", links: .refuse) }
        #expect(symlink("/etc/passwd", folder + "/passwd") == 0)
        #expect(throws: NotRegularFile.self) { try AtomicFile.read(folder + "/passwd", links: .refuse) }
    }

    @Test("a FIFO is refused at once, without a writer, whatever the link policy; so is a device")
    func fifoAndDevice() throws {
        let folder = try scratchFolder("fifo")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(mkfifo(folder + "/pipe", 0o644) == 0)
        // (a blocking open would never return: the test would hang, not fail)
        for links in [FileSystem.Links.follow, .refuse] {
            #expect { _ = try AtomicFile.read(folder + "/pipe", links: links) } throws: { ($0 as? NotRegularFile)?.type == .fifo }
        }
        #expect { _ = try SHA256.hash(file: folder + "/pipe") } throws: { ($0 as? NotRegularFile)?.type == .fifo }
        #expect { _ = try AtomicFile.read("/dev/zero") } throws: { ($0 as? NotRegularFile)?.type == .characterDevice }
        #expect(FileSystem.entryType(folder + "/pipe") == .fifo)
    }

    @Test("a copy is whole (3.5 chunks of 1 MiB) and replaces the destination by rename; a link or FIFO source is refused and nothing is left behind")
    func atomicCopy() throws {
        let folder = try scratchFolder("copy")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let bytes = (0..<(7 << 19)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }
        try AtomicFile.write(bytes, to: folder + "/source")
        try AtomicFile.write(Array("old".utf8), to: folder + "/copy")
        try AtomicFile.copy(folder + "/source", to: folder + "/copy")
        #expect(try AtomicFile.read(folder + "/copy") == bytes)
        #expect(symlink(folder + "/source", folder + "/link") == 0)
        #expect(mkfifo(folder + "/pipe", 0o644) == 0)
        #expect(throws: NotRegularFile.self) { try AtomicFile.copy(folder + "/link", to: folder + "/copy", links: .refuse) }
        #expect { try AtomicFile.copy(folder + "/pipe", to: folder + "/copy") } throws: { ($0 as? NotRegularFile)?.type == .fifo }
        #expect(try AtomicFile.read(folder + "/copy") == bytes, "a refused copy leaves the destination as it was")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: folder)) == ["source", "copy", "link", "pipe"], "no temporary file left")
    }

    @Test("the walk reports links as links and never loops: two links to . and one to .. end it")
    func walkWithLinkLoops() throws {
        let folder = try scratchFolder("walk")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder + "/a/b", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: folder + "/a/b/x.png", contents: Data([1]))
        #expect(symlink(".", folder + "/a/self") == 0)
        #expect(symlink(".", folder + "/a/b/again") == 0)
        #expect(symlink("..", folder + "/a/b/up") == 0)
        let entries = FileSystem.walk(folder)
        #expect(entries.map(\.relative) == ["a/b/again", "a/b/up", "a/b/x.png", "a/self"])
        #expect(entries.map(\.type) == [.symbolicLink(target: "."), .symbolicLink(target: ".."), .regular, .symbolicLink(target: ".")])
    }

    @Test("containment is checked after resolving links")
    func inside() throws {
        let folder = try scratchFolder("inside")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder + "/root/inbox", withIntermediateDirectories: true)
        #expect(symlink("/tmp", folder + "/root/inbox/out") == 0)
        #expect(FileSystem.isInside(folder + "/root/inbox", folder + "/root"))
        #expect(!FileSystem.isInside(folder + "/root/inbox/out", folder + "/root"))
        #expect(!FileSystem.isInside(folder + "/root/inbox/../..", folder + "/root"))
        #expect(!FileSystem.isInside(folder + "/root/missing", folder + "/root"))
    }
}

@Suite("Names are data")
struct NameTests {
    @Test("control characters are escaped for logs and tables; letters, spaces and accents are kept")
    func escaping() {
        #expect(DisplayText.escaped("photo with spaces ü.jpg") == "photo with spaces ü.jpg")
        #expect(DisplayText.escaped("a\nb\rc\td") == "a\\nb\\rc\\td")
        #expect(DisplayText.escaped("x\u{1b}[31mred\u{7f}\u{85}\u{2028}") == "x\\u{1b}[31mred\\u{7f}\\u{85}\\u{2028}")
        var table = TextTable("NAME")
        table.add(["b1\n2026 info forged"])
        #expect(table.render().split(separator: "\n").count == 2)
    }

    @Test("stage, batch and class names: a documented set, no separators, traversal, controls or shell syntax")
    func safeNames() {
        for good in ["stage-2", "original", "b1", "batch 2026-12-01 (night)", "Ünïcödé_名前", "v1.2+rc@host,x=y[0]"] {
            #expect(SafeName.problem(good, what: "batch") == nil, "\(good)")
        }
        let bad: [(String, String)] = [
            ("", "empty"), ("..", "not a name"), (".", "not a name"), ("../../..", "'/'"), ("a/b", "'/'"),
            ("x$(touch${IFS}PWNED)", "'$'"), ("a;b", "';'"), ("`id`", "'`'"), ("a|b", "'|'"), ("nl\nname", "control character"),
            ("nul\u{0}", "control character"), ("-rf", "starts with '-'"), (".hidden", "starts with '.'"), ("x ", "ends with ' '"),
            (String(repeating: "a", count: 129), "longer than 128"), ("{stage}", "'{'"), ("a\\b", "'\\'"),
        ]
        for (name, why) in bad {
            let problem = SafeName.problem(name, what: "batch")
            #expect(problem?.contains(why) == true, "\(DisplayText.escaped(name)): \(problem ?? "accepted")")
        }
    }
}
