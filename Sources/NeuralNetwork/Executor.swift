import CDNNL
public import Randomness
public import Tensor
#if canImport(Glibc)
import Glibc
#endif

/// Inference or training.
public enum ExecutionMode: Sendable {
    /// Batch norm uses running statistics and is folded into the preceding convolution; ReLU and
    /// ReLU6 become post-ops of the convolution; dropout is the identity.
    case inference
    /// Batch norm uses batch statistics (and updates running ones) in trainable layers; activations
    /// needed by the backward pass are kept.
    case training
}

/// A network compiled for one batch size and one mode: oneDNN primitives created once, every
/// activation and gradient buffer allocated once and reused by every batch.
///
/// Not thread-safe: one executor per thread (oneDNN itself uses both cores).
public final class Executor {
    public let network: Network
    public let batchSize: Int
    public let mode: ExecutionMode
    public let parameters: Parameters
    /// Gradients of the trainable parameters, by the same names (training mode only).
    public let gradients: Parameters
    /// Whether `backward` also computes the gradient with respect to the input.
    public let computesInputGradient: Bool
    /// Seeded source for dropout masks.
    public var generator: SeededGenerator

    final class Node {
        let layer: Layer
        let dims: [Int]
        var out: Memory!
        var diff: Memory?
        var requiresGrad = false
        init(layer: Layer, dims: [Int]) {
            self.layer = layer
            self.dims = dims
        }
    }

    var nodes: [String: Node] = [:]
    var order: [Node] = []
    var forwardActions: [() -> Void] = []
    var backwardBlocks: [[() -> Void]] = []
    var weightSyncs: [() -> Void] = []
    var afterForward: [() -> Void] = []
    var consumers: [String: [String]] = [:]
    var diffWriters: [String: Int] = [:]
    let inputNode: Node
    let outputNode: Node
    var outputPlain: Memory?
    var outputReorder: Step?
    var outputGradientReorder: Step?
    var inputGradientPlain: Memory?
    var inputGradientReorder: Step?
    /// In inference with input gradients, when the input feeds one convolution only: that
    /// convolution's output gradient (after its fused activation's mask), and the steps that take it
    /// to the input gradient (its input-gradient primitive and any reorder), which are linear.
    var seedMemory: Memory?
    var inputGradientTail: [() -> Void] = []
    var aliases: [String: String] = [:]
    let context = ExecutionContext()

    func makeStep(_ primitive: Primitive, _ arguments: [(Int32, Memory)]) -> Step {
        Step(primitive, arguments, context: context)
    }
    /// Whether any backward pass is compiled (training, or input gradients in inference).
    var backwardNeeded = false
    /// Forward primitives feeding a backward pass must be created for training.
    var forwardProp: dnnl_prop_kind_t { backwardNeeded ? dnnl_forward_training : dnnl_forward_inference }

    /// Compiles `network` for `batchSize` examples in `mode`. In training mode, gradients are computed
    /// for the parameters of trainable layers; `inputGradient` also asks for d(output)/d(input).
    public init(network: Network, parameters: Parameters, batchSize: Int, mode: ExecutionMode,
                inputGradient: Bool = false, seed: UInt64 = 0) throws(NetworkError) {
        precondition(batchSize > 0, "batch size must be positive, got \(batchSize)")
        let folded = try network.foldingZeroPadding()
        self.network = folded
        self.batchSize = batchSize
        self.mode = mode
        self.parameters = parameters
        self.gradients = Parameters()
        self.computesInputGradient = inputGradient
        self.generator = SeededGenerator(seed: seed)
        let shapes = try folded.shapes()
        for (name, shape) in try folded.parameterShapes() {
            guard let buffer = parameters.buffer(name), buffer.shape == shape else {
                throw .invalidModel("parameter '\(name)' should have shape \(shape), found \(parameters.buffer(name)?.shape.description ?? "none")")
            }
        }
        for layer in folded.layers {
            let node = Node(layer: layer, dims: [batchSize] + shapes[layer.name]!)
            nodes[layer.name] = node
            order.append(node)
        }
        inputNode = order.first!
        outputNode = order.last!
        consumers = folded.consumers()
        let backward = mode == .training || inputGradient
        backwardNeeded = backward
        if backward {
            inputNode.requiresGrad = inputGradient
            for node in order.dropFirst() {
                let ownParams = mode == .training && node.layer.trainable && Self.hasLearnableParameters(node.layer.operation)
                node.requiresGrad = ownParams || node.layer.inputs.contains { nodes[$0]!.requiresGrad }
            }
        }
        for node in order { try compile(node, backward: backward) }
        try compileOutput(backward: backward)
        syncWeights()
    }

    static func hasLearnableParameters(_ op: Operation) -> Bool {
        switch op {
        case .conv2d, .batchNorm, .dense: true
        default: false
        }
    }

    // MARK: - Running

    /// Runs the forward pass on `input`: batchSize x C x H x W (or batchSize x F) floats, row-major.
    public func forward(_ input: UnsafeBufferPointer<Float>) {
        let target = inputNode.out.floats
        precondition(input.count == inputNode.dims.reduce(1, *),
                     "input has \(input.count) floats, the network takes \(inputNode.dims) = \(inputNode.dims.reduce(1, *))")
        _ = target.update(fromContentsOf: input)
        for action in forwardActions { action() }
        for action in afterForward { action() }
        outputReorder?.run()
    }

    public func forward(_ input: [Float]) {
        input.withUnsafeBufferPointer { forward($0) }
    }

    /// The output of the last forward pass: batchSize x (output shape), row-major.
    public var output: UnsafeBufferPointer<Float> {
        let memory = outputPlain ?? resolve(outputNode).out!
        return UnsafeBufferPointer(start: memory.floats.baseAddress, count: outputNode.dims.reduce(1, *))
    }

    public var outputTensor: Tensor { Tensor(shape: outputNode.dims, data: Array(output)) }

    /// Back-propagates `outputGradient` (same shape as the output) through the last forward pass,
    /// writing the trainable parameters' gradients into `gradients` (overwritten, not accumulated).
    public func backward(_ outputGradient: UnsafeBufferPointer<Float>) {
        runBackwardBlocks(outputGradient)
        finishInputGradient()
    }

    private func runBackwardBlocks(_ outputGradient: UnsafeBufferPointer<Float>) {
        guard let diff = resolve(outputNode).diff else {
            preconditionFailure("backward on an executor with nothing to differentiate (no trainable layer and no input gradient)")
        }
        precondition(outputGradient.count == outputNode.dims.reduce(1, *), "output gradient has \(outputGradient.count) floats, expected \(outputNode.dims)")
        if let outputGradientReorder, let plain = outputGradientReorder.memories.first {
            _ = plain.floats.update(fromContentsOf: outputGradient)
            outputGradientReorder.run()
        } else {
            _ = diff.floats.update(fromContentsOf: outputGradient)
        }
        for block in backwardBlocks.reversed() { for action in block { action() } }
    }

    public func backward(_ outputGradient: [Float]) {
        outputGradient.withUnsafeBufferPointer { backward($0) }
    }

    private func finishInputGradient() {
        for action in inputGradientTail { action() }
        inputGradientReorder?.run()
    }

    /// Whether `backward(_:deferringInputGradient:)` can stop before the input gradient: in inference
    /// with input gradients, when the network's input feeds a single convolution. From that
    /// convolution's output gradient on the input gradient is linear, so a weighted sum of many
    /// passes' input gradients (integrated gradients) is the input gradient of the same sum of their
    /// `inputGradientSeed`s, computed once (`inputGradient(fromSeed:)`).
    public var defersInputGradient: Bool { seedMemory != nil }

    /// The gradient at the first convolution's output left by the last deferred backward pass, in the
    /// executor's own layout: `batchSize` examples one after another, `seedCount / batchSize` floats each.
    public var inputGradientSeed: UnsafeMutableBufferPointer<Float> {
        guard let seed = seedMemory else { preconditionFailure("this executor does not defer its input gradient") }
        return seed.floats
    }

    /// The backward pass without its linear last part when `deferringInputGradient` (see
    /// `defersInputGradient`): `inputGradient` is then not written, `inputGradientSeed` is.
    public func backward(_ outputGradient: UnsafeBufferPointer<Float>, deferringInputGradient: Bool) {
        precondition(!deferringInputGradient || defersInputGradient, "this executor does not defer its input gradient")
        runBackwardBlocks(outputGradient)
        if !deferringInputGradient { finishInputGradient() }
    }

    /// The input gradient (`inputGradient`) of a seed laid out as `inputGradientSeed`, e.g. a weighted
    /// sum of several deferred passes' seeds.
    public func inputGradient(fromSeed seed: UnsafeBufferPointer<Float>) -> UnsafeBufferPointer<Float> {
        let target = inputGradientSeed
        precondition(seed.count == target.count, "a seed of \(seed.count) floats, the executor's has \(target.count)")
        _ = target.update(fromContentsOf: seed)
        finishInputGradient()
        return inputGradient
    }

    /// d(output)/d(input) from the last backward pass, row-major like the input.
    public var inputGradient: UnsafeBufferPointer<Float> {
        precondition(computesInputGradient, "this executor was built without inputGradient: true")
        let memory = inputGradientPlain ?? inputNode.diff!
        return UnsafeBufferPointer(start: memory.floats.baseAddress, count: inputNode.dims.reduce(1, *))
    }

    /// Copies the parameters into the layouts the primitives use (and, in inference, folds batch norm
    /// into convolutions). Call after changing parameters; the optimizers call it for you.
    public func syncWeights() {
        for sync in weightSyncs { sync() }
    }

    /// The oneDNN implementation chosen per layer, for diagnostics.
    public internal(set) var implementations: [(layer: String, implementation: String)] = []

}

extension Network {
    /// The same network with every zero-padding layer absorbed into the convolution it feeds.
    func foldingZeroPadding() throws(NetworkError) -> Network {
        let consumers = self.consumers()
        let shapes = try self.shapes()
        var result: [Layer] = []
        var replaced: [String: (source: String, padding: (Int, Int, Int, Int))] = [:]
        for var layer in layers {
            if case .zeroPad(let t, let b, let l, let r) = layer.operation {
                guard let users = consumers[layer.name], users.count == 1,
                      case .conv2d = self.layer(named: users[0])!.operation else {
                    throw .invalidNetwork("zero padding '\(layer.name)' must feed exactly one convolution")
                }
                replaced[layer.name] = (layer.inputs[0], (t, b, l, r))
                continue
            }
            for (i, name) in layer.inputs.enumerated() {
                guard let (source, pad) = replaced[name] else { continue }
                layer.inputs[i] = source
                if case .conv2d(let f, let k, let s, let padding, let g, let bias) = layer.operation {
                    let padded = shapes[name]!
                    let (pt, pb) = padding.amounts(input: padded[1], kernel: k[0], stride: s[0], axis: 0)
                    let (pl, pr) = padding.amounts(input: padded[2], kernel: k[1], stride: s[1], axis: 1)
                    layer.operation = .conv2d(filters: f, kernel: k, stride: s,
                                              padding: .explicit(top: pad.0 + pt, bottom: pad.1 + pb, left: pad.2 + pl, right: pad.3 + pr),
                                              groups: g, bias: bias)
                }
            }
            result.append(layer)
        }
        return Network(layers: result)
    }
}

/// Calls `body` with a pointer to `value` when `condition` holds, else with nil (C's optional arguments).
func optionalPointer<T, R>(_ condition: Bool, _ value: inout T, _ body: (UnsafePointer<T>?) -> R) -> R {
    if condition { return withUnsafePointer(to: &value) { body($0) } }
    return body(nil)
}

