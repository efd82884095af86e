import DroplineSupport
import Foundation
import Imaging
import Modeling
import Pipeline
import Randomness
import Store
import SystemFiles
import Testing

/// A batch served in shards (what the Slurm executor's jobs do, run here in turn) against the same
/// batch served in one pass.
@Suite("Sharded serving")
struct ShardedServingTests {
    /// The rows of a run's predictions.csv, by path.
    static func predictions(_ pipelines: Pipelines, run: String) throws -> [String: [String]] {
        let folder = try #require(try pipelines.index.run(run)?.folder)
        let text = try String(contentsOfFile: pipelines.root.path + "/" + folder + "/algorithm/predictions.csv", encoding: .utf8)
        var rows: [String: [String]] = [:]
        for row in try CSVReader().rows(text).dropFirst() { rows[row.values[0]] = row.values }
        return rows
    }

    static func drift(_ pipelines: Pipelines, run: String) throws -> [String: Any] {
        let folder = try #require(try pipelines.index.run(run)?.folder)
        let data = try Data(contentsOf: URL(fileURLWithPath: pipelines.root.path + "/" + folder + "/monitoring/drift.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func explained(_ pipelines: Pipelines, run: String) throws -> [String] {
        let folder = try #require(try pipelines.index.run(run)?.folder)
        let data = try Data(contentsOf: URL(fileURLWithPath: pipelines.root.path + "/" + folder + "/explainability/explanations/explanations.json"))
        return (try JSONSerialization.jsonObject(with: data) as? [[String: Any]])?.compactMap { $0["path"] as? String } ?? []
    }

    /// A batch of `count` images, a third of them shifted (so that drift is found), and broken files.
    static func batch(_ root: DroplineRoot, count: Int) throws -> String {
        var g = SeededGenerator(seed: 17)
        return try DataQualityPipelineTests.batch(root, "big", count: count) { n in
            var image = RGBImage(width: 32, height: 32)
            for y in 0..<32 {
                for x in 0..<32 {
                    func c(_ k: Int) -> UInt8 { UInt8(max(0, min(255, (k == n % 3 ? 180.0 : 60.0) + (n % 3 == 0 ? 40 : 0) + 25 * g.nextGaussian()))) }
                    image[x, y] = RGB(c(0), c(1), c(2))
                }
            }
            return image
        }
    }

    @Test("slices cover the batch in order, at most the size given, as even as they can be")
    func slices() {
        let s = ShardPlan.slices(count: 1001, size: 500)
        #expect(s.map(\.start) == [0, 334, 668] && s.map(\.end) == [334, 668, 1001])
        #expect(ShardPlan.slices(count: 4000, size: 500).count == 8 && ShardPlan.slices(count: 4000, size: 500).allSatisfy { $0.end - $0.start == 500 })
        #expect(ShardPlan.slices(count: 3, size: 500).map(\.end) == [3])
        #expect(ShardPlan.slices(count: 0, size: 500).map(\.end) == [0])
    }

    @Test("shards run one by one and merged give the one-pass run's predictions, drift report and explained images; the shards' outputs are gone, the plan stays")
    func sameAsOnePass() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let folder = try Self.batch(root, count: 230)
        _ = FileManager.default.createFile(atPath: folder + "/broken.png", contents: Data("not an image".utf8))
        // what a hostile producer leaves: a link out of the batch, a FIFO (never opened: it would block), a newline in a name
        try FileManager.default.createSymbolicLink(atPath: folder + "/link.png", withDestinationPath: root.path + "/rules.yaml")
        #expect(mkfifo(folder + "/pipe.png", 0o644) == 0)
        try FileManager.default.copyItem(atPath: folder + "/0.png", toPath: folder + "/new\nline.png")
        let (whole, wholeDrift) = try pipelines.infer(batch: folder)
        var planned: ShardPlan?
        let (sharded, shardedDrift) = try pipelines.serveSharded(batch: folder, queued: nil, shardImages: 50) { plan in
            planned = plan
            let staging = pipelines.shardStaging(plan)
            #expect(Pipelines.incompleteShards(staging: staging, plan: plan) == Array(plan.shards.indices))
            for task in plan.shards.indices.reversed() { try pipelines.runShard(staging: staging, task: task) }  // any order
            // a task run again after its output is complete replaces it, leaving one output
            try pipelines.runShard(staging: staging, task: 1)
            #expect(FileSystem.names(in: staging + "/shards").filter { $0.hasPrefix("0001") } == ["0001"])
            #expect(Pipelines.incompleteShards(staging: staging, plan: plan).isEmpty)
            try pipelines.mergeShards(staging: staging)
        }
        let plan = try #require(planned)
        #expect(plan.shards.count == 5 && plan.shards.map { $0.end - $0.start }.reduce(0, +) == 234)
        #expect(wholeDrift == shardedDrift)
        let a = try Self.predictions(pipelines, run: whole), b = try Self.predictions(pipelines, run: sharded)
        #expect(a.count == 231 && a.keys.sorted() == b.keys.sorted() && a.keys.contains { $0.hasSuffix("/new\nline.png") })
        for (path, row) in a {
            let other = try #require(b[path])
            #expect(row[2] == other[2], "\(path): \(row[2]) vs \(other[2])")
            #expect(abs(Double(row[3])! - Double(other[3])!) < 1e-5)
        }
        let da = try Self.drift(pipelines, run: whole), db = try Self.drift(pipelines, run: sharded)
        #expect(da["drift"] as? Bool == db["drift"] as? Bool)
        // every statistic and p-value of every detector, exactly
        func sorted(_ value: Any?) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: try #require(value), options: .sortedKeys), as: UTF8.self)
        }
        #expect(try sorted(da["detectors"]) == sorted(db["detectors"]))
        #expect(try Self.explained(pipelines, run: whole) == Self.explained(pipelines, run: sharded))
        let published = try #require(try pipelines.index.run(sharded)?.folder)
        #expect(FileSystem.names(in: root.path + "/" + published + "/shards") == ["plan.json"])
        #expect(try pipelines.index.run(sharded)?.status == .succeeded)
        // the refused file is counted once, as in one pass
        let manifest = try String(contentsOfFile: root.path + "/" + published + "/processing/manifest.json", encoding: .utf8)
        #expect(manifest.contains("broken.png") && manifest.contains("link.png") && manifest.contains("pipe.png"))
    }

    @Test("a file changed after the plan: its shard refuses it (superseded, recorded in shards/NNNN.error.json); the merge of missing shards names them; the run fails and its staging goes")
    func changedAndMissing() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let folder = try Self.batch(root, count: 40)
        var runID = ""
        do {
            _ = try pipelines.serveSharded(batch: folder, queued: nil, shardImages: 20) { plan in
                runID = plan.runId
                let staging = pipelines.shardStaging(plan)
                try ImageEncoder.write(RGBImage(width: 8, height: 8), to: folder + "/35.png")  // in shard 1
                try pipelines.runShard(staging: staging, task: 0)
                do { try pipelines.runShard(staging: staging, task: 1); Issue.record("a changed file was served") } catch let error as ShardError {
                    #expect(error.superseded && error.description.contains("35.png"))
                }
                #expect(FileSystem.entryType(staging + "/shards/0001.error.json") != nil)
                #expect(throws: ShardError.self) { try pipelines.runShard(staging: staging, task: 7) }
                do { try pipelines.mergeShards(staging: staging) } catch let error as ShardError {
                    #expect(error.description.contains("shard(s) 1 "))
                    throw error
                }
            }
            Issue.record("the run with a missing shard was served")
        } catch is ShardError {}
        let run = try #require(try pipelines.index.run(runID))
        #expect(run.status == .failed && FileSystem.names(in: root.staging).filter { $0.hasPrefix(runID) }.isEmpty)
    }
}
