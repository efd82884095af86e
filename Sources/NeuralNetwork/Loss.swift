#if canImport(Glibc)
import Glibc
#endif

/// Softmax cross-entropy over a batch of logits, mean over the batch, with optional label smoothing
/// (PyTorch's `F.cross_entropy(..., label_smoothing=s)`: the target is (1 - s) one-hot + s / K).
public enum SoftmaxCrossEntropy {
    /// The mean loss, and its gradient with respect to the logits written into `gradient`.
    public static func loss(logits: UnsafeBufferPointer<Float>, labels: [Int], classes: Int, smoothing: Float = 0,
                            gradient: UnsafeMutableBufferPointer<Float>? = nil) -> Float {
        let n = labels.count
        precondition(logits.count == n * classes, "logits hold \(logits.count) values, expected \(n) x \(classes)")
        precondition(smoothing >= 0 && smoothing < 1, "label smoothing must be in [0, 1), got \(smoothing)")
        var total: Double = 0
        for i in 0..<n {
            let row = logits.baseAddress! + i * classes
            let label = labels[i]
            precondition(label >= 0 && label < classes, "label \(label) is outside 0..<\(classes)")
            var maximum = row[0]
            for k in 1..<classes { maximum = max(maximum, row[k]) }
            var sum: Double = 0
            for k in 0..<classes { sum += exp(Double(row[k] - maximum)) }
            let logSum = log(sum) + Double(maximum)
            var rowLoss = (1 - Double(smoothing)) * (logSum - Double(row[label]))
            if smoothing > 0 {
                var meanNegLog: Double = 0
                for k in 0..<classes { meanNegLog += logSum - Double(row[k]) }
                rowLoss += Double(smoothing) * meanNegLog / Double(classes)
            }
            total += rowLoss
            if let gradient {
                for k in 0..<classes {
                    let p = exp(Double(row[k]) - logSum)
                    let target = (k == label ? 1 - Double(smoothing) : 0) + Double(smoothing) / Double(classes)
                    gradient[i * classes + k] = Float((p - target) / Double(n))
                }
            }
        }
        return Float(total / Double(n))
    }

    /// Softmax probabilities of each row.
    public static func probabilities(logits: UnsafeBufferPointer<Float>, classes: Int) -> [Float] {
        var out = [Float](repeating: 0, count: logits.count)
        for i in 0..<(logits.count / classes) {
            let row = logits.baseAddress! + i * classes
            var maximum = row[0]
            for k in 1..<classes { maximum = max(maximum, row[k]) }
            var sum: Float = 0
            for k in 0..<classes {
                out[i * classes + k] = expf(row[k] - maximum)
                sum += out[i * classes + k]
            }
            for k in 0..<classes { out[i * classes + k] /= sum }
        }
        return out
    }
}
