import ArgumentParser
import Datasets
import DroplineSupport
import Foundation
import SystemFiles
import Rules
import Imaging
import Modeling
import Simulation

struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset",
        abstract: "Prepare labelled datasets: the seven drift stages of the study, Fashion-MNIST as image folders.",
        subcommands: [Stages.self, FashionMNISTCommand.self]
    )

    struct Stages: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stages",
            abstract: "Write the seven drift stages of a labelled dataset: <out>/<stage>/{train,validation,test}/<class>/.",
            discussion: """
            <data> has train/, validation/ and test/, each with one sub-folder per class. The stages are original \
            (copied byte for byte), stage-1 (random horizontal flip, p 0.5), stage-2 (random rotation within ±45°), \
            stage-3 (rotation within ±45° and random flip), stage-4 (gaussian blur, sigma 1-2, and rotation within ±10°), \
            stage-5 (blur, sigma 1-2, and rotation within ±45°) and noisy (blur, sigma 2.5-3.5, rotation within ±90°, \
            random flip, gaussian noise sigma 20); rotations keep the size and fill the corners black; transformed \
            images are written as PNG. Each image's randomness is seeded from --seed and its place, so a seed gives \
            the same images anywhere. Files already written are kept (an interrupted run resumes). Images that \
            cannot be decoded are left out of every stage and listed.
            """
        )
        @Option(help: "The labelled dataset (train/, validation/, test/ with class folders).") var data: String
        @Option(help: "Where the stages go.") var out: String
        @Option(help: "Seed of the random transforms.") var seed: UInt64 = 1
        @Flag(help: "Print a JSON summary.") var json = false

        func run() throws {
            let dataset = try LabelledDataset(root: data)
            let total = DriftStage.allCases.count * dataset.imageCount
            let out = self.out
            let skipped = try StageGenerator(seed: seed).generate(dataset, destination: { "\(out)/\($0.rawValue)/\($1)" },
                                                                 progress: TerminalProgress("stages", total: total, unit: "images"))
            let counts = Dictionary(uniqueKeysWithValues: LabelledDataset.splits.map { ($0, (dataset.files[$0]?.count ?? 0)) })
            if json {
                try JSONOutput.print(StagesSummary(data: data, out: out, seed: seed, classes: dataset.classes,
                                                            stages: DriftStage.allCases.map { .init(name: $0.rawValue, transform: $0.summary) },
                                                            imagesPerStage: counts, skipped: skipped))
            } else {
                for stage in DriftStage.allCases { print("\(out)/\(stage.rawValue): \(stage.summary)") }
                print("per stage: " + LabelledDataset.splits.map { "\(counts[$0]!) \($0)" }.joined(separator: ", ") + " images, \(dataset.classes.count) classes")
                for s in skipped { print("left out \(s.path): \(s.reason)") }
            }
        }
    }

    struct FashionMNISTCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fashion-mnist",
            abstract: "Write a subset of Fashion-MNIST (Debian's dataset-fashion-mnist) as <out>/{train,validation,test}/<class>/*.png.",
            discussion: """
            Train and validation are the first --train and the next --validation images of each class in the \
            training file (disjoint); test is the first --test images of each class in the test file. 28x28 grey \
            images as PNG. Files already written are kept.
            """
        )
        @Option(help: "The folder with the four IDX files (.gz or not).") var from = FashionMNIST.debianFolder
        @Option(help: "Where the image folders go.") var out: String
        @Option(help: "Training images per class.") var train = 150
        @Option(help: "Validation images per class.") var validation = 40
        @Option(help: "Test images per class.") var test = 40

        func validate() throws {
            if train < 1 || validation < 1 || test < 1 { throw ValidationError("--train, --validation and --test must be at least 1") }
        }

        func run() throws {
            let subset = FashionMNIST.Subset(train: train, validation: validation, test: test)
            let counts = try FashionMNIST.export(from: from, to: out, subset: subset,
                                                 progress: TerminalProgress("fashion-mnist", total: subset.imageCount, unit: "images"))
            print("\(out): " + LabelledDataset.splits.map { "\(counts[$0] ?? 0) \($0)" }.joined(separator: ", ") + " images in 10 classes")
        }
    }
}

struct StagesSummary: Encodable {
    struct Stage: Encodable { var name: String; var transform: String }
    var data: String
    var out: String
    var seed: UInt64
    var classes: [String]
    var stages: [Stage]
    var imagesPerStage: [String: Int]
    var skipped: [StageGenerator.Skipped]
}

/// Options shared by `simulate` and `demo`.
struct StudyOptions: ParsableArguments {
    @Option(help: "How many times the seven test sets are fed (Original, 1, 2, 3, 4, 5, Noisy, Original, ...).") var cycles = 1
    @Option(help: "Seed of the stage transforms.") var seed: UInt64 = 1
    @Option(help: "How many daemon jobs run at once.") var jobs = 1
    @Option(help: "Seconds one step (a batch and the retraining it starts) may take.") var stepTimeout = 3 * 3600.0
    @Flag(help: "Print the result as JSON on standard output (progress stays on standard error).") var json = false
    @Option(help: "The rules file the study's root gets (default: the shipped rules/default.yaml); examples/rules-harm-gated.yaml retrains only when drift is expected to cost accuracy.") var rules: String?

    func validate() throws {
        if cycles < 1 { throw ValidationError("--cycles must be at least 1") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }

    func run(data: String, root: String, training: TrainingConfiguration) throws -> StudyResult {
        var options = SimulationOptions(training: training)
        options.cycles = cycles
        options.seed = seed
        options.concurrentJobs = jobs
        options.stepTimeout = stepTimeout
        let text = try rules.map { file -> String in
            let t = String(decoding: try AtomicFile.read(file, limit: 256 << 10), as: UTF8.self)
            _ = try RuleSet.parse(yaml: t, file: file)  // refused before anything is written
            return t
        } ?? DefaultRules.yaml
        var simulation = Simulation(data: data, root: root, options: options, rules: text)
        simulation.say = { Console.note($0) }
        simulation.progress = { label, total, unit in TerminalProgress(label, total: total, unit: unit) }
        simulation.trainingReport = TrainingDisplay(quiet: false).handle
        let result = try simulation.run()
        if json {
            try JSONOutput.print(result)
        } else {
            print(StudyTables.text(result))
            print("report:  \(result.report)")
            print("results: \(result.root)/simulation/results.json")
            print("look at: \(result.root)/outputs/runs (run folders), \(result.root)/outputs/models (model versions), \(result.root)/flags/done (handled flags)")
            print("         `dropline status \(result.root)`, `dropline runs \(result.root)`, `dropline models list \(result.root)`; the index is \(result.root)/index.sqlite")
            print(String(format: "took %.0f s", result.seconds))
        }
        return result
    }
}

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Reproduce the drift study end to end on a labelled dataset, through the real daemon.",
        discussion: """
        Creates <root> (it must not exist or be empty), writes the seven drift stages of <data> (see `dropline dataset \
        stages`: train and validation into inbox/training/<stage>/, test sets aside in simulation/test/), trains on \
        original, starts the watch daemon with the default rules, and drops the test sets as production batches \
        (inbox/production/<stage>/<stage>-c<cycle>, marker last) in the study's order, waiting for each batch and any \
        retraining its drift flag starts. Prints (a) per step: the test set, the stage behind the serving model's \
        drift artifacts, the KS result, the retraining, the serving model's accuracy from the ground truth; (b) the \
        accuracy and loss of every model on every stage's test set. Also written to <root>/simulation/report.md and \
        results.json.
        """
    )

    @Option(help: "A labelled dataset: train/, validation/ and test/ with one sub-folder per class.") var data: String
    @Option(help: "The root to create.") var root: String
    @Option(help: "scratch, small-cnn or backbone:<model.json>.") var arch = "scratch"
    @Option(help: "Square input size (default: 96, or 224 for a backbone).") var imageSize: Int?
    @Option(help: "Maximum epochs of each training.") var epochs: Int?
    @OptionGroup var study: StudyOptions

    func run() throws {
        _ = try study.run(data: data, root: root, training: try TrainingConfiguration.defaults(forArch: arch, imageSize: imageSize, epochs: epochs))
    }
}

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job, on a fresh machine: the drift study on a Fashion-MNIST subset, in a few minutes.",
        discussion: """
        Writes a Fashion-MNIST subset (from Debian's dataset-fashion-mnist, which README's first command installs) \
        as labelled PNG folders in <root>-data, then runs `dropline simulate` on it into <root> with the reference \
        small CNN at 32 px, and prints the two tables and where to look.
        """
    )

    @Option(help: "The root to create (its dataset goes beside it, in <root>-data).") var root = "dropline-demo"
    @Option(help: "The folder with Fashion-MNIST's IDX files.") var from = FashionMNIST.debianFolder
    @Option(help: "Training images per class (validation and test: a quarter each).") var perClass = 160
    @Option(help: "Maximum epochs of each training.") var epochs = 15
    @Flag(help: "Remove <root> first when it is a Dropline root left by an earlier demo.") var replace = false
    @OptionGroup var study: StudyOptions

    func validate() throws {
        if perClass < 8 { throw ValidationError("--per-class must be at least 8") }
    }

    func run() throws {
        let fm = FileManager.default
        if replace, fm.fileExists(atPath: root) {
            guard fm.fileExists(atPath: root + "/index.sqlite"), fm.fileExists(atPath: root + "/simulation") else {
                throw ValidationError("'\(root)' is not a root an earlier demo made (no index.sqlite and simulation/); not removing it")
            }
            try fm.removeItem(atPath: root)
        }
        let data = root + "-data"
        Console.note("writing a Fashion-MNIST subset to \(data)")
        let subset = FashionMNIST.Subset(train: perClass, validation: perClass / 4, test: perClass / 4)
        try FashionMNIST.export(from: from, to: data, subset: subset,
                                progress: TerminalProgress("fashion-mnist", total: subset.imageCount, unit: "images"))
        var training = TrainingConfiguration.defaults(architecture: "small-cnn")
        training.imageSize = 32
        training.epochs = epochs
        _ = try study.run(data: data, root: root, training: training)
    }
}
