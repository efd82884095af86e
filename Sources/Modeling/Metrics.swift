import Foundation
/// Classification quality: accuracy, mean loss, per-class precision and recall, confusion matrix.
public struct ClassificationMetrics: Codable, Sendable, Equatable {
    public var count: Int
    public var accuracy: Double
    public var loss: Double
    public var classes: [String]
    /// confusion[true][predicted]
    public var confusion: [[Int]]
    public var precision: [Double]
    public var recall: [Double]

    public init(classes: [String], labels: [Int], predictions: [Int], loss: Double) {
        precondition(labels.count == predictions.count, "\(labels.count) labels for \(predictions.count) predictions")
        let k = classes.count
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
        for (t, p) in zip(labels, predictions) { confusion[t][p] += 1 }
        self.classes = classes
        self.confusion = confusion
        count = labels.count
        let correct = (0..<k).reduce(0) { $0 + confusion[$1][$1] }
        accuracy = count > 0 ? Double(correct) / Double(count) : 0
        self.loss = loss
        precision = (0..<k).map { c in
            let predicted = (0..<k).reduce(0) { $0 + confusion[$1][c] }
            return predicted > 0 ? Double(confusion[c][c]) / Double(predicted) : 0
        }
        recall = (0..<k).map { c in
            let actual = confusion[c].reduce(0, +)
            return actual > 0 ? Double(confusion[c][c]) / Double(actual) : 0
        }
    }

    /// A fixed-width text report: accuracy, loss, per-class precision/recall, confusion matrix.
    public func report() -> String {
        var lines = [String(format: "accuracy %.2f%% (%d images), loss %.4f", accuracy * 100, count, loss)]
        let width = max(classes.map(\.count).max() ?? 5, 5)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        lines.append(pad("class", width) + "  precision  recall")
        for (i, name) in classes.enumerated() {
            lines.append(pad(name, width) + String(format: "  %9.3f  %6.3f", precision[i], recall[i]))
        }
        lines.append("confusion (rows: true class, columns: predicted, in class order):")
        for (i, row) in confusion.enumerated() {
            lines.append(pad(classes[i], width) + "  " + row.map { String(format: "%4d", $0) }.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }
}
