import Foundation

/// Temperature scaling (Guo et al., "On calibration of modern neural networks", 2017): one number T
/// by which the model's log-probabilities are divided before the softmax, chosen to minimise the
/// negative log-likelihood of held-out labels. It keeps every prediction (the arg max does not move)
/// and makes the confidences mean what they say, which is what estimating accuracy from them needs.
public struct Calibration: Codable, Sendable, Equatable {
    public var method = "temperature_scaling"
    public var temperature: Double
    /// The held-out images it was fitted on, and the model's accuracy there: the accuracy the
    /// estimates of served batches are compared with.
    public var images: Int
    public var accuracy: Double
    /// Mean negative log-likelihood and expected calibration error (15 equal-width bins) before and after.
    public var nllBefore: Double
    public var nllAfter: Double
    public var eceBefore: Double
    public var eceAfter: Double
    /// The map from mean confidence to accuracy learned on shifted copies of the held-out images
    /// (nil: confidence alone, as in artifacts made before it, or where the map did not help).
    public var shiftCalibration: ShiftCalibration? = nil

    /// Fits T on `probabilities` (rows of `classes` values, each a softmax) and their `labels`.
    public static func fit(probabilities: [Double], labels: [Int], classes: Int) -> Calibration {
        let n = labels.count
        precondition(n > 0 && probabilities.count == n * classes, "\(probabilities.count) probabilities for \(n) labels of \(classes) classes")
        let logits = probabilities.map { log(max($0, 1e-12)) }
        func nll(_ t: Double) -> Double {
            var total = 0.0
            for i in 0..<n {
                let row = logits[(i * classes)..<((i + 1) * classes)].map { $0 / t }
                let top = row.max()!
                let logSum = top + log(row.reduce(0) { $0 + exp($1 - top) })
                total += logSum - row[row.startIndex + labels[i]]
            }
            return total / Double(n)
        }
        // golden-section search on log T over [1/20, 20] (the likelihood is unimodal in 1/T)
        var lo = log(0.05), hi = log(20.0)
        let ratio = (sqrt(5.0) - 1) / 2
        var a = hi - ratio * (hi - lo), b = lo + ratio * (hi - lo)
        var fa = nll(exp(a)), fb = nll(exp(b))
        for _ in 0..<80 {
            if fa < fb { hi = b; b = a; fb = fa; a = hi - ratio * (hi - lo); fa = nll(exp(a)) } else { lo = a; a = b; fa = fb; b = lo + ratio * (hi - lo); fb = nll(exp(b)) }
        }
        let t = exp((lo + hi) / 2)
        let correct = (0..<n).filter { isRight(probabilities, row: $0, classes: classes, label: labels[$0]) }.count
        return Calibration(temperature: t, images: n, accuracy: Double(correct) / Double(n), nllBefore: nll(1), nllAfter: nll(t),
                           eceBefore: expectedCalibrationError(probabilities, labels: labels, classes: classes, temperature: 1),
                           eceAfter: expectedCalibrationError(probabilities, labels: labels, classes: classes, temperature: t))
    }

    /// Whether row `row`'s arg max is `label`.
    static func isRight(_ probabilities: [Double], row: Int, classes: Int, label: Int) -> Bool {
        let values = probabilities[(row * classes)..<((row + 1) * classes)]
        return values.firstIndex(of: values.max()!)! - row * classes == label
    }

    /// Each row's top probability after scaling by `temperature`.
    public static func confidences(_ probabilities: [Double], classes: Int, temperature: Double) -> [Double] {
        stride(from: 0, to: probabilities.count, by: classes).map { start in
            let row = probabilities[start..<(start + classes)].map { log(max($0, 1e-12)) / temperature }
            let top = row.max()!
            return 1 / row.reduce(0) { $0 + exp($1 - top) }
        }
    }

    /// The expected calibration error: the gap between confidence and accuracy, averaged over 15
    /// equal-width confidence bins weighted by their images.
    public static func expectedCalibrationError(_ probabilities: [Double], labels: [Int], classes: Int, temperature: Double) -> Double {
        let confidence = confidences(probabilities, classes: classes, temperature: temperature)
        var sums = [(confidence: Double, correct: Double, count: Double)](repeating: (0, 0, 0), count: 15)
        for (i, c) in confidence.enumerated() {
            let right = isRight(probabilities, row: i, classes: classes, label: labels[i]) ? 1.0 : 0.0
            let bin = min(14, Int(c * 15))
            sums[bin].confidence += c
            sums[bin].correct += right
            sums[bin].count += 1
        }
        return sums.reduce(0) { $0 + abs($1.confidence - $1.correct) } / Double(labels.count)
    }
}

/// A served batch's accuracy estimated without labels. It starts from confidence-based performance
/// estimation (as NannyML's CBPE does for classification): the mean calibrated top-class confidence of
/// its images, for a calibrated model the expected accuracy on images like the held-out ones. That
/// misses what the model is confidently wrong about on images unlike them, so where the calibration
/// has a `ShiftCalibration`, the estimate is that map's accuracy at the batch's mean confidence
/// (method "cbpe_shift_calibrated").
public struct AccuracyEstimate: Codable, Sendable, Equatable {
    public var method = "cbpe_temperature"
    public var accuracy: Double
    /// The mean calibrated confidence (CBPE's estimate, which `accuracy` is without a shift
    /// calibration; nil in reports written before it was recorded).
    public var confidence: Double?
    /// The model's accuracy on the held-out images the calibration was fitted on.
    public var referenceAccuracy: Double
    /// referenceAccuracy - accuracy: how much worse the model is expected to do on this batch.
    public var accuracyDrop: Double
    public var temperature: Double
    public var images: Int

    public init(probabilities: [Double], classes: Int, calibration: Calibration) {
        let c = Calibration.confidences(probabilities, classes: classes, temperature: calibration.temperature)
        let mean = c.isEmpty ? 0 : c.reduce(0, +) / Double(c.count)
        confidence = mean
        accuracy = mean
        if let shift = calibration.shiftCalibration, !c.isEmpty {
            method = "cbpe_shift_calibrated"
            accuracy = shift.estimate(confidence: mean)
        }
        referenceAccuracy = calibration.accuracy
        accuracyDrop = calibration.accuracy - accuracy
        temperature = calibration.temperature
        images = c.count
    }
}
