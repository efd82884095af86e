import Imaging
import Randomness
import Testing

@Suite("Transforms")
struct TransformTests {
    let image = TestData.randomImage(width: 37, height: 23, seed: 11)

    @Test("flipping twice is the identity")
    func flipTwice() {
        #expect(image.flippedHorizontally().flippedHorizontally() == image)
        #expect(image.flippedVertically().flippedVertically() == image)
        #expect(image.flippedHorizontally() != image)
        #expect(image.flippedHorizontally()[0, 0] == image[36, 0])
        #expect(image.flippedVertically()[0, 0] == image[0, 22])
    }

    @Test("rotating by 360 degrees, or four quarter turns, is the identity")
    func rotateFull() {
        #expect(image.rotated(degrees: 360) == image)
        #expect(image.rotated(degrees: -720) == image)
        var turned = image
        for _ in 0..<4 { turned = turned.rotated(degrees: 90, expand: true) }
        #expect(turned == image)
    }

    @Test("rotation keeps the size unless expanded, and fills the corners")
    func rotateSize() {
        let gray = RGBImage(width: 40, height: 20, fill: RGB(100, 100, 100))
        let cut = gray.rotated(degrees: 30, fill: .white)
        #expect(cut.width == 40 && cut.height == 20)
        #expect(cut[0, 0] == .white && cut[20, 10] == RGB(100, 100, 100))
        let grown = gray.rotated(degrees: 30, expand: true)
        // Pillow: corners span x in [-2.32, 42.32] -> ceil - floor = 46; y in [-8.66, 28.66] -> 38
        #expect(grown.width == 46 && grown.height == 38)
    }

    @Test("resizing to the same size is the identity; a flat image stays flat")
    func resizeIdentity() {
        #expect(image.resized(to: Size(width: 37, height: 23)) == image)
        let flat = RGBImage(width: 50, height: 31, fill: RGB(7, 130, 250))
        for size in [Size(width: 7, height: 3), Size(width: 50, height: 5), Size(width: 120, height: 90), Size(width: 1, height: 1)] {
            let out = flat.resized(to: size)
            #expect(out == RGBImage(width: size.width, height: size.height, fill: RGB(7, 130, 250)), "\(size)")
        }
    }

    @Test("halving uses the widened triangle filter, as Pillow does")
    func halving() {
        // Pillow: Image.frombytes("L", (4, 1), bytes([0, 255, 0, 255])).resize((2, 1), BILINEAR) -> [109, 146]
        var row = RGBImage(width: 4, height: 1)
        row[1, 0] = .white
        row[3, 0] = .white
        let half = row.resized(to: Size(width: 2, height: 1))
        #expect(half[0, 0] == RGB(109, 109, 109) && half[1, 0] == RGB(146, 146, 146))
    }

    @Test("downscaling is antialiased: a fine stripe pattern becomes grey, not stripes")
    func antialiasing() {
        var stripes = RGBImage(width: 300, height: 10)
        for y in 0..<10 { for x in stride(from: 0, to: 300, by: 2) { stripes[x, y] = .white } }
        let small = stripes.resized(to: Size(width: 31, height: 10))
        #expect(small.pixels.allSatisfy { abs(Int($0) - 128) <= 10 })
    }

    @Test("resize-shorter-side keeps the aspect ratio; center crop takes the middle")
    func shorterSideAndCrop() {
        let wide = TestData.gradient(width: 500, height: 321)
        let r = wide.resized(shorterSide: 96)
        #expect(r.height == 96 && r.width == 150)
        let tall = TestData.gradient(width: 321, height: 500).resized(shorterSide: 96)
        #expect(tall.width == 96 && tall.height == 150)
        let crop = r.centerCropped(to: .square(96))
        #expect(crop.width == 96 && crop[0, 0] == r[27, 0])
        let both = wide.resizedAndCropped(to: Size(width: 64, height: 64))
        #expect(both.width == 64 && both.height == 64)
        #expect(wide.cropped(x: 10, y: 20, size: Size(width: 3, height: 2))[1, 1] == wide[11, 21])
    }

    @Test("blur keeps flat images flat and smooths noise; sigma 0 is the identity")
    func blur() {
        let flat = RGBImage(width: 20, height: 20, fill: RGB(10, 200, 90))
        #expect(flat.blurred(sigma: 2) == flat)
        #expect(image.blurred(sigma: 0) == image)
        let noisy = TestData.randomImage(width: 64, height: 64, seed: 5)
        func spread(_ i: RGBImage) -> Double {
            let mean = i.pixels.reduce(0) { $0 + Double($1) } / Double(i.pixels.count)
            return i.pixels.reduce(0) { $0 + abs(Double($1) - mean) } / Double(i.pixels.count)
        }
        #expect(spread(noisy.blurred(sigma: 2)) < spread(noisy) / 4)
    }

    @Test("noise has the requested standard deviation and is reproducible from its seed")
    func noise() {
        let gray = RGBImage(width: 100, height: 100, fill: RGB(128, 128, 128))
        var g1 = SeededGenerator(seed: 3), g2 = SeededGenerator(seed: 3)
        let a = gray.withGaussianNoise(sigma: 10, using: &g1)
        #expect(a == gray.withGaussianNoise(sigma: 10, using: &g2))
        let deviations = a.pixels.map { Double($0) - 128 }
        let sd = (deviations.map { $0 * $0 }.reduce(0, +) / Double(deviations.count)).squareRoot()
        #expect(abs(sd - 10) < 0.3)
    }

    @Test("brightness and contrast follow Pillow's ImageEnhance definitions")
    func enhance() {
        #expect(image.adjustingBrightness(1) == image)
        #expect(image.adjustingContrast(1) == image)
        #expect(image.adjustingBrightness(0).pixels.allSatisfy { $0 == 0 })
        let px = RGBImage(width: 1, height: 1, fill: RGB(100, 50, 200))
        #expect(px.adjustingBrightness(1.5)[0, 0] == RGB(150, 75, 255))
        // a single pixel's luma mean is itself, rounded: 0.299*100 + 0.587*50 + 0.114*200 = 82.15 -> 82
        #expect(px.adjustingContrast(0)[0, 0] == RGB(82, 82, 82))
    }

    @Test("random variants are reproducible from the seed and vary between draws")
    func randomVariants() {
        var a = SeededGenerator(seed: 8), b = SeededGenerator(seed: 8)
        let r1 = (0..<5).map { _ in image.randomlyRotated(upTo: 30, using: &a) }
        let r2 = (0..<5).map { _ in image.randomlyRotated(upTo: 30, using: &b) }
        #expect(r1 == r2)
        #expect(Set(r1.map(\.pixels)).count > 1)
        var c = SeededGenerator(seed: 1)
        let flips = (0..<200).map { _ in image.randomlyFlippedHorizontally(using: &c) == image ? 0 : 1 }.reduce(0, +)
        #expect(flips > 70 && flips < 130)
        var d = SeededGenerator(seed: 2)
        #expect(image.randomlyBlurred(sigma: 1...2, using: &d) != image)
        #expect(image.randomlyJittered(amount: 0.2, using: &d).width == image.width)
    }
}
