#!/usr/bin/env python3
"""Fixtures for the data-quality check's binomial tail (Sources/Monitoring/DataQuality.swift,
QualityLimits.binomialTail): scipy's binom.sf(k - 1, n, p), P(X >= k), on the cases the checks meet
(one refused file in seven, 14 dark frames in 40, whole batches, large batches, extreme shares).
Run: python3 scripts/make_quality_fixtures.py (needs scipy)."""
import json
import pathlib

from scipy.stats import binom

cases = [(1, 7, 0.05), (2, 7, 0.05), (14, 40, 0.05), (40, 40, 0.05), (3, 40, 0.05), (4, 40, 0.05), (5, 40, 0.05),
         (1, 1, 0.1), (12, 12, 0.1), (60, 1000, 0.05), (70, 1000, 0.05), (30, 20000, 0.001), (2, 400, 0.0001),
         (200, 400, 0.5), (399, 400, 0.99)]
out = [{"k": k, "n": n, "p": p, "tail": float(binom.sf(k - 1, n, p))} for k, n, p in cases]
path = pathlib.Path(__file__).resolve().parent.parent / "Tests/MonitoringTests/Fixtures/binomial.json"
path.write_text(json.dumps(out, indent=1))
print(f"wrote {path}")
