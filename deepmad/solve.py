"""Solving a problem exactly: the MILP of :mod:`deepmad.program` on HiGHS.

The returned objective is the accounting's value of the returned design
(:meth:`Problem.check`), the bound is HiGHS's proven dual bound (never below
that objective), and the design is checked against every constraint before
it is returned. When no design is feasible, min-cost solves say which budgets
the space cannot meet and the smallest value of each it allows.
"""

from __future__ import annotations

import dataclasses
import math
import time

import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import SolutionStatus

from .errors import DeepmadError, InputError
from .options import assemble
from .presets import preset
from .problem import Problem
from .program import FLOPS_UNIT, Tables, build_program, picked
from .solution import Shortfall, Solution

MAX_OPTIONS = 2_000_000


def _highs(m: pyo.ConcreteModel, time_limit: float, gap: float, progress: bool = False):
    solver = SolverFactory("highs")
    return solver.solve(
        m,
        tee=progress,
        time_limit=time_limit,
        rel_gap=gap,
        threads=1,
        load_solutions=False,
        raise_exception_on_nonoptimal_result=False,
        solver_options={"random_seed": 0, "mip_feasibility_tolerance": 1e-9, "primal_feasibility_tolerance": 1e-9},
    )


def _has_solution(result) -> bool:
    return result.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)


def solve(problem: Problem | str, *, time_limit: float = 300.0, gap: float = 1e-5, progress: bool = False) -> Solution:
    """Maximize ``problem``'s objective (a :class:`Problem` or a preset name); ``time_limit``
    in seconds, ``gap`` relative. With ``progress``, HiGHS prints its branch-and-bound log
    (incumbent, bound, gap, elapsed time) on standard output. Raises :class:`InputError`
    for a space too large for the exact program."""
    if isinstance(problem, str):
        problem = preset(problem)
    if not (isinstance(time_limit, (int, float)) and math.isfinite(time_limit) and time_limit > 0):
        raise InputError("time_limit", f"must be a positive number of seconds, got {time_limit!r}")
    if not (isinstance(gap, (int, float)) and 0 <= gap < 1):
        raise InputError("gap", f"must be a relative gap in [0, 1), got {gap!r}")
    count = problem.space.option_count()
    if count > MAX_OPTIONS:
        raise InputError(
            "space",
            f"has up to {count:,} stage options; the exact program handles at most {MAX_OPTIONS:,}: "
            "narrow the channel, inner, kernel or depth ranges",
        )
    start = time.perf_counter()
    tables = Tables.of(problem)
    m = build_program(problem, tables)
    result = _highs(m, time_limit, gap, progress)
    seconds = time.perf_counter() - start
    if not _has_solution(result):
        if "infeasible" in str(result.termination_condition).lower():
            return Solution("infeasible", None, None, -math.inf, seconds, "milp-highs", _shortfalls(problem, time_limit))
        raise DeepmadError(f"no feasible design found within {time_limit:g} s ({result.termination_condition}); raise --time-limit")
    result.solution_loader.load_vars()
    arch = assemble(problem, *picked(m, tables))
    check = problem.check(arch)
    if not check.feasible:
        raise DeepmadError(f"internal error: the solver's design breaks {', '.join(v.message for v in check.violations)}")
    bound = result.objective_bound if result.objective_bound is not None else math.inf
    bound = max(bound, check.objective)
    proven = (bound - check.objective) <= gap * abs(bound) + 1e-9
    return Solution("optimal" if proven else "time_limit", arch, check, bound, seconds, "milp-highs")


def _smallest(problem: Problem, attr: str, time_limit: float) -> float:
    """The least total of option attribute ``attr`` over the space and guidelines (budgets dropped)."""
    free = dataclasses.replace(problem, flops=None, params=None, rho=None, max_layers=None)
    tables = Tables.of(free)
    m = build_program(free, tables)
    m.objective.deactivate()
    expr = sum(getattr(o, attr) * m.stem[i] for i, o in enumerate(tables.stem)) + sum(
        getattr(o, attr) * m.pick[j, i] for j, opts in enumerate(tables.stages) for i, o in enumerate(opts)
    )
    m.least = pyo.Objective(expr=expr / (FLOPS_UNIT if attr == "flops" else 1), sense=pyo.minimize)
    result = _highs(m, time_limit, 0.0)
    if not _has_solution(result):  # the guidelines alone leave no design
        return math.inf
    result.solution_loader.load_vars()
    return getattr(problem.check(assemble(free, *picked(m, tables))), attr)


def _smallest_rho(problem: Problem, time_limit: float) -> float:
    """The least max-rho the space allows (other budgets dropped), within 1e-6 relative above;
    the budget itself when the space meets it, infinity when the guidelines leave no design."""
    free = dataclasses.replace(problem, flops=None, params=None, max_layers=None)
    tables = Tables.of(free)

    def feasible(rho: float) -> bool:
        return _has_solution(_highs(build_program(dataclasses.replace(free, rho=rho), tables), time_limit, 1.0))

    if feasible(problem.rho):
        return problem.rho
    lo, hi = problem.rho, 1e6
    if not feasible(hi):
        return math.inf
    while hi / lo > 1 + 1e-6:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if feasible(mid) else (mid, hi)
    return hi


def _shortfalls(problem: Problem, time_limit: float) -> tuple[Shortfall, ...]:
    out = []
    for name, limit in (("flops", problem.flops), ("params", problem.params), ("rho", problem.rho), ("layers", problem.max_layers)):
        if limit is not None:
            least = _smallest_rho(problem, time_limit) if name == "rho" else _smallest(problem, name, time_limit)
            if least > limit:
                out.append(Shortfall(name, limit, least))
    return tuple(out)
