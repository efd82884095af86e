import Foundation

/// Inline SVG charts for the reports: an x-y chart (lines, steps, points, threshold lines, event
/// markers, a marked segment; linear or log y; numbers or times on x), column charts (histograms)
/// and grouped horizontal bars. Pure: values in, SVG text out. Every chart is an `<svg class="chart">`
/// with a `<title>` saying what it shows, so a screen reader and a test can find it.
public struct XYChart: Sendable {
    public enum Style: Sendable { case line, step, points, linePoints }

    public struct Point: Sendable {
        public var x: Double, y: Double
        /// Drawn in the alert colour (a drifted batch, an accuracy below its constraint).
        public var flagged: Bool
        /// A tooltip, and a link to follow when the point is clicked (relative URL).
        public var label: String?, link: String?
        public init(x: Double, y: Double, flagged: Bool = false, label: String? = nil, link: String? = nil) {
            self.x = x; self.y = y; self.flagged = flagged; self.label = label; self.link = link
        }
    }

    public struct Series: Sendable {
        public var name: String, colour: String, style: Style, dashed: Bool, points: [Point]
        public init(_ name: String, colour: String, style: Style = .line, dashed: Bool = false, points: [Point]) {
            self.name = name; self.colour = colour; self.style = style; self.dashed = dashed; self.points = points
        }
    }

    /// A horizontal line across the chart (a threshold), labelled.
    public struct Rule: Sendable {
        public var y: Double, label: String, colour: String
        public init(y: Double, label: String, colour: String = "#c62828") { self.y = y; self.label = label; self.colour = colour }
    }

    /// A vertical line at `x` (an event: a retraining, a promotion), labelled at the top.
    public struct Marker: Sendable {
        public var x: Double, label: String, colour: String
        public init(x: Double, label: String, colour: String) { self.x = x; self.label = label; self.colour = colour }
    }

    /// A vertical segment from (x, y0) to (x, y1), labelled (the KS statistic on an ECDF overlay).
    public struct Segment: Sendable {
        public var x: Double, y0: Double, y1: Double, label: String
        public init(x: Double, y0: Double, y1: Double, label: String) { self.x = x; self.y0 = y0; self.y1 = y1; self.label = label }
    }

    public enum XAxis: Sendable { case numbers, integers, time }

    public var title: String
    public var xLabel: String, yLabel: String
    public var series: [Series] = []
    public var rules: [Rule] = []
    public var markers: [Marker] = []
    public var segments: [Segment] = []
    public var xAxis: XAxis = .numbers
    public var logY = false
    /// Fixed y range (else from the data, rules and segments).
    public var yRange: ClosedRange<Double>? = nil
    public var width = 640, height = 260

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
    }

    static let left = 62.0, right = 16.0, top = 26.0, bottom = 44.0

    public func svg() -> String {
        let w = Double(width), h = Double(height)
        let plotW = w - Self.left - Self.right, plotH = h - Self.top - Self.bottom
        let all = series.flatMap(\.points)
        let xs = all.map(\.x) + markers.map(\.x) + segments.map(\.x)
        var ys = all.map(\.y) + rules.map(\.y) + segments.flatMap { [$0.y0, $0.y1] }
        if logY { ys = ys.filter { $0 > 0 }.map(log10) }
        var xMin = xs.min() ?? 0, xMax = xs.max() ?? 1
        if xMin == xMax { xMin -= xAxis == .time ? 1800 : 1; xMax += xAxis == .time ? 1800 : 1 }
        if xAxis == .time { let pad = (xMax - xMin) * 0.04; xMin -= pad; xMax += pad }
        var yMin: Double, yMax: Double
        if let r = yRange {
            (yMin, yMax) = logY ? (log10(r.lowerBound), log10(r.upperBound)) : (r.lowerBound, r.upperBound)
        } else {
            yMin = ys.min() ?? 0; yMax = ys.max() ?? 1
            if logY { yMin = yMin.rounded(.down); yMax = max(yMax.rounded(.up), yMin + 1) }
            if yMin == yMax { yMin -= 0.5; yMax += 0.5 }
            if !logY { let pad = (yMax - yMin) * 0.06; yMin -= pad; yMax += pad }
        }
        func px(_ x: Double) -> Double { Self.left + (x - xMin) / (xMax - xMin) * plotW }
        func py(_ y: Double) -> Double {
            let v = logY ? log10(max(y, pow(10, yMin))) : y
            return Self.top + (1 - (min(max(v, yMin), yMax) - yMin) / (yMax - yMin)) * plotH
        }
        var out = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\">"
        out += "<title>\(HTML.text(title))</title>"
        out += "<rect x=\"\(f(Self.left))\" y=\"\(f(Self.top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"#fbfcfd\" stroke=\"#d5dae0\"/>"
        // y ticks
        let yTicks = logY ? Ticks.nice(yMin, yMax, count: 5).filter { $0 == $0.rounded() } : Ticks.nice(yMin, yMax, count: 5)
        for t in yTicks {
            let y = Self.top + (1 - (t - yMin) / (yMax - yMin)) * plotH
            out += "<line x1=\"\(f(Self.left))\" x2=\"\(f(Self.left + plotW))\" y1=\"\(f(y))\" y2=\"\(f(y))\" stroke=\"#e6e9ed\"/>"
            let label = logY ? (t >= -3 ? Ticks.label(pow(10, t), step: pow(10, min(t, 0))) : "1e\(Int(t))") : Ticks.label(t, step: yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1)
            out += "<text x=\"\(f(Self.left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\" font-size=\"11\" fill=\"#5b6470\">\(HTML.text(label))</text>"
        }
        // x ticks
        let xTicks: [(Double, String)]
        switch xAxis {
        case .time: xTicks = Ticks.times(xMin, xMax, count: 5)
        case .integers:
            xTicks = Ticks.nice(xMin, xMax, count: 6).filter { $0 == $0.rounded() }.map { ($0, String(Int($0))) }
        case .numbers:
            let t = Ticks.nice(xMin, xMax, count: 6)
            xTicks = t.map { ($0, Ticks.label($0, step: t.count > 1 ? t[1] - t[0] : 1)) }
        }
        for (t, label) in xTicks where t >= xMin && t <= xMax {
            out += "<line x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(Self.top + plotH))\" y2=\"\(f(Self.top + plotH + 4))\" stroke=\"#8c959f\"/>"
            out += "<text x=\"\(f(px(t)))\" y=\"\(f(Self.top + plotH + 16))\" text-anchor=\"middle\" font-size=\"11\" fill=\"#5b6470\">\(HTML.text(label))</text>"
        }
        out += "<text x=\"\(f(Self.left + plotW / 2))\" y=\"\(f(h - 6))\" text-anchor=\"middle\" font-size=\"12\" fill=\"#1b1f24\">\(HTML.text(xLabel))</text>"
        out += "<text x=\"14\" y=\"\(f(Self.top + plotH / 2))\" text-anchor=\"middle\" font-size=\"12\" fill=\"#1b1f24\" transform=\"rotate(-90 14 \(f(Self.top + plotH / 2)))\">\(HTML.text(yLabel))</text>"
        // marker labels in rows, so that close events do not write over each other
        var rowEnds: [Double] = []
        for m in markers.sorted(by: { $0.x < $1.x }) {
            let x = px(m.x), width = Double(m.label.count) * 5.6 + 6
            out += "<line class=\"marker\" x1=\"\(f(x))\" x2=\"\(f(x))\" y1=\"\(f(Self.top))\" y2=\"\(f(Self.top + plotH))\" stroke=\"\(m.colour)\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"><title>\(HTML.text(m.label))</title></line>"
            let anchorRight = x + width > Self.left + plotW
            let start = anchorRight ? x - width : x
            var row = rowEnds.firstIndex { $0 < start } ?? rowEnds.count
            if row >= 6 { row = rowEnds.indices.min { rowEnds[$0] < rowEnds[$1] } ?? 0 }
            if row == rowEnds.count { rowEnds.append(0) }
            rowEnds[row] = start + width
            out += "<text x=\"\(f(anchorRight ? x - 3 : x + 3))\" y=\"\(f(Self.top + 10 + 11 * Double(row)))\" font-size=\"10\" fill=\"\(m.colour)\"\(anchorRight ? " text-anchor=\"end\"" : "")>\(HTML.text(m.label))</text>"
        }
        for r in rules {
            out += "<line class=\"rule\" x1=\"\(f(Self.left))\" x2=\"\(f(Self.left + plotW))\" y1=\"\(f(py(r.y)))\" y2=\"\(f(py(r.y)))\" stroke=\"\(r.colour)\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>"
            out += "<text x=\"\(f(Self.left + plotW - 4))\" y=\"\(f(py(r.y) - 4))\" text-anchor=\"end\" font-size=\"11\" fill=\"\(r.colour)\">\(HTML.text(r.label))</text>"
        }
        for s in series where !s.points.isEmpty {
            let dash = s.dashed ? " stroke-dasharray=\"5 3\"" : ""
            switch s.style {
            case .line, .linePoints, .step:
                var d = ""
                for (i, p) in s.points.enumerated() {
                    if i == 0 { d += "M\(f(px(p.x))),\(f(py(p.y)))" } else if s.style == .step {
                        d += "H\(f(px(p.x)))V\(f(py(p.y)))"
                    } else { d += "L\(f(px(p.x))),\(f(py(p.y)))" }
                }
                out += "<path class=\"series\" d=\"\(d)\" fill=\"none\" stroke=\"\(s.colour)\" stroke-width=\"2\"\(dash)><title>\(HTML.text(s.name))</title></path>"
            case .points: break
            }
            if s.style == .points || s.style == .linePoints {
                for p in s.points {
                    let colour = p.flagged ? "#c62828" : s.colour
                    var dot = "<circle class=\"point\" cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"\(p.flagged ? 5 : 4)\" fill=\"\(colour)\" stroke=\"#fff\">"
                    if let l = p.label { dot += "<title>\(HTML.text(l))</title>" }
                    dot += "</circle>"
                    if let link = p.link { dot = "<a href=\"\(HTML.text(link))\">\(dot)</a>" }
                    out += dot
                }
            }
        }
        for s in segments {
            out += "<line class=\"segment\" x1=\"\(f(px(s.x)))\" x2=\"\(f(px(s.x)))\" y1=\"\(f(py(s.y0)))\" y2=\"\(f(py(s.y1)))\" stroke=\"#1b1f24\" stroke-width=\"2.5\"/>"
            out += "<text x=\"\(f(px(s.x) + 5))\" y=\"\(f((py(s.y0) + py(s.y1)) / 2 + 4))\" font-size=\"11\" font-weight=\"600\" fill=\"#1b1f24\">\(HTML.text(s.label))</text>"
        }
        // legend
        var lx = Self.left
        for s in series {
            out += "<rect x=\"\(f(lx))\" y=\"8\" width=\"14\" height=\"4\" fill=\"\(s.colour)\"/>"
            out += "<text x=\"\(f(lx + 18))\" y=\"14\" font-size=\"11\" fill=\"#1b1f24\">\(HTML.text(s.name))</text>"
            lx += 30 + Double(s.name.count) * 6.2
        }
        return out + "</svg>"
    }
}

/// Vertical columns over labelled bins (a histogram).
public struct ColumnChart: Sendable {
    public var title: String, xLabel: String, yLabel: String
    public var bins: [(label: String, value: Double)]
    public var colour = "#4c78a8"
    public var width = 480, height = 220

    public init(title: String, xLabel: String, yLabel: String, bins: [(label: String, value: Double)]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.bins = bins
    }

    public func svg() -> String {
        let w = Double(width), h = Double(height), left = 48.0, right = 10.0, top = 12.0, bottom = 44.0
        let plotW = w - left - right, plotH = h - top - bottom
        let top1 = max(bins.map(\.value).max() ?? 1, 1e-12)
        let ticks = Ticks.nice(0, top1, count: 4)
        let yMax = max(top1, ticks.last ?? top1)
        var out = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\"><title>\(HTML.text(title))</title>"
        for t in ticks {
            let y = top + (1 - t / yMax) * plotH
            out += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(y))\" y2=\"\(f(y))\" stroke=\"#e6e9ed\"/>"
            out += "<text x=\"\(f(left - 5))\" y=\"\(f(y + 4))\" text-anchor=\"end\" font-size=\"11\" fill=\"#5b6470\">\(HTML.text(Ticks.label(t, step: ticks.count > 1 ? ticks[1] - ticks[0] : 1)))</text>"
        }
        let bw = plotW / Double(max(bins.count, 1))
        for (i, b) in bins.enumerated() {
            let bh = b.value / yMax * plotH
            out += "<rect class=\"bar\" x=\"\(f(left + Double(i) * bw + 1))\" y=\"\(f(top + plotH - bh))\" width=\"\(f(max(bw - 2, 1)))\" height=\"\(f(bh))\" fill=\"\(colour)\"><title>\(HTML.text("\(b.label): \(Ticks.label(b.value, step: 1))"))</title></rect>"
            if bins.count <= 12 || i % max(1, bins.count / 6) == 0 {
                out += "<text x=\"\(f(left + Double(i) * bw + bw / 2))\" y=\"\(f(top + plotH + 14))\" text-anchor=\"middle\" font-size=\"10\" fill=\"#5b6470\">\(HTML.text(b.label))</text>"
            }
        }
        out += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH))\" stroke=\"#8c959f\"/>"
        out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(h - 6))\" text-anchor=\"middle\" font-size=\"12\">\(HTML.text(xLabel))</text>"
        out += "<text x=\"12\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 12 \(f(top + plotH / 2)))\">\(HTML.text(yLabel))</text>"
        return out + "</svg>"
    }
}

/// Horizontal bars, two per category (this batch against the training data, say).
public struct PairedBarChart: Sendable {
    public var title: String, valueLabel: String
    public var names: (String, String)
    public var rows: [(label: String, first: Double, second: Double)]
    public var colours = ("#e45756", "#9aa5b1")
    public var width = 560

    public init(title: String, valueLabel: String, names: (String, String), rows: [(label: String, first: Double, second: Double)]) {
        self.title = title; self.valueLabel = valueLabel; self.names = names; self.rows = rows
    }

    public func svg() -> String {
        let labelW = 150.0, right = 110.0, rowH = 22.0, top = 24.0
        let h = top + Double(rows.count) * rowH + 22, plotW = Double(width) - labelW - right
        let maxValue = max(rows.map { max($0.first, $0.second) }.max() ?? 1, 1e-12)
        var out = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(Int(h))\" viewBox=\"0 0 \(width) \(Int(h))\" role=\"img\"><title>\(HTML.text(title))</title>"
        out += "<rect x=\"\(f(labelW))\" y=\"6\" width=\"12\" height=\"10\" fill=\"\(colours.0)\"/><text x=\"\(f(labelW + 16))\" y=\"15\" font-size=\"11\">\(HTML.text(names.0))</text>"
        let second = labelW + 30 + Double(names.0.count) * 6.5
        out += "<rect x=\"\(f(second))\" y=\"6\" width=\"12\" height=\"10\" fill=\"\(colours.1)\"/><text x=\"\(f(second + 16))\" y=\"15\" font-size=\"11\">\(HTML.text(names.1))</text>"
        for (i, r) in rows.enumerated() {
            let y = top + Double(i) * rowH
            out += "<text x=\"\(f(labelW - 6))\" y=\"\(f(y + 14))\" text-anchor=\"end\" font-size=\"11\">\(HTML.text(String(r.label.prefix(24))))</text>"
            for (k, v) in [r.first, r.second].enumerated() {
                let bw = v / maxValue * plotW
                out += "<rect class=\"bar\" x=\"\(f(labelW))\" y=\"\(f(y + 2 + Double(k) * 9))\" width=\"\(f(max(bw, 0.5)))\" height=\"8\" fill=\"\(k == 0 ? colours.0 : colours.1)\"><title>\(HTML.text("\(r.label), \(k == 0 ? names.0 : names.1): \(String(format: "%.1f%%", v * 100))"))</title></rect>"
            }
            out += "<text x=\"\(f(labelW + max(r.first, r.second) / maxValue * plotW + 4))\" y=\"\(f(y + 14))\" font-size=\"10\" fill=\"#5b6470\">\(String(format: "%.1f%% / %.1f%%", r.first * 100, r.second * 100))</text>"
        }
        out += "<text x=\"\(f(labelW + plotW / 2))\" y=\"\(f(h - 4))\" text-anchor=\"middle\" font-size=\"11\" fill=\"#5b6470\">\(HTML.text(valueLabel))</text>"
        return out + "</svg>"
    }
}

/// Axis ticks at round values.
public enum Ticks {
    /// About `count` ticks at 1, 2 or 5 times a power of ten within [lo, hi].
    public static func nice(_ lo: Double, _ hi: Double, count: Int) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(max(count, 1))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var t = (lo / step).rounded(.up) * step, out: [Double] = []
        while t <= hi + step * 1e-9 { out.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return out
    }

    /// A tick's label with as many decimals as its step needs.
    public static func label(_ value: Double, step: Double) -> String {
        if abs(value) >= 10000 { return String(format: "%.3g", value) }
        let decimals = step >= 1 ? 0 : min(6, Int((-log10(step)).rounded(.up)))
        return String(format: "%.\(decimals)f", value)
    }

    /// Ticks over seconds since 1970 at round hours or days, labelled in UTC.
    public static func times(_ lo: Double, _ hi: Double, count: Int) -> [(Double, String)] {
        let span = hi - lo
        let steps: [Double] = [60, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 2592000]
        let step = steps.first { span / $0 <= Double(count) } ?? 2592000
        var t = (lo / step).rounded(.up) * step, out: [(Double, String)] = []
        let formatter = DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = step >= 86400 ? "MMM d" : (span > 86400 ? "MMM d HH:mm" : "HH:mm")
        while t <= hi { out.append((t, formatter.string(from: Date(timeIntervalSince1970: t)))); t += step }
        if out.isEmpty { out.append((lo, formatter.string(from: Date(timeIntervalSince1970: lo)))) }
        return out
    }
}

/// A coordinate with two decimals.
func f(_ v: Double) -> String { String(format: "%.2f", v.isFinite ? v : 0) }
