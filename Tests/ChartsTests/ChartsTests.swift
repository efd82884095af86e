import Charts
import Foundation
import Testing

@Suite("HTML and SVG for the reports")
struct ChartsTests {
    @Test("hostile text is shown, never interpreted: markup, quotes, control characters")
    func escaping() {
        let name = "<script>alert(1)</script>\"' & $(rm -rf ~)\nsecond"
        let shown = HTML.text(name)
        #expect(!shown.contains("<") && !shown.contains(">") && !shown.contains("\""), "\(shown)")
        #expect(shown.contains("&lt;script&gt;") && shown.contains("&amp;") && shown.contains("&#39;") && shown.contains("$(rm -rf ~)"))
        #expect(HTML.text("bell\u{07}") == "bell\\u{7}")
    }

    @Test("links to run files keep odd names part of the path: #, ?, %, spaces, newlines, and never leave for another scheme")
    func links() {
        #expect(HTML.pathURL("runs/a b#c?d%e/report.html") == "runs/a%20b%23c%3Fd%25e/report.html")
        #expect(HTML.pathURL("x\ny") == "x%0Ay")
        #expect(HTML.pathURL("javascript:alert(1)") == "javascript%3Aalert%281%29")
        #expect(HTML.pathURL("/etc/passwd") == "./etc/passwd")
        let link = HTML.link("a\"b.json", "<b>")
        #expect(link == "<a href=\"a%22b.json\">&lt;b&gt;</a>")
    }

    @Test("a page carries a policy that forbids every load but inline styles and data: images")
    func page() {
        let html = HTML.page(title: "t<", subtitle: "s", body: ["<p>x</p>"], generated: "now")
        #expect(html.contains("default-src 'none'; img-src data:; style-src 'unsafe-inline'"))
        #expect(html.contains("<title>t&lt;</title>"))
        #expect(!html.contains("<script") && !html.contains("<link"))
    }

    @Test("ticks fall on round values inside the range")
    func ticks() {
        let unit = Ticks.nice(0, 1, count: 5)
        #expect(unit.count == 6 && unit.first == 0 && abs(unit.last! - 1) < 1e-12)
        let t = Ticks.nice(-0.07, 0.13, count: 4)
        #expect(t.allSatisfy { $0 >= -0.07 && $0 <= 0.13 + 1e-12 } && t.count >= 3)
        #expect(Ticks.label(0.25, step: 0.05) == "0.25")
        let times = Ticks.times(1_796_155_571, 1_796_155_571 + 3 * 86400, count: 5)
        #expect(times.count >= 2 && times.allSatisfy { $0.1.count >= 5 })
    }

    @Test("an x-y chart draws each point, its thresholds, markers and the marked segment; log y survives p-values of 0")
    func xyChart() {
        var c = XYChart(title: "drift", xLabel: "t", yLabel: "p")
        c.logY = true
        c.xAxis = .time
        c.series = [.init("batches", colour: "#4c78a8", style: .linePoints, points: [
            .init(x: 1_796_000_000, y: 0.5), .init(x: 1_796_003_600, y: 1e-9, flagged: true, label: "b<2>", link: "runs/b 2/report.html"), .init(x: 1_796_007_200, y: 0),
        ])]
        c.rules = [.init(y: 0.025, label: "drift below 0.025")]
        c.markers = [.init(x: 1_796_003_000, label: "train stage-1 → v2", colour: "#4c78a8")]
        c.segments = [.init(x: 1_796_001_000, y0: 0.1, y1: 0.2, label: "D")]
        let svg = c.svg()
        #expect(svg.components(separatedBy: "class=\"point\"").count - 1 == 3)
        #expect(svg.contains("class=\"rule\"") && svg.contains("class=\"marker\"") && svg.contains("class=\"segment\""))
        #expect(svg.contains("fill=\"#c62828\""), "the flagged point is drawn in the alert colour")
        #expect(svg.contains("b&lt;2&gt;") && svg.contains("href=\"runs/b 2/report.html\""))
        #expect(!svg.contains("nan") && !svg.contains("inf"))
    }

    @Test("column and paired bar charts draw one bar per value")
    func bars() {
        let columns = ColumnChart(title: "h", xLabel: "x", yLabel: "y", bins: (0..<10).map { (label: "\($0)", value: Double($0)) }).svg()
        #expect(columns.components(separatedBy: "class=\"bar\"").count - 1 == 10)
        let paired = PairedBarChart(title: "mix", valueLabel: "share", names: ("batch", "training"),
                                    rows: [(label: "a", first: 0.5, second: 0.3), (label: "b", first: 0.5, second: 0.7)]).svg()
        #expect(paired.components(separatedBy: "class=\"bar\"").count - 1 == 4)
    }
}
