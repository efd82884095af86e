import CDNNL
import Randomness
import Tensor
import Glibc

/// Fully connected layers.
extension Executor {

    func compileDense(_ node: Node, hasBias: Bool, learn: Bool, block: inout [() -> Void]) throws(NetworkError) {
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
}
