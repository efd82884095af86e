import DroplineSupport
import Foundation
import GRDB
import Imaging
import Modeling
import Pipeline
import Randomness
import Store
import Testing

/// A root with stage "original" (3 colour classes of 32x32 PNGs) and one production batch.
enum Fixture {
    static func root() throws -> DroplineRoot {
        let root = try DroplineRoot.create(at: FileManager.default.temporaryDirectory.appendingPathComponent("dropline-pipeline-\(UUID().uuidString)").path)
        var g = SeededGenerator(seed: 3)
        func image(_ label: Int) -> RGBImage {
            var image = RGBImage(width: 32, height: 32)
            for y in 0..<32 {
                for x in 0..<32 {
                    func c(_ k: Int) -> UInt8 { UInt8(max(0, min(255, (k == label ? 180.0 : 60.0) + 25 * g.nextGaussian()))) }
                    image[x, y] = RGB(c(0), c(1), c(2))
                }
            }
            return image
        }
        for (folder, count) in [("training/original/train", 20), ("training/original/validation", 8)] {
            for (label, name) in ["red", "green", "blue"].enumerated() {
                let path = root.inbox + "/" + folder + "/" + name
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                for i in 0..<count { try ImageEncoder.write(image(label), to: path + "/\(i).png") }
            }
        }
        let batch = root.productionInbox + "/batch-1"
        try FileManager.default.createDirectory(atPath: batch, withIntermediateDirectories: true)
        for i in 0..<24 { try ImageEncoder.write(image(i % 3), to: batch + "/img \(i).png") }
        _ = FileManager.default.createFile(atPath: batch + "/broken.jpg", contents: Data("no".utf8))
        return root
    }

    /// `root()` with a first model trained on "original" and batch-1 served by it.
    static func served() throws -> (DroplineRoot, Pipelines) {
        let root = try root()
        let pipelines = try Pipelines(root: root)
        try pipelines.train(stage: "original", configuration: configuration())
        try pipelines.infer(batch: root.productionInbox + "/batch-1")
        return (root, pipelines)
    }

    static func configuration() -> TrainingConfiguration {
        var c = TrainingConfiguration.defaults(architecture: "small-cnn")
        c.imageSize = 32
        c.epochs = 3
        c.batchSize = 12
        return c
    }
}

extension Fixture {
    /// Takes a published training run's rows out of the index (its model, promotions and outputs) and
    /// sets its row as `set` says: as a crash or an error between the rename and the index left it.
    static func unindex(run: String, in pipelines: Pipelines, as set: String) throws {
        try pipelines.sqlite.write { db in
            try db.execute(sql: "DELETE FROM component_outputs WHERE run_id = ?", arguments: [run])
            try db.execute(sql: "DELETE FROM promotions")
            try db.execute(sql: "UPDATE runs SET model_version = NULL WHERE id = ?", arguments: [run])
            try db.execute(sql: "DELETE FROM models")
            try db.execute(sql: "UPDATE runs SET \(set) WHERE id = ?", arguments: [run])
        }
    }
}

extension Pipelines {
    /// The SQLite index behind the pipelines, for tests that inspect its rows.
    var sqlite: Index { index as! Index }
}

@Suite("Pipelines")
struct PipelineTests {
    @Test("a drifted batch under production/<stage>/ raises a drift flag that names its stage, for the rules to retrain on")
    func driftFlagNamesStage() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        _ = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        // Near-white, low-contrast images: far from the training colours in every pixel statistic.
        let batch = root.productionInbox + "/original/washed-out"
        try FileManager.default.createDirectory(atPath: batch, withIntermediateDirectories: true)
        var g = SeededGenerator(seed: 9)
        for i in 0..<24 {
            var image = RGBImage(width: 32, height: 32)
            for y in 0..<32 { for x in 0..<32 { let v = UInt8(235 + Int(g.next() % 20)); image[x, y] = RGB(v, v, v) } }
            try ImageEncoder.write(image, to: batch + "/\(i).png")
        }
        let (run, drift) = try pipelines.infer(batch: batch)
        #expect(drift)
        let data = try Data(contentsOf: URL(fileURLWithPath: root.flags("drift") + "/original~washed-out.json"))
        let flag = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(flag["stage"] as? String == "original")
        #expect(flag["batch_path"] as? String == "production/original/washed-out")
        #expect(flag["run"] as? String == run)
        #expect(flag["batches_in_a_row"] as? Int == 1)
        // A second drifted batch in a row is counted, for rules with hysteresis.
        try FileManager.default.copyItem(atPath: batch, toPath: batch + "-again")
        _ = try pipelines.infer(batch: batch + "-again")
        let second = try Data(contentsOf: URL(fileURLWithPath: root.flags("drift") + "/original~washed-out-again.json"))
        #expect((try JSONSerialization.jsonObject(with: second) as? [String: Any])?["batches_in_a_row"] as? Int == 2)
    }

    @Test("train then infer: published folders, a champion with its history, and index rows that all point at published files")
    func trainAndInfer() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        let (trainRun, version) = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        #expect(version == 1)
        #expect(try pipelines.champion()?.version == 1)
        #expect(FileManager.default.fileExists(atPath: root.models + "/v0001/model/content.sha256"))
        #expect(FileManager.default.fileExists(atPath: root.models + "/v0001/drift/content.sha256"))
        #expect(try pipelines.index.run(trainRun)?.modelVersion == 1)
        let (serveRun, _) = try pipelines.infer(batch: root.productionInbox + "/batch-1")
        let serve = try #require(try pipelines.index.run(serveRun))
        #expect(serve.status == .succeeded && serve.modelVersion == 1 && serve.batchId != nil)
        try pipelines.sqlite.read { db in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM predictions WHERE run_id = ?", arguments: [serveRun]) == 24)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM images WHERE outcome = 'unsupported'") == 1)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM drift_results WHERE run_id = ?", arguments: [serveRun]) == 35)
            #expect(try String.fetchAll(db, sql: "SELECT to_state FROM promotions ORDER BY id") == ["candidate", "champion"])
            #expect(try String.fetchAll(db, sql: "SELECT role FROM run_inputs WHERE run_id = ? ORDER BY role", arguments: [trainRun])
                    == ["algorithm/train", "algorithm/validation", "explainability/validation", "monitoring/holdout", "monitoring/train",
                        "processing/train", "processing/validation"])
            #expect(try String.fetchOne(db, sql: "SELECT path FROM run_inputs WHERE run_id = ? AND role = 'processing/batch'", arguments: [serveRun])
                    == "inbox/production/batch-1")
            let paths = try String.fetchAll(db, sql: """
                SELECT folder FROM runs WHERE folder IS NOT NULL UNION ALL SELECT path FROM component_outputs
                UNION ALL SELECT folder FROM models UNION ALL SELECT heatmap FROM explanations UNION ALL SELECT path FROM predictions
                """)
            #expect(paths.count > 20)
            for path in paths { #expect(FileManager.default.fileExists(atPath: root.path + "/" + path), "\(path) is indexed but missing") }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.staging).isEmpty)
        // a second model: the policy promotes it only if it is not worse than the champion by more than the margin
        let (_, second) = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        #expect(second == 2)
        let states = try pipelines.sqlite.read { db in try String.fetchAll(db, sql: "SELECT state FROM models ORDER BY version") }
        #expect(states == ["archived", "champion"] || states == ["champion", "candidate"])
        // ... compared on the same images: the champion was evaluated on the second model's validation set
        let row = try pipelines.sqlite.read { db in
            try Row.fetchOne(db, sql: "SELECT validation_accuracy, baseline_version, baseline_accuracy FROM models WHERE version = 2")!
        }
        #expect(row["baseline_version"] as Int? == 1)
        let baseline: Double = try #require(row["baseline_accuracy"])
        let accuracy: Double = row["validation_accuracy"]
        #expect(states == (accuracy >= baseline - 0.01 ? ["archived", "champion"] : ["champion", "candidate"]))
        let reason = try pipelines.sqlite.read { db in
            try String.fetchOne(db, sql: "SELECT reason FROM promotions WHERE version = 2 ORDER BY id DESC LIMIT 1")
        }
        if states.last == "champion" { #expect(reason?.contains("on stage original's validation set") == true, "\(reason ?? "")") }
    }

    @Test("recovery: an interrupted run is failed and its staging removed; one that died after publishing is completed")
    func recovery() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        try pipelines.index.startRun(id: "20260101T000000Z-dead", kind: .train, subject: "original")
        try FileManager.default.createDirectory(atPath: root.staging + "/20260101T000000Z-dead-train-original/processing", withIntermediateDirectories: true)
        try pipelines.recover()
        #expect(try pipelines.index.run("20260101T000000Z-dead")?.status == .failed)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.staging).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: root.runs + "/20260101T000000Z-dead-train-original"))

        // A run that published its folder but died before the index transaction: completed from its manifest.
        let (run, _) = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let folder = try #require(try pipelines.index.run(run)?.folder)
        try Fixture.unindex(run: run, in: pipelines, as: "status = 'running', folder = NULL, finished_at = NULL")
        try pipelines.recover()
        let recovered = try #require(try pipelines.index.run(run))
        #expect(recovered.status == .succeeded && recovered.folder == folder && recovered.modelVersion == 1)
        #expect(try pipelines.champion()?.version == 1)
    }

    @Test("inference without a champion is refused with what to do")
    func noChampion() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        do {
            _ = try Pipelines(root: root).infer(batch: root.productionInbox + "/batch-1")
            Issue.record("inferred without a model")
        } catch {
            #expect("\(error)".contains("dropline train"))
        }
    }
}

@Suite("Registry and ground truth")
struct RegistryTests {
    @Test("promote, roll back, and answer which model was champion at a time, with the reason")
    func registry() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        pipelines.policy.margin = -1  // never automatic after the first: every later version waits as a candidate
        try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let between = Index.now()
        try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let registry = Registry(index: pipelines.index)
        #expect(try registry.models().map(\.state) == [ModelState.champion, .candidate])
        try registry.promote(2, reason: "better on the new stage")
        #expect(try registry.models().map(\.state) == [ModelState.archived, .champion])
        #expect(throws: StoreError.self) { try registry.promote(2, reason: "again") }
        #expect(throws: StoreError.self) { try registry.promote(9, reason: "missing") }
        #expect(try registry.champion(at: between)?.version == 1)
        #expect(try registry.champion(at: Index.now())?.reason == "better on the new stage")
        #expect(try registry.rollback(reason: "worse in production") == 1)
        #expect(try registry.models().map(\.state) == [ModelState.champion, .archived])
        #expect(try registry.history(version: 1).map(\.toState) == [ModelState.candidate, .champion, .archived, .champion])
        #expect(try registry.champion(at: "2000-01-01T00:00:00Z") == nil)
    }

    @Test("labels are merged by path or hash; accuracy below the constraint writes a quality flag")
    func labels() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let names = ["red", "green", "blue"]
        // right labels by path for the first 12 images; for the rest deliberately wrong, by hash
        var lines = ["image,class"]
        for i in 0..<12 { lines.append("img \(i).png,\(names[i % 3])") }
        let hashes = try pipelines.sqlite.read { db in
            try [String: String](uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT path, image_sha256 FROM predictions").map { ($0["path"], $0["image_sha256"]) })
        }
        for i in 12..<24 { lines.append("\(hashes["inbox/production/batch-1/img \(i).png"]!),\(names[(i + 1) % 3])") }
        lines.append("missing.png,red")
        let file = root.labelsInbox + "/batch-1.csv"
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let result = try GroundTruth(root: root, index: pipelines.index).merge(labels: file)
        #expect(result.labelled == 24 && result.unmatched == ["missing.png"])
        #expect(result.accuracy <= 0.55)
        #expect(result.belowConstraint)
        #expect(FileManager.default.fileExists(atPath: root.flags("quality") + "/batch-1.json"))
        try pipelines.sqlite.read { (db: Database) throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM ground_truth") == 24)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM flags WHERE kind = 'quality'") == 1)
            #expect(try Int.fetchOne(db, sql: "SELECT below_constraint FROM quality") == 1)
        }
        try "image,label\nx,y".write(toFile: root.labelsInbox + "/batch-1.csv", atomically: true, encoding: .utf8)
        #expect(throws: StoreError.self) { try GroundTruth(root: root, index: pipelines.index).merge(labels: root.labelsInbox + "/batch-1.csv") }
    }

    @Test("a labels file as a spreadsheet saves it: byte-order mark, CRLF, quoted fields, extra columns in any order, another case, semicolons; errors name line and column")
    func spreadsheetLabels() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let names = ["red", "green", "blue"]
        let file = root.labelsInbox + "/batch-1.csv"
        func merge(_ text: String) throws -> GroundTruth.Result {
            try Data(text.utf8).write(to: URL(fileURLWithPath: file))
            return try GroundTruth(root: root, index: pipelines.index).merge(labels: file)
        }
        func refusal(_ text: String) -> String {
            do { _ = try merge(text); return "" } catch { return "\(error)" }
        }
        // Excel's CSV UTF-8: BOM, CRLF, a notes column first, the header capitalised, quotes where needed, a blank row at the end
        var excel = "\u{FEFF}Notes,Class,Image\r\n"
        for i in 0..<24 { excel += "\"seen, \"\"ok\"\"\",\(names[i % 3]),\"img \(i).png\"\r\n" }
        excel += ",,\r\n"
        let fromExcel = try merge(excel)
        #expect(fromExcel.labelled == 24 && fromExcel.unmatched.isEmpty)
        // a German-locale export with semicolons and a value with a decimal comma
        var german = "IMAGE;CLASS;Wert\r\n"
        for i in 0..<24 { german += "img \(i).png;\(names[i % 3]);0,5\r\n" }
        #expect(try merge(german).accuracy == fromExcel.accuracy)
        // mistakes, with where they are
        #expect(refusal("image,class\nimg 0.png,purple\n").contains("batch-1.csv:2:11: class 'purple'"))
        #expect(refusal("image,class\nimg 0.png\n").contains("batch-1.csv:2:1: this line has 1 field"))
        #expect(refusal("image,class\n\"img 0.png,red\n").contains("batch-1.csv:2:1: this quoted field is never closed"))
        #expect(refusal("picture,kind\nimg 0.png,red\n").contains("batch-1.csv:1:1: the header line must name an image column"))
        #expect(refusal("image,class\n,red\n").contains("batch-1.csv:2:1: no image on this line"))
        // a link in the labels inbox is never followed; a FIFO is refused without blocking
        try FileManager.default.removeItem(atPath: file)
        try "image,class\nimg 0.png,red\n".write(toFile: root.path + "/elsewhere.csv", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: file, withDestinationPath: root.path + "/elsewhere.csv")
        #expect(throws: (any Error).self) { try GroundTruth(root: root, index: pipelines.index).merge(labels: file) }
        try FileManager.default.removeItem(atPath: file)
        #expect(mkfifo(file, 0o644) == 0)
        #expect(throws: (any Error).self) { try GroundTruth(root: root, index: pipelines.index).merge(labels: file) }
        try FileManager.default.removeItem(atPath: file)
        try Data([0x69, 0x6D, 0x61, 0x67, 0x65, 0x2C, 0x63, 0x6C, 0x61, 0x73, 0x73, 0x0A, 0xE9, 0x2C, 0x72, 0x65, 0x64, 0x0A]).write(to: URL(fileURLWithPath: file))
        #expect(throws: StoreError.self) { try GroundTruth(root: root, index: pipelines.index).merge(labels: file) }  // Latin-1, not UTF-8
    }
}
