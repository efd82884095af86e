#!/usr/bin/env python3
"""Captum reference attributions for Dropline's integrated gradients.

Run from the repository root with PyTorch and Captum: python3 scripts/make_ig_fixtures.py

Builds a small CNN (conv, batch norm in inference mode, ReLU, ReLU6, max and average pooling, a
residual add, global average pooling, dense) with seeded random weights through the same PyTorch
graph builder as make_nn_fixtures.py, and writes to Tests/ExplainabilityTests/Fixtures/ one
safetensors file per case: input, baseline, parameters, Captum's attributions and convergence delta
for the target logit, with n_steps=50 and both of Captum's quadratures (gausslegendre,
riemann_trapezoid). Also numpy's Gauss-Legendre nodes and weights for 50 points.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_nn_fixtures import Graph, SAME, VALID, conv, explicit, image, layer, write_safetensors  # noqa: E402

from captum.attr import IntegratedGradients  # noqa: E402

OUT = os.path.join("Tests", "ExplainabilityTests", "Fixtures")
torch.manual_seed(7)


def main():
    os.makedirs(OUT, exist_ok=True)
    bn = {"batchNorm": {"epsilon": 1e-3, "momentum": 0.1}}
    layers = [
        image(3, 16, 16),
        layer("c1", conv(8, 3, 1, explicit(1, 1, 1, 1)), ["x"]), layer("bn1", bn, ["c1"]), layer("r1", {"relu": {}}, ["bn1"]),
        layer("c2", conv(8, 3, 1, SAME), ["r1"]), layer("r2", {"relu6": {}}, ["c2"]),
        layer("sum", {"add": {}}, ["r2", "r1"]),
        layer("p", {"maxPool": {"kernel": [2, 2], "stride": [2, 2], "padding": VALID}}, ["sum"]),
        layer("c3", conv(12, 3, 1, explicit(1, 1, 1, 1)), ["p"]), layer("r3", {"relu": {}}, ["c3"]),
        layer("a", {"avgPool": {"kernel": [2, 2], "stride": [2, 2], "padding": VALID, "countIncludePad": True}}, ["r3"]),
        layer("g", {"globalAvgPool": {}}, ["a"]), layer("fc", {"dense": {"units": 4, "bias": True}}, ["g"]),
    ]
    net = Graph(layers)
    net.eval()
    params = {"param." + k.replace("__", "."): p.detach().clone() for k, p in net.params.items()}
    params.update({"param." + k: b.clone() for k, b in net.buffers_.items()})
    forward = lambda x: net(x, training=False)  # noqa: E731
    ig = IntegratedGradients(forward)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    cases = 0
    for baseline_name, baseline in (("zeros", torch.zeros_like(x)), ("random", torch.rand_like(x) - 0.5)):
        for method in ("gausslegendre", "riemann_trapezoid"):
            target = 2
            attributions, delta = ig.attribute(x, baselines=baseline, target=target, n_steps=50, method=method,
                                               return_convergence_delta=True)
            tensors = dict(params)
            tensors.update({"input": x[0], "baseline": baseline[0], "attributions": attributions[0].detach(),
                            "delta": delta.detach().reshape(1)})
            write_safetensors(os.path.join(OUT, f"ig_{baseline_name}_{method}.safetensors"), tensors,
                              {"network": json.dumps({"layers": layers}), "target": str(target), "method": method, "steps": "50"})
            cases += 1
    nodes, weights = np.polynomial.legendre.leggauss(50)
    with open(os.path.join(OUT, "gauss_legendre_50.json"), "w") as f:
        json.dump({"nodes": [repr(float(v)) for v in nodes], "weights": [repr(float(v)) for v in weights]}, f)
    print(f"wrote {cases} IG cases and the Gauss-Legendre rule to {OUT}")


if __name__ == "__main__":
    main()
