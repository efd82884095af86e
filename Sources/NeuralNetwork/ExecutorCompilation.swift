import CDNNL
import Randomness
import Tensor
import Glibc

/// Compilation: the network's layers turned into oneDNN primitives, in order, with their gradient paths.
extension Executor {

    func resolve(_ node: Node) -> Node {
        var name = node.layer.name
        while let next = aliases[name] { name = next }
        return nodes[name]!
    }

    func input(_ node: Node, _ index: Int = 0) -> Node { resolve(nodes[node.layer.inputs[index]]!) }

    func singleConsumer(of name: String) -> Layer? {
        guard let c = consumers[name], c.count == 1 else { return nil }
        return nodes[c[0]]!.layer
    }

    /// The memory a backward primitive should write `input`'s gradient into, and an action that
    /// completes the delivery: the last consumer in forward order writes first (directly); earlier
    /// consumers write into a temporary that is added on.
    func gradientTarget(for input: Node, from consumer: Node) -> (Memory, (() -> Void)?) {
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
    func gradientWriterCount(_ node: Node) -> Int {
        var count = 0
        for other in order where aliases[other.layer.name] == nil {
            for name in other.layer.inputs where resolve(nodes[name]!) === node { count += 1 }
        }
        return count
    }

    func makeDiff(_ node: Node) {
        if node.requiresGrad && node.diff == nil { node.diff = Memory(node.out.desc) }
    }

    func record(_ primitive: Primitive, _ layer: String) {
        implementations.append((layer, primitive.implementation))
    }

    func compile(_ node: Node, backward: Bool) throws(NetworkError) {
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

    // MARK: Output and input edges

    func compileOutput(backward: Bool) throws(NetworkError) {
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
