public import DriftStatistics
import DroplineSupport
import Foundation
import Imaging
public import Modeling
import NeuralNetwork
import Tensor

/// One feature's test.
public struct FeatureDrift: Codable, Sendable {
    public var feature: Int
    public var statistic: Double
    public var pValue: Double
    public var adjustedPValue: Double
    public var psi: Double
    public var psiTier: PopulationStability.Tier
}

/// One detector's verdict.
public struct DetectorDrift: Codable, Sendable {
    public var name: String
    public var drift: Bool
    public var minimumAdjustedPValue: Double
    public var maximumStatistic: Double
    public var driftedFeatures: Int
    public var maximumPsi: Double
    public var features: [FeatureDrift]
}

/// An image's distance from the reference in encoder feature space.
public struct RankedImage: Codable, Sendable {
    public var path: String
    public var sha256: String
    public var score: Double
}

/// The result of `drift check` (drift.json).
public struct DriftReport: Codable, Sendable {
    public var drift: Bool
    public var reason: String
    public var batch: String
    public var batchSize: Int
    public var referenceSize: Int
    /// content.sha256 of the drift artifacts: which reference this batch was compared with.
    public var artifacts: String
    public var thresholds: DriftThresholds
    public var detectors: [DetectorDrift]
    /// Batch images ranked by Mahalanobis distance to the reference's encoder features, farthest first.
    public var outliers: [RankedImage]
    public var rejected: [Rejection]
    public var createdAt: String
    /// False when the batch was too small to test (`drift` is then false, and `reason` says why);
    /// absent in reports written before this field existed (they were all tested).
    public var tested: Bool? = nil
}

public struct MonitoringError: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
}
