import ArgumentParser
import DroplineSupport
import Explainability
import Foundation
import Imaging
import Modeling
import SystemFiles

struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain a model's predictions with integrated gradients: heatmaps and summaries.",
        discussion: """
        For each selected image: <out>/NNNN-<name>.png (attribution magnitude over the image) and \
        <out>/NNNN-<name>.json (prediction, baseline, steps, completeness delta, top regions); \
        <out>/explanations.json lists them all. Attributions are for the predicted class's logit.
        """
    )

    @Option(help: "A model folder.")
    var model: String

    @Argument(help: "Image files or folders.")
    var paths: [String]

    @Option(help: "Folder for heatmaps and summaries (created if missing).")
    var out: String

    @Option(help: "Integration steps.")
    var steps = 50

    @Option(help: "black, blur or noise.")
    var baseline = "black"

    @Option(help: "gausslegendre (default, as Captum), riemann_trapezoid or cosine_trapezoid (nested: --adaptive refines an image by adding points to the ones it has).")
    var method = "gausslegendre"

    @Flag(help: "After every image is explained at --steps, refine the images whose relative completeness delta is 1% or more while the whole set stays within --passes-per-image: with cosine_trapezoid in rounds, each adding points to the ones an image has (n to 2n + 1); otherwise once, at twice the steps, worst first.")
    var adaptive = false

    @Option(help: "With --adaptive: forward and backward passes (path points) per image, for the set.")
    var passesPerImage = 250

    @Option(help: "all, sample:N, least-confident:K, or drift:<drift.json>[:K].")
    var budget = "all"

    @Option(help: "Seed for sampling and noise baselines.")
    var seed: UInt64 = 1

    @Flag(help: "Print the summaries as JSON.")
    var json = false

    func validate() throws {
        guard Baseline(rawValue: baseline) != nil else { throw ValidationError("--baseline must be black, blur or noise") }
        guard Quadrature(rawValue: method) != nil else { throw ValidationError("--method must be gausslegendre, riemann_trapezoid or cosine_trapezoid") }
        guard steps >= 2 && steps <= 2000 else { throw ValidationError("--steps must be between 2 and 2000") }
        _ = try ExplanationBudget(parsing: budget)
    }

    func run() throws {
        let classifier = try Classifier(model: model)
        let explainer = try Explainer(classifier: classifier)
        explainer.steps = steps
        explainer.baseline = Baseline(rawValue: baseline)!
        explainer.method = Quadrature(rawValue: method)!
        explainer.adaptive = adaptive
        explainer.passesPerImage = passesPerImage
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let collection = Loading.collection(paths, side: classifier.preprocessing.imageSize)
        let predictions = try classifier.predict(collection.images)
        let chosen = try ExplanationBudget(parsing: budget).select(paths: collection.items.map(\.path),
                                                                   confidences: predictions.map(\.confidence), seed: seed)
        let progress = TerminalProgress("explaining", total: chosen.count, unit: "images")
        let candidates = chosen.enumerated().map { n, index in
            let item = collection.items[index]
            let base = ((item.path as NSString).lastPathComponent as NSString).deletingPathExtension
            let stem = String(format: "%04d-", n + 1) + base.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.reduce("") { $0 + String($1) }
            let prepared = classifier.preprocessing.prepare(collection.images[index])
            return Explainer.Candidate(prepared: prepared, prediction: predictions[index], path: item.path, sha256: item.sha256,
                                       seed: seed &+ UInt64(index), stem: stem)
        }
        let explanations = try explainer.explainAll(candidates, folder: out) { progress.advance() }
        progress.finish()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try AtomicFile.write(Array(try encoder.encode(explanations)), to: out + "/explanations.json")
        if json {
            try JSONOutput.print(explanations)
            return
        }
        var table = TextTable("IMAGE", "CLASS", "CONFIDENCE", "STEPS", "REL. DELTA", "HEATMAP")
        for e in explanations {
            table.add([e.path, e.predicted, String(format: "%.3f", e.confidence), "\(e.steps)", String(format: "%.2e", e.relativeDelta), out + "/" + e.heatmap])
        }
        print(table.render())
        let deltas = explanations.map(\.relativeDelta).sorted()
        if !deltas.isEmpty { print(String(format: "median relative completeness delta %.3g%%", deltas[deltas.count / 2] * 100)) }
    }
}
