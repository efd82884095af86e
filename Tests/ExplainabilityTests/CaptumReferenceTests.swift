import DroplineSupport
import Explainability
import Foundation
import NeuralNetwork
import Tensor
import Synchronization
import Testing
import SystemFiles

/// Integrated gradients against Captum 0.9 (fixtures from scripts/make_ig_fixtures.py).
@Suite("Captum reference")
struct CaptumReferenceTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    @Test("attributions match Captum within 1e-3 relative", arguments: ["zeros", "random"], ["gausslegendre", "riemann_trapezoid"])
    func captum(baseline: String, method: String) throws {
        let (t, network, parameters, target) = try Self.fixture("ig_\(baseline)_\(method)")
        let ig = try IntegratedGradients(network: network, parameters: parameters, chunk: 16)
        let result = try ig.attribute(input: t["input"]!.data, baseline: t["baseline"]!.data, target: target,
                                      steps: 50, method: Quadrature(rawValue: method)!)
        let ours = Tensor(shape: t["attributions"]!.shape, data: result.values)
        let error = ours.relativeError(to: t["attributions"]!)
        #expect(error < 1e-3, "relative error \(error)")
        // Captum's convergence delta is the same completeness gap
        #expect(abs(result.delta - Double(abs(t["delta"]!.data[0]))) < 1e-3 * max(1, abs(result.outputAtInput - result.outputAtBaseline)))
    }

    @Test("Gauss-Legendre points and weights match numpy's leggauss(50) mapped to [0, 1]")
    func gaussLegendre() throws {
        struct Rule: Decodable { var nodes: [String]; var weights: [String] }
        let rule = try JSONDecoder().decode(Rule.self, from: Data(contentsOf: URL(fileURLWithPath: Self.folder + "/gauss_legendre_50.json")))
        let ours = Quadrature.gaussLegendre.rule(steps: 50)
        for (k, point) in ours.enumerated() {
            #expect(abs(point.alpha - (Double(rule.nodes[k])! + 1) / 2) < 1e-14)
            #expect(abs(point.weight - Double(rule.weights[k])! / 2) < 1e-14)
        }
        #expect(abs(ours.map(\.weight).reduce(0, +) - 1) < 1e-13)
        let trapezoid = Quadrature.riemannTrapezoid.rule(steps: 5)
        // Captum's definition: step 1/n, ends halved
        #expect(trapezoid.map(\.alpha) == [0, 0.25, 0.5, 0.75, 1] && trapezoid.map(\.weight) == [0.1, 0.2, 0.2, 0.2, 0.1])
    }

    static func fixture(_ name: String) throws -> (tensors: [String: Tensor], network: Network, parameters: Parameters, target: Int) {
        let (t, metadata) = try SafeTensors.decode(try AtomicFile.read("\(folder)/\(name).safetensors"))
        let network = try JSONDecoder().decode(Network.self, from: Data(metadata["network"]!.utf8))
        let parameters = try Parameters(for: network)
        for (key, value) in t where key.hasPrefix("param.") { try parameters.set(String(key.dropFirst(6)), value) }
        return (t, network, parameters, Int(metadata["target"]!)!)
    }

    @Test("side by side on several engines, whole or split into parts, as on one engine and as Captum", arguments: [1, 2, 6])
    func parallel(jobs count: Int) throws {
        let f = try Self.fixture("ig_random_gausslegendre")
        let input = f.tensors["input"]!.data, baseline = f.tensors["baseline"]!.data
        // the fixture's input first, then the input scaled and shifted: other paths through the same kinks
        let jobs = (0..<count).map { k in
            ParallelAttribution.Job(input: input.map { $0 * (1 + Float(k) / 10) + Float(k) / 20 }, baseline: baseline, target: f.target,
                                    steps: k % 2 == 0 ? 50 : 37)
        }
        let one = try IntegratedGradients(network: f.network, parameters: f.parameters, chunk: 4)
        for workers in [2, 3] {
            let engines = ParallelAttribution(network: f.network, parameters: f.parameters, workers: workers)
            let results = try engines.attribute(jobs)
            #expect(results.count == count)
            for (job, result) in zip(jobs, results) {
                let alone = try one.attribute(input: job.input, baseline: job.baseline, target: job.target, steps: job.steps)
                let error = Tensor(shape: [result.values.count], data: result.values).relativeError(to: Tensor(shape: [alone.values.count], data: alone.values))
                #expect(error < 1e-5, "\(workers) workers, \(job.steps) steps: relative error \(error) against one engine")
                #expect(result.steps == job.steps && abs(result.delta - alone.delta) < 1e-4 * max(1, abs(alone.outputAtInput - alone.outputAtBaseline)))
                #expect(result.outputAtInput == alone.outputAtInput || abs(result.outputAtInput - alone.outputAtInput) < 1e-5)
            }
            let captum = Tensor(shape: f.tensors["attributions"]!.shape, data: results[0].values).relativeError(to: f.tensors["attributions"]!)
            #expect(captum < 1e-3, "relative error \(captum) against Captum")
            // the same parts added in the same order, whichever worker computed which
            #expect(try engines.attribute(jobs).map(\.values) == results.map(\.values))
        }
    }

    @Test("a pass holds as many path steps as keep the largest activation within a core's cache, 1 to 32")
    func stepsPerPass() {
        let mib = 1 << 20
        #expect(IntegratedGradients.defaultChunk(largestActivation: 48 * 112 * 112 * 4, cache: mib) == 1)  // MobileNetV2-0.35 at 224
        #expect(IntegratedGradients.defaultChunk(largestActivation: 32 * 32 * 32 * 4, cache: mib) == 8)
        #expect(IntegratedGradients.defaultChunk(largestActivation: 32 * 32 * 32 * 4, cache: 2 * mib) == 16)
        #expect(IntegratedGradients.defaultChunk(largestActivation: 16, cache: mib) == 32)
        #expect(IntegratedGradients.defaultChunk(largestActivation: 0, cache: mib) == 32)
    }

    @Test("a job's points are split into one part of whole passes per worker, however many jobs there are")
    func parts() {
        let few = ParallelAttribution.parts([50, 37], workers: 2, pass: 4)
        #expect(few.map(\.points) == [0..<28, 28..<50, 0..<20, 20..<37])
        #expect(few.map(\.job) == [0, 0, 1, 1] && few.map(\.index) == [0, 1, 0, 1])
        let many = ParallelAttribution.parts([64, 64, 64, 64, 64], workers: 2, pass: 5)
        #expect(many.map(\.points) == Array(repeating: [0..<35, 35..<64], count: 5).flatMap { $0 })
        #expect(ParallelAttribution.parts([3], workers: 2, pass: 5).map(\.points) == [0..<3])
        #expect(ParallelAttribution.parts([50, 37], workers: 1, pass: 4).map(\.points) == [0..<50, 0..<37])
    }

    @Test("oneDNN's thread count can be limited on one thread without changing the others'")
    func threadLimit() throws {
        let before = ComputeThreads.forCallingThread
        let seen = Mutex<Int?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            #expect(ComputeThreads.limitCallingThread(to: 1))
            seen.withLock { $0 = ComputeThreads.forCallingThread }
            done.signal()
        }
        thread.start()
        done.wait()
        #expect(seen.withLock { $0 } == 1)
        #expect(ComputeThreads.forCallingThread == before)
    }
}
