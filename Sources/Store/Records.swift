/// The values the index stores, one type per table (or per row shape a query returns), with enums
/// for states, kinds and events. Their raw values are the text the schema's CHECK constraints allow.

public enum RunKind: String, Codable, Sendable, CaseIterable {
    case train, serve
}

public enum RunStatus: String, Codable, Sendable, CaseIterable {
    case running, succeeded, failed
}

public enum ModelState: String, Codable, Sendable, CaseIterable {
    case candidate, champion, archived
}

public enum JobState: String, Codable, Sendable, CaseIterable {
    case queued, running, succeeded, failed, skipped
}

/// The events the daemon queues (the same names as the rules' events).
public enum JobEvent: String, Codable, Sendable, CaseIterable {
    case batchLanded = "batch_landed"
    case flagCreated = "flag_created"
    case modelTrained = "model_trained"
    case labelsLanded = "labels_landed"
    case schedule
}

public enum FlagKind: String, Codable, Sendable, CaseIterable {
    case drift, retrain, quality
    case dataQuality = "data_quality"
}

/// A run's input as a component saw it: a folder and the SHA-256 over its files' paths and hashes.
public struct RunInput: Sendable, Equatable {
    /// `<component>/<role>`, e.g. `processing/batch`.
    public var role: String
    /// Relative to the root.
    public var path: String
    public var sha256: String

    public init(role: String, path: String, sha256: String) {
        self.role = role
        self.path = path
        self.sha256 = sha256
    }
}

/// A model version as the registry records it.
public struct ModelRecord: Codable, Sendable, Equatable {
    public var version: Int
    public var folder: String
    public var contentSha256: String
    public var stage: String
    public var parentVersion: Int?
    public var trainRunId: String?
    public var validationAccuracy: Double
    public var state: ModelState
    public var createdAt: String
    /// The champion of the time, evaluated on this model's validation set (what the policy compares).
    public var baselineVersion: Int?
    public var baselineAccuracy: Double?
}

/// A change of a model version's state, with its reason: the registry's audit history.
public struct PromotionRecord: Codable, Sendable, Equatable {
    public var version: Int
    public var fromState: ModelState?
    public var toState: ModelState
    public var at: String
    public var reason: String
    public var actor: String
}

/// A model version to register from a published training run.
public struct NewModel: Sendable {
    public var version: Int
    /// Relative to the root: `outputs/models/vNNNN`.
    public var folder: String
    public var contentSha256: String
    public var stage: String
    public var trainRun: String
    public var validationAccuracy: Double
    public var baseline: (version: Int, accuracy: Double)?

    public init(version: Int, folder: String, contentSha256: String, stage: String, trainRun: String, validationAccuracy: Double,
                baseline: (version: Int, accuracy: Double)?) {
        self.version = version
        self.folder = folder
        self.contentSha256 = contentSha256
        self.stage = stage
        self.trainRun = trainRun
        self.validationAccuracy = validationAccuracy
        self.baseline = baseline
    }
}

/// What the promotion policy gets to decide on, read in the transaction that records its decision.
public struct PromotionQuestion: Sendable {
    public var candidate: ModelRecord
    /// The champion of the moment, if any.
    public var champion: ModelRecord?
}

/// What the promotion policy answered.
public struct PromotionAnswer: Sendable, Equatable {
    public var promote: Bool
    public var reason: String
    public init(promote: Bool, reason: String) {
        self.promote = promote
        self.reason = reason
    }
}

/// Everything a published serve run adds to the index, written in one transaction with the run's end.
public struct ServeRows: Sendable {
    public struct Image: Sendable {
        public var path: String
        public var sha256: String
        public var bytes: Int
        /// `ok` or a refusal kind (`ImagingError.Kind`'s raw values).
        public var outcome: String
        public var reason: String?
        public init(path: String, sha256: String, bytes: Int, outcome: String, reason: String?) {
            self.path = path
            self.sha256 = sha256
            self.bytes = bytes
            self.outcome = outcome
            self.reason = reason
        }
    }

    public struct Prediction: Sendable {
        public var path: String
        public var imageSha256: String
        public var predicted: String
        public var confidence: Double
        /// JSON: the top classes with their probabilities.
        public var top3: String
        public init(path: String, imageSha256: String, predicted: String, confidence: Double, top3: String) {
            self.path = path
            self.imageSha256 = imageSha256
            self.predicted = predicted
            self.confidence = confidence
            self.top3 = top3
        }
    }

    public struct DriftResult: Sendable {
        public var detector: String
        public var feature: Int
        public var statistic: Double
        public var pValue: Double
        public var adjustedPValue: Double
        public var psi: Double
        public var psiTier: String
        public init(detector: String, feature: Int, statistic: Double, pValue: Double, adjustedPValue: Double, psi: Double, psiTier: String) {
            self.detector = detector
            self.feature = feature
            self.statistic = statistic
            self.pValue = pValue
            self.adjustedPValue = adjustedPValue
            self.psi = psi
            self.psiTier = psiTier
        }
    }

    public struct Explanation: Sendable {
        public var path: String
        public var imageSha256: String?
        public var heatmap: String
        public var predicted: String
        public var steps: Int
        public var delta: Double
        public var relativeDelta: Double
        public init(path: String, imageSha256: String?, heatmap: String, predicted: String, steps: Int, delta: Double, relativeDelta: Double) {
            self.path = path
            self.imageSha256 = imageSha256
            self.heatmap = heatmap
            self.predicted = predicted
            self.steps = steps
            self.delta = delta
            self.relativeDelta = relativeDelta
        }
    }

    public var batchName: String
    public var batchFolder: String
    public var batchSha256: String
    public var batchImages: Int
    public var landedAt: String
    public var images: [Image]
    public var predictions: [Prediction]
    public var drift: Bool
    public var driftReason: String
    public var artifactsSha256: String
    public var batchSize: Int
    public var referenceSize: Int
    public var driftResults: [DriftResult]
    public var explanations: [Explanation]
    /// The accuracy estimated from calibrated confidences, and its drop from the held-out accuracy.
    public var estimatedAccuracy: Double? = nil
    public var estimatedAccuracyDrop: Double? = nil
    /// The data-quality check: nil when the run's monitoring wrote none (a run served before data
    /// quality was checked).
    public var quality: QualityCheck? = nil

    public struct QualityCheck: Sendable, Equatable {
        /// nil: the model version had no baseline, nothing was checked.
        public var baselineSha256: String?
        public var images: Int
        public var refused: Int
        public var violations: [QualityViolationRow]
        public init(baselineSha256: String?, images: Int, refused: Int, violations: [QualityViolationRow]) {
            self.baselineSha256 = baselineSha256
            self.images = images
            self.refused = refused
            self.violations = violations
        }
    }

    public init(batchName: String, batchFolder: String, batchSha256: String, batchImages: Int, landedAt: String, images: [Image],
                predictions: [Prediction], drift: Bool, driftReason: String, artifactsSha256: String, batchSize: Int, referenceSize: Int,
                driftResults: [DriftResult], explanations: [Explanation]) {
        self.batchName = batchName
        self.batchFolder = batchFolder
        self.batchSha256 = batchSha256
        self.batchImages = batchImages
        self.landedAt = landedAt
        self.images = images
        self.predictions = predictions
        self.drift = drift
        self.driftReason = driftReason
        self.artifactsSha256 = artifactsSha256
        self.batchSize = batchSize
        self.referenceSize = referenceSize
        self.driftResults = driftResults
        self.explanations = explanations
    }
}

/// One data-quality violation of a serve run, as the index stores it.
public struct QualityViolationRow: Sendable, Equatable {
    public var property: String
    /// `range`, `share`, `duplicate_rate` or `refusal_rate`.
    public var check: String
    public var observed: Double
    public var allowed: Double
    public var detail: String
    public var concerned: Int
    /// Root-relative paths of the images concerned (the first 100).
    public var images: [String]
    public init(property: String, check: String, observed: Double, allowed: Double, detail: String, concerned: Int, images: [String]) {
        self.property = property
        self.check = check
        self.observed = observed
        self.allowed = allowed
        self.detail = detail
        self.concerned = concerned
        self.images = images
    }
}

/// A succeeded serve run with what it found: for flags raised after a crash, labels and reports.
public struct ServedRun: Sendable, Equatable {
    public var run: String
    public var subject: String
    public var folder: String
    public var modelVersion: Int
    public var startedAt: String
    public var batchId: Int64?
    /// The batch folder relative to the root (the processing component's input).
    public var batchPath: String?
    public var batchFolder: String?
    public var drift: Bool?
    public var driftReason: String?
}

/// One image's prediction in a serve run.
public struct PredictionRecord: Sendable, Equatable {
    public var path: String
    public var imageSha256: String
    public var predicted: String
    public var confidence: Double = 0
}

/// Ground truth merged for a served batch, written in one transaction.
public struct QualityRows: Sendable {
    public var run: String
    public var batchId: Int64
    /// (image SHA-256, true class)
    public var labels: [(sha256: String, trueClass: String)]
    public var accuracy: Double
    public var constraintAccuracy: Double
    public var belowConstraint: Bool
    /// The metrics as JSON.
    public var metrics: String
    public var batch: String
    public var summary: String

    public init(run: String, batchId: Int64, labels: [(sha256: String, trueClass: String)], accuracy: Double, constraintAccuracy: Double,
                belowConstraint: Bool, metrics: String, batch: String, summary: String) {
        self.run = run
        self.batchId = batchId
        self.labels = labels
        self.accuracy = accuracy
        self.constraintAccuracy = constraintAccuracy
        self.belowConstraint = belowConstraint
        self.metrics = metrics
        self.batch = batch
        self.summary = summary
    }
}

/// The watch daemon's heartbeat row.
public struct DaemonState: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable { case running, stopped }
    public var pid: Int
    public var mode: String
    public var state: State
    public var startedAt: String
    public var heartbeatAt: String
    public var rulesFile: String
    public var rulesError: String?
}

/// A serve run's drift outcome for the study's tables.
public struct DriftSummary: Sendable, Equatable {
    public var run: String
    public var drift: Bool
    public var reason: String
    public var minimumAdjustedPValue: Double?
    public var maximumStatistic: Double?
    public var predictions: [(path: String, predicted: String)]
    /// The accuracy estimated from calibrated confidences (nil without calibration).
    public var estimatedAccuracy: Double? = nil

    public static func == (a: DriftSummary, b: DriftSummary) -> Bool {
        a.run == b.run && a.drift == b.drift && a.reason == b.reason && a.minimumAdjustedPValue == b.minimumAdjustedPValue
            && a.maximumStatistic == b.maximumStatistic && a.predictions.map(\.path) == b.predictions.map(\.path)
            && a.predictions.map(\.predicted) == b.predictions.map(\.predicted)
    }
}

/// A flag as the index records it: raised by Dropline or dropped by hand, and how it was handled.
public struct FlagRecord: Codable, Sendable, Equatable {
    public var kind: FlagKind
    /// Relative to the root: `flags/<kind>/<name>.json`.
    public var path: String
    public var subject: String
    public var createdAt: String
    public var handledAt: String?
    public var outcome: String?
}

/// One rule's decision on one job: fired or not, why, and what its actions did.
public struct RuleFiring: Codable, Sendable, Equatable {
    public var job: Int64
    public var rule: String
    public var fired: Bool
    public var reason: String
    /// The planned actions, as text.
    public var actions: String
    public var outcome: String?
    public var at: String
}
