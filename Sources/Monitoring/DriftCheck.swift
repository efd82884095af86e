import DriftStatistics
import DroplineSupport
import Foundation
import Imaging
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
        let t = description.thresholds
        guard batch.images.count >= Self.minimumBatch else {
            // Served all the same, and said so: no test, no drift decision made from too little.
            let n = batch.images.count
            return DriftReport(drift: false, reason: "not tested: the batch has \(n) usable image\(n == 1 ? "" : "s"); a drift test needs at least \(Self.minimumBatch)",
                               batch: name, batchSize: n, referenceSize: description.referenceImages, artifacts: contentHash, thresholds: t,
                               detectors: [], outliers: batch.items.map { RankedImage(path: $0.path, sha256: $0.sha256, score: 0) },
                               rejected: batch.rejected, createdAt: Self.timestamp(), tested: false)
        }
        var features: [String: [[Double]]] = [:]
        let encoded = try Self.encode(batch.images, encoder: description.encoder, parameters: encoderParameters)
        features["encoder"] = Self.columns(encoded, rows: batch.images.count, width: description.encoder.features)
        if let classifier {
            features["softmax"] = Self.columns(try Self.softmax(batch.images, classifier: classifier), rows: batch.images.count, width: classifier.classes.count)
        }
        var detectors: [DetectorDrift] = []
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
                                           maximumPsi: rows.map(\.psi).max() ?? 0, features: rows))
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
        let scores = (0..<batch.images.count).map { i in
            Mahalanobis.distance(Array(encoded[(i * description.encoder.features)..<((i + 1) * description.encoder.features)]), mean: mean, inverse: inverseCovariance)
        }
        let outliers = scores.indices.sorted { scores[$0] > scores[$1] }.map {
            RankedImage(path: batch.items[$0].path, sha256: batch.items[$0].sha256, score: scores[$0])
        }
        return DriftReport(drift: drift, reason: reason, batch: name, batchSize: batch.images.count, referenceSize: description.referenceImages,
                           artifacts: contentHash, thresholds: t, detectors: detectors, outliers: outliers, rejected: batch.rejected,
                           createdAt: Self.timestamp(), tested: true)
    }

    // MARK: - Features

    static func encode(_ images: [RGBImage], encoder: DriftEncoder, parameters: Parameters) throws -> [Double] {
        let predictor = try Predictor(network: encoder.network, parameters: parameters)
        return try predictor.predict(count: images.count) { i, slot in
            let image = images[i].width == encoder.side && images[i].height == encoder.side ? images[i] : images[i].resizedAndCropped(to: .square(encoder.side))
            image.writeFloats(into: slot, layout: .chw, normalization: .unit)
        }.map(Double.init)
    }

    static func softmax(_ images: [RGBImage], classifier: Classifier) throws -> [Double] {
        let logits = try classifier.logits(images)
        let k = classifier.classes.count
        return logits.withUnsafeBufferPointer { SoftmaxCrossEntropy.probabilities(logits: $0, classes: k) }.map(Double.init)
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
