import ArgumentParser
import DroplineSupport
import Foundation
import Rules
import SystemFiles

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Check a rules file, and explain what an event would set off (see rules/README.md).",
        subcommands: [Check.self, Explain.self]
    )

    /// A rules file given directly, or a root's rules.yaml.
    static func file(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return path + "/rules.yaml" }
        return path
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Parse and check a rules file; on a mistake, print file:line:column, what is wrong and the remedy, and exit 1.")
        @Argument(help: "A rules file, or a Dropline root (its rules.yaml).") var path: String
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let file = RulesCommand.file(path)
            let rules: RuleSet
            do { rules = try RuleSet.load(file: file) } catch {
                if json { try JSONOutput.print(["file": file, "valid": "false", "error": error.description]) } else { Console.note("error: \(error)") }
                throw ExitCode(1)
            }
            if json {
                struct Summary: Encodable { var name: String; var line: Int; var on: String; var kind: String?; var match: String?; var when: String?; var actions: [String] }
                struct Output: Encodable { var file: String; var valid: Bool; var rules: [Summary]; var serves: [ServedLayout] }
                return try JSONOutput.print(Output(file: file, valid: true, rules: rules.rules.map {
                    Summary(name: $0.name, line: $0.line, on: $0.on.rawValue, kind: $0.flagKind, match: $0.match?.description,
                            when: $0.when?.description, actions: $0.actions.map(\.name))
                }, serves: rules.servedLayouts()))
            }
            print("\(file): \(rules.rules.count) rule(s), valid")
            var table = TextTable("LINE", "NAME", "ON", "MATCH", "WHEN", "DO")
            for r in rules.rules {
                let on = r.on.rawValue + (r.flagKind.map { " (\($0))" } ?? "")
                table.add([String(r.line), r.name, on, r.match?.description ?? "-", r.when?.description ?? "-", r.actions.map(\.name).joined(separator: ", ")])
            }
            print(table.render())
            print("")
            for layout in rules.servedLayouts() {
                print("batches in inbox/\(layout.layout)/: " + (layout.served ? "served (rule \(layout.rule!))" : "NOT served (\(layout.reason ?? ""))"))
            }
        }
    }

    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say, rule by rule, whether an event would fire it and why, and what it would do. Nothing is run.",
            discussion: """
            Examples:
              dropline rules explain ROOT --event batch_landed --path production/stage-2/batch-7
              dropline rules explain ROOT --flag ROOT/flags/drift/batch-7.json
            """)
        @Argument(help: "A rules file, or a Dropline root (its rules.yaml).") var path: String
        @Option(help: "The event: \(EventKind.allCases.map(\.rawValue).joined(separator: ", ")).") var event: String?
        @Option(name: .customLong("path"), help: "The path the event concerns, e.g. production/stage-2/batch-7 (relative to inbox/) or flags/retrain/stage-2.json.")
        var eventPath: String?
        @Option(help: "A flag file: the event is its flag_created, with its values as flag.<key> fields.") var flag: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let file = RulesCommand.file(path)
            let rules = try RuleSet.load(file: file)
            let theEvent: Event
            if let flag {
                let data: [UInt8]
                do { data = try AtomicFile.read(flag, limit: 16 << 20, links: .refuse) } catch {
                    throw ValidationError("cannot read the flag file: \(error)")
                }
                let components = URL(fileURLWithPath: flag).standardizedFileURL.pathComponents
                guard let at = components.lastIndex(of: "flags"), components.count - at >= 3 else {
                    throw ValidationError("\(flag): a flag file lives at <root>/flags/<kind>/<name>.json")
                }
                theEvent = try Event.flag(relativePath: components[at...].joined(separator: "/"), json: Array(data))
            } else {
                guard let event, let kind = EventKind(rawValue: event) else {
                    throw ValidationError("give --flag FILE, or --event (one of \(EventKind.allCases.map(\.rawValue).joined(separator: ", "))) and --path")
                }
                guard let eventPath else { throw ValidationError("--event needs --path, the path the event concerns") }
                theEvent = Event(kind: kind, path: eventPath)
            }
            let decisions = rules.decide(theEvent)
            if json {
                struct Decision: Encodable { var rule: String; var line: Int; var fired: Bool; var reason: String; var actions: [String] }
                struct Output: Encodable { var event: String; var path: String; var decisions: [Decision] }
                return try JSONOutput.print(Output(event: theEvent.kind.rawValue, path: theEvent.path, decisions: decisions.map {
                    Decision(rule: $0.rule, line: $0.line, fired: $0.fired, reason: $0.reason, actions: $0.actions.map(\.description))
                }))
            }
            print("\(theEvent.kind.rawValue) \(theEvent.path)")
            for d in decisions {
                print("  \(d.fired ? "fires  " : "skipped") \(d.rule) (line \(d.line)): \(d.reason)")
                for a in d.actions { print("            -> \(a)") }
            }
            if !decisions.contains(where: \.fired) { print("  no rule fires: nothing would happen") }
        }
    }
}
