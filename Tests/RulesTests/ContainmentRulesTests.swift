import Foundation
import Rules
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Rules files and events are untrusted input: nothing from an event reaches a shell or a path
/// unchecked, and no rules file can crash, hang or exhaust the daemon.
@Suite("Rules: names are data, files are bounded")
struct ContainmentRulesTests {
    static func rules(_ body: String) throws(RulesError) -> RuleSet {
        try RuleSet.parse(yaml: "version: 1\nrules:\n" + body, file: "r.yaml")
    }

    static func error(_ body: String) -> RulesError? {
        do { _ = try rules(body); return nil } catch { return error }
    }

    @Test("run takes an argument vector: a batch name with shell syntax is one argument, never a command")
    func argumentVector() throws {
        let set = try Self.rules("""
          - name: notify
            on: batch_landed
            match: production/{stage}/{batch}
            do:
              - run: {command: [notify-send, "batch {batch}", "{stage}"], timeout: 5}
        """)
        let decision = set.decide(Event(kind: .batchLanded, path: "production/s1/x$(touch${IFS}PWNED); rm -rf ~"))[0]
        #expect(decision.actions == [.run(arguments: ["notify-send", "batch x$(touch${IFS}PWNED); rm -rf ~", "s1"], timeout: 5)])
    }

    @Test("the old shell-line command is refused with the line, the column and the list to write instead")
    func shellLineRefused() throws {
        let error = try #require(Self.error("""
          - name: notify
            on: batch_landed
            do:
              - run: {command: "echo {path}"}
        """))
        #expect(error.line == 6)
        #expect(error.message.contains("list of arguments") && error.message.contains(#"["sh", "-c", "echo {path}"]"#))
    }

    @Test("no placeholder in the program, nor anywhere in a shell's or interpreter's arguments")
    func interpreters() throws {
        #expect(Self.error("  - name: a\n    on: batch_landed\n    do: [run: {command: [\"{path}\"]}]\n")?.message.contains("program") == true)
        for program in ["sh", "/bin/bash", "python3", "python3.11", "env", "perl", "xargs"] {
            let message = Self.error("  - name: a\n    on: batch_landed\n    do: [run: {command: [\(program), -c, \"echo {path}\"]}]\n")?.message
            #expect(message?.contains("$DROPLINE_") == true, "\(program): \(message ?? "accepted")")
        }
        // a shell reading the event from the environment is fine
        #expect(Self.error("  - name: a\n    on: batch_landed\n    do: [run: {command: [sh, -c, 'echo \"$DROPLINE_PATH\"']}]\n") == nil)
        #expect(Self.error("  - name: a\n    on: batch_landed\n    do: [run: {command: []}]\n")?.message.contains("1 to 64") == true)
    }

    @Test("a value that would start an argument with '-' or hold a control character stops the action")
    func optionInjection() throws {
        let set = try Self.rules("""
          - name: a
            on: flag_created
            do:
              - run: {command: [curl, "{flag.batch}"]}
          - name: b
            on: flag_created
            do:
              - run: {command: [logger, "batch {flag.batch}"]}
        """)
        func decide(_ batch: String) throws -> [RuleDecision] {
            let json = try JSONSerialization.data(withJSONObject: ["batch": batch])
            return set.decide(try Event.flag(relativePath: "flags/drift/x.json", json: Array(json)))
        }
        let dash = try decide("--output=/etc/cron.d/x")
        #expect(!dash[0].fired && dash[0].reason.contains("start with '-'"))
        #expect(dash[1].actions == [.run(arguments: ["logger", "batch --output=/etc/cron.d/x"], timeout: 600)])
        let newline = try decide("b1\n2026 error forged")
        #expect(!newline[0].fired && newline[0].reason.contains("control character"))
        #expect(!newline[1].fired)
    }

    @Test("templates are filled in one pass: a value holding {name} is pasted as it is")
    func singlePass() throws {
        let set = try Self.rules("""
          - name: t
            on: flag_created
            do:
              - run: {command: [echo, "{flag.a}/{flag.b}"]}
        """)
        let json = Array(#"{"a": "{flag.b}", "b": "B"}"#.utf8)
        #expect(set.decide(try Event.flag(relativePath: "flags/drift/x.json", json: json))[0].actions == [.run(arguments: ["echo", "{flag.b}/B"], timeout: 600)])
    }

    @Test("a flag's stage with .. or / never becomes a training folder; the flag's folder is its kind")
    func traversalInFlags() throws {
        let set = try RuleSet.load(file: RuleSetTests.shippedRules)
        for stage in ["../../..", "a/b", "..", "x$(id)", ".hidden"] {
            let json = try JSONSerialization.data(withJSONObject: ["kind": "drift", "stage": stage])
            let decision = try #require(set.decide(try Event.flag(relativePath: "flags/drift/b.json", json: Array(json))).first { $0.rule == "retrain-on-drift" })
            #expect(!decision.fired && decision.reason.contains("no training folder"), "\(stage): \(decision.reason)")
        }
        let disguised = try Event.flag(relativePath: "flags/drift/b.json", json: Array(#"{"kind": "retrain", "stage": "original"}"#.utf8))
        #expect(disguised.fields["kind"] == .string("drift"))
        #expect(set.decide(disguised).filter(\.fired).map(\.rule) == ["retrain-on-drift"])
    }

    @Test("a deeply nested condition is an error with its column, not a crash")
    func deepCondition() throws {
        let parens = String(repeating: "(", count: 5000) + "a" + String(repeating: ")", count: 5000)
        let deep = try #require(Self.error("  - name: a\n    on: batch_landed\n    when: '\(String(repeating: "(", count: 40))a\(String(repeating: ")", count: 40))'\n    do: [infer: {}]\n"))
        #expect(deep.message.contains("nested more than 32") && deep.line == 5 && deep.column != nil)
        #expect(Self.error("  - name: a\n    on: batch_landed\n    when: '\(parens)'\n    do: [infer: {}]\n")?.message.contains("longer than 2000") == true)
        let nots = String(repeating: "not ", count: 33) + "a"
        #expect(Self.error("  - name: a\n    on: batch_landed\n    when: '\(nots)'\n    do: [infer: {}]\n")?.message.contains("nested more than 32") == true)
        #expect(Self.error("  - name: a\n    on: batch_landed\n    when: '\(String(repeating: "not ", count: 30))a'\n    do: [infer: {}]\n") == nil)
    }

    @Test("deep YAML, a huge file and too many rules are refused before they cost the parser its stack")
    func hugeAndDeep() throws {
        let flow = "version: 1\nrules: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "\n"
        #expect(throws: RulesError.self) { try RuleSet.parse(yaml: flow, file: "deep.yaml") }
        var block = "version: 1\nrules:\n  - name: a\n    on: batch_landed\n    do:\n"
        var indent = "      "
        for _ in 0..<40 { block += indent + "- \n"; indent += "  " }
        block += indent + "- infer: {}\n"
        #expect { try RuleSet.parse(yaml: block, file: "block.yaml") } throws: { ($0 as? RulesError)?.message.contains("nested more than") == true }
        let big = "version: 1\nrules: []\n" + String(repeating: "# padding\n", count: 30_000)
        #expect { try RuleSet.parse(yaml: big, file: "big.yaml") } throws: { ($0 as? RulesError).map { $0.line == 1 && $0.message.contains("KiB") } == true }
        // a billion values from a few lines of aliases
        var laughs = "version: 1\nrules:\n  - name: a\n    on: batch_landed\n    do: [infer: {}]\n    x0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...8 { laughs += "    x\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        #expect { try RuleSet.parse(yaml: laughs, file: "laughs.yaml") } throws: { ($0 as? RulesError)?.message.contains("100000 values") == true }
        var many = ""
        for i in 0...RuleSet.Limits.rules { many += "  - {name: r\(i), on: batch_landed, do: [infer: {}]}\n" }
        #expect(Self.error(many)?.message.contains("more than 1000 rules") == true)
    }

    @Test("** patterns match in time proportional to segments x parts, with the same captures as before")
    func linearGlob() throws {
        let hostile = try MatchPattern(Array(repeating: "**", count: 22).joined(separator: "/") + "/end")
        let path = Array(repeating: "x", count: 40).joined(separator: "/") + "/nope"
        var steps = 0
        #expect(hostile.match(path, steps: &steps) == nil)
        #expect(steps <= (23 + 1) * (41 + 1) * 2, "\(steps) steps")
        #expect(hostile.match(Array(repeating: "x", count: 40).joined(separator: "/") + "/end") != nil)
        let captures = try MatchPattern("production/**/{batch}")
        #expect(captures.match("production/a/b/c") == ["batch": "c"])
        #expect(captures.match("production/c") == ["batch": "c"])
        #expect(captures.match("production") == nil)
        let middle = try MatchPattern("a/**/{x}/b/**")
        #expect(middle.match("a/1/2/b/3/b") == ["x": "2"])
        #expect(try MatchPattern("{stage}.json").match("s2.json") == ["stage": "s2"])
        #expect(throws: PatternError.self) { try MatchPattern(Array(repeating: "a", count: 65).joined(separator: "/")) }
        #expect(Self.error("  - name: a\n    on: batch_landed\n    match: '\(String(repeating: "ab/", count: 200))x'\n    do: [infer: {}]\n")?.message.contains("longer than 512") == true)
    }

    @Test("a cron schedule that the calendar never reaches is an error; 29 February and weekday alternatives are fine")
    func calendar() throws {
        for never in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30-31 2 *"] {
            #expect(throws: PatternError.self, "\(never)") { try CronSchedule(never) }
        }
        let error = Self.error("  - name: a\n    on: schedule\n    cron: \"0 0 30 2 *\"\n    do: [run: {command: [\"true\"]}]\n")
        #expect(error?.message.contains("never fires") == true && error?.line == 5)
        for fine in ["0 0 29 2 *", "0 0 30 2 1", "0 0 31 * *", "*/5 * * * *"] { _ = try CronSchedule(fine) }
    }

    @Test("a rules file that is a FIFO is refused at once, not waited on")
    func fifoRules() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-rules-fifo-\(UUID().uuidString)").path
        #expect(mkfifo(path, 0o644) == 0)
        defer { unlink(path) }
        #expect { _ = try RuleSet.load(file: path) } throws: { ($0 as? RulesError)?.message.contains("FIFO") == true }
    }

    @Test("the shipped rules serve both documented layouts; rules that serve only staged batches say so")
    func layouts() throws {
        let shipped = try RuleSet.load(file: RuleSetTests.shippedRules)
        #expect(shipped.servedLayouts().map(\.served) == [true, true])
        #expect(shipped.decide(Event(kind: .batchLanded, path: "production/b1")).filter(\.fired).map(\.rule) == ["infer-unstaged-batch"])
        let staged = try Self.rules("  - name: a\n    on: batch_landed\n    match: production/{stage}/{batch}\n    do: [infer: {}]\n")
        let layouts = staged.servedLayouts()
        #expect(layouts[0].served && layouts[0].rule == "a")
        #expect(!layouts[1].served && layouts[1].reason?.contains("does not match") == true)
    }
}
