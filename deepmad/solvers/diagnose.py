"""Why a problem has no design: the budgets the space cannot meet, each with the smallest value it allows.

Each budget is taken alone, with the space's rules and the guidelines kept
and the other budgets dropped: FLOPs, parameters and latency by shortest
paths over the width graph (:func:`deepmad.solvers.colgen.smallest_costs`),
the layer count from the smallest depths, and rho0 by a pass that keeps, per
end width and layer count, the most entropy a design can have (more entropy
never hurts a later prefix), bisected over rho0. A hard depth spread is kept
by taking each window of depths it allows in turn (:func:`windows`). Every
value is exact; a problem whose budgets are each reachable but not together
has no shortfall, and where the guidelines leave no design at all, every
budget's smallest value is infinite.
"""

from __future__ import annotations

import math

import numpy as np

from ..problem.problem import Problem
from ..solution import Shortfall
from .colgen import smallest_costs
from .context import Context
from .engine import Engine, log
from .kernels import most_entropy
from .pricing import edge_starts


def windows(problem: Problem, engine: Engine) -> list[list[np.ndarray | None]]:
    """The depths a hard depth spread allows, as windows: per window and stage, a mask over the
    stage's depths (``None``: all). One window of ``None`` without a spread rule; none where the
    rule leaves no depths at all."""
    spread = problem.max_depth_spread
    covered = Context(problem).covered
    if spread is None or not covered:
        return [[None] * len(engine.stages)]
    lo = min(int(engine.stages[j].depths[0]) for j in covered)
    hi = max(int(engine.stages[j].depths[-1]) for j in covered)
    out = []
    for start in range(lo, hi + 1):
        masks = [None if j not in covered else (t.depths >= start) & (t.depths <= start + spread) for j, t in enumerate(engine.stages)]
        if all(m is None or m.any() for m in masks):
            out.append(masks)
    return out


def shortfalls(problem: Problem, engine: Engine) -> tuple[Shortfall, ...]:
    """The budgets no design of the space meets (see the module docstring)."""
    ways = windows(problem, engine)
    least = {"flops": math.inf, "params": math.inf, "latency": math.inf, "layers": math.inf}
    for masks in ways:
        for name, value in smallest_costs(engine, problem, masks).items():
            least[name] = min(least[name], value)
        least["layers"] = min(least["layers"], 1 + sum(int(t.layers(t.depths[m][0] if m is not None else t.depths[0]))
                                                     for t, m in zip(engine.stages, masks)))
    out = []
    for name, limit in (("flops", problem.flops), ("params", problem.params), ("rho", problem.rho), ("layers", problem.max_layers),
                        ("latency", problem.latency)):
        if limit is None:
            continue
        smallest = smallest_rho(problem, engine, ways) if name == "rho" else least[name]
        if smallest > limit * (1 + 1e-12):
            out.append(Shortfall(name, limit, smallest if name in ("rho", "latency") or not math.isfinite(smallest) else round(smallest)))
    return tuple(out)


def _entropy_tables(engine: Engine, masks: list[np.ndarray | None]) -> list[np.ndarray]:
    """Per stage, the most entropy of an option of each edge and depth (``[edge, depth index]``;
    ``-inf`` at the depths a mask leaves out)."""
    out = []
    for t, mask in zip(engine.stages, masks):
        d = (t.depths - 1).astype(float)
        first = t.first.entropy.reshape(-1)[:, None] + d[None, :] * t.rest.entropy.reshape(-1)[:, None]
        alike = t.alike.entropy.reshape(-1)[:, None] + d[None, :] * t.rest.entropy.reshape(-1)[:, None]
        K = len(t.kernels)
        starts = edge_starts(t)
        table = np.empty((starts[-1], len(t.depths)))
        for m in range(len(t.widths)):
            lo, hi = t.starts[m] * K, t.starts[m + 1] * K
            best_first, best_alike = first[lo:hi].max(axis=0), alike[lo:hi].max(axis=0)
            ai = np.arange(t.a_lo[m], t.a_hi[m])
            rows = best_first[None, :] + (t.log_a * log(t.inputs[ai]))[:, None]
            rows[ai == t.same[m]] = best_alike
            table[starts[m]:starts[m + 1]] = rows + t.head.entropy[m]
        if mask is not None:
            table[:, ~mask] = -np.inf
        out.append(table)
    return out


def rho_feasible(problem: Problem, engine: Engine, rho: float, tables: list[np.ndarray]) -> bool:
    """Whether some design of the space, with the depths of ``tables`` (:func:`_entropy_tables`), has
    every prefix's effectiveness at most ``rho`` (the budgets dropped)."""
    ctx = Context(problem)
    top = 2 + sum(int(t.layers(t.depths[-1])) for t in engine.stages)
    D = np.arange(top, dtype=float)
    need = np.where(D > 0, 0.5 * D * np.log(np.maximum(D, 1.0) / rho), np.inf)

    def prune(S: np.ndarray, j: int) -> np.ndarray:
        if ctx.ending(j):
            S = np.where(S >= need[None, :], S, -np.inf)
        return S

    S = np.full((len(engine.stem.widths), top), -np.inf)
    S[:, 1] = engine.stem.entropy
    S = prune(S, -1)
    for j, t in enumerate(engine.stages):
        layers = np.array([int(t.layers(d)) - 0 for d in t.depths], dtype=np.int64)
        S = prune(most_entropy(S, tables[j], layers, t.a_lo, t.a_hi, edge_starts(t), len(t.widths)), j)
        if j + 1 < len(engine.stages):
            nxt = engine.stages[j + 1]
            moved = np.full((len(nxt.inputs), top), -np.inf)
            moved[np.searchsorted(nxt.inputs, t.widths)] = S
            S = moved
    return bool(np.isfinite(S).any())


def smallest_rho(problem: Problem, engine: Engine, ways: list[list[np.ndarray | None]]) -> float:
    """The least largest effectiveness of any design of the space, within 1e-6 relative above (the
    budget itself where the space meets it); infinity where the guidelines leave no design."""
    every = [_entropy_tables(engine, masks) for masks in ways]

    def feasible(rho: float) -> bool:
        return any(rho_feasible(problem, engine, rho, tables) for tables in every)

    if feasible(problem.rho):
        return problem.rho
    lo, hi = problem.rho, 1e6
    if not feasible(hi):
        return math.inf
    while hi / lo > 1 + 1e-6:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if feasible(mid) else (mid, hi)
    return hi
