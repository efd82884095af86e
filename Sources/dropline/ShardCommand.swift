import ArgumentParser
import DroplineSupport
import Foundation
import Logging
import Modeling
import Pipeline
import Rules
import Store
import JSONFiles

/// The steps `dropline watch --executor slurm` submits as Slurm jobs (docs/scale-out.md). They can be
/// run by hand on a run the daemon planned, to see what a failed job says.
struct ShardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shard",
        abstract: "The Slurm executor's jobs: one shard of a planned serve run, the merge of its shards, a training.",
        discussion: """
        `dropline watch --executor slurm` plans each serve run in <root>/outputs/.staging/<run folder>/ (the frozen \
        batch and shards/plan.json), submits `shard run` as a job array (one task per shard) and `shard merge` after \
        it, and `shard train` for trainings. Each reads the root at the path the daemon gave it.
        """,
        subcommands: [Run.self, Merge.self, Train.self]
    )

    /// The staging folder of a planned run, by its folder name (one path component).
    static func staging(_ root: DroplineRoot, _ run: String) throws -> String {
        guard SafeName.problem(run, what: "run folder") == nil, run.contains("-serve-") else {
            throw ValidationError("--run is the name of a planned serve run's folder under outputs/.staging/ (<run id>-serve-<batch>)")
        }
        return root.staging + "/" + run
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve one shard of a planned run: processing, the algorithm, monitoring's per-image work and explanations, into shards/NNNN/.",
            discussion: "Touches no index. Its output is written into a folder of its own and renamed when complete; a failure of its own is written to shards/NNNN.error.json, so the daemon does not submit it again.")
        @Argument(help: "The Dropline root.") var root: String
        @Option(name: .customLong("run"), help: "The planned run's folder name under outputs/.staging/.") var runFolder: String
        @Option(help: "The shard (Slurm's SLURM_ARRAY_TASK_ID).") var task: Int

        func run() throws {
            let dropline = try DroplineRoot(existing: root)
            // the shard reads the plan, the batch and the model version; the index is the merge's
            let pipelines = Pipelines(root: dropline, index: try Index())
            pipelines.configuration = try RootConfiguration.load(root: dropline.path)
            pipelines.logger = Logger(label: "dropline") { _ in MessageLogHandler { Console.note($0) } }
            pipelines.progress = { label, total, unit in TerminalProgress(label, total: total, unit: unit) }
            let staging = try ShardCommand.staging(dropline, runFolder)
            let started = Date()
            try pipelines.runShard(staging: staging, task: task)
            Console.note("shard \(task) of \(runFolder): done in \(String(format: "%.1f", Date().timeIntervalSince(started))) s on \(ProcessInfo.processInfo.hostName)")
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge a planned run's shards: drift and data-quality checks on the whole batch, the run folder, published and indexed, flags raised.")
        @Argument(help: "The Dropline root.") var root: String
        @Option(name: .customLong("run"), help: "The planned run's folder name under outputs/.staging/.") var runFolder: String
        @Flag(help: "Print JSON.") var json = false

        struct Output: Encodable { var run: String; var drift: Bool }

        func run() throws {
            let arguments = RootArgument(root: root)
            let staging = try ShardCommand.staging(try DroplineRoot(existing: root), runFolder)
            let started = Date()
            let (id, drift) = try arguments.withPipelines { try $0.mergeShards(staging: staging) }
            Console.note("run \(id): merged in \(String(format: "%.1f", Date().timeIntervalSince(started))) s on \(ProcessInfo.processInfo.hostName)")
            if json { return try JSONOutput.print(Output(run: id, drift: drift)) }
            print("run \(id) merged and published: \(drift ? "DRIFT" : "no drift")")
        }
    }

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the training pipeline with a recipe file (the daemon's chosen recipe, as JSON).")
        @Argument(help: "The Dropline root.") var root: String
        @Option(help: "The stage folder under inbox/training.") var stage: String
        @Option(help: "The recipe (TrainingConfiguration as JSON) the daemon chose.") var recipe: String

        func run() throws {
            let configuration = try SnakeCaseJSON.read(TrainingConfiguration.self, from: recipe)
            let (run, version) = try RootArgument(root: root).withPipelines { try $0.train(stage: stage, configuration: configuration) }
            print("trained stage \(stage): run \(run), model version \(version)")
        }
    }
}
