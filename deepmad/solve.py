"""Solving a problem exactly: the MILP of :mod:`deepmad.program` on HiGHS.

The returned objective is the accounting's value of the returned design
(:meth:`Problem.check`), the bound is HiGHS's proven dual bound (never below
that objective), and the design is checked against every constraint before
it is returned. When no design is feasible, min-cost solves say which budgets
the space cannot meet and the smallest value of each it allows.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.solvers.highs import Highs as PyomoHighs
from pyomo.contrib.solver.common.results import SolutionStatus

from .architecture import Architecture
from .errors import DeepmadError, InputError, Interrupted
from . import colgen, interrupt, lagrange
from .arrays import stage_arrays
from .options import assemble, option_at, pareto, stem_options
from .search import local_search
from .presets import preset
from .problem import Check, Problem
from .program import FLOPS_UNIT, Tables, build_program, picked
from .solution import Shortfall, Solution

# HiGHS's status after a cancel (Ctrl-C) is one Pyomo does not name; it warns, and the result is still read.
logging.getLogger("pyomo.contrib.solver.solvers.highs").setLevel(logging.ERROR)

MAX_OPTIONS = 2_000_000
"""Largest space (in stage options) the ``"milp"`` method states whole."""

WHOLE = 30_000
"""Spaces with at most this many stage options are solved whole by default; larger ones by column generation."""

BUILD_SECONDS = 200e-6
"""Seconds per stage option to state the whole program and give HiGHS time on it (measured: a
114,168-option space built and solved in 18 s); the large-space method solves the whole program
when too many options survive only where the time left allows this much."""

SEARCH_SHARE, COLGEN_SHARE, DUAL_SHARE, WIDTHS_SHARE, REPAIR_SHARE, MASTER_SHARE = 0.3, 0.55, 0.45, 0.35, 0.3, 0.7
"""How the large-space method shares its time: the local search gets SEARCH_SHARE of the time
limit, column generation COLGEN_SHARE of what is left, the Lagrangian dual with exact products
(:func:`deepmad.lagrange.dual`) DUAL_SHARE of what is left then, the exact MILPs at the widths of
its designs WIDTHS_SHARE of what is left after that (or, where no design is known yet, the local
search from column generation's longest path REPAIR_SHARE), the MILP over the master's options
MASTER_SHARE of what is left after that, and the exact MILP over the options that survive
reduced-cost fixing (or the whole program) the rest; what any step leaves unused goes to the
climb over neighbouring widths (:func:`_widths_climb`). Each new best design first gets the best
inner widths, kernels and depths at its widths (:func:`_fixed_widths_design`). Measured at 300 s
on the presets: a second local search from the longest path, once the first had found a design
and its widths had been solved exactly, never beat it (deepmad-r18, r50, 29m-224, 50m). With
COLGEN_SHARE 0.75, deepmad-r50 and r34 found designs 0.5 % and 0.7 % better, but on deepmad-r18
the dual gave up before it beat column generation's bound (36,917 found, against 37,463), and
on deepmad-89m no time was left for it (bound 48,417, against 45,880)."""

WIDTHS_SECONDS = 20.0
"""Most seconds for one MILP at fixed widths (:func:`_fixed_widths_design`; deepmad-r18: 5 s to
prove its optimum)."""

MASTER_OPTIONS = 500
"""Options per stage in the first round of the master's MILP (see :func:`_master_design`). On
``deepmad-r50`` (41,883 options could beat the local search's design) the whole master's MILP
spent its 30 s in HiGHS's presolve; 1,000 and 2,000 per stage found designs 3 % and 5 % better
in 3 s and 24 s."""

MAX_SURVIVORS = 30_000
"""Largest number of options left by reduced-cost fixing that the exact MILP is handed."""


class _StartedHighs(PyomoHighs):
    """Pyomo's HiGHS interface that hands HiGHS a starting point (``start``: pairs of a Pyomo
    variable and its value, a partial solution HiGHS completes) once the model is loaded."""

    start: list = []

    def _solve(self):
        if interrupt.requested():  # Ctrl-C came while Pyomo loaded the model: stop at HiGHS's first callback
            self._solver_model.cancelSolve()
        if self.start:
            index = self._pyomo_var_to_solver_var_map  # id(variable) -> HiGHS column
            cols = np.array([index[id(v)] for v, _ in self.start], dtype=np.int32)
            self._solver_model.setSolution(len(cols), cols, np.array([x for _, x in self.start], dtype=float))
        return super()._solve()


def _start_values(m: pyo.ConcreteModel, tables: Tables, arch: Architecture) -> list:
    """The program's binaries that state ``arch``, as (variable, value) pairs; empty when one of
    its options is not among the tables' (a dominated option was left out)."""
    values = []
    c_in = arch.stem.channels
    for o, opt in enumerate(tables.stem):
        values.append((m.stem[o], float(opt.channels == c_in)))
    for j, (stage, options) in enumerate(zip(arch.stages, tables.stages)):
        key = (c_in, stage.channels, stage.inner, stage.kernel, stage.depth)
        for o, opt in enumerate(options):
            values.append((m.pick[j, o], float((opt.c_in, opt.channels, opt.inner, opt.kernel, opt.depth) == key)))
        c_in = stage.channels
    return values if sum(x for _, x in values) == 1 + len(arch.stages) else []


def _highs(m: pyo.ConcreteModel, time_limit: float, gap: float, progress: bool = False, start: list | None = None):
    # HiGHS keeps one thread scheduler per process, set up by the first run with that run's
    # thread count; start a fresh one so that one thread is always what runs.
    highspy.Highs.resetGlobalScheduler(True)
    if interrupt.requested():
        raise Interrupted("interrupted before any design was found")
    solver = _StartedHighs()
    solver.start = start or []
    with interrupt.running(solver):
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


def solve(
    problem: Problem | str, *, time_limit: float = 300.0, gap: float = 1e-5, progress: bool = False, method: str = "auto",
    start: Architecture | Solution | None = None,
) -> Solution:
    """Maximize ``problem``'s objective (a :class:`Problem` or a preset name); ``time_limit``
    in seconds, ``gap`` relative. With ``progress``, the solvers print their logs (incumbent,
    bound, gap, elapsed time) on standard output.

    ``method``: ``"milp"`` states the whole program (:mod:`deepmad.program`) and hands it to
    HiGHS; ``"colgen"`` works on spaces of any size (:mod:`deepmad.colgen`: a local search for
    a design, column generation for a bound, reduced-cost fixing, then the exact MILP over
    the options left; where a gap is left, the Lagrangian dual with the entropy products kept
    exact (:mod:`deepmad.lagrange`) for a tighter bound, exact MILPs at the widths of the
    designs found for better ones, and where too many options are left, the best design made
    of the options column generation gathered); ``"auto"`` picks ``"milp"`` for spaces of at most :data:`WHOLE`
    options. Raises :class:`InputError` for a space too large for the ``"milp"`` method.

    ``start``: a design to start from (a warm start, e.g. the optimum of a neighbouring
    problem), used when it lies in the space and meets every constraint: HiGHS gets it as its
    first incumbent, the large-space method climbs from it. Or a neighbouring problem's
    :class:`Solution`: its design as above, and the multipliers of its :attr:`Solution.lagrangian`
    as the first prices of column generation (and those of its entropy caps as their first), whose
    first bound is then close to the neighbour's where the problems differ only in their budgets or
    rules. The optimum does not depend on it.

    Ctrl-C (SIGINT, in the main thread) stops the solve early: the best design found so far
    comes back with its bound and gap and status ``"interrupted"``; :class:`Interrupted` when
    none was found yet. A second Ctrl-C raises :class:`KeyboardInterrupt`."""
    if isinstance(problem, str):
        problem = preset(problem)
    if not (isinstance(time_limit, (int, float)) and math.isfinite(time_limit) and time_limit > 0):
        raise InputError("time_limit", f"must be a positive number of seconds, got {time_limit!r}")
    if not (isinstance(gap, (int, float)) and 0 <= gap < 1):
        raise InputError("gap", f"must be a relative gap in [0, 1), got {gap!r}")
    if method not in ("auto", "milp", "colgen"):
        raise InputError("method", f"must be 'auto', 'milp' or 'colgen', got {method!r}")
    count = problem.space.option_count()
    if method == "milp" and count > MAX_OPTIONS:
        raise InputError(
            "space",
            f"has up to {count:,} stage options; the exact program handles at most {MAX_OPTIONS:,}: "
            "use --method colgen (or auto), or narrow the channel, inner, kernel or depth ranges",
        )
    warm = None
    if isinstance(start, Solution):
        warm, start = start.lagrangian, start.architecture
    if start is not None and not (isinstance(start, Architecture) and problem.check(start).feasible):
        start = None
    with interrupt.catching():
        if method == "colgen" or (method == "auto" and count > WHOLE):
            return _solve_large(problem, time_limit, gap, progress, start, warm)
        return _solve_whole(problem, time_limit, gap, progress, start)


def _status(objective: float, bound: float, gap: float) -> str:
    """``"optimal"`` when ``bound`` proves ``objective`` within ``gap``, else why the solve stopped."""
    if math.isfinite(bound) and bound - objective <= gap * abs(bound) + 1e-9:
        return "optimal"
    return "interrupted" if interrupt.requested() else "time_limit"


def _solve_whole(problem: Problem, time_limit: float, gap: float, progress: bool, start: Architecture | None) -> Solution:
    """The ``"milp"`` method (see :func:`solve`)."""
    began = time.perf_counter()
    tables = Tables.of(problem)
    m = build_program(problem, tables)
    result = _highs(m, time_limit, gap, progress, _start_values(m, tables, start) if start is not None else None)
    seconds = time.perf_counter() - began
    if not _has_solution(result):
        if interrupt.requested():
            raise Interrupted(f"interrupted after {seconds:.1f} s, before any design was found")
        if "infeasible" in str(result.termination_condition).lower():
            return Solution("infeasible", None, None, -math.inf, seconds, "milp-highs", _shortfalls(problem, time_limit))
        raise DeepmadError(f"no feasible design found within {time_limit:g} s ({result.termination_condition}); raise --time-limit")
    result.solution_loader.load_vars()
    arch, check = _checked(problem, m, tables)
    bound = result.objective_bound if result.objective_bound is not None else math.inf
    bound = max(bound, check.objective)
    return Solution(_status(check.objective, bound, gap), arch, check, bound, seconds, "milp-highs")


def _smallest(problem: Problem, attr: str, time_limit: float) -> float:
    """The least total of option attribute ``attr`` over the space and guidelines (budgets dropped)."""
    free = dataclasses.replace(problem, flops=None, params=None, rho=None, max_layers=None, latency=None)
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
    check = problem.check(assemble(free, *picked(m, tables)))
    return check.latency_ms if attr == "latency" else getattr(check, attr)


def _smallest_rho(problem: Problem, time_limit: float) -> float:
    """The least max-rho the space allows (other budgets dropped), within 1e-6 relative above;
    the budget itself when the space meets it, infinity when the guidelines leave no design."""
    free = dataclasses.replace(problem, flops=None, params=None, max_layers=None, latency=None)
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
    """The budgets the space cannot meet, each with the smallest value it allows."""
    out = []
    budgets = (("flops", problem.flops), ("params", problem.params), ("rho", problem.rho), ("layers", problem.max_layers), ("latency", problem.latency))
    for name, limit in budgets:
        if limit is not None:
            least = _smallest_rho(problem, time_limit) if name == "rho" else _smallest(problem, name, time_limit)
            if least > limit:
                out.append(Shortfall(name, limit, least))
    if interrupt.requested():  # a cancelled min-cost solve says nothing
        raise Interrupted("interrupted while finding the smallest value of each budget")
    return tuple(out)


def _checked(problem: Problem, m: pyo.ConcreteModel, tables: Tables) -> tuple[Architecture, Check]:
    """The design a solved ``m`` picked, checked against every constraint."""
    arch = assemble(problem, *picked(m, tables))
    check = problem.check(arch)
    if not check.feasible:
        raise DeepmadError(f"internal error: the solver's design breaks {', '.join(v.message for v in check.violations)}")
    return arch, check


def _widths(arch: Architecture) -> tuple[int, ...]:
    return (arch.stem.channels, *(s.channels for s in arch.stages))


def _fixed_widths_design(
    problem: Problem, widths: list[tuple[int, ...]], arch: Architecture, seconds: float, gap: float
) -> tuple[Architecture, Check]:
    """The best design found with the stem and stage widths of one of ``widths`` (tried in turn,
    each once), or ``arch`` when none is better. At fixed widths the entropy weights are constants
    and only the inner widths, kernels and depths are left: the program holds a few thousand
    options and HiGHS solves it exactly, in at most :data:`WIDTHS_SECONDS` each, within
    ``seconds`` in all. A better incumbent, not a bound."""
    deadline = time.perf_counter() + seconds
    best = (arch, problem.check(arch))
    for chain in dict.fromkeys(widths):
        if interrupt.past(deadline):
            break
        stages = []
        for j, c in enumerate(chain[1:]):
            arr = stage_arrays(problem, j, c)
            at = np.flatnonzero(arr.inputs == chain[j]) if arr is not None else ()
            if not len(at):
                break
            ai = int(at[0])
            stages.append(pareto([
                option_at(arr, ai, bi, ki, int(d)) for bi in range(len(arr.inner)) for ki in range(len(arr.kernels)) for d in arr.depths
            ]))
        stem = [o for o in stem_options(problem) if o.channels == chain[0]]
        if len(stages) < len(chain) - 1 or not stem:  # widths the space's rules do not allow
            continue
        tables = Tables(stem, stages)
        m = build_program(problem, tables)
        start = _start_values(m, tables, best[0]) if _widths(best[0]) == chain else None
        improved = _improved(problem, m, tables, best, min(WIDTHS_SECONDS, max(0.1, deadline - time.perf_counter())), gap, False, start)
        if improved is None:
            break
        best = improved
    return best


def _widths_climb(problem: Problem, arch: Architecture, seconds: float, gap: float) -> tuple[Architecture, Check]:
    """Hill climbing over the widths within ``seconds``: the widths of ``arch`` with one of them
    (stem or stage) one grid step up or down, each solved exactly (:func:`_fixed_widths_design`);
    the best of them where it beats the design so far, and again from there."""
    deadline = time.perf_counter() + seconds
    best = (arch, problem.check(arch))
    grids = [problem.space.stem_grid()] + [problem.space.channel_grid()] * len(arch.stages)
    while not interrupt.past(deadline):
        widths = _widths(best[0])
        near = [
            widths[:p] + (grid[at + step],) + widths[p + 1:]
            for p, grid in enumerate(grids) for step in (1, -1)
            for at in [grid.index(widths[p])] if 0 <= at + step < len(grid)
        ]
        found = _fixed_widths_design(problem, near, best[0], deadline - time.perf_counter(), gap)
        if found[1].objective <= best[1].objective:
            break
        best = found
    return best


def _improved(
    problem: Problem, m: pyo.ConcreteModel, tables: Tables, best: tuple[Architecture, Check], seconds: float, gap: float,
    progress: bool, start: list | None,
) -> tuple[Architecture, Check] | None:
    """The design HiGHS finds for ``m`` within ``seconds`` where it beats ``best``, else ``best``;
    ``None`` after Ctrl-C."""
    try:
        solved = _highs(m, seconds, gap, progress, start)
    except Interrupted:
        return None
    if _has_solution(solved):
        solved.solution_loader.load_vars()
        found = _checked(problem, m, tables)
        if found[1].objective > best[1].objective:
            return found
    return best


def _master_design(
    problem: Problem, result: colgen.Result, arch: Architecture, seconds: float, gap: float, progress: bool
) -> tuple[Architecture, Check]:
    """The best design found among the options column generation gathered (its master
    program's, less those that cannot be in a design better than the best so far), or ``arch``
    when none is better: a better incumbent, not a bound (the options left out may hold better
    designs). In rounds, within ``seconds``: a MILP over the :data:`MASTER_OPTIONS` options of
    largest reduced cost per stage, started from the best design so far, then over twice as
    many, until a round holds them all. Ctrl-C ends it with the best design so far."""
    deadline = time.perf_counter() + seconds
    best = (arch, problem.check(arch))
    most = MASTER_OPTIONS
    while not interrupt.past(deadline):
        options = colgen.promising(result, best[1].objective, most=most)
        tables = Tables(stem_options(problem), [pareto(c) for c in options])
        if not all(tables.stages):
            break
        m = build_program(problem, tables, bounds=result.bounds)
        improved = _improved(problem, m, tables, best, max(0.1, deadline - time.perf_counter()), gap, progress,
                             _start_values(m, tables, best[0]))
        if improved is None:
            break
        best = improved
        if all(len(c) < most for c in options):  # every option that could do better was in
            break
        most *= 2
    return best


def _solve_large(
    problem: Problem, time_limit: float, gap: float, progress: bool, start: Architecture | None, warm: colgen.Lagrangian | None
) -> Solution:
    """The ``"colgen"`` method (see :func:`solve`)."""
    began = time.perf_counter()
    spare = lambda: time_limit - (time.perf_counter() - began)  # noqa: E731
    left = lambda: max(1.0, spare())  # noqa: E731
    log = (lambda line: print(line, flush=True)) if progress else None
    arch = local_search(problem, seconds=SEARCH_SHARE * time_limit, start=start)
    check = problem.check(arch)
    found = check.feasible
    if log:
        log(f"local search: objective {check.objective:.4f}" + ("" if found else " (infeasible)"))
    if not found:
        least = colgen.smallest_costs(problem)
        short = tuple(
            Shortfall(name, limit, least[name] if name == "latency" else round(least[name]))
            for name, limit in (("flops", problem.flops), ("params", problem.params), ("latency", problem.latency))
            if limit is not None and least[name] > limit
        )
        if short:
            return Solution("infeasible", None, None, -math.inf, time.perf_counter() - began, "colgen-highs", short)
    else:
        # The local search moves one stage at a time; at its widths an exact MILP gives every stage
        # its best inner width, kernel and depth together (deepmad-29m-224: 27,403 against 23,710).
        arch, check = _fixed_widths_design(problem, [_widths(arch)], arch, min(WIDTHS_SECONDS, 0.5 * left()), gap)
        if log:
            log(f"the same widths, exactly: objective {check.objective:.4f}")
    floor = check.objective if found else -math.inf
    result = colgen.generate(
        problem, time_limit=COLGEN_SHARE * left(), tolerance=gap, floor=floor, start_with=arch if found else None, log=log,
        warm=warm,
    )
    if result.design is not None:  # a longest path beat the local search's design
        arch, check, found = result.design, problem.check(result.design), True
        if log:
            log(f"column generation's design: objective {check.objective:.4f}")
    bound = result.bound
    open_ = lambda: not found or bound - check.objective > gap * abs(bound)  # noqa: E731
    # A pass of the dual prices the whole space, as a round of column generation does.
    if found and open_() and DUAL_SHARE * left() >= 2.0 * result.round_seconds and not interrupt.requested():
        # The big-M links of ln(c) * S weaken the LP; the Lagrangian with the products kept exact
        # bounds tighter where they are what binds (deepmad-r18), and its designs' widths, given
        # their best inner widths, kernels and depths by an exact MILP, are designs the searches
        # miss (deepmad-r18: 37,463 against 36,712).
        relaxed = lagrange.dual(
            colgen.Space(problem), lagrange.Multipliers.of_duals(problem, result.duals),
            deadline=time.perf_counter() + DUAL_SHARE * left(), beat=bound,
        )
        bound = min(bound, relaxed.bound)
        if log:
            log(f"Lagrangian dual with exact products: bound {relaxed.bound:.4f} after {relaxed.passes} passes")
        tried = _widths(arch)
        arch, check = _fixed_widths_design(problem, [r.widths for r in relaxed.designs if r.widths != tried], arch,
                                           WIDTHS_SHARE * left(), gap)
        if log:
            log(f"exact MILPs at the widths of its designs: objective {check.objective:.4f}")
    if not found and spare() >= 1.0 and not interrupt.requested():
        # The longest path at the LP's prices (the Lagrangian relaxation's design) breaks a budget
        # or rho0 as a rule; the local search repairs it, where the first search found no design.
        repaired = local_search(problem, seconds=REPAIR_SHARE * left(), start=result.paths.design(problem))
        repaired_check = problem.check(repaired)
        if log:
            log(f"local search from the longest path: objective {repaired_check.objective:.4f}"
                + ("" if repaired_check.feasible else " (infeasible)"))
        if repaired_check.feasible:
            arch, check = _fixed_widths_design(problem, [_widths(repaired)], repaired, min(WIDTHS_SECONDS, 0.5 * left()), gap)
            found = True
    if (not found or bound - check.objective > gap * abs(bound)) and not interrupt.requested():
        whole = problem.space.option_count()
        kept = colgen.survivors(problem, result, check.objective, limit=MAX_SURVIVORS) if found else None
        if log and found:
            left_ = f"more than {MAX_SURVIVORS:,}" if kept is None else f"{sum(len(k) for k in kept):,}"
            log(f"reduced-cost fixing: {left_} options can beat the design (bound {bound:.4f})")
        if found and kept is None and not (whole <= MAX_OPTIONS and left() >= BUILD_SECONDS * whole) and spare() >= 1.0:
            # No exact MILP fits: look for a better design among the options gathered, and
            # fix again from it (a better design leaves fewer options that can beat it).
            better = _master_design(problem, result, arch, MASTER_SHARE * left(), gap, progress)
            if better[1].objective > check.objective:
                arch, check = _fixed_widths_design(problem, [_widths(better[0])], better[0], min(WIDTHS_SECONDS, 0.5 * left()), gap)
                kept = colgen.survivors(problem, result, check.objective, limit=MAX_SURVIVORS)
                if log:
                    left_ = f"more than {MAX_SURVIVORS:,}" if kept is None else f"{sum(len(k) for k in kept):,}"
                    log(f"the master's options as a MILP: objective {check.objective:.4f}; {left_} options can beat it")
        if kept is not None:
            tables = Tables(stem_options(problem), [pareto(k) for k in kept])
        elif whole <= MAX_OPTIONS and left() >= BUILD_SECONDS * whole:
            # Too many options survive (or no design is known yet), but the whole program is small
            # enough to state: solve it with the time left, from the design found so far.
            tables = Tables.of(problem)
            if log:
                log(f"the whole program ({tables.size:,} options) on HiGHS for the {left():.0f} s left")
        else:
            tables = None
        if tables is not None:
            m = build_program(problem, tables, bounds=result.bounds)
            try:
                solved = _highs(m, left(), gap, progress, _start_values(m, tables, arch) if found else None)
            except Interrupted:  # Ctrl-C while the program was built: keep what was found
                solved = None
        if tables is not None and solved is not None:
            if _has_solution(solved):
                solved.solution_loader.load_vars()
                better, better_check = _checked(problem, m, tables)
                if not found or better_check.objective > check.objective:
                    arch, check, found = better, better_check, True
            # Designs outside the kept options are worth less than the design found before.
            milp_bound = solved.objective_bound if solved.objective_bound is not None else math.inf
            if found:
                bound = min(bound, max(milp_bound, check.objective))
            elif "infeasible" in str(solved.termination_condition).lower() and kept is None:
                return Solution("infeasible", None, None, -math.inf, time.perf_counter() - began, "colgen-highs",
                                _shortfalls(problem, left()))
    if found and open_() and spare() >= 1.0 and not interrupt.requested():
        # The steps above stop early where they run out of options to try (deepmad-r34: after
        # 200 of 300 s); the time left goes to the neighbouring widths of the best design.
        arch, check = _widths_climb(problem, arch, spare(), gap)
        if log:
            log(f"exact MILPs at neighbouring widths: objective {check.objective:.4f}")
    seconds = time.perf_counter() - began
    if not found and not check.feasible:
        if interrupt.requested():
            raise Interrupted(f"interrupted after {seconds:.1f} s, before any design was found")
        raise DeepmadError(f"no feasible design found within {time_limit:g} s; raise --time-limit, or loosen the budgets")
    bound = max(bound, check.objective)
    return Solution(_status(check.objective, bound, gap), arch, check, bound, seconds, "colgen-highs", lagrangian=result.lagrangian)
