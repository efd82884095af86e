import DriftStatistics
import DroplineSupport
import Foundation
public import Imaging
public import Modeling
import NeuralNetwork
import Tensor

/// Serve mode: a batch's features against the reference, per detector, with outlier scores.
extension DriftMonitor {

    /// The fewest usable images a drift test is run on (a smaller batch is served with its drift
    /// decision "not tested").
    public static let minimumBatch = 2

    /// Tests a batch against the reference; a batch smaller than `minimumBatch` is reported as not tested.
    public func check(_ batch: ImageCollection, name: String) throws -> DriftReport {
        var features = DriftFeatures()
        _ = try add(batch.images, items: batch.items, rejected: batch.rejected, to: &features)
        return check(features, name: name)
    }

    /// Adds a chunk of a batch to `features`: its images prepared at the monitoring side, their
    /// files, and the files of the chunk that were refused. `probabilities` (images x classes) is the
    /// model's softmax on exactly these images when the caller already has it (the serving pass, when
    /// the model's input is the monitoring side), else the model is run here. Returns each image's
    /// outlier score, as the report ranks them.
    public func add(_ images: [RGBImage], items: [ImageCollection.Item], rejected: [Rejection], probabilities: [Double]? = nil,
                    to features: inout DriftFeatures) throws -> [Double] {
        precondition(images.count == items.count, "\(images.count) images for \(items.count) files")
        features.items += items
        features.rejected += rejected
        guard !images.isEmpty else { return [] }
        let k = description.encoder.features
        let encoded = try Self.encode(images, encoder: description.encoder, predictor: encoder)
        features.encoded += encoded
        if let classifier {
            if let probabilities {
                precondition(probabilities.count == images.count * classifier.classes.count, "softmax of another shape")
                features.softmax += probabilities
            } else {
                features.softmax += try Self.softmax(images, classifier: classifier)
            }
        }
        let scores = (0..<images.count).map { i in
            Mahalanobis.distance(Array(encoded[(i * k)..<((i + 1) * k)]), mean: mean, inverse: inverseCovariance)
        }
        features.scores += scores
        return scores
    }

    /// Tests the gathered batch against the reference; a batch smaller than `minimumBatch` is
    /// reported as not tested.
    public func check(_ batch: DriftFeatures, name: String) -> DriftReport {
        let t = thresholds
        let n = batch.items.count
        guard n >= Self.minimumBatch else {
            // Served all the same, and said so: no test, no drift decision made from too little.
            return DriftReport(drift: false, reason: "not tested: the batch has \(n) usable image\(n == 1 ? "" : "s"); a drift test needs at least \(Self.minimumBatch)",
                               batch: name, batchSize: n, referenceSize: description.referenceImages, artifacts: contentHash, thresholds: t,
                               detectors: [], outliers: batch.items.map { RankedImage(path: $0.path, sha256: $0.sha256, score: 0) },
                               rejected: batch.rejected, createdAt: Self.timestamp(), tested: false)
        }
        var features: [String: [[Double]]] = [:]
        features["encoder"] = Self.columns(batch.encoded, rows: n, width: description.encoder.features)
        if let classifier {
            features["softmax"] = Self.columns(batch.softmax, rows: n, width: classifier.classes.count)
        }
        var detectors: [DetectorDrift] = []
        var distributions: [FeatureDistribution] = []
        for name in description.detectors {
            let columns = features[name]!
            let results = tests[name]!.test(batch: columns)
            let adjusted = MultipleTesting.adjust(results.map(\.pValue), t.correction)
            var rows: [FeatureDrift] = []
            for f in results.indices {
                let psi = PopulationStability.index(batch: columns[f], referenceShares: psiShares[name]![f], edges: psiEdges[name]![f])
                rows.append(FeatureDrift(feature: f, statistic: results[f].statistic, pValue: results[f].pValue, adjustedPValue: adjusted[f],
                                         psi: psi, psiTier: PopulationStability.Tier(psi: psi)))
            }
            let level = t.pValue / Double(description.detectors.count)
            let drifted = rows.filter { $0.adjustedPValue < level && $0.statistic >= t.minimumStatistic }
            detectors.append(DetectorDrift(name: name, drift: !drifted.isEmpty, minimumAdjustedPValue: adjusted.min() ?? 1,
                                           maximumStatistic: results.map(\.statistic).max() ?? 0, driftedFeatures: drifted.count,
                                           maximumPsi: rows.map(\.psi).max() ?? 0, features: rows, level: level))
            let shown = rows.sorted { $0.adjustedPValue != $1.adjustedPValue ? $0.adjustedPValue < $1.adjustedPValue : $0.statistic > $1.statistic }
            for row in shown.prefix(DriftReport.distributionsPerDetector) {
                distributions.append(.summarise(detector: name, feature: row.feature, adjustedPValue: row.adjustedPValue,
                                                batch: columns[row.feature], reference: reference[name]![row.feature]))
            }
        }
        let drift = detectors.contains(where: \.drift)
        let reason: String
        let level = t.pValue / Double(description.detectors.count)
        if let d = detectors.first(where: \.drift) {
            reason = String(format: "%@: %d of %d features drifted (smallest corrected p-value %.3g < %.3g, largest KS statistic %.3f >= %.3f)",
                            d.name, d.driftedFeatures, d.features.count, d.minimumAdjustedPValue, level, d.maximumStatistic, t.minimumStatistic)
        } else {
            let d = detectors.min { $0.minimumAdjustedPValue < $1.minimumAdjustedPValue }!
            reason = String(format: "no drift: smallest corrected p-value %.3g (%@) is not below %.3g with a KS statistic of at least %.3f",
                            d.minimumAdjustedPValue, d.name, level, t.minimumStatistic)
        }
        let scores = batch.scores
        let outliers = DriftFeatures.ranked(scores).map {
            RankedImage(path: batch.items[$0].path, sha256: batch.items[$0].sha256, score: scores[$0])
        }
        var report = DriftReport(drift: drift, reason: reason, batch: name, batchSize: n, referenceSize: description.referenceImages,
                                 artifacts: contentHash, thresholds: t, detectors: detectors, outliers: outliers, rejected: batch.rejected,
                                 createdAt: Self.timestamp(), tested: true, distributions: distributions)
        if let calibration = description.calibration, let classifier, !batch.softmax.isEmpty {
            report.estimate = AccuracyEstimate(probabilities: batch.softmax, classes: classifier.classes.count, calibration: calibration)
        }
        return report
    }

    // MARK: - Features

    static func encode(_ images: [RGBImage], encoder: DriftEncoder, predictor: Predictor) throws -> [Double] {
        try predictor.predict(count: images.count) { i, slot in
            let image = images[i].width == encoder.side && images[i].height == encoder.side ? images[i] : images[i].resizedAndCropped(to: .square(encoder.side))
            image.writeFloats(into: slot, layout: .chw, normalization: .unit)
        }.map(Double.init)
    }

    static func softmax(_ images: [RGBImage], classifier: Classifier) throws -> [Double] {
        try classifier.classify(images).probabilities
    }

    static func columnsOf(_ matrix: Tensor) -> [[Double]] {
        columns(matrix.data.map(Double.init), rows: matrix.shape[0], width: matrix.shape[1])
    }

    static func columns(_ values: [Double], rows: Int, width: Int) -> [[Double]] {
        (0..<width).map { f in (0..<rows).map { values[$0 * width + f] } }
    }

    static func timestamp() -> String {
        ISOTime.now()
    }
}

/// A batch's drift inputs gathered a chunk at a time (`DriftMonitor.add`): per image, its file, its
/// encoder features, the model's softmax and its outlier score; nothing else grows with the batch.
/// Codable, so that shards of a batch gathered in separate processes (the Slurm executor's array
/// tasks) are written down and appended in batch order: JSON keeps every Double exactly, so the
/// merged features are the ones a single pass gathers.
public struct DriftFeatures: Sendable, Codable {
    public internal(set) var items: [ImageCollection.Item] = []
    public internal(set) var rejected: [Rejection] = []
    /// images x encoder features.
    var encoded: [Double] = []
    /// images x classes (empty without the softmax detector).
    var softmax: [Double] = []
    /// Mahalanobis distance of each image's encoding from the reference.
    public internal(set) var scores: [Double] = []

    public init() {}

    /// Appends the features of the next part of the batch (gathered by the same monitor).
    public mutating func append(_ next: DriftFeatures) {
        items += next.items
        rejected += next.rejected
        encoded += next.encoded
        softmax += next.softmax
        scores += next.scores
    }

    /// Indices by outlier score, most outlying first (ties in batch order).
    public static func ranked(_ scores: [Double]) -> [Int] {
        scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
    }
}
