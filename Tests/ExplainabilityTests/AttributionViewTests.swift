import Explainability
import Imaging
import Testing

@Suite("The readable view of an attribution")
struct AttributionViewTests {
    @Test("per-pixel values are the signed sum over channels")
    func perPixel() {
        let values: [Float] = [1, -2, 0.5, 0, 3, 1, 1, 1, -4, 0, 0, 0]  // 3 channels of 2x2
        #expect(AttributionView.perPixel(values, width: 2, height: 2) == [0, -1, 1.5, 1])
    }

    @Test("smoothing keeps the mass of an interior spike and spreads it into a region")
    func smoothing() {
        var map = [Float](repeating: 0, count: 31 * 31)
        map[15 * 31 + 15] = 10
        let smoothed = AttributionView.smoothed(map, width: 31, height: 31, sigma: 2)
        #expect(abs(smoothed.reduce(0, +) - 10) < 1e-3)
        #expect(smoothed[15 * 31 + 15] < 10 && smoothed[15 * 31 + 17] > 0.1, "the spike became a blob")
        #expect(smoothed[15 * 31 + 15] > smoothed[15 * 31 + 18], "largest at the centre")
    }

    @Test("the fast smoothing gives the plain loop's values to the bit, for maps narrower than the kernel too")
    func fastSmoothing() {
        var generator = SystemRandomNumberGenerator()
        for (width, height, sigma) in [(224, 224, 14.0), (31, 17, 2.0), (5, 3, 14.0), (1, 9, 1.0), (64, 1, 0.5)] {
            let map = (0..<width * height).map { _ in Float.random(in: -1...1, using: &generator) }
            let fast = AttributionView.smoothed(map, width: width, height: height, sigma: sigma)
            let plain = AttributionView.naiveSmoothed(map, width: width, height: height, sigma: sigma)
            #expect(fast == plain, "\(width)x\(height), sigma \(sigma)")
        }
    }

    @Test("the colour scale is the 95th percentile a full sort gives, ties and one value included")
    func scaleBySelection() {
        for count in [1, 2, 19, 20, 21, 1000, 50176] {
            for distinct in [count, 3] {
                let map = (0..<count).map { _ in Float(Int.random(in: 0..<distinct)) * (Bool.random() ? 1 : -1) / 7 }
                let sorted = map.map(abs).sorted()
                let expected = max(sorted[min(count - 1, Int(Double(count) * 0.95))], 1e-12)
                #expect(AttributionView.scale(map) == expected, "\(count) values, \(distinct) distinct")
            }
        }
    }

    @Test("evidence for the class is red, against it blue, weak evidence not drawn; the view is at least 224 px")
    func colours() {
        var prepared = RGBImage(width: 32, height: 32)
        for i in 0..<prepared.pixels.count { prepared.pixels[i] = 128 }
        var perPixel = [Float](repeating: 0, count: 32 * 32)
        for y in 4..<12 { for x in 4..<12 { perPixel[y * 32 + x] = 1 } }      // for, top left
        for y in 20..<28 { for x in 20..<28 { perPixel[y * 32 + x] = -1 } }   // against, bottom right
        let (view, scale) = AttributionView.render(perPixel: perPixel, prepared: prepared)
        #expect(view.width == 224 && view.height == 224 && scale > 0)
        let forClass = view[56, 56], against = view[168, 168], neutral = view[168, 40]
        #expect(Int(forClass.r) > Int(forClass.b) + 60, "\(forClass)")
        #expect(Int(against.b) > Int(against.r) + 60, "\(against)")
        #expect(abs(Int(neutral.r) - Int(neutral.b)) < 4, "no evidence, no colour: \(neutral)")
    }
}
