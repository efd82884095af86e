import CDNNL
import Randomness
import Tensor
import Glibc

/// Dropout, residual additions and flattening.
extension Executor {

    func compileDropout(_ node: Node, rate: Float, active: Bool, block: inout [() -> Void]) {
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

    func compileAdd(_ node: Node, block: inout [() -> Void]) throws(NetworkError) {
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

    func compileFlatten(_ node: Node, block: inout [() -> Void]) throws(NetworkError) {
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
}
