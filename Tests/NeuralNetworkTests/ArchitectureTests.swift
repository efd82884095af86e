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

@Suite("Deferred input gradients")
struct DeferredInputGradientTests {
    @Test("a weighted sum of passes stopped at the first convolution, taken to the input once, equals the weighted sum of their input gradients")
    func deferred() throws {
        let net = Architectures.smallCNN(classes: 4, imageSize: 32)
        let parameters = try Parameters(for: net)
        parameters.initialize(seed: 9)
        let executor = try Executor(network: net, parameters: parameters, batchSize: 3, mode: .inference, inputGradient: true)
        #expect(executor.defersInputGradient)
        let size = 3 * 3 * 32 * 32
        let inputs: [[Float]] = (0..<4).map { k in (0..<size).map { Float(($0 * 7919 + k * 104_729) % 255) / 255 - 0.4 } }
        let weights: [Float] = [0.5, -1.25, 2, 0.75]
        var upstream = [Float](repeating: 0, count: 3 * 4)
        for s in 0..<3 { upstream[s * 4 + (s + 1) % 4] = 1 }
        var expected = [Double](repeating: 0, count: size)
        var seeds = [Float](repeating: 0, count: executor.inputGradientSeed.count)
        for (input, w) in zip(inputs, weights) {
            executor.forward(input)
            executor.backward(upstream)
            for i in 0..<size { expected[i] += Double(w) * Double(executor.inputGradient[i]) }
            executor.forward(input)
            upstream.withUnsafeBufferPointer { executor.backward($0, deferringInputGradient: true) }
            for i in seeds.indices { seeds[i] += w * executor.inputGradientSeed[i] }
        }
        let deferred = seeds.withUnsafeBufferPointer { Array(executor.inputGradient(fromSeed: $0)) }
        let scale = expected.map(abs).max()!
        #expect(scale > 0)
        let worst = zip(deferred, expected).map { abs(Double($0) - $1) }.max()!
        #expect(worst <= 1e-5 * scale, "largest difference \(worst) of \(scale)")
        // a deferred pass leaves the input gradient alone; an ordinary one after it is whole again
        executor.forward(inputs[0])
        executor.backward(upstream)
        let whole = Array(executor.inputGradient)
        executor.forward(inputs[1])
        upstream.withUnsafeBufferPointer { executor.backward($0, deferringInputGradient: true) }
        #expect(Array(executor.inputGradient) == whole)
        executor.forward(inputs[0])
        executor.backward(upstream)
        #expect(Array(executor.inputGradient) == whole)
    }

    @Test("no deferral where the input feeds more than the first convolution, or in training")
    func notDeferred() throws {
        let net = Network(layers: [
            Layer("x", .input(channels: 3, height: 8, width: 8), inputs: []),
            Layer("a", .conv2d(filters: 4, kernel: [3, 3], stride: [1, 1], padding: .symmetric(1), groups: 1, bias: true), inputs: ["x"]),
            Layer("b", .conv2d(filters: 4, kernel: [1, 1], stride: [1, 1], padding: .valid, groups: 1, bias: true), inputs: ["x"]),
            Layer("sum", .add, inputs: ["a", "b"]),
            Layer("gap", .globalAvgPool, inputs: ["sum"]),
            Layer("fc", .dense(units: 2, bias: true), inputs: ["gap"]),
        ])
        let parameters = try Parameters(for: net)
        parameters.initialize(seed: 3)
        #expect(!(try Executor(network: net, parameters: parameters, batchSize: 2, mode: .inference, inputGradient: true)).defersInputGradient)
        let cnn = Architectures.smallCNN(classes: 4, imageSize: 32), cnnParameters = try Parameters(for: cnn)
        #expect(!(try Executor(network: cnn, parameters: cnnParameters, batchSize: 2, mode: .training, inputGradient: true)).defersInputGradient)
        #expect(!(try Executor(network: cnn, parameters: cnnParameters, batchSize: 2, mode: .inference)).defersInputGradient)
    }
}
