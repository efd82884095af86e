public import NeuralNetwork
import SystemFiles

/// # Explainability
///
/// Integrated gradients (Sundararajan, Taly & Yan 2017): the attribution of input value i is
/// (x_i - x'_i) times the average, along the straight path from a baseline x' to the input x, of
/// the target logit's gradient with respect to input i. The attributions add up to
/// F(x) - F(x') (completeness); the difference that quadrature leaves is reported as the delta.

/// Attributions for one input.
public struct Attribution: Sendable {
    /// One value per input value (channels-first, like the network's input).
    public var values: [Float]
    public var target: Int
    public var steps: Int
    public var method: Quadrature
    /// The target logit at the input and at the baseline.
    public var outputAtInput: Double
    public var outputAtBaseline: Double
    /// |sum of attributions - (F(x) - F(x'))|.
    public var delta: Double
    /// delta / |F(x) - F(x')|.
    public var relativeDelta: Double
    public var sum: Double
    /// The weighted sum of the gradients over the rule's points, when kept to refine the attribution
    /// with a nested rule (`ParallelAttribution.Job.keepSum`).
    public var weightedSum: [Double]? = nil
}

/// Computes integrated gradients through a network, with the path steps batched through one
/// inference executor (so memory is bounded by `chunk` inputs, whatever the step count).
public final class IntegratedGradients {
    public let network: Network
    public let parameters: Parameters
    /// Path steps per forward/backward pass.
    public let chunk: Int
    private var executors: [Int: Executor] = [:]
    private let inputSize: Int
    private let classes: Int

    /// `chunk` nil: `defaultChunk`, as many path steps per pass as keep the largest activation within
    /// a core's level-2 cache.
    public init(network: Network, parameters: Parameters, chunk: Int? = nil) throws(NetworkError) {
        self.network = network
        self.parameters = parameters
        let shapes = try network.shapes()
        let largest = shapes.values.map { $0.reduce(1, *) * 4 }.max() ?? 4
        self.chunk = chunk ?? Self.defaultChunk(largestActivation: largest, cache: CPUBudget.level2CachePerCore)
        inputSize = shapes[network.input.name]!.reduce(1, *)
        guard let out = shapes[network.output.name], out.count == 1 else {
            throw .invalidNetwork("integrated gradients need a network ending in class scores, not \(shapes[network.output.name] ?? [])")
        }
        classes = out[0]
    }

    /// Path steps per pass for a network whose largest activation of one input is `largestActivation`
    /// bytes: as many as keep it within `cache` (a core's level-2 cache), from 1 to 32. Each pass runs
    /// on one core beside the other workers' (`ParallelAttribution`), and its layers are memory-bound
    /// (depthwise and 1x1 convolutions, activations' gradients), so a pass whose activations stay in
    /// the cache beats a larger batch. Measured on this machine (AMD EPYC, 1 MiB of L2 per core;
    /// `dropline bench nn`, 50 steps, images/s; and `dropline explain` of 8 photos, the default
    /// explanations, MobileNetV2-0.35 at 224, whose largest activation is 2.4 MB):
    ///
    /// | steps per pass | 1 | 2 | 5 | 8 | 12 | 16 | 32 |
    /// |---|---|---|---|---|---|---|---|
    /// | MobileNetV2, images/s | 7.9 | 7.7 | 7.5 | | | | |
    /// | small CNN at 96, images/s | 11.6 | 11.0 | 10.0 | | | | 4.8 |
    /// | `dropline explain`, s | 2.42, 2.45 | 2.57, 2.51 | 2.77, 2.57 | 2.68, 2.74 | 3.06, 3.08 | 2.99, 2.98 | |
    ///
    /// (The earlier rule, 12 MiB per pass, gave 5 and 10 steps.) One step per pass also needs no
    /// padding of the nested rules' short last passes, and holds a fifth of the activations.
    public static func defaultChunk(largestActivation: Int, cache: Int) -> Int {
        min(max(1, cache / max(1, largestActivation)), 32)
    }

    private func executor(_ size: Int) throws(NetworkError) -> Executor {
        if let e = executors[size] { return e }
        let e = try Executor(network: network, parameters: parameters, batchSize: size, mode: .inference, inputGradient: true)
        executors[size] = e
        return e
    }

    /// The logits of the inputs given one after another, `chunk` at a time (the last pass padded, as
    /// in `accumulate`).
    public func logits(_ inputs: [Float]) throws(NetworkError) -> [Float] {
        let count = inputs.count / inputSize
        let size = chunk
        let e = try executor(size)
        var result: [Float] = []
        var batch = [Float](repeating: 0, count: size * inputSize)
        for start in stride(from: 0, to: count, by: size) {
            let n = min(size, count - start)
            batch.withUnsafeMutableBufferPointer { b in
                inputs.withUnsafeBufferPointer { b.baseAddress!.update(from: $0.baseAddress! + start * inputSize, count: n * inputSize) }
            }
            e.forward(batch)
            result += e.output[0..<(n * classes)]
        }
        return result
    }

    /// Attributions of `target`'s logit for `input` against `baseline` (same size), with `steps`
    /// quadrature points.
    public func attribute(input: [Float], baseline: [Float], target: Int, steps: Int = 50,
                          method: Quadrature = .gaussLegendre) throws(NetworkError) -> Attribution {
        precondition(input.count == inputSize && baseline.count == inputSize, "input and baseline need \(inputSize) values")
        precondition(target >= 0 && target < classes, "target \(target) is outside 0..<\(classes)")
        return try attribute(ParallelAttribution.Job(input: input, baseline: baseline, target: target, steps: steps, method: method))
    }

    /// Adds weight x gradient of the target logit at each path point to `sum`, the points batched
    /// `chunk` at a time through one executor.
    ///
    /// Every pass runs on the one executor of `chunk` inputs; a pass with fewer is padded rather than
    /// run on an executor of its own size. Each executor of MobileNetV2 at 224 with input gradients
    /// holds its activations for the backward pass (about 100 MB at 5 inputs), and the nested rules'
    /// passes end in 1 to 4 points. Measured with `dropline bench pipeline`: peak RSS 1015 MB with an
    /// executor per tail size, 461 MB padded, for 2-3% more path points.
    ///
    /// When the network's input feeds one convolution (MobileNetV2's stem), the passes stop at that
    /// convolution's output gradient, which is summed with the points' weights, per batch slot, and
    /// taken to the input once at the end (`Executor.defersInputGradient`): the input gradient is linear
    /// in it. On MobileNetV2 at 224 the stem's input gradient (3 channels written in a 16-channel
    /// blocked layout) and its reorder to the image's layout were 13% of a pass (`ONEDNN_VERBOSE`, one
    /// thread: 3.0 and 1.2 of 32.7 ms for 5 points).
    func accumulate(_ points: [(alpha: Double, weight: Double)], input: [Float], baseline: [Float], target: Int,
                    into sum: inout [Double]) throws(NetworkError) {
        let size = chunk
        let e = try executor(size)
        let deferred = e.defersInputGradient
        var seeds = [Float](repeating: 0, count: deferred ? e.inputGradientSeed.count : 0)
        let perSlot = seeds.count / size
        // a padded last pass runs its unused slots on the previous pass's inputs, with no gradient
        var batch = [Float](repeating: 0, count: size * inputSize)
        var upstream = [Float](repeating: 0, count: size * classes)
        var start = 0
        while start < points.count {
            let n = min(size, points.count - start)
            for s in 0..<n {
                let alpha = Float(points[start + s].alpha)
                let offset = s * inputSize
                for i in 0..<inputSize { batch[offset + i] = baseline[i] + alpha * (input[i] - baseline[i]) }
            }
            e.forward(batch)
            for s in 0..<size { upstream[s * classes + target] = s < n ? 1 : 0 }
            upstream.withUnsafeBufferPointer { e.backward($0, deferringInputGradient: deferred) }
            if deferred {
                let seed = UnsafeBufferPointer(e.inputGradientSeed)
                seeds.withUnsafeMutableBufferPointer { acc in
                    for s in 0..<n {
                        let w = Float(points[start + s].weight)
                        let a = acc.baseAddress! + s * perSlot, g = seed.baseAddress! + s * perSlot
                        for i in 0..<perSlot { a[i] += w * g[i] }
                    }
                }
            } else {
                let gradient = e.inputGradient
                for s in 0..<n {
                    let w = points[start + s].weight
                    let offset = s * inputSize
                    for i in 0..<inputSize { sum[i] += w * Double(gradient[offset + i]) }
                }
            }
            start += n
        }
        guard deferred, !points.isEmpty else { return }
        let gradient = seeds.withUnsafeBufferPointer { e.inputGradient(fromSeed: $0) }
        for s in 0..<min(size, points.count) {
            let offset = s * inputSize
            for i in 0..<inputSize { sum[i] += Double(gradient[offset + i]) }
        }
    }

    /// Weight x gradient summed over `points`, a part of a rule: attributions of one image can be
    /// computed in parts on several engines and added (`combine`).
    public func partialSum(_ points: ArraySlice<(alpha: Double, weight: Double)>, input: [Float], baseline: [Float],
                           target: Int) throws(NetworkError) -> [Double] {
        var sum = [Double](repeating: 0, count: inputSize)
        try accumulate(Array(points), input: input, baseline: baseline, target: target, into: &sum)
        return sum
    }

    /// The target logit at the input and at the baseline.
    public func ends(input: [Float], baseline: [Float], target: Int) throws(NetworkError) -> (atInput: Double, atBaseline: Double) {
        let ends = try logits(input + baseline)
        return (Double(ends[target]), Double(ends[classes + target]))
    }

    /// The attribution of a job on this engine alone.
    public func attribute(_ job: ParallelAttribution.Job) throws(NetworkError) -> Attribution {
        var sum = [Double](repeating: 0, count: inputSize)
        try accumulate(job.points, input: job.input, baseline: job.baseline, target: job.target, into: &sum)
        if let coarser = job.coarser { return job.attribution([sum], ends: (coarser.outputAtInput, coarser.outputAtBaseline)) }
        return job.attribution([sum], ends: try ends(input: job.input, baseline: job.baseline, target: job.target))
    }

    static func attribution(_ average: [Double], input: [Float], baseline: [Float], ends: (atInput: Double, atBaseline: Double),
                            target: Int, steps: Int, method: Quadrature) -> Attribution {
        var values = [Float](repeating: 0, count: input.count)
        var sum = 0.0
        for i in 0..<input.count {
            let a = Double(input[i] - baseline[i]) * average[i]
            values[i] = Float(a)
            sum += a
        }
        let (atInput, atBaseline) = ends
        let delta = abs(sum - (atInput - atBaseline))
        return Attribution(values: values, target: target, steps: steps, method: method, outputAtInput: atInput,
                           outputAtBaseline: atBaseline, delta: delta, relativeDelta: delta / max(abs(atInput - atBaseline), 1e-12), sum: sum)
    }
}
