#!/usr/bin/env python3
"""Temperature scaling's reference: softmax outputs of an overconfident and an underconfident
synthetic classifier, their labels, and the temperature scipy finds by minimising the mean negative
log-likelihood (Guo et al. 2017), with the NLL and ECE before and after. Writes
Tests/MonitoringTests/Fixtures/calibration.json. Run: python3 scripts/make_calibration_fixtures.py
(needs numpy and scipy)."""
import json
import numpy as np
from scipy.optimize import minimize_scalar

rng = np.random.default_rng(11)

def case(scale, n=300, classes=5):
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), labels] += 1.2           # some signal
    logits *= scale                               # > 1: overconfident, < 1: underconfident
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    z = np.log(np.maximum(p, 1e-12))
    def nll(t):
        s = z / t
        s = s - s.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(n), labels]))
    best = minimize_scalar(lambda lt: nll(np.exp(lt)), bounds=(np.log(0.05), np.log(20)), method="bounded",
                           options={"xatol": 1e-10})
    t = float(np.exp(best.x))
    def ece(t):
        s = z / t
        q = np.exp(s - s.max(1, keepdims=True)); q /= q.sum(1, keepdims=True)
        conf = q.max(1); right = (p.argmax(1) == labels).astype(float)
        bins = np.minimum((conf * 15).astype(int), 14)
        return float(sum(abs(conf[bins == b].sum() - right[bins == b].sum()) for b in range(15)) / n)
    return {"classes": classes, "labels": labels.tolist(), "probabilities": p.ravel().tolist(), "temperature": t,
            "nll_before": nll(1.0), "nll_after": nll(t), "ece_before": ece(1.0), "ece_after": ece(t),
            "accuracy": float((p.argmax(1) == labels).mean())}

cases = {"overconfident": case(3.0), "underconfident": case(0.4)}
with open("Tests/MonitoringTests/Fixtures/calibration.json", "w") as f:
    json.dump(cases, f)
for name, c in cases.items():
    print(name, "T", round(c["temperature"], 4), "nll", round(c["nll_before"], 4), "->", round(c["nll_after"], 4),
          "ece", round(c["ece_before"], 4), "->", round(c["ece_after"], 4))
