import Logging
import DroplineSupport
import Modeling
import Pipeline
import Rules
import Store

/// What a rule's action needs to be performed.
struct ActionContext {
    let root: DroplineRoot
    let pipelines: Pipelines
    let job: Job
    let event: Event
    /// The recipe of retraining runs without a champion, and the command line's overrides.
    let training: TrainingConfiguration
    let overrides: TrainingOverrides
    let commands: CommandRunner
    let stop: StopRequest?
    /// The marker file producers write last (a frozen batch leaves it out, as the queue's hash does).
    var marker = "_READY"
    /// The model version an earlier action of the same rule trained (for `promote`).
    var trained: Int?
    /// The Slurm executor, when the daemon submits its pipelines to Slurm (`--executor slurm`).
    var slurm: SlurmExecutor?

    /// The first attempt's start when the job runs again after the daemon was interrupted: runs that
    /// finished since then (recovery completes a published run) are not run twice.
    var since: String? { job.attempts > 1 ? job.startedAt : nil }
}

/// One action of the rules, performed: each knows how to do its work and how not to do it twice
/// when its job is run again after a crash. Returns what it did, for the log and the index.
protocol DaemonAction {
    func perform(_ context: inout ActionContext) throws -> String
}

extension PlannedAction {
    /// The performer of this planned action. (`ignore` plans nothing: the rules stop at it.)
    var performer: any DaemonAction {
        switch self {
        case .infer(let batch): InferAction(batch: batch)
        case .train(let stage, let options): TrainAction(stage: stage, options: TrainingOverrides(arch: options.arch, imageSize: options.imageSize, epochs: options.epochs))
        case .promote(let policy): PromoteAction(policy: policy)
        case .mergeLabels(let file): MergeLabelsAction(file: file)
        case .run(let arguments, let timeout): RunAction(arguments: arguments, timeout: timeout)
        case .report(let text): ReportAction(text: text)
        }
    }
}

/// `report`: the event, said in the daemon's log at warning level and in the job's record; nothing
/// else is done (the default rules report data-quality flags rather than retrain on them).
struct ReportAction: DaemonAction {
    let text: String

    /// The longest report kept: a flag's reason is whatever its writer put there.
    static let maximumCharacters = 1_000

    func perform(_ context: inout ActionContext) throws -> String {
        // one line, control characters escaped, whatever the flag held
        var line = DisplayText.escaped(text)
        if line.count > Self.maximumCharacters { line = String(line.prefix(Self.maximumCharacters)) + "... (cut)" }
        context.pipelines.logger.warning("reported \(line)", metadata: ["job": "\(context.job.id)"])
        return "reported \(line)"
    }
}

public struct DaemonError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
