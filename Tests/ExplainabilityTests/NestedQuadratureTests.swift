import Explainability
import Foundation
import NeuralNetwork
import Tensor
import Testing

/// The nested cosine trapezoid and refining an attribution by the points a finer rule adds.
@Suite("Nested quadrature")
struct NestedQuadratureTests {
    @Test("cosine trapezoid: weights sum to 1, symmetric, and the rule of 2n + 1 holds the rule of n", arguments: [2, 3, 31, 63])
    func nesting(n: Int) {
        let rule = Quadrature.cosineTrapezoid.rule(steps: n)
        #expect(abs(rule.map(\.weight).reduce(0, +) - 1) < 1e-13)
        for (a, b) in zip(rule, rule.reversed()) {
            #expect(abs(a.alpha + b.alpha - 1) < 1e-14 && abs(a.weight - b.weight) < 1e-15)
        }
        #expect(rule.allSatisfy { $0.alpha > 0 && $0.alpha < 1 && $0.weight > 0 })
        let (added, keep) = Quadrature.cosineTrapezoid.refinement(of: n)
        let finer = Quadrature.cosineTrapezoid.rule(steps: 2 * n + 1)
        #expect(added.count == n + 1)
        // the finer rule's points are the added ones and the coarser ones, alternating
        for (k, point) in finer.enumerated() {
            let expected = k % 2 == 0 ? added[k / 2] : (rule[k / 2].alpha, keep * rule[k / 2].weight)
            #expect(abs(point.alpha - expected.alpha) < 1e-15 && abs(point.weight - expected.weight) < 1e-15, "point \(k) of \(2 * n + 1)")
        }
        #expect(!Quadrature.gaussLegendre.isNested && Quadrature.cosineTrapezoid.isNested)
    }

    @Test("cosine trapezoid converges on a smooth integrand like a second-order rule")
    func smooth() {
        func error(_ n: Int) -> Double {
            let rule = Quadrature.cosineTrapezoid.rule(steps: n)
            return abs(rule.reduce(0) { $0 + $1.weight * exp(3 * $1.alpha) } - (exp(3) - 1) / 3)
        }
        #expect(error(63) < 1e-3)
        #expect(error(127) < error(63) / 3.5 && error(255) < error(127) / 3.5, "\(error(63)), \(error(127)), \(error(255))")
    }

    @Test("an attribution refined by the points the finer rule adds equals the finer rule computed whole, on one engine and on two")
    func refinement() throws {
        let f = try CaptumReferenceTests.fixture("ig_random_gausslegendre")
        let input = f.tensors["input"]!.data, baseline = f.tensors["baseline"]!.data
        func job(_ steps: Int, coarser: Attribution? = nil) -> ParallelAttribution.Job {
            ParallelAttribution.Job(input: input, baseline: baseline, target: f.target, steps: steps, method: .cosineTrapezoid,
                                    coarser: coarser, keepSum: true)
        }
        // passes of 4 points: the 15, 16 and 32 points end in padded passes
        let one = try IntegratedGradients(network: f.network, parameters: f.parameters, chunk: 4)
        let whole = try one.attribute(job(31))
        let coarse = try one.attribute(job(15))
        #expect(coarse.weightedSum?.count == input.count && coarse.steps == 15)
        let refined = try one.attribute(job(31, coarser: coarse))
        let engines = ParallelAttribution(network: f.network, parameters: f.parameters, workers: 2)
        let parallel = try engines.attribute([job(31, coarser: coarse)])[0]
        let twice = try engines.attribute([job(63, coarser: refined)])[0]
        let direct63 = try one.attribute(job(63))
        for (result, reference, what) in [(refined, whole, "one engine"), (parallel, whole, "two engines"), (twice, direct63, "refined twice")] {
            let error = Tensor(shape: [result.values.count], data: result.values).relativeError(to: Tensor(shape: [reference.values.count], data: reference.values))
            #expect(error < 1e-6, "\(what): relative error \(error)")
            #expect(result.steps == reference.steps && abs(result.delta - reference.delta) < 1e-6 * max(1, abs(reference.outputAtInput - reference.outputAtBaseline)))
            #expect(result.outputAtInput == reference.outputAtInput || abs(result.outputAtInput - reference.outputAtInput) < 1e-5)
        }
        // and more points bring it closer to Captum's Gauss-Legendre at 50 (the fixture), whose own error is small here
        let captum = f.tensors["attributions"]!
        let e15 = Tensor(shape: captum.shape, data: coarse.values).relativeError(to: captum)
        let e63 = Tensor(shape: captum.shape, data: twice.values).relativeError(to: captum)
        #expect(e63 < e15, "15 points \(e15), 63 points \(e63)")
    }

    @Test("a pass padded to the executor's size gives what a pass of its own size gives")
    func padding() throws {
        let f = try CaptumReferenceTests.fixture("ig_random_gausslegendre")
        let input = f.tensors["input"]!.data, baseline = f.tensors["baseline"]!.data
        let padded = try IntegratedGradients(network: f.network, parameters: f.parameters, chunk: 4)
            .attribute(input: input, baseline: baseline, target: f.target, steps: 7)
        let exact = try IntegratedGradients(network: f.network, parameters: f.parameters, chunk: 7)
            .attribute(input: input, baseline: baseline, target: f.target, steps: 7)
        let error = Tensor(shape: [padded.values.count], data: padded.values).relativeError(to: Tensor(shape: [exact.values.count], data: exact.values))
        #expect(error < 1e-6, "relative error \(error)")
        #expect(abs(padded.outputAtInput - exact.outputAtInput) < 1e-5 && abs(padded.outputAtBaseline - exact.outputAtBaseline) < 1e-5)
    }
}
