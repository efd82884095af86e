import ArgumentParser
import DroplineSupport
import Foundation
import Pipeline
import Rules
import Store

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "The model registry of a root: versions, states (candidate, champion, archived), history.",
        subcommands: [List.self, Show.self, Promote.self, Rollback.self, History.self]
    )

    static func registry(_ root: String) throws -> Registry {
        Registry(index: try RootIndex.reading(root))
    }

    /// A registry change: on the index itself (never a snapshot), whose snapshot is published after.
    static func changing<T>(_ root: String, _ body: (Registry) throws -> T) throws -> T {
        let dropline = try DroplineRoot(existing: root)
        let index = try Index.open(root: dropline)
        let result = try body(Registry(index: index))
        RootReports.refresh(index, dropline)
        RootIndex.publish(index, dropline)
        return result
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every model version with its state and validation accuracy.")
        @Argument(help: "A Dropline root.") var root: String
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let models = try ModelsCommand.registry(root).models()
            if json { return try JSONOutput.print(models) }
            var table = TextTable("VERSION", "STATE", "STAGE", "VAL ACC", "PARENT", "CREATED", "FOLDER")
            for m in models {
                table.add(["v\(m.version)", m.state.rawValue, m.stage, String(format: "%.4f", m.validationAccuracy), m.parentVersion.map { "v\($0)" } ?? "-",
                           m.createdAt, m.folder])
            }
            print(table.render())
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One version and its history.")
        @Argument(help: "A Dropline root.") var root: String
        @Argument(help: "The version number.") var version: Int
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let registry = try ModelsCommand.registry(root)
            guard let model = try registry.model(version) else { throw ValidationError("there is no model version \(version)") }
            let history = try registry.history(version: version)
            if json {
                struct Output: Encodable { var model: Registry.Model; var history: [Registry.Promotion] }
                return try JSONOutput.print(Output(model: model, history: history))
            }
            print("version \(model.version): \(model.state.rawValue), stage \(model.stage), validation accuracy \(String(format: "%.4f", model.validationAccuracy))")
            print("folder \(model.folder), content sha256 \(model.contentSha256), trained by run \(model.trainRunId ?? "-")")
            for h in history { print("  \(h.at)  \(h.fromState?.rawValue ?? "new") -> \(h.toState.rawValue)  (\(h.actor): \(h.reason))") }
        }
    }

    struct Promote: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a version the champion (the previous one is archived).")
        @Argument(help: "A Dropline root.") var root: String
        @Argument(help: "The version number.") var version: Int
        @Option(help: "Why (recorded in the history).") var reason = "promoted by hand"
        func run() throws {
            try ModelsCommand.changing(root) { try $0.promote(version, reason: reason) }
            print("version \(version) is now the champion")
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put back the champion before the current one.")
        @Argument(help: "A Dropline root.") var root: String
        @Option(help: "Why (recorded in the history).") var reason = "rolled back by hand"
        func run() throws {
            let version = try ModelsCommand.changing(root) { try $0.rollback(reason: reason) }
            print("version \(version) is the champion again")
        }
    }

    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every state change; with --at, which model was champion at that time, and why.")
        @Argument(help: "A Dropline root.") var root: String
        @Option(help: "A time (ISO 8601, e.g. 2026-11-21T08:00:00Z).") var at: String?
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let registry = try ModelsCommand.registry(root)
            if let at {
                guard let p = try registry.champion(at: at) else {
                    print("no model was champion at \(at)")
                    return
                }
                if json { return try JSONOutput.print(p) }
                print("at \(at) the champion was version \(p.version), since \(p.at) (\(p.actor): \(p.reason))")
                return
            }
            let history = try registry.history()
            if json { return try JSONOutput.print(history) }
            for h in history { print("\(h.at)  v\(h.version)  \(h.fromState?.rawValue ?? "new") -> \(h.toState.rawValue)  (\(h.actor): \(h.reason))") }
        }
    }
}

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "One run: its row, outputs and manifest summary.")
    @Argument(help: "A Dropline root.") var root: String
    @Argument(help: "The run id.") var runID: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let index = try RootIndex.reading(root)
        guard let record = try index.run(runID) else { throw ValidationError("there is no run \(runID) (see `dropline runs \(root)`)") }
        let outputs = try index.outputs(of: runID)
        if json {
            struct Output: Encodable { var run: RunRecord; var outputs: [String: String] }
            return try JSONOutput.print(Output(run: record, outputs: outputs))
        }
        print("run \(record.id): \(record.kind.rawValue) \(record.subject), \(record.status.rawValue), model \(record.modelVersion.map { "v\($0)" } ?? "-")")
        print("started \(record.startedAt), finished \(record.finishedAt ?? "-")")
        if let folder = record.folder { print("folder \(folder)") }
        if let error = record.error { print("error: \(error)") }
        for (key, path) in outputs.sorted(by: { $0.key < $1.key }) { print("  \(key): \(path)") }
    }
}

struct LabelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "labels",
        abstract: "Merge a batch's ground truth with its predictions; record accuracy; flag when below the model's constraint.",
        discussion: """
        The file is named after the batch (<batch>.csv, or <stage>~<batch>.csv for inbox/production/<stage>/<batch>): \
        CSV as spreadsheets save it (UTF-8, a byte-order mark, CRLF, quoted fields, , ; or tab), with a header naming \
        an image column (image, file, filename or path: a path relative to the batch folder, or the file's SHA-256) \
        and a class column (class or label) in any order and case; other columns are ignored. Mistakes are refused \
        with file:line:column. Accuracy below the model's validation accuracy minus 0.05 writes \
        flags/quality/<stage>~<batch>.json.
        """
    )
    @Argument(help: "A Dropline root.") var root: String
    @Argument(help: "The labels file.") var file: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let r = try DroplineRoot(existing: root)
        let index = try Index.open(root: r)
        let result = try GroundTruth(root: r, index: index, configuration: try RootConfiguration.load(root: r.path)).merge(labels: file)
        RootReports.refresh(index, r)
        RootIndex.publish(index, r)
        if json { return try JSONOutput.print(result) }
        print(String(format: "batch %@: %d labelled images, accuracy %.2f%% (constraint %.2f%%)%@", result.batch, result.labelled,
                     result.accuracy * 100, result.constraintAccuracy * 100, result.belowConstraint ? ": BELOW, quality flag written" : ""))
        if !result.unmatched.isEmpty { print("not found in the batch: \(result.unmatched.prefix(5).joined(separator: ", "))\(result.unmatched.count > 5 ? " ..." : "")") }
    }
}
