import FolderWatch
import Foundation
import SystemFiles
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The incremental scanner answers what a full scan answers, while walking only what may have
/// changed; what folder times cannot show is found by the full rescan.
@Suite("Polling that costs what changed")
struct IncrementalScannerTests {
    static func inbox(batches: Int, files: Int) throws -> String {
        let inbox = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-incremental-\(UUID().uuidString.prefix(8))").path
        for b in 0..<batches {
            let folder = inbox + (b % 2 == 0 ? "/stage-a/b\(b)" : "/b\(b)")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for f in 0..<files { try Data(repeating: UInt8(f), count: 100 + f).write(to: URL(fileURLWithPath: folder + "/img-\(f).jpg")) }
        }
        return inbox
    }

    /// Scans at `now` and checks the answer against a full scan of the same inbox.
    static func scan(_ scanner: inout IncrementalScanner, _ inbox: String, now: Double) -> InboxScanner.Scan {
        let scan = scanner.scan(inbox, now: now)
        #expect(scan == InboxScanner().scan(inbox), "the incremental scan differs from a full scan at \(now)")
        return scan
    }

    static func settleAll(_ scanner: inout IncrementalScanner, _ inbox: String, _ scan: InboxScanner.Scan, now: Double) {
        for (name, snapshot) in scan.batches { scanner.settle(name, folder: inbox + "/" + name, snapshot: snapshot, now: now) }
    }

    /// Sets a folder's modification time back to `time` (as a file system keeping whole seconds
    /// shows an entry added in the second of the last look).
    static func setModified(_ folder: String, _ time: timespec) {
        var times = [time, time]
        _ = utimensat(AT_FDCWD, folder, &times, 0)
    }

    static func modified(_ folder: String) -> timespec {
        var info = stat()
        lstat(folder, &info)
        return info.st_mtim
    }

    @Test("settled batches are not walked while their folders are unchanged; a changed one is walked and scanned as arriving again")
    func settledSkipped() throws {
        let inbox = try Self.inbox(batches: 40, files: 10)
        defer { try? FileManager.default.removeItem(atPath: inbox) }
        var scanner = IncrementalScanner(scanner: InboxScanner(), fullRescanSeconds: 600)
        let first = Self.scan(&scanner, inbox, now: 0)
        #expect(first.batches.count == 40 && scanner.cost.full && scanner.cost.walked == 40)
        Self.settleAll(&scanner, inbox, first, now: 0)
        _ = Self.scan(&scanner, inbox, now: 5)  // times not trusted yet: walked once more
        #expect(scanner.cost.walked == 40)
        _ = Self.scan(&scanner, inbox, now: 10)
        #expect(scanner.cost.walked == 0 && scanner.cost.walksSkipped == 40 && scanner.cost.listed == 0, "\(scanner.cost)")

        // a file added to a settled batch: that batch, and only it, is walked
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: inbox + "/b1/late.jpg"))
        let later = Self.scan(&scanner, inbox, now: 15)
        #expect(scanner.cost.walked == 1 && later.batches["b1"]?.files["late.jpg"] != nil)
        // no longer settled: walked at every scan, like a batch still arriving
        _ = Self.scan(&scanner, inbox, now: 20)
        _ = Self.scan(&scanner, inbox, now: 25)
        #expect(scanner.cost.walked == 1)

        // a new batch and a removed one
        try FileManager.default.createDirectory(atPath: inbox + "/stage-a/new", withIntermediateDirectories: true)
        try Data([9]).write(to: URL(fileURLWithPath: inbox + "/stage-a/new/x.jpg"))
        try FileManager.default.removeItem(atPath: inbox + "/b3")
        let changed = Self.scan(&scanner, inbox, now: 30)
        #expect(changed.batches["stage-a/new"] != nil && changed.batches["b3"] == nil)
    }

    @Test("a file growing in place in a batch still arriving is seen at every scan")
    func arrivingGrows() throws {
        let inbox = try Self.inbox(batches: 2, files: 3)
        defer { try? FileManager.default.removeItem(atPath: inbox) }
        var scanner = IncrementalScanner(scanner: InboxScanner(), fullRescanSeconds: 600)
        _ = Self.scan(&scanner, inbox, now: 0)
        let file = inbox + "/b1/img-0.jpg"
        for step in 1...3 {
            let handle = try #require(FileHandle(forWritingAtPath: file))
            handle.seekToEndOfFile()
            handle.write(Data(repeating: 7, count: 1000))
            try handle.close()
            let scan = Self.scan(&scanner, inbox, now: Double(step) * 5)
            #expect(scan.batches["b1"]?.files["img-0.jpg"]?.size == Int64(100 + 1000 * step))
        }
    }

    @Test("a time that did not move (whole-second file systems) is not trusted until a look after it stood still")
    func coarseTimes() throws {
        let inbox = try Self.inbox(batches: 2, files: 2)
        defer { try? FileManager.default.removeItem(atPath: inbox) }
        var scanner = IncrementalScanner(scanner: InboxScanner(), fullRescanSeconds: 600)
        let first = Self.scan(&scanner, inbox, now: 0)
        Self.settleAll(&scanner, inbox, first, now: 0)
        // a file lands in the same "second": the folder's time does not change
        let before = Self.modified(inbox + "/b1")
        try Data([1]).write(to: URL(fileURLWithPath: inbox + "/b1/same-second.jpg"))
        Self.setModified(inbox + "/b1", before)
        let scan = Self.scan(&scanner, inbox, now: 1)
        #expect(scan.batches["b1"]?.files["same-second.jpg"] != nil)
    }

    @Test("what folder times cannot show (a settled batch's file rewritten in place) is found by the full rescan")
    func fullRescanIsTheTruth() throws {
        let inbox = try Self.inbox(batches: 3, files: 3)
        defer { try? FileManager.default.removeItem(atPath: inbox) }
        var scanner = IncrementalScanner(scanner: InboxScanner(), fullRescanSeconds: 60)
        let first = Self.scan(&scanner, inbox, now: 0)
        Self.settleAll(&scanner, inbox, first, now: 0)
        _ = Self.scan(&scanner, inbox, now: 5)
        _ = Self.scan(&scanner, inbox, now: 10)
        let folderTime = Self.modified(inbox + "/b1")
        try Data(repeating: 1, count: 5000).write(to: URL(fileURLWithPath: inbox + "/b1/img-1.jpg"))  // replaced by rename: a new entry
        Self.setModified(inbox + "/b1", folderTime)  // and the folder's time hidden, as a stale attribute cache would
        let hidden = scanner.scan(inbox, now: 15)
        #expect(hidden.batches["b1"]?.files["img-1.jpg"]?.size == 101, "skipped by its folder's time until the full rescan")
        let truth = Self.scan(&scanner, inbox, now: 61)
        #expect(scanner.cost.full && truth.batches["b1"]?.files["img-1.jpg"]?.size == 5000)
    }
}
