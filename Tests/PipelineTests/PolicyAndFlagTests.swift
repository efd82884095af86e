import DroplineSupport
import Foundation
import Pipeline
import Store
import Testing

@Suite("The promotion policy, as a value (no index)")
struct PromotionPolicyTests {
    let policy = PromotionPolicy()
    let candidate = PromotionPolicy.Candidate(version: 3, accuracy: 0.80, stage: "stage-2")

    @Test("the first model is promoted; a candidate within the margin is promoted, one below it is kept, with the figures in the reason")
    func decisions() {
        #expect(policy.decide(candidate: candidate, champion: nil, baseline: nil) == .promote(reason: "first model: no champion"))
        let champion = PromotionPolicy.Champion(version: 2, accuracy: 0.95)
        let kept = policy.decide(candidate: candidate, champion: champion, baseline: nil)
        #expect(kept == .keep(reason: "accuracy 0.8000 < champion v2's 0.9500 - margin 0.01, each on its own validation set"))
        let near = PromotionPolicy.Candidate(version: 3, accuracy: 0.945, stage: "stage-2")
        #expect(policy.decide(candidate: near, champion: champion, baseline: nil).promotes)
    }

    @Test("the champion measured on the candidate's validation set is what counts, when it is still the champion")
    func baseline() {
        let champion = PromotionPolicy.Champion(version: 2, accuracy: 0.95)
        let measured = PromotionPolicy.Baseline(version: 2, accuracy: 0.70)
        let decision = policy.decide(candidate: candidate, champion: champion, baseline: measured)
        #expect(decision == .promote(reason: "accuracy 0.8000 >= champion v2's 0.7000 - margin 0.01, on stage stage-2's validation set"))
        // a baseline of an older champion does not count
        let stale = PromotionPolicy.Baseline(version: 1, accuracy: 0.10)
        #expect(!policy.decide(candidate: candidate, champion: champion, baseline: stale).promotes)
        var strict = PromotionPolicy()
        strict.margin = 0
        #expect(!strict.decide(candidate: PromotionPolicy.Candidate(version: 3, accuracy: 0.6999, stage: "s"), champion: champion, baseline: measured).promotes)
    }
}

@Suite("Flags: one Codable writer and reader")
struct FlagFileTests {
    @Test("a drift flag is written atomically with the documented snake_case keys, and read back as it was")
    func driftFlag() throws {
        let root = try DroplineRoot.create(at: FileManager.default.temporaryDirectory.appendingPathComponent("dropline-flags-\(UUID().uuidString)").path)
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let flag = DriftFlag(batch: "b1", stage: "stage-2", batchPath: "production/stage-2/b1", run: "r1", modelVersion: 4, reason: "2 of 2 detectors",
                             detectors: [.init(name: "encoder", drift: true, minimumAdjustedPValue: 1e-9, maximumStatistic: 0.4)],
                             createdAt: "2026-12-01T00:00:00.000Z", batchesInARow: 2)
        let path = try FlagFiles.write(flag, kind: "drift", name: FlagFiles.name(batch: "b1", batchPath: "production/stage-2/b1"), in: root)
        #expect(path == root.flags("drift") + "/stage-2~b1.json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        #expect(Set(object.keys) == ["kind", "batch", "stage", "batch_path", "run", "model_version", "drift", "reason", "detectors", "created_at", "batches_in_a_row"])
        #expect(((object["detectors"] as? [[String: Any]])?.first?.keys).map(Set.init) == ["name", "drift", "minimum_adjusted_p_value", "maximum_statistic"])
        #expect(try FlagFiles.read(DriftFlag.self, from: path) == flag)
        let unstaged = DriftFlag(batch: "b2", run: "r2", modelVersion: 4, reason: "x", detectors: [], createdAt: "t", batchesInARow: 1)
        let second = try FlagFiles.write(unstaged, kind: "drift", name: FlagFiles.name(batch: "b2", batchPath: "production/b2"), in: root)
        #expect(second == root.flags("drift") + "/b2.json")
        let keys = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: second))) as? [String: Any]).keys
        #expect(!keys.contains("stage"), "a batch without a stage has no stage key, so retrain rules do not guess one")
    }
}
