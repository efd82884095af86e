import ArgumentParser
import DroplineSupport

/// The `dropline` executable: argument parsing and wiring only; the work is in the libraries.
@main
struct Dropline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dropline",
        abstract: "Drop-folder MLOps for image classification: classify, watch for drift, explain, retrain.",
        discussion: "Run `dropline help <command>` or `dropline <command> --help` for each command.",
        version: DroplineVersion.current,
        subcommands: [InitCommand.self, TrainCommand.self, InferCommand.self, RunsCommand.self, RecoverCommand.self, ShowCommand.self, ModelsCommand.self, LabelsCommand.self, ComponentCommand.self, ImageCommand.self, ModelCommand.self, DriftCommand.self, ExplainCommand.self, RulesCommand.self, WatchCommand.self, StatusCommand.self, ReportCommand.self, ConfigCommand.self, DatasetCommand.self, SimulateCommand.self, DemoCommand.self, BenchCommand.self, ShardCommand.self]
    )

    /// ArgumentParser's entry point, after the thread policy (`ThreadPolicy`), which must be set
    /// before anything else runs.
    static func main() async {
        ThreadPolicy.apply()
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
