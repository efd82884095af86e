import Foundation
import Testing

/// `dropline drift fit | check` and `dropline explain` run as a user would.
@Suite("dropline drift and explain", .enabled(if: Binary.path != nil, "the dropline executable was not built"))
struct DriftAndExplainCommandTests {
    @Test("fit on training images, check a batch to drift.json, explain a few images with heatmaps")
    func endToEnd() throws {
        let root = try ModelCommandTests.dataset()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let model = root + "/model"
        let train = try Binary.run(["model", "train", "--data", root, "--out", model, "--arch", "small-cnn", "--epochs", "2",
                                    "--image-size", "32", "--batch-size", "8"])
        #expect(train.status == 0, "\(train.stderr)")
        let artifacts = root + "/drift"
        let fit = try Binary.run(["drift", "fit", "--images", root + "/train", "--out", artifacts, "--model", model,
                                  "--holdout", root + "/validation"])
        #expect(fit.status == 0, "fit: \(fit.stderr)")
        #expect(FileManager.default.fileExists(atPath: artifacts + "/reference.safetensors"))
        let report = root + "/drift.json"
        let check = try Binary.run(["drift", "check", "--artifacts", artifacts, "--model", model, root + "/test", "--out", report, "--json"])
        #expect(check.status == 0, "\(check.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any]
        #expect(object?["drift"] is Bool)
        #expect((object?["detectors"] as? [[String: Any]])?.map { $0["name"] as? String } == ["encoder", "softmax"])
        #expect((object?["outliers"] as? [Any])?.count == 18)
        let missingModel = try Binary.run(["drift", "check", "--artifacts", artifacts, root + "/test"])
        #expect(missingModel.status != 0 && missingModel.stderr.contains("--model"))

        let out = root + "/explanations"
        let explain = try Binary.run(["explain", "--model", model, root + "/test", "--out", out, "--budget", "drift:\(report):3", "--steps", "8"])
        #expect(explain.status == 0, "\(explain.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: out)
        #expect(files.filter { $0.hasSuffix(".png") }.count == 3)
        #expect(files.contains("explanations.json"))
        let bad = try Binary.run(["explain", "--model", model, root + "/test", "--out", out, "--baseline", "grey"])
        #expect(bad.status == 64 && bad.stderr.contains("--baseline"))
    }
}
