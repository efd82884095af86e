import Explainability
import Foundation
import Imaging
import Modeling
import Pipeline
import Store
import Testing

@Suite("Explanations that spend their passes where the images need them")
struct AdaptiveExplanationTests {
    @Test("every image at the base steps, then the worst deltas again at twice the steps, within the set's passes")
    func budget() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let classifier = try Classifier(model: root.path + "/" + (try #require(try pipelines.champion())).folder + "/model")
        let collection = ImageCollection(paths: [root.productionInbox + "/batch-1"], side: classifier.preprocessing.imageSize)
        let predictions = try classifier.predict(collection.images)
        let candidates = (0..<6).map { i in
            Explainer.Candidate(prepared: collection.images[i], prediction: predictions[i], path: collection.items[i].path, sha256: nil, seed: UInt64(i))
        }
        let folder = root.path + "/explanations"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let explainer = try Explainer(classifier: classifier)
        explainer.steps = 2  // coarse on purpose, so that deltas are large
        let plain = try explainer.explainAll(candidates, folder: folder)
        #expect(plain.map(\.steps) == Array(repeating: 2, count: 6))
        explainer.adaptive = true
        explainer.passesPerImage = 3  // 6 spare passes: room for one re-attribution at 4 steps
        let adaptive = try explainer.explainAll(candidates, folder: folder)
        let refined = adaptive.indices.filter { adaptive[$0].steps == 4 }
        let over = plain.indices.filter { plain[$0].relativeDelta >= explainer.tolerance }
        #expect(refined.count <= 1, "one spare re-attribution")
        if over.isEmpty { #expect(refined.isEmpty) }
        if let worst = over.max(by: { plain[$0].relativeDelta < plain[$1].relativeDelta }), let first = refined.first {
            #expect(first == worst, "the worst delta goes first")
            #expect(adaptive[first].relativeDelta < plain[first].relativeDelta)
        }
        #expect(FileManager.default.fileExists(atPath: folder + "/0006.png") && FileManager.default.fileExists(atPath: folder + "/0006.json"))
        // one image per core or one at a time: the same choices and, within rounding, the same attributions
        for workers in [1, 3] {
            explainer.workers = workers
            let again = try explainer.explainAll(candidates, folder: folder)
            #expect(again.map(\.steps) == adaptive.map(\.steps), "\(workers) workers")
            for (a, b) in zip(again, adaptive) {
                #expect(abs(a.attributionSum - b.attributionSum) <= 1e-4 * max(1, abs(b.attributionSum)), "\(workers) workers: \(a.attributionSum) against \(b.attributionSum)")
                #expect(abs(a.outputAtInput - b.outputAtInput) <= 1e-4 * max(1, abs(b.outputAtInput)))
            }
        }

        // the nested rule: rounds that add points to an image's, within the set's points
        explainer.workers = 2
        explainer.method = .cosineTrapezoid
        explainer.steps = 3
        explainer.adaptive = false
        let coarse = try explainer.explainAll(candidates, folder: folder)
        explainer.adaptive = true
        explainer.passesPerImage = 8  // 48 points for the set: 18 at first, 30 for refinements
        let nested = try explainer.explainAll(candidates, folder: folder)
        let spent = nested.reduce(0) { $0 + $1.steps }
        #expect(spent <= 48, "\(nested.map(\.steps))")
        #expect(nested.allSatisfy { [3, 7, 15, 31].contains($0.steps) })
        #expect(coarse.allSatisfy { $0.relativeDelta < explainer.tolerance } || nested.contains { $0.steps > 3 }, "30 points left: a refinement fits")
        for (first, final) in zip(coarse, nested) where first.relativeDelta < explainer.tolerance {
            #expect(final.steps == 3, "an image under the tolerance is not refined")
        }
        // it stops only when no image over the tolerance has a refinement that fits the points left
        for image in nested where image.relativeDelta >= explainer.tolerance {
            #expect(image.steps + 1 > 48 - spent, "\(nested.map(\.steps)), deltas \(nested.map(\.relativeDelta))")
        }
        // a refined image is attributed as by its finer rule computed whole
        explainer.adaptive = false
        for steps in Set(nested.map(\.steps)).subtracting([3]) {
            explainer.steps = steps
            let whole = try explainer.explainAll(candidates, folder: folder)
            for (a, b) in zip(nested, whole) where a.steps == steps {
                #expect(abs(a.attributionSum - b.attributionSum) <= 1e-4 * max(1, abs(b.attributionSum)), "\(steps) points")
                #expect(abs(a.delta - b.delta) <= 1e-4 * max(1, abs(b.outputAtInput - b.outputAtBaseline)))
            }
        }
        explainer.steps = 3
        explainer.adaptive = true
        explainer.workers = 1
        #expect(try explainer.explainAll(candidates, folder: folder).map(\.steps) == nested.map(\.steps), "one worker chooses as two")
    }
}

@Suite("Processed images written only when asked")
struct KeepProcessedTests {
    @Test("train and infer keep the resized images in memory; --keep-processed writes them; the run folders list every input either way")
    func keep() throws {
        let root = try Fixture.root()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let pipelines = try Pipelines(root: root)
        let (trained, _) = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let batch = root.productionInbox + "/batch-1"
        let (served, _) = try pipelines.infer(batch: batch)
        func folder(_ run: String) throws -> String { root.path + "/" + (try #require(try pipelines.index.run(run)?.folder)) }
        let fm = FileManager.default
        #expect(try fm.contentsOfDirectory(atPath: folder(trained) + "/processing") == ["manifest.json"])
        #expect(try fm.contentsOfDirectory(atPath: folder(served) + "/processing").sorted() == ["files.csv", "manifest.json"])
        let lines = try String(contentsOfFile: folder(served) + "/processing/files.csv", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 25 && lines.dropFirst().allSatisfy { $0.hasPrefix(",") }, "24 usable images listed, none written")
        pipelines.keepProcessedImages = true
        let (kept, _) = try pipelines.infer(batch: batch)
        #expect(try fm.contentsOfDirectory(atPath: folder(kept) + "/processing/images").count == 24)
        let (keptTraining, _) = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let train = try fm.subpathsOfDirectory(atPath: folder(keptTraining) + "/processing/train").filter { $0.hasSuffix(".png") }
        #expect(!train.isEmpty && train.filter { $0.hasSuffix(".rotated.png") }.count * 2 == train.count, "each training image and its rotated copy")
    }
}
