import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// The four components, train then serve, chained by folders as a pipeline chains them.
@Suite("dropline component", .enabled(if: Binary.path != nil, "the dropline executable was not built"))
struct ComponentCommandTests {
    static func manifest(_ folder: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/manifest.json"))) as? [String: Any] ?? [:]
    }

    /// `dropline component <arguments>`, expected to succeed.
    func run(_ arguments: [String]) throws {
        let r = try Binary.run(["component"] + arguments)
        #expect(r.status == 0, "\(arguments.prefix(3)): \(r.stderr)")
    }

    @Test("every component in train and serve mode writes its outputs and a manifest")
    func chain() throws {
        let root = try ModelCommandTests.dataset()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try run(["processing", "--mode", "train", "--input", root, "--output", root + "/p-train", "--image-size", "32"])
        let processing = try Self.manifest(root + "/p-train")
        #expect((processing["outputs"] as? [String: String])?["processing/train"] == "train")
        // each training image plus its rotated copy
        let redTrain = try FileManager.default.contentsOfDirectory(atPath: root + "/p-train/train/red")
        #expect(redTrain.count == 32 && redTrain.filter { $0.hasSuffix(".rotated.png") }.count == 16)
        try run(["algorithm", "--mode", "train", "--input", root + "/p-train", "--output", root + "/a-train", "--arch", "small-cnn",
                 "--image-size", "32", "--epochs", "2"])
        #expect(FileManager.default.fileExists(atPath: root + "/a-train/model/content.sha256"))
        try run(["monitoring", "--mode", "train", "--input", root + "/train", "--input", root + "/validation",
                 "--model", root + "/a-train/model", "--output", root + "/m-train"])
        try run(["explainability", "--mode", "train", "--input", root + "/validation", "--model", root + "/a-train/model",
                 "--output", root + "/e-train", "--steps", "8", "--budget", "sample:2"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/e-train/explanations").filter { $0.hasSuffix(".png") }.count == 2)

        try run(["processing", "--mode", "serve", "--input", root + "/test", "--output", root + "/p-serve", "--image-size", "32"])
        try run(["algorithm", "--mode", "serve", "--input", root + "/p-serve", "--model", root + "/a-train/model", "--output", root + "/a-serve"])
        let predictions = try String(contentsOfFile: root + "/a-serve/predictions.csv", encoding: .utf8).split(separator: "\n")
        #expect(predictions.count == 19 && predictions[0] == "path,sha256,predicted,confidence,top1,p1,top2,p2,top3,p3")
        #expect(predictions[1].hasPrefix(root + "/test/"))
        try run(["monitoring", "--mode", "serve", "--input", root + "/test", "--artifacts", root + "/m-train/artifacts",
                 "--model", root + "/a-train/model", "--output", root + "/m-serve"])
        #expect(FileManager.default.fileExists(atPath: root + "/m-serve/drift.json"))
        // held-out images in class folders calibrate the artifacts as the training pipeline does, so the
        // component alone estimates the batch's accuracy too
        let artifacts = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/m-train/artifacts/drift.json"))) as? [String: Any]
        let validationImages = try FileManager.default.subpathsOfDirectory(atPath: root + "/validation").filter { $0.hasSuffix(".png") }.count
        #expect((artifacts?["calibration"] as? [String: Any])?["images"] as? Int == validationImages, "\(artifacts?["calibration"] ?? "no calibration")")
        let served = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/m-serve/drift.json"))) as? [String: Any]
        #expect((served?["estimate"] as? [String: Any])?["accuracy"] as? Double != nil, "\(served?["estimate"] ?? "no estimate")")
        try run(["explainability", "--mode", "serve", "--input", root + "/test", "--model", root + "/a-train/model",
                 "--output", root + "/e-serve", "--steps", "8", "--budget", "least-confident:3"])
        for folder in ["p-train", "a-train", "m-train", "e-train", "p-serve", "a-serve", "m-serve", "e-serve"] {
            let m = try Self.manifest(root + "/" + folder)
            #expect(m["outcome"] as? String == "succeeded" && (m["inputs"] as? [[String: Any]])?.isEmpty == false, "\(folder)")
        }
        let again = try Binary.run(["component", "algorithm", "--mode", "serve", "--input", root + "/p-serve", "--model",
                                    root + "/a-train/model", "--output", root + "/a-serve"])
        #expect(again.status != 0 && again.stderr.contains("not empty"))
    }

    @Test("monitoring labels its held-out images only by the model's own class folders: links and FIFOs are neither followed nor opened, and an unknown or hostile folder name leaves the artifacts uncalibrated")
    func holdoutLabels() throws {
        let root = try ModelCommandTests.dataset()
        defer { try? FileManager.default.removeItem(atPath: root) }
        func calibration(_ folder: String) throws -> [String: Any]? {
            let artifacts = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/artifacts/drift.json"))) as? [String: Any]
            return artifacts?["calibration"] as? [String: Any]
        }
        try run(["processing", "--mode", "train", "--input", root, "--output", root + "/p-train", "--image-size", "32"])
        try run(["algorithm", "--mode", "train", "--input", root + "/p-train", "--output", root + "/a-train", "--arch", "small-cnn",
                 "--image-size", "32", "--epochs", "2"])
        // a FIFO, a link to an image and a link to a class folder beside the 24 regular images
        let held = root + "/validation"
        #expect(mkfifo(held + "/red/pipe.png", 0o644) == 0)
        try FileManager.default.createSymbolicLink(atPath: held + "/red/link.png", withDestinationPath: root + "/train/red/00.png")
        try FileManager.default.createSymbolicLink(atPath: held + "/blue-again", withDestinationPath: held + "/blue")
        try run(["monitoring", "--mode", "train", "--input", root + "/train", "--input", held, "--model", root + "/a-train/model", "--output", root + "/m-links"])
        #expect(try calibration(root + "/m-links")?["images"] as? Int == 24, "only the regular files, labelled by their class folders")
        // a folder that is no class of the model, named to be run or to break lines: nothing is run, no calibration
        let hostile = held + "/$(touch \(root)/pwned)\nred"
        try FileManager.default.createDirectory(atPath: hostile, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: held + "/red/00.png", toPath: hostile + "/00.png")
        try run(["monitoring", "--mode", "train", "--input", root + "/train", "--input", held, "--model", root + "/a-train/model", "--output", root + "/m-odd"])
        #expect(try calibration(root + "/m-odd") == nil)
        #expect(!FileManager.default.fileExists(atPath: root + "/pwned"))
    }
}
