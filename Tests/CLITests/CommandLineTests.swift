import DroplineSupport
import Foundation
import Testing

@Suite("dropline executable", .enabled(if: Binary.path != nil, "the dropline executable was not built"))
struct CommandLineTests {
    static let commands: [[String]] = [[], ["init"], ["train"], ["infer"], ["runs"], ["recover"], ["show"], ["models"], ["models", "list"], ["models", "show"],
                                       ["models", "promote"], ["models", "rollback"], ["models", "history"], ["labels"], ["component"], ["image"], ["image", "info"], ["model"], ["model", "train"], ["model", "eval"],
                                       ["model", "predict"], ["drift"], ["drift", "fit"], ["drift", "check"], ["drift", "evaluate"],
                                       ["explain"], ["rules"], ["rules", "check"], ["rules", "explain"], ["watch"], ["status"], ["dataset"], ["dataset", "stages"], ["dataset", "fashion-mnist"], ["simulate"], ["demo"], ["bench"], ["bench", "imaging"], ["bench", "nn"], ["bench", "drift"],
                                       ["shard"], ["shard", "run"], ["shard", "merge"], ["shard", "train"], ["config"]]

    @Test("every command has --help", arguments: commands)
    func help(command: [String]) throws {
        let result = try Binary.run(command + ["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("USAGE: dropline"))
        #expect(result.stdout.contains("OVERVIEW:"))
    }

    @Test("the Slurm jobs' commands refuse a --run that is not one planned run folder's name, and --executor and --partition are checked")
    func shardArguments() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-shardargs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(try Binary.run(["init", folder]).status == 0)
        for run in ["../../etc", "x-serve-y/../../z", "a\nb-serve-c", "$(touch pwned)-serve-b", "plain-name"] {
            for command in [["shard", "run", folder, "--run", run, "--task", "0"], ["shard", "merge", folder, "--run", run]] {
                let result = try Binary.run(command)
                #expect(result.status != 0 && result.stderr.contains("--run is the name of a planned serve run's folder"), "\(command): \(result.stderr)")
            }
        }
        let missing = try Binary.run(["shard", "run", folder, "--run", "20260101T000000Z-abcd-serve-b", "--task", "0"])
        #expect(missing.status != 0 && missing.stderr.contains("plan.json cannot be read"), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: FileManager.default.currentDirectoryPath + "/pwned"))
        let executor = try Binary.run(["watch", folder, "--executor", "kubernetes"])
        #expect(executor.status != 0 && executor.stderr.contains("--executor is in-process or slurm"))
        let partition = try Binary.run(["watch", folder, "--partition", "gpu"])
        #expect(partition.status != 0 && partition.stderr.contains("--partition is for --executor slurm"))
        let badName = try Binary.run(["watch", folder, "--executor", "slurm", "--partition", "a;b"])
        #expect(badName.status != 0 && badName.stderr.contains("--partition is a Slurm partition name"))
    }

    @Test("rules check names the file, line and column of a mistake and exits 1; rules explain --json says which rule fires")
    func rules() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-rules-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(try Binary.run(["init", folder]).status == 0)
        #expect(try Binary.run(["rules", "check", folder]).status == 0)
        let bad = folder + "/bad.yaml"
        try "version: 1\nrules:\n  - name: x\n    on: batch_landed\n    do: [retrain: {}]\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let checked = try Binary.run(["rules", "check", bad])
        #expect(checked.status == 1)
        #expect(checked.stderr.contains(bad + ":5:"), "\(checked.stderr)")
        #expect(checked.stderr.contains("unknown action 'retrain'"))
        let explained = try Binary.run(["rules", "explain", folder, "--event", "batch_landed", "--path", "production/s1/b1", "--json"])
        #expect(explained.status == 0)
        struct Output: Decodable { struct D: Decodable { var rule: String; var fired: Bool; var actions: [String] }; var decisions: [D] }
        let output = try JSONDecoder().decode(Output.self, from: Data(explained.stdout.utf8))
        #expect(output.decisions.filter(\.fired).map(\.rule) == ["infer-every-batch"])
        #expect(output.decisions.first?.actions == ["infer production/s1/b1"])
    }

    @Test("--version prints the version")
    func version() throws {
        let result = try Binary.run(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == DroplineVersion.current)
    }

    @Test("a bad option is a usage error that says what is wrong")
    func usageError() throws {
        let result = try Binary.run(["image", "info", "--max-megapixels", "-3", "x.jpg"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--max-megapixels"))
    }

    @Test("image info --json gives one record per file with the documented outcomes",
          .enabled(if: SharedMaterial.locate() != nil, "../shared is not present"))
    func imageInfoJSON() throws {
        let folder = SharedMaterial.locate()! + "/bad-inputs"
        let result = try Binary.run(["image", "info", folder, "--json"])
        #expect(result.status == 0)
        struct Record: Decodable {
            var path: String
            var outcome: String
            var format: String?
            var width: Int?
            var height: Int?
            var channels: Int?
            var orientation: Int?
            var reason: String?
        }
        let records = try JSONDecoder().decode([Record].self, from: Data(result.stdout.utf8))
        var byName: [String: Record] = [:]
        for r in records { byName[(r.path as NSString).lastPathComponent] = r }
        #expect(byName["cmyk.jpg"]?.outcome == "ok")
        #expect(byName["cmyk.jpg"]?.channels == 4)
        #expect(byName["exif-orientation-6.jpg"]?.orientation == 6)
        #expect(byName["bomb-60000x60000.png"]?.outcome == "too_large")
        #expect(byName["webp-named.png"]?.format == "webp")
        #expect(byName["truncated-40pct.jpg"]?.outcome == "truncated")
        #expect(byName["Thumbs.db"]?.outcome == "junk")
        #expect(byName["photo with spaces ü.jpg"]?.outcome == "ok")
        #expect(byName["zero-bytes.jpg"]?.outcome == "empty")
        #expect(records.allSatisfy { $0.outcome == "ok" || $0.outcome == "junk" || $0.reason != nil })
    }

    @Test("image info --strict fails when a file would be quarantined")
    func strict() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = FileManager.default.createFile(atPath: folder + "/empty.jpg", contents: Data())
        let result = try Binary.run(["image", "info", "--strict", folder])
        #expect(result.status == 1)
        #expect(result.stdout.contains("empty"))
        #expect(result.stdout.contains("1 files: 1 empty"))
    }
}

@Suite("dropline init", .enabled(if: Binary.path != nil, "the dropline executable was not built"))
struct InitTests {
    @Test("init copies the shipped default rules, identical to rules/default.yaml, and keeps an edited copy")
    func rules() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-init-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try Binary.run(["init", root]).status == 0)
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("rules/default.yaml").path
        #expect(try String(contentsOfFile: root + "/rules.yaml", encoding: .utf8) == String(contentsOfFile: shipped, encoding: .utf8),
                "Sources/dropline/DefaultRules.swift is stale: run scripts/embed-default-rules")
        try "# mine\n".write(toFile: root + "/rules.yaml", atomically: true, encoding: .utf8)
        #expect(try Binary.run(["init", root]).status == 0)
        #expect(try String(contentsOfFile: root + "/rules.yaml", encoding: .utf8) == "# mine\n")
    }

    @Test("a malformed or too large DROPLINE_THREADS is noted once on stderr and the command still runs")
    func threadsNote() throws {
        let bad = try Binary.run(["--help"], environment: ["DROPLINE_THREADS": "lots"])
        #expect(bad.status == 0)
        #expect(bad.stderr.components(separatedBy: "note: DROPLINE_THREADS=\"lots\" is not a whole number").count == 2, "\(bad.stderr)")
        let many = try Binary.run(["--help"], environment: ["DROPLINE_THREADS": "100000"])
        #expect(many.status == 0 && many.stderr.contains("DROPLINE_THREADS=100000 is more than the"), "\(many.stderr)")
        let fine = try Binary.run(["--help"], environment: ["DROPLINE_THREADS": "1"])
        #expect(fine.status == 0 && !fine.stderr.contains("DROPLINE_THREADS"), "\(fine.stderr)")
    }

    @Test("the executable spins briefly in OpenMP with as many threads as it may use unless told otherwise, and the programs its rules run do not inherit that choice")
    func threadPolicy() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-policy-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try Binary.run(["init", root]).status == 0)
        try """
        version: 1
        rules:
          - name: environment
            on: batch_landed
            do:
              - run: {command: [sh, -c, 'echo "${GOMP_SPINCOUNT:-unset} ${OMP_WAIT_POLICY:-unset} ${OMP_NUM_THREADS:-unset} ${DROPLINE_SET_ENVIRONMENT:-unset}" >> "$0"', "\(root)/seen.txt"]}

        """.write(toFile: root + "/rules.yaml", atomically: true, encoding: .utf8)
        for (batch, environment) in [("b1", [String: String]()), ("b2", ["OMP_WAIT_POLICY": "active"]), ("b3", ["OMP_NUM_THREADS": "3"])] {
            try FileManager.default.createDirectory(atPath: root + "/inbox/production/\(batch)", withIntermediateDirectories: true)
            try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/inbox/production/\(batch)/a.jpg"))
            _ = FileManager.default.createFile(atPath: root + "/inbox/production/\(batch)/_READY", contents: nil)
            let run = try Binary.run(["watch", root, "--once"], environment: environment)
            #expect(run.status == 0, "\(run.stderr)")
        }
        // the daemon's own choice is not passed on; the user's own setting is
        #expect(try String(contentsOfFile: root + "/seen.txt", encoding: .utf8) == "unset unset unset unset\nunset active unset unset\nunset unset 3 unset\n")
        // and the running executable has it (it re-executed itself with it, keeping its pid)
        let daemon = try WatchDaemonTests.Daemon(root: root, arguments: [])
        defer { _ = daemon.stop() }
        #expect(WatchDaemonTests.eventually(10) {
            let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(daemon.process.processIdentifier)/environ"))) ?? Data()
            let variables = Set(environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
            return variables.contains("GOMP_SPINCOUNT=1000") && variables.contains("OMP_NUM_THREADS=\(ProcessInfo.processInfo.activeProcessorCount)")
        })
        _ = daemon.stop()
        // pinned to one CPU (taskset execs the daemon in its own pid), the pool is one thread wide
        let pinned = Process()
        pinned.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        pinned.arguments = ["-c", "0", Binary.path!, "watch", root]
        pinned.standardOutput = FileHandle.nullDevice
        pinned.standardError = FileHandle.nullDevice
        try pinned.run()
        defer { if pinned.isRunning { kill(pinned.processIdentifier, SIGKILL) } }
        #expect(WatchDaemonTests.eventually(10) {
            let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pinned.processIdentifier)/environ"))) ?? Data()
            return environ.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == "OMP_NUM_THREADS=1" }
        })
        kill(pinned.processIdentifier, SIGTERM)
        pinned.waitUntilExit()
        // a training waits passively (paused after its processing, to be looked at); a backbone's training is
        // inference-bound, so it settles on brief spinning once its recipe is known
        try WatchDaemonTests.writeTrainingData(root, seed: 5)
        let backbone = SharedMaterial.path("models/mobilenet_v2_0.35_224_tfjs/model.json")
        if backbone == nil { print("../shared is absent: the backbone training's thread policy is not checked") }
        for (arguments, waits) in [(WatchDaemonTests.training, "OMP_WAIT_POLICY=PASSIVE")] + (backbone.map { [(["--arch", "backbone:" + $0], "GOMP_SPINCOUNT=1000")] } ?? []) {
            let training = Process()
            training.executableURL = URL(fileURLWithPath: Binary.path!)
            training.arguments = ["train", root, "--stage", "original"] + arguments
            training.environment = ProcessInfo.processInfo.environment.merging(["DROPLINE_PAUSE": "train-after-processing=3"]) { $1 }
            training.standardOutput = FileHandle.nullDevice
            training.standardError = FileHandle.nullDevice
            try training.run()
            #expect(WatchDaemonTests.eventually(10) {
                let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(training.processIdentifier)/environ"))) ?? Data()
                let variables = Set(environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
                let other = waits.hasPrefix("OMP_WAIT_POLICY") ? "GOMP_SPINCOUNT=" : "OMP_WAIT_POLICY="
                return variables.contains(waits) && !variables.contains { $0.hasPrefix(other) }
                    && variables.contains("DROPLINE_SET_ENVIRONMENT=\(waits.split(separator: "=")[0]),OMP_NUM_THREADS")
            }, "\(arguments)")
            training.waitUntilExit()
            #expect(training.terminationStatus == 0, "\(arguments)")
        }
    }
}
