#!/usr/bin/env python3
"""Reference features of the MobileNetV2-0.35 backbone in ../shared/models, for Dropline's import test.

Run from the repository root with PyTorch and Pillow: python3 scripts/make_backbone_fixture.py

It reads model.json and weights.bin itself and runs the Keras functional graph in PyTorch, channels
last converted at each layer, independently of Dropline's importer; decodes a few real photos with
Pillow, scales them to [-1, 1] as the model's README says, and writes the global-average-pooled
features to Tests/NeuralNetworkTests/Fixtures/backbone/mobilenet_features.safetensors.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join("..", "shared")
MODEL = os.path.join(SHARED, "models", "mobilenet_v2_0.35_224_tfjs")
IMAGES = [
    "datasets/imagenette-mini/test/church/church_te_000.jpg",
    "datasets/imagenette-mini/test/golf_ball/golf_ball_te_003.jpg",
    "datasets/imagenette-mini/test/tench/tench_te_010.jpg",
    "datasets/imagenette-mini/test/parachute/parachute_te_007.jpg",
]


def load():
    spec = json.load(open(os.path.join(MODEL, "model.json")))
    raw = open(os.path.join(MODEL, "weights.bin"), "rb").read()
    weights, offset = {}, 0
    for w in spec["weightsManifest"][0]["weights"]:
        n = int(np.prod(w["shape"]))
        weights[w["name"]] = np.frombuffer(raw, dtype="<f4", count=n, offset=offset).reshape(w["shape"])
        offset += 4 * n
    model2 = spec["modelTopology"]["config"]["layers"][0]["config"]["layers"][0]["config"]
    return model2["layers"], weights


def same_pad(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def forward(layers, weights, x):  # x: N, H, W, C
    values = {}
    for layer in layers:
        kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
        inputs = [values[n[0]] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else [x]
        v = inputs[0]
        if kind == "InputLayer":
            y = x
        elif kind == "ZeroPadding2D":
            (t, b), (l, r) = cfg["padding"]
            y = F.pad(v, (0, 0, l, r, t, b))
        elif kind in ("Conv2D", "DepthwiseConv2D"):
            k, s = cfg["kernel_size"], cfg["strides"]
            nchw = v.permute(0, 3, 1, 2)
            if cfg["padding"] == "same":
                t, b = same_pad(nchw.shape[2], k[0], s[0])
                l, r = same_pad(nchw.shape[3], k[1], s[1])
                nchw = F.pad(nchw, (l, r, t, b))
            if kind == "Conv2D":
                w = torch.from_numpy(weights[name + "/kernel"].copy()).permute(3, 2, 0, 1)
                groups = 1
            else:
                dk = torch.from_numpy(weights[name + "/depthwise_kernel"].copy())  # kh, kw, C, M
                w = dk.permute(2, 3, 0, 1).reshape(-1, 1, k[0], k[1])
                groups = dk.shape[2]
            bias = torch.from_numpy(weights[name + "/bias"].copy()) if cfg.get("use_bias") else None
            y = F.conv2d(nchw, w, bias, stride=s, groups=groups).permute(0, 2, 3, 1)
        elif kind == "BatchNormalization":
            g = lambda p: torch.from_numpy(weights[f"{name}/{p}"].copy())
            y = (v - g("moving_mean")) / torch.sqrt(g("moving_variance") + cfg["epsilon"]) * g("gamma") + g("beta")
        elif kind == "ReLU":
            y = torch.clamp(v, 0, cfg.get("max_value") or float("inf"))
        elif kind == "Add":
            y = inputs[0] + inputs[1]
        else:
            raise ValueError(kind)
        values[name] = y
    return values[layers[-1]["name"]]


def main():
    layers, weights = load()
    batch = []
    for rel in IMAGES:
        im = np.asarray(Image.open(os.path.join(SHARED, rel)).convert("RGB"), dtype=np.float64)
        batch.append(im / 127.5 - 1)
    x = torch.from_numpy(np.stack(batch))
    with torch.no_grad():
        features = forward(layers, {k: v.astype(np.float64) for k, v in weights.items()}, x).mean(dim=(1, 2))
    out = os.path.join("Tests", "NeuralNetworkTests", "Fixtures", "backbone", "mobilenet_features.safetensors")
    data = features.numpy().astype("<f4").tobytes()
    header = {"__metadata__": {"images": json.dumps(IMAGES)},
              "features": {"dtype": "F32", "shape": list(features.shape), "data_offsets": [0, len(data)]}}
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - (len(raw) + 8) % 8) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + data)
    print(f"wrote {out}: features {tuple(features.shape)} (float64 reference), mean {features.mean():.4f}")


if __name__ == "__main__":
    main()
