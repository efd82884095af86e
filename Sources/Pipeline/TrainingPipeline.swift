import Logging
import DriftStatistics
import DroplineSupport
import Explainability
import Foundation
import Imaging
public import Modeling
import Monitoring
import Rules
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
            // One read of the stage: each image decoded once, prepared at the model's input and at the
            // drift monitor's side; every component takes them from memory.
            let side = configuration.imageSize, monitoringSide = Preprocessing.monitoringSide(side)
            logger.info("reading \(stage)", metadata: meta)
            let reading = progress("reading", StageImages.fileCount(stage: stageFolder), "images")
            let images = try StageImages.load(stage: stageFolder, imageSize: side, alsoAt: monitoringSide, progress: reading)
            reading?.finish()
            var clock = StageClock()
            var processing = ProcessingComponent(imageSize: side)
            processing.seed = configuration.seed
            let (p, train, validation) = try processing.train(images, output: staging + "/processing", writeImages: keepProcessedImages)
            clock.lap(.processing)
            FaultInjection.point("train-after-processing")
            logger.info("training (\(configuration.architecture))", metadata: meta)
            var algorithm = AlgorithmComponent()
            algorithm.report = trainingReport
            let a = try algorithm.train(train: train, validation: validation, configuration: configuration, output: staging + "/algorithm")
            clock.lap(.algorithm)
            // the new model, loaded and verified once, for the comparison, the drift artifacts and the explanations
            let model = try Classifier(model: staging + "/algorithm/model")
            let baseline = championBaseline(validation: validation, monitored: images.validationMonitored, side: side, folder: stageFolder + "/validation")
            logger.info("fitting drift monitoring", metadata: meta)
            func collection(_ dataset: ImageFolderDataset, _ monitored: [RGBImage]) -> ImageCollection {
                var c = ImageCollection(items: dataset.items.map { .init(path: $0.path, relativePath: $0.relativePath, sha256: $0.sha256) }, images: monitored,
                                        rejected: dataset.rejected)
                c.facts = dataset.facts
                return c
            }
            let m = try MonitoringComponent().train(collection(images.train, images.trainMonitored), from: stageFolder + "/train",
                                                    holdout: collection(validation, images.validationMonitored), from: stageFolder + "/validation",
                                                    classifier: model, holdoutLabels: validation.items.map(\.label),
                                                    progress: progress("learning accuracy under shift", ShiftCalibration.setCount, "shifted sets"),
                                                    output: staging + "/monitoring")
            clock.lap(.monitoring)
            logger.info("explaining a validation sample", metadata: meta)
            let explaining = try ExplainabilityComponent.Session(ExplainabilityComponent(), mode: .train, classifier: model, images: stageFolder + "/validation",
                                                                 budget: .sample(8), output: staging + "/explainability")
            let items = validation.items.map { ImageCollection.Item(path: $0.path, relativePath: $0.relativePath, sha256: $0.sha256) }
            explaining.add(items, prepared: validation.images, predictions: try model.predict(validation.images), outlierScores: nil, rejected: validation.rejected)
            let e = try explaining.finish()
            clock.lap(.explainability)
            // From choosing the version number to indexing it, one training at a time (concurrent
            // daemon jobs, or `dropline train` beside the daemon, would otherwise pick the same number).
            let version = try root.withLock("models") {
                let version = try nextVersion()
                var manifest = RunManifest(runId: runID, kind: "train", subject: stage, modelVersion: version, components: [p, a, m, e],
                                           droplineVersion: DroplineVersion.current, startedAt: started, finishedAt: Index.now(), outcome: "succeeded",
                                           baseline: baseline)
                manifest.seconds = clock.seconds
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
    /// The validation images already read serve when the champion takes them as they are (the same
    /// input side, or the monitoring side, with the pipeline's crop); otherwise its folder is read again.
    func championBaseline(validation: ImageFolderDataset, monitored: [RGBImage], side: Int, folder: String) -> RunManifest.Baseline? {
        guard let champion = try? champion() else { return nil }
        do {
            logger.info("evaluating champion version \(champion.version) on the same validation set")
            let classifier = try Classifier(model: root.path + "/" + champion.folder + "/model")
            let theirs = classifier.preprocessing
            let dataset: ImageFolderDataset
            if theirs.resize == Preprocessing.serving(side).resize, classifier.classes == validation.classes,
               let images = theirs.imageSize == side ? validation.images : theirs.imageSize == Preprocessing.monitoringSide(side) ? monitored : nil {
                dataset = ImageFolderDataset(root: validation.root, classes: validation.classes, items: validation.items, images: images, rejected: validation.rejected)
            } else {
                dataset = try ImageFolderDataset(root: folder, preprocessing: theirs, classes: classifier.classes)
            }
            return RunManifest.Baseline(version: champion.version, accuracy: try classifier.evaluate(dataset).accuracy)
        } catch {
            logger.info("champion version \(champion.version) cannot be evaluated on \(root.relative(folder)) (\(error)); the policy will compare validation accuracies")
            return nil
        }
    }
}

/// The recipe of a retraining: the champion's, so that a model is replaced by one built the same way
/// on the new data, unless told otherwise.
extension Pipelines {
    public struct Recipe: Sendable {
        public var configuration: TrainingConfiguration
        /// Where it came from, in words ("the recipe of champion v3", "the defaults: no champion yet").
        public var source: String
    }

    /// The champion's recipe (its model.json: architecture, backbone, input size, epochs, head,
    /// augmentation, optimizer, seed) with `overrides` applied in order (the command line's, then a
    /// rule's); `fallback` when there is no champion. A backbone recipe is used only when the
    /// backbone is still the one the champion was built on (its files' hashes), so that the new model
    /// is verifiably built on the same base.
    public func retrainingRecipe(fallback: TrainingConfiguration, overrides: [TrainingOverrides]) throws -> Recipe {
        var recipe: Recipe
        if let champion = try champion() {
            let description: ModelDescription
            do { description = try ModelArtifact.load(root.path + "/" + champion.folder + "/model").description } catch {
                throw ComponentError("the champion v\(champion.version)'s model cannot be read (\(error)); its recipe is unknown: give the rule's train action an arch, or promote another version")
            }
            recipe = Recipe(configuration: description.configuration, source: "the recipe of champion v\(champion.version)")
            let changesBase = overrides.contains { o in
                o.arch.map { (try? TrainingConfiguration.defaults(forArch: $0))?.backbonePath != description.configuration.backbonePath } ?? false
            }
            if let origin = description.backbone, !changesBase, let why = origin.changed() {
                throw ComponentError("champion v\(champion.version) was built on the backbone \(origin.modelJson), but \(why); restore it, or give the rule's train action (or `--arch`) the backbone to use")
            }
        } else {
            recipe = Recipe(configuration: fallback, source: "the defaults (no champion yet)")
        }
        // the root's dropline.yaml first, then the caller's (the command line's, a rule's)
        let c = configuration
        let rooted = TrainingOverrides(arch: c.arch(root: root.path), imageSize: c.training.imageSize, epochs: c.training.epochs)
        for o in [rooted] + overrides where !o.isEmpty {
            recipe.configuration = try o.applied(to: recipe.configuration)
            recipe.source += ", with \(o.summary)" + (o == rooted ? " (dropline.yaml)" : "")
        }
        return recipe
    }
}
