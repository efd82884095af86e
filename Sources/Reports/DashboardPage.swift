import Charts
import DroplineSupport
import Foundation
import JSONFiles
import Monitoring
import Store

/// The root's dashboard (`outputs/dashboard.html`): drift and accuracy over time with the model's
/// trainings and promotions on the same axis, the champion timeline, the daemon and its queue,
/// recent failures, and a link to every recent run's page.
struct DashboardPage {
    let reports: Reports
    var index: Index { reports.index }

    func render() throws -> String {
        let batches = try index.batchTimeline()
        let accuracy = try index.accuracyTimeline()
        let trainings = try index.runs(kind: .train, limit: 200).filter { $0.status == .succeeded }
        let promotions = try index.history()
        let models = try index.models()
        var body: [String] = [try status(models: models)]
        let markers = eventMarkers(trainings: trainings, promotions: promotions, from: batches.first.flatMap { seconds($0.finishedAt) })
        body.append(HTML.section("Drift of every batch", id: "drift", driftCharts(batches, markers: markers),
                                 note: "One point per served batch (click for its page); red points found drift. Dashed vertical lines: trainings (blue) and promotions (green)."))
        body.append(HTML.section("Accuracy: estimated from confidences, and from ground truth", id: "accuracy", accuracyChart(accuracy, estimates: batches, markers: markers)))
        body.append(HTML.section("Champion timeline", id: "champions", championTimeline(promotions, models: models)))
        body.append(HTML.section("Recent batches", id: "batches", recentBatches(batches, accuracy: accuracy)))
        body.append(HTML.section("Recent trainings", id: "trainings", recentTrainings(trainings, models: models)))
        body.append(HTML.section("Recent failures", id: "failures", try failures()))
        let champion = models.first { $0.state == .champion }
        let subtitle = HTML.text(reports.root.path) + " · " + (champion.map { "champion v\($0.version) (\(HTML.text($0.stage)))" } ?? "no champion")
            + " · \(batches.count) batches shown · " + HTML.link("metrics/dropline.prom", "metrics")
        return HTML.page(title: "Dropline dashboard", subtitle: subtitle, body: body, generated: ISOTime.now())
    }

    func status(models: [ModelRecord]) throws -> String {
        let lease = DaemonLease.read(reports.root)
        var pairs: [(String, String)] = []
        if let lease {
            let liveness = Owners.liveness(lease)
            let state: String
            switch liveness {
            case .alive: state = lease.state == "degraded" ? HTML.badge("DEGRADED", .bad) + " " + HTML.text(lease.detail ?? "") : HTML.badge(lease.state, .good)
            case .gone(let why): state = HTML.badge("gone", .bad) + " " + HTML.text(why) + "; a new `dropline watch` takes over"
            }
            pairs.append(("daemon", "\(HTML.text(lease.host)) pid \(lease.pid), since \(HTML.text(lease.startedAt)) " + state))
            pairs.append(("heartbeat", HTML.text(lease.heartbeatAt) + " (lease lasts \(Int(lease.ttlSeconds)) s)"))
        } else if let d = try index.daemonState() {
            pairs.append(("daemon", HTML.badge(d.state == .running ? "not holding the lease" : "stopped", .warn) + " last heartbeat \(HTML.text(d.heartbeatAt))"))
        } else {
            pairs.append(("daemon", HTML.badge("never started", .neutral) + " run `dropline watch " + HTML.text(reports.root.path) + "`"))
        }
        let queued = try index.jobs(states: [.queued], limit: 1000), running = try index.jobs(states: [.running], limit: 100)
        pairs.append(("queue", "\(queued.count) queued, \(running.count) running" + (running.first.map { " (job \($0.id): \(HTML.text($0.event.rawValue)) \(HTML.text($0.path)))" } ?? "")))
        if let c = models.first(where: { $0.state == .champion }) {
            pairs.append(("champion", "v\(c.version), trained on \(HTML.text(c.stage)), validation accuracy \(percent(c.validationAccuracy))"))
        }
        let pending = (try? index.totals().unhandledFlags) ?? 0
        pairs.append(("flags not yet handled", "\(pending)"))
        return HTML.section("Now", id: "now", HTML.facts(pairs))
    }

    func eventMarkers(trainings: [RunRecord], promotions: [PromotionRecord], from: Double?) -> [XYChart.Marker] {
        var markers: [XYChart.Marker] = []
        for t in trainings {
            guard let at = (t.finishedAt).flatMap(seconds), from.map({ at >= $0 - 3600 }) ?? true else { continue }
            markers.append(.init(x: at, label: "train \(t.subject)" + (t.modelVersion.map { " → v\($0)" } ?? ""), colour: "#4c78a8"))
        }
        for p in promotions where p.toState == .champion {
            guard let at = seconds(p.at), from.map({ at >= $0 - 3600 }) ?? true else { continue }
            markers.append(.init(x: at, label: "v\(p.version) champion", colour: "#1a7f37"))
        }
        return markers
    }

    func driftCharts(_ batches: [BatchPoint], markers: [XYChart.Marker]) -> String {
        guard !batches.isEmpty else { return "<p class=\"note\">No batch served yet: drop a folder of images into inbox/production/.</p>" }
        // the thresholds of the newest batch (each batch's own are on its page)
        let newest = batches.last.flatMap { b in try? SnakeCaseJSON.read(DriftReport.self, from: reports.root.path + "/" + b.folder + "/monitoring/drift.json") }
        let level = newest.map { d in d.detectors.first?.level ?? d.thresholds.pValue / Double(max(d.detectors.count, 1)) } ?? 0.025
        let minimumStatistic = newest?.thresholds.minimumStatistic ?? 0.1
        func point(_ b: BatchPoint, _ y: Double) -> XYChart.Point {
            .init(x: seconds(b.finishedAt) ?? 0, y: y, flagged: b.drift,
                  label: "\(b.subject) (\(b.finishedAt)): \(b.drift ? "DRIFT" : "no drift"); \(b.reason)", link: HTML.pathURL(String(b.folder.dropFirst("outputs/".count)) + "/" + Reports.pageFile))
        }
        var p = XYChart(title: "smallest corrected p-value of each batch", xLabel: "served at (UTC)", yLabel: "smallest corrected p (log)")
        p.xAxis = .time
        p.logY = true
        p.series = [.init("batches", colour: "#4c78a8", style: .linePoints, points: batches.compactMap { b in b.minimumAdjustedPValue.map { point(b, max($0, 1e-300)) } })]
        p.rules = [.init(y: level, label: "drift below \(number(level))")]
        p.markers = markers
        p.width = 1100
        let lowest = batches.compactMap(\.minimumAdjustedPValue).filter { $0 > 0 }.min() ?? 1e-3
        p.yRange = pow(10, min(log10(lowest), log10(level) - 1).rounded(.down))...1
        var d = XYChart(title: "largest KS statistic D of each batch", xLabel: "served at (UTC)", yLabel: "largest KS D")
        d.xAxis = .time
        d.series = [.init("batches", colour: "#4c78a8", style: .linePoints, points: batches.compactMap { b in b.maximumStatistic.map { point(b, $0) } })]
        d.rules = [.init(y: minimumStatistic, label: "minimum D \(number(minimumStatistic))")]
        d.markers = markers
        d.yRange = 0...max(1, 0)
        d.width = 1100
        d.height = 220
        return p.svg() + d.svg()
    }

    func accuracyChart(_ points: [AccuracyPoint], estimates: [BatchPoint], markers: [XYChart.Marker]) -> String {
        let estimated = estimates.filter { $0.estimatedAccuracy != nil }
        guard !points.isEmpty || !estimated.isEmpty else {
            return "<p class=\"note\">No ground truth merged yet: drop a labels file (image,class) into inbox/labels/ to measure accuracy on served batches.</p>"
        }
        var c = XYChart(title: "accuracy of each batch: estimated, and from ground truth against the model's constraint", xLabel: "served at (UTC)", yLabel: "accuracy")
        c.xAxis = .time
        c.series = [
            .init("estimated without labels", colour: "#9467bd", style: .linePoints, dashed: true, points: estimated.map {
                .init(x: seconds($0.finishedAt) ?? 0, y: $0.estimatedAccuracy!, label: "\($0.subject): estimated \(percent($0.estimatedAccuracy!)) (drop \(percent($0.estimatedAccuracyDrop ?? 0)))")
            }),
            .init("accuracy", colour: "#4c78a8", style: .linePoints, points: points.map {
                .init(x: seconds($0.servedAt) ?? 0, y: $0.accuracy, flagged: $0.belowConstraint,
                      label: "\($0.subject): \(percent($0.accuracy)) on \($0.labelled) labelled images (constraint \(percent($0.constraintAccuracy)))")
            }),
            .init("constraint", colour: "#c62828", style: .step, dashed: true, points: points.map { .init(x: seconds($0.servedAt) ?? 0, y: $0.constraintAccuracy) }),
        ]
        c.markers = markers
        c.yRange = 0...1
        c.width = 1100
        let below = points.filter(\.belowConstraint).count
        var text = "<p>\(below) of \(points.count) labelled batches below their constraint; red points are below it."
        let byRun = Dictionary(estimated.map { ($0.run, $0.estimatedAccuracy!) }, uniquingKeysWith: { a, _ in a })
        let paired = points.compactMap { p in byRun[p.run].map { abs($0 - p.accuracy) } }
        if !paired.isEmpty {
            text += " Estimated against measured accuracy on the \(paired.count) labelled batches: mean absolute error \(String(format: "%.1f", 100 * paired.reduce(0, +) / Double(paired.count))) points."
        }
        return c.svg() + text + "</p>"
    }

    func championTimeline(_ promotions: [PromotionRecord], models: [ModelRecord]) -> String {
        guard !promotions.isEmpty else { return "<p class=\"note\">No model trained yet.</p>" }
        let byVersion = Dictionary(models.map { ($0.version, $0) }, uniquingKeysWith: { a, _ in a })
        let rows = promotions.reversed().prefix(60).map { p -> [String] in
            let tone: HTML.Tone = p.toState == .champion ? .good : p.toState == .archived ? .neutral : .warn
            let stage = byVersion[p.version]?.stage ?? "?"
            let link = byVersion[p.version]?.trainRunId.flatMap { id in (try? index.run(id))??.folder }.map { HTML.link(String($0.dropFirst("outputs/".count)) + "/" + Reports.pageFile, "v\(p.version)") } ?? "v\(p.version)"
            return [HTML.text(p.at), link, HTML.text(stage), HTML.text(p.fromState?.rawValue ?? "new"), HTML.badge(p.toState.rawValue, tone), HTML.text(p.reason), HTML.text(p.actor)]
        }
        return HTML.table(["at", "version", "stage", "from", "to", "reason", "by"], rows)
    }

    func recentBatches(_ batches: [BatchPoint], accuracy: [AccuracyPoint]) -> String {
        guard !batches.isEmpty else { return "<p class=\"note\">None yet.</p>" }
        let acc = Dictionary(accuracy.map { ($0.run, $0) }, uniquingKeysWith: { a, _ in a })
        let rows = batches.reversed().prefix(40).map { b -> [String] in
            [HTML.text(b.finishedAt), HTML.link(String(b.folder.dropFirst("outputs/".count)) + "/" + Reports.pageFile, b.subject),
             b.modelVersion.map { "v\($0)" } ?? "-", b.drift ? HTML.badge("DRIFT", .bad) : HTML.badge("no drift", .good),
             b.minimumAdjustedPValue.map(number) ?? "-", b.maximumStatistic.map { String(format: "%.3f", $0) } ?? "-", "\(b.batchSize)",
             b.qualityViolations.map { $0 == 0 ? HTML.badge("ok", .good) : HTML.badge("\($0) violation(s)", .bad) } ?? "not checked",
             acc[b.run].map { percent($0.accuracy) + ($0.belowConstraint ? " " + HTML.badge("below", .bad) : "") } ?? "-"]
        }
        return HTML.table(["served", "batch", "model", "verdict", "smallest corrected p", "largest D", "images", "data quality", "accuracy"], rows)
    }

    func recentTrainings(_ trainings: [RunRecord], models: [ModelRecord]) -> String {
        guard !trainings.isEmpty else { return "<p class=\"note\">None yet.</p>" }
        let byVersion = Dictionary(models.map { ($0.version, $0) }, uniquingKeysWith: { a, _ in a })
        return HTML.table(["finished", "stage", "model", "validation accuracy", "state"], trainings.prefix(20).map { t in
            let m = t.modelVersion.flatMap { byVersion[$0] }
            return [HTML.text(t.finishedAt ?? "-"), t.folder.map { HTML.link(String($0.dropFirst("outputs/".count)) + "/" + Reports.pageFile, t.subject) } ?? HTML.text(t.subject),
                    t.modelVersion.map { "v\($0)" } ?? "-", m.map { percent($0.validationAccuracy) } ?? "-", m.map { HTML.text($0.state.rawValue) } ?? "-"]
        })
    }

    func failures() throws -> String {
        let runs = try index.failedRuns(limit: 10), jobs = try index.jobs(states: [.failed], limit: 10)
        guard !runs.isEmpty || !jobs.isEmpty else { return "<p>None.</p>" }
        var out = ""
        if !runs.isEmpty {
            out += "<h3>runs</h3>" + HTML.table(["run", "kind", "subject", "finished", "error"], runs.map {
                [HTML.text($0.id), HTML.text($0.kind.rawValue), HTML.text($0.subject), HTML.text($0.finishedAt ?? "-"), HTML.text(String(($0.error ?? "").prefix(300)))]
            })
        }
        if !jobs.isEmpty {
            out += "<h3>jobs</h3>" + HTML.table(["job", "event", "path", "finished", "detail"], jobs.map {
                ["\($0.id)", HTML.text($0.event.rawValue), HTML.text($0.path), HTML.text($0.finishedAt ?? "-"), HTML.text(String(($0.detail ?? "").prefix(300)))]
            })
        }
        return out
    }
}
