#!/usr/bin/env python3
"""Reference values from scipy for Dropline's drift statistics.

Run from the repository root with scipy installed: python3 scripts/make_ks_fixtures.py

Writes Tests/DriftStatisticsTests/Fixtures/scipy.json with
- ks_2samp on seeded samples (continuous and tied data, equal and unequal sizes, sizes that make
  'auto' choose 'asymp'), for alternatives two-sided, less, greater and methods auto, exact, asymp;
- kstwo.sf and kstwo.cdf (the Kolmogorov distribution) on a grid that reaches every branch of
  scipy's algorithm selection (Simard & L'Ecuyer);
- smirnov (the one-sided distribution);
- Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control).
Floats are written with repr(), so they round-trip exactly.
"""
import json
import os
import warnings

import numpy as np
import scipy
from scipy import special, stats

warnings.filterwarnings("ignore")
rng = np.random.default_rng(20261121)


def sample(kind, n, shift=0.0):
    if kind == "normal":
        return rng.normal(shift, 1.0, n)
    if kind == "ties":
        return rng.integers(0, 6, n).astype(float) + (1 if shift > 0.3 else 0)
    if kind == "uniform":
        return rng.uniform(shift, 1 + shift, n)
    raise ValueError(kind)


samples, cases = [], []
sizes = [(5, 5), (7, 10), (10, 7), (40, 40), (40, 400), (400, 40), (1500, 40), (100, 101), (3, 1000),
         (60, 90), (250, 250), (1, 8), (37, 53), (12000, 30)]
for n1, n2 in sizes:
    # above 10,000 'auto' switches to 'asymp'; one kind of data is enough there
    for kind in (("normal",) if max(n1, n2) > 10000 else ("normal", "ties", "uniform")):
        for shift in (0.0, 0.35):
            a, b = sample(kind, n1), sample(kind, n2, shift)
            samples.append({"a": [repr(float(x)) for x in a], "b": [repr(float(x)) for x in b]})
            for alternative in ("two-sided", "less", "greater"):
                for method in ("auto", "exact", "asymp"):
                    r = stats.ks_2samp(a, b, alternative=alternative, method=method)
                    cases.append({"sample": len(samples) - 1, "alternative": alternative, "method": method,
                                  "statistic": repr(float(r.statistic)), "pvalue": repr(float(r.pvalue)),
                                  "sign": int(r.statistic_sign), "location": repr(float(r.statistic_location))})

kolmogorov = []
for n in (1, 2, 3, 5, 10, 40, 139, 140, 141, 500, 2000, 20000, 100000, 300000):
    for x in (0.001, 0.01, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.45, 0.5, 0.6, 0.8, 0.95, 0.999):
        kolmogorov.append({"n": n, "x": repr(x), "sf": repr(float(stats.kstwo.sf(x, n))), "cdf": repr(float(stats.kstwo.cdf(x, n)))})
    for t in (0.4, 0.6, 0.75, 1.0, 1.2, 2.0):  # x near 1/n, where the Ruben-Gambino formulas apply
        x = t / n
        if x < 1:
            kolmogorov.append({"n": n, "x": repr(x), "sf": repr(float(stats.kstwo.sf(x, n))), "cdf": repr(float(stats.kstwo.cdf(x, n)))})
    if n > 2:
        x = (n - 0.5) / n
        kolmogorov.append({"n": n, "x": repr(x), "sf": repr(float(stats.kstwo.sf(x, n))), "cdf": repr(float(stats.kstwo.cdf(x, n)))})

smirnov = []
for n in (1, 2, 5, 10, 40, 100, 1000, 10000, 100000):
    for x in (0.0005, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99):
        smirnov.append({"n": n, "x": repr(x), "sf": repr(float(special.smirnov(n, x)))})

bh = []
for m in (1, 5, 32, 512):
    p = rng.uniform(0, 1, m) ** 3
    bh.append({"p": [repr(float(x)) for x in p], "adjusted": [repr(float(x)) for x in stats.false_discovery_control(p, method="bh")]})

out = os.path.join("Tests", "DriftStatisticsTests", "Fixtures", "scipy.json")
with open(out, "w") as f:
    json.dump({"scipy": scipy.__version__, "samples": samples, "ks_2samp": cases, "kstwo": kolmogorov, "smirnov": smirnov, "bh": bh}, f)
print(f"wrote {out}: {len(cases)} ks_2samp cases, {len(kolmogorov)} kstwo, {len(smirnov)} smirnov, {len(bh)} bh (scipy {scipy.__version__})")
