import Foundation
import Imaging
import Testing

/// Debian's Chromium, headless: screenshots and the network log of a page opened as a file.
enum Browser {
    static let path: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    struct Visit {
        var screenshot: RGBImage
        /// URLs the page itself asked for (requests whose network isolation key is the file's origin).
        var pageRequests: [String]
        /// The browser's console (Content Security Policy violations are reported there).
        var console: String
    }

    /// Opens `file` with no network for the page beyond what it asks for, in a window `height` tall,
    /// and returns what it drew and what it loaded. Chromium's own background services are off; its
    /// few remaining requests are not the page's (their isolation key is not file://).
    static func visit(_ file: String, height: Int, scratch: String) throws -> Visit {
        let shot = scratch + "/shot-\(UUID().uuidString).png", log = scratch + "/net-\(UUID().uuidString).json"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path!)
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--disable-extensions",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
                             "--user-data-dir=" + scratch + "/profile-\(UUID().uuidString)", "--enable-logging=stderr", "--v=0",
                             "--log-net-log=" + log, "--window-size=1300,\(height)", "--screenshot=" + shot, "file://" + file]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // a browser that hangs is killed, and the test fails on the missing screenshot
        let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 120, execute: watchdog)
        defer { watchdog.cancel() }
        nonisolated(unsafe) var console = Data()
        let reader = Thread { console = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        process.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        let image = try ImageDecoder.decode(file: shot).image
        var requests: [String] = []
        if let data = FileManager.default.contents(atPath: log),
           let json = try JSONSerialization.jsonObject(with: data) as? [String: Any], let events = json["events"] as? [[String: Any]] {
            for e in events {
                guard let p = e["params"] as? [String: Any], let url = p["url"] as? String,
                      let key = p["network_isolation_key"] as? String, key.contains("file://") else { continue }
                requests.append(url)
            }
        }
        return Visit(screenshot: image, pageRequests: requests, console: String(decoding: console, as: UTF8.self))
    }

    /// Pixels within `tolerance` of `colour` in each channel.
    static func count(_ image: RGBImage, near colour: (Int, Int, Int), tolerance: Int = 12) -> Int {
        var n = 0
        for i in stride(from: 0, to: image.pixels.count, by: 3) {
            if abs(Int(image.pixels[i]) - colour.0) <= tolerance && abs(Int(image.pixels[i + 1]) - colour.1) <= tolerance
                && abs(Int(image.pixels[i + 2]) - colour.2) <= tolerance { n += 1 }
        }
        return n
    }

    /// Pixels that are clearly red over blue, or blue over red (the heatmaps' two kinds of evidence).
    static func evidence(_ image: RGBImage) -> (red: Int, blue: Int) {
        var red = 0, blue = 0
        for i in stride(from: 0, to: image.pixels.count, by: 3) {
            let r = Int(image.pixels[i]), g = Int(image.pixels[i + 1]), b = Int(image.pixels[i + 2])
            if r > b + 70 && r > g + 50 { red += 1 }
            if b > r + 70 && b > g + 30 { blue += 1 }
        }
        return (red, blue)
    }
}

@Suite("Pages in a real browser", .enabled(if: Binary.path != nil, "the dropline executable was not built"),
       .enabled(if: Browser.path != nil, "chromium is not installed (scripts/install-system-packages installs it)"), .serialized)
struct BrowserTests {
    /// A root trained, served, labelled and reported through the real commands.
    static func root() throws -> String {
        let root = try CrashSafetyTests.root()
        #expect(try Binary.run(["train", root, "--stage", "original", "--arch", "small-cnn", "--epochs", "4", "--image-size", "32"]).status == 0)
        #expect(try Binary.run(["infer", root, root + "/inbox/production/batch-1"]).status == 0)
        var labels = "image,class\n"
        for c in ["blue", "green", "red"] { for i in 0..<6 { labels += String(format: "%@/%02d.png,%@\n", c, i, c) } }
        try labels.write(toFile: root + "/batch-1.csv", atomically: true, encoding: .utf8)
        let merged = try Binary.run(["labels", root, root + "/batch-1.csv"])
        #expect(merged.status == 0, "\(merged.stderr)")
        return root
    }

    static func pages(_ root: String) throws -> (serve: String, train: String, dashboard: String) {
        let runs = try FileManager.default.contentsOfDirectory(atPath: root + "/outputs/runs")
        let serve = try #require(runs.first { $0.contains("-serve-") }), train = try #require(runs.first { $0.contains("-train-") })
        return (root + "/outputs/runs/" + serve + "/report.html", root + "/outputs/runs/" + train + "/report.html", root + "/outputs/dashboard.html")
    }

    @Test("the serve page draws its charts and its explanations, the training page its curves, the dashboard its time series; none loads anything from outside")
    func render() throws {
        let root = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: (root as NSString).deletingLastPathComponent) }
        let report = try Binary.run(["report", root, "--json"])
        #expect(report.status == 0, "\(report.stderr)")
        #expect(report.stdout.contains("\"dashboard\"") && report.stdout.contains("\"pages\""))
        let status = try Binary.run(["status", root])
        #expect(status.stdout.contains("dashboard: " + root + "/outputs/dashboard.html"), "\(status.stdout)")
        let (serve, train, dashboard) = try Self.pages(root)
        let scratch = root + "/browser"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)

        let s = try Browser.visit(serve, height: 4200, scratch: scratch)
        #expect(Browser.count(s.screenshot, near: (214, 39, 40)) > 300, "the batch's ECDF lines (red)")
        #expect(Browser.count(s.screenshot, near: (140, 149, 159), tolerance: 6) > 300, "the reference's ECDF lines (grey)")
        #expect(Browser.count(s.screenshot, near: (76, 120, 168)) > 500, "the confidence histogram's columns")
        let evidence = Browser.evidence(s.screenshot)
        #expect(evidence.red > 2000 && evidence.blue > 500, "heatmaps with evidence for and against: \(evidence)")
        #expect(Browser.count(s.screenshot, near: (26, 127, 55), tolerance: 8) + Browser.count(s.screenshot, near: (198, 40, 40), tolerance: 8) > 100, "the verdict's badge")

        let t = try Browser.visit(train, height: 3000, scratch: scratch)
        #expect(Browser.count(t.screenshot, near: (76, 120, 168)) > 200 && Browser.count(t.screenshot, near: (245, 133, 24)) > 200,
                "training and validation curves")

        let d = try Browser.visit(dashboard, height: 2400, scratch: scratch)
        #expect(Browser.count(d.screenshot, near: (76, 120, 168)) > 100, "the batches' points and the training marker")
        #expect(Browser.count(d.screenshot, near: (198, 40, 40), tolerance: 10) > 100, "the threshold and constraint lines")

        for visit in [s, t, d] {
            #expect(!visit.console.contains("Content Security Policy"), "a load was attempted and blocked: \(visit.console.prefix(2000))")
            #expect(visit.pageRequests.allSatisfy { $0.hasPrefix("file://") || $0.hasPrefix("data:") }, "\(visit.pageRequests)")
        }
        if let keep = ProcessInfo.processInfo.environment["DROPLINE_SCREENSHOTS"] {
            for (name, visit) in [("serve", s), ("train", t), ("dashboard", d)] {
                try ImageEncoder.write(visit.screenshot, to: keep + "/test-\(name).png")
            }
        }
    }

    @Test("the check sees an external load: the same page without its policy and with one outside image requests it")
    func negativeControl() throws {
        let root = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: (root as NSString).deletingLastPathComponent) }
        let (serve, _, _) = try Self.pages(root)
        var html = try String(contentsOfFile: serve, encoding: .utf8)
        html = html.replacingOccurrences(of: "<meta http-equiv=\"Content-Security-Policy\"", with: "<meta name=\"x\"")
        html = html.replacingOccurrences(of: "</main>", with: "<img src=\"http://192.0.2.1/outside.png\"></main>")
        let copy = (serve as NSString).deletingLastPathComponent + "/tampered.html"
        try html.write(toFile: copy, atomically: true, encoding: .utf8)
        let scratch = root + "/browser"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let visit = try Browser.visit(copy, height: 800, scratch: scratch)
        #expect(visit.pageRequests.contains("http://192.0.2.1/outside.png"), "\(visit.pageRequests)")
        // and with the policy kept, the browser blocks it and says so
        let original = try String(contentsOfFile: serve, encoding: .utf8).replacingOccurrences(of: "</main>", with: "<img src=\"http://192.0.2.1/outside.png\"></main>")
        try original.write(toFile: copy, atomically: true, encoding: .utf8)
        let blocked = try Browser.visit(copy, height: 800, scratch: scratch)
        #expect(blocked.console.contains("Content Security Policy"))
        #expect(!blocked.pageRequests.contains("http://192.0.2.1/outside.png"))
    }
}
