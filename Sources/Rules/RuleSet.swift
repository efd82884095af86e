import DroplineSupport
import Foundation
import Yams
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// What happened in the Dropline root that rules may act on.
public enum EventKind: String, Sendable, CaseIterable {
    /// A production batch landed (its _READY marker appeared, or it settled): path is `inbox/production/<stage>/<batch>` relative to
    /// `inbox/`, i.e. `production/<stage>/<batch>`.
    case batchLanded = "batch_landed"
    /// A flag file appeared: path is `flags/<kind>/<name>.json`.
    case flagCreated = "flag_created"
    /// A training run published a new model version: path is `outputs/models/<version>`.
    case modelTrained = "model_trained"
    /// A labels file landed: path is `labels/<file>` relative to `inbox/`.
    case labelsLanded = "labels_landed"
    /// A rule's cron schedule came due: path is `schedule/<rule name>`.
    case schedule
}

/// One event: its kind, the path it concerns and the fields conditions and templates can use
/// (`flag.<key>` for a flag file's top-level values, `kind` for a flag's kind, and the like).
public struct Event: Sendable, Equatable {
    public var kind: EventKind
    public var path: String
    public var fields: [String: Value]

    public init(kind: EventKind, path: String, fields: [String: Value] = [:]) {
        self.kind = kind
        self.path = path
        self.fields = fields
    }

    /// The event for a flag file: `relativePath` is `flags/<kind>/<name>.json`; the JSON object's
    /// top-level numbers, strings and booleans become `flag.<key>` fields.
    public static func flag(relativePath: String, json: [UInt8]) throws(RulesError) -> Event {
        let parts = relativePath.split(separator: "/").map(String.init)
        guard parts.count >= 3, parts[0] == "flags" else {
            throw RulesError(file: relativePath, message: "a flag lives at flags/<kind>/<name>.json")
        }
        var fields: [String: Value] = ["kind": .string(parts[1])]
        let object: [String: Scalar]
        do { object = try JSONDecoder().decode([String: Scalar].self, from: Data(json)) } catch {
            throw RulesError(file: relativePath, message: "the flag file is not a JSON object (\(error)); write a JSON object or remove the file")
        }
        for (key, value) in object {
            switch value {
            case .value(let v): fields["flag." + key] = v
            case .other: continue
            }
        }
        // `kind` is the folder the flag was dropped in, whatever its JSON claims (a file in
        // flags/drift/ cannot pass for a retrain request): the claim stays `flag.kind`
        return Event(kind: .flagCreated, path: relativePath, fields: fields)
    }
}

/// A top-level JSON value of a flag: numbers, texts and booleans become fields; lists and objects
/// are skipped. (JSONDecoder keeps booleans and numbers apart, which JSONSerialization on Linux does not.)
enum Scalar: Decodable {
    case value(Value)
    case other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let b = try? container.decode(Bool.self) { self = .value(.bool(b)) }
        else if let n = try? container.decode(Double.self) { self = .value(.number(n)) }
        else if let s = try? container.decode(String.self) { self = .value(.string(s)) }
        else { self = .other }
    }
}

/// A text with `{name}` placeholders filled from a rule's captures and the event's fields.
public struct Template: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    let placeholders: [String]

    /// A text taken as it is, without placeholders (the arguments of a shell or interpreter).
    init(literal text: String) {
        description = text
        placeholders = []
    }

    init(_ text: String) throws(PatternError) {
        description = text
        var names: [String] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw PatternError(message: "'{' is not closed", offset: text.distance(from: text.startIndex, to: open))
            }
            let name = String(rest[rest.index(after: open)..<close])
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
                throw PatternError(message: "placeholder '{\(name)}' may use letters, digits, _ and . only", offset: text.distance(from: text.startIndex, to: open))
            }
            names.append(name)
            rest = rest[rest.index(after: close)...]
        }
        placeholders = names
    }

    /// The filled-in text, or the name of the first placeholder without a value. One pass from left
    /// to right: a value that itself contains `{name}` is pasted as it is, never filled again.
    func fill(_ values: [String: Value]) -> Result<String, MissingPlaceholder> {
        if placeholders.isEmpty { return .success(description) }  // literal, braces and all
        var text = ""
        var rest = Substring(description)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            let name = String(rest[rest.index(after: open)..<close])
            guard let value = values[name] else { return .failure(MissingPlaceholder(name: name)) }
            text += rest[..<open]
            text += value.text
            rest = rest[rest.index(after: close)...]
        }
        return .success(text + rest)
    }

    /// Whether the text starts with a placeholder (a value there could begin an option: `-x`).
    var startsWithPlaceholder: Bool { description.hasPrefix("{") }

    struct MissingPlaceholder: Error { var name: String }
}

/// What a rule does, in order. Templates are filled when the rule fires.
public enum Action: Sendable, Equatable {
    /// Runs the batch-inference pipeline on the event's batch.
    case infer
    /// Runs the training pipeline on `inbox/training/<stage>`, with the champion's recipe unless
    /// `options` says otherwise.
    case train(stage: Template, options: TrainOptions = TrainOptions())
    /// Promotes the newest model if the policy allows (`default`: validation accuracy at least the
    /// champion's minus 0.01; `always`; `never`).
    case promote(policy: String)
    /// Runs a program with arguments (no shell), with the given timeout in seconds.
    case run(arguments: [Template], timeout: Double)
    /// Merges a labels file (ground truth) into the index; may raise a quality flag.
    case mergeLabels
    /// Does nothing, and stops later rules from firing on this event.
    case ignore
    /// Reports the event: a warning in the daemon's log and the job's record, with the flag's
    /// `reason` when it has one. Nothing else is done.
    case report

    public var name: String {
        switch self {
        case .infer: "infer"
        case .train: "train"
        case .promote: "promote"
        case .run: "run"
        case .mergeLabels: "merge_labels"
        case .ignore: "ignore"
        case .report: "report"
        }
    }

    static let policies = ["default", "always", "never"]
}

/// What a rule's `train` action says of the recipe (each nil: the champion's).
public struct TrainOptions: Sendable, Equatable {
    /// `scratch`, `small-cnn` or `backbone:<model.json>`.
    public var arch: String?
    public var epochs: Int?
    public var imageSize: Int?
    public init(arch: String? = nil, epochs: Int? = nil, imageSize: Int? = nil) {
        self.arch = arch
        self.epochs = epochs
        self.imageSize = imageSize
    }
    public var isEmpty: Bool { arch == nil && epochs == nil && imageSize == nil }
}

/// An action with its templates filled in, ready to run.
public enum PlannedAction: Sendable, Equatable, CustomStringConvertible {
    case infer(batch: String)
    case train(stage: String, options: TrainOptions = TrainOptions())
    case promote(policy: String)
    /// A program and its arguments, run without a shell.
    case run(arguments: [String], timeout: Double)
    case mergeLabels(file: String)
    /// A line for the log: what the event is and why it was raised.
    case report(text: String)

    public var description: String {
        switch self {
        case .infer(let batch): "infer \(DisplayText.escaped(batch))"
        case .train(let stage, let options):
            "train stage \(DisplayText.escaped(stage))" + (options.isEmpty ? "" : " (" + [options.arch.map { "arch \(DisplayText.escaped($0))" }, options.imageSize.map { "\($0) px" }, options.epochs.map { "\($0) epochs" }].compactMap { $0 }.joined(separator: ", ") + ")")
        case .promote(let policy): "promote (policy \(policy))"
        case .run(let arguments, let timeout): "run `\(Self.commandLine(arguments))` (timeout \(Int(timeout)) s)"
        case .mergeLabels(let file): "merge labels \(DisplayText.escaped(file))"
        case .report(let text): "report: \(DisplayText.escaped(text))"
        }
    }

    /// An argument vector as a person would type it: arguments with spaces or quotes in single
    /// quotes, control characters escaped (for messages only; nothing is ever given to a shell).
    public static func commandLine(_ arguments: [String]) -> String {
        arguments.map { argument in
            let shown = DisplayText.escaped(argument)
            let plain = !shown.isEmpty && shown.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
            return plain ? shown : "'" + shown.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}

public struct Rule: Sendable, Equatable {
    public var name: String
    public var on: EventKind
    /// For flag_created: the flag kind (the folder under flags/) the rule is for.
    public var flagKind: String?
    public var match: MatchPattern?
    public var when: Condition?
    /// For schedule rules: when they fire.
    public var cron: CronSchedule?
    public var actions: [Action]
    /// The line of the rule in its file, 1-based, for messages.
    public var line: Int
}

/// Why a rule did or did not fire on an event.
public struct RuleDecision: Sendable, Equatable {
    public var rule: String
    public var line: Int
    public var fired: Bool
    public var reason: String
    public var actions: [PlannedAction]
}

/// Whether a documented inbox layout is served by the rules.
public struct ServedLayout: Sendable, Equatable, Codable {
    public var layout: String
    public var served: Bool
    public var rule: String?
    public var reason: String?
}

/// A rules file, parsed and checked: every problem is reported with its file, line and column.
public struct RuleSet: Sendable, Equatable {
    public var rules: [Rule]
    /// What happens to handled production batches (`retention:`; nil: they stay in the inbox).
    public var retention: Retention? = nil

    public static let knownVersion = 1

    /// Reads and checks a rules file: a regular file (a FIFO or device is refused without blocking)
    /// of at most `Limits.fileBytes`, UTF-8.
    public static func load(file: String) throws(RulesError) -> RuleSet {
        let bytes: [UInt8]
        do { bytes = try AtomicFile.read(file, limit: Limits.fileBytes) } catch let error as SystemError where error.errno == EFBIG {
            throw RulesError(file: file, line: 1, column: 1, message: "the rules file is larger than \(Limits.fileBytes / 1024) KiB; a rules file is a short list of rules")
        } catch {
            throw RulesError(file: file, message: "cannot read the rules file (\(error)); check that it is a regular, readable file")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw RulesError(file: file, message: "the rules file is not UTF-8 text")
        }
        return try parse(yaml: text, file: file)
    }

    /// What a rules file may hold at most: past any limit the file is refused with its place, so a
    /// hostile or broken file cannot exhaust the daemon's memory, stack or time.
    public enum Limits {
        public static let fileBytes = 256 * 1024
        public static let rules = 1000
        /// Nesting of YAML collections (the format itself needs four).
        public static let yamlDepth = 16
        public static let patternLength = 512
        public static let patternSegments = 64
        public static let conditionLength = 2000
        /// Parentheses and `not` inside one another in a condition.
        public static let conditionDepth = 32
        public static let templateLength = 2000
        public static let arguments = 64
        /// Values (scalars and collections) in the whole document, aliases expanded.
        public static let values = 100_000
    }

    public static func parse(yaml text: String, file: String) throws(RulesError) -> RuleSet {
        if text.utf8.count > Limits.fileBytes {
            throw RulesError(file: file, line: 1, column: 1, message: "the rules file is larger than \(Limits.fileBytes / 1024) KiB; a rules file is a short list of rules")
        }
        try checkFlowDepth(text, file: file)
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw RulesError(file: file, message: "not valid YAML: \(error)")
        }
        guard let root, let top = root.mapping else {
            throw RulesError(file: file, line: root?.mark?.line, message: "the file must be a mapping with `version: 1` and `rules:`")
        }
        var version: Int?
        var rulesNode: Node?
        var retention: Retention?
        for (key, value) in top {
            switch key.string {
            case "version":
                guard let v = value.int, v == knownVersion else {
                    throw RulesError(file: file, node: value, message: "this Dropline reads rules version \(knownVersion); found '\(value.string ?? "?")'")
                }
                version = v
            case "rules": rulesNode = value
            case "retention": retention = try Retention.parse(value, file: file)
            default: throw RulesError(file: file, node: key, message: "unknown key '\(key.string ?? "?")' (expected version, rules, retention)")
            }
        }
        guard version != nil else { throw RulesError(file: file, node: root, message: "missing `version: 1`") }
        var budget = Limits.values
        try checkDepth(root, file: file, depth: 1, budget: &budget)
        guard let rulesNode, let list = rulesNode.sequence else {
            throw RulesError(file: file, node: rulesNode ?? root, message: "`rules:` must be a list of rules")
        }
        if list.count > Limits.rules {
            throw RulesError(file: file, node: list[Limits.rules], message: "more than \(Limits.rules) rules; merge rules with `match` patterns and conditions")
        }
        var rules: [Rule] = []
        for node in list {
            let rule = try parseRule(node, file: file)
            if let other = rules.first(where: { $0.name == rule.name }) {
                throw RulesError(file: file, node: node, message: "rule name '\(rule.name)' is already used on line \(other.line)")
            }
            rules.append(rule)
        }
        return RuleSet(rules: rules, retention: retention)
    }

    static func parseRule(_ node: Node, file: String) throws(RulesError) -> Rule {
        guard let mapping = node.mapping else { throw RulesError(file: file, node: node, message: "a rule is a mapping with name, on and do") }
        var name: String?, on: EventKind?, kind: String?, match: MatchPattern?, when: Condition?, cron: CronSchedule?, actions: [Action]?
        var matchNode: Node?
        var actionsNode: Node?
        for (key, value) in mapping {
            switch key.string {
            case "name":
                guard let text = value.string, !text.isEmpty else { throw RulesError(file: file, node: value, message: "name must be a non-empty text") }
                name = text
            case "on":
                guard let text = value.string, let kind = EventKind(rawValue: text) else {
                    throw RulesError(file: file, node: value, message: "unknown event '\(value.string ?? "?")'; use one of \(EventKind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                on = kind
            case "kind":
                guard let text = value.string, !text.isEmpty else { throw RulesError(file: file, node: value, message: "kind must be a flag kind such as drift or retrain") }
                kind = text
            case "match":
                guard let text = value.string else { throw RulesError(file: file, node: value, message: "match must be a path pattern such as production/{stage}/{batch}") }
                if text.count > Limits.patternLength {
                    throw RulesError(file: file, node: value, message: "the match pattern is longer than \(Limits.patternLength) characters")
                }
                do { match = try MatchPattern(text) } catch {
                    throw RulesError(file: file, node: value, columnOffset: error.offset, message: "bad match pattern: \(error.message)")
                }
                matchNode = value
            case "when":
                guard let text = value.string else { throw RulesError(file: file, node: value, message: "when must be a condition such as flag.drift == true") }
                if text.count > Limits.conditionLength {
                    throw RulesError(file: file, node: value, message: "the condition is longer than \(Limits.conditionLength) characters; split it over several rules")
                }
                do { when = try Condition.parse(text) } catch {
                    throw RulesError(file: file, node: value, columnOffset: error.offset, message: "bad condition: \(error.message)")
                }
            case "cron":
                guard let text = value.string else { throw RulesError(file: file, node: value, message: "cron must be a schedule such as \"0 3 * * *\"") }
                do { cron = try CronSchedule(text) } catch {
                    throw RulesError(file: file, node: value, columnOffset: error.offset, message: "bad cron schedule: \(error.message)")
                }
            case "do":
                actionsNode = value
            default:
                throw RulesError(file: file, node: key, message: "unknown key '\(key.string ?? "?")' in a rule (expected name, on, kind, match, when, cron, do)")
            }
        }
        guard let name else { throw RulesError(file: file, node: node, message: "the rule has no name") }
        guard let on else { throw RulesError(file: file, node: node, message: "rule '\(name)' has no `on:` event") }
        if kind != nil && on != .flagCreated { throw RulesError(file: file, node: node, message: "rule '\(name)': `kind:` only applies to flag_created") }
        if (cron != nil) != (on == .schedule) {
            throw RulesError(file: file, node: node, message: "rule '\(name)': `on: schedule` goes with `cron: \"<minute hour day month weekday>\"`, and cron with schedule only")
        }
        _ = matchNode
        guard let actionsNode, let list = actionsNode.sequence, !list.isEmpty else {
            throw RulesError(file: file, node: actionsNode ?? node, message: "rule '\(name)' needs `do:`, a non-empty list of actions")
        }
        var parsed: [Action] = []
        for item in list { parsed.append(try parseAction(item, file: file, rule: name, on: on, captures: match?.captureNames ?? [])) }
        actions = parsed
        return Rule(name: name, on: on, flagKind: kind, match: match, when: when, cron: cron, actions: actions ?? [], line: (node.mark?.line ?? 0))
    }

    static func parseAction(_ node: Node, file: String, rule: String, on: EventKind, captures: [String]) throws(RulesError) -> Action {
        guard let mapping = node.mapping, mapping.count == 1, let (key, value) = mapping.first, let name = key.string else {
            throw RulesError(file: file, node: node, message: "rule '\(rule)': an action is a one-key mapping such as `- infer: {}` or `- train: {stage: \"{stage}\"}`")
        }
        let options = value.mapping
        if value.mapping == nil && !(value.string == nil || value.string == "") {
            throw RulesError(file: file, node: value, message: "rule '\(rule)': options of '\(name)' must be a mapping")
        }
        func option(_ key: String) -> Node? { options?.first(where: { $0.key.string == key })?.value }
        func only(_ allowed: [String]) throws(RulesError) {
            for (k, _) in options ?? [:] where !allowed.contains(k.string ?? "") {
                throw RulesError(file: file, node: k, message: "rule '\(rule)': '\(name)' takes \(allowed.isEmpty ? "no options" : allowed.joined(separator: ", ")), not '\(k.string ?? "?")'")
            }
        }
        func template(_ key: String) throws(RulesError) -> Template {
            guard let node = option(key), let text = node.string, !text.isEmpty else {
                throw RulesError(file: file, node: value, message: "rule '\(rule)': '\(name)' needs \(key)")
            }
            return try templateText(text, node: node)
        }
        func templateText(_ text: String, node: Node) throws(RulesError) -> Template {
            if text.count > Limits.templateLength {
                throw RulesError(file: file, node: node, message: "rule '\(rule)': a template is longer than \(Limits.templateLength) characters")
            }
            let t: Template
            do { t = try Template(text) } catch { throw RulesError(file: file, node: node, columnOffset: error.offset, message: "rule '\(rule)': \(error.message)") }
            for placeholder in t.placeholders where !placeholder.contains(".") && !captures.contains(placeholder) && placeholder != "path" && placeholder != "kind" {
                throw RulesError(file: file, node: node, message: "rule '\(rule)': '{\(placeholder)}' is not a capture of the match pattern (captures: \(captures.isEmpty ? "none" : captures.joined(separator: ", ")))")
            }
            return t
        }
        switch name {
        case "infer":
            try only([])
            guard on == .batchLanded else { throw RulesError(file: file, node: key, message: "rule '\(rule)': infer only applies to batch_landed") }
            return .infer
        case "train":
            try only(["stage", "arch", "epochs", "image_size"])
            var options = TrainOptions()
            if let node = option("arch") {
                guard let arch = node.string, arch == "scratch" || arch == "small-cnn" || (arch.hasPrefix("backbone:") && arch.count > "backbone:".count) else {
                    throw RulesError(file: file, node: node, message: "rule '\(rule)': arch is scratch, small-cnn or backbone:<model.json>")
                }
                options.arch = arch
            }
            func count(_ key: String, _ range: ClosedRange<Int>, _ what: String) throws(RulesError) -> Int? {
                guard let node = option(key) else { return nil }
                guard let n = node.int, range.contains(n) else {
                    throw RulesError(file: file, node: node, message: "rule '\(rule)': \(key) is \(what), from \(range.lowerBound) to \(range.upperBound)")
                }
                return n
            }
            options.epochs = try count("epochs", 1...1000, "a number of epochs")
            options.imageSize = try count("image_size", 16...1024, "the square input side in pixels")
            return .train(stage: try template("stage"), options: options)
        case "promote":
            try only(["policy"])
            let policy = option("policy")?.string ?? "default"
            guard Action.policies.contains(policy) else {
                throw RulesError(file: file, node: option("policy") ?? value, message: "rule '\(rule)': unknown promotion policy '\(policy)'; use \(Action.policies.joined(separator: ", "))")
            }
            return .promote(policy: policy)
        case "run":
            try only(["command", "timeout"])
            let timeout: Double
            if let node = option("timeout") {
                guard let t = node.float, t > 0, t <= 86_400 else {
                    throw RulesError(file: file, node: node, message: "rule '\(rule)': timeout is a positive number of seconds, at most 86400 (a day)")
                }
                timeout = t
            } else { timeout = 600 }
            return .run(arguments: try runArguments(option("command"), in: value), timeout: timeout)
        case "merge_labels":
            try only([])
            guard on == .labelsLanded else { throw RulesError(file: file, node: key, message: "rule '\(rule)': merge_labels only applies to labels_landed") }
            return .mergeLabels
        case "ignore":
            try only([])
            return .ignore
        case "report":
            try only([])
            return .report
        default:
            throw RulesError(file: file, node: key, message: "rule '\(rule)': unknown action '\(name)'; use infer, train, promote, run, merge_labels, report or ignore")
        }

        /// `command: [program, argument, ...]`: run without a shell. The program is literal; a shell
        /// or interpreter gets no placeholders (its script would be pasted together from event
        /// fields): it reads the event from the DROPLINE_* environment variables instead.
        func runArguments(_ node: Node?, in parent: Node) throws(RulesError) -> [Template] {
            guard let node else { throw RulesError(file: file, node: parent, message: "rule '\(rule)': 'run' needs command, a list: [program, argument, ...]") }
            guard let list = node.sequence else {
                let line = node.string.map { " (for a shell line: command: [\"sh\", \"-c\", \"\(DisplayText.escaped($0).replacingOccurrences(of: "\"", with: "\\\""))\"])" } ?? ""
                throw RulesError(file: file, node: node, message: """
                    rule '\(rule)': command is a list of arguments, run without a shell, such as [notify-send, "drift on {flag.batch}"]\(line); \
                    a shell reads the event from $DROPLINE_* variables, never from pasted-in names
                    """)
            }
            guard !list.isEmpty, list.count <= Limits.arguments else {
                throw RulesError(file: file, node: node, message: "rule '\(rule)': command has 1 to \(Limits.arguments) arguments, the program first")
            }
            var texts: [String] = []
            for item in list {
                guard let text = item.string, item.mapping == nil, item.sequence == nil else {
                    throw RulesError(file: file, node: item, message: "rule '\(rule)': each argument of command is a text")
                }
                texts.append(text)
            }
            let program = texts[0]
            guard !program.isEmpty else { throw RulesError(file: file, node: list[0], message: "rule '\(rule)': the program (the first argument) is empty") }
            if program.contains("{") {
                throw RulesError(file: file, node: list[0], message: "rule '\(rule)': the program (the first argument) cannot hold placeholders; name it literally")
            }
            let base = program.split(separator: "/").last.map(String.init) ?? program
            guard Self.interpreters.contains(where: { base == $0 || (base.hasPrefix($0) && base.dropFirst($0.count).allSatisfy { $0.isNumber || $0 == "." }) }) else {
                var arguments = [Template(literal: program)]
                for (text, item) in zip(texts, list).dropFirst() { arguments.append(try templateText(text, node: item)) }
                return arguments
            }
            // A shell or interpreter: its arguments are code, taken literally (`${X:-none}` is the
            // shell's); a Dropline placeholder there would paste event fields into code, so it is refused.
            for (text, item) in zip(texts, list).dropFirst() {
                if let name = Self.droplinePlaceholder(in: text, captures: captures) {
                    throw RulesError(file: file, node: item, message: """
                        rule '\(rule)': \(base) would run code pasted together from event fields ({\(name)}); \
                        read them from the environment instead (e.g. "$DROPLINE_FLAG_BATCH" for {flag.batch}, "$DROPLINE_PATH" for {path})
                        """)
                }
            }
            return texts.map(Template.init(literal:))
        }
    }

    /// The first `{name}` in `text` that is a Dropline placeholder (a capture, path, kind or a
    /// dotted field) and not shell syntax (`${name}`), or nil.
    static func droplinePlaceholder(in text: String, captures: [String]) -> String? {
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            let name = String(rest[rest.index(after: open)..<close])
            let shellSyntax = open > text.startIndex && text[text.index(before: open)] == "$"
            let looksLikeOurs = !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }
                && (name.contains(".") || captures.contains(name) || name == "path" || name == "kind")
            if !shellSyntax && looksLikeOurs { return name }
            rest = rest[rest.index(after: open)...]
        }
        return nil
    }

    /// Programs that run their arguments as code: no placeholders in their arguments.
    static let interpreters = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "env", "xargs", "python",
                               "perl", "ruby", "node", "php", "lua", "awk", "gawk", "mawk", "sed", "tclsh", "osascript", "pwsh", "eval", "sudo", "su"]

    /// Refuses collections nested deeper than `Limits.yamlDepth` before the YAML parser builds them
    /// (flow style `[[[[...]]]]` costs the parser its stack long before any rule is read).
    static func checkFlowDepth(_ text: String, file: String) throws(RulesError) {
        var depth = 0, line = 1, column = 0
        var quote: Character?
        var comment = false
        for c in text {
            column += 1
            if c == "\n" { line += 1; column = 0; comment = false; continue }
            if comment { continue }
            if let q = quote { if c == q { quote = nil }; continue }
            switch c {
            case "\"", "'": quote = c
            case "#": comment = true
            case "[", "{":
                depth += 1
                if depth > Limits.yamlDepth {
                    throw RulesError(file: file, line: line, column: column, message: "collections nested more than \(Limits.yamlDepth) deep; a rules file needs four")
                }
            case "]", "}": depth = max(0, depth - 1)
            default: break
            }
        }
    }

    /// Refuses documents nested deeper than `Limits.yamlDepth` (block style), and documents that
    /// expand to more than `Limits.values` values: YAML aliases (`*name`) can make a few lines stand
    /// for billions of values, which every later pass would walk.
    static func checkDepth(_ node: Node, file: String, depth: Int, budget: inout Int) throws(RulesError) {
        if depth > Limits.yamlDepth {
            throw RulesError(file: file, node: node, message: "collections nested more than \(Limits.yamlDepth) deep; a rules file needs four")
        }
        budget -= 1
        if budget < 0 {
            throw RulesError(file: file, node: node, message: "the file expands to more than \(Limits.values) values (through YAML aliases?); write the rules out")
        }
        if let mapping = node.mapping { for (_, value) in mapping { try checkDepth(value, file: file, depth: depth + 1, budget: &budget) } }
        if let sequence = node.sequence { for item in sequence { try checkDepth(item, file: file, depth: depth + 1, budget: &budget) } }
    }

    /// Decides, rule by rule in file order, what the event sets off. A rule whose action is
    /// `ignore` fires and stops the rules after it.
    /// The schedule rules due in this minute (local time, as cron does).
    public func due(minute: Int, hour: Int, day: Int, month: Int, weekday: Int) -> [Rule] {
        rules.filter { $0.cron?.matches(minute: minute, hour: hour, day: day, month: month, weekday: weekday) == true }
    }

    /// Whether the rules serve (infer) each documented inbox layout: `production/<stage>/<batch>`
    /// and `production/<batch>`, tried with an example path; `rule` is the rule that infers it, or
    /// nil with the reason why none does. For `rules check` and the daemon's start-up log.
    public func servedLayouts() -> [ServedLayout] {
        [("production/<stage>/<batch>", "production/example-stage/example-batch"), ("production/<batch>", "production/example-batch")].map { layout, path in
            let decisions = decide(Event(kind: .batchLanded, path: path))
            if let serving = decisions.first(where: { $0.fired && $0.actions.contains { if case .infer = $0 { true } else { false } } }) {
                return ServedLayout(layout: layout, served: true, rule: serving.rule, reason: nil)
            }
            let why = decisions.isEmpty ? "no rule is for batch_landed" : decisions.map { "\($0.rule): \($0.fired ? "fires without infer" : $0.reason)" }.joined(separator: "; ")
            return ServedLayout(layout: layout, served: false, rule: nil, reason: why)
        }
    }

    public func decide(_ event: Event) -> [RuleDecision] {
        var decisions: [RuleDecision] = []
        var stopped: String?
        for rule in rules {
            func skip(_ reason: String) { decisions.append(RuleDecision(rule: rule.name, line: rule.line, fired: false, reason: reason, actions: [])) }
            if let stopped { skip("an earlier rule, '\(stopped)', ignored this event"); continue }
            guard rule.on == event.kind else { skip("it is for \(rule.on.rawValue), not \(event.kind.rawValue)"); continue }
            if rule.on == .schedule && event.path != "schedule/" + rule.name { skip("it is another rule's schedule"); continue }
            if let kind = rule.flagKind {
                let actual = event.fields["kind"]?.text ?? "?"
                guard kind == actual else { skip("it is for \(kind) flags, this is a \(actual) flag"); continue }
            }
            var values = event.fields
            values["path"] = .string(event.path)
            if let pattern = rule.match {
                guard let captures = pattern.match(event.path) else { skip("\(event.path) does not match \(pattern)"); continue }
                for (k, v) in captures { values[k] = .string(v) }
            }
            if let condition = rule.when {
                var why: [String] = []
                guard condition.evaluate(values, why: &why) else {
                    skip("the condition is false (\(why.joined(separator: "; ")))")
                    continue
                }
            }
            var planned: [PlannedAction] = []
            var failure: String?
            func fill(_ template: Template) -> String? {
                switch template.fill(values) {
                case .success(let text): return text
                case .failure(let missing):
                    failure = missing.name == "flag.stage"
                        ? "'{flag.stage}' has no value for this event: the flag names no stage (its batch was not under production/<stage>/), so there is no stage to retrain on"
                        : "'{\(missing.name)}' has no value for this event"
                    return nil
                }
            }
            for action in rule.actions {
                switch action {
                case .infer: planned.append(.infer(batch: event.path))
                case .mergeLabels: planned.append(.mergeLabels(file: event.path))
                case .promote(let policy): planned.append(.promote(policy: policy))
                case .ignore: stopped = rule.name
                case .report:
                    let reason = values["flag.reason"].map { ": " + $0.text } ?? ""
                    planned.append(.report(text: "\(event.kind.rawValue) \(event.path)\(reason)"))
                case .train(let stage, let options):
                    if let text = fill(stage) {
                        // the stage names a folder under inbox/training/: only a safe name builds it
                        if let problem = SafeName.problem(text, what: "stage") { failure = "\(problem): no training folder is built from it" } else {
                            planned.append(.train(stage: text, options: options))
                        }
                    }
                case .run(let templates, let timeout):
                    var arguments: [String] = []
                    for template in templates {
                        guard let text = fill(template) else { break }
                        if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                            failure = "argument \(arguments.count + 1) of the command would hold a control character from the event; not run"
                            break
                        }
                        if template.startsWithPlaceholder && text.hasPrefix("-") {
                            failure = "argument \(arguments.count + 1) of the command would start with '-' from the event ('\(DisplayText.escaped(text))'), which the program could take for an option; not run"
                            break
                        }
                        arguments.append(text)
                    }
                    if failure == nil { planned.append(.run(arguments: arguments, timeout: timeout)) }
                }
                if failure != nil { break }
            }
            if let failure { skip(failure); continue }
            decisions.append(RuleDecision(rule: rule.name, line: rule.line, fired: true,
                                          reason: stopped == rule.name ? "it matched and ignores the event" : "it matched", actions: planned))
        }
        return decisions
    }
}

public struct RulesError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var column: Int?
    public var message: String

    public init(file: String, line: Int? = nil, column: Int? = nil, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    init(file: String, node: Node, columnOffset: Int = 0, message: String) {
        self.init(file: file, line: node.mark?.line, column: node.mark.map { $0.column + columnOffset }, message: message)
    }

    public var description: String {
        var place = file
        if let line { place += ":\(line)" }
        if let column { place += ":\(column)" }
        return "\(place): \(message)"
    }
}

/// What happens to a production batch once it is handled (its latest job succeeded, or no rule
/// served it) and unchanged since, `after_days` after its job ended: `archive` moves it to
/// `<root>/archive/production/[<stage>/]<batch>` (a suffix `~2`, `~3`... when that exists), `delete`
/// removes it. Keeps the inbox, and so every poll, small. Batches whose job failed stay.
///
/// ```yaml
/// retention:
///   handled_batches: archive   # or delete
///   after_days: 7              # 0: at the next sweep (hourly)
/// ```
public struct Retention: Sendable, Equatable {
    public enum Action: String, Sendable, CaseIterable { case archive, delete }
    public var action: Action
    public var afterDays: Double

    public init(action: Action, afterDays: Double) {
        self.action = action
        self.afterDays = afterDays
    }

    static func parse(_ node: Node, file: String) throws(RulesError) -> Retention {
        guard let mapping = node.mapping else {
            throw RulesError(file: file, node: node, message: "`retention:` must be a mapping with handled_batches (archive or delete) and after_days")
        }
        var action: Action?, days: Double?
        for (key, value) in mapping {
            switch key.string {
            case "handled_batches":
                guard let text = value.string, let chosen = Action(rawValue: text) else {
                    throw RulesError(file: file, node: value, message: "handled_batches must be archive or delete, not '\(value.string ?? "?")'")
                }
                action = chosen
            case "after_days":
                guard let number = value.float, number.isFinite, number >= 0, number <= 36500 else {
                    throw RulesError(file: file, node: value, message: "after_days must be a number of days from 0 to 36500, not '\(value.string ?? "?")'")
                }
                days = number
            default:
                throw RulesError(file: file, node: key, message: "unknown key '\(key.string ?? "?")' in retention (expected handled_batches, after_days)")
            }
        }
        guard let action else { throw RulesError(file: file, node: node, message: "retention needs handled_batches: archive or delete") }
        guard let days else { throw RulesError(file: file, node: node, message: "retention needs after_days (0 for at once)") }
        return Retention(action: action, afterDays: days)
    }
}
