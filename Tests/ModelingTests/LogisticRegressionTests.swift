import Foundation
import Modeling
import Testing

/// The logistic-regression head against scikit-learn (scripts/make_logistic_fixtures.py), and its
/// gradient against finite differences.
@Suite("Logistic regression and the linear probe")
struct LogisticRegressionTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/logistic.json")
    static func load() throws -> [String: Any] { try JSONSerialization.jsonObject(with: Data(contentsOf: fixture)) as! [String: Any] }
    static func floats(_ v: Any?) -> [Float] { (v as! [Double]).map(Float.init) }

    @Test("the fit matches scikit-learn's lbfgs solution: weights, intercepts, probabilities and the objective", arguments: [0, 1, 2])
    func matchesScikitLearn(index: Int) throws {
        let f = try #require(try Self.load()["fit"] as? [String: Any])
        let x = Self.floats(f["x"]), labels = f["labels"] as! [Int], d = f["features"] as! Int, k = f["classes"] as! Int
        let expected = (f["fits"] as! [[String: Any]])[index]
        let c = expected["c"] as! Double
        let model = LogisticRegression.fit(x: x, labels: labels, featureCount: d, classes: k, c: c, tolerance: 1e-7)
        #expect(model.converged, "\(model.iterations) iterations")
        // the optimum's value: ours is scikit-learn's to single precision
        func objective(_ m: LogisticRegression) -> Double {
            let (_, loss) = LinearProbe.score(m.logits(x, count: labels.count), labels, classes: k)
            return loss + m.weights.reduce(0) { $0 + Double($1) * Double($1) } / (2 * c * Double(labels.count))
        }
        print("C \(c): objective \(objective(model)) against scikit-learn's \(expected["objective"]!), \(model.iterations) iterations")
        #expect(objective(model) <= (expected["objective"] as! Double) + 1e-5)
        // scikit-learn's multinomial intercepts and weights are defined up to a shift common to the classes
        // only without a penalty; with one they are unique, so compare them directly
        let coef = Self.floats(expected["coef"]), intercept = Self.floats(expected["intercept"])
        let scale = max(1, coef.map(abs).max()!)
        let worstWeight = zip(model.weights, coef).map { abs($0 - $1) }.max()!
        let worstIntercept = zip(model.intercepts, intercept).map { abs($0 - $1) }.max()!
        print("C \(c): weights off by \(worstWeight), intercepts by \(worstIntercept) (largest weight \(scale))")
        #expect(worstWeight < 2e-3 * scale && worstIntercept < 2e-3 * scale, "weights off by \(worstWeight), intercepts by \(worstIntercept) at C \(c)")
        let logits = model.logits(Array(x[0..<(10 * d)]), count: 10)
        var probabilities: [Double] = []
        for i in 0..<10 {
            let row = logits[(i * k)..<((i + 1) * k)].map(Double.init), top = row.max()!
            let e = row.map { exp($0 - top) }, s = e.reduce(0, +)
            probabilities += e.map { $0 / s }
        }
        let worstP = zip(probabilities, expected["probabilities"] as! [Double]).map { abs($0 - $1) }.max()!
        print("C \(c): probabilities off by \(worstP)")
        #expect(worstP < 1e-4, "probabilities off by \(worstP) at C \(c)")
    }

    @Test("the gradient matches central finite differences of the objective, away from and at the optimum")
    func gradient() throws {
        let f = try #require(try Self.load()["fit"] as? [String: Any])
        let x = Self.floats(f["x"]), labels = f["labels"] as! [Int], d = f["features"] as! Int, k = f["classes"] as! Int
        let early = LogisticRegression.fit(x: x, labels: labels, featureCount: d, classes: k, c: 1, maximumIterations: 3)
        let optimum = LogisticRegression.fit(x: x, labels: labels, featureCount: d, classes: k, c: 1, tolerance: 1e-6)
        for model in [early, optimum] {
            let (value, gradient) = model.objective(x: x, labels: labels, c: 1)
            for index in [0, 5, 17, d * k - 1] {
                var plus = model, minus = model
                let h: Float = 1e-2
                plus.weights[index] += h
                minus.weights[index] -= h
                let numeric = (plus.objective(x: x, labels: labels, c: 1).value - minus.objective(x: x, labels: labels, c: 1).value) / (2 * Double(h))
                #expect(abs(numeric - gradient[index]) < 1e-4 + 1e-3 * abs(gradient[index]), "weight \(index): \(gradient[index]) against \(numeric)")
            }
            for j in 0..<k {
                var plus = model, minus = model
                plus.intercepts[j] += 1e-2
                minus.intercepts[j] -= 1e-2
                let numeric = (plus.objective(x: x, labels: labels, c: 1).value - minus.objective(x: x, labels: labels, c: 1).value) / 2e-2
                #expect(abs(numeric - gradient[d * k + j]) < 1e-4 + 1e-3 * abs(gradient[d * k + j]), "intercept \(j)")
            }
            _ = value
        }
        #expect(optimum.objective(x: x, labels: labels, c: 1).gradient.map(abs).max()! < 1e-4)
        #expect(optimum.objective(x: x, labels: labels, c: 1).value < early.objective(x: x, labels: labels, c: 1).value)
    }

    @Test("the probe chooses scikit-learn's C on the validation split, with the same validation accuracy")
    func probe() throws {
        let p = try #require(try Self.load()["probe"] as? [String: Any])
        let d = p["features"] as! Int, k = p["classes"] as! Int
        let (_, chosen, candidates) = LinearProbe.select(train: Self.floats(p["train"]), labels: p["labels"] as! [Int], augmented: nil,
                                                         validation: Self.floats(p["validation"]), validationLabels: p["validation_labels"] as! [Int],
                                                         featureCount: d, classes: k)
        #expect(candidates.count == LinearProbe.grid.count)
        #expect(abs(chosen.c - (p["c"] as! Double)) < 1e-9 * chosen.c, "chose \(chosen.c), scikit-learn \(p["c"]!)")
        #expect(chosen.validationAccuracy == p["accuracy"] as! Double && abs(chosen.validationLoss - (p["loss"] as! Double)) < 1e-3)
        for (ours, theirs) in zip(candidates, p["scores"] as! [[String: Any]]) {
            #expect(abs(ours.validationAccuracy - (theirs["accuracy"] as! Double)) <= 1.0 / 80 + 1e-12, "C \(ours.c)")
        }
    }
}
