import DroplineSupport
import Foundation
import NeuralNetwork
import Tensor
import Testing
import SystemFiles

/// Every layer's forward output and gradients (input and parameters) against PyTorch, on fixtures made
/// by scripts/make_nn_fixtures.py: within 1e-4 relative (max |a - b| / max(max |b|, 0.1); the floor is
/// for gradients that are zero in exact arithmetic, such as a conv bias under batch norm, where PyTorch
/// reports float noise of ~1e-6).
@Suite("PyTorch reference")
struct PyTorchFixtureTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let cases: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
        .filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix("cross_entropy") }
        .map { String($0.dropLast(".safetensors".count)) }.sorted()

    static func load(_ name: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        try SafeTensors.decode(try AtomicFile.read(folder + "/" + name + ".safetensors"))
    }

    @Test("the fixtures cover every layer in both modes")
    func coverage() {
        #expect(Self.cases.count >= 34)
        for layer in ["conv", "depthwise", "bn", "maxpool", "avgpool", "gap", "flatten", "residual", "relu6", "small_cnn"] {
            #expect(Self.cases.contains { $0.contains(layer) }, "no fixture for \(layer)")
        }
    }

    @Test("forward and backward match PyTorch", arguments: cases)
    func matches(_ name: String) throws {
        let (t, metadata) = try Self.load(name)
        let network = try JSONDecoder().decode(Network.self, from: Data(metadata["network"]!.utf8))
        let mode: ExecutionMode = metadata["mode"] == "training" ? .training : .inference
        let parameters = try Parameters(for: network)
        for (key, value) in t where key.hasPrefix("param.") {
            try parameters.set(String(key.dropFirst("param.".count)), value)
        }
        let input = t["input"]!
        let executor = try Executor(network: network, parameters: parameters, batchSize: input.shape[0], mode: mode, inputGradient: true)
        executor.forward(input.data)
        let output = executor.outputTensor
        let tolerance: Float = 1e-4
        #expect(output.shape == t["output"]!.shape)
        #expect(output.relativeError(to: t["output"]!) < tolerance, "\(name) output: \(output.relativeError(to: t["output"]!))")
        executor.backward(t["output_grad"]!.data)
        let inputGradient = Tensor(shape: input.shape, data: Array(executor.inputGradient))
        #expect(inputGradient.relativeError(to: t["input_grad"]!) < tolerance, "\(name) input gradient: \(inputGradient.relativeError(to: t["input_grad"]!))")
        if mode == .training {
            for (key, expected) in t where key.hasPrefix("grad.") {
                let param = String(key.dropFirst("grad.".count))
                let gradient = try #require(executor.gradients[param], "\(name): no gradient for \(param)")
                #expect(gradient.relativeError(to: expected, floor: 0.1) < tolerance, "\(name) gradient of \(param): \(gradient.relativeError(to: expected, floor: 0.1)) max ref \(expected.data.map(abs).max()!)")
            }
            #expect(executor.gradients.names.count == t.keys.filter { $0.hasPrefix("grad.") }.count, "\(name): gradient set \(executor.gradients.names)")
            for (key, expected) in t where key.hasPrefix("running.") {
                let running = parameters[String(key.dropFirst("running.".count))]!
                #expect(running.relativeError(to: expected) < tolerance, "\(name) \(key): \(running.relativeError(to: expected))")
            }
        }
    }

    @Test("softmax cross-entropy matches PyTorch, with and without label smoothing", arguments: ["0.0", "0.1"])
    func crossEntropy(_ smoothing: String) throws {
        let (t, _) = try Self.load("cross_entropy_\(smoothing)")
        let logits = t["logits"]!
        let labels = t["labels"]!.data.map { Int($0) }
        var gradient = [Float](repeating: 0, count: logits.count)
        let loss = logits.data.withUnsafeBufferPointer { l in
            gradient.withUnsafeMutableBufferPointer { g in
                SoftmaxCrossEntropy.loss(logits: l, labels: labels, classes: logits.shape[1], smoothing: Float(smoothing)!, gradient: g)
            }
        }
        #expect(abs(loss - t["loss"]!.data[0]) < 1e-5)
        #expect(Tensor(shape: logits.shape, data: gradient).relativeError(to: t["grad"]!) < 1e-5)
    }
}
