import ArgumentParser
import DroplineSupport
import Foundation
import Modeling
import Rules
import Store

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check and show a root's configuration (dropline.yaml): each setting in force and where it comes from.",
        discussion: """
        <root>/dropline.yaml holds the root's training recipe (over the champion's, and when there is none), \
        the watch settings and the thresholds (docs/configuration.md). A mistake is printed as \
        file:line:column: what is wrong, with exit status 1; the daemon does not start with an invalid file, and \
        keeps the previous configuration when an edit is invalid.
        """
    )
    @Argument(help: "A Dropline root.") var root: String
    @Flag(help: "Print JSON.") var json = false

    struct Setting: Encodable { var key: String; var value: String; var source: String }
    struct Output: Encodable { var file: String; var present: Bool; var settings: [Setting] }

    static let defaults: [String: String] = [
        "training.arch": "the champion's (scratch without one)", "training.image_size": "the champion's", "training.epochs": "the champion's",
        "watch.marker": "_READY", "watch.settle_seconds": "60", "watch.jobs": "1",
        "thresholds.drift_p_value": "the drift artifacts' (0.05)", "thresholds.drift_minimum_statistic": "the drift artifacts' (0.1)",
        "thresholds.promotion_margin": "0.01", "thresholds.quality_tolerance": "0.05",
        "data_quality.out_of_range_share": "the model version's constraints' (0.05)", "data_quality.category_tolerance": "the model version's constraints' (0.1)",
        "data_quality.duplicate_tolerance": "the model version's constraints' (0.05)", "data_quality.refusal_tolerance": "the model version's constraints' (0.05)",
        "data_quality.significance": "the model version's constraints' (0.01)",
        "slurm.partition": "the cluster's default", "slurm.training_partition": "slurm.partition's", "slurm.training_gres": "none",
        "slurm.shard_images": "500", "slurm.array_width": "no limit", "slurm.resubmissions": "2", "slurm.cpus_per_task": "1",
        "slurm.time_limit": "the partition's", "slurm.executable": "the daemon's own path",
    ]

    func run() throws {
        let dropline = try DroplineRoot(existing: root)
        let file = dropline.path + "/" + RootConfiguration.fileName
        let configuration: RootConfiguration
        do { configuration = try RootConfiguration.load(root: dropline.path) } catch {
            Console.note("\(error)")
            throw ExitCode(1)
        }
        if let arch = configuration.arch(root: dropline.path), arch.hasPrefix("backbone:") {
            let path = String(arch.dropFirst("backbone:".count))
            if FileManager.default.fileExists(atPath: path) == false {
                Console.note("\(file): training.arch names \(path), which does not exist")
                throw ExitCode(1)
            }
        }
        let settings = configuration.lines(defaults: Self.defaults).map { Setting(key: $0.key, value: $0.value, source: $0.source) }
        let output = Output(file: file, present: configuration.file != nil, settings: settings)
        if json { return try JSONOutput.print(output) }
        print("\(file): " + (output.present ? "valid" : "absent (the defaults)"))
        var table = TextTable("SETTING", "VALUE", "FROM")
        for s in settings { table.add([s.key, s.value, s.source]) }
        print(table.render())
    }
}
