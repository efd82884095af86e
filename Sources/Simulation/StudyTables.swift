import Datasets
public import DroplineSupport
import Foundation

/// The study's two tables, as text for a terminal and as Markdown for the report.
public enum StudyTables {
    /// (a) One row per step.
    public static func stepRows(_ r: StudyResult) -> TextTable {
        let header = ["step", "input test set", "drift artifacts from", "KS drift", "min corrected p", "max D", "retraining", "serving accuracy", "estimated", "confidence"]
        let rows = r.steps.map { s -> [String] in
            let retraining: String
            if let v = s.newModel {
                retraining = "v\(v) on \(s.newModelStage ?? "?")" + (s.promoted ? " (champion)" : " (candidate)")
            } else {
                retraining = s.drift ? "triggered, no model" : "no"
            }
            return ["\(s.step)", s.testSet, "\(s.driftArtifactsStage) (v\(s.servingModel))", s.drift ? "yes" : "no",
                    s.minimumAdjustedPValue.map { String(format: "%.2g", $0) } ?? "-", s.maximumStatistic.map { String(format: "%.3f", $0) } ?? "-",
                    retraining, String(format: "%.1f%%", 100 * s.accuracy), s.estimatedAccuracy.map { String(format: "%.1f%%", 100 * $0) } ?? "-",
                    s.meanConfidence.map { String(format: "%.1f%%", 100 * $0) } ?? "-"]
        }
        return TextTable(header: header, rows: rows, rule: true)
    }

    /// The estimates against the accuracy measured from the ground truth: mean absolute error in points,
    /// of the estimate and of calibrated confidence alone.
    public static func estimateSummary(_ r: StudyResult) -> String? {
        let pairs = r.steps.compactMap { s in s.estimatedAccuracy.map { abs($0 - s.accuracy) } }
        guard !pairs.isEmpty else { return nil }
        var line = String(format: "accuracy estimated without labels against the ground truth: mean absolute error %.1f points over %d batches, largest %.1f",
                          100 * pairs.reduce(0, +) / Double(pairs.count), pairs.count, 100 * (pairs.max() ?? 0))
        let alone = r.steps.compactMap { s in s.meanConfidence.map { abs($0 - s.accuracy) } }
        if !alone.isEmpty {
            line += String(format: " (calibrated confidence alone: %.1f, largest %.1f)", 100 * alone.reduce(0, +) / Double(alone.count), 100 * (alone.max() ?? 0))
        }
        return line
    }

    /// (b) One row per model, accuracy and loss on each stage's test set.
    public static func modelRows(_ r: StudyResult) -> TextTable {
        let header = ["model"] + r.stages
        let rows = r.models.map { m in
            ["v\(m.version) (\(m.trainedOn))"] + r.stages.map { stage in
                m.scores[stage].map { String(format: "%.1f%% / %.3f", 100 * $0.accuracy, $0.loss) } ?? "-"
            }
        }
        return TextTable(header: header, rows: rows, rule: true)
    }

    public static func text(_ r: StudyResult) -> String {
        var out = "(a) batch inference, step by step\n"
        out += stepRows(r).render() + "\n"
        if let e = estimateSummary(r) { out += e + "\n" }
        out += "\n(b) accuracy / loss of each model on each stage's test set\n"
        out += modelRows(r).render() + "\n"
        return out
    }

    public static func markdown(_ r: StudyResult) -> String {
        var out = "# Drift study\n\n"
        out += "Data: `\(r.data)`; root: `\(r.root)`; \(r.cycles) cycle(s) of the seven test sets; stage seed \(r.seed); "
        out += "model: \(r.architecture), \(r.imageSize) px; \(String(format: "%.0f", r.seconds)) s.\n\n"
        out += "The test set of each stage was dropped as a production batch (`inbox/production/<stage>/<stage>-c<cycle>`) and "
        out += "served by the champion; a drift flag made the rules retrain on that stage's train and validation data and "
        out += "promote the new model when the policy allowed. Accuracy is the serving model's, from the ground truth.\n\n"
        out += "## (a) Batch inference, step by step\n\n" + table(stepRows(r))
        if let e = estimateSummary(r) { out += "\n" + e.prefix(1).uppercased() + e.dropFirst() + ".\n" }
        out += "\n## (b) Accuracy / loss of each model on each stage's test set\n\n" + table(modelRows(r))
        if !r.skippedImages.isEmpty {
            out += "\n## Images left out\n\n" + r.skippedImages.map { "- `\($0.path)`: \($0.reason)\n" }.joined()
        }
        out += "\nWhere to look: the run folders in `outputs/runs/`, model versions in `outputs/models/`, handled flags in "
        out += "`flags/done/`, the daemon's log in `logs/watch.log`, everything indexed in `index.sqlite` "
        out += "(`dropline status`, `dropline runs`, `dropline models`, `dropline show`).\n"
        return out
    }

    static func table(_ t: TextTable) -> String {
        func line(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |\n" }
        return line(t.header) + line(t.header.map { _ in "---" }) + t.rows.map(line).joined()
    }
}
