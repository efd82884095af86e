import ArgumentParser
import DroplineSupport
import Explainability
import Foundation
import Modeling
import Monitoring
import Pipeline

struct ComponentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "component",
        abstract: "Run one of the four components, in train or serve mode, as a batch job on folders.",
        discussion: """
        Each run writes its outputs and manifest.json (inputs with hashes, outputs, parameters, version, \
        start and end, outcome) into --output, which must be new or empty.

          processing     train: --input <stage with train/ and validation/>  -> train/, validation/ (resized; train also rotated copies)
                         serve: --input <batch folder>                       -> images/, files.csv
          algorithm      train: --input <processing train output>            -> model/, metrics.json
                         serve: --input <processing serve output> --model    -> predictions.csv
          monitoring     train: --input <training images> [--input <held-out images>] [--model] -> artifacts/, quality/
                         serve: --input <batch folder> --artifacts [--quality] [--model] -> drift.json, quality.json
          explainability train: --input <validation images> --model          -> explanations/ (a seeded sample)
                         serve: --input <batch folder> --model [--budget]    -> explanations/
        """
    )

    @Argument(help: "processing, algorithm, monitoring or explainability.")
    var component: String

    @Option(help: "train or serve.")
    var mode: String

    @Option(help: "Input folder(s), as the component and mode need (see above).")
    var input: [String]

    @Option(help: "Output folder (new or empty).")
    var output: String

    @Option(help: "A model folder (algorithm serve, monitoring with the softmax detector, explainability).")
    var model: String?

    @Option(help: "Drift artifacts (monitoring serve).")
    var artifacts: String?

    @Option(help: "A data-quality baseline folder (monitoring serve; default: the quality/ folder beside --artifacts, as train mode writes it).")
    var quality: String?

    @Option(help: "Processing: square image side (default 96; 224 for a MobileNet backbone).")
    var imageSize = 96

    @Option(help: "Algorithm train: scratch, small-cnn or backbone:<model.json>.")
    var arch = "scratch"

    @Option(help: "Algorithm train: maximum epochs.")
    var epochs: Int?

    @Option(help: "Explainability: all, sample:N, least-confident:K or drift:<drift.json>[:K] (default: sample:8 in train mode, least-confident:8 in serve mode).")
    var budget: String?

    @Option(help: "Explainability: integration steps.")
    var steps = 50

    @Option(help: "Seed for augmentation, training and sampling.")
    var seed: UInt64 = 1

    @Flag(help: "Print the manifest as JSON.")
    var json = false

    func validate() throws {
        guard ComponentName(rawValue: component) != nil else { throw ValidationError("component must be processing, algorithm, monitoring or explainability, not '\(component)'") }
        guard let m = ComponentMode(rawValue: mode) else { throw ValidationError("--mode must be train or serve") }
        let needsModel = (component == "algorithm" && m == .serve) || component == "explainability"
        if needsModel && model == nil { throw ValidationError("\(component) in \(mode) mode needs --model") }
        if component == "monitoring" && m == .serve && artifacts == nil { throw ValidationError("monitoring in serve mode needs --artifacts") }
        if let budget { _ = try ExplanationBudget(parsing: budget) }
    }

    func run() throws {
        let m = ComponentMode(rawValue: mode)!
        let manifest: ComponentManifest
        switch ComponentName(rawValue: component)! {
        case .processing:
            var p = ProcessingComponent(imageSize: imageSize)
            p.seed = seed
            manifest = m == .train ? try p.train(stage: input[0], output: output) : try p.serve(batch: input[0], output: output)
        case .algorithm:
            if m == .train {
                var c = try TrainingConfiguration.defaults(forArch: arch)
                c.imageSize = imageSize
                if let epochs { c.epochs = epochs }
                c.seed = seed
                var a = AlgorithmComponent()
                let display = TrainingDisplay(quiet: json)
                a.report = display.handle
                manifest = try a.train(processed: input[0], configuration: c, output: output)
            } else {
                manifest = try AlgorithmComponent().serve(processed: input[0], model: model!, output: output)
            }
        case .monitoring:
            if m == .train {
                manifest = try MonitoringComponent().train(images: input[0], holdout: input.count > 1 ? input[1] : nil, model: model,
                                                           progress: TerminalProgress("learning accuracy under shift", total: ShiftCalibration.setCount, unit: "shifted sets"),
                                                           output: output)
            } else {
                manifest = try MonitoringComponent().serve(batch: input[0], artifacts: artifacts!, quality: quality, model: model, output: output).0
            }
        case .explainability:
            var e = ExplainabilityComponent()
            e.steps = steps
            e.seed = seed
            let chosen = try ExplanationBudget(parsing: budget ?? (m == .train ? "sample:8" : "least-confident:8"))
            manifest = try e.run(mode: m, images: input[0], model: model!, budget: chosen, output: output)
        }
        if json {
            try JSONOutput.print(manifest)
        } else {
            print("\(manifest.component.rawValue) \(manifest.mode.rawValue): \(manifest.outcome) -> \(output)")
            for (key, path) in manifest.outputs.sorted(by: { $0.key < $1.key }) { print("  \(key): \(output)/\(path)") }
            for r in manifest.rejected { print("  skipped \(r.path): \(r.outcome): \(r.reason)") }
        }
    }
}
