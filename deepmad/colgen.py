"""The exact method for large spaces: column generation, a Lagrangian bound, reduced-cost fixing.

The program of :mod:`deepmad.program` has one column per stage option, and a
preset space has billions of them, so its LP relaxation cannot be built
whole (on the presets it lies 1.5 % to 15 % above the best designs known,
which is what keeps them from being proven optimal). So:

0. **Entropy caps.** Longest paths over the width graph, with Lagrange
   multipliers on the budgets and on tangents of the effectiveness bound,
   cap ``S_i`` per scoring prefix and end width (:func:`space_bounds`): the
   big-M of the program's ``ln(c) * S`` products, so the tighter the better.
1. **Column generation.** A master program (:class:`Master`, held in HiGHS
   and grown column by column) holds a few thousand options.
   Its LP relaxation's duals ``y`` price every option of the space in bulk
   (:mod:`deepmad.arrays`): an option's reduced cost is an affine function of
   its entropy, FLOPs, parameters, latency, layers, depth and widths (:class:`Prices`).
   The best-priced options join the master, until none prices above zero.
2. **A valid bound at every round.** Relaxing every row but "one option per
   stage" and the width flow between stages (and one stem, one depth
   moment) with the multipliers ``y`` gives the Lagrangian bound
   ``sum_r y_r b_r + longest path + sigma terms``: the longest path over the
   width graph whose edges are the best reduced costs of the options from
   one width to another (:class:`Paths`). It is an upper bound on every
   design of the space, whatever ``y`` is, as long as the signs are right
   (weak duality), and needs no convergence: before the first master LP,
   a pass at no multipliers bounds with the entropy caps alone, or, warm
   started, at a neighbouring problem's multipliers (:class:`Lagrangian`).
   A bound moved by its budget multipliers also bounds the problems with
   smaller budgets (:func:`certified`). Keeping the flow makes it
   independent of the master's flow multipliers, which are poor while the
   master lacks the widths good designs use (deepmad-r18 after 21 rounds:
   39,266 against 65,452 with one best option per stage).
3. **An incumbent.** A local search gives the first design
   (:mod:`deepmad.search`); each round's longest path is a design too, kept
   when it is feasible and better, and where a gap is left the local search
   climbs again from the longest path at the best bound's prices (which
   usually breaks a budget). Where no exact MILP fits (step 4), the master's
   options solved as a MILP, from the best design, often give a better one
   (:func:`deepmad.solve._master_design`): not a bound, since the options
   left out may hold better designs, but a higher floor for step 4.
   Where a gap is left, :mod:`deepmad.lagrange` bounds again with the products
   ``ln(c_i r_i^2) * S_i`` kept exact, from these prices, and
   :func:`deepmad.solve._fixed_widths_design` gives the widths of the designs
   found their best inner widths, kernels and depths by an exact MILP.
4. **Reduced-cost fixing.** A design using option ``o`` of stage ``j`` from
   width ``a`` to ``c`` is worth at most ``y . b + forward_j(a) + rc_o +
   backward_j(c)``, the longest path through it; every option for which that
   is below the incumbent's objective cannot be in a better design. The options
   that survive go to the exact MILP, whose optimum is then the optimum of
   the whole space, and whose bound is a bound for the whole space.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import highspy
import numpy as np
from pyomo.common.tee import capture_output

from . import interrupt
from .architecture import Architecture
from .errors import DeepmadError
from .arrays import StageArrays, stage_arrays
from .options import Option, assemble, option_at, stem_options
from .problem import Problem
from .program import FLOPS_UNIT, Bounds, _pstdev, _reachable_sums, rho_cut, rho_slope


class Space:
    """The full option space of a problem, as chunks (one per stage and output width)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        space = problem.space
        self.stem = stem_options(problem)
        self.nstages = len(space.strides)
        skeleton = space.skeleton()
        self.levels = skeleton.levels()
        self.alpha = problem.scoring.alphas(len(self.levels))
        self.covered = problem.scoring.covered_stages(skeleton)
        self.side = problem.scoring.side(skeleton)

    def chunks(self, j: int):
        for c in self.problem.space.channel_grid():
            arr = stage_arrays(self.problem, j, c)
            if arr is not None:
                yield arr

    def prefixes_of(self, j: int) -> list[int]:
        """The scoring prefixes that contain stage ``j`` (``-1``: the stem)."""
        return [i for i, level in enumerate(self.levels) if j <= level.last_stage or i == len(self.levels) - 1]

    def weight(self, i: int, c: int) -> float:
        """``alpha_i ln(c r_i^2)``: the objective weight of ``S_i`` when prefix ``i`` ends at width ``c``."""
        return self.alpha[i] * math.log(c * (self.side // self.levels[i].reduction) ** 2)

    def has_sigma(self, i: int) -> bool:
        return not (i == len(self.levels) - 1 and self.problem.space.head)


def space_bounds(
    space: Space, *, deadline: float = math.inf, visit: Callable[[StageArrays], None] | None = None,
    hint: tuple[float, float, int] | None = None,
) -> Bounds:
    """Bounds on ``S_i`` and ``D_i`` over the designs of the space that meet the budgets and rho0.

    ``s_max`` and the caps per end width are Lagrangian bounds. For a design
    within the budgets ``B`` and with ``2 S_i >= D_i ln(D_i / rho0) >= g_n +
    s_n (D_i - n)`` (the tangent at any ``n``), and multipliers ``lam, mu >= 0``:
    ``S_i <= (1 + 2 mu) S_i - mu s_n D_i - lam . costs + mu (s_n n - g_n) + lam . B``,
    and the largest value of the first three terms is a longest path over the
    width graph (:func:`_longest_paths`). A coarse grid of multipliers and a
    finer one around its best give the caps; without budgets or rho0 the
    caps are the largest entropies the space allows. Past ``deadline`` (a
    ``time.perf_counter`` value) no further multipliers are tried: every cap
    found so far is valid, only less tight. ``visit(arr)`` is called on each
    chunk of the first pass (which reads every chunk once). ``hint``: a
    ``(t, mu, n)`` the first pass tries too, e.g. the best of a neighbouring
    problem (:attr:`Bounds.setting`), so that its caps are tight from the start.
    """
    problem = space.problem
    budget_f = math.floor(problem.flops) if problem.flops is not None else 0
    budget_p = math.floor(problem.params) if problem.params is not None else 0
    budget_t = latency_limit(problem) or 0.0
    lo, hi = [1], [1]
    for j in range(space.nstages):
        # A block's layer count is its layout's conv count, the same at every output width: one chunk tells.
        arr = next(space.chunks(j))
        lo.append(arr.layers(int(arr.depths[0])))
        hi.append(arr.layers(int(arr.depths[-1])))
    ends = [level.last_stage + 2 for level in space.levels]
    layers = [(sum(lo[:e]), sum(hi[:e])) for e in ends]
    d_lo, d_hi = layers[-1]
    caps: dict[tuple[int, int], float] = {}

    pass_seconds = [math.inf]  # the time of one pass with one multiplier setting, once measured
    chosen: list = [None, math.inf]  # the best setting tried and its cap on the last prefix

    def evaluate(grid: list[tuple[float, float, int]], visit=None) -> tuple[float, float, int]:
        """Tighten the caps with the ``(t, mu, n)`` of ``grid``; the best one tried for the last
        prefix. All in one pass over the space when the time left allows it by the first pass's
        time per setting (the first pass always), otherwise in smaller passes until ``deadline``."""
        best, best_score, at = grid[0], math.inf, 0
        while at < len(grid) and (at == 0 or not interrupt.past(deadline)):
            left = deadline - time.perf_counter()
            # A pass costs about one single-setting pass plus SETTING_SHARE of it per setting.
            affordable = (left / pass_seconds[0] - 1.0) / SETTING_SHARE if left < math.inf else math.inf
            size = len(grid) if pass_seconds[0] == math.inf else max(1, int(min(len(grid) - at, affordable)))
            part = grid[at:at + size]
            started = time.perf_counter()
            score, where = min(zip(_tighten(part, visit), range(len(part))))
            if pass_seconds[0] == math.inf:
                pass_seconds[0] = time.perf_counter() - started
            if score < best_score:
                best, best_score = part[where], score
            if score < chosen[1]:
                chosen[:] = part[where], score
            at += size
        return best

    def _tighten(grid: list[tuple[float, float, int]], visit) -> list[float]:
        lams = [
            (t * 0.5 / budget_f if budget_f else 0.0, t * 0.5 / budget_p if budget_p else 0.0,
             t * 0.5 / budget_t if budget_t > 0 else 0.0, mu, mu * rho_slope(n, problem.rho) if problem.rho else 0.0)
            for t, mu, n in grid
        ]
        scores = []
        for (t, mu, n), (lf, lp, lt, _, _), values in zip(grid, lams, _longest_paths(space, lams, visit)):
            offset = lf * budget_f + lp * budget_p + lt * budget_t
            offset += mu * (rho_slope(n, problem.rho) * n - rho_cut(n, problem.rho)) if problem.rho else 0.0
            for i, level in enumerate(space.levels):
                e = level.last_stage if i < len(space.levels) - 1 else space.nstages - 1
                for c, value in values[e].items():
                    caps[(i, c)] = min(caps.get((i, c), math.inf), value + offset)
            scores.append(max(values[space.nstages - 1].values()) + offset)
        return scores

    first = [(0.0, 0.0, d_lo)]
    if budget_f or budget_p or budget_t or problem.rho:
        # The best of the grid below is as a rule near GUESS: one more setting in the first pass
        # (a tenth of its time) gives caps that already count the budgets.
        t, mu, q = GUESS
        first += [(t, mu, max(1, int(d_lo + q * (d_hi - d_lo))))] + ([hint] if hint is not None else [])
    evaluate([(t if budget_f or budget_p or budget_t else 0.0, mu if problem.rho else 0.0, n) for t, mu, n in first], visit)
    if (budget_f or budget_p or budget_t or problem.rho) and not interrupt.past(deadline):
        ts = [0.0] if not (budget_f or budget_p or budget_t) else list(np.geomspace(20.0, 500.0, 5))
        mus = [0.0] if not problem.rho else [0.0, 0.5, 1.5]
        ns = sorted({max(1, int(d_lo + q * (d_hi - d_lo))) for q in (0.3, 0.8)})
        t, mu, n = evaluate([(t, mu, n) for t in ts for mu in mus for n in ns])
        finer = [
            (t * a, mu * b if mu else b * 0.25, max(1, int(n * c)))
            for a in ((0.7, 1.0, 1.4) if t else (0.0,))
            for b in ((0.7, 1.0, 1.4) if problem.rho else (0.0,))
            for c in ((0.85, 1.0, 1.15) if problem.rho else (1.0,))
        ]
        if not interrupt.past(deadline):
            evaluate(finer)
    s_max = [max(v for (k, _), v in caps.items() if k == i) for i in range(len(space.levels))]
    return Bounds(s_max, layers, caps, chosen[0])


def _longest_paths(
    space: Space, prices_: list[tuple[float, float, float, float, float]], visit: Callable[[StageArrays], None] | None = None
) -> list[dict[int, dict[int, float]]]:
    """For each ``(lam_f, lam_p, lam_t, mu, per_layer)``: per stage ``j`` (``-1``: the stem) and
    output width ``c``, the largest ``(1 + 2 mu) S - per_layer D - lam_f flops - lam_p params -
    lam_t latency`` over the stem and stages ``0..j`` of networks whose stage ``j`` ends at width
    ``c`` (space rules and guidelines kept): a longest path over the width graph."""
    out = []
    for lf, lp, lt, mu, per_layer in prices_:
        out.append({-1: {o.channels: (1 + 2 * mu) * o.entropy - per_layer * o.layers - lf * o.flops - lp * o.params - lt * o.latency
                         for o in space.stem}})
    for j in range(space.nstages):
        for arr in space.chunks(j):
            if visit is not None:
                visit(arr)
            layers = np.array([arr.layers(int(d)) for d in arr.depths], dtype=float)
            for values, (lf, lp, lt, mu, per_layer) in zip(out, prices_):
                before = values[j - 1]
                inflow = np.array([before.get(int(a), -math.inf) for a in arr.inputs])
                g = 1 + 2 * mu
                first = g * arr.first.entropy - lf * arr.first.flops - lp * arr.first.params - lt * arr.first.latency + inflow[:, None, None]
                rest = g * arr.rest.entropy - lf * arr.rest.flops - lp * arr.rest.params - lt * arr.rest.latency
                top = first.max(axis=0)[..., None] + (arr.depths - 1.0)[None, None, :] * rest[..., None] - per_layer * layers
                value = float(top.max()) + g * arr.head[2] - lf * arr.head[0] - lp * arr.head[1] - lt * arr.head[4]
                if value > -math.inf:
                    values.setdefault(j, {})[arr.channels] = value
    return out


@dataclass
class Prices:
    """An option's reduced cost as an affine function of its attributes, per stage (``-1``: stem)."""

    entropy: dict[int, float]
    flops: float
    params: float
    latency: float
    layers: dict[int, float]
    inflow: dict[tuple[int, int], float]  # (stage, input width)
    outflow: dict[tuple[int, int], float]  # (stage, output width)
    depth: dict[int, float]  # covered stage -> coefficient of d
    depth_squared: dict[int, float]  # covered stage -> coefficient of d^2
    constant: float  # sum_r y_r b_r (+ the objective's constant)
    moments: float  # max over depth moments of their reduced cost

    def stem_max(self, stem: list[Option]) -> float:
        return max(self.of(o) for o in stem)

    def of(self, o: Option) -> float:
        j = o.stage
        rc = self.entropy[j] * o.entropy + self.flops * o.flops + self.params * o.params + self.latency * o.latency
        rc += self.layers[j] * o.layers
        rc += self.inflow.get((j, o.c_in), 0.0) + self.outflow.get((j, o.channels), 0.0)
        rc += self.depth.get(j, 0.0) * o.depth + self.depth_squared.get(j, 0.0) * o.depth**2
        return rc


def budget_limits(problem: Problem) -> dict[tuple, float]:
    """The right sides of the budget rows, as :func:`deepmad.program.build_program` states them."""
    out = {}
    if problem.flops is not None:
        out[("flops",)] = math.floor(problem.flops) / FLOPS_UNIT
    if problem.params is not None:
        out[("params",)] = float(math.floor(problem.params))
    if problem.max_layers is not None:
        out[("layers",)] = float(problem.max_layers)
    if problem.latency is not None:
        out[("latency",)] = latency_limit(problem)
    return out


def certificate(problem: Problem, lagrangian: Lagrangian) -> dict[str, dict[str, float] | float]:
    """Column generation's bound for ``problem`` as the multipliers of its budget rows and their
    right sides (``prices`` and ``limits``, by budget name, per unit of the row), in plain numbers:
    what :func:`certified` needs to bound another problem."""
    limits = budget_limits(problem)
    return {"bound": lagrangian.bound, "prices": {key[0]: max(0.0, lagrangian.duals.get(key, 0.0)) for key in limits},
            "limits": {key[0]: limit for key, limit in limits.items()}}


def certified(certificate: dict, problem: Problem) -> float:
    """A bound on ``problem``'s optimum from another problem's :func:`certificate`, where every
    design that meets ``problem``'s constraints meets the other's (the same space, scoring and
    rules; each budget, rho0 included, at most the other's). Then the other's entropy caps hold for
    those designs, and at the same multipliers ``y >= 0`` the Lagrangian bound moves by
    ``y . (b - b_other)`` with the budget rows' right sides ``b``: never above the other's bound.
    Infinite (no bound) where ``problem`` lacks one of the other's budgets."""
    limits = {key[0]: limit for key, limit in budget_limits(problem).items()}
    if any(name not in limits or limits[name] > limit for name, limit in certificate["limits"].items()):
        return math.inf
    return certificate["bound"] + sum(y * (limits[name] - certificate["limits"][name]) for name, y in certificate["prices"].items())


def latency_limit(problem: Problem) -> float | None:
    """The right side of the latency row: the budget less the calibration's fixed term (ms)."""
    return None if problem.latency is None else problem.latency - problem.latency_model.calibration.fixed_ms


def prices(space: Space, duals: dict[tuple, float], bounds: Bounds) -> Prices:
    """The reduced-cost functional of row multipliers ``duals``, keyed as the rows of
    :func:`deepmad.program.build_program` (``("rho", i, n)``, ``("flow", j, a)``, ...), with
    ``y >= 0`` on ``<=`` rows of the maximization; rows not in ``duals`` get 0."""
    problem = space.problem
    s_max, layer_range = bounds.s_max, bounds.layers
    y = lambda *key: duals.get(key, 0.0)  # noqa: E731
    stages = range(-1, space.nstages)
    prefixes = range(len(space.levels))
    constant = sum(y(*key) * limit for key, limit in budget_limits(problem).items())
    entropy = {j: sum(y("S_def", i) for i in space.prefixes_of(j)) for j in stages}
    layers = {j: sum(y("D_def", i) for i in space.prefixes_of(j)) - y("layers") for j in stages}
    # S_i and D_i are columns of their own, bounded by the whole space's s_max and layer range.
    rc_s = {i: (0.0 if space.has_sigma(i) else space.weight(i, problem.space.head)) - y("S_def", i) + y("sigma_sum", i) for i in prefixes}
    rc_d = {i: -y("D_def", i) for i in prefixes}
    for key, v in duals.items():
        if key[0] == "rho":
            _, i, n = key
            constant += v * (rho_slope(n, problem.rho) * n - rho_cut(n, problem.rho))
            rc_s[i] += 2.0 * v
            rc_d[i] -= v * rho_slope(n, problem.rho)
    for i in prefixes:
        constant += max(0.0, rc_s[i]) * s_max[i] + max(rc_d[i] * n for n in layer_range[i])
    inflow = {key[1:]: v for key, v in duals.items() if key[0] == "flow"}
    outflow = {(j - 1, a): -v for (j, a), v in inflow.items()}
    # Sigma columns: y_link = max(0, weight - y_sum) zeroes each one's positive reduced cost
    # (never worse for the bound); it prices the option that ends prefix i at width c.
    for i, level in enumerate(space.levels):
        if space.has_sigma(i):
            widths = [o.channels for o in space.stem] if level.last_stage < 0 else space.problem.space.channel_grid()
            for c in widths:
                key = (level.last_stage, c)
                outflow[key] = outflow.get(key, 0.0) + bounds.cap(i, c) * max(0.0, space.weight(i, c) - y("sigma_sum", i))
    depth, depth_squared, moments = {}, {}, 0.0
    if space.covered:
        for j in space.covered:
            depth[j] = y("depth_sum")
            depth_squared[j] = y("depth_squares")
        for key, v in duals.items():
            if key[0] == "spread":
                _, a, b = key
                constant += v * problem.max_depth_spread
                depth[a] -= v
                depth[b] += v
        n = len(space.covered)
        moments = max(
            -problem.scoring.beta * math.exp(_pstdev(u, v, n)) - y("depth_sum") * u - y("depth_squares") * v
            for u, v in _reachable_sums([problem.space.depths[j] for j in space.covered])
        )
    else:
        constant -= problem.scoring.beta
    return Prices(entropy, -y("flops") / FLOPS_UNIT, -y("params"), -y("latency"), layers, inflow, outflow, depth, depth_squared, constant, moments)


ELASTIC = 1e5
"""Objective cost of one unit of violation of a budget or effectiveness row in the master LP."""


class Master:
    """The master LP, held in HiGHS and grown column by column (warm-started).

    Its rows and columns are those of :func:`deepmad.program.build_program`
    relaxed (a test checks that both give the same LP value on the same
    options), with the budget and effectiveness rows made elastic at a cost of
    :data:`ELASTIC` per unit so that it is feasible from the first round.
    """

    def __init__(self, space: Space, bounds: Bounds):
        self.space, self.bounds = space, bounds
        s_max, layer_range = bounds.s_max, bounds.layers
        problem = space.problem
        with capture_output(capture_fd=True):  # highspy prints a banner on standard output when made
            self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("random_seed", 0)
        self.h.setOptionValue("threads", 1)
        self.h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self.rows: dict[tuple, int] = {}
        self.options: list[tuple[int, Option]] = []  # (column, option)
        inf = highspy.kHighsInf
        for key, limit in budget_limits(problem).items():
            self._elastic(self._row(key, -inf, limit))
        for i in range(len(space.levels)):
            self._row(("S_def", i), 0.0, 0.0)
            self._row(("D_def", i), 0.0, 0.0)
            if space.has_sigma(i):
                self._row(("sigma_sum", i), -inf, 0.0)
        for j in range(space.nstages):
            self._row(("one_option", j), 1.0, 1.0)
        self._row(("one_stem",), 1.0, 1.0)
        for i in range(len(space.levels)):
            s_entries = {("S_def", i): 1.0}
            d_entries = {("D_def", i): 1.0}
            if space.has_sigma(i):
                s_entries[("sigma_sum", i)] = -1.0
            if problem.rho is not None:
                for n in range(layer_range[i][0], layer_range[i][1] + 1):
                    key = ("rho", i, n)
                    self._elastic(self._row(key, -inf, rho_slope(n, problem.rho) * n - rho_cut(n, problem.rho)))
                    s_entries[key] = -2.0
                    d_entries[key] = rho_slope(n, problem.rho)
            weight = 0.0 if space.has_sigma(i) else space.weight(i, problem.space.head)
            self._col(weight, 0.0, s_max[i], s_entries)
            self._col(0.0, float(layer_range[i][0]), float(layer_range[i][1]), d_entries)
        if space.covered:
            self._row(("one_moment",), 1.0, 1.0)
            self._row(("depth_sum",), 0.0, 0.0)
            self._row(("depth_squares",), 0.0, 0.0)
            n = len(space.covered)
            for u, v in _reachable_sums([problem.space.depths[j] for j in space.covered]):
                cost = -problem.scoring.beta * math.exp(_pstdev(u, v, n))
                self._col(cost, 0.0, inf, {("one_moment",): 1.0, ("depth_sum",): float(u), ("depth_squares",): float(v)})
            if problem.max_depth_spread is not None:
                for a in space.covered:
                    for b in space.covered:
                        if a != b:
                            self._row(("spread", a, b), -inf, float(problem.max_depth_spread))
        for o in space.stem:
            self.add(o)

    def _row(self, key: tuple, lo: float, hi: float) -> int:
        if key not in self.rows:
            self.rows[key] = len(self.rows)
            self.h.addRow(lo, hi, 0, np.zeros(0, dtype=np.int32), np.zeros(0))
        return self.rows[key]

    def _col(self, cost: float, lo: float, hi: float, entries: dict[tuple, float]) -> None:
        index = np.array([self.rows[k] for k in entries], dtype=np.int32)
        self.h.addCol(cost, lo, hi, len(index), index, np.array(list(entries.values()), dtype=float))

    def _elastic(self, row: int) -> None:
        self.h.addCol(-ELASTIC, 0.0, highspy.kHighsInf, 1, np.array([row], dtype=np.int32), np.array([-1.0]))

    def add(self, o: Option) -> None:
        """Add the column of option ``o`` (creating the flow and sigma rows it needs)."""
        space, inf = self.space, highspy.kHighsInf
        j = o.stage
        entries: dict[tuple, float] = {("one_stem",) if j < 0 else ("one_option", j): 1.0}
        if j >= 0:
            entries[("flow", j, o.c_in)] = -1.0
        if j + 1 < space.nstages:
            entries[("flow", j + 1, o.channels)] = 1.0
        budgets = budget_limits(space.problem)
        for key, value in ((("flops",), o.flops / FLOPS_UNIT), (("params",), float(o.params)), (("layers",), float(o.layers)),
                           (("latency",), o.latency)):
            if key in budgets:
                entries[key] = value
        for i in space.prefixes_of(j):
            entries[("S_def", i)] = -o.entropy
            entries[("D_def", i)] = -float(o.layers)
        for i, level in enumerate(space.levels):
            if level.last_stage == j and space.has_sigma(i) and ("sigma_link", i, o.channels) not in self.rows:
                link = self._row(("sigma_link", i, o.channels), -inf, 0.0)
                self.h.addCol(space.weight(i, o.channels), 0.0, self.bounds.cap(i, o.channels), 2,
                              np.array([link, self.rows[("sigma_sum", i)]], dtype=np.int32), np.array([1.0, 1.0]))
            if level.last_stage == j and space.has_sigma(i):
                entries[("sigma_link", i, o.channels)] = -self.bounds.cap(i, o.channels)
        if j in space.covered:
            entries[("depth_sum",)] = -float(o.depth)
            entries[("depth_squares",)] = -float(o.depth**2)
            for key in self.rows:
                if key[0] == "spread":
                    entries[key] = entries.get(key, 0.0) + (o.depth if key[1] == j else -o.depth if key[2] == j else 0.0)
        for key in entries:
            if key[0] == "flow":
                self._row(key, 0.0, 0.0)
        self.options.append((self.h.getNumCol(), o))
        self._col(0.0, 0.0, inf, entries)

    def solve(self) -> tuple[float, dict[tuple, float]] | None:
        """The LP optimum and the row duals by key (``None`` when HiGHS finds no optimum)."""
        if self.h.run() == highspy.HighsStatus.kError:
            # HiGHS keeps one thread scheduler per process, set up by its first run; another
            # solve in this process may have set it up with another thread count.
            highspy.Highs.resetGlobalScheduler(True)
            self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            self.h.clearSolver()  # numerical trouble: once more from scratch
            self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        duals = self.h.getSolution().row_dual
        return self.h.getInfo().objective_function_value, {key: duals[r] for key, r in self.rows.items()}


@dataclass
class Priced:
    """The reduced costs of one chunk: ``first[a, b, k]`` and ``extra[b, k, d]`` add up to an option's."""

    arrays: StageArrays
    first: np.ndarray
    extra: np.ndarray

    def best(self) -> tuple[float, list[tuple[float, tuple[int, int, int, int]]]]:
        """The chunk's largest reduced cost, and the best option of each kernel and of each depth."""
        ai = self.first.argmax(axis=0)  # (b, k)
        top_first = np.take_along_axis(self.first, ai[None], axis=0)[0]
        total = top_first[..., None] + self.extra  # (b, k, d)
        picks = set()
        for k in range(total.shape[1]):
            picks.add((k,) + np.unravel_index(int(total[:, k, :].argmax()), total[:, k, :].shape))
        for di in range(total.shape[2]):
            b, k = np.unravel_index(int(total[:, :, di].argmax()), total.shape[:2])
            picks.add((int(k), int(b), di))
        found = [
            (float(total[b, k, di]), (int(ai[b, k]), int(b), int(k), int(self.arrays.depths[di])))
            for k, b, di in sorted(picks)
        ]
        return max(v for v, _ in found), found

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Per input width (``arrays.inputs``), the largest reduced cost of an option fed by it,
        and that option's ``(bi, ki, d)``."""
        best_d = self.extra.argmax(axis=2)  # (b, k)
        whole = self.first + np.take_along_axis(self.extra, best_d[..., None], axis=2)[..., 0][None]
        flat = whole.reshape(len(whole), -1).argmax(axis=1)
        bi, ki = np.unravel_index(flat, whole.shape[1:])
        keys = np.stack([bi, ki, self.arrays.depths[best_d[bi, ki]]], axis=1)
        return whole.reshape(len(whole), -1)[np.arange(len(whole)), flat], keys

    def above(self, threshold: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Every ``(ai, bi, ki, d)`` whose reduced cost is at least ``threshold[ai]``."""
        out = []
        first = self.first - threshold[:, None, None]
        top_extra = self.extra.max(axis=2)  # (b, k)
        for bi, ki in zip(*np.nonzero(first.max(axis=0) + top_extra >= 0.0)):
            ais = np.flatnonzero(first[:, bi, ki] + top_extra[bi, ki] >= 0.0)
            for ai in ais.tolist():
                dis = np.flatnonzero(first[ai, bi, ki] + self.extra[bi, ki] >= 0.0)
                out += [(ai, int(bi), int(ki), int(self.arrays.depths[di])) for di in dis.tolist()]
        return out

    def count_above(self, threshold: np.ndarray) -> int:
        """How many options :meth:`above` would return."""
        return int(np.count_nonzero((self.first - threshold[:, None, None])[..., None] + self.extra[None] >= 0.0))


def price(arr: StageArrays, p: Prices) -> Priced:
    j, c = arr.stage, arr.channels
    e, f, q, t, l_ = p.entropy[j], p.flops, p.params, p.latency, p.layers[j]
    inflow = np.array([p.inflow.get((j, int(a)), 0.0) for a in arr.inputs])
    first = e * arr.first.entropy + f * arr.first.flops + q * arr.first.params + t * arr.first.latency + inflow[:, None, None]
    rest = e * arr.rest.entropy + f * arr.rest.flops + q * arr.rest.params + t * arr.rest.latency  # (b, k)
    d = arr.depths.astype(float)
    per_depth = (
        l_ * np.array([arr.layers(int(x)) for x in arr.depths])
        + p.depth.get(j, 0.0) * d
        + p.depth_squared.get(j, 0.0) * d * d
        + e * arr.head[2] + f * arr.head[0] + q * arr.head[1] + t * arr.head[4]
        + p.outflow.get((j, c), 0.0)
    )
    extra = (d - 1.0)[None, None, :] * rest[..., None] + per_depth[None, None, :]
    return Priced(arr, first, extra)


@dataclass
class Paths:
    """Longest paths over the width graph at one set of prices, flow constraints kept.

    ``forward[j + 1][c]`` is the largest reduced cost of a stem and stages
    ``0..j`` that end at width ``c`` (``forward[0]``: the stem alone);
    ``backward[j + 1][c]`` that of stages ``j + 1..`` fed by width ``c`` (zero
    after the last stage). The flow rows' multipliers cancel along every path,
    so the bound they give (:attr:`bound`) is the Lagrangian bound with the
    best flow multipliers for the other prices: never above the bound with
    the master's, and much tighter while the master lacks the widths a good
    design uses.
    """

    constant: float  # the prices' constant and depth-moment term
    forward: list[dict[int, float]]
    backward: list[dict[int, float]]
    best: tuple[int, list[tuple[int, int, int, int, int]]]  # the longest path: stem width, (c, ai, bi, ki, d) per stage

    @classmethod
    def of(cls, constant: float, stem: dict[int, float], edges: list[dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> "Paths":
        """``edges[j][c]``: the input widths of stage ``j`` with output ``c``, per input the largest
        reduced cost of such an option, and that option's ``(bi, ki, d)`` (:meth:`Priced.edges`)."""
        forward, came = [stem], []
        for stage in edges:
            before, now, picks = forward[-1], {}, {}
            for c, (inputs, values, _) in stage.items():
                through = values + _at(before, inputs)
                picks[c] = int(through.argmax())
                now[c] = float(through[picks[c]])
            forward.append(now)
            came.append(picks)
        backward = [{c: 0.0 for c in forward[-1]}]
        for stage in reversed(edges):
            after = backward[0]
            inputs = np.concatenate([inputs for inputs, _, _ in stage.values()])
            values = np.concatenate([values + after.get(c, -math.inf) for c, (_, values, _) in stage.items()])
            widths, at = np.unique(inputs, return_inverse=True)
            into = np.full(len(widths), -math.inf)
            np.maximum.at(into, at, values)
            backward.insert(0, dict(zip(widths.tolist(), into.tolist())))
        path, c = [], max(forward[-1], key=forward[-1].get)
        for j in range(len(edges) - 1, -1, -1):
            inputs, _, keys = edges[j][c]
            ai = came[j][c]
            path.append((c, ai, *(int(x) for x in keys[ai])))
            c = int(inputs[ai])
        return cls(constant, forward, backward, (c, path[::-1]))

    def design(self, problem: Problem) -> Architecture:
        """The design along the longest path (the Lagrangian relaxation's solution)."""
        stem_width, path = self.best
        stem = next(o for o in stem_options(problem) if o.channels == stem_width)
        return assemble(problem, stem, [option_at(stage_arrays(problem, j, c), ai, bi, ki, d) for j, (c, ai, bi, ki, d) in enumerate(path)])

    @property
    def bound(self) -> float:
        return self.constant + max(self.forward[-1].values())

    def threshold(self, j: int, inputs: np.ndarray, c: int, floor: float) -> np.ndarray:
        """Per input width, the least reduced cost of an option of stage ``j`` with output ``c`` that
        can be in a design worth at least ``floor`` (reduced-cost fixing)."""
        slack = 1e-7 * max(1.0, abs(self.bound))
        return floor - slack - self.constant - _at(self.forward[j], inputs) - self.backward[j + 1].get(c, -math.inf)


def longest_paths(space: Space, p: Prices, *, visit=None) -> Paths:
    """Price every option of the space at ``p`` (chunk by chunk, each passed to ``visit(arrays,
    priced)`` if given) and find the longest paths over the width graph."""
    stem: dict[int, float] = {}
    for o in space.stem:
        stem[o.channels] = max(stem.get(o.channels, -math.inf), p.of(o))
    edges = []
    for j in range(space.nstages):
        stage = {}
        for arr in space.chunks(j):
            priced = price(arr, p)
            stage[arr.channels] = (arr.inputs, *priced.edges())
            if visit is not None:
                visit(arr, priced)
        edges.append(stage)
    return Paths.of(p.constant + p.moments, stem, edges)


def _at(values: dict[int, float], widths: np.ndarray) -> np.ndarray:
    """``values`` at each of ``widths`` (``-inf`` where it has none)."""
    return np.array([values.get(a, -math.inf) for a in widths.tolist()])


@dataclass(frozen=True)
class Lagrangian:
    """Column generation's best bound and the multipliers it was found at: the row duals
    (``duals``, keyed as :func:`prices` reads them) and the entropy caps' best ``(t, mu, n)``
    (``caps``, see :func:`space_bounds`), with the master's options (``columns``, per stage) and
    what they were computed for (``options``, :func:`options_key`). A warm start for a neighbouring
    problem (:func:`generate`'s ``warm``), and, moved, a bound for another (:func:`certified`)."""

    bound: float
    duals: dict[tuple, float]
    caps: tuple[float, float, int] | None = None
    columns: tuple[tuple[Option, ...], ...] = ()
    options: tuple = ()


def options_key(problem: Problem) -> tuple:
    """What a problem's stage options (their widths, costs and entropy) depend on: problems with the
    same key have the same options, and one's master options can start another's master."""
    return problem.space, problem.flops_convention, problem.nondecreasing, problem.latency_model


@dataclass
class Result:
    """What the column generation leaves: the bound, its prices and paths, the master's options."""

    bound: float
    lp: float
    rounds: int
    columns: list[list[Option]]
    prices: Prices
    paths: Paths
    seconds: float
    bounds: Bounds | None = None
    design: Architecture | None = None  # the best feasible design along a longest path, if one beat ``floor``
    duals: dict[tuple, float] | None = None  # the row multipliers of the best bound (keyed as :func:`prices` reads them)
    round_seconds: float = 0.0  # the mean time of a round (the entropy caps apart)
    options: tuple = ()  # the options_key of the problem

    @property
    def lagrangian(self) -> Lagrangian:
        return Lagrangian(self.bound, self.duals, self.bounds.setting if self.bounds else None,
                          tuple(map(tuple, self.columns)), self.options)


def seed(arr: StageArrays) -> list[Option]:
    """Initial master options of one chunk: its cheapest option fed by the same width (or by every
    stem width), so that with every chunk's, constant-width networks of every width exist."""
    d = int(arr.depths[0])
    return [
        option_at(arr, ai, 0, int(np.argmin(arr.flops(d)[ai, 0])), d)
        for ai, a in enumerate(arr.inputs.tolist()) if arr.stage == 0 or a == arr.channels
    ]


def keyed(duals: dict) -> dict[tuple, float]:
    """Duals of a Pyomo model of :func:`deepmad.program.build_program` keyed as :func:`prices` reads them."""
    out = {}
    for con, v in duals.items():
        index = con.index()
        out[(con.parent_component().local_name, *(index if isinstance(index, tuple) else () if index is None else (index,)))] = v
    return out


def _mix(center: dict, current: dict, weight: float) -> dict:
    keys = center.keys() | current.keys()
    return {k: weight * center.get(k, 0.0) + (1.0 - weight) * current.get(k, 0.0) for k in keys}


GUESS = (100.0, 1.5, 0.8)
"""The caps' multipliers ``(t, mu, q)`` tried in their first pass, ``n`` at ``q`` of the layer range.
deepmad-r50 at 1, 4 and 8 GFLOPs: the caps' own bound (column generation's at no multipliers) is
49,832, 64,947 and 72,288 with it, 119,166 without; with the best of the grid, 47,317, 61,558 and
68,702."""

SETTING_SHARE = 0.1
"""What one more multiplier setting adds to a pass over the space, as a share of a one-setting
pass (measured on deepmad-29m-224: 5.5 s for one setting, 7.9 s for six)."""

BOUNDS_SHARE = 0.6
"""Share of the column generation's time limit that the entropy caps may take."""

PER_ROUND = 400
"""At most this many new options per stage and round (the best priced)."""

SETTLED = 0.02
"""Column generation stops once the LP is known within this share of the gap between the bound
and the best design: tightening it further cannot move the gap by more, and its slow last rounds
are better spent looking for designs."""

SMOOTHING = 0.7
"""Wentges smoothing: price at this mix of the best-bound duals and the master's duals."""


def generate(
    problem: Problem, *, time_limit: float = 300.0, tolerance: float = 1e-6, floor: float = -math.inf,
    start_with: Architecture | None = None, max_rounds: int = 500, log=None, warm: Lagrangian | None = None,
) -> Result:
    """Column generation on the LP relaxation of the whole space; returns the best Lagrangian bound
    seen. It stops when the bound is within ``tolerance`` (relative) of the LP or of ``floor`` (the
    objective of a known design), when the LP is within :data:`SETTLED` of the gap, when no option
    prices in, or after ``time_limit`` seconds. ``start_with``: a design of the space whose options
    join the first master. Each round's longest path (:meth:`Paths.design`) that is feasible and
    beats ``floor`` raises it and becomes ``Result.design``.

    ``warm``: the :attr:`Result.lagrangian` of a neighbouring problem (e.g. the same space under
    another budget): the entropy caps try its caps' multipliers in their first pass, and its row
    duals are priced at before the first master LP. The bound they give is valid whatever they
    are, and where the problems are close it is close to the bound of many rounds (deepmad-r50:
    the duals of 27 rounds at 2 GFLOPs bound the problem at 2.2 GFLOPs by 46,756 in one pass,
    where a first round from scratch gives 119,166); the options they price in start the master,
    with, where the options are the same (:func:`options_key`), the neighbour's master's options,
    so that the LP goes on from where the neighbour's stopped."""
    start = time.perf_counter()
    space = Space(problem)
    columns: list[list[Option]] = [[] for _ in range(space.nstages)]
    bounds = space_bounds(space, deadline=start + BOUNDS_SHARE * time_limit, visit=lambda arr: columns[arr.stage].extend(seed(arr)),
                          hint=warm.caps if warm is not None else None)
    if warm is not None and warm.options == options_key(problem):  # the neighbour's master's options
        for j, cols in enumerate(warm.columns):
            columns[j] += cols
    if start_with is not None:
        for j, o in enumerate(options_of(problem, start_with)):
            columns[j].append(o)
    columns = [list(dict.fromkeys(cols)) for cols in columns]
    known = [set(cols) for cols in columns]
    best: Result | None = None
    center: dict | None = None
    found: Architecture | None = None

    def pricing(y: dict) -> tuple[Prices, Paths, int]:
        p = prices(space, y, bounds)
        # The master's best reduced cost in stage j is the dual of "one option in stage j":
        # an option improves the master when it prices above it.
        enough = [max(p.of(o) for o in cols) + 1e-7 for cols in columns]
        found: list[list] = [[] for _ in range(space.nstages)]

        def gather(arr: StageArrays, priced: Priced) -> None:
            found[arr.stage] += [(v, arr, key) for v, key in priced.best()[1] if v > enough[arr.stage]]

        paths = longest_paths(space, p, visit=gather)
        added = 0
        for j, stage in enumerate(found):
            stage.sort(key=lambda x: -x[0])
            for v, arr, key in stage[:PER_ROUND]:
                o = option_at(arr, *key)
                if o not in known[j]:
                    known[j].add(o)
                    columns[j].append(o)
                    master.add(o)
                    added += 1
        return p, paths, added

    master = Master(space, bounds)
    for cols in columns:
        for o in cols:
            master.add(o)
    rounds_began = time.perf_counter()
    # Before the first master LP, a pass at the warm start's multipliers (of the rows this program
    # has: of the other problem's budgets, rho0 or spread rule only those it shares), or at none:
    # any such, with the signs of the rows, bound it (weak duality). At none, the bound is the
    # entropy caps' (deepmad-r50 at 1 GFLOPs: 49,832, where the first master's duals give 382,045).
    duals = {key: v for key, v in warm.duals.items() if key in master.rows or key[0] in ("flow", "sigma_link")} if warm else {}
    p, paths, added = pricing(duals)
    best = Result(paths.bound, -math.inf, 0, [list(c) for c in columns], p, paths, 0.0, bounds, duals=duals)
    center = duals
    if log:
        log(f"{'warm start' if warm else 'no'} multipliers: bound {paths.bound:.4f} columns {sum(map(len, columns))} (+{added}) "
            f"pricing {time.perf_counter() - rounds_began:.1f}s")
    for rounds in range(1, max_rounds + 1):
        if time.perf_counter() - start > time_limit or interrupt.requested():
            break  # the first pass used the time
        t0 = time.perf_counter()
        solved = master.solve()
        if solved is None:
            if best is None:
                raise DeepmadError("HiGHS found no optimum of the first master LP; try --method milp on a smaller space")
            break  # numerical trouble: keep the best bound so far (valid whatever the round)
        lp, current = solved
        t1 = time.perf_counter()
        priced_at = current if center is None else _mix(center, current, SMOOTHING)
        p, paths, added = pricing(priced_at)
        if added == 0 and center is not None:  # a mispricing: no column at the smoothed duals
            priced_at = current
            p, paths, added = pricing(current)
        bound = paths.bound
        design = paths.design(problem)
        check = problem.check(design)
        if check.feasible and check.objective > floor:  # the Lagrangian solution as a design
            floor, found = check.objective, design
            for j, o in enumerate(options_of(problem, design)):
                if o not in known[j]:
                    known[j].add(o)
                    columns[j].append(o)
                    master.add(o)
            if log:
                log(f"round {rounds}: the longest path is a design: objective {floor:.4f}")
        if log:
            log(f"round {rounds}: lp {lp:.4f} bound {bound:.4f} columns {sum(map(len, columns))} (+{added}) "
                f"master {t1 - t0:.1f}s pricing {time.perf_counter() - t1:.1f}s")
        if best is None or bound < best.bound:
            best = Result(bound, lp, rounds, [], p, paths, 0.0, bounds, duals=priced_at)
            center = current if center is None else _mix(center, current, SMOOTHING)
        best.lp, best.rounds, best.columns, best.design = lp, rounds, [list(c) for c in columns], found
        close = best.bound - max(lp, floor) <= tolerance * abs(best.bound)
        settled = floor > -math.inf and best.bound - lp <= SETTLED * (best.bound - floor)
        if close or settled or added == 0 or time.perf_counter() - start > time_limit or interrupt.requested():
            break
    assert best is not None
    best.seconds = time.perf_counter() - start
    best.options = options_key(problem)
    best.round_seconds = (time.perf_counter() - rounds_began) / (best.rounds + 1)
    return best


def smallest_costs(problem: Problem) -> dict[str, float]:
    """The least FLOPs (in the problem's convention), parameters and, with a latency model,
    latency (ms) of any design of the space (guidelines and space rules kept, budgets and rho0
    dropped): shortest paths over the width graph."""
    space = Space(problem)
    weights = {"flops": (1.0, 0.0, 0.0, -0.5, 0.0), "params": (0.0, 1.0, 0.0, -0.5, 0.0)}
    if problem.latency_model is not None:
        weights["latency"] = (0.0, 0.0, 1.0, -0.5, 0.0)
    last = space.nstages - 1
    out = {name: -max(values[last].values()) for name, values in zip(weights, _longest_paths(space, list(weights.values())))}
    if "latency" in out:
        out["latency"] += problem.latency_model.calibration.fixed_ms
    return out


def options_of(problem: Problem, arch: Architecture) -> list[Option]:
    """The stage options that make up ``arch`` (a design of ``problem``'s space)."""
    out, c_in = [], arch.stem.channels
    for j, stage in enumerate(arch.stages):
        arr = stage_arrays(problem, j, stage.channels)
        ai = int(np.flatnonzero(arr.inputs == c_in)[0])
        bi = int(np.flatnonzero(arr.inner == stage.inner)[0])
        out.append(option_at(arr, ai, bi, arr.kernels.index(stage.kernel), stage.depth))
        c_in = stage.channels
    return out


def promising(result: Result, floor: float, *, most: int) -> list[list[Option]]:
    """Per stage, the master's options (``result.columns``) that can be in a design worth at
    least ``floor`` (reduced-cost fixing over the master's options alone), at most ``most`` of
    them: those through which the best path is longest, in the master's order."""
    out = []
    for j, cols in enumerate(result.columns):
        margin = [result.prices.of(o) - float(result.paths.threshold(j, np.array([o.c_in]), o.channels, floor)[0]) for o in cols]
        kept = sorted((k for k in range(len(cols)) if margin[k] >= 0.0), key=lambda k: (-margin[k], k))[:most]
        out.append([cols[k] for k in sorted(kept)])
    return out


def survivors(problem: Problem, result: Result, floor: float, *, limit: int | None = None) -> list[list[Option]] | None:
    """Per stage, every option of the space that can be in a design worth at least ``floor``
    (reduced-cost fixing along the best paths through each option); ``None`` when there are
    more than ``limit`` of them (counted before any is built)."""
    space = Space(problem)
    p, paths = result.prices, result.paths
    if limit is not None:
        count = 0
        for j in range(space.nstages):
            for arr in space.chunks(j):
                count += price(arr, p).count_above(paths.threshold(j, arr.inputs, arr.channels, floor))
                if count > limit:
                    return None
    out = []
    for j in range(space.nstages):
        kept = []
        for arr in space.chunks(j):
            kept += [option_at(arr, *key) for key in price(arr, p).above(paths.threshold(j, arr.inputs, arr.channels, floor))]
        out.append(kept)
    return out
