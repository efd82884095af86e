import CDNNL
import Randomness
import Tensor
import Glibc

/// Element-wise activations (ReLU, ReLU6, ...), forward and backward.
extension Executor {

    func compileActivation(_ node: Node, block: inout [() -> Void]) throws(NetworkError) {
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
}
