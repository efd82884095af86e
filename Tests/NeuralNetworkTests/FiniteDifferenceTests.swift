import NeuralNetwork
import Randomness
import Tensor
import Testing

/// Analytic gradients against central finite differences of L = sum(output * upstream), computed in
/// float32. Kinks (ReLU, ReLU6, max pooling) make whole-network differences noisy in float32 (PyTorch's
/// gradcheck works in float64 for this reason), so smooth layers are checked together in one network
/// and kinked layers alone, on inputs kept away from their kinks. Deterministic: seeded data.
@Suite("Finite differences")
struct FiniteDifferenceTests {
    /// Every smooth layer, including a fan-out (r1 read by dw and sum) and frozen batch norm.
    static func smooth(batchNormTrainable: Bool) -> Network {
        Network(layers: [
            Layer("x", .input(channels: 3, height: 8, width: 8), inputs: []),
            Layer("c1", .conv2d(filters: 6, kernel: [3, 3], stride: [1, 1], padding: .same, groups: 1, bias: true), inputs: ["x"]),
            Layer("bn1", .batchNorm(epsilon: 1e-3, momentum: 0.1), inputs: ["c1"], trainable: batchNormTrainable),
            Layer("dw", .conv2d(filters: 6, kernel: [3, 3], stride: [1, 1], padding: .same, groups: 6, bias: false), inputs: ["bn1"]),
            Layer("sum", .add, inputs: ["dw", "bn1"]),
            Layer("avg", .avgPool(kernel: [2, 2], stride: [2, 2], padding: .valid, countIncludePad: true), inputs: ["sum"]),
            Layer("c2", .conv2d(filters: 4, kernel: [3, 3], stride: [2, 2], padding: .same, groups: 2, bias: true), inputs: ["avg"]),
            Layer("avg2", .avgPool(kernel: [3, 3], stride: [1, 1], padding: .symmetric(1), countIncludePad: false), inputs: ["c2"]),
            Layer("gap", .globalAvgPool, inputs: ["avg2"]),
            Layer("fc", .dense(units: 3, bias: true), inputs: ["gap"]),
        ])
    }

    struct Check {
        let executor: Executor
        let upstream: [Float]

        func loss(_ x: [Float]) -> Double {
            executor.syncWeights()
            executor.forward(x)
            return zip(executor.output, upstream).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }

        static func compare(_ numeric: Double, _ exact: Float, _ what: String) {
            let scale = max(abs(numeric), Double(abs(exact)), 0.05)
            #expect(abs(numeric - Double(exact)) / scale < 1e-2, "\(what): finite difference \(numeric), analytic \(exact)")
        }
    }

    @Test("smooth layers: input and parameter gradients match finite differences", arguments: [true, false])
    func smoothNetwork(batchNormTrainable: Bool) throws {
        let net = Self.smooth(batchNormTrainable: batchNormTrainable)
        let parameters = try Parameters(for: net)
        parameters.initialize(seed: 3)
        var g = SeededGenerator(seed: 5)
        for name in parameters.names where name.hasSuffix(".bias") || name.hasSuffix(".beta") {
            let t = parameters[name]!
            try parameters.set(name, Tensor(shape: t.shape, data: t.data.map { _ in Float(g.nextGaussian() * 0.2) }))
        }
        let batch = 3
        let input = (0..<(batch * 3 * 64)).map { _ in Float(g.nextGaussian()) }
        let check = Check(executor: try Executor(network: net, parameters: parameters, batchSize: batch, mode: .training, inputGradient: true),
                          upstream: (0..<(batch * 3)).map { _ in Float(g.nextGaussian()) })
        _ = check.loss(input)
        check.executor.backward(check.upstream)
        let inputGradient = Array(check.executor.inputGradient)
        var analytic: [String: Tensor] = [:]
        for name in check.executor.gradients.names { analytic[name] = check.executor.gradients[name]! }
        let step: Float = 1e-2
        for i in stride(from: 7, to: input.count, by: 23) {
            var plus = input, minus = input
            plus[i] += step
            minus[i] -= step
            Check.compare((check.loss(plus) - check.loss(minus)) / Double(2 * step), inputGradient[i], "input[\(i)]")
        }
        for name in analytic.keys.sorted() {
            let original = parameters[name]!
            for i in stride(from: 0, to: original.count, by: max(1, original.count / 6)) {
                var plus = original, minus = original
                plus.data[i] += step
                minus.data[i] -= step
                try parameters.set(name, plus)
                let lp = check.loss(input)
                try parameters.set(name, minus)
                let lm = check.loss(input)
                try parameters.set(name, original)
                Check.compare((lp - lm) / Double(2 * step), analytic[name]!.data[i], "\(name)[\(i)]")
            }
        }
        #expect(analytic.keys.contains("bn1.gamma") == batchNormTrainable)
        #expect(["c1.weight", "c1.bias", "dw.weight", "c2.weight", "fc.weight", "fc.bias"].allSatisfy { analytic.keys.contains($0) })
    }

    @Test("kinked layers: input gradients match finite differences away from the kinks", arguments: [
        Operation.relu, .relu6, .maxPool(kernel: [2, 2], stride: [2, 2], padding: .valid),
        .maxPool(kernel: [3, 3], stride: [2, 2], padding: .symmetric(1)),
    ])
    func kinked(_ operation: Operation) throws {
        let net = Network(layers: [Layer("x", .input(channels: 2, height: 6, width: 6), inputs: []), Layer("k", operation, inputs: ["x"])])
        let parameters = try Parameters(for: net)
        let executor = try Executor(network: net, parameters: parameters, batchSize: 2, mode: .training, inputGradient: true)
        // Distinct values 0.07 apart from -3.035 to 6.975, so on both sides of 0 and of 6 but none within
        // 0.005 of either: a 1e-3 step crosses no kink (ties in max pooling are impossible too).
        var g = SeededGenerator(seed: 9)
        var values = (0..<144).map { Float($0) * 0.07 - 3.035 }
        values.shuffle(using: &g)
        let upstream = (0..<executor.outputTensor.count).map { _ in Float(g.nextGaussian()) }
        let check = Check(executor: executor, upstream: upstream)
        _ = check.loss(values)
        executor.backward(upstream)
        let analytic = Array(executor.inputGradient)
        let step: Float = 1e-3
        for i in 0..<values.count {
            var plus = values, minus = values
            plus[i] += step
            minus[i] -= step
            Check.compare((check.loss(plus) - check.loss(minus)) / Double(2 * step), analytic[i], "input[\(i)]")
        }
    }
}
