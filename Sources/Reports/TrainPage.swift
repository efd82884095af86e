import Charts
import DroplineSupport
import Explainability
import Foundation
import Imaging
import Modeling
import Pipeline
import Store

/// A training run's page (`report.html` in the run folder).
struct TrainPage {
    let reports: Reports
    let run: RunRecord
    let folder: String

    func render() throws -> String {
        let manifest = PageParts.manifest(folder)
        let description = PageParts.read(ModelDescription.self, folder + "/algorithm/model/model.json")
        let metrics = PageParts.read(ClassificationMetrics.self, folder + "/algorithm/metrics.json")
        let explanations = PageParts.read([Explanation].self, folder + "/explainability/explanations/explanations.json")
        var body: [String] = [decision(manifest)]
        switch description {
        case .success(let d):
            body.append(HTML.section("The model", id: "model", facts(d, manifest: manifest)))
            body.append(d.headSelection == nil
                ? HTML.section("Learning curves", id: "curves", curves(d),
                               note: "Loss and accuracy per epoch on the training images (augmented, as trained) and on the validation images; the kept epoch is marked.")
                : HTML.section("Choosing the head's penalty", id: "curves", curves(d)))
        case .failure(let e):
            body.append(HTML.section("The model", id: "model", PageParts.problem(e)))
        }
        switch metrics {
        case .success(let m):
            body.append(HTML.section("Per-class precision and recall (validation)", id: "classes", perClass(m)))
            body.append(HTML.section("Confusion matrix (validation)", id: "confusion", confusion(m),
                                     note: "Rows are the true classes, columns the predicted ones; the diagonal is what the model got right."))
        case .failure(let e):
            body.append(HTML.section("Validation metrics", id: "classes", PageParts.problem(e)))
        }
        body.append(HTML.section("Sample explanations (validation images)", id: "explanations", sample(explanations, description: try? description.get())))
        body.append(PageParts.refusedSection(manifest))
        body.append(HTML.section("This run's files", id: "files", PageParts.fileLinks(folder: folder, [
            ("manifest.json", "the run: components, inputs with their hashes, parameters, times"),
            ("algorithm/model/model.json", "the model: architecture, preprocessing, classes, history, recipe"),
            ("algorithm/metrics.json", "validation metrics of the kept epoch"),
            ("monitoring/artifacts/drift.json", "the drift artifacts learned from the raw training images"),
            ("explainability/explanations/explanations.json", "the sample explanations"),
        ])))
        let subtitle = [
            "run " + HTML.text(run.id), "finished " + HTML.text(run.finishedAt ?? run.startedAt),
            run.modelVersion.map { "model v\($0)" } ?? "", HTML.link("../../dashboard.html", "dashboard"),
        ].filter { !$0.isEmpty }.joined(separator: " · ")
        return HTML.page(title: "Training on \(run.subject)" + (run.modelVersion.map { " → model v\($0)" } ?? ""), subtitle: subtitle, body: body,
                         generated: ISOTime.now())
    }

    /// The promotion decision for the run's version, as the registry recorded it.
    func decision(_ manifest: Result<RunManifest, ReportError>) -> String {
        guard let v = run.modelVersion else { return "<div class=\"verdict warn\">This run registered no model version.</div>" }
        let model = try? reports.index.model(version: v)
        let history = (try? reports.index.history(version: v)) ?? []
        var out: String
        switch model?.state {
        case .champion?:
            let why = history.last { $0.toState == .champion }?.reason ?? ""
            out = "<div class=\"verdict good\">\(HTML.badge("CHAMPION", .good)) Model v\(v) serves now. \(HTML.text(why))</div>"
        case .archived?:
            out = "<div class=\"verdict warn\">\(HTML.badge("archived", .neutral)) Model v\(v) was champion and has been replaced. \(HTML.text(history.last?.reason ?? ""))</div>"
        case .candidate?:
            let why = history.last.map { $0.reason } ?? "no promotion decision recorded yet (the rules' promote action decides after training)"
            out = "<div class=\"verdict warn\">\(HTML.badge("candidate", .warn)) Model v\(v) was not promoted: \(HTML.text(why))</div>"
        case nil:
            out = "<div class=\"verdict warn\">Model v\(v) is not in the index.</div>"
        }
        if case .success(let m) = manifest, let b = m.baseline, let model {
            out += "<p>Compared on this run's validation images: v\(v) \(percent(model.validationAccuracy)) against the champion of the time, v\(b.version), \(percent(b.accuracy)).</p>"
        }
        if !history.isEmpty {
            out += HTML.table(["at", "from", "to", "reason", "by"], history.map {
                [HTML.text($0.at), HTML.text($0.fromState?.rawValue ?? "-"), HTML.text($0.toState.rawValue), HTML.text($0.reason), HTML.text($0.actor)]
            })
        }
        return out
    }

    func facts(_ d: ModelDescription, manifest: Result<RunManifest, ReportError>) -> String {
        var pairs: [(String, String)] = [
            ("architecture", HTML.text(d.architecture) + (d.backbone.map { " on " + HTML.text((($0.modelJson as NSString).deletingLastPathComponent as NSString).lastPathComponent) + " (cut " + HTML.text($0.cut) + ")" } ?? "")),
            ("input", "\(d.preprocessing.imageSize) px, \(HTML.text(d.preprocessing.resize))"),
            ("classes", "\(d.classes.count): " + HTML.text(d.classes.joined(separator: ", "))),
            ("training images", "\(d.training.images)" + (d.training.rejected > 0 ? " (\(d.training.rejected) refused)" : "")),
            ("validation images", "\(d.validation.images)"),
            d.headSelection.map { ("head", String(format: "logistic regression, C %.3g chosen on validation", $0.chosen.c) + ($0.chosen.augmented ? " (with flipped copies)" : "")) }
                ?? ("epochs", "\(d.history.count) of \(d.configuration.epochs) run; epoch \(d.bestEpoch) kept"),
            ("validation accuracy", percent(d.metrics.accuracy, 2) + ", loss " + String(format: "%.3f", d.metrics.loss)),
            ("training time", String(format: "%.1f s", d.history.map(\.seconds).reduce(0, +))),
        ]
        if case .success(let m) = manifest, let s = m.seconds {
            pairs.append(("time per component", s.sorted { $0.key < $1.key }.map { "\(HTML.text($0.key)) \(String(format: "%.1f", $0.value)) s" }.joined(separator: ", ")))
        }
        return HTML.facts(pairs)
    }

    func curves(_ d: ModelDescription) -> String {
        if let selection = d.headSelection { return headSelection(selection) }
        guard !d.history.isEmpty else { return "<p class=\"note\">No epochs recorded.</p>" }
        func chart(_ title: String, _ y: String, _ train: KeyPath<EpochRecord, Double>, _ validation: KeyPath<EpochRecord, Double>, range: ClosedRange<Double>?) -> String {
            var c = XYChart(title: title, xLabel: "epoch", yLabel: y)
            c.xAxis = .integers
            c.series = [
                .init("training", colour: "#4c78a8", style: .linePoints, points: d.history.map { .init(x: Double($0.epoch), y: $0[keyPath: train]) }),
                .init("validation", colour: "#f58518", style: .linePoints, points: d.history.map { .init(x: Double($0.epoch), y: $0[keyPath: validation]) }),
            ]
            c.markers = [.init(x: Double(d.bestEpoch), label: "kept: epoch \(d.bestEpoch)", colour: "#1a7f37")]
            c.yRange = range
            c.width = 520
            return c.svg()
        }
        return "<div class=\"grid\">" + chart("loss per epoch", "loss", \.trainLoss, \.validationLoss, range: nil)
            + chart("accuracy per epoch", "accuracy", \.trainAccuracy, \.validationAccuracy, range: 0...1) + "</div>"
    }

    /// A logistic head: validation accuracy and loss for every penalty tried, the kept one marked.
    func headSelection(_ s: HeadSelection) -> String {
        func chart(_ title: String, _ y: String, _ value: KeyPath<LinearProbe.Candidate, Double>, range: ClosedRange<Double>?) -> String {
            var c = XYChart(title: title, xLabel: "log10 C (larger: weaker L2 penalty)", yLabel: y)
            c.series = [false, true].compactMap { augmented in
                let points = s.candidates.filter { $0.augmented == augmented }.map { XYChart.Point(x: log10($0.c), y: $0[keyPath: value]) }
                return points.isEmpty ? nil : .init(augmented ? "with flipped copies" : "training images", colour: augmented ? "#f58518" : "#4c78a8",
                                                    style: .linePoints, points: points)
            }
            c.markers = [.init(x: log10(s.chosen.c), label: String(format: "kept: C %.3g", s.chosen.c), colour: "#1a7f37")]
            c.yRange = range
            c.width = 520
            return c.svg()
        }
        return "<div class=\"grid\">" + chart("validation accuracy per penalty", "accuracy", \.validationAccuracy, range: nil)
            + chart("validation loss per penalty", "loss", \.validationLoss, range: nil) + "</div>"
            + "<p class=\"note\">" + HTML.text(String(format: "Logistic regression on the standardised features, fitted to convergence for each C; kept: C %.3g%@, the highest validation accuracy (then the lowest loss), %d L-BFGS iterations.", s.chosen.c, s.chosen.augmented ? " with the flipped copies" : "", s.chosen.iterations)) + "</p>"
    }

    func perClass(_ m: ClassificationMetrics) -> String {
        let rows = m.classes.indices.map { i -> [String] in
            let support = m.confusion[i].reduce(0, +)
            return [HTML.text(m.classes[i]), percent(m.precision[i]), percent(m.recall[i]), "\(support)"]
        }
        return HTML.table(["class", "precision", "recall", "images"], rows)
    }

    func confusion(_ m: ClassificationMetrics) -> String {
        let maximum = max(m.confusion.flatMap { $0 }.max() ?? 1, 1)
        var out = "<table><thead><tr><th>true \\ predicted</th>" + m.classes.map { "<th>\(HTML.text(String($0.prefix(12))))</th>" }.joined() + "</tr></thead><tbody>"
        for (i, row) in m.confusion.enumerated() {
            out += "<tr><th>\(HTML.text(m.classes[i]))</th>"
            for (j, n) in row.enumerated() {
                let strength = Double(n) / Double(maximum)
                let colour = i == j ? "rgba(26,127,55,\(String(format: "%.2f", 0.12 + 0.6 * strength)))" : (n > 0 ? "rgba(198,40,40,\(String(format: "%.2f", 0.12 + 0.7 * strength)))" : "transparent")
                out += "<td class=\"cm\" style=\"background:\(colour)\">\(n)</td>"
            }
            out += "</tr>"
        }
        return out + "</tbody></table>"
    }

    func sample(_ explanations: Result<[Explanation], ReportError>, description: ModelDescription?) -> String {
        switch explanations {
        case .failure(let e): return PageParts.problem(e)
        case .success(let list):
            guard !list.isEmpty else { return "<p class=\"note\">No validation image was explained.</p>" }
            let preprocessing = description?.preprocessing ?? Preprocessing(imageSize: 224, normalization: .imagenet)
            return PageParts.heatmapLegend(target: nil) + "<div class=\"grid\">"
                + list.map { PageParts.explanationCard($0, folder: folder + "/explainability/explanations", preprocessing: preprocessing, extra: []) }.joined()
                + "</div>"
        }
    }
}
