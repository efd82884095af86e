import FolderWatch
import Foundation
import Testing
import SystemFiles

@Suite("Batch completion")
struct BatchTrackerTests {
    func files(_ names: [String], size: Int64 = 100, time: Int64 = 1) -> [String: FileStamp] {
        Dictionary(uniqueKeysWithValues: names.map { ($0, FileStamp(size: size, modified: time)) })
    }

    @Test("a batch with its marker is complete at once, and only once")
    func marker() {
        var tracker = BatchTracker(settleSeconds: 30)
        let snapshot = BatchSnapshot(files: files(["a.jpg", "b.jpg"]), hasMarker: true)
        #expect(tracker.update(["b1": snapshot], now: 0) == [ReadyBatch(name: "b1", completion: .marker, files: 2)])
        #expect(tracker.update(["b1": snapshot], now: 1).isEmpty)
        #expect(tracker.update(["b1": snapshot], now: 100).isEmpty)
    }

    @Test("a batch without a marker is complete after the settle period and not before; any change restarts it")
    func settle() {
        var tracker = BatchTracker(settleSeconds: 10)
        #expect(tracker.update(["b1": BatchSnapshot(files: files(["a.jpg"]), hasMarker: false)], now: 0).isEmpty)
        #expect(tracker.nextDeadline(now: 4) == 6)
        #expect(tracker.update(["b1": BatchSnapshot(files: files(["a.jpg", "b.jpg"]), hasMarker: false)], now: 5).isEmpty)
        #expect(tracker.update(["b1": BatchSnapshot(files: files(["a.jpg", "b.jpg"]), hasMarker: false)], now: 14).isEmpty)
        // a file still growing counts as a change
        #expect(tracker.update(["b1": BatchSnapshot(files: files(["a.jpg", "b.jpg"], size: 200), hasMarker: false)], now: 14.5).isEmpty)
        #expect(tracker.update(["b1": BatchSnapshot(files: files(["a.jpg", "b.jpg"], size: 200), hasMarker: false)], now: 24).isEmpty)
        #expect(tracker.update(["b1": BatchSnapshot(files: files(["a.jpg", "b.jpg"], size: 200), hasMarker: false)], now: 24.5)
                == [ReadyBatch(name: "b1", completion: .settled, files: 2)])
        #expect(tracker.nextDeadline(now: 25) == nil)
    }

    @Test("a batch changed after completion is a new version; empty folders never complete, a marker alone does (once); handled content is not repeated")
    func versions() {
        var tracker = BatchTracker(settleSeconds: 0)
        #expect(tracker.update(["empty": BatchSnapshot(files: [:], hasMarker: false)], now: 0).isEmpty)
        #expect(tracker.update(["empty": BatchSnapshot(files: [:], hasMarker: false)], now: 100).isEmpty)
        // a producer that wrote only its marker gets an outcome for it (issue 13): served once, with no image
        #expect(tracker.update(["marker-only": BatchSnapshot(files: [:], hasMarker: true)], now: 0) == [ReadyBatch(name: "marker-only", completion: .marker, files: 0)])
        #expect(tracker.update(["marker-only": BatchSnapshot(files: [:], hasMarker: true)], now: 1).isEmpty)
        #expect(tracker.update(["b1": BatchSnapshot(files: files(["a.jpg"]), hasMarker: true)], now: 0).count == 1)
        #expect(tracker.update(["b1": BatchSnapshot(files: files(["a.jpg", "c.jpg"]), hasMarker: true)], now: 1).map(\.files) == [2])
        tracker.markHandled("b2", files: files(["x.jpg"]))
        #expect(tracker.update(["b2": BatchSnapshot(files: files(["x.jpg"]), hasMarker: true)], now: 2).isEmpty)
        // removed, then dropped again with the same content: a new batch as far as the tracker knows
        #expect(tracker.update([:], now: 3).isEmpty)
        #expect(tracker.update(["b1": BatchSnapshot(files: files(["a.jpg"]), hasMarker: true)], now: 4).count == 1)
    }
}

@Suite("Inbox scanning")
struct InboxScannerTests {
    @Test("files being written, hidden files and NAS junk do not count; the marker is seen; stage folders hold batches")
    func scan() throws {
        let inbox = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-inbox-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: inbox) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: inbox + "/b1/sub", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: inbox + "/b1/@eaDir", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: inbox + "/stage-2/b7", withIntermediateDirectories: true)
        for name in ["b1/a.jpg", "b1/sub/b.png", "b1/c.jpg.part", "b1/.d.jpg", "b1/Thumbs.db", "b1/@eaDir/thumb.jpg", "b1/x.tmp", "stage-2/b7/z.jpg"] {
            _ = fm.createFile(atPath: inbox + "/" + name, contents: Data(repeating: 1, count: 10))
        }
        let scanner = InboxScanner()
        var scan = scanner.scan(inbox).batches
        #expect(Set(scan.keys) == ["b1", "stage-2/b7"])
        #expect(Set(scan["b1"]!.files.keys) == ["a.jpg", "sub/b.png"])
        #expect(scan["b1"]!.hasMarker == false)
        _ = fm.createFile(atPath: inbox + "/b1/_READY", contents: Data())
        scan = scanner.scan(inbox).batches
        #expect(scan["b1"]!.hasMarker && scan["b1"]!.files.count == 2)
        #expect(InboxScanner(marker: "DONE").snapshot(inbox + "/b1").files.keys.contains("_READY"))
    }
}

@Suite("inotify")
struct InotifyTests {
    @Test("a file in a directory created after the watch started wakes the watcher; quiet means a timeout")
    func wakeups() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-inotify-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root + "/production", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let watcher = try InotifyWatcher(root: root)
        #expect(watcher.watchCount == 2)
        #expect(try watcher.wait(timeout: 0.05) == false)
        try FileManager.default.createDirectory(atPath: root + "/production/batch-1", withIntermediateDirectories: true)
        #expect(try watcher.wait(timeout: 2))
        #expect(watcher.watchCount == 3)
        _ = FileManager.default.createFile(atPath: root + "/production/batch-1/a.jpg", contents: Data([1, 2, 3]))
        #expect(try watcher.wait(timeout: 2))
        #expect(MountKind.type(of: root) != nil)
        #expect(MountKind.type(of: "/proc") == "proc")
    }
}

@Suite("Batch completion after the marker")
struct ReopenedBatchTests {
    func files(_ names: [String]) -> [String: FileStamp] {
        Dictionary(uniqueKeysWithValues: names.map { ($0, FileStamp(size: 100, modified: 1)) })
    }

    @Test("files that keep arriving after the marker reopen the batch: one new report after the settle period, not one per file")
    func growingAfterMarker() {
        var tracker = BatchTracker(settleSeconds: 60)
        #expect(tracker.update(["b1": BatchSnapshot(files: files(["0.jpg"]), hasMarker: true)], now: 0).map(\.completion) == [.marker])
        var names = ["0.jpg"]
        var reports = 0
        for i in 1...10 {  // a file every 10 s after the marker
            names.append("\(i).jpg")
            reports += tracker.update(["b1": BatchSnapshot(files: files(names), hasMarker: true)], now: Double(i * 10)).count
        }
        #expect(reports == 0, "reported while still changing")
        #expect(tracker.nextDeadline(now: 100) == 60)
        #expect(tracker.update(["b1": BatchSnapshot(files: files(names), hasMarker: true)], now: 159).isEmpty)
        let final = tracker.update(["b1": BatchSnapshot(files: files(names), hasMarker: true)], now: 160)
        #expect(final == [ReadyBatch(name: "b1", completion: .settled, files: 11)])
        #expect(tracker.update(["b1": BatchSnapshot(files: files(names), hasMarker: true)], now: 500).isEmpty)
    }
}

