import DroplineSupport
import Foundation
import GRDB
import Imaging
import Modeling
import Pipeline
import Store
import Testing

/// Recovery that touches only gone owners' work, published runs never left unindexed, and serve runs
/// that read exactly the batch they froze.
@Suite("Owners, reconciliation and frozen batches")
struct OwnershipPipelineTests {
    @Test("recovery leaves a live owner's running run and its staging alone, and fails a gone owner's")
    func liveOwner() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let daemon = try Pipelines(root: root)
        daemon.owner = try OwnerSession(root: root, command: "watch")
        defer { daemon.owner?.end() }
        try daemon.index.startRun(id: "20260101T000000Z-live", kind: .train, subject: "original", owner: daemon.owner!.id)
        try FileManager.default.createDirectory(atPath: root.staging + "/20260101T000000Z-live-train-original/processing", withIntermediateDirectories: true)
        try daemon.index.startRun(id: "20260101T000000Z-gone", kind: .train, subject: "original", owner: "elsewhere-1-00000000")
        try FileManager.default.createDirectory(atPath: root.staging + "/20260101T000000Z-gone-train-original", withIntermediateDirectories: true)

        // a hand-run command beside it, with its own ownership, recovers
        let byHand = try Pipelines(root: root)
        byHand.owner = try OwnerSession(root: root, command: "train")
        defer { byHand.owner?.end() }
        try byHand.recover()
        #expect(try byHand.index.run("20260101T000000Z-live")?.status == .running)
        #expect(FileManager.default.fileExists(atPath: root.staging + "/20260101T000000Z-live-train-original/processing"))
        #expect(try byHand.index.run("20260101T000000Z-gone")?.status == .failed)
        #expect(!FileManager.default.fileExists(atPath: root.staging + "/20260101T000000Z-gone-train-original"))
        // and trains beside it: its run is its own, with the next version
        let (run, version) = try byHand.train(stage: "original", configuration: Fixture.configuration())
        #expect(try byHand.index.run(run)?.owner == byHand.owner!.id && version == 1)

        // once the daemon is gone, its run is recovered
        daemon.owner!.end()
        try byHand.recover()
        #expect(try byHand.index.run("20260101T000000Z-live")?.status == .failed)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.staging).isEmpty)
    }

    @Test("a published run marked failed (an error between the rename and the index) and a model folder without its row are reconciled")
    func reconcile() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        let (run, _) = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let folder = try #require(try pipelines.index.run(run)?.folder)
        // as the old error path left it: the run failed, its folder and model published, no rows
        try Fixture.unindex(run: run, in: pipelines, as: "status = 'failed', folder = NULL, error = 'database is locked'")
        // and a model version no run accounts for
        try FileManager.default.createDirectory(atPath: root.models + "/v0007/model", withIntermediateDirectories: true)
        #expect(try pipelines.reconcilePublished() == 1)
        let reconciled = try #require(try pipelines.index.run(run))
        #expect(reconciled.status == .succeeded && reconciled.folder == folder && reconciled.modelVersion == 1)
        #expect(try pipelines.index.models().map(\.version) == [1])
        #expect(!FileManager.default.fileExists(atPath: root.models + "/v0007"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.outputs + "/.orphans").contains { $0.hasPrefix("v0007-") })
        #expect(try pipelines.reconcilePublished() == 0, "reconciled twice")
    }

    @Test("a frozen batch: the files read are checked against it; a changed, replaced or vanished file is an error naming it")
    func frozen() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let batch = root.productionInbox + "/batch-1"
        let listing = try FileManager.default.contentsOfDirectory(atPath: batch).map { ($0, String?.none) }
        let frozen = try FrozenBatch.capture(folder: batch, listing: listing)
        #expect(frozen.entries.count == 25)
        let collection = try ImageCollection(frozen: frozen, side: 32)
        #expect(collection.items.count == 24 && collection.rejected.count == 1 && collection.rejected[0].path.hasSuffix("broken.jpg"))
        // a file added since is not read; one changed is an error
        try ImageEncoder.write(RGBImage(width: 8, height: 8), to: batch + "/late.png")
        #expect(try ImageCollection(frozen: frozen, side: 32).items.count == 24)
        try ImageEncoder.write(RGBImage(width: 8, height: 8), to: batch + "/img 3.png")
        try FileManager.default.removeItem(atPath: batch + "/img 4.png")
        do {
            _ = try ImageCollection(frozen: frozen, side: 32)
            Issue.record("a changed batch was read")
        } catch let changed as BatchChanged {
            #expect(changed.files.map(\.path).sorted() == ["img 3.png", "img 4.png"])
            #expect(changed.description.contains("img 3.png (its content changed)") && changed.description.contains("img 4.png (it vanished)"))
        }
    }

    @Test("a batch frozen by its one read: in chunks, with the same content hash as a capture; a file gone before its chunk is read is an error naming it")
    func freezingPass() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-freezing-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for i in 0..<150 {
            var image = RGBImage(width: 40, height: 30)
            for p in 0..<image.pixels.count { image.pixels[p] = UInt8(truncatingIfNeeded: p &* (i + 1)) }
            try ImageEncoder.write(image, to: folder + String(format: "/img-%03d.png", i))
        }
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: folder + "/notes.jpg"))
        let listing = try FileManager.default.contentsOfDirectory(atPath: folder).map { ($0, String?.none) }
        let preparations = [Preprocessing(imageSize: 32, normalization: .unit), Preprocessing(imageSize: 64, normalization: .unit)]
        var sizes: [Int] = [], rejected: [String] = []
        let frozen = try FrozenBatch.freezing(folder: folder, listing: listing, preparations: preparations) { chunk in
            sizes.append(chunk.items.count + chunk.rejected.count)
            rejected += chunk.rejected.map { ($0.path as NSString).lastPathComponent }
            #expect(chunk.images[0].allSatisfy { $0.width == 32 } && chunk.images[1].allSatisfy { $0.width == 64 })
        }
        #expect(sizes == [64, 64, 23] && rejected == ["notes.jpg"])
        let captured = try FrozenBatch.capture(folder: folder, listing: listing)
        #expect(frozen.contentSha256 == captured.contentSha256 && frozen.entries == captured.entries, "the refused file is pinned by its hash too")
        var first = true
        do {
            _ = try FrozenBatch.freezing(folder: folder, listing: listing, preparations: preparations) { _ in
                if first { try FileManager.default.removeItem(atPath: folder + "/img-140.png") }
                first = false
            }
            Issue.record("a batch with a file gone was frozen")
        } catch let unreadable as BatchUnreadable {
            #expect(unreadable.path.hasSuffix("/img-140.png") && unreadable.description.contains("could not be read"), "\(unreadable)")
        }
    }

    @Test("a served run reads its frozen batch (batch.json); a batch no longer what its job queued is not served")
    func servedFrozen() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let batch = root.productionInbox + "/batch-1"
        let (run, _) = try pipelines.infer(batch: batch)
        let folder = try #require(try pipelines.index.run(run)?.folder)
        let frozen = try JSONDecoder.snakeCase.decode(FrozenBatch.self, from: Data(contentsOf: URL(fileURLWithPath: root.path + "/" + folder + "/batch.json")))
        #expect(frozen.entries.count == 25)
        do {
            _ = try pipelines.infer(batch: batch, queued: QueuedBatch(contentSha256: String(repeating: "0", count: 64), marker: "_READY"))
            Issue.record("served content it was not queued for")
        } catch let superseded as BatchSuperseded {
            #expect(superseded.description.contains("inbox/production/batch-1 changed since it was queued"))
        }
        // the queued content is served
        #expect(try pipelines.infer(batch: batch, queued: QueuedBatch(contentSha256: frozen.contentSha256, marker: "_READY")).run != run)
    }
}

extension JSONDecoder {
    static var snakeCase: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}
