public import Datasets
import Daemon
public import DroplineSupport
import Foundation
import Logging
import Monitoring
public import Imaging
public import Modeling
import Pipeline
import Store
import Synchronization
import SystemFiles
import JSONFiles

/// How `dropline simulate` runs the study.
public struct SimulationOptions: Sendable {
    /// How many times the seven test sets are fed, in the study's order.
    public var cycles = 1
    /// Seeds the stage transforms (the training configuration has its own seed).
    public var seed: UInt64 = 1
    public var training: TrainingConfiguration
    /// How long one step (a batch, and the retraining it starts) may take before the run gives up.
    public var stepTimeout = 3 * 3600.0
    /// The daemon's `concurrentJobs`.
    public var concurrentJobs = 1

    public init(training: TrainingConfiguration) { self.training = training }
}

/// One step of the study: a test set dropped as a production batch, and what followed.
public struct StudyStep: Codable, Sendable {
    public var step: Int
    public var cycle: Int
    /// The stage whose test set was dropped.
    public var testSet: String
    public var batch: String
    /// The champion that served the batch, and the stage it (and its drift artifacts) was trained on.
    public var servingModel: Int
    public var driftArtifactsStage: String
    public var drift: Bool
    /// The smallest corrected KS p-value over all features and detectors, and the largest KS statistic.
    public var minimumAdjustedPValue: Double?
    public var maximumStatistic: Double?
    public var driftReason: String
    public var retrained: Bool
    /// The model trained on the drift flag, its stage, and whether it became champion.
    public var newModel: Int?
    public var newModelStage: String?
    public var promoted: Bool
    public var promotion: String?
    /// The serving model's accuracy on the batch, from the ground truth.
    public var accuracy: Double
    /// The same, estimated without the ground truth (the mean calibrated confidence mapped by the
    /// model's shift calibration), and the mean calibrated confidence alone.
    public var estimatedAccuracy: Double? = nil
    public var meanConfidence: Double? = nil
    public var images: Int
    public var seconds: Double
}

/// One model's accuracy and loss on every stage's test set.
public struct ModelEvaluation: Codable, Sendable {
    public struct Score: Codable, Sendable {
        public var accuracy: Double
        public var loss: Double
    }
    public var version: Int
    public var trainedOn: String
    public var scores: [String: Score]
}

/// Everything the study produced.
public struct StudyResult: Codable, Sendable {
    public var data: String
    public var root: String
    public var cycles: Int
    public var seed: UInt64
    public var architecture: String
    public var imageSize: Int
    public var stages: [String]
    public var steps: [StudyStep]
    public var models: [ModelEvaluation]
    public var skippedImages: [StageGenerator.Skipped]
    public var report: String
    public var seconds: Double
}

/// The drift study of the cloud design, on one machine: seven versions of a labelled dataset with
/// growing drift; a model trained on Original; the real watch daemon with the given rules; the
/// test sets dropped as production batches in the study's cyclic order, each waited for (with any
/// retraining its drift flag starts); then every model evaluated on every stage's test set.
public struct Simulation {
    public let data: String
    public let rootPath: String
    public let options: SimulationOptions
    /// The rules file the root gets (the CLI passes the shipped default).
    public let rules: String
    /// Progress lines for a person (standard error in the CLI).
    public var say: @Sendable (String) -> Void = { _ in }
    /// Progress displays for the long steps (the CLI gives a terminal one).
    public var progress: ProgressFactory = { _, _, _ in nil }
    /// Progress of the first training (on Original).
    public var trainingReport: @Sendable (TrainingEvent) -> Void = { _ in }

    public init(data: String, root: String, options: SimulationOptions, rules: String) {
        self.data = data
        rootPath = root
        self.options = options
        self.rules = rules
    }

    public static let stageOrder = DriftStage.allCases

    public func run() throws -> StudyResult {
        let started = Date()
        let dataset = try LabelledDataset(root: data)
        if FileManager.default.fileExists(atPath: rootPath), !((try? FileManager.default.contentsOfDirectory(atPath: rootPath)) ?? []).isEmpty {
            throw SimulationError("'\(rootPath)' already exists and is not empty; the simulation creates its own root: give a new --root, or remove this one")
        }
        let root = try DroplineRoot.create(at: rootPath)
        _ = try Index.open(root: root)
        try AtomicFile.write(Array(rules.utf8), to: root.path + "/rules.yaml")
        let simulation = root.path + "/simulation"

        // 1. The seven stages: train and validation into the training inbox, test aside.
        let total = Self.stageOrder.count * dataset.imageCount
        say("generating the seven stages of \(data) (\(dataset.classes.count) classes, \(total) images to write)")
        let testFolder = simulation + "/test"
        let trainingInbox = root.trainingInbox
        let skipped = try StageGenerator(seed: options.seed).generate(dataset, destination: { stage, split in
            split == "test" ? testFolder + "/" + stage.rawValue : trainingInbox + "/" + stage.rawValue + "/" + split
        }, progress: progress("stages", total, "images"))
        for s in skipped { say("skipped \(s.path): \(s.reason)") }

        // 2. The first model, on Original.
        let pipelines = try Pipelines(root: root)
        let sayLine = say
        pipelines.logger = Logger(label: "dropline.simulate") { _ in MessageLogHandler { sayLine("  " + $0) } }
        say("training on original (\(options.training.architecture), \(options.training.imageSize) px, up to \(options.training.epochs) epochs)")
        pipelines.trainingReport = trainingReport
        let (_, first) = try pipelines.train(stage: DriftStage.original.rawValue, configuration: options.training)
        say("model version \(first) is the champion")

        // 3. The real daemon, in this process, on its own thread.
        var watch = WatchOptions(training: options.training)
        watch.settleSeconds = 24 * 3600  // batches complete by their marker only
        watch.concurrentJobs = options.concurrentJobs
        let log = Logger.daemon(DaemonLogHandler.Sink(file: root.logs + "/watch.log", echo: false))
        let daemon = try WatchDaemon(root: root, options: watch, log: log)
        let stop = StopRequest()
        let outcome = DaemonOutcome()
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            do { try daemon.run(stop: stop) } catch { outcome.set("\(error)") }
            outcome.set("stopped")
            finished.signal()
        }
        thread.name = "dropline-watch"
        thread.start()
        var joined = false
        defer {
            if !joined {  // an error on the way: stop the daemon before returning
                stop.request()
                finished.wait()
            }
        }
        say("the watch daemon is running (log: \(root.relative(root.logs))/watch.log)")

        // 4. The test sets as production batches, in the study's cyclic order.
        var steps: [StudyStep] = []
        let index = pipelines.index
        let order = (1...max(1, options.cycles)).flatMap { cycle in Self.stageOrder.map { (cycle, $0) } }
        for (number, (cycle, stage)) in order.enumerated() {
            let stepStart = Date()
            let batch = "\(stage.rawValue)-c\(cycle)"
            let folder = root.productionInbox + "/" + stage.rawValue + "/" + batch
            let truth = try Self.dropBatch(from: testFolder + "/" + stage.rawValue, to: folder, ground: simulation + "/ground-truth/" + batch + ".csv")
            let before = try index.highestModelVersion()
            say("step \(number + 1)/\(order.count): dropped \(root.relative(folder)) (\(truth.count) images)")
            try waitUntilHandled(batch: "production/\(stage.rawValue)/\(batch)", root: root, index: index, daemon: outcome, since: stepStart)
            // the ground truth into the index, as `dropline labels` merges it: accuracy on the dashboard
            var groundTruth = GroundTruth(root: root, index: index)
            groundTruth.raisesFlags = false
            _ = try groundTruth.merge(labels: simulation + "/ground-truth/" + batch + ".csv")
            steps.append(try Self.step(number: number + 1, cycle: cycle, stage: stage, batch: batch, truth: truth, index: index,
                                       modelsBefore: before, seconds: Date().timeIntervalSince(stepStart), root: root))
            say("  " + Self.describe(steps.last!))
        }
        stop.request()
        finished.wait()
        joined = true
        if let message = outcome.message, message != "stopped" { throw SimulationError("the watch daemon stopped with an error: \(message)") }

        // 5. Every model on every stage's test set.
        let models = try evaluateModels(root: root, index: index, testFolder: testFolder)
        var result = StudyResult(data: data, root: root.path, cycles: max(1, options.cycles), seed: options.seed,
                                 architecture: options.training.architecture, imageSize: options.training.imageSize,
                                 stages: Self.stageOrder.map(\.rawValue), steps: steps, models: models, skippedImages: skipped,
                                 report: simulation + "/report.md", seconds: Date().timeIntervalSince(started))
        try AtomicFile.write(Array(StudyTables.markdown(result).utf8), to: result.report)
        try SnakeCaseJSON.write(result, to: simulation + "/results.json")
        result.seconds = Date().timeIntervalSince(started)
        return result
    }

    /// Copies a stage's test set into a production batch, flat, with the marker written last, and
    /// the ground truth beside the simulation (not in the batch). Returns file name -> class.
    static func dropBatch(from test: String, to folder: String, ground: String) throws -> [String: String] {
        let fm = FileManager.default
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: (ground as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var truth: [String: String] = [:]
        var csv = "image,class\n"
        var n = 0
        for (label, entry) in LabelledFiles(folder: test).files {
            n += 1
            let name = String(format: "%05d-", n) + (entry.relative as NSString).lastPathComponent
            try fm.copyItem(atPath: entry.path, toPath: folder + "/" + name)
            truth[name] = label
            csv += "\(name),\(label)\n"
        }
        try AtomicFile.write(Array(csv.utf8), to: ground)
        try AtomicFile.write([], to: folder + "/_READY")
        return truth
    }

    /// Waits until the batch's job has ended and nothing it started is left: no queued or running
    /// job, no unhandled flag.
    func waitUntilHandled(batch path: String, root: DroplineRoot, index: any DroplineIndex, daemon: DaemonOutcome, since: Date) throws {
        let deadline = since.addingTimeInterval(options.stepTimeout)
        while true {
            if let message = daemon.message { throw SimulationError("the watch daemon stopped: \(message); see \(root.logs)/watch.log") }
            let (ended, busy) = try index.jobProgress(path: path)
            if ended > 0 && busy == 0 && WatchDaemon.pendingFlags(in: root).isEmpty { break }
            guard Date() < deadline else {
                throw SimulationError("\(path) was not handled within \(Int(options.stepTimeout)) s; see `dropline status \(root.path)` and \(root.logs)/watch.log")
            }
            usleep(200_000)
        }
        if let job = try index.latestJob(path: path), job.state != .succeeded {
            throw SimulationError("the job for \(path) \(job.state.rawValue): \(job.detail ?? ""); see \(root.logs)/watch.log")
        }
    }

    /// What the index says about one step.
    static func step(number: Int, cycle: Int, stage: DriftStage, batch: String, truth: [String: String], index: any DroplineIndex,
                     modelsBefore: Int, seconds: Double, root: DroplineRoot) throws -> StudyStep {
        guard let served = try index.latestServedRun(subject: batch), let servingModel = try index.model(version: served.modelVersion),
              let summary = try index.driftSummary(run: served.run) else {
            throw SimulationError("no successful serve run for batch \(batch)")
        }
        var correct = 0, counted = 0
        for prediction in summary.predictions {
            guard let label = truth[(prediction.path as NSString).lastPathComponent] else { continue }
            counted += 1
            if prediction.predicted == label { correct += 1 }
        }
        let new = try index.models().filter { $0.version > modelsBefore }.last
        let promotion = try new.flatMap { try index.promotionReason(version: $0.version) }
        let flag = FlagFiles.name(batch: batch, batchPath: "production/\(stage.rawValue)/\(batch)")
        let kept = try new.flatMap { _ in try index.lastFiredOutcome(path: "flags/drift/\(flag).json") }
        var step = StudyStep(step: number, cycle: cycle, testSet: stage.rawValue, batch: batch, servingModel: served.modelVersion,
                         driftArtifactsStage: servingModel.stage, drift: summary.drift,
                         minimumAdjustedPValue: summary.minimumAdjustedPValue, maximumStatistic: summary.maximumStatistic, driftReason: summary.reason,
                         retrained: new != nil, newModel: new?.version, newModelStage: new?.stage,
                         promoted: new?.state == .champion, promotion: promotion ?? kept,
                         accuracy: counted == 0 ? 0 : Double(correct) / Double(counted), estimatedAccuracy: summary.estimatedAccuracy,
                         images: counted, seconds: seconds)
        // calibrated confidence alone (the estimate before the shift calibration), from the run's drift report
        step.meanConfidence = (try? SnakeCaseJSON.read(DriftReport.self, from: root.path + "/" + served.folder + "/monitoring/drift.json"))?.estimate?.confidence
        return step
    }

    /// Every model version on every stage's test set.
    func evaluateModels(root: DroplineRoot, index: any DroplineIndex, testFolder: String) throws -> [ModelEvaluation] {
        let rows = try index.models().map { ($0.version, $0.stage, $0.folder) }
        say("evaluating \(rows.count) model(s) on the \(Self.stageOrder.count) test sets")
        var cache: [String: ImageFolderDataset] = [:]
        var result: [ModelEvaluation] = []
        let progress = self.progress("evaluating", rows.count * Self.stageOrder.count, "test sets")
        for (version, stage, folder) in rows {
            let classifier = try Classifier(model: root.path + "/" + folder + "/model")
            var scores: [String: ModelEvaluation.Score] = [:]
            for test in Self.stageOrder {
                let key = "\(classifier.preprocessing)|\(classifier.classes)|\(test.rawValue)"
                if cache[key] == nil {
                    cache[key] = try ImageFolderDataset(root: testFolder + "/" + test.rawValue, preprocessing: classifier.preprocessing, classes: classifier.classes)
                }
                let metrics = try classifier.evaluate(cache[key]!)
                scores[test.rawValue] = .init(accuracy: metrics.accuracy, loss: metrics.loss)
                progress?.advance()
            }
            result.append(ModelEvaluation(version: version, trainedOn: stage, scores: scores))
        }
        progress?.finish()
        return result
    }

    static func describe(_ s: StudyStep) -> String {
        var text = String(format: "served by v%d (%@); KS: %@", s.servingModel, s.driftArtifactsStage, s.drift ? "drift" : "no drift")
        if let p = s.minimumAdjustedPValue { text += String(format: " (min corrected p %.2g, max D %.3f)", p, s.maximumStatistic ?? 0) }
        if let v = s.newModel { text += "; retrained v\(v) on \(s.newModelStage ?? "?")" + (s.promoted ? ", now champion" : ", kept as candidate") }
        return text + String(format: "; accuracy %.1f%% of %d; %.0f s", 100 * s.accuracy, s.images, s.seconds)
    }
}

/// How the daemon's thread ended (nil while it runs); the first value set stays.
final class DaemonOutcome: Sendable {
    let value = Mutex<String?>(nil)
    func set(_ message: String) { value.withLock { $0 = $0 ?? message } }
    var message: String? { value.withLock { $0 } }
}

public struct SimulationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
