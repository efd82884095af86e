import Charts
import DriftStatistics
import DroplineSupport
import Explainability
import Foundation
import Imaging
import Modeling
import Monitoring
import Pipeline
import Store
import SystemFiles

/// A serve run's page (`report.html` in the run folder).
struct ServePage {
    let reports: Reports
    let run: RunRecord
    let folder: String

    func render() throws -> String {
        let manifest = PageParts.manifest(folder)
        let drift = PageParts.read(DriftReport.self, folder + "/monitoring/drift.json")
        let explanations = PageParts.read([Explanation].self, folder + "/explainability/explanations/explanations.json")
        let model = modelDescription()
        let predictions = (try? reports.index.predictions(run: run.id)) ?? []
        let accuracy = try? reports.index.accuracy(run: run.id)
        var body: [String] = []
        body.append(verdict(drift, accuracy: accuracy ?? nil))
        body.append(HTML.section("Data quality", id: "data-quality", dataQuality(PageParts.read(QualityReport.self, folder + "/monitoring/quality.json")),
                                 note: "Each image's properties against the ranges and shares learned from the model's raw training images (docs/monitoring.md#data-quality); separate from drift: a batch of thumbnails or blank frames breaks these even when the model's features look familiar."))
        if case .success(let d) = drift, d.tested != false {
            body.append(HTML.section("Detectors", id: "detectors", detectors(d, classes: model?.classes),
                                     note: "Each detector tests every feature of the batch against the reference with a two-sample Kolmogorov-Smirnov test; p-values are corrected for the number of features (\(HTML.text(d.thresholds.correction.rawValue))). A detector finds drift when a corrected p-value is below its threshold and that feature's KS statistic D is at least \(number(d.thresholds.minimumStatistic))."))
            body.append(HTML.section("Most drifted features: batch against reference", id: "distributions", distributions(d, classes: model?.classes),
                                     note: "Empirical cumulative distribution functions of the batch (red) and of the reference learned from the training images (grey); the black bar is D, the largest vertical gap, where it is attained."))
            body.append(HTML.section("Every feature, by corrected p-value", id: "features", featureTable(d, classes: model?.classes)))
        }
        body.append(HTML.section("Predicted classes: this batch against the training data", id: "classes", classMix(predictions, model: model)))
        body.append(HTML.section("Confidence", id: "confidence", confidence(predictions),
                                 note: "The model's top-class probability for each served image. A batch the model finds unfamiliar moves to the left."))
        body.append(HTML.section("Explanations of the most outlying images", id: "explanations", explained(explanations, drift: drift, model: model)))
        body.append(PageParts.refusedSection(manifest))
        body.append(HTML.section("This run's files", id: "files", PageParts.fileLinks(folder: folder, [
            ("manifest.json", "the run: components, inputs with their hashes, parameters, times"),
            ("batch.json", "the batch as frozen: every file's path, size and SHA-256"),
            ("monitoring/drift.json", "every detector's and feature's test, outlier scores"),
            ("monitoring/quality.json", "the data-quality check: every violation with the images concerned, each property's summary"),
            ("algorithm/predictions.csv", "every image's prediction with its top 3 classes"),
            ("processing/files.csv", "every file read, with its SHA-256"),
            ("explainability/explanations/explanations.json", "the explanations, with raw attributions beside them"),
        ]) + timing(manifest)))
        let subtitle = [
            "run " + HTML.text(run.id),
            "served " + HTML.text(run.finishedAt ?? run.startedAt),
            run.modelVersion.map { "model v\($0)" } ?? "",
            "\(predictions.count) images",
            HTML.link("../../dashboard.html", "dashboard"),
        ].filter { !$0.isEmpty }.joined(separator: " · ")
        return HTML.page(title: "Batch \(run.subject)", subtitle: subtitle, body: body, generated: ISOTime.now())
    }

    func modelDescription() -> ModelDescription? {
        guard let v = run.modelVersion, let record = try? reports.index.model(version: v) else { return nil }
        return try? PageParts.read(ModelDescription.self, reports.root.path + "/" + record.folder + "/model/model.json").get()
    }

    func verdict(_ drift: Result<DriftReport, ReportError>, accuracy: AccuracyPoint?) -> String {
        var out: String
        switch drift {
        case .failure(let e): out = "<div class=\"verdict warn\">Drift result unavailable: \(HTML.text(e.description))</div>"
        case .success(let d):
            if d.tested == false {
                out = "<div class=\"verdict warn\">\(HTML.badge("NOT TESTED", .warn)) \(HTML.text(d.reason))</div>"
            } else if d.drift {
                out = "<div class=\"verdict bad\">\(HTML.badge("DRIFT", .bad)) \(HTML.text(d.reason))</div>"
            } else {
                out = "<div class=\"verdict good\">\(HTML.badge("no drift", .good)) \(HTML.text(d.reason))</div>"
            }
        }
        if case .success(let d) = drift, let e = d.estimate {
            let tone: HTML.Tone = e.accuracyDrop > 0.03 ? .warn : .good
            out += "<div class=\"verdict \(tone.rawValue)\">\(HTML.badge("estimated accuracy \(percent(e.accuracy))", tone)) \(basis(e)): \(e.accuracyDrop >= 0 ? percent(e.accuracyDrop) + " below" : percent(-e.accuracyDrop) + " above") its \(percent(e.referenceAccuracy)) on held-out training-time images.</div>"
        }
        /// What the estimate was made from, in words.
        func basis(_ e: AccuracyEstimate) -> String {
            let temperature = String(format: "%.2f", e.temperature)
            guard e.method == "cbpe_shift_calibrated", let c = e.confidence else {
                return "from the model's calibrated confidences (no labels needed; temperature \(temperature))"
            }
            return "without labels: the model's mean calibrated confidence, \(percent(c)) (temperature \(temperature)), mapped to accuracy by what the model did on shifted copies of its held-out images"
        }
        if let a = accuracy {
            let tone: HTML.Tone = a.belowConstraint ? .bad : .good
            out += "<div class=\"verdict \(tone.rawValue)\">\(HTML.badge(a.belowConstraint ? "BELOW CONSTRAINT" : "accuracy ok", tone)) accuracy \(percent(a.accuracy)) on \(a.labelled) labelled images (ground truth merged \(HTML.text(a.labelledAt))); the model's constraint is \(percent(a.constraintAccuracy)).</div>"
        } else {
            out += "<p class=\"note\">No ground truth merged for this batch yet (drop a labels file into inbox/labels/).</p>"
        }
        return out
    }

    func dataQuality(_ report: Result<QualityReport, ReportError>) -> String {
        let q: QualityReport
        switch report {
        case .failure(let error):
            return FileSystem.entryType(folder + "/monitoring/quality.json") == nil
                ? "<p class=\"note\">This run was served before data quality was checked.</p>" : PageParts.problem(error)
        case .success(let r): q = r
        }
        guard q.baseline != nil else { return "<p class=\"note\">\(HTML.text(q.reason)).</p>" }
        func share(_ x: Double) -> String { String(format: "%.1f%%", 100 * x) }
        var html = "<p>" + (q.passed ? HTML.badge("within the constraints", .good) : HTML.badge("\(q.violations.count) violation(s)", .bad))
            + " \(q.images) images checked, \(q.refused) refused file(s).</p>"
        if !q.violations.isEmpty {
            html += HTML.table(["property", "check", "observed", "allowed", "what", "images concerned"], q.violations.map { v in
                let names = v.images.prefix(5).map { HTML.text(($0 as NSString).lastPathComponent) }.joined(separator: ", ")
                return [HTML.text(v.property), HTML.text(v.check), share(v.observed), "&le; " + share(v.allowed), HTML.text(v.detail),
                        "\(v.count): " + names + (v.count > 5 ? ", …" : "")]
            })
        }
        func value(_ x: Double) -> String { abs(x) < 1e-9 ? "0" : number(x) }  // a blank frame's contrast is 1e-15, not news
        html += HTML.table(["property", "batch median", "batch minimum", "batch maximum", "allowed range", "images outside"], q.properties.map { p in
            [HTML.text(p.property), value(p.median), value(p.minimum), value(p.maximum), value(p.allowed.minimum) + " – " + value(p.allowed.maximum),
             p.outOfRange == 0 ? "0" : HTML.badge("\(p.outOfRange)", Double(p.outOfRange) / Double(max(q.images, 1)) > q.limits.outOfRangeShare ? .bad : .warn)]
        })
        return html
    }

    static func featureName(_ detector: String, _ feature: Int, classes: [String]?) -> String {
        if detector == "softmax", let classes, feature < classes.count { return "P(\(classes[feature]))" }
        return "\(detector) #\(feature)"
    }

    func detectors(_ d: DriftReport, classes: [String]?) -> String {
        let level = d.thresholds.pValue / Double(max(d.detectors.count, 1))
        let rows = d.detectors.map { det -> [String] in
            [HTML.text(det.name) + (det.name == "encoder" ? " (image features)" : det.name == "softmax" ? " (model's class probabilities)" : ""),
             det.drift ? HTML.badge("drift", .bad) : HTML.badge("no drift", .good),
             number(det.minimumAdjustedPValue), "&lt; " + number(det.level ?? level),
             number(det.maximumStatistic), "&ge; " + number(d.thresholds.minimumStatistic),
             "\(det.driftedFeatures) of \(det.features.count)", number(det.maximumPsi)]
        }
        return HTML.table(["detector", "verdict", "smallest corrected p", "threshold", "largest KS D", "minimum D", "drifted features", "largest PSI"], rows)
            + "<p class=\"note\">Batch of \(d.batchSize) images against a reference of \(d.referenceSize) training images.</p>"
    }

    func distributions(_ d: DriftReport, classes: [String]?) -> String {
        guard let shown = d.distributions, !shown.isEmpty else {
            return "<p class=\"note\">This drift result was written before distributions were recorded; `dropline infer` records them.</p>"
        }
        // the three most drifted per detector, at most six charts
        var charts: [String] = []
        for detector in d.detectors.map(\.name) {
            for s in shown.filter({ $0.detector == detector }).prefix(3) {
                var chart = XYChart(title: "ECDF of \(Self.featureName(s.detector, s.feature, classes: classes)): batch against reference",
                                    xLabel: Self.featureName(s.detector, s.feature, classes: classes), yLabel: "fraction ≤ x")
                let q = (0...100).map { Double($0) / 100 }
                chart.series = [
                    .init("reference", colour: "#8c959f", style: .step, points: zip(s.referenceQuantiles, q).map { .init(x: $0.0, y: $0.1) }),
                    .init("batch", colour: "#d62728", style: .step, points: zip(s.batchQuantiles, q).map { .init(x: $0.0, y: $0.1) }),
                ]
                chart.segments = [.init(x: s.at, y0: s.batchCdf, y1: s.referenceCdf, label: "D = \(String(format: "%.3f", s.statistic))")]
                chart.yRange = 0...1
                chart.width = 400
                chart.height = 230
                charts.append("<div class=\"card\">\(chart.svg())<p>corrected p \(number(s.adjustedPValue))</p></div>")
            }
        }
        return "<div class=\"grid\">" + charts.joined() + "</div>"
    }

    func featureTable(_ d: DriftReport, classes: [String]?) -> String {
        let rows = d.detectors.flatMap { det in det.features.map { (det.name, $0) } }
            .sorted { $0.1.adjustedPValue != $1.1.adjustedPValue ? $0.1.adjustedPValue < $1.1.adjustedPValue : $0.1.statistic > $1.1.statistic }
        let level = d.thresholds.pValue / Double(max(d.detectors.count, 1))
        let shown = rows.prefix(25).map { name, f -> [String] in
            let drifted = f.adjustedPValue < level && f.statistic >= d.thresholds.minimumStatistic
            return [HTML.text(Self.featureName(name, f.feature, classes: classes)), String(format: "%.3f", f.statistic), number(f.pValue),
                    number(f.adjustedPValue) + (drifted ? " " + HTML.badge("drift", .bad) : ""), String(format: "%.3f", f.psi),
                    HTML.badge(f.psiTier.rawValue, f.psiTier == .major ? .bad : f.psiTier == .moderate ? .warn : .neutral)]
        }
        return HTML.table(["feature", "KS D", "p", "corrected p", "PSI", "PSI tier"], shown)
            + (rows.count > 25 ? "<p class=\"note\">\(rows.count - 25) more features in monitoring/drift.json. PSI tiers: stable below 0.1, moderate below 0.25, major above.</p>" : "")
    }

    func classMix(_ predictions: [PredictionRecord], model: ModelDescription?) -> String {
        guard let model, !predictions.isEmpty else { return "<p class=\"note\">No predictions (or the model's description is not readable).</p>" }
        var counts = [String: Int]()
        for p in predictions { counts[p.predicted, default: 0] += 1 }
        let trainingTotal = max(model.training.perClass.reduce(0, +), 1)
        let rows = model.classes.enumerated().map { i, c in
            (label: c, first: Double(counts[c] ?? 0) / Double(predictions.count),
             second: i < model.training.perClass.count ? Double(model.training.perClass[i]) / Double(trainingTotal) : 0)
        }
        return PairedBarChart(title: "predicted class shares against training class shares", valueLabel: "share of images",
                              names: ("this batch (predicted)", "training data"), rows: rows).svg()
    }

    func confidence(_ predictions: [PredictionRecord]) -> String {
        guard !predictions.isEmpty else { return "<p class=\"note\">No predictions.</p>" }
        var bins = [Double](repeating: 0, count: 10)
        for p in predictions { bins[min(9, Int(p.confidence * 10))] += 1 }
        let mean = predictions.map(\.confidence).reduce(0, +) / Double(predictions.count)
        return ColumnChart(title: "histogram of top-class confidence", xLabel: "confidence", yLabel: "images",
                           bins: bins.enumerated().map { (label: String(format: "%.1f", Double($0.offset) / 10), value: $0.element) }).svg()
            + "<p>mean confidence \(percent(mean)); \(predictions.filter { $0.confidence < 0.5 }.count) of \(predictions.count) images below 50%.</p>"
    }

    func explained(_ explanations: Result<[Explanation], ReportError>, drift: Result<DriftReport, ReportError>, model: ModelDescription?) -> String {
        guard case .success(let list) = explanations else {
            if case .failure(let e) = explanations { return PageParts.problem(e) }
            return ""
        }
        guard !list.isEmpty else { return "<p class=\"note\">No image was explained in this run (its budget chose none).</p>" }
        let scores = (try? drift.get().outliers).map { Dictionary($0.map { ($0.path, $0.score) }, uniquingKeysWith: { a, _ in a }) } ?? [:]
        let preprocessing = model?.preprocessing ?? Preprocessing(imageSize: 224, normalization: .imagenet)
        let cards = list.map { e in
            PageParts.explanationCard(e, folder: folder + "/explainability/explanations", preprocessing: preprocessing,
                                      extra: scores[e.path].map { [("outlier score", String(format: "%.2f", $0) + " (Mahalanobis distance from the reference)")] } ?? [])
        }
        return PageParts.heatmapLegend(target: nil) + "<div class=\"grid\">" + cards.joined() + "</div>"
    }

    func timing(_ manifest: Result<RunManifest, ReportError>) -> String {
        guard case .success(let m) = manifest, let s = m.seconds, !s.isEmpty else { return "" }
        return "<p class=\"note\">Time per component: " + s.sorted { $0.key < $1.key }.map { "\(HTML.text($0.key)) \(String(format: "%.2f", $0.value)) s" }.joined(separator: ", ") + ".</p>"
    }
}
