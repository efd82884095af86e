#!/usr/bin/env python3
"""The shift calibration's reference: scikit-learn's IsotonicRegression (pool-adjacent-violators,
increasing, predictions linear between its thresholds) on sets of (mean confidence, accuracy) like
those a training measures on shifted held-out images, with its predictions at query points inside
the fitted range. Writes Tests/MonitoringTests/Fixtures/isotonic.json.
Run: python3 scripts/make_isotonic_fixtures.py (needs numpy and scikit-learn)."""
import json
import numpy as np
from sklearn.isotonic import IsotonicRegression

rng = np.random.default_rng(23)

def case(n, noise):
    confidence = rng.uniform(0.4, 0.97, n)
    # overconfident under shift, with sampling noise: violators to pool
    accuracy = np.clip(confidence - 1.6 * np.maximum(0, 0.9 - confidence) + rng.normal(0, noise, n), 0, 1)
    model = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(confidence, accuracy)
    queries = np.sort(np.concatenate([confidence, rng.uniform(confidence.min(), confidence.max(), 50)]))
    return {"confidence": confidence.tolist(), "accuracy": accuracy.tolist(), "queries": queries.tolist(),
            "predictions": model.predict(queries).tolist(), "fitted": model.predict(confidence).tolist()}

cases = {"smooth": case(32, 0.01), "noisy": case(32, 0.08), "few": case(7, 0.15)}
with open("Tests/MonitoringTests/Fixtures/isotonic.json", "w") as f:
    json.dump(cases, f, indent=1)
print("wrote Tests/MonitoringTests/Fixtures/isotonic.json")
