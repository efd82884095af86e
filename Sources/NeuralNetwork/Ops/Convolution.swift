import CDNNL
import Randomness
import Tensor
import Glibc

/// Convolutions (grouped and depthwise included), forward and backward.
extension Executor {

    func compileConvolution(_ node: Node, kernel: [Int], stride: [Int], padding: Padding, groups: Int,
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
            // A following activation becomes a post-op. With input gradients (integrated gradients),
            // its mask is applied in the backward pass from the fused output, in place, before the
            // convolution's own gradient: one pass over the activation saved forward and one buffer
            // fewer (ReLU6 forward was 9% of a MobileNetV2 pass at 224, `ONEDNN_VERBOSE`).
            if let next = singleConsumer(of: last), next.operation == .relu || next.operation == .relu6 {
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
            if let postOp { block.append(try fusedActivationGradient(postOp, node: node).run) }
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
            var tail = [step.run]
            if let reorderIntoTarget { tail.append(reorderIntoTarget.run) }
            if finish == nil, resolve(source) === inputNode, gradientWriterCount(inputNode) == 1, computesInputGradient, mode == .inference,
               DNNL.isBatchOutermost(diffDst.desc, batch: batchSize, bytes: diffDst.bytes) {
                // the network's one input-gradient path starts here, linear from this gradient on
                // (`backward(_:deferringInputGradient:)`)
                seedMemory = diffDst
                inputGradientTail = tail
            } else {
                block += tail
            }
            if let finish { block.append(finish) }
        }
    }

    /// The gradient through an activation fused into a convolution's output, computed in place on the
    /// convolution's gradient buffer from the fused output (ReLU and ReLU6 pass the gradient where
    /// their output is strictly inside their range).
    func fusedActivationGradient(_ activation: Operation, node: Node) throws(NetworkError) -> Step {
        let algorithm = activation == .relu ? dnnl_eltwise_relu_use_dst_for_bwd : dnnl_eltwise_clip_v2_use_dst_for_bwd
        let beta: Float = activation == .relu ? 0 : 6
        var forwardDesc = dnnl_eltwise_desc_t(), dataMD = node.out.desc, diffMD = node.diff!.desc
        try DNNL.call("describe the activation fused into '\(node.layer.name)'", dnnl_eltwise_forward_desc_init(
            &forwardDesc, dnnl_forward_training, algorithm, &dataMD, 0, beta))
        let hint = try Primitive("activation fused into '\(node.layer.name)'", opDesc: &forwardDesc)
        var backward = dnnl_eltwise_desc_t()
        try DNNL.call("describe the gradients of the activation fused into '\(node.layer.name)'",
                      dnnl_eltwise_backward_desc_init(&backward, algorithm, &diffMD, &dataMD, 0, beta))
        let primitive = try Primitive("gradients of the activation fused into '\(node.layer.name)'", opDesc: &backward, hint: hint)
        return makeStep(primitive, [(DNNL_ARG_DST, node.out), (DNNL_ARG_DIFF_DST, node.diff!), (DNNL_ARG_DIFF_SRC, node.diff!)])
    }
}
