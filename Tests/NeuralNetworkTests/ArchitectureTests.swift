import NeuralNetwork
import Testing

@Suite("Architectures")
struct ArchitectureTests {
    @Test("the reference small CNN has PEERS.md's 94,246 parameters and multiply-adds")
    func smallCNN() throws {
        let net = Architectures.smallCNN(classes: 6, imageSize: 96)
        #expect(try Parameters(for: net).learnableCount == 94_246)
        // PEERS.md: 41.3 M multiply-adds per 64x64 image, 92.9 M per 96x96 image
        #expect(abs(Double(try net.multiplyAdds()) / 1e6 - 92.9) < 0.1)
        #expect(abs(Double(try Architectures.smallCNN(classes: 6, imageSize: 64).multiplyAdds()) / 1e6 - 41.3) < 0.1)
    }

    @Test("the residual network builds, runs and ends in a 6x6 map at 96 px")
    func residual() throws {
        let net = Architectures.residual(classes: 10, imageSize: 96)
        let shapes = try net.shapes()
        #expect(shapes["stage4.out"] == [256, 6, 6])
        #expect(shapes["fc"] == [10])
        let parameters = try Parameters(for: net)
        parameters.initialize(seed: 1)
        #expect(parameters.learnableCount > 1_000_000 && parameters.learnableCount < 1_400_000)
        let executor = try Executor(network: net, parameters: parameters, batchSize: 2, mode: .inference)
        executor.forward([Float](repeating: 0.5, count: 2 * 3 * 96 * 96))
        #expect(executor.output.count == 20 && executor.output.allSatisfy(\.isFinite))
    }
}

@Suite("Predictor")
struct PredictorTests {
    @Test("micro-batched inference equals one whole-batch run, for any split")
    func splitInvariance() throws {
        let net = Architectures.smallCNN(classes: 4, imageSize: 32)
        let parameters = try Parameters(for: net)
        parameters.initialize(seed: 4)
        let input: [Float] = (0..<(7 * 3 * 32 * 32)).map { (i: Int) -> Float in Float((i * 7919) % 255) / 255 }
        let whole = try Executor(network: net, parameters: parameters, batchSize: 7, mode: .inference)
        whole.forward(input)
        let expected = Array(whole.output)
        for micro in [1, 2, 3, 7] {
            let out = try Predictor(network: net, parameters: parameters, microBatch: micro).predict(input, count: 7)
            #expect(zip(out, expected).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }, "micro-batch \(micro)")
        }
        #expect(try Predictor(network: net, parameters: parameters).microBatch >= 1)
    }
}

@Suite("Dropout")
struct DropoutTests {
    @Test("training drops about the rate, scales the rest by 1/(1-rate), and back-propagates through the same mask; inference is the identity")
    func dropout() throws {
        let net = Network(layers: [Layer("x", .features(count: 1000), inputs: []), Layer("d", .dropout(rate: 0.3), inputs: ["x"])])
        let parameters = try Parameters(for: net)
        let input = (0..<2000).map { Float($0 % 97) / 10 + 1 }
        let training = try Executor(network: net, parameters: parameters, batchSize: 2, mode: .training, inputGradient: true, seed: 5)
        training.forward(input)
        let output = Array(training.output)
        let kept = zip(output, input).filter { $0.0 != 0 }
        #expect(abs(Double(2000 - kept.count) / 2000 - 0.3) < 0.03)
        #expect(kept.allSatisfy { abs($0.0 - $0.1 / 0.7) < 1e-4 })
        training.backward([Float](repeating: 1, count: 2000))
        let gradient = Array(training.inputGradient)
        #expect(zip(gradient, output).allSatisfy { ($0.0 == 0) == ($0.1 == 0) && ($0.0 == 0 || abs($0.0 - 1 / 0.7) < 1e-5) })
        training.forward(input)
        #expect(Array(training.output) != output, "a new mask each pass")
        let inference = try Executor(network: net, parameters: parameters, batchSize: 2, mode: .inference)
        inference.forward(input)
        #expect(Array(inference.output) == input)
    }
}
