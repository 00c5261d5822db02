"""Where the optimum changes: the smallest budget above a point's at which a better design exists."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..model.architecture import Architecture
from ..problem.problem import Problem
from .axes import variant
from .sweeps import Sweep, point_seconds


_FIELDS = {"flops": "flops", "params": "params", "latency": "latency_ms", "rho": "rho"}


def next_change(problem: Problem, budget: str, design: Architecture, objective: float, *, ceiling: float,
                time_limit: float | None = None, gap: float = 1e-5, method: str = "auto") -> float | None:
    """The smallest value of ``budget`` (``flops``, ``params``, ``latency`` or ``rho``), at most
    ``ceiling``, at which a design better than ``design`` (worth ``objective``) exists: where the
    optimum changes as the budget grows. ``None`` when none exists up to ``ceiling``, or when a
    solve on the way is not proven optimal (then the change point is not known).

    Solve at ``ceiling``; while the optimum beats ``objective``, solve again just below that
    optimum's own cost (one unit below for integer costs). The last optimum's cost is the change
    point: below it the optimum is still worth ``objective``, at it that optimum fits. Exact
    when every solve is proven optimal (each is warm-started from ``design``). ``time_limit`` per
    solve, default :func:`point_seconds`."""
    from ..solvers import solve

    if time_limit is None:
        time_limit = point_seconds(problem, method)

    field, integral = _FIELDS[budget], budget in ("flops", "params")

    class Unproven(Exception):
        pass

    def better(limit: float):
        s = solve(dataclasses.replace(problem, **{budget: limit}), time_limit=time_limit, gap=gap, method=method, start=design)
        if s.status not in ("optimal", "infeasible"):
            raise Unproven
        return s if s.check is not None and s.objective > objective + 1e-9 * abs(objective) else None

    try:
        found = better(ceiling)
        if found is None:
            return None
        while True:
            cost = getattr(found.check, field)
            below = better(cost - 1 if integral else cost * (1 - 1e-9))
            if below is None:
                return float(cost)
            found = below
    except Unproven:  # a solve stopped at its time limit: the change point is not known
        return None


def change_points(problem: Problem, sweep: Sweep, budget: str, **solve_options: Any) -> list[float | None]:
    """Per row of a sweep along ``budget``: the smallest budget above the row's at which its
    design would change (:func:`next_change`, up to the next point of the same other inputs);
    ``None`` at the last point of each run, where the next point has no better design, or where
    the row has no design."""
    others = [a for a in sweep.axes if a != budget]
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(sweep.rows):
        groups.setdefault(tuple(row[a] for a in others), []).append(i)
    out: list[float | None] = [None] * len(sweep.rows)
    for members in groups.values():
        members.sort(key=lambda i: sweep.rows[i][budget])
        for i, j in zip(members, members[1:]):
            row, after = sweep.rows[i], sweep.rows[j]
            if row.get("architecture") is None or after.get("objective") is None or after["objective"] <= row["objective"] + 1e-9 * abs(row["objective"]):
                continue
            point = {a: row[a] for a in sweep.axes}
            out[i] = next_change(variant(problem, point), budget, Architecture.from_dict(row["architecture"]), row["objective"],
                                 ceiling=after[budget], **solve_options)
    return out
