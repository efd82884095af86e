import DroplineSupport
import Foundation
import GRDB
import Imaging
import JSONFiles
import Monitoring
import Pipeline
import Reports
import Rules
import Store
import SystemFiles
import Testing

/// The data-quality baseline through the pipelines: learned by training from the raw stage,
/// published with the model version, checked by every serve run (quality.json, the index, a flag),
/// its flag raised again after a crash, its limits taken from dropline.yaml.
@Suite("Data quality in the pipelines")
struct DataQualityPipelineTests {
    /// Writes `count` images made by `make` into a new production batch.
    static func batch(_ root: DroplineRoot, _ name: String, count: Int, format: ImageEncoder.Format = .png, _ make: (Int) -> RGBImage) throws -> String {
        let folder = root.productionInbox + "/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for n in 0..<count { try ImageEncoder.write(make(n), to: folder + "/\(n).\(format == .png ? "png" : "jpg")", format: format) }
        return folder
    }

    @Test("training publishes the baseline beside the drift artifacts; a familiar batch passes; thumbnails and blank frames are violations in quality.json, the index and a flag")
    func servedBatches() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let champion = try #require(try pipelines.champion())
        let baseline = try #require(try DataQualityBaseline.load(root.path + "/" + champion.folder + "/quality"))
        // 3 classes x 28 images of 32x32 PNGs (train and validation, all read raw)
        #expect(baseline.statistics.images == 84 && baseline.statistics.categorical["format"] == ["png": 1])
        let width32 = try #require(baseline.constraints.ranges["width"])
        #expect(width32.minimum == 16 && width32.maximum == 64)

        // batch-1 is like the training images (its one broken file, 1 of 25, is within the refusal tolerance)
        let first = try #require(try pipelines.index.runs(limit: 10).first { $0.kind == .serve })
        let familiar = try #require(try pipelines.index.qualityCheck(run: first.id))
        #expect(familiar.baselineSha256 == baseline.contentHash && familiar.violations.isEmpty && familiar.images == 24 && familiar.refused == 1)
        #expect(FileSystem.names(in: root.flags("data_quality")).isEmpty)

        let thumbs = try Self.batch(root, "thumbs", count: 10) { n in
            var image = RGBImage(width: 6, height: 6)
            for y in 0..<6 { for x in 0..<6 { image[x, y] = RGB(UInt8(40 * (n % 3)), UInt8(20 * x), UInt8(30 * y)) } }
            return image
        }
        let (run, _) = try pipelines.infer(batch: thumbs)
        let folder = root.path + "/" + (try #require(try pipelines.index.run(run)?.folder))
        let report = try SnakeCaseJSON.read(QualityReport.self, from: folder + "/monitoring/quality.json")
        #expect(Set(report.violations.map(\.property)).isSuperset(of: ["width", "height"]))
        let check = try #require(try pipelines.index.qualityCheck(run: run))
        let width = try #require(check.violations.first { $0.property == "width" })
        #expect(width.check == "range" && width.concerned == 10 && width.images.count == 10 && width.images.allSatisfy { $0.hasPrefix("inbox/production/thumbs/") })
        let flag = try FlagFiles.read(DataQualityFlag.self, from: root.flags("data_quality") + "/thumbs.json")
        #expect(flag.run == run && flag.violations == report.violations.count && flag.reason.contains("width"))
        #expect(try pipelines.index.flagCount(kind: .dataQuality, path: "flags/data_quality/thumbs.json", since: "") == 1)
        #expect(try pipelines.sqlite.batchTimeline().last?.qualityViolations == report.violations.count)

        // the run page lists the violations with the images concerned; the dashboard has the batch's count
        let reports = Reports(root: root, index: pipelines.sqlite)
        _ = try reports.refresh()
        let page = try ReportsTests.page(root, pipelines, run)
        #expect(page.contains("id=\"data-quality\"") && page.contains("\(report.violations.count) violation(s)") && page.contains("0.png"))
        #expect(page.contains("width: 10 of 10 images (100.0%) below the training images"))
        let dashboard = String(decoding: try AtomicFile.read(reports.dashboard), as: UTF8.self)
        #expect(dashboard.contains("data quality") && dashboard.contains("\(report.violations.count) violation(s)"))

        let blank = try Self.batch(root, "blank", count: 10) { _ in RGBImage(width: 32, height: 32, fill: RGB(0, 0, 0)) }
        let (blankRun, _) = try pipelines.infer(batch: blank)
        let blankCheck = try #require(try pipelines.index.qualityCheck(run: blankRun))
        #expect(Set(blankCheck.violations.map(\.property)).isSuperset(of: ["contrast", "sharpness", "duplicates"]), "\(blankCheck.violations.map(\.detail))")
    }

    @Test("a flag not written before a crash is raised by recovery once, and dropline.yaml's data_quality limits decide the verdict")
    func recoveryAndConfiguration() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let thumbs = try Self.batch(root, "thumbs", count: 8) { n in RGBImage(width: 8, height: 8, fill: RGB(UInt8(30 * n), 90, 160)) }
        let (run, _) = try pipelines.infer(batch: thumbs)
        let flag = root.flags("data_quality") + "/thumbs.json"
        try FileManager.default.removeItem(atPath: flag)
        try pipelines.sqlite.write { db in try db.execute(sql: "DELETE FROM flags WHERE kind = 'data_quality'") }
        #expect(try pipelines.raiseMissingDataQualityFlag(run: run))
        #expect(FileSystem.entryType(flag) == .regular)
        #expect(try !pipelines.raiseMissingDataQualityFlag(run: run))  // once

        var c = RootConfiguration()
        c.dataQuality.outOfRangeShare = 1  // no share of images outside a range breaks it
        pipelines.configuration = c
        let again = try Self.batch(root, "thumbs-again", count: 8) { n in RGBImage(width: 8, height: 8, fill: RGB(UInt8(30 * n), 90, 160)) }
        let (loose, _) = try pipelines.infer(batch: again)
        let check = try #require(try pipelines.index.qualityCheck(run: loose))
        #expect(check.violations.allSatisfy { $0.check != "range" }, "\(check.violations.map(\.detail))")
        let folder = root.path + "/" + (try #require(try pipelines.index.run(loose)?.folder))
        #expect(try SnakeCaseJSON.read(QualityReport.self, from: folder + "/monitoring/quality.json").limits.outOfRangeShare == 1)
    }

    @Test("images named with a newline, `..`, `$(...)` or markup are listed as they are in the index, never run, and escaped on the page; a dot file is not an image")
    func hostileNames() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let folder = root.productionInbox + "/odd"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let names = ["a\nb.png", "x..y.png", "$(touch pwned).png", "<b>bold<b>&x.png", "0.png", "1.png"]
        for (n, name) in names.enumerated() { try ImageEncoder.write(RGBImage(width: 8, height: 8, fill: RGB(UInt8(20 * n), 90, 160)), to: folder + "/" + name) }
        // a name starting with a dot is a hidden file, skipped as junk, never an image of the batch
        try ImageEncoder.write(RGBImage(width: 8, height: 8), to: folder + "/..hidden.png")
        let (run, _) = try pipelines.infer(batch: folder)
        let width = try #require(try pipelines.index.qualityCheck(run: run)?.violations.first { $0.property == "width" })
        #expect(Set(width.images) == Set(names.map { "inbox/production/odd/" + $0 }))
        #expect(FileSystem.entryType(root.path + "/pwned") == nil && FileSystem.entryType(root.productionInbox + "/pwned") == nil)
        _ = try Reports(root: root, index: pipelines.sqlite).refresh()
        let page = try ReportsTests.page(root, pipelines, run)
        #expect(!page.contains("<b>bold") && page.contains("&lt;b&gt;bold&lt;b&gt;&amp;x.png"))
        #expect(ReportsTests.selfContained(page).isEmpty)
    }

    @Test("a model version without a baseline (trained before data quality) serves its batches unchecked, and says so")
    func versionWithoutBaseline() throws {
        let (root, pipelines) = try Fixture.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let champion = try #require(try pipelines.champion())
        try FileManager.default.removeItem(atPath: root.path + "/" + champion.folder + "/quality")
        let (run, _) = try pipelines.infer(batch: root.productionInbox + "/batch-1")
        let check = try #require(try pipelines.index.qualityCheck(run: run))
        #expect(check.baselineSha256 == nil && check.violations.isEmpty)
        #expect(try pipelines.sqlite.batchTimeline().last?.qualityViolations == nil)
        let folder = root.path + "/" + (try #require(try pipelines.index.run(run)?.folder))
        #expect(try SnakeCaseJSON.read(QualityReport.self, from: folder + "/monitoring/quality.json").reason.contains("no data-quality baseline"))
    }
}
