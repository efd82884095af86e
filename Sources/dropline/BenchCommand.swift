import ArgumentParser
import Benchmarks
import DroplineSupport
import Foundation
import NeuralNetwork

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Dropline against the tools users would otherwise run, in the same run.",
        subcommands: [Imaging.self, NN.self, Drift.self, Poll.self]
    )

    struct Imaging: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode + resize throughput (to 224x224 and 96x96), 1 thread and all cores, against Pillow.",
            discussion: """
            Image sets: ../shared/datasets/imagenette-mini when present (224x224 photos), 500x375 JPEGs and \
            12-megapixel JPEGs generated in a temporary folder. Each case is the best of several passes. When \
            Pillow is importable by python3 it is timed on the same files in the same run, and the ratio printed.
            """
        )

        @Flag(help: "Print the report as JSON.")
        var json = false

        @Option(help: "A folder of JPEGs to include (default: ../shared/datasets/imagenette-mini when present).")
        var data: String?

        @Option(help: "How many 500x375 JPEGs to generate.")
        var mediumCount = 300

        @Option(help: "How many 12-megapixel JPEGs to generate.")
        var largeCount = 4

        @Option(help: "Passes per case; the best is kept.")
        var rounds = 3

        @Option(help: "The Python that runs the Pillow peer.")
        var python = "python3"

        func run() throws {
            var configuration = ImagingBenchmark.Configuration()
            configuration.datasetPath = data ?? SharedMaterial.path("datasets/imagenette-mini")
            configuration.mediumCount = mediumCount
            configuration.largeCount = largeCount
            configuration.rounds = rounds
            configuration.pythonExecutable = python
            configuration.log = { Console.note("bench: " + $0) }
            let report = try ImagingBenchmark(configuration: configuration).run()
            if json {
                try JSONOutput.print(report)
                return
            }
            var table = TextTable("SET", "SOURCE", "TARGET", "THREADS", "IMG/S", "MP/S")
            for m in report.dropline + report.pillow {
                let who = report.pillow.contains(where: { $0.set == m.set && $0.target == m.target && $0.imagesPerSecond == m.imagesPerSecond }) ? "pillow " : ""
                table.add([who + m.set, m.source, "\(m.target)", "\(m.threads)", String(format: "%.1f", m.imagesPerSecond),
                           String(format: "%.1f", m.megapixelsPerSecond)])
            }
            print(table.render())
            print("")
            var ratios = TextTable("SET", "TARGET", "VS PILLOW (1 THREAD)", "\(report.cores)-CORE SCALING")
            for c in report.comparisons {
                ratios.add([c.set, "\(c.target)", c.ratioToPillow.map { String(format: "%.2fx", $0) } ?? "n/a",
                            String(format: "%.2fx", c.coreScaling)])
            }
            print(ratios.render())
            for note in report.notes { print("note: \(note)") }
        }
    }

    struct NN: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "nn",
            abstract: "Network inference and training throughput against PyTorch and onnxruntime.",
            discussion: """
            Times the reference small CNN of ../shared/PEERS.md at 96x96 (inference and SGD training steps) and \
            the MobileNetV2-0.35 backbone at 224x224 (inference), batch 32. When PyTorch is importable by python3, \
            the same networks with the same shapes are timed in PyTorch eager (with and without glibc's malloc \
            tunables) and, when onnxruntime and onnx are importable, in onnxruntime, in the same run.
            """
        )

        @Flag(help: "Print the report as JSON.")
        var json = false

        @Option(help: "Batch size.")
        var batch = 32

        @Option(help: "Seconds per timed window (best of three).")
        var seconds = 2.0

        @Option(help: "The Python that runs the PyTorch peer.")
        var python = "python3"

        func run() throws {
            var configuration = NNBenchmark.Configuration()
            configuration.batch = batch
            configuration.seconds = seconds
            configuration.pythonExecutable = python
            configuration.log = { Console.note("bench: " + $0) }
            if let backbone = SharedMaterial.path("models/mobilenet_v2_0.35_224_tfjs/model.json") {
                configuration.extraNetworks.append(("mobilenet_v2_0.35 224x224", try KerasImport.load(modelJSON: backbone).network))
            } else {
                Console.note("bench: " + SharedMaterial.absenceMessage("models/mobilenet_v2_0.35_224_tfjs"))
            }
            let report = try NNBenchmark(configuration: configuration).run()
            if json {
                try JSONOutput.print(report)
                return
            }
            var table = TextTable("NETWORK", "WORK", "DROPLINE IMG/S", "GFLOP/S", "TORCH", "TORCH TUNED", "ONNXRUNTIME", "VS TORCH", "VS ORT")
            func f(_ v: Double?) -> String { v.map { String(format: "%.1f", $0) } ?? "n/a" }
            func r(_ v: Double?) -> String { v.map { String(format: "%.2fx", $0) } ?? "n/a" }
            for c in report.cases {
                table.add([c.network, c.work, f(c.droplineImagesPerSecond), f(c.droplineGFLOPS), f(c.torchImagesPerSecond),
                           f(c.torchTunedImagesPerSecond), f(c.onnxruntimeImagesPerSecond), r(c.ratioToTorch), r(c.ratioToOnnxruntime)])
            }
            print(table.render())
            for note in report.notes { print("note: \(note)") }
        }
    }

    struct Drift: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Kolmogorov-Smirnov over many features against scipy's per-feature loop and axis=0 call.",
            discussion: "Reference 400 vs batch 40 per feature, for 32, 128 and 512 features; scipy is timed in the same run when importable, and the largest p-value difference is reported."
        )

        @Flag(help: "Print the report as JSON.")
        var json = false

        @Option(help: "Timed rounds per case (the best is kept).")
        var rounds = 5

        @Option(help: "The Python that runs the scipy peer.")
        var python = "python3"

        func run() throws {
            var configuration = DriftBenchmark.Configuration()
            configuration.rounds = rounds
            configuration.pythonExecutable = python
            configuration.log = { Console.note("bench: " + $0) }
            let report = try DriftBenchmark(configuration: configuration).run()
            if json {
                try JSONOutput.print(report)
                return
            }
            var table = TextTable("FEATURES", "PER BATCH MS", "VS SCIPY LOOP", "VS SCIPY AXIS=0", "SCIPY LOOP MS", "SCIPY AXIS=0 MS",
                                  "FIRST BATCH, NO TABLE MS", "VS LOOP", "SORT MS", "TABLE MS", "MAX |DP|")
            func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "n/a" }
            func r(_ v: Double?) -> String { v.map { String(format: "%.0fx", $0) } ?? "n/a" }
            for c in report.cases {
                table.add(["\(c.features)", f(c.droplineWarmMilliseconds), r(c.warmRatioToScipyLoop),
                           r(c.scipyVectorizedMilliseconds.map { $0 / c.droplineWarmMilliseconds }),
                           f(c.scipyLoopMilliseconds), f(c.scipyVectorizedMilliseconds),
                           f(c.droplineMilliseconds), r(c.ratioToScipyLoop), f(c.droplinePrepareMilliseconds), f(c.droplineTableMilliseconds), c.maxPValueDifference.map { String(format: "%.1e", $0) } ?? "n/a"])
            }
            print("reference \(report.referenceSize) vs batch \(report.batchSize) per feature")
            print(table.render())
            for note in report.notes { print("note: \(note)") }
        }
    }

    struct Poll: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What one poll of a large settled inbox costs: the daemon's incremental scan against a full scan, in the same run.",
            discussion: """
            Fills --inbox (when empty) with --batches folders of --files small files, settles them as the daemon does \
            once they are handled, then polls every --interval seconds (slept for real, so network clients' caches \
            expire as they would), timing a full scan and the incremental one each time. Put --inbox on the share to \
            measure it there.
            """
        )
        @Option(help: "The production inbox to poll (default: a temporary folder, removed after).") var inbox: String?
        @Option(help: "Batches to create in an empty inbox.") var batches = 500
        @Option(help: "Files per batch.") var files = 40
        @Option(help: "Timed polls.") var polls = 6
        @Option(help: "Seconds between polls.") var interval = 5.0
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            let temporary = inbox == nil ? FileManager.default.temporaryDirectory.path + "/dropline-bench-poll-\(getpid())" : nil
            defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
            var configuration = PollBenchmark.Configuration(inbox: inbox ?? temporary!)
            configuration.batches = batches
            configuration.files = files
            configuration.polls = polls
            configuration.interval = interval
            configuration.log = { Console.note("bench: " + $0) }
            let report = try PollBenchmark(configuration: configuration).run()
            if json { return try JSONOutput.print(report) }
            print("\(report.batches) batches, \(report.files) files on \(report.fileSystem) (\(report.inbox)), a poll every \(report.intervalSeconds) s")
            var table = TextTable("SCAN", "MEDIAN MS", "MAX MS", "CPU MS")
            func f(_ v: Double) -> String { String(format: "%.1f", v) }
            table.add(["full (every poll before)", f(report.fullScan.medianWallMilliseconds), f(report.fullScan.maximumWallMilliseconds), f(report.fullScan.medianCpuMilliseconds)])
            table.add(["incremental (the daemon)", f(report.incremental.medianWallMilliseconds), f(report.incremental.maximumWallMilliseconds), f(report.incremental.medianCpuMilliseconds)])
            print(table.render())
            print(String(format: "incremental is %.0fx faster; polling every %.0f s takes %.2f%% of one core (settling: first scan %.0f ms, second %.0f ms)",
                         report.speedup, report.intervalSeconds, report.percentOfCore, report.settlingMilliseconds[0], report.settlingMilliseconds[1]))
            for note in report.notes { print("note: \(note)") }
        }
    }
}
