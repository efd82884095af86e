#!/usr/bin/env python3
"""Fixtures for Dropline's logistic-regression head (Sources/Modeling/LogisticRegression.swift).

scikit-learn's LogisticRegression (lbfgs, multinomial, L2 on the weights only, converged tightly) on
synthetic overlapping classes, standardised, at three values of C; and the linear probe's choice of C on a
validation split over Dropline's grid (highest validation accuracy, then lowest log-loss) on
standardised features. Run: python3 scripts/make_logistic_fixtures.py (needs numpy and scikit-learn).
"""
import json
import pathlib

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

rng = np.random.default_rng(11)


def blobs(n, d, k, spread):
    centres = rng.normal(0, 1.0, size=(k, d))
    labels = rng.integers(0, k, size=n)
    x = centres[labels] + rng.normal(0, spread, size=(n, d)) * rng.uniform(0.5, 3.0, size=d)
    return x.astype(np.float32), labels


def fit(x, y, c):
    model = LogisticRegression(C=c, solver="lbfgs", tol=1e-10, max_iter=100000)
    model.fit(x.astype(np.float64), y)
    return model


out = {}
x, y = blobs(150, 12, 4, 1.2)
# standardised, as the probe fits them
x = StandardScaler().fit_transform(x).astype(np.float32)
fits = []
for c in [0.01, 1.0, 100.0]:
    m = fit(x, y, c)
    p = m.predict_proba(x.astype(np.float64))
    n = len(y)
    objective = log_loss(y, p, labels=range(4)) + (m.coef_ ** 2).sum() / (2 * c * n)
    fits.append({"c": c, "coef": m.coef_.ravel().tolist(), "intercept": m.intercept_.tolist(),
                 "probabilities": p[:10].ravel().tolist(), "objective": objective})
out["fit"] = {"x": x.ravel().tolist(), "labels": y.tolist(), "features": 12, "classes": 4, "fits": fits}

# the probe: train, validation; C from Dropline's grid
xt, yt = blobs(240, 20, 5, 1.6)
xv = xt[:80]
yv = yt[:80]
xt, yt = xt[80:], yt[80:]
scaler = StandardScaler().fit(xt)
grid = [10 ** e for e in np.arange(-4.0, 2.01, 0.5)]
scores = []
for c in grid:
    m = fit(scaler.transform(xt), yt, c)
    pv = m.predict_proba(scaler.transform(xv))
    scores.append((float((pv.argmax(1) == yv).mean()), float(log_loss(yv, pv, labels=range(5))), c))
best = max(scores, key=lambda s: (s[0], -s[1]))
out["probe"] = {"train": xt.ravel().tolist(), "labels": yt.tolist(), "validation": xv.ravel().tolist(), "validation_labels": yv.tolist(),
                "features": 20, "classes": 5, "accuracy": best[0], "loss": best[1], "c": best[2],
                "scores": [{"c": c, "accuracy": a, "loss": l} for a, l, c in scores]}

path = pathlib.Path(__file__).resolve().parent.parent / "Tests/ModelingTests/Fixtures/logistic.json"
path.write_text(json.dumps(out))
print(f"wrote {path}: chosen C {best[2]:.4g}, validation accuracy {best[0]:.4f}")
