import Explainability
import Foundation
import GRDB
import Imaging
import JSONFiles
import Monitoring
import Pipeline
import Reports
import Store
import SystemFiles
import Testing

@Suite("Run pages, dashboard and metrics file")
struct ReportsTests {
    /// A root trained once, with one served batch whose name needs encoding in a link (the names
    /// allowed in the inbox have no markup characters: markup reaches pages through reasons and
    /// errors, tested with the promotion reason below).
    static func served() throws -> (DroplineRoot, Pipelines, train: String, serve: String) {
        let root = try Fixture.root()
        let hostile = root.productionInbox + "/odd name, (1) [x]=y"
        try FileManager.default.moveItem(atPath: root.productionInbox + "/batch-1", toPath: hostile)
        let pipelines = try Pipelines(root: root)
        let (train, _) = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        let (serve, _) = try pipelines.infer(batch: hostile)
        return (root, pipelines, train, serve)
    }

    static func page(_ root: DroplineRoot, _ pipelines: Pipelines, _ run: String) throws -> String {
        let folder = try #require(try pipelines.index.run(run)?.folder)
        return String(decoding: try AtomicFile.read(root.path + "/" + folder + "/" + Reports.pageFile), as: UTF8.self)
    }

    /// Everything a page refers to is inside it: no script, no style sheet, no frame, no URL with a
    /// scheme but data: (and the SVG namespace, which is a name, not a load).
    static func selfContained(_ html: String) -> [String] {
        var problems: [String] = []
        for banned in ["<script", "<link", "<iframe", "<object", "<embed", "@import", "url(http", "url(//"] where html.lowercased().contains(banned) { problems.append(banned) }
        let pattern = try! NSRegularExpression(pattern: "(src|href)=\"([^\"]*)\"")
        for m in pattern.matches(in: html, range: NSRange(html.startIndex..., in: html)) {
            let value = String(html[Range(m.range(at: 2), in: html)!])
            if value.hasPrefix("data:image/") { continue }
            if value.contains(":") || value.hasPrefix("//") { problems.append(value) }
        }
        return problems
    }

    @Test("a serve run's page: verdict, detectors, distributions, classes, confidence, explanations at 224 px with their delta, refusals, files; names escaped; self-contained")
    func servePage() throws {
        let (root, pipelines, _, serve) = try Self.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let outcome = try Reports(root: root, index: pipelines.sqlite).refresh()
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        let html = try Self.page(root, pipelines, serve)
        for id in ["detectors", "distributions", "features", "classes", "confidence", "explanations", "refused", "files"] {
            #expect(html.contains("<section id=\"\(id)\">"), "section \(id)")
        }
        #expect(html.contains("<title>Batch odd name, (1) [x]=y</title>"))
        #expect(html.contains("broken.jpg") && html.contains("unsupported"), "the refused file and its reason")
        #expect(html.components(separatedBy: "class=\"chart\"").count - 1 >= 5, "ECDF overlays, class mix, confidence, legend")
        #expect(html.contains("D = "), "the KS statistic marked on the overlays")
        #expect(html.contains("completeness delta"))
        let images = html.components(separatedBy: "<img src=\"data:image/jpeg;base64,").count - 1
        #expect(images == 16, "8 explanations, each the image and its heatmap: \(images)")
        #expect(html.contains("width=\"224\" height=\"224\""), "shown at a readable size")
        #expect(Self.selfContained(html).isEmpty, "\(Self.selfContained(html))")
        #expect(html.utf8.count < 2 << 20)
        // the explanation keeps its raw attribution beside its JSON
        let folder = root.path + "/" + (try #require(try pipelines.index.run(serve)?.folder)) + "/explainability/explanations"
        let e = try SnakeCaseJSON.read(Explanation.self, from: folder + "/0001.json")
        let raw = try SafeTensorsFile.attribution(folder + "/" + (try #require(e.attribution)))
        #expect(raw.count == 32 * 32 && raw.contains { $0 != 0 })
        // drift.json carries the distributions the overlays draw
        let drift = try SnakeCaseJSON.read(DriftReport.self, from: root.path + "/" + (try #require(try pipelines.index.run(serve)?.folder)) + "/monitoring/drift.json")
        #expect((drift.distributions ?? []).count == min(6, 32) + min(6, 3))
    }

    @Test("a training run's page: curves, per-class quality, confusion matrix, the promotion decision, then the decision taken later")
    func trainPage() throws {
        let (root, pipelines, train, _) = try Self.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let reports = Reports(root: root, index: pipelines.sqlite)
        try reports.refresh()
        var html = try Self.page(root, pipelines, train)
        for id in ["model", "curves", "classes", "confusion", "explanations"] { #expect(html.contains("<section id=\"\(id)\">"), "section \(id)") }
        #expect(html.contains("CHAMPION") && html.contains("first model: no champion"))
        #expect(html.contains("accuracy per epoch") && html.contains("loss per epoch"))
        #expect(Self.selfContained(html).isEmpty)
        // a second model, promoted by hand later: the first model's page says it was replaced, at the next refresh
        let (second, version) = try pipelines.train(stage: "original", configuration: Fixture.configuration())
        try reports.refresh()
        let registry = Registry(index: pipelines.sqlite)
        if try pipelines.champion()?.version == version {
            _ = try registry.rollback(reason: "back again")
            try registry.promote(version, reason: "by hand <for the test>")
        } else {
            try registry.promote(version, reason: "by hand <for the test>")
            _ = try registry.rollback(reason: "back again")
        }
        Thread.sleep(forTimeInterval: 0.01)
        let outcome = try reports.refresh()
        #expect(outcome.pages.contains { $0.contains("-train-original") })
        html = try Self.page(root, pipelines, train)
        #expect(html.contains("back again"), "the page shows the rollback recorded after it was first written")
        let secondPage = try Self.page(root, pipelines, second)
        #expect(secondPage.contains("by hand &lt;for the test&gt;"))
    }

    @Test("the dashboard: drift over time with its threshold, trainings and promotions marked, champion timeline, links to every page; rewritten whole")
    func dashboard() throws {
        let (root, pipelines, train, serve) = try Self.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let reports = Reports(root: root, index: pipelines.sqlite)
        try reports.refresh()
        let html = String(decoding: try AtomicFile.read(reports.dashboard), as: UTF8.self)
        for id in ["now", "drift", "accuracy", "champions", "batches", "trainings", "failures"] { #expect(html.contains("<section id=\"\(id)\">"), "section \(id)") }
        #expect(html.contains("class=\"rule\""), "the drift threshold line")
        #expect(html.contains("class=\"marker\""), "the training and promotion marked on the time axis")
        #expect(html.contains("class=\"point\""))
        for run in [train, serve] {
            let folder = try #require(try pipelines.index.run(run)?.folder)
            let link = "href=\"" + HTML_pathURL(String(folder.dropFirst("outputs/".count)) + "/report.html") + "\""
            #expect(html.contains(link), "links to \(run)'s page: \(link)")
        }
        #expect(Self.selfContained(html).isEmpty, "\(Self.selfContained(html))")
        // a crash between publishing a run and writing its page: the next refresh writes the missing page
        let servePage = root.path + "/" + (try #require(try pipelines.index.run(serve)?.folder)) + "/" + Reports.pageFile
        try FileManager.default.removeItem(atPath: servePage)
        let healed = try reports.refresh()
        #expect(healed.pages == [servePage] && FileManager.default.fileExists(atPath: servePage))
        // two refreshes at once (the daemon and a hand-run command) leave whole files
        DispatchQueue.concurrentPerform(iterations: 4) { _ in _ = try? reports.refresh(all: true) }
        let again = String(decoding: try AtomicFile.read(reports.dashboard), as: UTF8.self)
        #expect(again.hasSuffix("</html>\n"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.outputs).filter { $0.hasPrefix(".") && $0.contains("dashboard") }.isEmpty, "no temporary files left")
    }

    @Test("the metrics file: Prometheus text format, values from the index")
    func metrics() throws {
        let (root, pipelines, _, _) = try Self.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let reports = Reports(root: root, index: pipelines.sqlite)
        try reports.refresh()
        let text = String(decoding: try AtomicFile.read(reports.metricsFile), as: UTF8.self)
        var values: [String: Double] = [:]
        let sample = try NSRegularExpression(pattern: "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\"(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*\\})? -?[0-9.e+-]+$")
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") { continue }
            let s = String(line)
            #expect(sample.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil, "not a sample line: \(s)")
            let parts = s.split(separator: " ")
            values[String(parts[0])] = Double(parts[1])
        }
        #expect(values["dropline_batches_served_total"] == 1)
        #expect(values["dropline_images_served_total"] == 24)
        #expect(values["dropline_images_refused_total{reason=\"unsupported\"}"] == 1)
        #expect(values["dropline_runs_total{kind=\"train\",outcome=\"succeeded\"}"] == 1)
        #expect(values["dropline_champion_version"] == 1)
        #expect(values["dropline_daemon_up"] == 0)
        #expect(values.keys.contains("dropline_queue_jobs{state=\"queued\"}"))
        #expect(values.keys.contains("dropline_last_batch_min_adjusted_p_value"))
    }

    @Test("an explained original replaced since (by a link, a FIFO, other bytes) is said so and not shown as the one explained")
    func changedOriginals() throws {
        let (root, pipelines, _, serve) = try Self.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        let folder = root.path + "/" + (try #require(try pipelines.index.run(serve)?.folder))
        let explained = try SnakeCaseJSON.read([Explanation].self, from: folder + "/explainability/explanations/explanations.json").map(\.path)
        #expect(explained.count >= 3)
        let fm = FileManager.default
        try fm.removeItem(atPath: explained[0])
        try fm.createSymbolicLink(atPath: explained[0], withDestinationPath: explained[1])
        try fm.removeItem(atPath: explained[1])
        #expect(mkfifo(explained[1], 0o644) == 0)
        try fm.removeItem(atPath: explained[2])
        try fm.copyItem(atPath: explained[3], toPath: explained[2])
        let page = try Reports(root: root, index: pipelines.sqlite).writePage(try #require(try pipelines.index.run(serve)))
        let html = String(decoding: try AtomicFile.read(page), as: UTF8.self)
        #expect(html.components(separatedBy: "the original is no longer readable at its path").count - 1 == 2, "the link and the FIFO")
        #expect(html.contains("the original has changed since it was explained"))
        #expect(html.components(separatedBy: "<img src=\"data:image/jpeg;base64,").count - 1 == 16 - 3, "the heatmaps are all still shown")
    }

    @Test("a run page for a run that is not published is refused with what to do")
    func refusals() throws {
        let (root, pipelines, _, _) = try Self.served()
        defer { try? FileManager.default.removeItem(atPath: root.path) }
        #expect(throws: ReportError.self) { try Reports(root: root, index: pipelines.sqlite).refresh(runs: ["no-such-run"]) }
    }
}

/// The page's link encoding (Charts.HTML.pathURL), restated: the test must not use the code it checks.
func HTML_pathURL(_ path: String) -> String {
    path.utf8.map { b -> String in
        let c = Character(Unicode.Scalar(b))
        return (c.isASCII && (c.isLetter || c.isNumber) || "-._~/".contains(c)) ? String(c) : String(format: "%%%02X", b)
    }.joined()
}

enum SafeTensorsFile {
    /// The `attribution` tensor of an explanation's raw file, read by hand from the safetensors layout
    /// (8-byte header length, JSON header, little-endian float32 data).
    static func attribution(_ path: String) throws -> [Float] {
        let bytes = try AtomicFile.read(path)
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as! [String: Any]
        let entry = header["attribution"] as! [String: Any]
        let offsets = entry["data_offsets"] as! [Int]
        #expect(entry["dtype"] as? String == "F32")
        let data = Array(bytes[(8 + headerLength + offsets[0])..<(8 + headerLength + offsets[1])])
        return stride(from: 0, to: data.count, by: 4).map { i in
            Float(bitPattern: UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24)
        }
    }
}
