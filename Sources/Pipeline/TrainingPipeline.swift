import Logging
import DriftStatistics
import DroplineSupport
import Explainability
import Foundation
import Imaging
public import Modeling
import Monitoring
import Store
import SystemFiles

/// The training pipeline: the four components in train mode on a stage, published as a model version.
extension Pipelines {

    /// Trains on `inbox/training/<stage>` and publishes a new model version. Returns the run id and version.
    @discardableResult
    public func train(stage: String, configuration: TrainingConfiguration) throws -> (run: String, version: Int) {
        let stageFolder = try checkedStageFolder(stage)
        let runID = Index.newRunID()
        let meta: Logger.Metadata = ["run": "\(runID)", "stage": "\(stage)"]
        let name = "\(runID)-train-\(Self.safe(stage))"
        let staging = root.staging + "/" + name
        let started = Index.now()
        try startRun(id: runID, kind: .train, subject: stage)
        return try guarded(run: runID, staging: staging) {
            logger.info("processing", metadata: meta)
            var processing = ProcessingComponent(imageSize: configuration.imageSize)
            processing.seed = configuration.seed
            let p = try processing.train(stage: stageFolder, output: staging + "/processing")
            FaultInjection.point("train-after-processing")
            logger.info("training (\(configuration.architecture))", metadata: meta)
            var algorithm = AlgorithmComponent()
            algorithm.report = trainingReport
            let a = try algorithm.train(processed: staging + "/processing", configuration: configuration, output: staging + "/algorithm")
            let baseline = championBaseline(validation: stageFolder + "/validation")
            logger.info("fitting drift monitoring", metadata: meta)
            let m = try MonitoringComponent().train(images: stageFolder + "/train", holdout: stageFolder + "/validation",
                                                    model: staging + "/algorithm/model", output: staging + "/monitoring")
            logger.info("explaining a validation sample", metadata: meta)
            let e = try ExplainabilityComponent().run(mode: .train, images: stageFolder + "/validation", model: staging + "/algorithm/model",
                                                      budget: .sample(8), output: staging + "/explainability")
            // From choosing the version number to indexing it, one training at a time (concurrent
            // daemon jobs, or `dropline train` beside the daemon, would otherwise pick the same number).
            let version = try root.withLock("models") {
                let version = try nextVersion()
                let manifest = RunManifest(runId: runID, kind: "train", subject: stage, modelVersion: version, components: [p, a, m, e],
                                           droplineVersion: DroplineVersion.current, startedAt: started, finishedAt: Index.now(), outcome: "succeeded",
                                           baseline: baseline)
                try publishAndIndex(manifest, staging: staging, name: name, faults: ("train-after-run-published", "train-after-index"))
                return version
            }
            return (runID, version)
        }
    }

    /// `inbox/training/<stage>`, after checking that the stage is a safe name (a flag's `stage` is
    /// whatever the flag's writer put there) and that the folder, its train/ and validation/ and
    /// their class folders are real folders inside the training inbox once every link is resolved.
    func checkedStageFolder(_ stage: String) throws -> String {
        do { try SafeName.check(stage, what: "stage") } catch { throw ComponentError("\(error); no training folder is built from it") }
        let stageFolder = root.trainingInbox + "/" + stage
        for folder in [stageFolder, stageFolder + "/train", stageFolder + "/validation"] {
            guard FileSystem.entryType(folder) != nil else {
                throw ComponentError("stage '\(stage)' needs \(root.relative(stageFolder))/train/<class>/ and validation/<class>/")
            }
            guard FileSystem.isRealDirectory(folder), FileSystem.isInside(folder, root.trainingInbox) else {
                throw ComponentError("\(root.relative(folder)) is not a real folder inside inbox/training/ (a link, or a special file); links are never followed there")
            }
        }
        for split in ["train", "validation"] {
            for entry in FileSystem.names(in: stageFolder + "/" + split) where !entry.hasPrefix(".") {
                let path = stageFolder + "/" + split + "/" + entry
                if case .symbolicLink = FileSystem.entryType(path) {
                    throw ComponentError("\(root.relative(path)) is a link; class folders must be real folders inside the stage (links are never followed)")
                }
                if FileSystem.isRealDirectory(path), DropFolderJunk.reason(for: entry + "/x") == nil, let problem = SafeName.problem(entry, what: "class folder") {
                    throw ComponentError("\(root.relative(path)): \(problem); \(SafeName.remedy)")
                }
            }
        }
        return stageFolder
    }

    /// The champion's accuracy on a new model's validation set, or nil when there is no champion or
    /// it cannot be evaluated there (other classes): the policy then compares validation accuracies.
    func championBaseline(validation: String) -> RunManifest.Baseline? {
        guard let champion = try? champion() else { return nil }
        do {
            logger.info("evaluating champion version \(champion.version) on the same validation set")
            let classifier = try Classifier(model: root.path + "/" + champion.folder + "/model")
            let dataset = try ImageFolderDataset(root: validation, preprocessing: classifier.preprocessing, classes: classifier.classes)
            return RunManifest.Baseline(version: champion.version, accuracy: try classifier.evaluate(dataset).accuracy)
        } catch {
            logger.info("champion version \(champion.version) cannot be evaluated on \(root.relative(validation)) (\(error)); the policy will compare validation accuracies")
            return nil
        }
    }
}
