import DroplineSupport
import Explainability
import Foundation
import NeuralNetwork
import Tensor
import Testing
import SystemFiles

/// Integrated gradients against Captum 0.9 (fixtures from scripts/make_ig_fixtures.py).
@Suite("Captum reference")
struct CaptumReferenceTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    @Test("attributions match Captum within 1e-3 relative", arguments: ["zeros", "random"], ["gausslegendre", "riemann_trapezoid"])
    func captum(baseline: String, method: String) throws {
        let (t, metadata) = try SafeTensors.decode(try AtomicFile.read("\(Self.folder)/ig_\(baseline)_\(method).safetensors"))
        let network = try JSONDecoder().decode(Network.self, from: Data(metadata["network"]!.utf8))
        let parameters = try Parameters(for: network)
        for (key, value) in t where key.hasPrefix("param.") { try parameters.set(String(key.dropFirst(6)), value) }
        let ig = try IntegratedGradients(network: network, parameters: parameters, chunk: 16)
        let result = try ig.attribute(input: t["input"]!.data, baseline: t["baseline"]!.data, target: Int(metadata["target"]!)!,
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
}
