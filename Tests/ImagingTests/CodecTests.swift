import DroplineSupport
import Foundation
import Imaging
import Testing
import SystemFiles

@Suite("Codecs")
struct CodecTests {
    let photo = TestData.gradient(width: 120, height: 80)

    @Test("PNG round-trips exactly")
    func pngRoundTrip() throws {
        let noisy = TestData.randomImage(width: 33, height: 17, seed: 4)
        let decoded = try ImageDecoder.decode(try ImageEncoder.png(noisy))
        #expect(decoded.image == noisy)
        #expect(decoded.info.format == .png && decoded.info.channels == 3)
    }

    @Test("JPEG round-trips closely, and more closely at higher quality")
    func jpegRoundTrip() throws {
        let high = try ImageDecoder.decode(try ImageEncoder.jpeg(photo, quality: 95)).image
        let low = try ImageDecoder.decode(try ImageEncoder.jpeg(photo, quality: 20)).image
        #expect(high.meanAbsoluteDifference(photo) < 1.5)
        #expect(low.meanAbsoluteDifference(photo) > high.meanAbsoluteDifference(photo))
        #expect(try ImageEncoder.jpeg(photo, quality: 20).count < ImageEncoder.jpeg(photo, quality: 95).count)
    }

    @Test("files are written atomically: the result is complete and no temporary file remains")
    func atomicWrite() throws {
        let folder = try TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/out put ü.png"
        try ImageEncoder.write(photo, to: path)
        try ImageEncoder.write(photo.flippedHorizontally(), to: path)  // replaces
        #expect(try ImageDecoder.decode(file: path).image == photo.flippedHorizontally())
        try ImageEncoder.write(photo, to: folder + "/x.jpg", quality: 90)
        #expect(try ImageDecoder.decode(file: folder + "/x.jpg").info.format == .jpeg)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == ["out put ü.png", "x.jpg"])
        #expect(throws: SystemError.self) { try ImageEncoder.write(photo, to: folder + "/missing/x.png") }
    }

    @Test("a JPEG cut short is truncated; accepted on request it keeps the warning")
    func truncatedJPEG() throws {
        let bytes = try ImageEncoder.jpeg(TestData.randomImage(width: 64, height: 64, seed: 2), quality: 90)
        let cut = Array(bytes.prefix(bytes.count / 2))
        do {
            _ = try ImageDecoder.decode(cut)
            Issue.record("a truncated JPEG decoded")
        } catch {
            #expect(error.kind == .truncated)
        }
        var options = DecodeOptions()
        options.acceptTruncated = true
        #expect(try ImageDecoder.decode(cut, options: options).warnings.count == 1)
    }

    @Test("a PNG cut short is truncated; one with damaged data is corrupt")
    func damagedPNG() throws {
        let bytes = try ImageEncoder.png(TestData.randomImage(width: 64, height: 64, seed: 2))
        do {
            _ = try ImageDecoder.decode(Array(bytes.prefix(bytes.count / 2)))
            Issue.record("a truncated PNG decoded")
        } catch {
            #expect(error.kind == .truncated, "\(error)")
        }
        var damaged = bytes
        for i in 60..<90 { damaged[i] ^= 0x5A }
        do {
            _ = try ImageDecoder.decode(damaged)
            Issue.record("a damaged PNG decoded")
        } catch {
            #expect(error.kind == .corrupt, "\(error)")
            #expect(error.reason.hasPrefix("libpng: "))
        }
    }

    @Test("DCT scaling picks the smallest scale that still covers the target")
    func dctScaling() throws {
        let big = TestData.gradient(width: 800, height: 600)
        let bytes = try ImageEncoder.jpeg(big, quality: 92)
        for (side, denominator) in [(96, 4), (224, 2), (300, 2), (301, 1), (75, 8), (74, 8)] {
            var options = DecodeOptions()
            options.minimumSize = .square(side)
            let decoded = try ImageDecoder.decode(bytes, options: options)
            #expect(decoded.scaleDenominator == denominator, "side \(side)")
            #expect(decoded.image.width >= side && decoded.image.height >= side)
            // the reduced decode resized to the target is close to the full decode resized
            let fast = decoded.image.resized(to: .square(side))
            let full = try ImageDecoder.decode(bytes).image.resized(to: .square(side))
            #expect(fast.meanAbsoluteDifference(full) < 1.5, "side \(side)")
        }
    }

    @Test("a missing or unreadable file is unreadable, naming the file")
    func unreadable() {
        do {
            _ = try ImageDecoder.decode(file: "/nonexistent/photo.jpg")
            Issue.record("decoded a missing file")
        } catch {
            #expect(error.kind == .unreadable)
            #expect(error.file == "/nonexistent/photo.jpg")
            #expect(error.description.contains("/nonexistent/photo.jpg"))
        }
        #expect(ImageInspector.inspect(file: "/tmp").outcome == "unreadable")
    }
}
