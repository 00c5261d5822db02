"""Exact solution of tiny problems by enumeration: the reference the solvers are checked against.

Every design of the space is scored by :meth:`Problem.check`; the best
feasible one is optimal by construction (ties go to the first in
:meth:`DesignSpace.designs` order). Only for spaces of at most ``max_designs``
designs: the presets' spaces hold about 1e31.
"""

from __future__ import annotations

import math
import time

from ...errors import InputError
from ...problem.problem import Problem
from ...solution import Shortfall, Solution

MAX_DESIGNS = 200_000


def solve(problem: Problem, *, max_designs: int = MAX_DESIGNS) -> Solution:
    """The optimum of ``problem`` by enumeration, or ``infeasible`` with the budgets' shortfalls."""
    size = problem.space.size()
    if size > max_designs:
        raise InputError("space", f"holds up to {size:.3g} designs; brute force enumerates at most {max_designs:,}")
    start = time.perf_counter()
    best = best_check = None
    smallest = {"flops": math.inf, "params": math.inf, "rho": math.inf, "layers": math.inf, "latency": math.inf}
    for arch in problem.space.designs():
        check = problem.check(arch)
        if check.feasible and (best_check is None or check.objective > best_check.objective):
            best, best_check = arch, check
        if not any(v.name not in smallest for v in check.violations):  # meets the space and the guidelines
            values = (("flops", check.flops), ("params", check.params), ("rho", check.rho), ("layers", check.layers), ("latency", check.latency_ms))
            for name, value in values:
                if value is not None:
                    smallest[name] = min(smallest[name], value)
    seconds = time.perf_counter() - start
    if best_check is None:
        limits = {"flops": problem.flops, "params": problem.params, "rho": problem.rho, "layers": problem.max_layers, "latency": problem.latency}
        shortfalls = tuple(
            Shortfall(name, limit, smallest[name]) for name, limit in limits.items() if limit is not None and smallest[name] > limit
        )
        return Solution("infeasible", None, None, -math.inf, seconds, "brute_force", shortfalls)
    return Solution("optimal", best, best_check, best_check.objective, seconds, "brute_force")
