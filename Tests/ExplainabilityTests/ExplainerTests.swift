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
        for bad in ["some", "sample:0", "sample:x", "least-confident", "drift"] {
            #expect(throws: BudgetError.self) { try ExplanationBudget(parsing: bad) }
        }
    }
}
