"""The best design at fixed widths, proven: depth vectors ranked by Lagrangian bounds, each solved exactly.

With the stem and stage widths fixed, the entropy weights ``V_j`` are
constants; what is left per stage is its inner width, kernel and depth. With
the depths fixed too, every prefix's layer count ``D_i`` is known, the
effectiveness bound is the linear row ``2 S_i >= D_i ln(D_i / rho0)`` (the
program's tangent at ``n = D_i``), and the depth penalty is a constant: a
small multiple-choice knapsack that HiGHS solves exactly (the program of
:mod:`deepmad.solvers.formulation` with each prefix's layer range collapsed
to its ``D_i``).

Over the depth vectors, a Lagrangian bound ranks them all at once: at
multipliers ``lam`` of the budgets and ``theta_i`` of the effectiveness rows,
``sum_j max over (b, k) of ((V_j + 2 sum theta) e - lam . costs) + lam . B -
sum_i theta_i D_i ln(D_i / rho0) - penalty`` bounds the knapsack of every
depth vector, and separates over the stages, so it is a sum of small tables
broadcast over the vectors. Each solved vector's LP duals are new multipliers
(the bound of a vector is the least over the multipliers tried); vectors are
solved best bound first until no bound beats the best design: then it is the
optimum at these widths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import highspy
import numpy as np

from .. import interrupt
from ..model.architecture import Architecture
from ..problem.problem import Check, Problem
from .context import Context
from .engine import Engine, assemble
from .formulation import Options, _highs
from .kernels import undominated
from .pricing import stage_options, stem_options
from .rows import FLOPS_UNIT, Program


@dataclass(frozen=True)
class Widths:
    """A width chain as engine indices: the stem's, and per stage the output width's (``m``) and the
    input's (``ai``, the previous width in the stage's inputs)."""

    stem: int
    stages: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, engine: Engine, widths: tuple[int, ...]) -> "Widths | None":
        """The chain of ``(stem, c_0, c_1, ...)``; ``None`` where the space's rules do not allow it."""
        s = np.flatnonzero(engine.stem.widths == widths[0])
        if not len(s):
            return None
        out = []
        for t, a, c in zip(engine.stages, widths[:-1], widths[1:]):
            m, ai = t.width_index(c), t.input_index(a)
            if m is None or ai is None or not t.a_lo[m] <= ai < t.a_hi[m]:
                return None
            out.append((m, ai))
        return cls(int(s[0]), tuple(out))

    def values(self, engine: Engine) -> tuple[int, ...]:
        return (int(engine.stem.widths[self.stem]), *(int(t.widths[m]) for t, (m, _) in zip(engine.stages, self.stages)))


@dataclass(frozen=True, eq=False)
class Table:
    """A stage's options at fixed widths: ``base`` at depth 1, and per depth (rows) and option
    (columns) their entropy and costs; ``layers`` per depth."""

    stage: int
    base: Options
    depths: np.ndarray
    entropy: np.ndarray
    flops: np.ndarray
    params: np.ndarray
    latency: np.ndarray
    layers: np.ndarray

    def at(self, d: int) -> Options:
        """The options at depth ``d``."""
        r = int(np.searchsorted(self.depths, d))
        b = self.base
        n = len(b)
        return Options(self.stage, b.c_in, b.channels, b.inner, b.kernel, np.full(n, d), self.entropy[r], self.flops[r], self.params[r],
                       self.latency[r], np.full(n, self.layers[r]))


@dataclass
class Found:
    """The outcome at one width chain: the best design (``None``: none meets the constraints),
    whether it is proven the best there, and the knapsacks solved."""

    design: Architecture | None
    check: Check | None
    proven: bool
    solves: int


class FixedWidths:
    """Exact solves at fixed widths (see the module docstring), for one problem."""

    def __init__(self, engine: Engine, context: Context, program: Program, *, max_vectors: int, settings=None):
        self.engine, self.context, self.program = engine, context, program
        self.settings = settings  # its cost_* fields count the work done (none: no count)
        self.problem: Problem = program.problem
        self.max_vectors = max_vectors
        self.multipliers: dict[tuple, float] = {}  # the last feasible knapsack's LP duals
        self.tabled = 0  # options tabled per depth, depth vectors bounded, knapsacks, their LPs' options,
        self.bounded = 0  # and the MILPs with their simplex iterations and nodes: the work done
        self.knapsacks = 0
        self.options = 0
        self.mips = 0
        self.mip_options = 0  # options of the knapsacks solved as MILPs
        self.iterations = 0
        self.nodes = 0
        self.unfinished = 0  # knapsacks stopped at a limit
        self.capped = 0  # of which at MIP_SECONDS
        self._highs = None  # one HiGHS object for every knapsack
        self._depth_terms: dict = {}  # the layer counts and fixed terms of the last window of depths

    def weights(self, w: Widths) -> list[float]:
        """Per stage, the objective weight of its entropy at these widths."""
        ctx = self.context
        values = w.values(self.engine)
        ends = [float(ctx.end_weight(i, values[last + 1])) for i, last in enumerate(ctx.last)]
        return [sum(ends[i] for i in ctx.prefixes_of(j)) for j in range(ctx.nstages)]

    def table(self, w: Widths, j: int, depths: np.ndarray) -> "Table":
        """Stage ``j``'s options at these widths, for each of ``depths``."""
        t = self.engine.stages[j]
        m, ai = w.stages[j]
        p = np.arange(t.starts[m], t.starts[m + 1])
        K = len(t.kernels)
        pp, kk = np.repeat(p, K), np.tile(np.arange(K), len(p))
        base = stage_options(self.engine, j, np.full(len(pp), m), np.full(len(pp), ai), pp, kk, np.ones(len(pp), dtype=np.int64))
        n = (np.asarray(depths) - 1)[:, None]
        lat = np.zeros((len(depths), len(pp)))
        if t.latency is not None:
            lat = base.latency[None, :] + n * t.latency.rest[pp, kk][None, :]
        return Table(j, base, np.asarray(depths), base.entropy[None, :] + n * t.rest.entropy[pp, kk][None, :],
                     base.flops[None, :] + n * t.rest.flops[pp, kk][None, :], base.params[None, :] + n * t.rest.params[pp, kk][None, :],
                     lat, np.array([int(t.layers(int(d))) for d in depths]))

    def _setup(self, w: Widths, start):
        """The depth vectors to rank (all, or a window around ``start``), each stage's options per
        depth, and what the depths fix."""
        eng, ctx = self.engine, self.context
        depth_sets = [t.depths for t in eng.stages]
        window = None
        if math.prod(len(d) for d in depth_sets) > self.max_vectors:  # a window around the start's depths
            window = depth_sets = _window(depth_sets, start, self.max_vectors)
        shape = tuple(len(d) for d in depth_sets)
        tables = [self.table(w, j, depth_sets[j]) for j in range(ctx.nstages)]
        self.tabled += sum(tb.entropy.size for tb in tables)
        self.stem = stem_options(eng).take(np.array([w.stem]))
        values = w.values(eng)
        self._ends = [values[last + 1] for last in ctx.last]
        # What the depths alone fix is the same at every width chain: computed once per window.
        at = tuple(tuple(int(x) for x in d) for d in depth_sets)
        if at not in self._depth_terms:
            D = _cumulative(ctx, [tb.layers for tb in tables], shape)
            grid = [np.asarray(depth_sets[j]).reshape(_axis(j, len(shape))) for j in range(len(shape))]
            self._depth_terms = {at: (D, self._fixed_terms(D, grid, shape))}
        D, fixed = self._depth_terms[at]
        return depth_sets, window, shape, tables, D, fixed

    def bound(self, w: Widths, y: dict[tuple, float]) -> float:
        """A bound on every design with widths ``w`` (all depths), at multipliers ``y`` of the
        program's rows (a tangent's multiplier counts for its prefix's exact curve, which is tighter)."""
        _, _, shape, tables, D, fixed = self._setup(w, None)
        if math.prod(shape) > self.max_vectors:
            return math.inf
        return float(np.max(self._bound(tables, self.weights(w), y, D, fixed, shape)))

    def probe(self, w: Widths, y: dict[tuple, float], *, lps: int) -> tuple[float, dict[tuple, float]]:
        """A bound on every design with widths ``w`` from ``lps`` LP relaxations (no MILP): each at
        the depth vector of largest bound, whose bound becomes its LP's value, and whose duals are
        the next multipliers (starting from ``y``). Returns the bound and the last multipliers.
        Cheap, and far closer to the chain's optimum than :meth:`bound` at the whole space's
        multipliers, which ranks chains of very different optima alike (deepmad-r34: the best
        chain 18th of 40 by that bound, 5th after four LPs)."""
        depth_sets, window, shape, tables, D, fixed = self._setup(w, None)
        if window is not None:
            return math.inf, dict(y)
        V = self.weights(w)
        bound = np.full(shape, math.inf)
        tried = np.zeros(shape, dtype=bool)
        for _ in range(lps):
            bound = np.minimum(bound, self._bound(tables, V, y, D, fixed, shape))
            at = np.unravel_index(int(np.argmax(bound)), shape)
            if tried[at] or not bound[at] > -math.inf:  # its own LP already bounds the largest
                break
            tried[at] = True
            _, _, value, duals = self._relaxation(w, tables, self.stem, [int(depth_sets[j][i]) for j, i in enumerate(at)])
            if value is not None:
                bound[at] = min(bound[at], value + fixed[at])  # the LP leaves out the depth penalty
            elif isinstance(duals, _Ray):
                bound[at] = -math.inf
            if duals is not None:
                y = duals
        bound = np.minimum(bound, self._bound(tables, V, y, D, fixed, shape))
        return float(np.max(bound)), dict(y)

    @property
    def spent(self) -> float:
        """The work done so far, in reference seconds."""
        s = self.settings
        if s is None:
            return 0.0
        return (self.bounded * s.cost_vector + self.knapsacks * s.cost_knapsack + self.options * s.cost_option + self.mips * s.cost_mip
                + self.mip_options * s.cost_mip_option + self.iterations * s.cost_iteration + self.nodes * s.cost_node
                + self.capped * MIP_SECONDS)

    def solve(self, w: Widths, *, floor: float, solves: int = 10**9, start: tuple[int, ...] | None = None,
              multipliers: dict[tuple, float] | None = None, deadline: float = math.inf, work: float = math.inf) -> Found:
        """The best design at widths ``w`` that beats ``floor``, within ``solves`` knapsacks
        (each a MILP, or an LP that shows the MILP cannot beat the floor); ``start``: depths to try
        first; ``multipliers``: the first to bound the depth vectors with (as a rule a neighbouring
        chain's, whose bound is then tight from the start). Its last LP's duals are kept in
        :attr:`multipliers` for the next chain. Stops once ``work`` more reference seconds are
        spent, or early at ``deadline`` (``time.perf_counter``)."""
        until = self.spent + work
        unfinished = self.unfinished
        depth_sets, window, shape, tables, D, fixed = self._setup(w, start)
        stem = self.stem
        V = self.weights(w)
        bound = np.full(shape, math.inf)
        best: tuple[Architecture, Check] | None = None
        y = dict(multipliers) if multipliers else {}
        current = tuple(int(np.searchsorted(depth_sets[j], d)) for j, d in enumerate(start)) if start is not None and all(
            d in depth_sets[j] for j, d in enumerate(start)) else None
        done = 0
        proven = False
        while done < solves and self.spent < until and not interrupt.past(deadline):
            np.minimum(bound, self._bound(tables, V, y, D, fixed, shape), out=bound)  # a solved vector's stays -inf
            at = int(np.argmax(bound))
            top = float(bound.flat[at])
            if current is None:
                current = tuple(int(x) for x in np.unravel_index(at, shape))
            if top <= max(floor, best[1].objective if best else -math.inf) + 1e-9 * abs(top):
                proven = window is None and self.unfinished == unfinished
                break
            depths = [int(depth_sets[j][i]) for j, i in enumerate(current)]
            bound[current] = -math.inf
            done += 1
            found, duals = self._knapsack(w, tables, stem, depths, floor if best is None else max(floor, best[1].objective))
            if duals is not None:
                y = duals
                if not isinstance(duals, _Ray):
                    self.multipliers = duals
            if found is not None and (best is None or found[1].objective > best[1].objective):
                best = found
            current = None
        return Found(best[0] if best else None, best[1] if best else None, proven, done)

    # -- pieces ------------------------------------------------------------------

    def _fixed_terms(self, D: dict[int, np.ndarray], grid: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        """What the depths alone give every vector: the penalty, and ``-inf`` where the hard depth
        spread or the layer budget rules a vector out."""
        ctx, problem = self.context, self.problem
        out = np.broadcast_to(-np.asarray(ctx.penalty(grid), dtype=float), shape).copy()
        if problem.max_depth_spread is not None and ctx.covered:
            ds = np.broadcast_arrays(*(grid[j] for j in ctx.covered))
            out[np.max(ds, axis=0) - np.min(ds, axis=0) > problem.max_depth_spread] = -math.inf
        if problem.max_layers is not None:
            out[np.broadcast_to(D[len(ctx.last) - 1], shape) > problem.max_layers] = -math.inf
        return out

    def _bound(self, tables, V, y: dict[tuple, float], D: dict[int, np.ndarray], fixed: np.ndarray, shape) -> np.ndarray:
        """The Lagrangian bound of every depth vector at multipliers ``y`` (module docstring)."""
        ctx, problem = self.context, self.problem
        self.bounded += math.prod(shape)
        lam_f = y.get(("flops",), 0.0) / FLOPS_UNIT
        lam_p, lam_t, lam_l = y.get(("params",), 0.0), y.get(("latency",), 0.0), y.get(("layers",), 0.0)
        theta = [sum(v for k, v in y.items() if k[0] == "rho" and k[1] == i) for i in range(len(ctx.last))]
        st = self.stem
        boost = sum(float(ctx.end_weight(i, self._ends[i])) + 2.0 * theta[i] for i in range(len(ctx.last)))
        # The terms are summed from the stem out: stage j's table and the cuts of the prefixes that
        # end at it vary over the depths of stages 0..j only, so every sum but the last is over a
        # table 1/16 or less the size of the whole (deepmad-r18: 2.5 ms a bound, 7 ms summed at full size).
        out = np.asarray(float(boost * st.entropy[0] - lam_f * st.flops[0] - lam_p * st.params[0] - lam_t * st.latency[0] - lam_l)
                         + sum(y.get(k, 0.0) * v for k, v in self.program.limits().items()))
        out = out - sum(theta[i] * _cut(D, i, problem.rho) for i in ctx.ending(-1) if theta[i])
        for j, tb in enumerate(tables):
            boost = V[j] + 2.0 * sum(theta[i] for i in ctx.prefixes_of(j))
            per_depth = np.max(boost * tb.entropy - lam_f * tb.flops - lam_p * tb.params - lam_t * tb.latency, axis=1) - lam_l * tb.layers
            out = out + per_depth.reshape(_axis(j, len(shape)))
            for i in ctx.ending(j):
                if theta[i]:
                    out -= theta[i] * _cut(D, i, problem.rho)  # of out's shape: out is a new array
        out = np.broadcast_to(out, shape) + fixed
        return out

    def at_depths(self, w: Widths, depths: list[int], *, floor: float) -> tuple[Architecture, Check] | None:
        """The best design with widths ``w`` and ``depths`` where it beats ``floor`` (one knapsack)."""
        eng = self.engine
        if any(d not in t.depths for t, d in zip(eng.stages, depths)):
            return None
        tables = [self.table(w, j, np.array([d])) for j, d in enumerate(depths)]
        self.stem = stem_options(eng).take(np.array([w.stem]))
        values = w.values(eng)
        self._ends = [values[last + 1] for last in self.context.last]
        grid = [np.array([d]).reshape(_axis(j, len(depths))) for j, d in enumerate(depths)]
        D = _cumulative(self.context, [tb.layers for tb in tables], (1,) * len(depths))
        if not np.isfinite(self._fixed_terms(D, grid, (1,) * len(depths))).all():
            return None
        return self._knapsack(w, tables, self.stem, list(depths), floor)[0]

    def _knapsack(self, w: Widths, tables, stem: Options, depths: list[int], floor: float):
        """The best design at widths ``w`` and ``depths`` where it beats ``floor`` (else ``None``), and
        multipliers for the bound: the LP relaxation's row duals, or, where the LP is infeasible, its
        dual ray, scaled up (any multipliers bound every vector; these drive the bound of vectors
        like this one towards minus infinity)."""
        problem = self.problem
        stages, h, value, y = self._relaxation(w, tables, stem, depths)
        if value is None or value <= floor:
            return None, y
        # Reduced-cost fixing: an option whose reduced cost takes the LP's value to the floor is in
        # no design that beats it, and HiGHS, not told the floor, would search among them.
        reduced = np.asarray(h.getSolution().col_dual)
        drop = np.flatnonzero(value + reduced < floor - 1e-6 * max(1.0, abs(floor)))
        if len(drop):
            h.changeColsBounds(len(drop), drop.astype(np.int32), np.zeros(len(drop)), np.zeros(len(drop)))
        h.setOptionValue("solve_relaxation", False)
        # The floor as HiGHS's cutoff: a design that beats it has a knapsack value above it less the
        # stem's constant (the depth penalty only lowers a design's objective), so no node at or
        # below that holds one. HiGHS keeps a maximisation's bound in its own minimising sense: the
        # cutoff is minus the value.
        h.setOptionValue("objective_bound", -float(floor - self._constant - 1e-9 * max(1.0, abs(floor))))
        h.setOptionValue("mip_rel_gap", 1e-9)
        h.setOptionValue("mip_max_nodes", MAX_NODES)
        h.setOptionValue("time_limit", MIP_SECONDS)
        h.run()
        h.setOptionValue("time_limit", highspy.kHighsInf)
        h.setOptionValue("objective_bound", highspy.kHighsInf)
        info = h.getInfo()
        self.mips += 1
        self.mip_options += sum(len(o) for o in stages) - len(drop)
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kTimeLimit:
            self.capped += 1  # counted as MIP_SECONDS: what it did in them depends on the machine
        else:
            self.iterations += max(0, int(info.simplex_iteration_count))
            self.nodes += max(0, int(info.mip_node_count))
        if status not in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInfeasible):
            self.unfinished += 1  # stopped at a limit: its design, if any, is a good one, not proven the best
        if h.getInfo().primal_solution_status != 2:
            return None, y
        x = np.asarray(h.getSolution().col_value)
        picks, at = [], 0
        for o in stages:
            k = at + int(np.argmax(x[at:at + len(o)]))
            picks.append((o, k - at))
            at += len(o)
        arch = assemble(problem, int(stem.channels[0]), [(int(o.channels[i]), int(o.inner[i]), int(o.kernel[i]), int(o.depth[i])) for o, i in picks])
        check = problem.check(arch)
        if not check.feasible or check.objective <= floor:
            return None, y
        return (arch, check), y

    def _relaxation(self, w: Widths, tables, stem: Options, depths: list[int]):
        """The LP relaxation of the knapsack at ``depths``: its options per stage, its model (solved),
        its value (entropy terms only: the depth penalty is not in it; ``None`` where the LP is
        infeasible or unsolved) and multipliers (its row duals, or where it is infeasible its dual
        ray)."""
        stages = [_undominated(tb.at(d)) for tb, d in zip(tables, depths)]
        self.knapsacks += 1
        self.options += sum(len(o) for o in stages)
        rows, h = self._model(w, stem, stages, depths)
        h.setOptionValue("solve_relaxation", True)
        h.run()
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return stages, h, None, _ray(h, rows)
        if status != highspy.HighsModelStatus.kOptimal:
            return stages, h, None, None
        duals = np.asarray(h.getSolution().row_dual)
        y = {key: max(0.0, float(duals[r])) for r, key in enumerate(rows) if key is not None}
        return stages, h, h.getInfo().objective_function_value + self._constant, y

    def _model(self, w: Widths, stem: Options, stages: list[Options], depths: list[int]):
        """The knapsack at fixed depths on HiGHS: one option per stage, and the program's rows with
        the depths' quantities as constants (the tangent of each prefix at its own ``D_i``; spread
        and moments are constants, checked by the caller). Returns the row keys (``None``: a choice
        row) and the model (one HiGHS object, reused)."""
        ctx, program = self.context, self.program
        layers = [int(self.engine.stages[j].layers(d)) for j, d in enumerate(depths)]
        D = [1 + sum(layers[:last + 1]) for last in ctx.last]
        rows = program.budgets() + ([program.tangent(i, n) for i, n in enumerate(D)] if self.problem.rho is not None else [])
        V = self.weights(w)
        sizes = [len(o) for o in stages]
        n, M = sum(sizes), len(stages)
        # The options' coefficients in every row, dense (a few rows), and the constants the stem and
        # the fixed layer counts add to each row, moved to its right side.
        A = np.zeros((M + len(rows), n))
        shift = np.zeros(len(rows))
        at = np.concatenate([[0], np.cumsum(sizes)])
        for j in range(M):
            A[j, at[j]:at[j + 1]] = 1.0
        for j, o in zip(range(-1, M), [stem] + stages):
            q = program.quantities(j, o.entropy, o.flops, o.params, o.latency, o.layers, o.depth)
            for r, row in enumerate(rows):
                for key, c in row.terms.items():
                    if key in q:
                        value = np.broadcast_to(q[key], (len(o),))
                        if key[0] == "D" or j < 0:  # constants at fixed depths, and the stem
                            shift[r] += c * float(value[0])
                        else:
                            A[M + r, at[j]:at[j + 1]] += c * value
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n, M + len(rows)
        lp.col_cost_ = np.concatenate([V[j] * o.entropy for j, o in enumerate(stages)])
        lp.col_lower_, lp.col_upper_ = np.zeros(n), np.ones(n)
        lp.row_lower_ = np.concatenate([np.ones(M), np.full(len(rows), -highspy.kHighsInf)])
        lp.row_upper_ = np.concatenate([np.ones(M), np.array([row.rhs for row in rows]) - shift])
        rr, cc = np.nonzero(A.T)  # column-wise: for each column, its rows
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(np.bincount(rr, minlength=n))]).astype(np.int32)
        lp.a_matrix_.index_ = cc.astype(np.int32)
        lp.a_matrix_.value_ = A.T[rr, cc]
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n
        if self._highs is None:
            self._highs = _highs()
            # Probing and enumeration in HiGHS's presolve are most of a knapsack's time and find
            # nothing here (deepmad-89m: 0.49 s against 1.6 s for three knapsacks, the same optima);
            # restarts cost a third of the time of the knapsacks that prove a depth vector empty.
            self._highs.setOptionValue("presolve_rule_off", (1 << 15) | (1 << 16))
            self._highs.setOptionValue("mip_allow_restart", False)
            # Sub-MIP heuristics (RINS, RENS) are most of the time of a knapsack whose LP is feasible
            # and whose MILP is not, and find nothing the few nodes of its branching do not
            # (deepmad-89m: 1.51 s -> 0.61 s; the same status and optimum on 666 knapsacks of five presets).
            self._highs.setOptionValue("mip_heuristic_run_rins", False)
            self._highs.setOptionValue("mip_heuristic_run_rens", False)
        h = self._highs
        h.clearModel()
        h.passModel(lp)
        self._constant = float(sum(float(ctx.end_weight(i, self._ends[i])) for i in range(len(ctx.last))) * stem.entropy[0])
        return [None] * M + [row.key for row in rows], h


MAX_NODES = 200
"""Branch-and-bound nodes a knapsack may take: a limit on work, not time, so that it stops at the
same place on any machine."""

MIP_SECONDS = 4.0
"""Most seconds a knapsack's MILP may take. A clock decides here, so it sits well above what any
knapsack takes (on the presets at 60 s, idle: at most 0.86 s on 29m-224, 0.68 s
on r50, 1.0 s on 89m; a few of the largest inverted-residual knapsacks whose LP is feasible but
whose MILP is not take HiGHS seconds to prove so at the root). At 1.0 s, two busy processes beside
a solve made such knapsacks stop there (a stopped one gives no design and counts as MIP_SECONDS of
work), and 29m-224 and r50 at 60 s returned other results than idle; at 4 s the designs of all
seven presets at 10 s and 60 s are those of 1 s, but 89m's at 60 s, which is better (43,777
against 43,718)."""


def _ray(h, keys: list) -> dict[tuple, float] | None:
    """The dual ray of an infeasible LP, by row key (the size of its component in each ``<=`` row),
    scaled so that its largest is 1e6."""
    _, found, ray = h.getDualRay()
    if not found:
        return None
    scale = max(1e-12, max(abs(float(v)) for v in ray))
    return _Ray({key: 1e6 * abs(float(v)) / scale for key, v in zip(keys, ray) if key is not None})


class _Ray(dict):
    """Multipliers read off an infeasible LP's dual ray."""


def _undominated(opts: Options) -> Options:
    """``opts`` (one stage's, at fixed widths and depth) less those another dominates: at least its
    entropy, at most its FLOPs, parameters and latency (ties: the first kept). Dropping them keeps
    the knapsack's optimum, and spares HiGHS's presolve the quadratic work of finding them."""
    n = len(opts)
    order = np.lexsort((np.arange(n), opts.latency, opts.params, opts.flops, -opts.entropy))
    keep = undominated(opts.flops[order], opts.params[order], np.asarray(opts.latency, dtype=float)[order])
    return opts.take(np.sort(order[keep]))


def _cut(D: dict, i: int, rho: float) -> np.ndarray:
    """``D_i ln(D_i / rho0)`` of every depth vector (kept in ``D`` once computed)."""
    key = ("cut", i)
    if key not in D:
        D[key] = D[i] * np.log(D[i] / rho)
    return D[key]


def _axis(j: int, n: int) -> tuple[int, ...]:
    return tuple(-1 if k == j else 1 for k in range(n))


def _cumulative(ctx: Context, layers: list[np.ndarray], shape) -> dict[int, np.ndarray]:
    """``D_i`` of every depth vector, per prefix, over the axes of its stages only (it broadcasts
    to ``shape``)."""
    out, total = {}, np.ones((1,) * len(shape))
    for j, n in enumerate(layers):
        total = total + n.reshape(_axis(j, len(shape)))
        for i in ctx.ending(j):
            out[i] = total
    for i in ctx.ending(-1):
        out[i] = np.ones((1,) * len(shape))
    return out


def _window(depth_sets: list[np.ndarray], start, most: int) -> list[np.ndarray]:
    """Depths around ``start`` (or the middle of each range), as wide as ``most`` vectors allow."""
    centre = start if start is not None else [int(d[len(d) // 2]) for d in depth_sets]
    radius = 0
    while True:
        grown = [d[(d >= c - radius - 1) & (d <= c + radius + 1)] for d, c in zip(depth_sets, centre)]
        if math.prod(len(g) for g in grown) > most or all(len(g) == len(d) for g, d in zip(grown, depth_sets)):
            break
        radius += 1
    return [d[(d >= c - radius) & (d <= c + radius)] for d, c in zip(depth_sets, centre)]
