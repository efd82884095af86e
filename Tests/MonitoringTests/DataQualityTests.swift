import Foundation
import Imaging
import Modeling
import Monitoring
import Randomness
import Testing

/// Data quality, end to end from files: images written as JPEG or PNG, read by the same loader the
/// pipelines use (their facts: header, file size, pixel measures), a baseline fitted and batches checked.
@Suite("Data quality: a baseline learned from raw training images, and batches checked against it")
struct DataQualityTests {
    static func folder(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-quality-\(UUID().uuidString)/\(name)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Removes a folder made by `folder` with its parent.
    static func discard(_ path: String) {
        try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
    }

    /// A textured colour picture: smooth colour gradients with noise, as photos have.
    static func photo(seed: UInt64, width: Int, height: Int) -> RGBImage {
        var g = SeededGenerator(seed: seed)
        var image = RGBImage(width: width, height: height)
        let r0 = Double(g.next() % 120) + 60, g0 = Double(g.next() % 120) + 40, b0 = Double(g.next() % 120) + 20
        for y in 0..<height {
            for x in 0..<width {
                func c(_ base: Double, _ slope: Double) -> UInt8 {
                    UInt8(max(0, min(255, base + slope * Double(x - y) / Double(width) + 30 * g.nextGaussian())))
                }
                image[x, y] = RGB(c(r0, 60), c(g0, -40), c(b0, 30))
            }
        }
        return image
    }

    @discardableResult
    static func write(_ images: [RGBImage], in folder: String, format: ImageEncoder.Format = .jpeg, prefix: String = "img") throws -> [String] {
        try images.enumerated().map { n, image in
            let path = folder + String(format: "/\(prefix)-%03d.", n) + (format == .jpeg ? "jpg" : "png")
            try ImageEncoder.write(image, to: path, format: format)
            return path
        }
    }

    /// 30 training photos, 80 to 109 px wide and 80 high, colour JPEG, and the baseline beside them
    /// (the caller discards both: `discard(baseline.statistics.trainingData[0])`).
    static func baseline() throws -> (DataQualityBaseline, ImageCollection) {
        let training = try folder("train")
        try write((0..<30).map { photo(seed: UInt64($0), width: 80 + $0, height: 80) }, in: training)
        let collection = ImageCollection(paths: [training], side: 64, facts: true)
        let baseline = try DataQualityBaseline.fit(facts: collection.facts, sha256s: collection.items.map(\.sha256), refused: collection.rejected.count,
                                                   trainingData: [training], trainingDataSha256: collection.contentHash,
                                                   to: (training as NSString).deletingLastPathComponent + "/quality")
        return (baseline, collection)
    }

    static func check(_ baseline: DataQualityBaseline, _ folder: String, limits: QualityLimits? = nil) -> QualityReport {
        let batch = ImageCollection(paths: [folder], side: 64, facts: true)
        return baseline.check(batch: "b", facts: batch.facts, paths: batch.items.map(\.path), sha256s: batch.items.map(\.sha256),
                              refused: batch.rejected.map(\.path), limits: limits)
    }

    @Test("pixel measures: a grey frame has no contrast, sharpness or saturation; pure red is saturated; a checkerboard's Laplacian variance is 16")
    func measures() {
        let grey = ImageMeasures(RGBImage(width: 64, height: 64, fill: RGB(128, 128, 128)))
        #expect(abs(grey.brightness - 128.0 / 255) < 1e-12 && grey.contrast < 1e-12 && grey.sharpness < 1e-12 && grey.saturation == 0)
        let red = ImageMeasures(RGBImage(width: 64, height: 64, fill: RGB(255, 0, 0)))
        #expect(abs(red.saturation - 1) < 1e-12 && abs(red.brightness - 0.299) < 1e-12)
        var board = RGBImage(width: 64, height: 64)
        for y in 0..<64 { for x in 0..<64 where (x + y) % 2 == 0 { board[x, y] = RGB(255, 255, 255) } }
        let b = ImageMeasures(board)
        #expect(abs(b.contrast - 0.5) < 1e-9 && abs(b.sharpness - 16) < 1e-9 && abs(b.brightness - 0.5) < 1e-9)
    }

    @Test("the statistics hold numpy's linear quantiles, the shares and rates; the files are hashed, a changed file is refused and a missing baseline is none")
    func statistics() throws {
        let (baseline, _) = try Self.baseline()
        defer { Self.discard(baseline.statistics.trainingData[0]) }
        let s = baseline.statistics
        #expect(s.images == 30 && s.refused == 0 && s.duplicateRate == 0 && s.refusalRate == 0)
        let width = try #require(s.numeric["width"])
        // numpy.quantile(range(80, 110), [0.25, 0.5, 0.995]) = 87.25, 94.5, 108.855
        #expect(abs(width.quantiles["0.25"]! - 87.25) < 1e-9 && abs(width.quantiles["0.5"]! - 94.5) < 1e-9 && abs(width.quantiles["0.995"]! - 108.855) < 1e-9)
        #expect(width.minimum == 80 && width.maximum == 109 && abs(width.mean - 94.5) < 1e-12)
        #expect(s.categorical["format"] == ["jpeg": 1] && s.categorical["channels"] == ["3": 1])
        // widened by at least a factor of two from the 0.5% and 99.5% quantiles
        let range = try #require(baseline.constraints.ranges["width"])
        #expect(abs(range.minimum - 80.145 / 2) < 1e-9 && abs(range.maximum - 108.855 * 2) < 1e-9)
        let folder = (s.trainingData[0] as NSString).deletingLastPathComponent + "/quality"
        let loaded = try #require(try DataQualityBaseline.load(folder))
        #expect(loaded.statistics == s && loaded.constraints == baseline.constraints && loaded.contentHash == baseline.contentHash)
        var text = try String(contentsOfFile: folder + "/constraints.json", encoding: .utf8)
        text = text.replacingOccurrences(of: "\"out_of_range_share\" : 0.05", with: "\"out_of_range_share\" : 0.9")
        try text.write(toFile: folder + "/constraints.json", atomically: true, encoding: .utf8)
        #expect(throws: MonitoringError.self) { try DataQualityBaseline.load(folder) }
        #expect(try DataQualityBaseline.load(folder + "-none") == nil)
        // too few images for a baseline: an error naming the folder
        let few = try Self.folder("few")
        defer { Self.discard(few) }
        try Self.write((0..<5).map { Self.photo(seed: UInt64($0), width: 90, height: 80) }, in: few)
        let c = ImageCollection(paths: [few], side: 64, facts: true)
        #expect { try DataQualityBaseline.fit(facts: c.facts, sha256s: c.items.map(\.sha256), refused: 0, trainingData: [few], trainingDataSha256: c.contentHash,
                                              to: few + "-quality") } throws: { "\($0)".contains(few) && "\($0)".contains("at least 20") }
    }

    @Test("a baseline whose files are links, FIFOs or missing is refused, naming the file and the remedy; nothing is read through a link")
    func untrustedBaselineFiles() throws {
        let (baseline, _) = try Self.baseline()
        defer { Self.discard(baseline.statistics.trainingData[0]) }
        let folder = (baseline.statistics.trainingData[0] as NSString).deletingLastPathComponent + "/quality"
        let statistics = folder + "/statistics.json"
        let kept = folder + "/statistics.kept"
        try FileManager.default.moveItem(atPath: statistics, toPath: kept)
        // missing
        #expect { try DataQualityBaseline.load(folder) } throws: { "\($0)".contains("statistics.json") && "\($0)".contains("train the model version again") }
        // a link to the real file: not followed
        try FileManager.default.createSymbolicLink(atPath: statistics, withDestinationPath: kept)
        #expect { try DataQualityBaseline.load(folder) } throws: { "\($0)".contains("statistics.json") }
        try FileManager.default.removeItem(atPath: statistics)
        // a FIFO: refused without blocking
        #expect(mkfifo(statistics, 0o644) == 0)
        #expect { try DataQualityBaseline.load(folder) } throws: { "\($0)".contains("statistics.json") }
        try FileManager.default.removeItem(atPath: statistics)
        try FileManager.default.moveItem(atPath: kept, toPath: statistics)
        #expect(try DataQualityBaseline.load(folder)?.contentHash == baseline.contentHash)
    }

    @Test("a batch like the training images passes, with every property summarised")
    func familiar() throws {
        let (baseline, _) = try Self.baseline()
        defer { Self.discard(baseline.statistics.trainingData[0]) }
        let batch = try Self.folder("familiar")
        defer { Self.discard(batch) }
        try Self.write((100..<120).map { Self.photo(seed: UInt64($0), width: 85 + $0 % 20, height: 80) }, in: batch)
        let report = Self.check(baseline, batch)
        #expect(report.passed, "\(report.violations.map(\.detail))")
        #expect(report.properties.map(\.property) == QualityProperty.allCases.map(\.rawValue) && report.images == 20 && report.baseline == baseline.contentHash)
    }

    @Test("thumbnails break the width, height and file-size ranges, naming every image; a looser limit lets them pass; one thumbnail in 40 is summarised, not a violation")
    func thumbnails() throws {
        let (baseline, _) = try Self.baseline()
        defer { Self.discard(baseline.statistics.trainingData[0]) }
        let batch = try Self.folder("thumbs")
        defer { Self.discard(batch) }
        let paths = try Self.write((0..<12).map { Self.photo(seed: UInt64($0), width: 20, height: 20) }, in: batch)
        let report = Self.check(baseline, batch)
        let width = try #require(report.violations.first { $0.property == "width" })
        #expect(width.check == "range" && width.observed == 1 && width.allowed == 0.05 && width.count == 12 && Set(width.images) == Set(paths))
        #expect(width.detail.contains("12 of 12 images") && width.detail.contains("below"))
        #expect(Set(report.violations.map(\.property)).isSuperset(of: ["width", "height", "file_size"]))
        var loose = QualityLimits()
        loose.outOfRangeShare = 1
        #expect(Self.check(baseline, batch, limits: loose).violations.allSatisfy { $0.check != "range" })

        let mixed = try Self.folder("mixed")
        defer { Self.discard(mixed) }
        try Self.write((200..<239).map { Self.photo(seed: UInt64($0), width: 90, height: 80) }, in: mixed)
        try Self.write([Self.photo(seed: 1, width: 20, height: 20)], in: mixed, prefix: "thumb")
        let one = Self.check(baseline, mixed)
        #expect(one.passed && one.properties.first { $0.property == "width" }?.outOfRange == 1)
    }

    @Test("blank frames break contrast and sharpness and are duplicates of each other")
    func blank() throws {
        let (baseline, _) = try Self.baseline()
        defer { Self.discard(baseline.statistics.trainingData[0]) }
        let batch = try Self.folder("blank")
        defer { Self.discard(batch) }
        let frames = (0..<10).map { (n: Int) -> RGBImage in
            let level = UInt8(10 + n)
            return RGBImage(width: 90, height: 80, fill: RGB(level, level, level))
        }
        try Self.write(frames, in: batch)
        let report = Self.check(baseline, batch)
        let broken = Set(report.violations.map(\.property))
        #expect(broken.isSuperset(of: ["contrast", "sharpness", "duplicates"]), "\(broken)")
        let duplicates = try #require(report.violations.first { $0.check == "duplicate_rate" })
        #expect(duplicates.observed == 0.9 && duplicates.count == 10)
    }

    @Test("another format is a share violation; grayscale photos break the colour model and channel shares")
    func categories() throws {
        let (baseline, _) = try Self.baseline()
        defer { Self.discard(baseline.statistics.trainingData[0]) }
        let png = try Self.folder("png")
        defer { Self.discard(png) }
        try Self.write((300..<310).map { Self.photo(seed: UInt64($0), width: 90, height: 80) }, in: png, format: .png)
        let format = try #require(Self.check(baseline, png).violations.first { $0.property == "format" })
        #expect(format.check == "share" && format.observed == 1)
        #expect(abs(format.allowed - 0.1) < 1e-12)
        #expect(format.detail.contains("never seen in the training images"))

        let shared = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/bad-inputs/grayscale.jpg").path
        guard FileManager.default.fileExists(atPath: shared) else {
            print("skipped the grayscale half: ../shared/bad-inputs/grayscale.jpg is absent")
            return
        }
        let gray = try Self.folder("gray")
        defer { Self.discard(gray) }
        for n in 0..<5 { try FileManager.default.copyItem(atPath: shared, toPath: gray + "/g\(n).jpg") }
        let report = Self.check(baseline, gray)
        #expect(report.violations.contains { $0.property == "color_model" && $0.check == "share" && $0.detail.contains("grayscale") })
        #expect(report.violations.contains { $0.property == "channels" && $0.detail.contains("channels 1") })
    }

    @Test("files that cannot be used, beyond the training rate by more than chance, are a refusal violation naming them; one in seven is not")
    func refusals() throws {
        let (baseline, _) = try Self.baseline()
        defer { Self.discard(baseline.statistics.trainingData[0]) }
        let batch = try Self.folder("refused")
        defer { Self.discard(batch) }
        try Self.write((400..<416).map { Self.photo(seed: UInt64($0), width: 90, height: 80) }, in: batch)
        for n in 0..<6 { _ = FileManager.default.createFile(atPath: batch + "/broken-\(n).jpg", contents: Data("not a jpeg".utf8)) }
        let report = Self.check(baseline, batch)
        let refused = try #require(report.violations.first { $0.check == "refusal_rate" })
        #expect(abs(refused.observed - 6.0 / 22) < 1e-12 && refused.count == 6 && refused.images.allSatisfy { $0.contains("broken-") })
        #expect(report.refused == 6 && report.images == 16 && (refused.pValue ?? 1) < 0.01)
        // one broken file in seven is 14%, above the 5% allowed, but well within chance (p 0.30)
        let small = try Self.folder("one-in-seven")
        defer { Self.discard(small) }
        try Self.write((500..<506).map { Self.photo(seed: UInt64($0), width: 90, height: 80) }, in: small)
        _ = FileManager.default.createFile(atPath: small + "/broken.jpg", contents: Data("not a jpeg".utf8))
        #expect(Self.check(baseline, small).passed)
        // with no refusal allowed (a tolerance of 0 over a training rate of 0), it is one
        var strict = QualityLimits()
        strict.refusalTolerance = 0
        #expect(Self.check(baseline, small, limits: strict).violations.map(\.check) == ["refusal_rate"])
    }

    @Test("the binomial tail behind every share check matches scipy's binom.sf (scripts/make_quality_fixtures.py)")
    func binomialTail() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/binomial.json")
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [[String: Any]]
        #expect(cases.count >= 10)
        for c in cases {
            let k = c["k"] as! Int, n = c["n"] as! Int, p = c["p"] as! Double, expected = c["tail"] as! Double
            let tail = QualityLimits.binomialTail(atLeast: k, of: n, p: p)
            #expect(abs(tail - expected) <= 1e-9 * max(expected, 1e-300) + 1e-300 || abs(tail - expected) / expected < 1e-9, "P(X >= \(k)) of \(n) at \(p): \(tail) against \(expected)")
        }
        #expect(QualityLimits.binomialTail(atLeast: 0, of: 5, p: 0.3) == 1 && QualityLimits.binomialTail(atLeast: 6, of: 5, p: 0.3) == 0)
        #expect(QualityLimits.binomialTail(atLeast: 1, of: 5, p: 0) == 0)
    }
}
