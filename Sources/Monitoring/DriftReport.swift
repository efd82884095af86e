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
    /// The corrected p-value a feature must fall below (the p-value threshold shared among the
    /// detectors); absent in reports written before this field existed.
    public var level: Double? = nil
}

/// A feature's two distributions, summarised for a person to look at (the reports' ECDF overlays):
/// 101 quantiles (0%, 1%, ..., 100%) of the batch and of the reference, and where the KS statistic
/// is attained: the value `at` and the two empirical CDFs there (their difference is `statistic`).
public struct FeatureDistribution: Codable, Sendable, Equatable {
    public var detector: String
    public var feature: Int
    public var statistic: Double
    public var adjustedPValue: Double
    public var at: Double
    public var batchCdf: Double
    public var referenceCdf: Double
    public var batchQuantiles: [Double]
    public var referenceQuantiles: [Double]

    /// The summary of `batch` against `reference` (neither empty).
    public static func summarise(detector: String, feature: Int, adjustedPValue: Double, batch: [Double], reference: [Double]) -> FeatureDistribution {
        let b = batch.sorted(), r = reference.sorted()
        // the largest |F_batch - F_reference| over the pooled values, by merging the sorted samples
        var i = 0, j = 0, best = 0.0, at = b.first ?? 0, fb = 0.0, fr = 0.0
        while i < b.count || j < r.count {
            let x = min(i < b.count ? b[i] : .infinity, j < r.count ? r[j] : .infinity)
            while i < b.count, b[i] <= x { i += 1 }
            while j < r.count, r[j] <= x { j += 1 }
            let cb = Double(i) / Double(b.count), cr = Double(j) / Double(r.count)
            if abs(cb - cr) > best { best = abs(cb - cr); at = x; fb = cb; fr = cr }
        }
        func quantiles(_ sorted: [Double]) -> [Double] {
            (0...100).map { q in
                let position = Double(q) / 100 * Double(sorted.count - 1)
                let lo = Int(position.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
                return sorted[lo] + (sorted[hi] - sorted[lo]) * (position - Double(lo))
            }
        }
        return FeatureDistribution(detector: detector, feature: feature, statistic: best, adjustedPValue: adjustedPValue, at: at,
                                   batchCdf: fb, referenceCdf: fr, batchQuantiles: quantiles(b), referenceQuantiles: quantiles(r))
    }
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
    /// The most drifted features of each detector (smallest corrected p-value first, at most
    /// `DriftReport.distributionsPerDetector`), for the reports; absent in older reports.
    public var distributions: [FeatureDistribution]? = nil
    /// The batch's accuracy estimated from the model's calibrated confidences (absent without the
    /// artifacts' calibration or the softmax detector).
    public var estimate: AccuracyEstimate? = nil

    public static let distributionsPerDetector = 6
}

public struct MonitoringError: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
}
