import Foundation
import Imaging
import Testing

/// Every file in ../shared/bad-inputs gets the outcome its README table gives.
@Suite("Bad inputs", .enabled(if: TestData.sharedAvailable, Comment(rawValue: TestData.skipMessage)))
struct BadInputTests {
    /// file -> (outcome, format as detected, size after decoding or nil)
    static let table: [(String, String, String?, (Int, Int)?)] = [
        ("truncated-40pct.jpg", "truncated", "jpeg", nil),
        ("truncated-header.jpg", "truncated", "jpeg", nil),
        ("corrupt-middle.jpg", "corrupt", "jpeg", nil),
        ("zero-bytes.jpg", "empty", nil, nil),
        ("text-named.jpg", "unsupported", "text", nil),
        ("webp-named.png", "unsupported", "webp", nil),
        ("gif-image.gif", "unsupported", "gif", nil),
        ("png-named.jpg", "ok", "png", (500, 321)),
        ("cmyk.jpg", "ok", "jpeg", (500, 321)),
        ("progressive.jpg", "ok", "jpeg", (500, 321)),
        ("grayscale.jpg", "ok", "jpeg", (500, 321)),
        ("gray16.png", "ok", "png", (500, 321)),
        ("palette-alpha.png", "ok", "png", (500, 321)),
        ("rgba.png", "ok", "png", (500, 321)),
        ("one-pixel.png", "ok", "png", (1, 1)),
        ("exif-orientation-6.jpg", "ok", "jpeg", (500, 321)),  // stored 321x500, shown upright
        ("bomb-60000x60000.png", "too_large", "png", nil),
        ("bad-crc.png", "corrupt", "png", nil),
        ("photo with spaces ü.jpg", "ok", "jpeg", (160, 120)),
        ("._appledouble-sidecar.jpg", "junk", nil, nil),
        (".DS_Store", "junk", nil, nil),
        ("Thumbs.db", "junk", nil, nil),
    ]

    @Test("each bad input gets its documented outcome", arguments: table.map(\.0))
    func outcome(file: String) throws {
        let (_, outcome, format, size) = Self.table.first { $0.0 == file }!
        let path = TestData.sharedPath("bad-inputs/" + file)
        let record = ImageInspector.inspect(file: path, relative: file)
        #expect(record.outcome == outcome, "\(file): \(record.reason ?? "")")
        #expect(record.path == path, "the name survives intact")
        if outcome != "junk" { #expect(record.format == format) }
        if outcome != "ok" && outcome != "junk" {
            #expect(record.reason?.isEmpty == false)
            #expect(record.remedy?.isEmpty == false)
        }
        if let (w, h) = size {
            let decoded = try ImageDecoder.decode(file: path)
            #expect(decoded.image.width == w && decoded.image.height == h)
            // decoding to a small tensor size never divides by zero, even for one pixel
            let small = decoded.image.resized(to: .square(32))
            #expect(small.pixels.count == 32 * 32 * 3)
        }
    }

    @Test("the bomb is refused from its header with the claimed size, before decoding")
    func bomb() throws {
        let path = TestData.sharedPath("bad-inputs/bomb-60000x60000.png")
        let info = try ImageDecoder.info(file: path, options: { var o = DecodeOptions(); o.maxPixels = .max; return o }())
        #expect(info.width == 60000 && info.height == 60000)
        do {
            _ = try ImageDecoder.decode(file: path)
            Issue.record("the bomb decoded")
        } catch {
            #expect(error.kind == .tooLarge)
            #expect(error.reason.contains("60000x60000"))
            #expect(error.file == path)
        }
    }

    @Test("the pixel limit is configurable")
    func limit() throws {
        var options = DecodeOptions()
        options.maxPixels = 500 * 321 - 1
        #expect(throws: ImagingError.self) { try ImageDecoder.decode(file: TestData.sharedPath("bad-inputs/cmyk.jpg"), options: options) }
        options.maxPixels = 500 * 321
        _ = try ImageDecoder.decode(file: TestData.sharedPath("bad-inputs/cmyk.jpg"), options: options)
    }

    @Test("truncated JPEGs can be accepted on request, with the warning kept")
    func acceptTruncated() throws {
        var options = DecodeOptions()
        options.acceptTruncated = true
        let decoded = try ImageDecoder.decode(file: TestData.sharedPath("bad-inputs/truncated-40pct.jpg"), options: options)
        #expect(decoded.image.width == 500)
        #expect(decoded.warnings.first?.contains("Premature end") == true)
    }

    @Test("a whole folder is inspected, sorted, and junk is not counted as images")
    func folder() {
        let records = ImageInspector.inspect(paths: [TestData.sharedPath("bad-inputs")])
        let names = records.map { ($0.path as NSString).lastPathComponent }
        #expect(names == names.sorted())
        #expect(records.filter { $0.outcome == "junk" }.count == 3)
        #expect(records.filter { $0.outcome == "ok" }.count == 10)
    }
}
