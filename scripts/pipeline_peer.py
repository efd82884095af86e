#!/usr/bin/env python3
"""The batch-inference pipeline written with the standard Python stack: the peer of `dropline infer`
in `dropline bench pipeline`.

    python3 scripts/pipeline_peer.py <model folder> <drift artifacts folder> <batch folder> <output folder>
        [--threads N] [--explain K] [--steps S]

Needs Pillow, numpy, torch, scipy and captum (`pip install pillow "torch==2.13.0+cpu" scipy captum`).
It does the work of Dropline's four serve components the way a straightforward script would:

- processing: every file of the batch read, hashed (SHA-256) and decoded with Pillow, the shorter side
  resized to the model's input (bilinear), centre-cropped, normalised as the model's preprocessing says;
- algorithm: the model (Dropline's model folder: the network description and its safetensors weights,
  built here as a torch module) on every image in batches of 32, softmax, predictions.csv;
- monitoring: a 64x64 random convolutional encoder (the architecture of Dropline's drift encoder; torch's
  own seeded weights, so its features differ from Dropline's, its cost does not) and the model's softmax,
  scipy's two-sample KS test per feature against the reference matrices of the drift artifacts,
  Bonferroni correction, Mahalanobis outlier scores against the encoder reference; drift.json;
- explainability: Captum's IntegratedGradients (black baseline, n_steps S, Gauss-Legendre as Captum's
  default, internal_batch_size=10: on one image at 224, 0.66 s against 1.23 s with all 50 steps at once)
  on the K most outlying images for their predicted class, a heatmap PNG and a JSON per image.

The model and its inputs are channels-last, torch's faster layout for these convolutions on CPU.

Prints one JSON line: seconds per stage ("imports" counts from the interpreter's start) and the counts.
"""
import time

STARTED = time.perf_counter()
import argparse
import hashlib
import io
import json
import os
import re
import struct
import warnings

warnings.filterwarnings("ignore")
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import stats
from captum.attr import IntegratedGradients

IMPORTED = time.perf_counter()


def camel(name):
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def camelized(value):
    if isinstance(value, dict):
        return {camel(k): camelized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camelized(v) for v in value]
    return value


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        a, b = spec["data_offsets"]
        dtype = {"F32": "<f4", "F64": "<f8"}[spec["dtype"]]
        tensors[name] = np.frombuffer(raw, dtype=dtype, count=(b - a) // np.dtype(dtype).itemsize, offset=8 + n + a).reshape(spec["shape"])
    return tensors


def pads(padding, size, k, st):
    (key, v), = padding.items()
    if key == "valid":
        return (0, 0, 0, 0)
    if key == "explicit":
        return (v["top"], v["bottom"], v["left"], v["right"])
    out = [(size[i] + st[i] - 1) // st[i] for i in range(2)]
    t = [max((out[i] - 1) * st[i] + k[i] - size[i], 0) for i in range(2)]
    return (t[0] // 2, t[0] - t[0] // 2, t[1] // 2, t[1] - t[1] // 2)


class Graph(torch.nn.Module):
    """A Dropline network description (model.json's `network`) as a torch module."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers
        self.mods = torch.nn.ModuleDict()
        shapes = {}
        for l in layers:
            (op, a), = l["operation"].items()
            n = l["name"].replace(".", "_")
            if op == "input":
                shapes[l["name"]] = (a["channels"], a["height"], a["width"])
                continue
            s = shapes[l["inputs"][0]]
            if op == "conv2d":
                self.mods[n] = torch.nn.Conv2d(s[0], a["filters"], tuple(a["kernel"]), tuple(a["stride"]), groups=a["groups"], bias=a["bias"])
            elif op == "batchNorm":
                self.mods[n] = torch.nn.BatchNorm2d(s[0], eps=a.get("epsilon", 1e-3)) if len(s) == 3 else torch.nn.BatchNorm1d(s[0], eps=a.get("epsilon", 1e-3))
            elif op == "dense":
                self.mods[n] = torch.nn.Linear(s[0], a["units"], bias=a["bias"])
            shapes[l["name"]] = self.shape(op, a, s)

    @staticmethod
    def shape(op, a, s):
        if op in ("conv2d", "maxPool", "avgPool"):
            t, b, l, r = pads(a["padding"], s[1:], a["kernel"], a["stride"])
            return (a["filters"] if op == "conv2d" else s[0], (s[1] + t + b - a["kernel"][0]) // a["stride"][0] + 1,
                    (s[2] + l + r - a["kernel"][1]) // a["stride"][1] + 1)
        if op == "zeroPad":
            return (s[0], s[1] + a["top"] + a["bottom"], s[2] + a["left"] + a["right"])
        if op == "globalAvgPool":
            return (s[0],)
        if op == "dense":
            return (a["units"],)
        if op == "flatten":
            n = 1
            for d in s:
                n *= d
            return (n,)
        return s

    def load(self, tensors):
        for name, value in tensors.items():
            layer, _, kind = name.rpartition(".")
            m = self.mods[layer.replace(".", "_")]
            target = {"weight": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
                      "running_mean": "running_mean", "running_var": "running_var"}[kind]
            getattr(m, target).data.copy_(torch.from_numpy(value.copy()).reshape(getattr(m, target).shape))

    def forward(self, x):
        v = {}
        for l in self.layers:
            (op, a), = l["operation"].items()
            n = l["name"].replace(".", "_")
            if op == "input":
                v[l["name"]] = x
                continue
            y = v[l["inputs"][0]]
            if op == "conv2d":
                t, b, le, r = pads(a["padding"], y.shape[2:], a["kernel"], a["stride"])
                m = self.mods[n]
                if t == b and le == r:  # symmetric: the convolution pads itself, without a copy
                    m.padding = (t, le)
                    y = m(y)
                else:
                    m.padding = (0, 0)
                    y = m(F.pad(y, (le, r, t, b)))
            elif op in ("batchNorm", "dense"):
                y = self.mods[n](y)
            elif op == "relu":
                y = F.relu(y)
            elif op == "relu6":
                y = F.relu6(y)
            elif op == "maxPool":
                t, b, le, r = pads(a["padding"], y.shape[2:], a["kernel"], a["stride"])
                y = F.max_pool2d(F.pad(y, (le, r, t, b), value=-float("inf")), a["kernel"], a["stride"])
            elif op == "globalAvgPool":
                y = y.mean(dim=(2, 3))
            elif op == "dropout":
                y = F.dropout(y, a["rate"], self.training)
            elif op == "add":
                y = y + v[l["inputs"][1]]
            elif op == "flatten":
                y = y.flatten(1)
            elif op == "zeroPad":
                y = F.pad(y, (a["left"], a["right"], a["top"], a["bottom"]))
            else:
                raise ValueError(f"operation {op} is not supported by the peer")
            v[l["name"]] = y
        return v[self.layers[-1]["name"]]


def prepare(path, side, mean, std, scale):
    data = open(path, "rb").read()
    digest = hashlib.sha256(data).hexdigest()
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    r = side / min(w, h)
    image = image.resize((max(side, round(w * r)), max(side, round(h * r))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    a = np.asarray(image, dtype=np.float32) * scale
    a = (a - mean) / std
    return digest, torch.from_numpy(a.transpose(2, 0, 1).copy())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("artifacts")
    parser.add_argument("batch")
    parser.add_argument("output")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--explain", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(7)
    os.makedirs(args.output, exist_ok=True)
    times = {"imports": IMPORTED - STARTED}

    t = time.perf_counter()
    description = json.load(open(os.path.join(args.model, "model.json")))
    model = Graph(camelized(description["network"]["layers"]))
    model.load(read_safetensors(os.path.join(args.model, "weights.safetensors")))
    # channels-last is torch's faster layout for these convolutions on CPU (Captum on one image at 224:
    # 0.55 s against 0.66 s contiguous, both with internal_batch_size=10)
    model = model.to(memory_format=torch.channels_last).eval()
    classes = description["classes"]
    p = description["preprocessing"]
    side = p["image_size"]
    norm = p["normalization"]
    mean, std, scale = np.array(norm["mean"], np.float32), np.array(norm["std"], np.float32), norm["scale"]
    artifacts = json.load(open(os.path.join(args.artifacts, "drift.json")))
    reference = read_safetensors(os.path.join(args.artifacts, "reference.safetensors"))
    encoder_spec = artifacts["encoder"]
    encoder_layers, channels, previous = [], 3, None
    for c in encoder_spec["channels"]:
        encoder_layers += [torch.nn.Conv2d(channels, c, 4, 2, padding=1), torch.nn.ReLU()]
        channels = c
    final = encoder_spec["side"] // (2 ** len(encoder_spec["channels"]))
    encoder = torch.nn.Sequential(*encoder_layers, torch.nn.Flatten(), torch.nn.Linear(channels * final * final, encoder_spec["features"])).eval()
    times["load"] = time.perf_counter() - t

    t = time.perf_counter()
    names = sorted(os.listdir(args.batch))
    paths = [os.path.join(args.batch, n) for n in names if not n.startswith(".") and os.path.isfile(os.path.join(args.batch, n))]
    hashes, tensors, refused = [], [], []
    for path in paths:
        try:
            digest, tensor = prepare(path, side, mean, std, scale)
        except Exception as e:
            refused.append({"path": path, "reason": str(e)})
            continue
        hashes.append((path, digest))
        tensors.append(tensor)
    x = torch.stack(tensors).contiguous(memory_format=torch.channels_last)
    times["processing"] = time.perf_counter() - t

    t = time.perf_counter()
    with torch.inference_mode():
        probabilities = torch.cat([F.softmax(model(x[i:i + 32]), dim=1) for i in range(0, len(x), 32)]).numpy()
    predicted = probabilities.argmax(axis=1)
    with open(os.path.join(args.output, "predictions.csv"), "w") as f:
        f.write("path,sha256,predicted,confidence\n")
        for (path, digest), k, row in zip(hashes, predicted, probabilities):
            f.write(f"{path},{digest},{classes[k]},{row[k]:.6f}\n")
    times["algorithm"] = time.perf_counter() - t

    t = time.perf_counter()
    unit = (x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1))
    with torch.no_grad():
        small = F.interpolate(unit, size=(encoder_spec["side"], encoder_spec["side"]), mode="bilinear", antialias=True)
        encoded = torch.cat([encoder(small[i:i + 64]) for i in range(0, len(small), 64)]).numpy().astype(np.float64)
    features = {"encoder": encoded, "softmax": probabilities.astype(np.float64)}
    detectors, level = {}, artifacts["thresholds"]["p_value"] / len(artifacts["detectors"])
    for name in artifacts["detectors"]:
        ref = reference[name].astype(np.float64)
        batch = features[name]
        results = [stats.ks_2samp(ref[:, f], batch[:, f]) for f in range(batch.shape[1])]
        adjusted = [min(1.0, r.pvalue * len(results)) for r in results]
        detectors[name] = {"minimum_adjusted_p_value": min(adjusted), "maximum_statistic": max(r.statistic for r in results),
                           "drift": any(a < level and r.statistic >= artifacts["thresholds"]["minimum_statistic"] for a, r in zip(adjusted, results))}
    ref = reference["encoder"].astype(np.float64)
    centre = ref.mean(axis=0)
    inverse = np.linalg.inv(np.cov(ref, rowvar=False) + 1e-6 * np.eye(ref.shape[1]))
    d = encoded - centre
    scores = np.sqrt(np.einsum("ij,jk,ik->i", d, inverse, d))
    outliers = list(np.argsort(-scores))
    with open(os.path.join(args.output, "drift.json"), "w") as f:
        json.dump({"drift": any(v["drift"] for v in detectors.values()), "detectors": detectors,
                   "outliers": [{"path": hashes[i][0], "score": float(scores[i])} for i in outliers]}, f)
    times["monitoring"] = time.perf_counter() - t

    t = time.perf_counter()
    ig = IntegratedGradients(model)
    black = torch.from_numpy(((0 - mean) / std).astype(np.float32)).view(1, 3, 1, 1)  # a black image, normalised
    explanations = []
    for n, i in enumerate(outliers[:args.explain]):
        target = int(predicted[i])
        inputs = x[i:i + 1]
        attribution, delta = ig.attribute(inputs, baselines=black.expand_as(inputs), target=target,
                                          n_steps=args.steps, internal_batch_size=10, return_convergence_delta=True)
        heat = attribution[0].abs().sum(dim=0).numpy()
        heat = np.clip(heat / max(np.percentile(heat, 99), 1e-12), 0, 1)
        Image.fromarray((heat * 255).astype(np.uint8)).save(os.path.join(args.output, f"{n + 1:04d}.png"))
        explanations.append({"path": hashes[i][0], "target": classes[target], "delta": float(delta[0])})
    with open(os.path.join(args.output, "explanations.json"), "w") as f:
        json.dump(explanations, f)
    times["explainability"] = time.perf_counter() - t

    times["total"] = time.perf_counter() - STARTED
    print(json.dumps({"seconds": times, "images": len(tensors), "refused": len(refused), "explained": len(explanations),
                      "drift": any(v["drift"] for v in detectors.values())}))


if __name__ == "__main__":
    main()
