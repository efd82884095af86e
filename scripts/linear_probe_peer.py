#!/usr/bin/env python3
"""The linear probe that `dropline bench head` compares the backbone's head with.

Reads the backbone's pooled features (a safetensors file: train_x, train_y, validation_x,
validation_y, test_x, test_y), standardises them on the training split (StandardScaler), fits
scikit-learn's multinomial LogisticRegression (lbfgs, max_iter 1000) for each C of Dropline's grid
(1e-4 to 100 in half decades), keeps the C with the highest validation accuracy (then the lowest
validation log-loss), and prints its C and its validation and test accuracy as JSON.
Needs numpy and scikit-learn (PyPI).
"""
import json
import struct
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler


def read_safetensors(path):
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=np.float32).reshape(entry["shape"])
    return out


def main():
    t = read_safetensors(sys.argv[1])
    started = time.time()
    scaler = StandardScaler().fit(t["train_x"].astype(np.float64))
    x, v, test = (scaler.transform(t[k].astype(np.float64)) for k in ("train_x", "validation_x", "test_x"))
    y, yv, yt = (t[k].astype(int) for k in ("train_y", "validation_y", "test_y"))
    classes = range(int(max(y.max(), yv.max(), yt.max())) + 1)
    best = None
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    for exponent in np.arange(-4.0, 2.01, 0.5):
        c = 10 ** exponent
        model = LogisticRegression(C=c, max_iter=1000).fit(x, y)
        p = model.predict_proba(v)
        score = (float((p.argmax(1) == yv).mean()), -float(log_loss(yv, p, labels=list(classes))))
        if best is None or score > best[0]:
            best = (score, c, model)
    (accuracy, _), c, model = best
    print(json.dumps({"c": c, "validation_accuracy": accuracy, "test_accuracy": float((model.predict(test) == yt).mean()),
                      "seconds": time.time() - started}))


main()
