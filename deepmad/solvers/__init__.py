"""How a design problem is answered: methods by name, and :func:`solve`.

The methods (:data:`METHODS`):

* ``"milp"``: the whole program (:mod:`deepmad.solvers.formulation`) over every
  option of the space, on HiGHS: for spaces small enough to state.
* ``"large"``: the pipeline of :mod:`deepmad.solvers.pipeline` over the
  engine's arrays (:mod:`deepmad.solvers.engine`): any size, a proven bound at
  every stop, and proofs where the bound closes.
* ``"auto"`` picks ``"milp"`` for spaces of at most
  :attr:`Settings.whole_options` stage options.

The test oracles (SCIP, brute force) live in :mod:`deepmad.solvers.checks`.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from .. import interrupt, threads
from ..errors import DeepmadError, InputError, Interrupted
from ..model.architecture import Architecture
from ..problem.presets import preset
from ..problem.problem import Problem
from ..solution import Solution
from . import colgen, diagnose
from .cache import engine_of
from .context import Context
from .formulation import Formulation
from .milp import option_caps, solve_options, stem_options, tables
from .pipeline import State, run
from .pricing import compile_kernels
from .progress import Progress, terminal
from .rows import Program
from .settings import Settings

__all__ = ["METHODS", "Settings", "solve"]


def _status(objective: float, bound: float, gap: float) -> str:
    """``"optimal"`` when ``bound`` proves ``objective`` within ``gap``, else why the solve stopped."""
    if math.isfinite(bound) and bound - objective <= gap * abs(bound) + 1e-9:
        return "optimal"
    return "interrupted" if interrupt.requested() else "time_limit"


def solve_whole(problem: Problem, *, time_limit: float, stop_at: float, gap: float, progress: Progress, start: Architecture | None,
                settings: Settings, warm=None) -> Solution:
    """The ``"milp"`` method."""
    began = time.perf_counter()
    engine = engine_of(problem)
    compile_kernels(engine)
    context = Context(problem)
    program = Program(problem, context, colgen.layer_ranges(engine, context))
    stem, stages = stem_options(engine), tables(engine)
    formulation = Formulation(program, option_caps(context, stem, stages))
    solved = solve_options(problem, formulation, stem, stages, seconds=stop_at - time.perf_counter(), gap=gap, start=start,
                           log=progress.verbose)
    seconds = time.perf_counter() - began
    if solved.design is None:
        if interrupt.requested():
            raise Interrupted(f"interrupted after {seconds:.1f} s, before any design was found")
        if solved.status == "Infeasible":
            return Solution("infeasible", None, None, -math.inf, seconds, "milp", diagnose.shortfalls(problem, engine))
        raise DeepmadError(f"no feasible design found within {time_limit:g} s ({solved.status}); raise --time-limit")
    progress.event("milp", solved.check.objective, solved.bound)
    return Solution(_status(solved.check.objective, solved.bound, gap), solved.design, solved.check, solved.bound, seconds, "milp")


def solve_large(problem: Problem, *, time_limit: float, stop_at: float, gap: float, progress: Progress, start: Architecture | None,
                settings: Settings, warm: colgen.Lagrangian | None = None) -> Solution:
    """The ``"large"`` method: the pipeline, with ``settings.plan_share`` of the time limit as work,
    less the solve's start (``Settings.cost_setup`` and ``cost_setup_line``)."""
    began = time.perf_counter()
    engine = engine_of(problem)
    compile_kernels(engine)
    context = Context(problem)
    program = Program(problem, context, colgen.layer_ranges(engine, context))
    multipliers = {k: v for k, v in warm.duals.items() if k[0] in ("flops", "params", "latency", "layers", "rho", "spread", "depth_sum",
                                                                      "depth_squares")} if warm is not None else {}
    state = State(problem, engine, context, program, settings, progress, stop_at, gap, start=start, warm=warm,
                  multipliers=multipliers)
    if start is not None:
        state.offer(start, "start")
    # The solve's own start (the engine read, the kernels loaded) is counted in its plan, at least
    # a quarter of which is left to the steps.
    setup = settings.cost_setup + settings.cost_setup_line * sum(t.pairs * len(t.kernels) for t in engine.stages)
    plan = settings.plan_share * time_limit
    run(state, max(0.25 * plan, plan - setup))
    seconds = time.perf_counter() - began
    if state.design is None:
        if interrupt.requested():
            raise Interrupted(f"interrupted after {seconds:.1f} s, before any design was found")
        short = diagnose.shortfalls(problem, engine)
        if short or state.bound == -math.inf:
            return Solution("infeasible", None, None, -math.inf, seconds, "large", short)
        raise DeepmadError(f"no feasible design found within {time_limit:g} s; raise --time-limit, or loosen the budgets")
    bound = max(state.bound, state.objective)
    return Solution(_status(state.objective, bound, gap), state.design, state.check, bound, seconds, "large",
                    lagrangian=state.lagrangian, work=dict(state.work))


METHODS: dict[str, Callable[..., Solution]] = {"milp": solve_whole, "large": solve_large}
"""The methods by name (``"auto"`` chooses between them)."""


def method_for(problem: Problem, method: str = "auto", settings: Settings | None = None) -> str:
    """The method :func:`solve` runs for ``problem``: ``method``, or for ``"auto"`` the whole program
    (``"milp"``) on spaces of at most ``settings.whole_options`` stage options, else ``"large"``."""
    if method != "auto":
        return method
    settings = settings if settings is not None else Settings()
    return "milp" if problem.space.option_count() <= settings.whole_options else "large"


def solve(
    problem: Problem | str, *, time_limit: float = 60.0, gap: float = 1e-5, progress: bool | Progress = False, method: str = "auto",
    start: Architecture | Solution | None = None, settings: Settings | None = None, stop_at: float | None = None,
) -> Solution:
    """Maximize ``problem``'s objective (a :class:`Problem` or a preset name).

    ``time_limit`` (seconds) plans the work: the large-space method does what takes
    ``settings.plan_share`` of it on the reference machine, and stops at the limit only where the
    machine runs slower; the same call gives the same design on an idle and a loaded machine.
    ``gap``: the relative gap at which a design counts as optimal. ``progress``: print one line per
    event (step, elapsed, incumbent, bound, gap) on standard error, or a :class:`Progress`.
    ``method``: a name of :data:`METHODS`, or ``"auto"``. ``start``: a design to start from (used
    where it lies in the space and meets every constraint), or a neighbouring problem's
    :class:`Solution`, whose multipliers also start the bound. ``settings``: every tunable
    (:class:`Settings`). ``stop_at``: a ``time.perf_counter()`` value to stop at instead of
    ``time_limit`` after the start (a caller with more to do after the solve), the work still planned
    from ``time_limit``.

    Ctrl-C (SIGINT, in the main thread) stops the solve early: the best design found so far comes
    back with its bound and gap and status ``"interrupted"``; :class:`Interrupted` when none was found
    yet. A second Ctrl-C raises :class:`KeyboardInterrupt`.

    Numerical libraries run one thread each during the solve (``$DEEPMAD_THREADS`` for more; see
    :mod:`deepmad.threads`)."""
    if isinstance(problem, str):
        problem = preset(problem)
    if not (isinstance(time_limit, (int, float)) and not isinstance(time_limit, bool) and math.isfinite(time_limit) and time_limit > 0):
        raise InputError("time_limit", f"must be a positive number of seconds, got {time_limit!r}")
    if not (isinstance(gap, (int, float)) and not isinstance(gap, bool) and 0 <= gap < 1):
        raise InputError("gap", f"must be a relative gap in [0, 1), got {gap!r}")
    if method not in ("auto", *METHODS):
        raise InputError("method", f"must be 'auto', {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    settings = settings if settings is not None else Settings()
    if not isinstance(settings, Settings):
        raise InputError("settings", f"must be a deepmad.solvers.Settings, got {type(settings).__name__}")
    count = problem.space.option_count()
    if method == "milp" and count > settings.milp_options:
        raise InputError(
            "space",
            f"has up to {count:,} stage options; the exact program handles at most {settings.milp_options:,}: "
            "use --method large (or auto), or narrow the channel, inner, kernel or depth ranges",
        )
    warm = None
    if isinstance(start, Solution):
        warm, start = start.lagrangian, start.architecture
    if start is not None and not (isinstance(start, Architecture) and problem.check(start).feasible):
        start = None
    shown = progress if isinstance(progress, Progress) else (terminal() if progress else Progress())
    chosen = method_for(problem, method, settings)
    stop = stop_at if stop_at is not None else time.perf_counter() + time_limit
    with interrupt.catching(), threads.limited():
        return METHODS[chosen](problem, time_limit=time_limit, stop_at=stop, gap=gap, progress=shown, start=start, settings=settings,
                               warm=warm)
