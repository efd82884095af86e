import Foundation
import Rules
import Testing

@Suite("Match patterns")
struct PatternTests {
    @Test("captures, single-segment and any-depth wildcards")
    func matching() throws {
        let p = try MatchPattern("production/{stage}/{batch}")
        #expect(p.match("production/stage-2/batch-7") == ["stage": "stage-2", "batch": "batch-7"])
        #expect(p.match("production/stage-2") == nil)
        #expect(p.match("production/stage-2/batch-7/extra") == nil)
        #expect(p.match("training/stage-2/batch-7") == nil)
        let deep = try MatchPattern("flags/**/{name}")
        #expect(deep.match("flags/drift/b.json") == ["name": "b.json"])
        #expect(deep.match("flags/b.json") == ["name": "b.json"])
        #expect(try MatchPattern("a/*/c").match("a/b/c") == [:])
        let suffixed = try MatchPattern("flags/retrain/{stage}.json")
        #expect(suffixed.match("flags/retrain/stage-3.json") == ["stage": "stage-3"])
        #expect(suffixed.match("flags/retrain/.json") == nil)
        #expect(suffixed.match("flags/retrain/stage-3.txt") == nil)
    }

    @Test("bad patterns say what is wrong and where")
    func errors() {
        #expect(throws: PatternError.self) { try MatchPattern("a//b") }
        do { _ = try MatchPattern("production/x{st-age}"); Issue.record("accepted") } catch { #expect(error.offset == 13); #expect(error.message.contains("letters")) }
        do { _ = try MatchPattern("a/{x}{y}"); Issue.record("accepted") } catch { #expect(error.message.contains("one capture")) }
        do { _ = try MatchPattern("{a}/{a}") } catch { #expect(error.message.contains("twice")) }
    }
}

@Suite("Conditions")
struct ConditionTests {
    @Test("comparisons, boolean logic and precedence")
    func evaluation() throws {
        let fields: [String: Value] = ["flag.drift": .bool(true), "flag.model_version": .number(3), "stage": .string("stage-2")]
        func check(_ text: String) throws -> Bool {
            var why: [String] = []
            return try Condition.parse(text).evaluate(fields, why: &why)
        }
        #expect(try check("flag.drift"))
        #expect(try check("flag.model_version >= 3 and stage == 'stage-2'"))
        #expect(try !check("flag.model_version > 3"))
        #expect(try check("flag.model_version > 3 or not flag.drift or stage != \"x\""))
        #expect(try !check("not (flag.drift and stage == 'stage-2')"))
        #expect(try !check("missing.field"))
        #expect(try check("false or true and true"))
        #expect(try !check("(false or true) and false"))
    }

    @Test("syntax errors carry the offset of the problem")
    func errors() {
        do { _ = try Condition.parse("a == "); Issue.record("accepted") } catch { #expect(error.message.contains("ends too early")) }
        do { _ = try Condition.parse("a = 1"); Issue.record("accepted") } catch { #expect(error.offset == 2) }
        do { _ = try Condition.parse("(a == 1"); Issue.record("accepted") } catch { #expect(error.message.contains("not closed")) }
        do { _ = try Condition.parse("a == 'x"); Issue.record("accepted") } catch { #expect(error.message.contains("unterminated")) }
    }
}

@Suite("Rules files")
struct RuleSetTests {
    static var shippedRules: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("rules/default.yaml").path
    }

    @Test("the shipped default rules load and drive the cloud design's loop")
    func shipped() throws {
        let rules = try RuleSet.load(file: Self.shippedRules)
        #expect(rules.rules.map(\.name) == ["infer-every-batch", "infer-unstaged-batch", "retrain-on-drift", "retrain-on-request", "merge-labels", "retrain-on-quality",
                                             "report-data-quality"])
        #expect(rules.decide(Event(kind: .labelsLanded, path: "labels/b1.csv")).filter(\.fired).first?.actions == [.mergeLabels(file: "labels/b1.csv")])

        let batch = rules.decide(Event(kind: .batchLanded, path: "production/stage-2/batch-7"))
        #expect(batch.filter(\.fired).map(\.rule) == ["infer-every-batch"])
        #expect(batch.first?.actions == [.infer(batch: "production/stage-2/batch-7")])

        let json = Array(#"{"kind": "drift", "batch": "batch-7", "stage": "stage-2", "drift": true, "model_version": 1, "detectors": []}"#.utf8)
        let drift = try Event.flag(relativePath: "flags/drift/batch-7.json", json: json)
        #expect(drift.fields["flag.drift"] == .bool(true))
        #expect(drift.fields["flag.model_version"] == .number(1))
        let fired = rules.decide(drift).filter(\.fired)
        #expect(fired.map(\.rule) == ["retrain-on-drift"])
        #expect(fired.first?.actions == [.train(stage: "stage-2"), .promote(policy: "default")])

        let request = try Event.flag(relativePath: "flags/retrain/stage-3.json", json: Array("{}".utf8))
        let decisions = rules.decide(request)
        #expect(decisions.filter(\.fired).map(\.rule) == ["retrain-on-request"])
        #expect(decisions.filter(\.fired).first?.actions == [.train(stage: "stage-3"), .promote(policy: "default")])
        let quality = try Event.flag(relativePath: "flags/quality/b9.json",
                                     json: Array(#"{"kind": "quality", "batch": "b9", "stage": "stage-4", "accuracy": 0.41}"#.utf8))
        #expect(rules.decide(quality).filter(\.fired).first?.actions == [.train(stage: "stage-4"), .promote(policy: "default")])
        // A data-quality flag is reported, not retrained on.
        let dataQuality = try Event.flag(relativePath: "flags/data_quality/stage-2~b3.json",
                                         json: Array(#"{"kind": "data_quality", "batch": "b3", "stage": "stage-2", "violations": 2, "reason": "2 data-quality violation(s): width"}"#.utf8))
        let reported = rules.decide(dataQuality).filter(\.fired)
        #expect(reported.map(\.rule) == ["report-data-quality"])
        #expect(reported.first?.actions == [.report(text: "flag_created flags/data_quality/stage-2~b3.json: 2 data-quality violation(s): width")])
        // The drift rule says why it stayed quiet.
        #expect(decisions.first { $0.rule == "retrain-on-drift" }?.reason.contains("drift flags") == true)
    }

    @Test("the example rules file retrains only after two drifted batches in a row, and notifies on every drift flag")
    func hysteresisExample() throws {
        let file = URL(fileURLWithPath: Self.shippedRules).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples/rules-hysteresis-notify.yaml").path
        let rules = try RuleSet.load(file: file)
        func fired(_ inARow: Int) throws -> [String] {
            let json = #"{"kind": "drift", "batch": "b", "stage": "s2", "drift": true, "batches_in_a_row": \#(inARow)}"#
            return rules.decide(try Event.flag(relativePath: "flags/drift/b.json", json: Array(json.utf8))).filter(\.fired).map(\.rule)
        }
        #expect(try fired(1) == ["notify-on-drift"])
        #expect(try fired(2) == ["notify-on-drift", "retrain-after-two-drifted-batches"])
        #expect(rules.decide(Event(kind: .batchLanded, path: "production/quarantine/b")).filter(\.fired).map(\.rule) == ["skip-quarantine"])
        let quality = try Event.flag(relativePath: "flags/data_quality/b.json", json: Array(#"{"kind": "data_quality", "batch": "b", "violations": 1, "reason": "r"}"#.utf8))
        let reported = rules.decide(quality).filter(\.fired)
        #expect(reported.map(\.rule) == ["notify-on-data-quality"] && reported.first?.actions.first == .report(text: "flag_created flags/data_quality/b.json: r"))
    }

    @Test("a drift flag without a stage does not fire a retrain with an empty stage")
    func missingPlaceholder() throws {
        let rules = try RuleSet.load(file: Self.shippedRules)
        let drift = try Event.flag(relativePath: "flags/drift/b.json", json: Array(#"{"kind": "drift"}"#.utf8))
        let decision = try #require(rules.decide(drift).first { $0.rule == "retrain-on-drift" })
        #expect(!decision.fired)
        #expect(decision.reason.contains("{flag.stage}"))
    }

    @Test("conditions, ignore and run actions")
    func conditionsAndIgnore() throws {
        let yaml = """
        version: 1
        rules:
          - name: skip-quarantine
            on: batch_landed
            match: production/quarantine/**
            do:
              - ignore: {}
          - name: infer
            on: batch_landed
            match: production/{stage}/{batch}
            do:
              - infer: {}
              - run:
                  command: [notify-send, "{stage}", "{batch}"]
                  timeout: 5
          - name: big-drift-only
            on: flag_created
            kind: drift
            when: flag.model_version >= 2 and flag.drift
            do:
              - train: {stage: "{flag.stage}"}
              - promote: {policy: always}
        """
        let rules = try RuleSet.parse(yaml: yaml, file: "custom.yaml")
        let quarantined = rules.decide(Event(kind: .batchLanded, path: "production/quarantine/b1"))
        #expect(quarantined.filter(\.fired).map(\.rule) == ["skip-quarantine"])
        #expect(quarantined[1].reason.contains("skip-quarantine"))
        let normal = rules.decide(Event(kind: .batchLanded, path: "production/stage-1/b1")).filter(\.fired)
        #expect(normal.first?.actions == [.infer(batch: "production/stage-1/b1"), .run(arguments: ["notify-send", "stage-1", "b1"], timeout: 5)])

        let old = try Event.flag(relativePath: "flags/drift/b.json", json: Array(#"{"kind":"drift","drift":true,"model_version":1,"stage":"s"}"#.utf8))
        let quiet = rules.decide(old).first { $0.rule == "big-drift-only" }
        #expect(quiet?.fired == false)
        #expect(quiet?.reason.contains("flag.model_version") == true)
        let recent = try Event.flag(relativePath: "flags/drift/b.json", json: Array(#"{"kind":"drift","drift":true,"model_version":2,"stage":"s"}"#.utf8))
        #expect(rules.decide(recent).first { $0.rule == "big-drift-only" }?.actions == [.train(stage: "s"), .promote(policy: "always")])
    }

    @Test("mistakes in a rules file are reported with file, line and the remedy", arguments: [
        ("version: 2\nrules: []\n", "custom.yaml:1", "version 1"),
        ("version: 1\nrules:\n  - name: a\n    on: batch_arrived\n    do: [infer: {}]\n", "custom.yaml:4", "unknown event 'batch_arrived'"),
        ("version: 1\nrules:\n  - name: a\n    on: batch_landed\n    do: [infer: {}]\n  - name: a\n    on: batch_landed\n    do: [infer: {}]\n", "custom.yaml:6", "already used on line 3"),
        ("version: 1\nrules:\n  - name: a\n    on: flag_created\n    match: flags/{kind}/x\n    do:\n      - train: {stage: \"{stage}\"}\n", "custom.yaml:7", "'{stage}' is not a capture"),
        ("version: 1\nrules:\n  - name: a\n    on: batch_landed\n    when: flag.x = 1\n    do: [infer: {}]\n", "custom.yaml:5", "bad condition"),
        ("version: 1\nrules:\n  - name: a\n    on: batch_landed\n    do: [promote: {policy: sometimes}]\n", "custom.yaml:5", "unknown promotion policy"),
        ("version: 1\nrules:\n  - name: a\n    on: batch_landed\n    do: [deploy: {}]\n", "custom.yaml:5", "unknown action 'deploy'"),
        ("version: 1\nrules:\n  - name: a\n    on: flag_created\n    do: [infer: {}]\n", "custom.yaml:5", "infer only applies to batch_landed"),
        ("version: 1\nrules:\n  - name: a\n    on: batch_landed\n    tags: x\n    do: [infer: {}]\n", "custom.yaml:5", "unknown key 'tags'"),
        ("version: 1\nrules: [\n", "custom.yaml", "not valid YAML"),
    ])
    func errors(yaml: String, place: String, message: String) {
        do {
            _ = try RuleSet.parse(yaml: yaml, file: "custom.yaml")
            Issue.record("accepted a bad rules file")
        } catch {
            #expect(error.description.hasPrefix(place), "\(error)")
            #expect(error.description.contains(message), "\(error)")
        }
    }

    @Test("a flag file that is not JSON is named in the error")
    func badFlag() {
        do {
            _ = try Event.flag(relativePath: "flags/drift/x.json", json: Array("not json".utf8))
            Issue.record("accepted")
        } catch {
            #expect(error.description.hasPrefix("flags/drift/x.json"))
        }
    }
}

@Suite("Cron schedules")
struct CronTests {
    @Test("fields, ranges, steps, lists, and cron's either-day rule")
    func matching() throws {
        let nightly = try CronSchedule("0 3 * * *")
        #expect(nightly.matches(minute: 0, hour: 3, day: 14, month: 6, weekday: 2))
        #expect(!nightly.matches(minute: 1, hour: 3, day: 14, month: 6, weekday: 2))
        let quarter = try CronSchedule("*/15 8-18 * * 1-5")
        #expect(quarter.matches(minute: 45, hour: 18, day: 1, month: 1, weekday: 5))
        #expect(!quarter.matches(minute: 50, hour: 9, day: 1, month: 1, weekday: 3))
        #expect(!quarter.matches(minute: 0, hour: 9, day: 1, month: 1, weekday: 0))
        let sunday = try CronSchedule("30 2 * * 7")
        #expect(sunday.matches(minute: 30, hour: 2, day: 5, month: 3, weekday: 0))
        // both day fields restricted: either one matches
        let either = try CronSchedule("0 0 1,15 * 1")
        #expect(either.matches(minute: 0, hour: 0, day: 15, month: 2, weekday: 3))
        #expect(either.matches(minute: 0, hour: 0, day: 9, month: 2, weekday: 1))
        #expect(!either.matches(minute: 0, hour: 0, day: 9, month: 2, weekday: 2))
    }

    @Test("bad schedules say which field is wrong and where")
    func errors() {
        do { _ = try CronSchedule("0 3 * *"); Issue.record("accepted") } catch { #expect(error.message.contains("five fields")) }
        do { _ = try CronSchedule("0 24 * * *"); Issue.record("accepted") } catch { #expect(error.message.contains("hour") && error.offset == 2) }
        do { _ = try CronSchedule("*/0 * * * *"); Issue.record("accepted") } catch { #expect(error.message.contains("step")) }
        do { _ = try CronSchedule("0 0 x * *"); Issue.record("accepted") } catch { #expect(error.message.contains("day of month") && error.offset == 4) }
    }

    @Test("a schedule rule fires only for its own schedule event, and cron goes with on: schedule only")
    func rules() throws {
        let yaml = """
        version: 1
        rules:
          - name: nightly-retrain
            on: schedule
            cron: "0 3 * * *"
            do:
              - train: {stage: original}
              - promote: {policy: default}
          - name: hourly-report
            on: schedule
            cron: "0 * * * *"
            do:
              - run: {command: [echo, report]}
        """
        let rules = try RuleSet.parse(yaml: yaml, file: "s.yaml")
        #expect(rules.due(minute: 0, hour: 3, day: 1, month: 1, weekday: 1).map(\.name) == ["nightly-retrain", "hourly-report"])
        #expect(rules.due(minute: 0, hour: 4, day: 1, month: 1, weekday: 1).map(\.name) == ["hourly-report"])
        let fired = rules.decide(Event(kind: .schedule, path: "schedule/nightly-retrain")).filter(\.fired)
        #expect(fired.map(\.rule) == ["nightly-retrain"])
        #expect(fired.first?.actions == [.train(stage: "original"), .promote(policy: "default")])
        do {
            _ = try RuleSet.parse(yaml: "version: 1\nrules:\n  - name: a\n    on: schedule\n    do: [run: {command: [x]}]\n", file: "s.yaml")
            Issue.record("accepted a schedule without cron")
        } catch { #expect(error.description.hasPrefix("s.yaml:3") && error.message.contains("cron")) }
        do {
            _ = try RuleSet.parse(yaml: "version: 1\nrules:\n  - name: a\n    on: schedule\n    cron: \"0 25 * * *\"\n    do: [run: {command: [x]}]\n", file: "s.yaml")
            Issue.record("accepted a bad cron")
        } catch { #expect(error.description.hasPrefix("s.yaml:5:") && error.message.contains("hour")) }
    }
}

@Suite("A rule's train options")
struct TrainOptionsTests {
    static func rules(_ options: String) throws(RulesError) -> RuleSet {
        try RuleSet.parse(yaml: """
        version: 1
        rules:
          - name: retrain
            on: flag_created
            kind: drift
            do:
              - train: {stage: "{flag.stage}"\(options)}

        """, file: "rules.yaml")
    }

    @Test("arch, epochs and image_size reach the planned training; none of them: the champion's recipe")
    func options() throws {
        let flag = try Event.flag(relativePath: "flags/drift/b.json", json: Array(#"{"kind": "drift", "stage": "s2"}"#.utf8))
        #expect(try Self.rules("").decide(flag).first?.actions == [.train(stage: "s2")])
        let planned = try Self.rules(", arch: \"backbone:/models/m/model.json\", epochs: 12, image_size: 160").decide(flag).first?.actions
        #expect(planned == [.train(stage: "s2", options: TrainOptions(arch: "backbone:/models/m/model.json", epochs: 12, imageSize: 160))])
        #expect(planned?.first?.description == "train stage s2 (arch backbone:/models/m/model.json, 160 px, 12 epochs)")
    }

    @Test("wrong options are refused at their line and column", arguments: [
        (", arch: resnet", "arch is scratch, small-cnn or backbone:<model.json>"),
        (", arch: \"backbone:\"", "arch is scratch, small-cnn or backbone:<model.json>"),
        (", epochs: 0", "epochs is a number of epochs, from 1 to 1000"),
        (", image_size: 8", "image_size is the square input side in pixels, from 16 to 1024"),
        (", image_size: big", "image_size is the square input side in pixels"),
        (", batch: 3", "'train' takes stage, arch, epochs, image_size, not 'batch'"),
    ])
    func refused(options: String, message: String) {
        do {
            _ = try Self.rules(options)
            Issue.record("accepted \(options)")
        } catch {
            #expect(error.description.contains(message), "\(error)")
            #expect(error.description.hasPrefix("rules.yaml:7:"), "\(error)")
        }
    }
}

@Suite("A root's configuration file")
struct RootConfigurationTests {
    @Test("every key read; the backbone's path relative to the root; no file is the defaults")
    func valid() throws {
        let c = try RootConfiguration.parse(yaml: """
        version: 1
        training:
          arch: backbone:backbones/m/model.json
          image_size: 160
          epochs: 30
        watch: {marker: DONE, settle_seconds: 5.5, jobs: 2}
        thresholds:
          drift_p_value: 0.01
          drift_minimum_statistic: 0.2
          promotion_margin: 0
          quality_tolerance: 0.1
        data_quality: {out_of_range_share: 0.2, category_tolerance: 0.3, duplicate_tolerance: 0, refusal_tolerance: 1, significance: 0.05}
        slurm:
          partition: cpu
          training_partition: gpu-a100
          training_gres: gpu:a100:2
          shard_images: 2000
          array_width: 16
          resubmissions: 3
          cpus_per_task: 4
          time_limit: "2:00:00"
          executable: /opt/dropline/bin/dropline

        """, file: "dropline.yaml")
        #expect(c.slurm.partition == "cpu" && c.slurm.trainingPartition == "gpu-a100" && c.slurm.trainingGres == "gpu:a100:2" && c.slurm.shardImages == 2000
                && c.slurm.arrayWidth == 16 && c.slurm.resubmissions == 3 && c.slurm.cpusPerTask == 4 && c.slurm.timeLimit == "2:00:00"
                && c.slurm.executable == "/opt/dropline/bin/dropline")
        #expect(c.dataQuality.outOfRangeShare == 0.2 && c.dataQuality.categoryTolerance == 0.3 && c.dataQuality.duplicateTolerance == 0
                && c.dataQuality.refusalTolerance == 1 && c.dataQuality.significance == 0.05)
        #expect(c.training.arch == "backbone:backbones/m/model.json" && c.training.imageSize == 160 && c.training.epochs == 30)
        #expect(c.arch(root: "/srv/root") == "backbone:/srv/root/backbones/m/model.json")
        #expect(c.watch.marker == "DONE" && c.watch.settleSeconds == 5.5 && c.watch.jobs == 2)
        #expect(c.thresholds.driftPValue == 0.01 && c.thresholds.driftMinimumStatistic == 0.2 && c.thresholds.promotionMargin == 0 && c.thresholds.qualityTolerance == 0.1)
        #expect(try RootConfiguration.load(root: "/nonexistent-\(UUID().uuidString)") == RootConfiguration())
        #expect(try RootConfiguration.parse(yaml: "version: 1\n", file: "f") == RootConfiguration())
    }

    @Test("mistakes are refused at their line and column, with what is allowed", arguments: [
        ("version: 1\ntraining:\n  arch: resnet\n", "dropline.yaml:3:9: arch is scratch, small-cnn or backbone:<model.json>"),
        ("version: 1\ntraining:\n  epoch: 3\n", "dropline.yaml:3:3: unknown key 'epoch' in training (expected arch, image_size, epochs)"),
        ("version: 1\nwatch:\n  jobs: 0\n", "dropline.yaml:3:9: jobs is a whole number from 1 to 64"),
        ("version: 1\nwatch:\n  marker: ../x\n", "dropline.yaml:3:11: marker is a file name"),
        ("version: 1\nthresholds:\n  drift_p_value: 0\n", "dropline.yaml:3:18: drift_p_value is a number from above 0.0 to 0.5"),
        ("version: 1\nthresholds:\n  promotion_margin: lots\n", "dropline.yaml:3:21: promotion_margin is a number"),
        ("version: 1\ndata_quality:\n  out_of_range_share: 1.5\n", "dropline.yaml:3:23: out_of_range_share is a number from 0.0 to 1.0"),
        ("version: 1\ndata_quality:\n  duplicates: 0.1\n", "dropline.yaml:3:3: unknown key 'duplicates' in data_quality (expected out_of_range_share, category_tolerance, duplicate_tolerance, refusal_tolerance, significance)"),
        ("version: 1\ndata_quality:\n  significance: 0\n", "dropline.yaml:3:17: significance is a number from above 0.0 to 0.5"),
        ("version: 1\nslurm:\n  partition: \"a b; rm -rf /\"\n", "dropline.yaml:3:14: partition is a partition name"),
        ("version: 1\nslurm:\n  training_gres: \"gpu:1 --wrap=x\"\n", "dropline.yaml:3:18: training_gres is a GRES request"),
        ("version: 1\nslurm:\n  shard_images: 0\n", "dropline.yaml:3:17: shard_images is a whole number from 1 to 1000000"),
        ("version: 1\nslurm:\n  resubmissions: 11\n", "dropline.yaml:3:18: resubmissions is a whole number from 0 to 10"),
        ("version: 1\nslurm:\n  time_limit: soon\n", "dropline.yaml:3:15: time_limit is a Slurm time limit"),
        ("version: 1\nslurm:\n  executable: bin/dropline\n", "dropline.yaml:3:15: executable is an absolute path"),
        ("version: 1\nslurm:\n  nodes: 4\n", "dropline.yaml:3:3: unknown key 'nodes' in slurm"),
        ("version: 2\n", "dropline.yaml:1:10: this Dropline reads configuration version 1"),
        ("training: {}\n", "dropline.yaml:1:1: missing `version: 1`"),
        ("version: 1\nthreshold: {}\n", "dropline.yaml:2:1: unknown key 'threshold'"),
        ("version: 1\ntraining: [a]\n", "dropline.yaml:2:11: `training:` must be a mapping"),
    ])
    func refused(text: String, message: String) {
        do {
            _ = try RootConfiguration.parse(yaml: text, file: "dropline.yaml")
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.hasPrefix(message), "\(error)")
        }
    }
}

@Suite("The harm-gated rules example")
struct HarmGatedRulesTests {
    static var file: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples/rules-harm-gated.yaml").path
    }

    @Test("a drift that is not expected to cost accuracy is not retrained on; one that is, is")
    func gate() throws {
        let rules = try RuleSet.load(file: Self.file)
        func retrains(_ json: String) throws -> Bool {
            let flag = try Event.flag(relativePath: "flags/drift/s~b.json", json: Array(json.utf8))
            return rules.decide(flag).contains { $0.rule == "retrain-on-drift" && $0.fired }
        }
        #expect(try !retrains(#"{"kind": "drift", "stage": "s", "drift": true, "estimated_accuracy": 0.82, "estimated_accuracy_drop": 0.004}"#))
        #expect(try retrains(#"{"kind": "drift", "stage": "s", "drift": true, "estimated_accuracy": 0.61, "estimated_accuracy_drop": 0.21}"#))
        #expect(try !retrains(#"{"kind": "drift", "stage": "s", "drift": true}"#), "no estimate: no retraining")
    }
}

@Suite("The configuration file as a file")
struct RootConfigurationFileTests {
    @Test("a FIFO in its place is refused without blocking; a link (the root's own file) is followed; a huge file is refused")
    func specialFiles() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let file = root + "/" + RootConfiguration.fileName
        #expect(mkfifo(file, 0o644) == 0)
        #expect(throws: RulesError.self) { try RootConfiguration.load(root: root) }
        try FileManager.default.removeItem(atPath: file)
        try "version: 1\nwatch: {jobs: 3}\n".write(toFile: root + "/real.yaml", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: file, withDestinationPath: root + "/real.yaml")
        #expect(try RootConfiguration.load(root: root).watch.jobs == 3)
        try FileManager.default.removeItem(atPath: file)
        try String(repeating: "# padding\n", count: 8000).write(toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: RulesError.self) { try RootConfiguration.load(root: root) }
    }
}
