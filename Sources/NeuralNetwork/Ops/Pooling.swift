import CDNNL
import Randomness
import Tensor
import Glibc

/// Max and average pooling, and global average pooling.
extension Executor {

    func compilePooling(_ node: Node, algorithm: dnnl_alg_kind_t, kernel: [Int], stride: [Int], padding: Padding,
                                block: inout [() -> Void]) throws(NetworkError) {
        let source = input(node)
        let (pt, pb) = padding.amounts(input: source.dims[2], kernel: kernel[0], stride: stride[0], axis: 0)
        let (pl, pr) = padding.amounts(input: source.dims[3], kernel: kernel[1], stride: stride[1], axis: 1)
        try compilePoolingCore(node, source: source, algorithm: algorithm, kernel: kernel, stride: stride,
                               padL: [pt, pl], padR: [pb, pr], destination: nil, block: &block)
    }

    /// Pooling from `source` into `destination` (a new memory in the source's layout when nil).
    @discardableResult
    func compilePoolingCore(_ node: Node, source: Node, algorithm: dnnl_alg_kind_t, kernel: [Int], stride: [Int],
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

    func compileGlobalPool(_ node: Node, block: inout [() -> Void]) throws(NetworkError) {
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
}
