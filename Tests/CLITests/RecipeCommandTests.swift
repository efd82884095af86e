import DroplineSupport
import Foundation
import GRDB
import Testing

@Suite("Retraining with the champion's recipe", .enabled(if: Binary.path != nil, "the dropline executable was not built"), .serialized)
struct RecipeCommandTests {
    static func architecture(_ root: String, version: Int) throws -> (architecture: String, imageSize: Int, backbone: String?) {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + String(format: "/outputs/models/v%04d/model/model.json", version)))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let preprocessing = json["preprocessing"] as! [String: Any]
        let backbone = (json["backbone"] as? [String: Any])?["model_json"] as? String
        return (json["architecture"] as! String, preprocessing["image_size"] as! Int, backbone)
    }

    @Test("a root trained on the pretrained backbone and watched with no training flags retrains on the backbone, in seconds",
          .enabled(if: SharedMaterial.path("models/mobilenet_v2_0.35_224_tfjs/model.json") != nil, "../shared/models is absent: the backbone retraining test is skipped"))
    func backbone() throws {
        let backbone = try #require(SharedMaterial.path("models/mobilenet_v2_0.35_224_tfjs/model.json"))
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-recipe-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try Binary.run(["init", root]).status == 0)
        try WatchDaemonTests.writeTrainingData(root, seed: 3)
        let first = try Binary.run(["train", root, "--stage", "original", "--arch", "backbone:" + backbone, "--epochs", "5"])
        #expect(first.status == 0, "\(first.stderr)")
        try Data("{}".utf8).write(to: URL(fileURLWithPath: root + "/flags/retrain/original.json"))
        let started = Date()
        let watch = try Binary.run(["watch", root, "--once"])
        #expect(watch.status == 0, "\(watch.stderr)")
        #expect(Date().timeIntervalSince(started) < 240, "a backbone retraining takes seconds, not the scratch network's minutes")
        let second = try Self.architecture(root, version: 2)
        #expect(second.architecture == "backbone" && second.imageSize == 224 && second.backbone == backbone, "\(second)")
        let log = try String(contentsOfFile: root + "/logs/watch.log", encoding: .utf8)
        #expect(log.contains("with the recipe of champion v1"), "\(log)")
        let epochs = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/outputs/models/v0002/model/model.json"))) as! [String: Any]
        #expect((epochs["configuration"] as! [String: Any])["epochs"] as? Int == 5, "the champion's epochs, not the backbone default of 60")
    }

    @Test("the rule's train options change the recipe; watch's flags apply before them; `dropline train` without --arch takes the champion's")
    func overrides() throws {
        let root = try WatchDaemonTests.trainedRoot(seed: 5)  // small-cnn at 32 px, 2 epochs
        defer { try? FileManager.default.removeItem(atPath: root) }
        // without --arch: the champion's recipe, not scratch at 96 px
        let byHand = try Binary.run(["train", root, "--stage", "original"])
        #expect(byHand.status == 0 && byHand.stderr.contains("training with the recipe of champion v1"), "\(byHand.stderr)")
        #expect(try Self.architecture(root, version: 2).architecture == "small-cnn" && Self.architecture(root, version: 2).imageSize == 32)
        // a rule asking for 40 px, and watch's --epochs 1 under it
        var rules = try String(contentsOfFile: root + "/rules.yaml", encoding: .utf8)
        rules = rules.replacingOccurrences(of: "stage: \"{stage}\"\n", with: "stage: \"{stage}\"\n          image_size: 40\n")
        try rules.write(toFile: root + "/rules.yaml", atomically: true, encoding: .utf8)
        #expect(try Binary.run(["rules", "check", root]).status == 0)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: root + "/flags/retrain/original.json"))
        let watch = try Binary.run(["watch", root, "--once", "--epochs", "1"])
        #expect(watch.status == 0, "\(watch.stderr)")
        let third = try Self.architecture(root, version: 3)
        #expect(third.architecture == "small-cnn" && third.imageSize == 40, "\(third)")
        let log = try String(contentsOfFile: root + "/logs/watch.log", encoding: .utf8)
        #expect(log.contains(", with 1 epochs, with 40 px") && log.contains("with the recipe of champion v"), "\(log)")
    }

    @Test("init --backbone copies the backbone into the root and makes it the recipe; config shows it; a first training needs no flags",
          .enabled(if: SharedMaterial.path("models/mobilenet_v2_0.35_224_tfjs/model.json") != nil, "../shared/models is absent: the backbone test is skipped"))
    func initWithBackbone() throws {
        let backbone = try #require(SharedMaterial.path("models/mobilenet_v2_0.35_224_tfjs/model.json"))
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-config-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let created = try Binary.run(["init", root, "--backbone", backbone])
        #expect(created.status == 0, "\(created.stderr)")
        let copy = root + "/backbones/mobilenet_v2_0.35_224_tfjs"
        let shards = try FileManager.default.contentsOfDirectory(atPath: copy).filter { $0.hasSuffix(".bin") }
        #expect(FileManager.default.fileExists(atPath: copy + "/model.json") && !shards.isEmpty)
        let shown = try Binary.run(["config", root, "--json"])
        #expect(shown.status == 0 && shown.stdout.contains("backbone:backbones/mobilenet_v2_0.35_224_tfjs/model.json") && shown.stdout.contains("\"source\" : \"dropline.yaml\""), "\(shown.stdout)")
        try WatchDaemonTests.writeTrainingData(root, seed: 4)
        let trained = try Binary.run(["train", root, "--stage", "original", "--epochs", "3"])
        #expect(trained.status == 0 && trained.stderr.contains("(dropline.yaml)"), "\(trained.stderr)")
        let model = try Self.architecture(root, version: 1)
        #expect(model.architecture == "backbone" && model.backbone == root + "/backbones/mobilenet_v2_0.35_224_tfjs/model.json", "\(model)")
    }

    @Test("init --backbone refuses a manifest naming a weight shard outside its folder, and a link for a shard; nothing is copied")
    func backboneEscapes() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-bb-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let folder = scratch + "/bb"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: scratch + "/secret.bin"))
        func manifest(_ shard: String) throws {
            try #"{"format": "layers-model", "weightsManifest": [{"paths": ["\#(shard)"], "weights": []}]}"#.write(toFile: folder + "/model.json", atomically: true, encoding: .utf8)
        }
        try manifest("../secret.bin")
        let escaped = try Binary.run(["init", scratch + "/root1", "--backbone", folder + "/model.json"])
        #expect(escaped.status != 0 && escaped.stderr.contains("not a file beside it"), "\(escaped.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch + "/root1/backbones/bb/secret.bin"))
        try manifest("shard.bin")
        try FileManager.default.createSymbolicLink(atPath: folder + "/shard.bin", withDestinationPath: scratch + "/secret.bin")
        let linked = try Binary.run(["init", scratch + "/root2", "--backbone", folder + "/model.json"])
        #expect(linked.status != 0, "a link for a shard is not followed: \(linked.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch + "/root2/backbones/bb/shard.bin"))
    }

    @Test("an invalid configuration is refused with its place by config and by watch; the watch settings come from it")
    func configurationFile() throws {
        let root = try WatchDaemonTests.trainedRoot(seed: 6)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "version: 1\nwatch:\n  jobs: many\n".write(toFile: root + "/dropline.yaml", atomically: true, encoding: .utf8)
        let checked = try Binary.run(["config", root])
        #expect(checked.status == 1 && checked.stderr.contains(root + "/dropline.yaml:3:9: jobs is a whole number"), "\(checked.stderr)")
        let watch = try Binary.run(["watch", root, "--once"])
        #expect(watch.status != 0 && watch.stderr.contains("dropline.yaml:3:9"), "\(watch.stderr)")
        // a marker named in the configuration completes a batch at once
        try "version: 1\nwatch:\n  marker: DONE\n".write(toFile: root + "/dropline.yaml", atomically: true, encoding: .utf8)
        let batch = root + "/inbox/production/b1"
        try FileManager.default.createDirectory(atPath: batch, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: root + "/inbox/training/original/validation/red/0.png", toPath: batch + "/a.png")
        try FileManager.default.copyItem(atPath: root + "/inbox/training/original/validation/blue/0.png", toPath: batch + "/b.png")
        try Data().write(to: URL(fileURLWithPath: batch + "/DONE"))
        let served = try Binary.run(["watch", root, "--once"])
        #expect(served.status == 0, "\(served.stderr)")
        let log = try String(contentsOfFile: root + "/logs/watch.log", encoding: .utf8)
        #expect(log.contains("batch production/b1 landed (marker, 2 file(s))"), "\(log)")
    }

}
