import DroplineSupport
import Explainability
import Foundation
import Testing

@Suite("Explanation budgets")
struct BudgetTests {
    let paths = (0..<10).map { "img\($0).jpg" }
    let confidences = [0.9, 0.2, 0.8, 0.5, 0.95, 0.1, 0.7, 0.6, 0.3, 0.99]

    @Test("budgets parse and select: all, a seeded sample, the least confident, the drift ranking")
    func select() throws {
        #expect(try ExplanationBudget(parsing: "all").select(paths: paths, confidences: confidences, seed: 1) == Array(0..<10))
        let sample = try ExplanationBudget(parsing: "sample:3").select(paths: paths, confidences: confidences, seed: 1)
        #expect(sample.count == 3 && Set(sample).count == 3)
        #expect(sample == (try ExplanationBudget(parsing: "sample:3").select(paths: paths, confidences: confidences, seed: 1)))
        #expect(try ExplanationBudget(parsing: "least-confident:2").select(paths: paths, confidences: confidences, seed: 1) == [5, 1])
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("drift-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: report) }
        try Data(#"{"outliers": [{"path": "img7.jpg"}, {"path": "elsewhere.jpg"}, {"path": "img2.jpg"}, {"path": "img4.jpg"}]}"#.utf8)
            .write(to: URL(fileURLWithPath: report))
        #expect(try ExplanationBudget(parsing: "drift:\(report):2").select(paths: paths, confidences: confidences, seed: 1) == [7, 2])
        let scores = [0.5, 3.0, 1.0, 3.0, 0.2, 9.0, 0.1, 0.3, 2.0, 0.0]
        #expect(try ExplanationBudget(parsing: "outliers:3").select(paths: paths, confidences: confidences, outlierScores: scores, seed: 1) == [5, 1, 3],
                "most outlying first, ties in batch order")
        #expect(throws: BudgetError.self, "outliers:K needs the run's drift check") {
            try ExplanationBudget.outliers(3).select(paths: paths, confidences: confidences, seed: 1)
        }
        // a picker offered the images one by one keeps only the chosen ones: at most K payloads at any time
        var picker = try ExplanationPicker<String>(budget: .sample(3), seed: 9)
        for i in paths.indices { picker.offer(index: i, path: paths[i], confidence: confidences[i], outlierScore: nil) { paths[i] } }
        #expect(try picker.chosen().map(\.index) == (try ExplanationBudget.sample(3).select(paths: paths, confidences: confidences, seed: 9)))
        #expect(try picker.chosen().map(\.payload) == (try picker.chosen().map { paths[$0.index] }))
        for bad in ["some", "sample:0", "sample:x", "least-confident", "drift", "outliers:0"] {
            #expect(throws: BudgetError.self) { try ExplanationBudget(parsing: bad) }
        }
    }
}
