import Foundation
import Imaging
import Testing

/// Dropline's resize, rotate, blur and decoding against Pillow's outputs on real images. The
/// references come from scripts/make_imaging_fixtures.py; each case states its tolerance as a mean
/// absolute difference per sample, in grey levels.
@Suite("Pillow golden comparisons", .enabled(if: TestData.sharedAvailable, Comment(rawValue: TestData.skipMessage)))
struct PillowGoldenTests {
    struct Manifest: Decodable {
        struct Case: Decodable, CustomTestStringConvertible {
            var op: String
            var source: String
            var width: Int?
            var height: Int?
            var degrees: Double?
            var expand: Bool?
            var fill: [UInt8]?
            var sigma: Double?
            var expected: String
            var tolerance: Double
            var testDescription: String { "\(op) \(expected)" }
        }
        var cases: [Case]
    }

    static let cases: [Manifest.Case] = {
        let path = TestData.fixtures + "/pillow/fixtures.json"
        guard let data = FileManager.default.contents(atPath: path),
              let manifest = try? JSONDecoder().decode(Manifest.self, from: data) else { return [] }
        return manifest.cases
    }()

    @Test("the fixture manifest is present and covers every operation")
    func manifest() {
        #expect(Set(Self.cases.map(\.op)) == ["resize", "rotate", "blur", "decode"])
    }

    @Test("matches Pillow within the stated tolerance", arguments: cases)
    func compare(_ c: Manifest.Case) throws {
        let source = try ImageDecoder.decode(file: TestData.sharedPath(c.source)).image
        let expected = try ImageDecoder.decode(file: TestData.fixtures + "/pillow/" + c.expected).image
        let actual: RGBImage
        switch c.op {
        case "resize": actual = source.resized(to: Size(width: c.width!, height: c.height!))
        case "rotate":
            let fill = c.fill!
            actual = source.rotated(degrees: c.degrees!, fill: RGB(fill[0], fill[1], fill[2]), expand: c.expand!)
        case "blur": actual = source.blurred(sigma: c.sigma!)
        default: actual = source
        }
        try #require(actual.width == expected.width && actual.height == expected.height,
                     "size \(actual.width)x\(actual.height), Pillow \(expected.width)x\(expected.height)")
        let mad = actual.meanAbsoluteDifference(expected)
        #expect(mad <= c.tolerance, "\(c.expected): mean absolute difference \(mad) > \(c.tolerance)")
    }
}
