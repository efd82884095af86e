import Foundation
import Imaging
import Monitoring
import Randomness
import Testing

@Suite("Accuracy under shift learned from shifted held-out images")
struct ShiftCalibrationTests {
    static func sets(count: Int = 16, seed: UInt64 = 3, _ accuracy: (Double) -> Double) -> [ShiftCalibration.MetaSet] {
        var g = SeededGenerator(seed: seed)
        return (0..<count).map { i in
            let c = 0.45 + 0.5 * g.nextUnitDouble()
            return .init(shift: "set \(i)", images: 100, accuracy: accuracy(c), confidence: c)
        }
    }

    @Test("pool-adjacent-violators: a non-decreasing map through the sets, linear between its knots, to chance below them and with slope 1 above")
    func isotonicMap() throws {
        // overconfident under shift: accuracy falls twice as fast as confidence, below 0.9
        let truth = { (c: Double) in c >= 0.9 ? c : max(0.1, c - 2 * (0.9 - c)) }
        let map = try #require(ShiftCalibration.fit(Self.sets(count: 24, truth), classes: 10))
        #expect(zip(map.knots, map.knots.dropFirst()).allSatisfy { $0.confidence < $1.confidence && $0.accuracy <= $1.accuracy })
        #expect(map.leaveOneOutError < map.confidenceOnlyError / 3, "\(map.leaveOneOutError) against \(map.confidenceOnlyError)")
        for c in stride(from: 0.5, through: 0.9, by: 0.05) {
            #expect(abs(map.estimate(confidence: c) - truth(c)) < 0.03, "at \(c): \(map.estimate(confidence: c)) against \(truth(c))")
        }
        let first = map.knots.first!, last = map.knots.last!
        #expect(abs(map.estimate(confidence: 0.1) - 0.1) < 1e-12, "chance confidence is chance accuracy")
        #expect(map.estimate(confidence: first.confidence) == first.accuracy)
        #expect(abs(map.estimate(confidence: last.confidence + 0.01) - min(1, last.accuracy + 0.01)) < 1e-12 && map.estimate(confidence: 1.5) == 1)
        // violators are pooled: two sets out of order become one knot at their means
        let pooled = try #require(ShiftCalibration.fit([
            .init(shift: "a", images: 10, accuracy: 0.2, confidence: 0.5), .init(shift: "b", images: 10, accuracy: 0.6, confidence: 0.6),
            .init(shift: "c", images: 10, accuracy: 0.4, confidence: 0.7), .init(shift: "d", images: 10, accuracy: 0.5, confidence: 0.75),
            .init(shift: "e", images: 10, accuracy: 0.55, confidence: 0.8), .init(shift: "f", images: 10, accuracy: 0.9, confidence: 0.95)], classes: 4))
        #expect(pooled.knots.count == 6 && pooled.knots[1] == ShiftCalibration.Knot(confidence: 0.6, accuracy: 0.5)
                && pooled.knots[2] == ShiftCalibration.Knot(confidence: 0.7, accuracy: 0.5),
                "\(pooled.knots)")
        #expect(pooled.estimate(confidence: 0.65) == 0.5)
    }

    @Test("the map is scikit-learn's isotonic regression inside the sets' range (scripts/make_isotonic_fixtures.py)", arguments: ["smooth", "noisy", "few"])
    func matchesScikitLearn(name: String) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/isotonic.json")
        let all = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: [String: [Double]]]
        let c = try #require(all[name])
        let sets = zip(c["confidence"]!, c["accuracy"]!).enumerated().map { ShiftCalibration.MetaSet(shift: "\($0.offset)", images: 100, accuracy: $0.element.1, confidence: $0.element.0) }
        let knots = ShiftCalibration.isotonic(sets)
        for (q, expected) in zip(c["queries"]!, c["predictions"]!) {
            let got = ShiftCalibration.map(knots, chance: 0.1, at: q)
            #expect(abs(got - expected) < 1e-12, "at \(q): \(got) against scikit-learn's \(expected)")
        }
        for (q, expected) in zip(c["confidence"]!, c["fitted"]!) { #expect(abs(ShiftCalibration.map(knots, chance: 0.1, at: q) - expected) < 1e-12) }
    }

    @Test("where confidence alone predicts the sets the map is not kept, nor with too few sets")
    func keepsConfidence() {
        var g = SeededGenerator(seed: 11)
        // calibrated under shift, up to sampling noise: confidence left out does better than any fit
        #expect(ShiftCalibration.fit(Self.sets { $0 + 0.03 * (g.nextUnitDouble() * 2 - 1) }, classes: 10) == nil)
        #expect(ShiftCalibration.fit(Self.sets(count: 5) { $0 / 2 }, classes: 10) == nil)
    }

    @Test("synthetic shifts are reproducible from their seed, named, and change the images")
    func syntheticShifts() {
        var g1 = SeededGenerator(seed: 5), g2 = SeededGenerator(seed: 5)
        var image = RGBImage(width: 48, height: 40)
        for i in image.pixels.indices { image.pixels[i] = UInt8(truncatingIfNeeded: i * 7 % 251) }
        var names: Set<String> = []
        for _ in 0..<12 {
            let a = SyntheticShift.random(using: &g1), b = SyntheticShift.random(using: &g2)
            #expect(a.description == b.description && !a.steps.isEmpty)
            names.insert(a.description)
            let x = a.apply(to: image, using: &g1), y = b.apply(to: image, using: &g2)
            #expect(x == y && x.width == 48 && x.height == 40)
        }
        #expect(names.count > 6, "\(names)")
        var g = SeededGenerator(seed: 1)
        let noisy = SyntheticShift(steps: [.noise(sigma: 30)]).apply(to: image, using: &g)
        let small = SyntheticShift(steps: [.lowResolution(scale: 0.25)]).apply(to: image, using: &g)
        #expect(noisy != image && small != image && small.width == 48)
        #expect(SyntheticShift(steps: [.rotation(maxDegrees: 40), .noise(sigma: 22)]).description == "rotation 40°, noise 22")
    }
}
