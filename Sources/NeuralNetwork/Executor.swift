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

    private var nodes: [String: Node] = [:]
    private var order: [Node] = []
    private var forwardActions: [() -> Void] = []
    private var backwardBlocks: [[() -> Void]] = []
    private var weightSyncs: [() -> Void] = []
    private var afterForward: [() -> Void] = []
    private var consumers: [String: [String]] = [:]
    private var diffWriters: [String: Int] = [:]
    private let inputNode: Node
    private let outputNode: Node
    private var outputPlain: Memory?
    private var outputReorder: Step?
    private var outputGradientReorder: Step?
    private var inputGradientPlain: Memory?
    private var inputGradientReorder: Step?
    private var aliases: [String: String] = [:]
    private let context = ExecutionContext()

    private func makeStep(_ primitive: Primitive, _ arguments: [(Int32, Memory)]) -> Step {
        Step(primitive, arguments, context: context)
    }
    /// Whether any backward pass is compiled (training, or input gradients in inference).
    private var backwardNeeded = false
    /// Forward primitives feeding a backward pass must be created for training.
    private var forwardProp: dnnl_prop_kind_t { backwardNeeded ? dnnl_forward_training : dnnl_forward_inference }

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
        inputGradientReorder?.run()
    }

    public func backward(_ outputGradient: [Float]) {
        outputGradient.withUnsafeBufferPointer { backward($0) }
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
    public private(set) var implementations: [(layer: String, implementation: String)] = []

    // MARK: - Compilation

    private func resolve(_ node: Node) -> Node {
        var name = node.layer.name
        while let next = aliases[name] { name = next }
        return nodes[name]!
    }

    private func input(_ node: Node, _ index: Int = 0) -> Node { resolve(nodes[node.layer.inputs[index]]!) }

    private func singleConsumer(of name: String) -> Layer? {
        guard let c = consumers[name], c.count == 1 else { return nil }
        return nodes[c[0]]!.layer
    }

    /// The memory a backward primitive should write `input`'s gradient into, and an action that
    /// completes the delivery: the last consumer in forward order writes first (directly); earlier
    /// consumers write into a temporary that is added on.
    private func gradientTarget(for input: Node, from consumer: Node) -> (Memory, (() -> Void)?) {
        let target = resolve(input)
        guard let diff = target.diff else { preconditionFailure("no gradient buffer for \(target.layer.name)") }
        let writers = diffWriters[target.layer.name, default: 0]
        diffWriters[target.layer.name] = writers + 1
        // Backward runs blocks in reverse, so the first block compiled for this input runs last.
        let allWriters = gradientWriterCount(target)
        if writers == allWriters - 1 { return (diff, nil) }
        let temporary = Memory(diff.desc)
        return (temporary, {
            let t = temporary.floats, d = diff.floats
            for i in 0..<d.count { d[i] += t[i] }
        })
    }

    /// How many backward blocks deliver a gradient to `node` (its consumers that need one, after
    /// aliasing: fused layers deliver through the layer they fused into).
    private func gradientWriterCount(_ node: Node) -> Int {
        var count = 0
        for other in order where aliases[other.layer.name] == nil {
            for name in other.layer.inputs where resolve(nodes[name]!) === node { count += 1 }
        }
        return count
    }

    private func makeDiff(_ node: Node) {
        if node.requiresGrad && node.diff == nil { node.diff = Memory(node.out.desc) }
    }

    private func record(_ primitive: Primitive, _ layer: String) {
        implementations.append((layer, primitive.implementation))
    }

    private func compile(_ node: Node, backward: Bool) throws(NetworkError) {
        let layer = node.layer
        if aliases[layer.name] != nil { return }
        var block: [() -> Void] = []
        defer { if !block.isEmpty { backwardBlocks.append(block) } }
        let training = mode == .training
        let learn = training && layer.trainable
        switch layer.operation {
        case .input:
            node.out = Memory(DNNL.plain(node.dims))
            if node.requiresGrad { node.diff = Memory(node.out.desc) }
        case .features:
            node.out = Memory(DNNL.plain(node.dims))
            if node.requiresGrad { node.diff = Memory(node.out.desc) }
        case .conv2d(_, let kernel, let stride, let padding, let groups, let hasBias):
            try compileConvolution(node, kernel: kernel, stride: stride, padding: padding, groups: groups,
                                   hasBias: hasBias, learn: learn, block: &block)
        case .batchNorm(let epsilon, let momentum):
            try compileBatchNorm(node, epsilon: epsilon, momentum: momentum, batchStatistics: learn, block: &block)
        case .relu, .relu6:
            try compileActivation(node, block: &block)
        case .maxPool(let kernel, let stride, let padding):
            try compilePooling(node, algorithm: dnnl_pooling_max, kernel: kernel, stride: stride, padding: padding, block: &block)
        case .avgPool(let kernel, let stride, let padding, let includePad):
            try compilePooling(node, algorithm: includePad ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding,
                               kernel: kernel, stride: stride, padding: padding, block: &block)
        case .globalAvgPool:
            try compileGlobalPool(node, block: &block)
        case .dense(_, let hasBias):
            try compileDense(node, hasBias: hasBias, learn: learn, block: &block)
        case .dropout(let rate):
            compileDropout(node, rate: rate, active: training, block: &block)
        case .add:
            try compileAdd(node, block: &block)
        case .flatten:
            try compileFlatten(node, block: &block)
        case .zeroPad:
            throw .invalidNetwork("zero padding '\(layer.name)' must feed a convolution directly")
        }
    }

    // MARK: Convolution

    private func compileConvolution(_ node: Node, kernel: [Int], stride: [Int], padding: Padding, groups: Int,
                                    hasBias: Bool, learn: Bool, block: inout [() -> Void]) throws(NetworkError) {
        let layer = node.layer
        let source = input(node)
        let inDims = source.dims
        let outChannels = node.dims[1]
        let (pt, pb) = padding.amounts(input: inDims[2], kernel: kernel[0], stride: stride[0], axis: 0)
        let (pl, pr) = padding.amounts(input: inDims[3], kernel: kernel[1], stride: stride[1], axis: 1)
        let weightDims = groups == 1
            ? [outChannels, inDims[1], kernel[0], kernel[1]]
            : [groups, outChannels / groups, inDims[1] / groups, kernel[0], kernel[1]]
        let weightPlain = DNNL.desc(weightDims, groups == 1 ? dnnl_oihw : dnnl_goihw)
        let strides = stride.map(Int64.init), padL = [Int64(pt), Int64(pl)], padR = [Int64(pb), Int64(pr)]

        // In inference, absorb a following batch norm and activation.
        var foldedNorm: (name: String, epsilon: Float)?
        var postOp: Operation?
        var last = layer.name
        if mode == .inference {
            if let next = singleConsumer(of: last), case .batchNorm(let eps, _) = next.operation {
                foldedNorm = (next.name, eps)
                aliases[next.name] = layer.name
                last = next.name
            }
            // Activations become post-ops only when nothing is differentiated: a backward pass through
            // a fused activation would skip its mask.
            if !backwardNeeded, let next = singleConsumer(of: last), next.operation == .relu || next.operation == .relu6 {
                postOp = next.operation
                aliases[next.name] = layer.name
            }
        }
        let withBias = hasBias || foldedNorm != nil
        var srcMD = source.out.desc
        var weightsAny = DNNL.any(weightDims)
        var biasMD = DNNL.plain([outChannels])
        var dstAny = DNNL.any(node.dims)
        var desc = dnnl_convolution_desc_t()
        let prop = forwardProp
        try DNNL.call("describe convolution '\(layer.name)'", optionalPointer(withBias, &biasMD) { bias in
            dnnl_convolution_forward_desc_init(&desc, prop, dnnl_convolution_direct, &srcMD, &weightsAny, bias, &dstAny, strides, padL, padR)
        })
        var postOps: dnnl_post_ops_t?
        if let postOp {
            dnnl_post_ops_create(&postOps)
            if postOp == .relu {
                dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_relu, 0, 0)
            } else {
                dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_clip_v2, 0, 6)
            }
        }
        defer { if let postOps { dnnl_post_ops_destroy(postOps) } }
        var forward = try Primitive("convolution '\(layer.name)'", opDesc: &desc, postOps: postOps)
        // Source layout: the input's own, unless that leaves oneDNN only its reference kernel (seen for
        // a depthwise convolution after a blocked stem: 25 ms instead of 0.3 ms at 112x112); then let
        // oneDNN choose and reorder the input into it.
        var convolutionSource: Memory = source.out
        if forward.implementation.hasPrefix("ref") {
            var srcAny = DNNL.any(inDims), weightsAny2 = DNNL.any(weightDims), dstAny2 = DNNL.any(node.dims)
            var retry = dnnl_convolution_desc_t()
            try DNNL.call("describe convolution '\(layer.name)'", optionalPointer(withBias, &biasMD) { bias in
                dnnl_convolution_forward_desc_init(&retry, prop, dnnl_convolution_direct, &srcAny, &weightsAny2, bias, &dstAny2, strides, padL, padR)
            })
            let alternative = try Primitive("convolution '\(layer.name)'", opDesc: &retry, postOps: postOps)
            if !alternative.implementation.hasPrefix("ref") {
                forward = alternative
                let wanted = forward.md(dnnl_query_src_md)
                if !DNNL.equal(wanted, source.out.desc) {
                    convolutionSource = Memory(wanted)
                    let reorder = makeStep(try Primitive(reorder: source.out.desc, to: wanted, name: "input of '\(layer.name)'"),
                                           [(DNNL_ARG_FROM, source.out), (DNNL_ARG_TO, convolutionSource)])
                    forwardActions.append(reorder.run)
                }
            }
        }
        record(forward, layer.name)
        node.out = Memory(forward.md(dnnl_query_dst_md))
        let weights = Memory(forward.md(dnnl_query_weights_md))
        let bias = Memory(DNNL.plain([outChannels]))
        let weightBuffer = parameters.buffer("\(layer.name).weight")!
        let biasBuffer = hasBias ? parameters.buffer("\(layer.name).bias")! : nil

        // Weights: PyTorch layout -> (folded) -> the primitive's layout.
        let staging = Memory(weightPlain)
        let toPrimitive = try Primitive(reorder: weightPlain, to: weights.desc, name: "weights of '\(layer.name)'")
        let weightReorder = makeStep(toPrimitive, [(DNNL_ARG_FROM, staging), (DNNL_ARG_TO, weights)])
        let perOutput = weightBuffer.count / outChannels
        let params = parameters
        weightSyncs.append {
            let w = staging.floats, b = bias.floats
            let source = weightBuffer.values
            if let (normName, eps) = foldedNorm {
                let gamma = params.buffer("\(normName).gamma")!.values, beta = params.buffer("\(normName).beta")!.values
                let mean = params.buffer("\(normName).running_mean")!.values, variance = params.buffer("\(normName).running_var")!.values
                for o in 0..<outChannels {
                    let scale = gamma[o] / (variance[o] + eps).squareRoot()
                    for k in 0..<perOutput { w[o * perOutput + k] = source[o * perOutput + k] * scale }
                    let b0 = biasBuffer?.values[o] ?? 0
                    b[o] = (b0 - mean[o]) * scale + beta[o]
                }
            } else {
                _ = w.update(fromContentsOf: source)
                if let biasBuffer { _ = b.update(fromContentsOf: biasBuffer.values) }
            }
            weightReorder.run()
        }
        var args: [(Int32, Memory)] = [(DNNL_ARG_SRC, convolutionSource), (DNNL_ARG_WEIGHTS, weights), (DNNL_ARG_DST, node.out)]
        if withBias { args.append((DNNL_ARG_BIAS, bias)) }
        let step = makeStep(forward, args)
        forwardActions.append(step.run)

        guard node.requiresGrad else { return }
        makeDiff(node)
        let diffDst = node.diff!
        if learn {
            var srcMD2 = convolutionSource.desc, diffWeightsAny = DNNL.any(weightDims), diffBiasMD = DNNL.plain([outChannels]), diffDstMD = diffDst.desc
            var bwd = dnnl_convolution_desc_t()
            try DNNL.call("describe convolution weight gradients '\(layer.name)'", optionalPointer(hasBias, &diffBiasMD) { bias in
                dnnl_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &srcMD2, &diffWeightsAny, bias, &diffDstMD, strides, padL, padR)
            })
            let primitive = try Primitive("convolution weight gradients '\(layer.name)'", opDesc: &bwd, hint: forward)
            let diffWeights = Memory(primitive.md(dnnl_query_diff_weights_md))
            let gradient = FloatBuffer(shape: weightBuffer.shape)
            gradients.add("\(layer.name).weight", gradient)
            let gradientMemory = Memory(weightPlain, borrowing: UnsafeMutableRawPointer(gradient.pointer))
            let toPlain = makeStep(try Primitive(reorder: diffWeights.desc, to: weightPlain, name: "weight gradients of '\(layer.name)'"),
                               [(DNNL_ARG_FROM, diffWeights), (DNNL_ARG_TO, gradientMemory)])
            var bargs: [(Int32, Memory)] = [(DNNL_ARG_SRC, convolutionSource), (DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_DIFF_WEIGHTS, diffWeights)]
            if hasBias {
                let biasGradient = FloatBuffer(shape: [outChannels])
                gradients.add("\(layer.name).bias", biasGradient)
                bargs.append((DNNL_ARG_DIFF_BIAS, Memory(DNNL.plain([outChannels]), borrowing: UnsafeMutableRawPointer(biasGradient.pointer))))
            }
            let weightStep = makeStep(primitive, bargs)
            block.append(weightStep.run)
            block.append(toPlain.run)
        }
        if source.requiresGrad {
            let (target, finish) = gradientTarget(for: source, from: node)
            var diffSrcMD = target.desc, weightsAnyMD = DNNL.any(weightDims), diffDstMD = diffDst.desc
            var bwd = dnnl_convolution_desc_t()
            try DNNL.call("describe convolution input gradients '\(layer.name)'", dnnl_convolution_backward_data_desc_init(
                &bwd, dnnl_convolution_direct, &diffSrcMD, &weightsAnyMD, &diffDstMD, strides, padL, padR))
            var primitive = try Primitive("convolution input gradients '\(layer.name)'", opDesc: &bwd, hint: forward)
            // As in the forward pass: a gradient layout that leaves only the reference kernel (the
            // first convolution writing the plain image gradient: 1.8 s instead of milliseconds at
            // 224x224) is replaced by oneDNN's choice and a reorder.
            var gradientTarget = target
            var reorderIntoTarget: Step?
            if primitive.implementation.hasPrefix("ref") {
                var diffSrcAny = DNNL.any(inDims), weightsAny3 = DNNL.any(weightDims), diffDstMD2 = diffDst.desc
                var retry = dnnl_convolution_desc_t()
                try DNNL.call("describe convolution input gradients '\(layer.name)'", dnnl_convolution_backward_data_desc_init(
                    &retry, dnnl_convolution_direct, &diffSrcAny, &weightsAny3, &diffDstMD2, strides, padL, padR))
                let alternative = try Primitive("convolution input gradients '\(layer.name)'", opDesc: &retry, hint: forward)
                if !alternative.implementation.hasPrefix("ref") {
                    primitive = alternative
                    let chosen = primitive.md(dnnl_query_diff_src_md)
                    if !DNNL.equal(chosen, target.desc) {
                        gradientTarget = Memory(chosen)
                        reorderIntoTarget = makeStep(try Primitive(reorder: chosen, to: target.desc, name: "input gradients of '\(layer.name)'"),
                                                     [(DNNL_ARG_FROM, gradientTarget), (DNNL_ARG_TO, target)])
                    }
                }
            }
            // The backward kernel may want the weights in another blocked layout than the forward one.
            var backwardWeights = weights
            let wanted = primitive.md(dnnl_query_weights_md)
            if !DNNL.equal(wanted, weights.desc) {
                backwardWeights = Memory(wanted)
                let reorder = makeStep(try Primitive(reorder: weightPlain, to: wanted, name: "backward weights of '\(layer.name)'"),
                                   [(DNNL_ARG_FROM, staging), (DNNL_ARG_TO, backwardWeights)])
                weightSyncs.append(reorder.run)
            }
            let step = makeStep(primitive, [(DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_WEIGHTS, backwardWeights), (DNNL_ARG_DIFF_SRC, gradientTarget)])
            block.append(step.run)
            if let reorderIntoTarget { block.append(reorderIntoTarget.run) }
            if let finish { block.append(finish) }
        }
    }

    // MARK: Batch norm

    private func compileBatchNorm(_ node: Node, epsilon: Float, momentum: Float, batchStatistics: Bool,
                                  block: inout [() -> Void]) throws(NetworkError) {
        let layer = node.layer
        let source = input(node)
        let channels = node.dims[1]
        var flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue
        if !batchStatistics { flags |= dnnl_use_global_stats.rawValue }
        var dataMD = source.out.desc
        var desc = dnnl_batch_normalization_desc_t()
        let prop = forwardProp
        try DNNL.call("describe batch norm '\(layer.name)'", dnnl_batch_normalization_forward_desc_init(&desc, prop, &dataMD, epsilon, flags))
        let forward = try Primitive("batch norm '\(layer.name)'", opDesc: &desc)
        record(forward, layer.name)
        node.out = Memory(forward.md(dnnl_query_dst_md))
        let vector = DNNL.plain([channels])
        func borrow(_ suffix: String) -> Memory {
            Memory(vector, borrowing: UnsafeMutableRawPointer(parameters.buffer("\(layer.name).\(suffix)")!.pointer))
        }
        let scale = borrow("gamma"), shift = borrow("beta")
        let mean: Memory, variance: Memory
        if batchStatistics {
            mean = Memory(vector)
            variance = Memory(vector)
            let runningMean = parameters.buffer("\(layer.name).running_mean")!.values
            let runningVar = parameters.buffer("\(layer.name).running_var")!.values
            let n = Float(node.dims.reduce(1, *) / channels)
            let unbias = n > 1 ? n / (n - 1) : 1
            afterForward.append {
                let m = mean.floats, v = variance.floats
                for c in 0..<channels {
                    runningMean[c] = (1 - momentum) * runningMean[c] + momentum * m[c]
                    runningVar[c] = (1 - momentum) * runningVar[c] + momentum * v[c] * unbias
                }
            }
        } else {
            mean = borrow("running_mean")
            variance = borrow("running_var")
        }
        let step = makeStep(forward, [(DNNL_ARG_SRC, source.out), (DNNL_ARG_DST, node.out), (DNNL_ARG_SCALE, scale),
                                  (DNNL_ARG_SHIFT, shift), (DNNL_ARG_MEAN, mean), (DNNL_ARG_VARIANCE, variance)])
        forwardActions.append(step.run)

        guard node.requiresGrad else { return }
        makeDiff(node)
        let learn = batchStatistics
        guard learn || source.requiresGrad else { return }
        var diffMD = node.diff!.desc, srcMD = source.out.desc
        var bwd = dnnl_batch_normalization_desc_t()
        try DNNL.call("describe batch norm gradients '\(layer.name)'", dnnl_batch_normalization_backward_desc_init(
            &bwd, dnnl_backward, &diffMD, &srcMD, epsilon, flags))
        let primitive = try Primitive("batch norm gradients '\(layer.name)'", opDesc: &bwd, hint: forward)
        var args: [(Int32, Memory)] = [(DNNL_ARG_SRC, source.out), (DNNL_ARG_MEAN, mean), (DNNL_ARG_VARIANCE, variance),
                                       (DNNL_ARG_DIFF_DST, node.diff!), (DNNL_ARG_SCALE, scale), (DNNL_ARG_SHIFT, shift)]
        var finish: (() -> Void)?
        if source.requiresGrad {
            let (target, done) = gradientTarget(for: source, from: node)
            args.append((DNNL_ARG_DIFF_SRC, target))
            finish = done
        } else {
            args.append((DNNL_ARG_DIFF_SRC, Memory(source.out.desc)))
        }
        // oneDNN 2.6 has no backward_data batch norm with scale and shift, so a frozen layer also runs
        // the full backward and its parameter gradients are discarded.
        if learn {
            let g = FloatBuffer(shape: [channels]), b = FloatBuffer(shape: [channels])
            gradients.add("\(layer.name).gamma", g)
            gradients.add("\(layer.name).beta", b)
            args.append((DNNL_ARG_DIFF_SCALE, Memory(vector, borrowing: UnsafeMutableRawPointer(g.pointer))))
            args.append((DNNL_ARG_DIFF_SHIFT, Memory(vector, borrowing: UnsafeMutableRawPointer(b.pointer))))
        } else {
            // Discarded, but the memories must own their buffers: they are written on every pass.
            args.append((DNNL_ARG_DIFF_SCALE, Memory(vector)))
            args.append((DNNL_ARG_DIFF_SHIFT, Memory(vector)))
        }
        let step2 = makeStep(primitive, args)
        block.append(step2.run)
        if let finish { block.append(finish) }
    }

    // MARK: Activations

    private func compileActivation(_ node: Node, block: inout [() -> Void]) throws(NetworkError) {
        let layer = node.layer
        let source = input(node)
        let algorithm = layer.operation == .relu ? dnnl_eltwise_relu_use_dst_for_bwd : dnnl_eltwise_clip_v2_use_dst_for_bwd
        let beta: Float = layer.operation == .relu ? 0 : 6
        var md = source.out.desc
        var desc = dnnl_eltwise_desc_t()
        try DNNL.call("describe activation '\(layer.name)'", dnnl_eltwise_forward_desc_init(
            &desc, forwardProp, algorithm, &md, 0, beta))
        let forward = try Primitive("activation '\(layer.name)'", opDesc: &desc)
        node.out = Memory(source.out.desc)
        let step = makeStep(forward, [(DNNL_ARG_SRC, source.out), (DNNL_ARG_DST, node.out)])
        forwardActions.append(step.run)
        guard node.requiresGrad else { return }
        makeDiff(node)
        guard source.requiresGrad else { return }
        let (target, finish) = gradientTarget(for: source, from: node)
        var diffMD = node.diff!.desc, dataMD = node.out.desc
        var bwd = dnnl_eltwise_desc_t()
        try DNNL.call("describe activation gradients '\(layer.name)'", dnnl_eltwise_backward_desc_init(&bwd, algorithm, &diffMD, &dataMD, 0, beta))
        let primitive = try Primitive("activation gradients '\(layer.name)'", opDesc: &bwd, hint: forward)
        let step2 = makeStep(primitive, [(DNNL_ARG_DST, node.out), (DNNL_ARG_DIFF_DST, node.diff!), (DNNL_ARG_DIFF_SRC, target)])
        block.append(step2.run)
        if let finish { block.append(finish) }
    }

    // MARK: Pooling

    private func compilePooling(_ node: Node, algorithm: dnnl_alg_kind_t, kernel: [Int], stride: [Int], padding: Padding,
                                block: inout [() -> Void]) throws(NetworkError) {
        let source = input(node)
        let (pt, pb) = padding.amounts(input: source.dims[2], kernel: kernel[0], stride: stride[0], axis: 0)
        let (pl, pr) = padding.amounts(input: source.dims[3], kernel: kernel[1], stride: stride[1], axis: 1)
        try compilePoolingCore(node, source: source, algorithm: algorithm, kernel: kernel, stride: stride,
                               padL: [pt, pl], padR: [pb, pr], destination: nil, block: &block)
    }

    /// Pooling from `source` into `destination` (a new memory in the source's layout when nil).
    @discardableResult
    private func compilePoolingCore(_ node: Node, source: Node, algorithm: dnnl_alg_kind_t, kernel: [Int], stride: [Int],
                                    padL: [Int], padR: [Int], destination: [Int]?, block: inout [() -> Void]) throws(NetworkError) -> (Memory, Memory?) {
        let layer = node.layer
        let outDims = destination ?? node.dims
        var srcMD = source.out.desc
        var dstAny = DNNL.any(outDims)
        var desc = dnnl_pooling_v2_desc_t()
        let strides = stride.map(Int64.init), kernels = kernel.map(Int64.init), dilation: [Int64] = [0, 0]
        let pl = padL.map(Int64.init), pr = padR.map(Int64.init)
        try DNNL.call("describe pooling '\(layer.name)'", dnnl_pooling_v2_forward_desc_init(
            &desc, forwardProp, algorithm, &srcMD, &dstAny,
            strides, kernels, dilation, pl, pr))
        let forward = try Primitive("pooling '\(layer.name)'", opDesc: &desc)
        let out = Memory(forward.md(dnnl_query_dst_md))
        if destination == nil { node.out = out }
        var args: [(Int32, Memory)] = [(DNNL_ARG_SRC, source.out), (DNNL_ARG_DST, out)]
        var workspace: Memory?
        if backwardNeeded && algorithm == dnnl_pooling_max {
            let md = forward.md(dnnl_query_workspace_md)
            if DNNL.size(md) > 0 {
                workspace = Memory(md)
                args.append((DNNL_ARG_WORKSPACE, workspace!))
            }
        }
        let step = makeStep(forward, args)
        forwardActions.append(step.run)
        guard node.requiresGrad else { return (out, nil) }
        let outDiff: Memory
        if destination == nil {
            makeDiff(node)
            outDiff = node.diff!
        } else {
            outDiff = Memory(out.desc)
        }
        guard source.requiresGrad else { return (out, outDiff) }
        var bwdActions: [() -> Void] = []
        let (target, finish) = gradientTarget(for: source, from: node)
        var diffSrcMD = target.desc, diffDstMD = outDiff.desc
        var bwd = dnnl_pooling_v2_desc_t()
        try DNNL.call("describe pooling gradients '\(layer.name)'", dnnl_pooling_v2_backward_desc_init(
            &bwd, algorithm, &diffSrcMD, &diffDstMD, strides, kernels, dilation, pl, pr))
        let primitive = try Primitive("pooling gradients '\(layer.name)'", opDesc: &bwd, hint: forward)
        var bargs: [(Int32, Memory)] = [(DNNL_ARG_DIFF_DST, outDiff), (DNNL_ARG_DIFF_SRC, target)]
        if let workspace { bargs.append((DNNL_ARG_WORKSPACE, workspace)) }
        let step2 = makeStep(primitive, bargs)
        bwdActions.append(step2.run)
        if let finish { bwdActions.append(finish) }
        block.append(contentsOf: bwdActions)
        return (out, outDiff)
    }

    private func compileGlobalPool(_ node: Node, block: inout [() -> Void]) throws(NetworkError) {
        let source = input(node)
        let (n, c, h, w) = (source.dims[0], source.dims[1], source.dims[2], source.dims[3])
        node.out = Memory(DNNL.plain([n, c]))
        if node.requiresGrad { node.diff = Memory(node.out.desc) }
        // Pool to N x C x 1 x 1 in the source's layout, then reorder into the plain N x C output.
        var inner: [() -> Void] = []
        let (pooled, pooledDiff) = try compilePoolingCore(
            node, source: source, algorithm: dnnl_pooling_avg_exclude_padding, kernel: [h, w], stride: [1, 1],
            padL: [0, 0], padR: [0, 0], destination: [n, c, 1, 1], block: &inner)
        let view = Memory(DNNL.plain([n, c, 1, 1]), borrowing: node.out.pointer)
        let toPlain = makeStep(try Primitive(reorder: pooled.desc, to: view.desc), [(DNNL_ARG_FROM, pooled), (DNNL_ARG_TO, view)])
        forwardActions.append(toPlain.run)
        if let pooledDiff, let diff = node.diff {
            let diffView = Memory(DNNL.plain([n, c, 1, 1]), borrowing: diff.pointer)
            let back = makeStep(try Primitive(reorder: diffView.desc, to: pooledDiff.desc), [(DNNL_ARG_FROM, diffView), (DNNL_ARG_TO, pooledDiff)])
            block.append(back.run)
        }
        block.append(contentsOf: inner)
    }

    // MARK: Dense

    private func compileDense(_ node: Node, hasBias: Bool, learn: Bool, block: inout [() -> Void]) throws(NetworkError) {
        let layer = node.layer
        let source = input(node)
        let (n, inputs, outputs) = (node.dims[0], source.dims[1], node.dims[1])
        var srcMD = source.out.desc, weightsMD = DNNL.plain([outputs, inputs]), biasMD = DNNL.plain([outputs]), dstMD = DNNL.plain([n, outputs])
        var desc = dnnl_inner_product_desc_t()
        let prop = forwardProp
        try DNNL.call("describe dense '\(layer.name)'", optionalPointer(hasBias, &biasMD) { bias in
            dnnl_inner_product_forward_desc_init(&desc, prop, &srcMD, &weightsMD, bias, &dstMD)
        })
        let forward = try Primitive("dense '\(layer.name)'", opDesc: &desc)
        record(forward, layer.name)
        node.out = Memory(dstMD)
        let weights = Memory(weightsMD, borrowing: UnsafeMutableRawPointer(parameters.buffer("\(layer.name).weight")!.pointer))
        var args: [(Int32, Memory)] = [(DNNL_ARG_SRC, source.out), (DNNL_ARG_WEIGHTS, weights), (DNNL_ARG_DST, node.out)]
        if hasBias {
            args.append((DNNL_ARG_BIAS, Memory(biasMD, borrowing: UnsafeMutableRawPointer(parameters.buffer("\(layer.name).bias")!.pointer))))
        }
        let step = makeStep(forward, args)
        forwardActions.append(step.run)
        guard node.requiresGrad else { return }
        makeDiff(node)
        if learn {
            var s = source.out.desc, dw = weightsMD, db = biasMD, dd = node.diff!.desc
            var bwd = dnnl_inner_product_desc_t()
            try DNNL.call("describe dense weight gradients '\(layer.name)'", optionalPointer(hasBias, &db) { bias in
                dnnl_inner_product_backward_weights_desc_init(&bwd, &s, &dw, bias, &dd)
            })
            let primitive = try Primitive("dense weight gradients '\(layer.name)'", opDesc: &bwd, hint: forward)
            let g = FloatBuffer(shape: [outputs, inputs])
            gradients.add("\(layer.name).weight", g)
            var bargs: [(Int32, Memory)] = [(DNNL_ARG_SRC, source.out), (DNNL_ARG_DIFF_DST, node.diff!),
                                            (DNNL_ARG_DIFF_WEIGHTS, Memory(weightsMD, borrowing: UnsafeMutableRawPointer(g.pointer)))]
            if hasBias {
                let gb = FloatBuffer(shape: [outputs])
                gradients.add("\(layer.name).bias", gb)
                bargs.append((DNNL_ARG_DIFF_BIAS, Memory(biasMD, borrowing: UnsafeMutableRawPointer(gb.pointer))))
            }
            let step2 = makeStep(primitive, bargs)
            block.append(step2.run)
        }
        if source.requiresGrad {
            let (target, finish) = gradientTarget(for: source, from: node)
            var ds = target.desc, w = weightsMD, dd = node.diff!.desc
            var bwd = dnnl_inner_product_desc_t()
            try DNNL.call("describe dense input gradients '\(layer.name)'", dnnl_inner_product_backward_data_desc_init(&bwd, &ds, &w, &dd))
            let primitive = try Primitive("dense input gradients '\(layer.name)'", opDesc: &bwd, hint: forward)
            let step2 = makeStep(primitive, [(DNNL_ARG_DIFF_DST, node.diff!), (DNNL_ARG_WEIGHTS, weights), (DNNL_ARG_DIFF_SRC, target)])
            block.append(step2.run)
            if let finish { block.append(finish) }
        }
    }

    // MARK: Dropout, add, flatten

    private func compileDropout(_ node: Node, rate: Float, active: Bool, block: inout [() -> Void]) {
        precondition(rate >= 0 && rate < 1, "dropout rate must be in [0, 1), got \(rate) in '\(node.layer.name)'")
        let source = input(node)
        guard active, rate > 0 else {
            aliases[node.layer.name] = source.layer.name
            return
        }
        node.out = Memory(source.out.desc)
        let mask = Memory(source.out.desc)
        let keep = 1 - rate
        let scale = 1 / keep
        forwardActions.append { [unowned self] in
            let m = mask.floats, s = source.out.floats, o = node.out.floats
            for i in 0..<m.count {
                m[i] = self.generator.nextUnitFloat() < keep ? scale : 0
                o[i] = s[i] * m[i]
            }
        }
        guard node.requiresGrad else { return }
        makeDiff(node)
        guard source.requiresGrad else { return }
        let (target, finish) = gradientTarget(for: source, from: node)
        block.append {
            let m = mask.floats, d = node.diff!.floats, t = target.floats
            for i in 0..<m.count { t[i] = d[i] * m[i] }
        }
        if let finish { block.append(finish) }
    }

    private func compileAdd(_ node: Node, block: inout [() -> Void]) throws(NetworkError) {
        let layer = node.layer
        let a = input(node, 0), b = input(node, 1)
        var aMD = a.out.desc, bMD = b.out.desc, dstMD = a.out.desc
        var desc = dnnl_binary_desc_t()
        try DNNL.call("describe add '\(layer.name)'", dnnl_binary_desc_init(&desc, dnnl_binary_add, &aMD, &bMD, &dstMD))
        let forward = try Primitive("add '\(layer.name)'", opDesc: &desc)
        node.out = Memory(dstMD)
        let step = makeStep(forward, [(DNNL_ARG_SRC_0, a.out), (DNNL_ARG_SRC_1, b.out), (DNNL_ARG_DST, node.out)])
        forwardActions.append(step.run)
        guard node.requiresGrad else { return }
        makeDiff(node)
        for source in [a, b] where source.requiresGrad {
            let (target, finish) = gradientTarget(for: source, from: node)
            if DNNL.equal(target.desc, node.diff!.desc) {
                let diff = node.diff!
                block.append { memcpy(target.pointer, diff.pointer, min(target.bytes, diff.bytes)) }
            } else {
                let r = makeStep(try Primitive(reorder: node.diff!.desc, to: target.desc), [(DNNL_ARG_FROM, node.diff!), (DNNL_ARG_TO, target)])
                block.append(r.run)
            }
            if let finish { block.append(finish) }
        }
    }

    private func compileFlatten(_ node: Node, block: inout [() -> Void]) throws(NetworkError) {
        let source = input(node)
        node.out = Memory(DNNL.plain(node.dims))
        guard source.dims.count > 2 else {
            let copy = source.out!, out = node.out!
            forwardActions.append { memcpy(out.pointer, copy.pointer, out.bytes) }
            if node.requiresGrad { makeDiff(node) }
            if node.requiresGrad, source.requiresGrad {
                let (target, finish) = gradientTarget(for: source, from: node)
                let diff = node.diff!
                block.append { memcpy(target.pointer, diff.pointer, diff.bytes) }
                if let finish { block.append(finish) }
            }
            return
        }
        let view = Memory(DNNL.plain(source.dims), borrowing: node.out.pointer)
        let step = makeStep(try Primitive(reorder: source.out.desc, to: view.desc), [(DNNL_ARG_FROM, source.out), (DNNL_ARG_TO, view)])
        forwardActions.append(step.run)
        guard node.requiresGrad else { return }
        makeDiff(node)
        guard source.requiresGrad else { return }
        let (target, finish) = gradientTarget(for: source, from: node)
        let diffView = Memory(DNNL.plain(source.dims), borrowing: node.diff!.pointer)
        let back = makeStep(try Primitive(reorder: diffView.desc, to: target.desc), [(DNNL_ARG_FROM, diffView), (DNNL_ARG_TO, target)])
        block.append(back.run)
        if let finish { block.append(finish) }
    }

    // MARK: Output and input edges

    private func compileOutput(backward: Bool) throws(NetworkError) {
        let last = resolve(outputNode)
        let plain = DNNL.plain(outputNode.dims)
        if !DNNL.equal(last.out.desc, plain) {
            let memory = Memory(plain)
            outputPlain = memory
            outputReorder = makeStep(try Primitive(reorder: last.out.desc, to: plain), [(DNNL_ARG_FROM, last.out), (DNNL_ARG_TO, memory)])
            if backward, let diff = last.diff {
                let staging = Memory(plain)
                outputGradientReorder = makeStep(try Primitive(reorder: plain, to: diff.desc), [(DNNL_ARG_FROM, staging), (DNNL_ARG_TO, diff)])
            }
        }
        if computesInputGradient, let diff = inputNode.diff, !DNNL.equal(diff.desc, DNNL.plain(inputNode.dims)) {
            let memory = Memory(DNNL.plain(inputNode.dims))
            inputGradientPlain = memory
            inputGradientReorder = makeStep(try Primitive(reorder: diff.desc, to: memory.desc), [(DNNL_ARG_FROM, diff), (DNNL_ARG_TO, memory)])
        }
    }
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
