#!/usr/bin/env python3
"""Captum's completeness delta on a Dropline model, image by image beside Dropline's own.

    dropline explain --model <model> <images> --budget sample:40 --out <dir> --json > ours.json
    python3 scripts/captum_completeness.py <model folder> ours.json [--steps 50 200] [--double]

Builds the model's network (model.json + weights.safetensors, PyTorch layouts) as a PyTorch module,
prepares each image `dropline explain` explained with Pillow (shorter side resized bilinearly, centre
crop, the model's normalisation), and runs Captum's IntegratedGradients (Gauss-Legendre, black
baseline, the explained class) with return_convergence_delta. Prints, per image and as medians, Captum's
relative completeness delta |delta| / |F(x) - F(baseline)| beside Dropline's from ours.json, so a
completeness figure can be told apart from an implementation fault: on the same network and images
the two should agree (they differ only by the images' resizing and float rounding).
"""
import argparse
import json
import os
import statistics
import struct

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients
from torch_reference_training import prepare as square_crop


def safetensors(path):
    raw = open(path, "rb").read()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        start, end = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw, dtype="<f4", count=(end - start) // 4, offset=8 + length + start)
                                     .reshape(t["shape"]).copy())
    return out


def same_pad(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Graph(torch.nn.Module):
    """A Dropline network description, evaluated in inference mode (batch norm with running statistics)."""

    def __init__(self, layers, weights, dtype):
        super().__init__()
        self.layers = layers
        self.w = {k: v.to(dtype) for k, v in weights.items()}

    def forward(self, x):
        v = {}
        for layer in self.layers:
            (op, a), = layer["operation"].items()
            name = layer["name"]
            if op in ("input", "features"):
                v[name] = x
                continue
            y = v[layer["inputs"][0]]
            if op == "zero_pad":
                y = F.pad(y, (a["left"], a["right"], a["top"], a["bottom"]))
            elif op == "conv2d":
                kh, kw = a["kernel"]
                sh, sw = a["stride"]
                p = a["padding"]
                if "explicit" in p:
                    e = p["explicit"]
                    y = F.pad(y, (e["left"], e["right"], e["top"], e["bottom"]))
                elif "same" in p:
                    t, b = same_pad(y.shape[2], kh, sh)
                    left, right = same_pad(y.shape[3], kw, sw)
                    y = F.pad(y, (left, right, t, b))
                y = F.conv2d(y, self.w[name + ".weight"], self.w.get(name + ".bias"), (sh, sw), groups=a["groups"])
            elif op == "batch_norm":
                y = F.batch_norm(y, self.w[name + ".running_mean"], self.w[name + ".running_var"], self.w[name + ".gamma"],
                                 self.w[name + ".beta"], False, 0.0, a["epsilon"])
            elif op == "relu":
                y = F.relu(y)
            elif op == "relu6":
                y = F.relu6(y)
            elif op == "add":
                y = y + v[layer["inputs"][1]]
            elif op == "global_avg_pool":
                y = y.mean(dim=(2, 3))
            elif op == "dropout":
                pass
            elif op == "dense":
                y = F.linear(y.flatten(1), self.w[name + ".weight"], self.w.get(name + ".bias"))
            else:
                raise ValueError(f"{name}: {op} is not handled by this script")
            v[name] = y
        return v[self.layers[-1]["name"]]


def prepare(path, size, normalization):
    crop = square_crop(path, size)  # shorter side resized bilinearly, centre crop, as Dropline prepares
    a = np.asarray(crop, dtype=np.float32) * normalization["scale"]
    a = (a - np.array(normalization["mean"], dtype=np.float32)) / np.array(normalization["std"], dtype=np.float32)
    return torch.from_numpy(a.transpose(2, 0, 1).copy())[None]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("explanations", help="the JSON `dropline explain --json` printed")
    parser.add_argument("--steps", type=int, nargs="+", default=[50])
    parser.add_argument("--double", action="store_true", help="run the network in float64")
    args = parser.parse_args()
    torch.set_num_threads(2)
    description = json.load(open(os.path.join(args.model, "model.json")))
    dtype = torch.float64 if args.double else torch.float32
    net = Graph(description["network"]["layers"], safetensors(os.path.join(args.model, "weights.safetensors")), dtype).eval()
    prep = description["preprocessing"]
    classes = description["classes"]
    ours = json.load(open(args.explanations))
    ours = ours["explanations"] if isinstance(ours, dict) else ours
    ig = IntegratedGradients(net)
    rows = {n: [] for n in args.steps}
    for e in ours:
        x = prepare(e["path"], prep["image_size"], prep["normalization"]).to(dtype)
        black = torch.from_numpy(
            ((np.zeros(3, dtype=np.float32) - np.array(prep["normalization"]["mean"], dtype=np.float32))
             / np.array(prep["normalization"]["std"], dtype=np.float32))).to(dtype)[None, :, None, None].expand_as(x).contiguous()
        target = classes.index(e["target"])
        with torch.no_grad():
            total = (net(x)[0, target] - net(black)[0, target]).item()
        line = f"{os.path.basename(e['path'])}: dropline {100 * e['relative_delta']:.2f}% at {e['steps']}"
        for n in args.steps:
            _, delta = ig.attribute(x, baselines=black, target=target, n_steps=n, method="gausslegendre",
                                    internal_batch_size=25, return_convergence_delta=True)
            relative = abs(delta.item()) / max(abs(total), 1e-12)
            rows[n].append(relative)
            line += f" | captum {100 * relative:.2f}% at {n}"
        print(line, flush=True)
    print(f"median relative delta, dropline: {100 * statistics.median(e['relative_delta'] for e in ours):.2f}% "
          f"({len(ours)} images, {ours[0]['steps']} steps)")
    for n in args.steps:
        print(f"median relative delta, captum {n} steps: {100 * statistics.median(rows[n]):.2f}%")


if __name__ == "__main__":
    main()
