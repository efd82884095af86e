import CDNNL
import Randomness
import Tensor
import Glibc

/// Batch normalization, with batch or running statistics, forward and backward.
extension Executor {

    func compileBatchNorm(_ node: Node, epsilon: Float, momentum: Float, batchStatistics: Bool,
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
}
