"""Fitting the per-network overhead of a table: summed unit latencies against end-to-end times.

A network's end-to-end latency is modelled as ``scale * sum(unit ms) +
per_unit_ms * units + per_mweight_ms * (weights / 1e6) + fixed_ms`` with every
term non-negative (a non-negative least-squares fit, stated and solved with
cvxpy). The weight term is what a network pays that its units timed one by
one do not: their weights are read from memory on every pass instead of
staying in cache (on this project's CPU about 0.4 ms per million fp32
weights, i.e. ~10 GB/s). The residuals are relative (each design's error
divided by its measured latency), so that small and large networks count
alike.
"""

from __future__ import annotations

from typing import Sequence

import cvxpy as cp
import numpy as np

from .table import Calibration


LEAST_DESIGNS = 4
"""Designs a calibration needs at the least: it fits four terms."""


def fit(unit_sums_ms: Sequence[float], unit_counts: Sequence[int], weights: Sequence[float], measured_ms: Sequence[float]) -> Calibration:
    """The calibration that best maps the designs' summed unit latencies, unit counts and
    weights to their measured latencies."""
    x, n, w, y = (np.asarray(v, dtype=float) for v in (unit_sums_ms, unit_counts, weights, measured_ms))
    if not (len(x) == len(n) == len(w) == len(y)) or len(y) < LEAST_DESIGNS:
        raise ValueError(f"calibration needs at least {LEAST_DESIGNS} designs, each with a unit sum, a unit count, weights and a measurement")
    if np.any(y <= 0) or np.any(x < 0) or np.any(w < 0):
        raise ValueError("calibration needs positive measured latencies and non-negative unit sums and weights")
    terms = cp.Variable(4, nonneg=True)  # scale, per unit, per million weights, fixed
    features = np.c_[x, n, w / 1e6, np.ones_like(x)] / y[:, None]
    cp.Problem(cp.Minimize(cp.sum_squares(features @ terms - 1.0))).solve(solver=cp.CLARABEL)
    scale, per_unit, per_mweight, fixed = (max(0.0, float(v)) for v in terms.value)
    return Calibration(scale, per_unit, per_mweight, fixed, len(y))


def errors(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> dict[str, float]:
    """Share of designs within 5, 10 and 15 % of the measurement, and the RMSPE (root mean squared
    percentage error), in percent."""
    p, m = np.asarray(predicted_ms, dtype=float), np.asarray(measured_ms, dtype=float)
    rel = np.abs(p / m - 1)
    return {
        "within_5": float(np.mean(rel <= 0.05) * 100),
        "within_10": float(np.mean(rel <= 0.10) * 100),
        "within_15": float(np.mean(rel <= 0.15) * 100),
        "rmspe": float(np.sqrt(np.mean(rel**2)) * 100),
        "median_abs": float(np.median(rel) * 100),
    }
