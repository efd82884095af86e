import DroplineSupport
import Foundation
public import Store
import SystemFiles
import JSONFiles
public import Monitoring
public import Rules

/// A drift flag, `flags/drift/<batch>.json`: written by a serve run that found drift, for the rules
/// to act on (the rules read every top-level value as `flag.<key>`; rules/README.md lists them).
public struct DriftFlag: Codable, Sendable, Equatable {
    public var kind = "drift"
    public var batch: String
    /// The stage folder of a batch under inbox/production/<stage>/ (what the default rules retrain
    /// on); absent for a batch served from elsewhere.
    public var stage: String?
    /// The batch's path relative to inbox/, when it lies under inbox/production/.
    public var batchPath: String?
    public var run: String
    public var modelVersion: Int
    public var drift = true
    public var reason: String
    public var detectors: [Detector]
    public var createdAt: String
    /// How many served batches in a row, this one included, drifted: for rules with hysteresis.
    public var batchesInARow: Int
    /// The batch's accuracy estimated from calibrated confidences, and how far below the model's
    /// held-out accuracy that is (`flag.estimated_accuracy_drop`: a rule can retrain only on harm).
    public var estimatedAccuracy: Double?
    public var estimatedAccuracyDrop: Double?

    public struct Detector: Codable, Sendable, Equatable {
        public var name: String
        public var drift: Bool
        public var minimumAdjustedPValue: Double
        public var maximumStatistic: Double

        public init(name: String, drift: Bool, minimumAdjustedPValue: Double, maximumStatistic: Double) {
            self.name = name
            self.drift = drift
            self.minimumAdjustedPValue = minimumAdjustedPValue
            self.maximumStatistic = maximumStatistic
        }
    }

    public init(batch: String, stage: String? = nil, batchPath: String? = nil, run: String, modelVersion: Int, reason: String,
                detectors: [Detector], createdAt: String, batchesInARow: Int) {
        self.batch = batch
        self.stage = stage
        self.batchPath = batchPath
        self.run = run
        self.modelVersion = modelVersion
        self.reason = reason
        self.detectors = detectors
        self.createdAt = createdAt
        self.batchesInARow = batchesInARow
    }

}

/// A quality flag, `flags/quality/<batch>.json`: written when ground truth puts the champion below
/// its accuracy constraint on a labelled batch.
public struct QualityFlag: Codable, Sendable, Equatable {
    public var kind = "quality"
    public var batch: String
    public var stage: String?
    public var batchPath: String?
    public var run: String
    public var modelVersion: Int
    public var accuracy: Double
    public var constraintAccuracy: Double
    public var createdAt: String

    public init(batch: String, stage: String? = nil, batchPath: String? = nil, run: String, modelVersion: Int, accuracy: Double,
                constraintAccuracy: Double, createdAt: String) {
        self.batch = batch
        self.stage = stage
        self.batchPath = batchPath
        self.run = run
        self.modelVersion = modelVersion
        self.accuracy = accuracy
        self.constraintAccuracy = constraintAccuracy
        self.createdAt = createdAt
    }
}

/// A data-quality flag, `flags/data_quality/<batch>.json`: the batch broke the constraints learned
/// from the champion's training images (thumbnails, blank frames, another colour model, duplicates,
/// refused files). `violations` says which; rules read `flag.violations` as their number.
public struct DataQualityFlag: Codable, Sendable, Equatable {
    public var kind = "data_quality"
    public var batch: String
    public var stage: String?
    public var batchPath: String?
    public var run: String
    public var modelVersion: Int
    public var reason: String
    /// The broken checks, each as property, check, observed share and allowed share.
    public var violated: [Violation]
    /// How many checks broke (a number a rule's `when` can compare).
    public var violations: Int
    public var createdAt: String

    public struct Violation: Codable, Sendable, Equatable {
        public var property: String
        public var check: String
        public var observed: Double
        public var allowed: Double
        public var count: Int

        public init(_ v: QualityViolation) {
            property = v.property
            check = v.check
            observed = v.observed
            allowed = v.allowed
            count = v.count
        }
    }

    public init(batch: String, stage: String?, batchPath: String?, run: String, modelVersion: Int, reason: String, violations: [Violation], createdAt: String) {
        self.batch = batch
        self.stage = stage
        self.batchPath = batchPath
        self.run = run
        self.modelVersion = modelVersion
        self.reason = reason
        self.violated = violations
        self.violations = violations.count
        self.createdAt = createdAt
    }
}

extension RootConfiguration {
    /// The data-quality limits to check with: dropline.yaml's `data_quality:` values over `fitted`
    /// (a model version's constraints' own; the defaults without one).
    public func qualityLimits(over fitted: QualityLimits?) -> QualityLimits {
        var limits = fitted ?? QualityLimits()
        if let x = dataQuality.outOfRangeShare { limits.outOfRangeShare = x }
        if let x = dataQuality.categoryTolerance { limits.categoryTolerance = x }
        if let x = dataQuality.duplicateTolerance { limits.duplicateTolerance = x }
        if let x = dataQuality.refusalTolerance { limits.refusalTolerance = x }
        if let x = dataQuality.significance { limits.significance = x }
        return limits
    }
}

/// The one writer and reader of the flags Dropline raises: snake_case JSON, written atomically
/// (a reader never sees half a flag), and the row in the index's `flags` table.
public enum FlagFiles {
    /// The separator of a batch's path under `inbox/production/` in flag and labels file names:
    /// `production/stage-2/b1` is `stage-2~b1`. `~` is not in the names' character set (`SafeName`),
    /// so two batches of the same name in two stages never share a file.
    public static let pathSeparator: Character = "~"

    /// The file name (without `.json`) of a flag about a batch: its path under `inbox/production/`
    /// (`batchPath`, relative to inbox/, e.g. `production/stage-2/b1`) with `~` between the parts, or,
    /// for a batch served from elsewhere, its name.
    public static func name(batch: String, batchPath: String?) -> String {
        guard let batchPath, batchPath.hasPrefix("production/") else { return Pipelines.safe(batch) }
        return batchPath.dropFirst("production/".count).split(separator: "/").map { Pipelines.safe(String($0)) }.joined(separator: String(pathSeparator))
    }

    /// The batch path (relative to inbox/) a flag or labels file name stands for: `stage-2~b1` is
    /// `production/stage-2/b1`; a name without `~` is a batch's name alone (nil).
    public static func batchPath(fromName name: String) -> String? {
        name.contains(pathSeparator) ? "production/" + name.split(separator: pathSeparator).joined(separator: "/") : nil
    }

    /// The file of a flag of `kind` named `name` (`name(batch:batchPath:)`) in `root`.
    public static func path(_ root: DroplineRoot, kind: String, name: String) -> String {
        root.flags(kind) + "/" + name + ".json"
    }

    /// Writes `flag` atomically to its file (replacing an earlier flag of the same batch); returns
    /// the path. The caller records the row in the index in the same transaction as what raised it.
    @discardableResult
    public static func write(_ flag: some Encodable, kind: String, name: String, in root: DroplineRoot) throws -> String {
        let path = path(root, kind: kind, name: name)
        try SnakeCaseJSON.write(flag, to: path)
        return path
    }

    public static func read<Flag: Decodable>(_ type: Flag.Type, from path: String) throws -> Flag {
        try SnakeCaseJSON.decoder().decode(type, from: Data(try AtomicFile.read(path, limit: 16 << 20, links: .refuse)))
    }
}
