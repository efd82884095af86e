#!/usr/bin/env python3
"""Makes the PyTorch reference fixtures for Dropline's neural network engine.

Run from the repository root with PyTorch installed (pip install "torch==2.13.0+cpu"):

    python3 scripts/make_nn_fixtures.py

For each case it builds a small network twice, as a Dropline network description (JSON, the same
Codable form the Swift code reads) and as a PyTorch module with the same weights, runs a forward
pass on a seeded random batch and a backward pass of sum(output * upstream) and writes everything to
Tests/NeuralNetworkTests/Fixtures/<case>.safetensors: the input, parameters, output, the upstream
gradient, the gradient for the input and for every parameter, and, in training mode, the running
batch-norm statistics after the pass. The network description and mode go in the file's metadata.
"""
import json
import os
import struct

import torch
import torch.nn.functional as F

OUT = os.path.join("Tests", "NeuralNetworkTests", "Fixtures")
torch.manual_seed(20261121)
torch.set_num_threads(1)


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        data = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, sort_keys=True).encode()
    raw += b" " * ((8 - (len(raw) + 8) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


# ---- Dropline layer descriptions (Swift's synthesized Codable form) ----------------------------

def layer(name, op, inputs, trainable=True):
    return {"name": name, "operation": op, "inputs": inputs, "trainable": trainable}


def explicit(t, b, l, r):
    return {"explicit": {"top": t, "bottom": b, "left": l, "right": r}}


def conv(filters, k, s, padding, groups=1, bias=True):
    return {"conv2d": {"filters": filters, "kernel": [k, k], "stride": [s, s], "padding": padding,
                       "groups": groups, "bias": bias}}


SAME = {"same": {}}
VALID = {"valid": {}}


class Graph(torch.nn.Module):
    """Runs a Dropline description in PyTorch, with parameters named as Dropline names them."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers
        self.params = torch.nn.ParameterDict()
        self.buffers_ = {}
        shapes = {}
        for l in layers:
            op, = l["operation"].keys()
            a = l["operation"][op]
            if op == "input":
                shapes[l["name"]] = (a["channels"], a["height"], a["width"])
            elif op == "features":
                shapes[l["name"]] = (a["count"],)
            else:
                src = shapes[l["inputs"][0]]
                if op == "conv2d":
                    w = torch.randn(a["filters"], src[0] // a["groups"], *a["kernel"]) * 0.3
                    self.params[l["name"] + "__weight"] = torch.nn.Parameter(w)
                    if a["bias"]:
                        self.params[l["name"] + "__bias"] = torch.nn.Parameter(torch.randn(a["filters"]) * 0.1)
                elif op == "batchNorm":
                    c = src[0]
                    self.params[l["name"] + "__gamma"] = torch.nn.Parameter(1 + 0.2 * torch.randn(c))
                    self.params[l["name"] + "__beta"] = torch.nn.Parameter(0.1 * torch.randn(c))
                    self.buffers_[l["name"] + ".running_mean"] = 0.1 * torch.randn(c)
                    self.buffers_[l["name"] + ".running_var"] = 1 + 0.3 * torch.rand(c)
                elif op == "dense":
                    self.params[l["name"] + "__weight"] = torch.nn.Parameter(torch.randn(a["units"], src[0]) * 0.3)
                    if a["bias"]:
                        self.params[l["name"] + "__bias"] = torch.nn.Parameter(torch.randn(a["units"]) * 0.1)
                shapes[l["name"]] = None  # not needed beyond the first input's channels
                shapes[l["name"]] = self._shape(l, op, a, src)
        self.shapes = shapes

    @staticmethod
    def _pads(padding, size, k, s):
        key, = padding.keys()
        if key == "valid":
            return (0, 0, 0, 0)
        if key == "explicit":
            p = padding["explicit"]
            return (p["top"], p["bottom"], p["left"], p["right"])
        out = [(n + s[i] - 1) // s[i] for i, n in enumerate(size)]
        total = [max((out[i] - 1) * s[i] + k[i] - size[i], 0) for i in range(2)]
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)

    def _shape(self, l, op, a, src):
        if op in ("conv2d", "maxPool", "avgPool"):
            t, b, le, r = self._pads(a["padding"], src[1:], a["kernel"], a["stride"])
            h = (src[1] + t + b - a["kernel"][0]) // a["stride"][0] + 1
            w = (src[2] + le + r - a["kernel"][1]) // a["stride"][1] + 1
            return (a["filters"] if op == "conv2d" else src[0], h, w)
        if op == "globalAvgPool":
            return (src[0],)
        if op == "dense":
            return (a["units"],)
        if op == "flatten":
            n = 1
            for d in src:
                n *= d
            return (n,)
        return src

    def forward(self, x, training):
        values = {}
        for l in self.layers:
            op, = l["operation"].keys()
            a = l["operation"][op]
            n = l["name"]
            if op in ("input", "features"):
                values[n] = x
                continue
            v = values[l["inputs"][0]]
            if op == "conv2d":
                t, b, le, r = self._pads(a["padding"], v.shape[2:], a["kernel"], a["stride"])
                v = F.pad(v, (le, r, t, b))
                values[n] = F.conv2d(v, self.params[n + "__weight"], self.params[n + "__bias"] if a["bias"] else None,
                                     stride=a["stride"], groups=a["groups"])
            elif op == "batchNorm":
                values[n] = F.batch_norm(v, self.buffers_[n + ".running_mean"], self.buffers_[n + ".running_var"],
                                         self.params[n + "__gamma"], self.params[n + "__beta"],
                                         training=training and l["trainable"], momentum=a["momentum"], eps=a["epsilon"])
            elif op == "relu":
                values[n] = F.relu(v)
            elif op == "relu6":
                values[n] = F.relu6(v)
            elif op == "maxPool":
                t, b, le, r = self._pads(a["padding"], v.shape[2:], a["kernel"], a["stride"])
                v = F.pad(v, (le, r, t, b), value=float("-inf"))
                values[n] = F.max_pool2d(v, a["kernel"], a["stride"])
            elif op == "avgPool":
                t, b, le, r = self._pads(a["padding"], v.shape[2:], a["kernel"], a["stride"])
                assert t == b and le == r, "fixtures use symmetric average-pool padding"
                values[n] = F.avg_pool2d(v, a["kernel"], a["stride"], padding=(t, le),
                                         count_include_pad=a["countIncludePad"])
            elif op == "globalAvgPool":
                values[n] = v.mean(dim=(2, 3))
            elif op == "dense":
                values[n] = F.linear(v, self.params[n + "__weight"], self.params[n + "__bias"] if a["bias"] else None)
            elif op == "add":
                values[n] = v + values[l["inputs"][1]]
            elif op == "flatten":
                values[n] = v.flatten(1)
            else:
                raise ValueError(op)
        return values[self.layers[-1]["name"]]


def make_case(name, layers, mode, batch=4):
    net = Graph(layers)
    for l in layers:  # a frozen layer's parameters get no gradient in Dropline
        if not l["trainable"]:
            for key, p in net.params.items():
                if key.startswith(l["name"] + "__"):
                    p.requires_grad_(False)
    first, = layers[0]["operation"].values()
    if "channels" in first:
        x = torch.randn(batch, first["channels"], first["height"], first["width"])
    else:
        x = torch.randn(batch, first["count"])
    x.requires_grad_(True)
    tensors = {"input": x.detach().clone()}
    for key, p in net.params.items():
        tensors["param." + key.replace("__", ".")] = p.detach().clone()
    for key, b in net.buffers_.items():
        tensors["param." + key] = b.clone()
    y = net(x, training=(mode == "training"))
    g = torch.randn_like(y)
    (y * g).sum().backward()
    tensors["output"] = y.detach()
    tensors["output_grad"] = g
    tensors["input_grad"] = x.grad.detach()
    for key, p in net.params.items():
        if p.grad is not None:
            tensors["grad." + key.replace("__", ".")] = p.grad.detach()
    if mode == "training":
        for key, b in net.buffers_.items():
            tensors["running." + key] = b.clone()
    write_safetensors(os.path.join(OUT, name + ".safetensors"), tensors,
                      {"network": json.dumps({"layers": layers}), "mode": mode})
    return name


def image(c, h, w):
    return layer("x", {"input": {"channels": c, "height": h, "width": w}}, [])


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []
    for mode in ("inference", "training"):
        m = mode[:5]
        cases.append(make_case(f"conv_pad1_{m}", [image(3, 9, 9), layer("c", conv(4, 3, 1, explicit(1, 1, 1, 1)), ["x"])], mode))
        cases.append(make_case(f"conv_same_stride2_{m}", [image(3, 8, 8), layer("c", conv(5, 3, 2, SAME), ["x"])], mode))
        cases.append(make_case(f"conv_valid_5x5_{m}", [image(2, 11, 10), layer("c", conv(3, 5, 1, VALID, bias=False), ["x"])], mode))
        cases.append(make_case(f"conv_groups_{m}", [image(4, 7, 7), layer("c", conv(6, 3, 1, explicit(1, 1, 1, 1), groups=2), ["x"])], mode))
        cases.append(make_case(f"depthwise_{m}", [image(4, 8, 8), layer("c", conv(8, 3, 2, explicit(1, 1, 1, 1), groups=4, bias=False), ["x"])], mode))
        bn = {"batchNorm": {"epsilon": 1e-3, "momentum": 0.1}}
        cases.append(make_case(f"conv_bn_relu_{m}", [image(3, 8, 8), layer("c", conv(8, 3, 1, explicit(1, 1, 1, 1), bias=False), ["x"]),
                                                    layer("bn", bn, ["c"]), layer("r", {"relu": {}}, ["bn"])], mode))
        cases.append(make_case(f"conv_bn_relu6_{m}", [image(3, 8, 8), layer("c", conv(8, 3, 1, explicit(1, 1, 1, 1)), ["x"]),
                                                     layer("bn", bn, ["c"]), layer("r", {"relu6": {}}, ["bn"])], mode))
        cases.append(make_case(f"frozen_bn_{m}", [image(3, 8, 8), layer("c", conv(8, 3, 1, explicit(1, 1, 1, 1)), ["x"]),
                                                 layer("bn", bn, ["c"], trainable=False), layer("r", {"relu": {}}, ["bn"])], mode))
        cases.append(make_case(f"maxpool_{m}", [image(3, 8, 8), layer("c", conv(4, 3, 1, explicit(1, 1, 1, 1)), ["x"]),
                                               layer("p", {"maxPool": {"kernel": [2, 2], "stride": [2, 2], "padding": VALID}}, ["c"])], mode))
        cases.append(make_case(f"maxpool_3s2p1_{m}", [image(3, 9, 9), layer("c", conv(4, 3, 1, explicit(1, 1, 1, 1)), ["x"]),
                                                     layer("p", {"maxPool": {"kernel": [3, 3], "stride": [2, 2], "padding": explicit(1, 1, 1, 1)}}, ["c"])], mode))
        for inc in (True, False):
            cases.append(make_case(f"avgpool_{'incl' if inc else 'excl'}_{m}", [
                image(3, 8, 8), layer("c", conv(4, 3, 1, explicit(1, 1, 1, 1)), ["x"]),
                layer("p", {"avgPool": {"kernel": [3, 3], "stride": [2, 2], "padding": explicit(1, 1, 1, 1), "countIncludePad": inc}}, ["c"])], mode))
        cases.append(make_case(f"gap_dense_{m}", [image(3, 6, 6), layer("c", conv(8, 3, 1, explicit(1, 1, 1, 1)), ["x"]),
                                                 layer("g", {"globalAvgPool": {}}, ["c"]), layer("d", {"dense": {"units": 5, "bias": True}}, ["g"])], mode))
        cases.append(make_case(f"flatten_dense_{m}", [image(3, 5, 5), layer("c", conv(4, 3, 2, SAME), ["x"]),
                                                     layer("f", {"flatten": {}}, ["c"]), layer("d", {"dense": {"units": 3, "bias": True}}, ["f"])], mode))
        cases.append(make_case(f"residual_{m}", [
            image(4, 8, 8),
            layer("a", conv(4, 3, 1, explicit(1, 1, 1, 1), bias=False), ["x"]),
            layer("abn", bn, ["a"]), layer("ar", {"relu": {}}, ["abn"]),
            layer("b", conv(4, 3, 1, explicit(1, 1, 1, 1), bias=False), ["ar"]),
            layer("bbn", bn, ["b"]),
            layer("sum", {"add": {}}, ["bbn", "x"]), layer("out", {"relu": {}}, ["sum"]),
            layer("g", {"globalAvgPool": {}}, ["out"]), layer("d", {"dense": {"units": 3, "bias": True}}, ["g"])], mode))
        # An activation read by two layers: its gradient is the sum of both paths.
        cases.append(make_case(f"fanout_{m}", [
            image(3, 8, 8),
            layer("c1", conv(6, 3, 1, SAME), ["x"]), layer("bn1", bn, ["c1"]), layer("r1", {"relu6": {}}, ["bn1"]),
            layer("dw", conv(6, 3, 1, SAME, groups=6, bias=False), ["r1"]),
            layer("sum", {"add": {}}, ["dw", "r1"]),
            layer("pool", {"maxPool": {"kernel": [2, 2], "stride": [2, 2], "padding": VALID}}, ["sum"]),
            layer("c2", conv(4, 3, 2, SAME, groups=2), ["pool"]), layer("r2", {"relu": {}}, ["c2"]),
            layer("g", {"globalAvgPool": {}}, ["r2"]), layer("fc", {"dense": {"units": 3, "bias": True}}, ["g"])], mode))
        cases.append(make_case(f"dense_features_{m}", [layer("x", {"features": {"count": 7}}, []),
                                                      layer("h", {"dense": {"units": 5, "bias": True}}, ["x"]),
                                                      layer("r", {"relu": {}}, ["h"]),
                                                      layer("d", {"dense": {"units": 3, "bias": False}}, ["r"])], mode))
        # The reference small CNN of ../shared/PEERS.md at 32x32.
        small = [image(3, 32, 32)]
        prev, channels = "x", [32, 64, 128]
        for i, c in enumerate(channels):
            small += [layer(f"conv{i}", conv(c, 3, 1, explicit(1, 1, 1, 1)), [prev]), layer(f"bn{i}", bn, [f"conv{i}"]),
                      layer(f"relu{i}", {"relu": {}}, [f"bn{i}"]),
                      layer(f"pool{i}", {"maxPool": {"kernel": [2, 2], "stride": [2, 2], "padding": VALID}}, [f"relu{i}"])]
            prev = f"pool{i}"
        small += [layer("gap", {"globalAvgPool": {}}, [prev]), layer("fc", {"dense": {"units": 6, "bias": True}}, ["gap"])]
        cases.append(make_case(f"small_cnn_{m}", small, mode, batch=3))

    # Softmax cross-entropy with and without label smoothing.
    logits = torch.randn(6, 5, requires_grad=True)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    for smoothing in (0.0, 0.1):
        if logits.grad is not None:
            logits.grad = None
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        loss.backward()
        write_safetensors(os.path.join(OUT, f"cross_entropy_{smoothing}.safetensors"),
                          {"logits": logits.detach(), "labels": labels.float(), "loss": loss.detach().reshape(1),
                           "grad": logits.grad.detach()}, {"smoothing": str(smoothing)})
    print(f"wrote {len(cases) + 2} fixtures to {OUT} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
