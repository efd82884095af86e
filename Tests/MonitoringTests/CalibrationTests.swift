import Foundation
import Monitoring
import Testing

@Suite("Calibrated confidences and accuracy estimated without labels")
struct CalibrationTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/calibration.json")

    @Test("temperature scaling finds scipy's temperature, NLL and ECE (scripts/make_calibration_fixtures.py)", arguments: ["overconfident", "underconfident"])
    func matchesScipy(name: String) throws {
        let all = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture)) as! [String: [String: Any]]
        let c = try #require(all[name])
        let fitted = Calibration.fit(probabilities: c["probabilities"] as! [Double], labels: c["labels"] as! [Int], classes: c["classes"] as! Int)
        #expect(abs(fitted.temperature - (c["temperature"] as! Double)) < 1e-4, "\(fitted.temperature)")
        #expect(abs(fitted.nllBefore - (c["nll_before"] as! Double)) < 1e-9 && abs(fitted.nllAfter - (c["nll_after"] as! Double)) < 1e-7)
        #expect(abs(fitted.eceBefore - (c["ece_before"] as! Double)) < 1e-9 && abs(fitted.eceAfter - (c["ece_after"] as! Double)) < 1e-4)
        #expect(abs(fitted.accuracy - (c["accuracy"] as! Double)) < 1e-12)
        #expect(fitted.nllAfter <= fitted.nllBefore)
    }

    @Test("the estimate on the calibration images is close to their accuracy; on images the model is unsure of it drops")
    func estimate() throws {
        let all = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture)) as! [String: [String: Any]]
        let c = try #require(all["overconfident"])
        let p = c["probabilities"] as! [Double], labels = c["labels"] as! [Int], k = c["classes"] as! Int
        let calibration = Calibration.fit(probabilities: p, labels: labels, classes: k)
        let same = AccuracyEstimate(probabilities: p, classes: k, calibration: calibration)
        #expect(abs(same.accuracy - calibration.accuracy) < 0.06, "\(same.accuracy) against \(calibration.accuracy)")
        // flatter outputs (an unfamiliar batch): the estimate falls, and the drop says by how much
        let flatter = stride(from: 0, to: p.count, by: k).flatMap { start -> [Double] in
            let row = p[start..<(start + k)].map { pow($0, 0.3) }
            let sum = row.reduce(0, +)
            return row.map { $0 / sum }
        }
        let unsure = AccuracyEstimate(probabilities: flatter, classes: k, calibration: calibration)
        #expect(unsure.accuracy < same.accuracy - 0.1 && abs(unsure.accuracyDrop - (calibration.accuracy - unsure.accuracy)) < 1e-12)
    }
}
