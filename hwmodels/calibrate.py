"""Fitting the per-network overhead of a table: summed unit latencies against end-to-end times.

A network's end-to-end latency is modelled as ``scale * sum(unit ms) +
per_unit_ms * units + per_mweight_ms * (weights / 1e6) + per_melement_ms *
(activation elements / 1e6) + fixed_ms`` (a least-squares fit, stated and
solved with cvxpy). The weight term (>= 0) is what a network pays that its
units timed one by one do not: their weights are read from memory on every
pass instead of staying in cache (on this project's CPU about 0.4 ms per
million fp32 weights, i.e. ~10 GB/s). The unit and element terms take either
sign: a unit timed alone also pays what a network pays once, a runtime's
call overhead and the conversion of its input and output into the runtime's
blocked layout (ONNX Runtime: about 10 us a call, 0.24 ms per million
elements here), which a negative term takes back. Each unit's calibrated
time is kept at or above zero, so the fit is constrained to keep it so for
every unit of the designs fitted. The residuals are relative (each design's
error divided by its measured latency), so that small and large networks
count alike.
"""

from __future__ import annotations

from typing import Sequence

import cvxpy as cp
import numpy as np

from .table import Calibration


LEAST_DESIGNS = 4
"""Designs a calibration needs at the least: it fits four terms."""


def fit(unit_sums_ms: Sequence[float], unit_counts: Sequence[int], weights: Sequence[float], measured_ms: Sequence[float],
        activations: Sequence[float] | None = None, units: np.ndarray | None = None) -> Calibration:
    """The calibration that best maps the designs' summed unit latencies, unit counts, weights and
    activation elements (zeros where not given) to their measured latencies. ``units`` (optional,
    one row per unit of the designs: ms, weights, activation elements) are kept at a calibrated
    time of at least zero each."""
    x, n, w, y = (np.asarray(v, dtype=float) for v in (unit_sums_ms, unit_counts, weights, measured_ms))
    e = np.zeros_like(y) if activations is None else np.asarray(activations, dtype=float)
    if not (len(x) == len(n) == len(w) == len(y) == len(e)) or len(y) < LEAST_DESIGNS:
        raise ValueError(f"calibration needs at least {LEAST_DESIGNS} designs, each with a unit sum, a unit count, weights and a measurement")
    if np.any(y <= 0) or np.any(x < 0) or np.any(w < 0) or np.any(e < 0):
        raise ValueError("calibration needs positive measured latencies and non-negative unit sums, weights and activations")
    terms = cp.Variable(5)  # scale, per unit, per million weights, fixed, per million elements
    features = np.c_[x, n, w / 1e6, np.ones_like(x), e / 1e6] / y[:, None]
    keep = [terms[0] >= 1e-3, terms[2] >= 0, terms[3] >= 0]
    if activations is None:
        keep += [terms[1] >= 0, terms[4] == 0]
    if units is not None and len(units):
        u = np.asarray(units, dtype=float)
        keep.append(np.c_[u[:, 0], np.ones(len(u)), u[:, 1] / 1e6, np.zeros(len(u)), u[:, 2] / 1e6] @ terms >= 0)
    cp.Problem(cp.Minimize(cp.sum_squares(features @ terms - 1.0)), keep).solve(solver=cp.CLARABEL)
    scale, per_unit, per_mweight, fixed, per_melement = (float(v) for v in terms.value)
    return Calibration(max(scale, 1e-3), per_unit, max(0.0, per_mweight), max(0.0, fixed), len(y), per_melement)


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
