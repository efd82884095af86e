import ArgumentParser
import DroplineSupport
import Explainability
import Foundation
import Logging
import Modeling
import Pipeline
import Rules
import Store

/// Options shared by the pipeline commands.
struct RootArgument: ParsableArguments {
    @Argument(help: "A Dropline root (see `dropline init`).")
    var root: String

    init() {}
    /// For commands that name the root their own way.
    init(root: String) { self.root = root }

    func pipelines() throws -> Pipelines {
        let dropline = try DroplineRoot(existing: root)
        let pipelines = try Pipelines(root: dropline)
        pipelines.configuration = try RootConfiguration.load(root: dropline.path)
        pipelines.logger = Logger(label: "dropline") { _ in MessageLogHandler { Console.note($0) } }
        pipelines.progress = { label, total, unit in TerminalProgress(label, total: total, unit: unit) }
        // this command is an owner of its own runs: a daemon beside it leaves them alone, and its
        // recovery touches only the work of owners that are gone
        pipelines.owner = try OwnerSession(root: dropline, command: CommandLine.arguments.dropFirst().first ?? "dropline")
        try pipelines.recover()
        return pipelines
    }

    /// Runs `body` on the root's pipelines, then refreshes the pages (the new run's, the dashboard,
    /// the metrics file) and publishes the index's snapshot for other machines (also when `body`
    /// fails: a failed run is recorded too, and shown among the dashboard's failures).
    func withPipelines<T>(_ body: (Pipelines) throws -> T) throws -> T {
        let pipelines = try pipelines()
        defer {
            if let index = pipelines.index as? Index {
                RootReports.refresh(index, pipelines.root)
                RootIndex.publish(index, pipelines.root)
            }
        }
        return try body(pipelines)
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Run the training pipeline on a stage of the training inbox; publishes a new model version.",
        discussion: """
        Reads <root>/inbox/training/<stage>/{train,validation}/<class>/ once (each image decoded once), runs \
        processing, algorithm, monitoring and explainability in train mode on it in memory into one run folder \
        (outputs/runs/<run>-train-<stage>; the processed images only with --keep-processed), \
        publishes outputs/models/vNNNN (the model and its drift artifacts), indexes everything, and applies \
        the promotion policy: the new version becomes champion when there is none, or when its validation \
        accuracy is at least the champion's minus 0.01. Without --arch the champion's recipe is used (its \
        architecture and backbone, checked against the backbone's recorded hashes, input size, epochs, head, \
        augmentation and seed; --image-size, --epochs and --seed change it), or scratch's defaults when there is \
        no champion.
        """
    )

    @OptionGroup var root: RootArgument

    @Option(help: "The stage folder under inbox/training.")
    var stage: String

    @Option(help: "scratch, small-cnn or backbone:<model.json> (default: the champion's recipe, or scratch when there is no champion).")
    var arch: String?

    @Option(help: "Square input size (default: 96, or 224 for a backbone).")
    var imageSize: Int?

    @Option(help: "Maximum epochs.")
    var epochs: Int?

    @Option(help: "Seed (default: 1, or the champion's recipe's).")
    var seed: UInt64?

    @Flag(help: "Also write the resized training and validation images (and the rotated copies) into processing/ of the run folder.")
    var keepProcessed = false

    func run() throws {
        // a backbone's training is inference-bound: its thread policy is settled before anything is opened
        try ThreadPolicy.settle {
            let architecture = try arch.map { try TrainingConfiguration.defaults(forArch: $0).architecture }
                ?? root.pipelines().retrainingRecipe(fallback: TrainingConfiguration.defaults(architecture: "scratch"), overrides: []).configuration.architecture
            return architecture == "backbone"
        }
        let (run, version, champion) = try root.withPipelines { pipelines in
            // without --arch, the champion's recipe (as a retraining by the daemon), else the architecture's defaults
            var c: TrainingConfiguration
            if let arch {
                c = try TrainingConfiguration.defaults(forArch: arch, imageSize: imageSize, epochs: epochs)
            } else {
                let recipe = try pipelines.retrainingRecipe(fallback: TrainingConfiguration.defaults(architecture: "scratch"),
                                                            overrides: [TrainingOverrides(imageSize: imageSize, epochs: epochs)])
                Console.note("training with \(recipe.source): \(recipe.configuration.summary)")
                c = recipe.configuration
            }
            if let seed { c.seed = seed }
            pipelines.trainingReport = TrainingDisplay(quiet: false).handle
            pipelines.keepProcessedImages = keepProcessed
            let (run, version) = try pipelines.train(stage: stage, configuration: c)
            return (run, version, try pipelines.champion())
        }
        print("run \(run): model version \(version)\(champion?.version == version ? " (champion)" : " (candidate)")")
    }
}

struct InferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Run the batch-inference pipeline on a batch folder with the champion model.",
        discussion: """
        Runs the four components in serve mode into outputs/runs/<run>-serve-<batch>: predictions.csv, \
        drift.json, explanations (by default the 8 images the drift check ranks as most outlying), and indexes \
        the batch, its images, predictions, drift results and explanations. When drift is detected, writes \
        flags/drift/<stage>~<batch>.json (<batch>.json for a batch outside inbox/production/<stage>/). \
        Each image is read, hashed and decoded once and goes through the four components in memory, 64 at a \
        time; the resized images are written to processing/images/ only with --keep-processed.
        """
    )

    @OptionGroup var root: RootArgument

    @Argument(help: "The batch folder (usually <root>/inbox/production/<batch>).")
    var batch: String

    @Option(help: "Explanations: outliers:K (the default, K = 8: the most outlying images of this batch's drift check), all, sample:N, least-confident:K or drift:<drift.json>[:K].")
    var budget: String?

    @Flag(help: "Also write the resized images the model saw into processing/images/ of the run folder.")
    var keepProcessed = false

    @Option(help: "Gauss-Legendre integration points per explained image, without refinement (default: 63 points of the nested cosine-trapezoid rule, refined where an image's completeness delta is largest, within 120 passes per image).")
    var explainSteps: Int?

    func validate() throws {
        if let explainSteps, explainSteps < 2 || explainSteps > 2000 { throw ValidationError("--explain-steps must be between 2 and 2000") }
    }

    func run() throws {
        let budget = try budget.map { try ExplanationBudget(parsing: $0) }
        let (run, drift, quality) = try root.withPipelines {
            $0.keepProcessedImages = keepProcessed
            $0.explanationSteps = explainSteps
            let (run, drift) = try $0.infer(batch: batch, budget: budget)
            return (run, drift, try $0.index.qualityCheck(run: run))
        }
        let violations = quality?.violations.count ?? 0
        let checked = quality?.baselineSha256 == nil ? "data quality not checked (the model version has no baseline)"
            : violations == 0 ? "data quality within the constraints" : "\(violations) DATA-QUALITY violation(s), flag written to flags/data_quality/"
        print("run \(run): \(drift ? "DRIFT detected, flag written to flags/drift/" : "no drift"); \(checked)")
    }
}

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "List the runs of a root, newest first.")

    @OptionGroup var root: RootArgument

    @Option(help: "How many.")
    var limit = 20

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let index = try RootIndex.reading(root.root)
        let runs = try index.runs(limit: limit)
        if json {
            try JSONOutput.print(runs)
            return
        }
        var table = TextTable("RUN", "KIND", "SUBJECT", "STATUS", "MODEL", "STARTED", "FOLDER")
        for r in runs {
            table.add([r.id, r.kind.rawValue, r.subject, r.status.rawValue, r.modelVersion.map { "v\($0)" } ?? "-", r.startedAt, r.folder ?? (r.error ?? "-")])
        }
        print(table.render())
    }
}

struct RecoverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Finish or fail runs interrupted by a crash, and remove unpublished staging folders.",
        discussion: "A run whose folder was published just before the crash is completed from its manifest; any other interrupted run is marked failed. `train` and `infer` do this first on their own."
    )

    @OptionGroup var root: RootArgument

    func run() throws {
        try root.withPipelines { _ in }
        print("recovered \(root.root)")
    }
}
