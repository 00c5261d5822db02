"""The large-space method, as a declared pipeline of steps.

A solve's state (:class:`State`) holds the incumbent (the best design found,
re-scored by :meth:`deepmad.problem.problem.Problem.check`), the best proven bound,
the dual multipliers found so far and the width chains worth an exact look.
The steps run in the order of :data:`STEPS`; each is given a share of the
solve's work (:class:`deepmad.solvers.settings.Settings`), in reference
seconds, plus what the steps before it left unused (less what they spent
beyond their shares), and turns it into a count of what it does (moves,
passes, knapsacks, rounds). No step reads the
clock to decide what to do; the clock only stops: the solve at its time
limit, a step that runs :data:`OVERRUN` times longer than its work, and the
exact MILP over the options column generation keeps, which HiGHS runs until
the step's stop. On a machine much slower than the reference these stops can
change the design; below them, the same problem gives the same design.

1. ``search``: the local search (:mod:`deepmad.solvers.search`) from the
   start design (a warm start, or a wide shallow one), then from kicks of
   its best: a first incumbent, and the local optima the climbs reached.
2. ``own widths``: the incumbent's widths solved exactly
   (:mod:`deepmad.solvers.fixed`): the best inner widths, kernels and depths
   there; then, while its work lasts, the other local optima's widths, best
   first (a climb's objective says little of what its widths hold).
3. ``column generation``: the LP bound of the whole space and its duals, and
   where the bound is tight enough, reduced-cost fixing and the exact MILP
   over the options that survive (:mod:`deepmad.solvers.colgen`): this
   proves optima.
4. ``dual``: the Lagrangian dual with exact entropy products, started from
   column generation's duals (:mod:`deepmad.solvers.dual`): a bound, and the
   width chains of the designs its passes trace.
5. ``branching`` (where the solve plans at least ``branching_above``
   reference seconds of work; below, its share goes to ``widths``): a
   best-first branch and bound over boxes of widths (an interval of output
   widths per stage and for the stem), each bounded by the dual over the
   designs it allows, split where its bound is largest; the width chains its
   boxes' passes trace are solved exactly. Its open boxes bound every design:
   this closes what the dual alone leaves (the Lagrangian duality gap), and
   finds designs in widths the whole space's dual never traces.
6. ``widths``: a best-first search over width chains (every chain a dual pass
   traced, in the dual and in the boxes of the branch and bound; then the
   neighbours of the incumbent's), each probed by a few LP relaxations (a
   tight bound) before the best probed chains are solved exactly.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import interrupt
from ..model.architecture import Architecture
from ..problem.problem import Check, Problem
from . import colgen, dual as dual_module
from .context import Context
from .engine import Engine
from .fixed import FixedWidths, Widths
from .formulation import Formulation
from .milp import pareto, solve_options, stem_options
from .progress import Progress
from .rows import Program
from .search import Search
from .settings import Settings


@dataclass
class State:
    """What a solve knows so far (see the module docstring)."""

    problem: Problem
    engine: Engine
    context: Context
    program: Program
    settings: Settings
    progress: Progress
    deadline: float
    gap: float
    start: Architecture | None = None
    warm: colgen.Lagrangian | None = None
    design: Architecture | None = None
    check: Check | None = None
    bound: float = math.inf
    multipliers: dict = field(default_factory=dict)
    chains: list[tuple[int, ...]] = field(default_factory=list)
    optima: list[Architecture] = field(default_factory=list)  # the search's local optima, best first
    solved_chains: set = field(default_factory=set)
    lagrangian: colgen.Lagrangian | None = None
    fixed: FixedWidths | None = None
    step_deadline: float = math.inf
    rows: dict = field(default_factory=dict)  # the rows the dual's multipliers are of
    work: dict = field(default_factory=dict)

    @property
    def objective(self) -> float:
        return self.check.objective if self.check is not None else -math.inf

    def offer(self, arch: Architecture | None, step: str) -> bool:
        """Keep ``arch`` where it meets every constraint and beats the incumbent."""
        if arch is None:
            return False
        check = self.problem.check(arch)
        if not check.feasible or check.objective <= self.objective:
            return False
        self.design, self.check = arch, check
        self.progress.event(step, check.objective, self.bound, "a better design")
        return True

    def tighten(self, bound: float, step: str) -> None:
        if bound < self.bound:
            self.bound = bound
            self.progress.event(step, self.check.objective if self.check else None, bound, "a better bound")

    def closed(self) -> bool:
        """Whether the incumbent is proven within the gap asked for."""
        return self.check is not None and math.isfinite(self.bound) and self.bound - self.objective <= self.gap * abs(self.bound) + 1e-9

    @property
    def until(self) -> float:
        """When the running step stops at the latest (``time.perf_counter``): the solve's deadline, or
        the step's own (:data:`OVERRUN` times its work), whichever comes first."""
        return min(self.deadline, self.step_deadline)

    def stopped(self) -> bool:
        return interrupt.requested() or time.perf_counter() > self.until


# -- the steps ------------------------------------------------------------------


def _lines(state: State) -> int:
    """The lines of a pricing pass over the space (a line: one inner width and kernel of one output
    width of a stage)."""
    return sum(t.pairs * len(t.kernels) for t in state.engine.stages)


def _pass_cost(state: State, points: int) -> float:
    """The work of a Lagrangian pass of the dual at ``points`` grid points of the future weight."""
    s = state.settings
    widths = sum(len(t.widths) for t in state.engine.stages)
    return s.cost_dual_line * _lines(state) + s.cost_dual_point * widths * points


def _fixed(state: State) -> FixedWidths:
    """The solve's exact solver at fixed widths (one, so that its multipliers carry from chain to chain)."""
    if state.fixed is None:
        s = state.settings
        state.fixed = FixedWidths(state.engine, state.context, state.program, max_vectors=s.depth_vectors, settings=s)
    return state.fixed


def search(state: State, work: float) -> float:
    """The local search: stage and pair moves, then kicks (see :mod:`deepmad.solvers.search`)."""
    s = Search(state.engine, state.context, cost=state.settings.cost_scored)
    x = s.locate(state.start) if state.start is not None else None
    best = s.climb(x if x is not None else s.start(), work=work)
    state.offer(s.architecture(best), "search")
    optima = [best]
    rng = np.random.default_rng(state.settings.search_seed)
    for _ in range(state.settings.search_kicks):
        if s.spent >= work or state.stopped():
            break
        y = s.climb(s.kick(best, rng), work=work - s.spent)
        optima.append(y)
        if _better(s.value(y), s.value(best)):
            best = y
            state.offer(s.architecture(y), "search")
    feasible = sorted((y for y in optima if s.value(y)[0] == 0.0), key=lambda y: -s.value(y)[1])
    state.optima = [s.architecture(y) for y in feasible]
    return s.spent


def _better(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether ``(violation, objective)`` ``a`` beats ``b``."""
    return (a[0], -a[1]) < (b[0], -b[1])


def own_widths(state: State, work: float) -> float:
    """The incumbent's widths solved exactly, then the search's other local optima's, best first,
    while the work lasts."""
    if state.design is None:
        return 0.0
    fw = _fixed(state)
    before = fw.spent
    tried = set()
    for arch in [state.design, *state.optima]:
        if fw.spent - before >= work or state.stopped():
            break
        if _chain(arch) in tried:
            continue
        tried.add(_chain(arch))
        _solve_chain(state, _chain(arch), work - (fw.spent - before), start=tuple(s.depth for s in arch.stages), step="own widths")
    return fw.spent - before


def _chain(arch: Architecture) -> tuple[int, ...]:
    return (arch.stem.channels, *(s.channels for s in arch.stages))


def _solve_chain(state: State, chain: tuple[int, ...], work: float, *, start=None, step: str, solves: int = 10**9) -> None:
    w = Widths.of(state.engine, chain)
    if w is None or chain in state.solved_chains:
        return
    fw = _fixed(state)
    found = fw.solve(w, floor=state.objective, solves=solves, start=start, multipliers=fw.multipliers or state.multipliers,
                     deadline=state.until, work=work)
    if found.proven:
        state.solved_chains.add(chain)
    state.offer(found.design, step)


def lagrangian_dual(state: State, work: float) -> float:
    """The dual with exact entropy products: its bound, its multipliers, and its designs' widths."""
    s = state.settings
    per_pass = _pass_cost(state, s.dual_points)
    passes = max(1, int(work / per_pass))
    start = state.multipliers or (state.fixed.multipliers if state.fixed is not None else {})
    # The LP's duals price every tangent a little: the ones that matter are a few.
    top = max((abs(v) for v in start.values()), default=0.0)
    start = {k: v for k, v in start.items() if abs(v) > 1e-9 * top}
    found = dual_module.dual(state.engine, state.program, start, passes=passes, points=s.dual_points,
                             patience=s.dual_patience, tolerance=s.dual_tolerance, deadline=state.until)
    state.tighten(found.bound, "dual")
    state.multipliers = found.multipliers
    state.rows = {row.key: row for row in state.program.rows()}
    for key in found.multipliers:
        if key[0] == "rho" and key not in state.rows:
            state.rows[key] = state.program.tangent(key[1], key[2])
    _pool(state, found.designs)
    return found.passes * per_pass


def _pool(state: State, designs: list) -> None:
    """Keep the width chains of a dual's traced designs for the widths step."""
    for r in designs:
        chain = r.widths(state.engine)
        if chain not in state.chains:
            state.chains.append(chain)


def widths(state: State, work: float) -> float:
    """Best first over width chains: the chains the dual's and the branch and bound's passes traced
    and those of passes at multipliers near the dual's, then (after all of those) the neighbours of
    the incumbent's. A chain waits ranked by its bound at the dual's multipliers, which is nearly
    the same for chains whose optima differ by percents; when it comes first it is probed
    (:meth:`FixedWidths.probe`: a few LPs give it a far tighter bound) and ranked among the probed
    chains by that. The best probed chain is solved exactly, from the probe's multipliers, with at
    most :attr:`Settings.chain_solves` knapsacks, whenever the probes have taken at least as much
    work as the solves. A chain that gives a better design adds its neighbours. Until the work is
    spent or no chain's bound beats the incumbent."""
    if state.design is None:
        return 0.0
    s = state.settings
    fw = _fixed(state)
    before = fw.spent
    heap: list = []  # (tier, -bound, order, chain), not probed yet: the traced chains (tier 0) before neighbours (1)
    seen: set = set()
    order = itertools.count()

    extra = 0.0  # the perturbed passes' work

    def spent() -> float:
        return fw.spent - before + extra

    def push(chain: tuple[int, ...], tier: int = 0) -> None:
        if chain in seen or chain in state.solved_chains:
            return
        seen.add(chain)
        w = Widths.of(state.engine, chain)
        if w is None:
            return
        bound = fw.bound(w, state.multipliers)
        if bound > state.objective:
            heapq.heappush(heap, (tier, -bound, next(order), chain))

    def near(chain: tuple[int, ...]) -> None:
        for other in _neighbours(state, chain):
            if spent() >= work or state.stopped():
                break
            push(other, 1)

    for chain in state.chains:
        if spent() >= work or state.stopped():
            break
        push(chain)
    for y in _perturbations(state):  # with work to spare: at most half of what is over PERTURBATIONS_ABOVE
        if spent() >= (work - PERTURBATIONS_ABOVE) / 2 or state.stopped():
            break
        extra += _pass_cost(state, s.dual_points)
        push(dual_module.relax(state.engine, state.program, list(state.rows.values()), y, points=s.dual_points)
             .widths(state.engine))
    near(_chain(state.design))
    probed: list = []  # (-bound, order, chain, multipliers), once probed
    probing = solving = 0.0  # the work of the probes, and of the exact solves
    while spent() < work and not state.stopped():
        while probed and -probed[0][0] <= state.objective:
            heapq.heappop(probed)
        while heap and -heap[0][1] <= state.objective:
            heapq.heappop(heap)
        if not heap and not probed:
            break
        at = spent()
        if probed and (not heap or probing >= solving):  # as much work solving as probing
            _, _, chain, y = heapq.heappop(probed)
            before_design = state.objective
            found = fw.solve(Widths.of(state.engine, chain), floor=state.objective, solves=s.chain_solves, multipliers=y,
                             deadline=state.until, work=work - spent())
            if found.proven:
                state.solved_chains.add(chain)
            state.offer(found.design, "widths")
            solving += spent() - at
            if state.objective > before_design:
                near(chain)
            continue
        _, bound, _, chain = heapq.heappop(heap)
        tighter, y = fw.probe(Widths.of(state.engine, chain), state.multipliers, lps=s.probe_lps)
        probing += spent() - at
        if tighter > state.objective:
            heapq.heappush(probed, (-min(tighter, -bound), next(order), chain, y))
    return spent()


PERTURBATIONS_ABOVE = 3.0
"""Reference seconds of the widths step's work below which it solves chains only (the dual's and
the incumbent's neighbours) and traces no perturbed passes."""


def _perturbations(state: State):
    """Multipliers near the dual's best, in a fixed order: each budget's and each effectiveness
    tangent's scaled by 0.8, 0.9, 1.1 and 1.25, one at a time. Their Lagrangian designs' widths are
    chains the dual's own passes did not trace."""
    y = state.multipliers
    for factor in (0.9, 1.1, 0.8, 1.25):
        for key in sorted(y, key=repr):
            if key[0] in ("flops", "params", "latency", "layers", "rho") and y[key] > 0:
                yield {**y, key: y[key] * factor}


def _neighbours(state: State, chain: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The chains one or two grid steps away in one width (the stem's or a stage's), or one step in
    two neighbouring stages' widths together (which keeps equal widths equal), and those where two
    neighbouring stages' different widths are made equal: either's, or the grid width between them
    (no step move reaches these from a chain whose stages of one scoring prefix differ, where
    deepmad-r18's best designs have them equal: at --time-limit 9 to 11 and column generation's
    share at 0.1, its designs 0.964-0.968 of the best known in three of five limits without them,
    0.983 in all five with them)."""
    space = state.problem.space
    grids = [space.stem_grid()] + [space.channel_grid()] * (len(chain) - 1)
    at = [grid.index(c) for grid, c in zip(grids, chain)]
    out = []
    moves = [((p,), step) for p in range(len(chain)) for step in (1, -1, 2, -2, 4, -4, 8, -8)]
    moves += [((p, p + 1), step) for p in range(1, len(chain) - 1) for step in (1, -1, 2, -2)]
    for places, step in moves:
        if all(0 <= at[p] + step < len(grids[p]) for p in places):
            near = list(chain)
            for p in places:
                near[p] = grids[p][at[p] + step]
            out.append(tuple(near))
    for p in range(1, len(chain) - 1):  # two neighbouring stages' widths made equal: at either's, or between
        if chain[p] != chain[p + 1]:
            middle = grids[p][(at[p] + at[p + 1]) // 2]
            for c in (chain[p], chain[p + 1], middle):
                out.append(tuple(c if q in (p, p + 1) else chain[q] for q in range(len(chain))))
    return out


def branching(state: State, work: float) -> float:
    """Best-first branch and bound over boxes of widths. A box allows, per place (the stem, each
    stage), an interval of output widths; its bound is the Lagrangian dual over the designs it
    allows (:func:`deepmad.solvers.dual.dual`, from its parent's multipliers, for
    :attr:`Settings.node_passes` passes), never above its parent's. The open box of largest bound
    is split in two at the middle of its widest interval (:func:`_place`), and the width chains its
    children's passes trace are solved exactly (at most :attr:`Settings.node_solves` knapsacks
    each): a box's designs lie in widths the whole space's dual never traces. A box of one chain is
    solved exactly. The largest bound of the boxes still open (and of chains not proven) bounds
    every design."""
    if state.design is None or not math.isfinite(state.bound):
        return 0.0
    s = state.settings
    engine = state.engine
    fw = _fixed(state)
    before = fw.spent
    per_pass = _pass_cost(state, s.dual_points)
    passes = 0

    def spent() -> float:
        return fw.spent - before + passes * per_pass

    # A box is ranked by its own dual bound (the whole space's unknown here: infinite), which may lie
    # above the bound another step proved.
    heap = [(-math.inf, 0, dual_module.Allowed.whole(engine), state.multipliers)]
    count = 1
    unresolved = -math.inf  # the bounds of single chains not proven

    def tighten() -> None:  # what the boxes still open (and the chains not proven) leave
        state.tighten(max(-heap[0][0] if heap else -math.inf, unresolved, state.objective), "branching")

    while heap and spent() < work and not state.stopped():
        top = -heap[0][0]
        if top <= state.objective:
            break
        _, _, box, y = heapq.heappop(heap)
        place = _place(box)
        if place is None:  # one width chain: solved exactly
            chain = box.chain(engine)
            w = Widths.of(engine, chain)
            if w is not None:
                found = _fixed(state).solve(w, floor=state.objective, multipliers=fw.multipliers or y, deadline=state.until,
                                            work=work - spent())
                state.offer(found.design, "branching")
                if not found.proven:
                    unresolved = max(unresolved, top)
            tighten()
            continue
        lo, hi = box.interval(place)
        for child in box.split(place, (lo + hi + 1) // 2):
            if spent() >= work or state.stopped():
                heapq.heappush(heap, (-top, count, child, y))  # not bounded yet: its parent's bound
                count += 1
                continue
            passes_left = max(1, min(s.node_passes, int((work - spent()) / per_pass)))
            found = dual_module.dual(engine, state.program, y, passes=passes_left, points=s.dual_points, patience=s.node_passes,
                                     tolerance=s.dual_tolerance, deadline=state.until, allowed=child)
            passes += found.passes
            bound = min(found.bound, top)
            _pool(state, found.designs)
            for r in found.designs[:s.node_chains]:
                if bound <= state.objective or spent() >= work or state.stopped():
                    break
                chain = r.widths(engine)
                w = Widths.of(engine, chain)
                if w is not None and chain not in state.solved_chains and fw.bound(w, found.multipliers) > state.objective:
                    _solve_chain(state, chain, work - spent(), start=tuple(d for *_, d in r.stages), step="branching",
                                 solves=s.node_solves)
            if bound > state.objective:
                heapq.heappush(heap, (-bound, count, child, found.multipliers if found.passes else y))
                count += 1
        tighten()
    tighten()
    return spent()


def _place(box: "dual_module.Allowed") -> int | None:
    """Where a box is split: the place (a stage, or the stem) whose interval holds the most widths,
    the last such stage on a tie (late widths set most of the cost); ``None`` where the box is one
    width chain."""
    places = range(len(box.sizes) - 2, -2, -1)
    place = max(places, key=lambda q: box.interval(q)[1] - box.interval(q)[0])
    lo, hi = box.interval(place)
    return place if hi > lo else None


def column_generation(state: State, work: float) -> float:
    """Column generation's bound and duals (the dual's start), and where it leaves few enough options
    that can beat the incumbent, the exact MILP over them: a proof."""
    s = state.settings
    per_caps = s.cost_line * _lines(state) + s.cost_pass  # a caps pass costs what a pricing pass does
    passes = max(3, int(0.2 * work / per_caps))
    caps = colgen.caps(state.engine, state.context, state.program, passes=passes,
                       hint=state.warm.caps if state.warm is not None else None, deadline=state.until)
    spent = min(passes, 60) * per_caps
    result = colgen.generate(state.engine, state.context, state.program, caps, s, work=work - spent, tolerance=state.gap,
                             floor=state.objective, start=state.design, warm=state.warm, deadline=state.until)
    spent += result.work
    state.lagrangian = result.lagrangian
    state.multipliers = {k: v for k, v in result.duals.items() if k[0] in ("flops", "params", "latency", "layers", "rho", "spread",
                                                                               "depth_sum", "depth_squares")}
    state.offer(result.design, "column generation")
    state.tighten(result.bound, "column generation")
    if state.closed() or state.design is None or state.stopped():
        return spent
    kept = colgen.survivors(state.engine, result, state.objective, limit=s.survivors)
    if kept is None:
        return spent
    formulation = Formulation(state.program, caps)
    solved = solve_options(state.problem, formulation, stem_options(state.engine), [pareto(k) for k in kept],
                           seconds=max(0.1, state.until - time.perf_counter()), gap=state.gap, start=state.design)
    state.offer(solved.design, "fixing")
    if solved.status in ("Optimal", "Infeasible"):  # designs outside the options kept are worth less than the incumbent
        state.tighten(max(solved.bound, state.objective) if math.isfinite(solved.bound) else state.objective, "fixing")
    return spent


@dataclass(frozen=True)
class Step:
    """A step of the pipeline: its name, the share of the work it is given (``share(settings,
    work)``, ``work`` the solve's planned work), and what it does (``run(state, work) -> work
    spent``, in reference seconds)."""

    name: str
    share: Callable[[Settings, float], float]
    run: Callable[[State, float], float]


def _branches(s: Settings, work: float) -> bool:
    """Whether a solve of ``work`` planned reference seconds runs the branch and bound."""
    return work >= s.branching_above


STEPS: tuple[Step, ...] = (
    Step("search", lambda s, w: s.search_share, search),
    Step("own widths", lambda s, w: s.own_share, own_widths),
    Step("column generation", lambda s, w: s.colgen_share, column_generation),
    Step("dual", lambda s, w: s.dual_share, lagrangian_dual),
    Step("branching", lambda s, w: s.branching_share if _branches(s, w) else 0.0, branching),
    Step("widths", lambda s, w: s.widths_share + (0.0 if _branches(s, w) else s.branching_share), widths),
)
"""The large-space method's steps, in order (see the module docstring)."""


OVERRUN = 3.0
"""A step that runs this many times longer than its work on the reference machine (its estimate of
its own operations gone wrong, or a machine this much slower) is stopped there, so that the steps
after it still run. Neither on the reference machine nor beside two busy processes (up to 1.85x
slower, with estimates up to 1.3x low) does a step come near it; at 2.0, deepmad-r18 at
--time-limit 60 gave another result beside them."""


def run(state: State, work: float) -> State:
    """Run :data:`STEPS` on ``state`` with ``work`` reference seconds in all; what a step leaves
    unused goes to the next one, and what it spends beyond its share (a step finishes the operation
    it is in) is taken from the next, so that the solve does the work it planned. Stops early once
    the incumbent is proven within the gap."""
    left = 0.0
    for step in STEPS:
        if state.closed() or state.stopped():
            break
        budget = step.share(state.settings, work) * work + left
        if budget <= 0.0:
            left = budget
            continue
        state.step_deadline = time.perf_counter() + OVERRUN * budget + 0.5
        spent = step.run(state, budget)
        state.step_deadline = math.inf
        state.work[step.name] = spent
        left = budget - spent
        state.progress.event(step.name, state.check.objective if state.check else None, state.bound,
                             f"step done ({spent:.1f} s of work)")
    return state
