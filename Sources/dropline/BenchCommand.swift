import ArgumentParser
import Benchmarks
import DroplineSupport
import Foundation
import NeuralNetwork

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Dropline against the tools users would otherwise run, in the same run.",
        subcommands: [Imaging.self, NN.self, Drift.self, Poll.self, PipelineRun.self, Head.self]
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
            the MobileNetV2-0.35 backbone at 224x224 (inference), batch 32, and integrated gradients (50 steps) of \
            both. When PyTorch is importable by python3, the same networks with the same shapes are timed in PyTorch \
            eager (with and without glibc's malloc tunables), the integrated gradients in Captum (three settings, \
            the fastest counts) and, when onnxruntime and onnx are importable, inference in onnxruntime, in the \
            same run.
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

    struct Head: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "head",
            abstract: "The backbone's head against a linear probe on the same features, in the same run.",
            discussion: """
            Trains Dropline's default head (logistic regression on the standardised pooled features, its L2 strength \
            and the flipped copies' use chosen on the validation split) and its earlier one (--head sgd: trained by \
            epochs) on --data's train/ and validation/ with the real trainer, and scores both on its test/; then \
            scikit-learn's LogisticRegression on the same backbone's features, standardised, its C chosen on the \
            validation split over the same grid (scripts/linear_probe_peer.py, run by --python: numpy and \
            scikit-learn). Prints each head's validation and test accuracy and the default head's margin over the \
            probe in points. Default --data: imagenette-mini in ../shared; scripts/make-photo-sets builds others \
            from Debian packages.
            """
        )
        @Option(help: "A folder with train/, validation/ and test/ class folders (default: ../shared/datasets/imagenette-mini).") var data: String?
        @Option(help: "The backbone's model.json (default: ../shared/models/mobilenet_v2_0.35_224_tfjs/model.json).") var backbone: String?
        @Option(help: "The Python with numpy and scikit-learn.") var python = "python3"
        @Option(help: "The peer script (default: scripts/linear_probe_peer.py of this checkout).") var peerScript: String?
        @Option(help: "Scratch folder for the models and features (removed after).") var scratch = FileManager.default.temporaryDirectory.path + "/dropline-bench-head"
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            guard let data = data ?? SharedMaterial.path("datasets/imagenette-mini") else {
                throw ValidationError(SharedMaterial.absenceMessage("datasets/imagenette-mini") + "; or give --data")
            }
            guard let backbone = backbone ?? SharedMaterial.path("models/mobilenet_v2_0.35_224_tfjs/model.json") else {
                throw ValidationError(SharedMaterial.absenceMessage("models/mobilenet_v2_0.35_224_tfjs") + "; or give --backbone")
            }
            for split in ["train", "validation", "test"] where !FileManager.default.fileExists(atPath: data + "/" + split) {
                throw ValidationError("\(data) has no \(split)/ folder; --data needs train/, validation/ and test/ class folders")
            }
            guard let script = peerScript ?? PipelineRun.findPeerScript(named: "linear_probe_peer.py") else {
                throw ValidationError("scripts/linear_probe_peer.py was not found beside this executable's checkout; give --peer-script")
            }
            var configuration = HeadBenchmark.Configuration(data: data, backbone: backbone, peerScript: script, scratch: scratch)
            configuration.python = python
            configuration.log = { Console.note("bench: " + $0) }
            let report = try HeadBenchmark(configuration: configuration).run()
            if json { return try JSONOutput.print(report) }
            print("\(report.data): \(report.classes.count) classes, \(report.trainImages) train, \(report.validationImages) validation, \(report.testImages) test images")
            var table = TextTable("HEAD", "VALIDATION", "TEST", "SECONDS", "CHOICE")
            for row in report.rows {
                table.add([row.head, String(format: "%.2f%%", 100 * row.validationAccuracy), String(format: "%.2f%%", 100 * row.testAccuracy),
                           String(format: "%.1f", row.seconds), row.detail])
            }
            print(table.render())
            if let margin = report.marginPoints { print(String(format: "default head minus the probe on test: %+.2f points", margin)) }
            for note in report.notes { print("note: \(note)") }
        }
    }

    struct PipelineRun: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pipeline",
            abstract: "The batch-inference pipeline as a whole against the same work in the standard Python stack, in the same run.",
            discussion: """
            Makes --images photos of --width x --height (JPEG, quality 90) from imagenette-mini's test split in \
            ../shared (never seen by the model), then alternates, --rounds times, `dropline infer` (this executable, \
            a new process each time) and scripts/pipeline_peer.py (Pillow, torch, scipy, Captum: the same model, \
            the same photos, 8 explanations of 50 steps) run by --python. Prints the median whole-process times, \
            their ratio, the per-stage times of both (Dropline's from the run's manifest) and their peak RSS. With \
            --busy-loops N, the rounds are repeated beside N processes spinning on the CPU, and the slowdowns shown. \
            Without --root, a scratch root is made under --scratch and a MobileNetV2 model trained there once \
            (about a minute); later runs with the same --scratch reuse it.
            """
        )
        @Option(help: "A root with a champion model (default: a scratch root with a MobileNetV2 model).") var root: String?
        @Option(help: "Photos in the batch (at most 6 x the test photos).") var images = 400
        @Option(help: "Photo width.") var width = 512
        @Option(help: "Photo height.") var height = 384
        @Option(help: "Alternated rounds of each.") var rounds = 3
        @Option(help: "Busy loops to run beside a second series of rounds (0: none).") var busyLoops = 0
        @Option(help: "The Python with Pillow, torch, scipy and captum.") var python = "python3"
        @Option(help: "Pass --explain-steps N to dropline infer (the peer runs Captum's default 50; without it Dropline explains with its default: 63 points, refined where an image needs it, within 120 per image).") var explainSteps: Int?
        @Option(help: "The peer script (default: scripts/pipeline_peer.py of this checkout).") var peerScript: String?
        @Option(help: "Scratch folder (kept, so that the trained root and the photos are reused).") var scratch = FileManager.default.temporaryDirectory.path + "/dropline-bench-pipeline"
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            guard let dataset = SharedMaterial.path("datasets/imagenette-mini"), let backbone = SharedMaterial.path("models/mobilenet_v2_0.35_224_tfjs/model.json") else {
                throw ValidationError(SharedMaterial.absenceMessage("datasets/imagenette-mini and models/mobilenet_v2_0.35_224_tfjs"))
            }
            guard let script = peerScript ?? Self.findPeerScript() else {
                throw ValidationError("scripts/pipeline_peer.py was not found beside this executable's checkout; give --peer-script")
            }
            var configuration = PipelineBenchmark.Configuration(executable: "/proc/self/exe".resolvedExecutable, backbone: backbone, dataset: dataset,
                                                                peerScript: script, scratch: scratch)
            configuration.root = root
            configuration.images = images
            configuration.width = width
            configuration.height = height
            configuration.rounds = rounds
            configuration.busyLoops = busyLoops
            configuration.python = python
            configuration.explainSteps = explainSteps
            configuration.log = { Console.note("bench: " + $0) }
            let report = try PipelineBenchmark(configuration: configuration).run()
            if json { return try JSONOutput.print(report) }
            print("\(report.images) photos of \(report.photoSize), root \(report.root); Dropline's explanations: \(report.droplineExplanationSteps == "default" ? "63 points per image, refined within 120" : report.droplineExplanationSteps + " points"), the Python stack's: Captum's 50")
            var table = TextTable("SERIES", "DROPLINE S", "PYTHON S", "RATIO", "DROPLINE RSS MB", "PYTHON RSS MB")
            func f(_ v: Double) -> String { String(format: "%.2f", v) }
            for series in [report.quiet] + (report.loaded.map { [$0] } ?? []) {
                table.add([series.busyLoops == 0 ? "quiet" : "beside \(series.busyLoops) busy loops", f(series.droplineMedianSeconds), f(series.peerMedianSeconds),
                           String(format: "%.2fx", series.ratio), String(format: "%.0f", series.droplinePeakRssMegabytes), String(format: "%.0f", series.peerPeakRssMegabytes)])
            }
            print(table.render())
            var stages = TextTable("STAGE", "DROPLINE S", "PYTHON S")
            for stage in ["imports", "load", "processing", "algorithm", "monitoring", "explainability"] {
                stages.add([stage, report.quiet.droplineStageSeconds[stage].map(f) ?? "-", report.quiet.peerStageSeconds[stage].map(f) ?? "-"])
            }
            print(stages.render())
            if let loaded = report.loaded {
                print(String(format: "slowdown beside %d busy loops: Dropline %.2fx, Python %.2fx", loaded.busyLoops,
                             loaded.droplineMedianSeconds / max(report.quiet.droplineMedianSeconds, 1e-9),
                             loaded.peerMedianSeconds / max(report.quiet.peerMedianSeconds, 1e-9)))
            }
            for note in report.notes { print("note: \(note)") }
        }

        /// scripts/pipeline_peer.py in the checkout this executable was built in (or the current folder's).
        static func findPeerScript(named name: String = "pipeline_peer.py") -> String? {
            var starts = [FileManager.default.currentDirectoryPath]
            starts.append(URL(fileURLWithPath: "/proc/self/exe".resolvedExecutable).deletingLastPathComponent().path)
            for start in starts {
                var directory = URL(fileURLWithPath: start).standardizedFileURL
                for _ in 0..<6 {
                    let candidate = directory.path + "/scripts/" + name
                    if FileManager.default.fileExists(atPath: candidate) { return candidate }
                    directory = directory.deletingLastPathComponent()
                }
            }
            return nil
        }
    }
}

extension String {
    /// The path a link such as /proc/self/exe points at.
    var resolvedExecutable: String { (try? FileManager.default.destinationOfSymbolicLink(atPath: self)) ?? CommandLine.arguments[0] }
}
