"""The Lagrangian bound with exact entropy products: a dynamic program over (width, future weight).

The program of :mod:`deepmad.program` writes each ``ln(c_i r_i^2) * S_i``
with a big-M link (:class:`deepmad.program.Bounds`), and its LP relaxation,
with column generation's bound (:mod:`deepmad.colgen`), inherits that
weakness. Here only the budgets, the effectiveness tangents and the depth
moments are relaxed, with multipliers :class:`Multipliers`; what is left is
a longest path over the stages in which each stage's entropy is multiplied
by the widths of the prefixes still to come. A stage's *future weight*
``V_j = sum over the prefixes i that contain stage j of (alpha_i ln(c_i r_i^2)
+ 2 mu_i)`` is fixed by the widths after it, so a forward pass carries, per
width ``c`` that stage ``j`` ends at, the best value of the stages so far as
a function ``F_j(c, U)`` of the weight ``U`` still to come: a maximum of
functions affine in ``U``, hence convex. It is held on a grid of ``U``
(:data:`POINTS` values) and read between grid points by linear
interpolation, which for a convex function never lies below it: the value at
the end is an upper bound on every design of the space at these multipliers
(weak duality), however coarse the grid.

:func:`dual` minimises that bound over the multipliers with a cutting-plane
method in a trust region, started from column generation's duals. Each
evaluation also gives a design (the longest path traced back on the grid):
its widths feed :func:`deepmad.solve._fixed_widths_design`, whose exact MILP
over the inner widths, kernels and depths at those widths is small.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog

from . import interrupt
from .architecture import Architecture
from .arrays import StageArrays
from .colgen import Space, budget_limits
from .options import Option, assemble, option_at
from .program import FLOPS_UNIT, _pstdev, _reachable_sums, rho_cut, rho_slope

POINTS = 8
"""Grid points of the future weight per stage (deepmad-r18: 2.1 s a pass; 16 and 32 points take
3.4 s and 7.0 s and lower the bound by 0.1 % and 0.15 %)."""


@dataclass
class Multipliers:
    """Lagrange multipliers of the relaxed rows, as :func:`deepmad.colgen.prices` reads them
    (``y >= 0`` on the ``<=`` rows of the maximisation): ``budgets`` keyed ``("flops",)``,
    ``("params",)``, ``("latency",)``, ``("layers",)`` per unit of the row (FLOPs in
    :data:`~deepmad.program.FLOPS_UNIT`), ``rho`` keyed ``(prefix, n)`` for the tangent of
    ``D ln(D / rho0)`` at ``D = n``, and the free ``depth_sum`` and ``depth_squares`` of the rows
    that tie the depth moments to the covered stages' depths."""

    budgets: dict[tuple, float] = field(default_factory=dict)
    rho: dict[tuple[int, int], float] = field(default_factory=dict)
    depth_sum: float = 0.0
    depth_squares: float = 0.0

    @classmethod
    def of_duals(cls, problem, duals: dict[tuple, float]) -> "Multipliers":
        """The multipliers of the master LP's row duals (keyed as :func:`deepmad.colgen.prices`)."""
        return cls(
            {key: max(0.0, duals.get(key, 0.0)) for key in budget_limits(problem)},
            {(key[1], key[2]): v for key, v in duals.items() if key[0] == "rho" and v > 0.0},
            -duals.get(("depth_sum",), 0.0),  # the master's rows read sum d - u = 0
            -duals.get(("depth_squares",), 0.0),
        )


@dataclass(frozen=True)
class Relaxed:
    """The dynamic program's result at one set of multipliers.

    ``bound`` is an upper bound on the objective of every design of the
    space; ``stem`` and ``options`` a design that (up to the grid) attains
    it, which as a rule breaks a budget or rho0.
    """

    bound: float
    stem: Option
    options: list[Option]

    def design(self, problem) -> Architecture:
        return assemble(problem, self.stem, self.options)

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.stem.channels, *(o.channels for o in self.options))


def relax(space: Space, y: Multipliers, *, points: int = POINTS) -> Relaxed:
    """The Lagrangian bound at ``y`` and its design, by the forward pass of the module docstring."""
    problem = space.problem
    levels, M = space.levels, space.nstages
    limits = budget_limits(problem)
    price = {key: y.budgets.get(key, 0.0) for key in limits}
    per_flop = price.get(("flops",), 0.0) / FLOPS_UNIT
    per_param, per_ms, per_layer_budget = price.get(("params",), 0.0), price.get(("latency",), 0.0), price.get(("layers",), 0.0)
    constant = sum(price[key] * limit for key, limit in limits.items())
    twice_mu = [0.0] * len(levels)  # per prefix: the weight the tangents add to S_i, and to D_i
    per_layer_rho = [0.0] * len(levels)
    for (i, n), mu in y.rho.items():
        constant += mu * (rho_slope(n, problem.rho) * n - rho_cut(n, problem.rho))
        twice_mu[i] += 2.0 * mu
        per_layer_rho[i] += mu * rho_slope(n, problem.rho)
    covered = set(space.covered)
    if covered:
        constant += max(
            -problem.scoring.beta * math.exp(_pstdev(u, v, len(covered))) + y.depth_sum * u + y.depth_squares * v
            for u, v in _reachable_sums([problem.space.depths[j] for j in space.covered])
        )
    else:
        constant -= problem.scoring.beta
    layer_price = {j: per_layer_budget + sum(per_layer_rho[i] for i in space.prefixes_of(j)) for j in range(-1, M)}

    def shift(j: int, c: int) -> float:
        """What the prefixes that end at stage ``j`` (width ``c``) add to the weight of the stages before."""
        return sum(
            (space.weight(i, c) if space.has_sigma(i) else space.weight(i, problem.space.head)) + twice_mu[i]
            for i, level in enumerate(levels) if level.last_stage == j
        )

    # grid[j]: the future weights V_j that stage j's entropy can get.
    stem_widths = [o.channels for o in space.stem]
    span, grid = (0.0, 0.0), {}
    for j in range(M - 1, -2, -1):
        shifts = [shift(j, c) for c in (stem_widths if j < 0 else problem.space.channel_grid())]
        span = (span[0] + min(shifts), span[1] + max(shifts))
        grid[j] = np.linspace(*span, points) if span[1] > span[0] else np.array([span[0]])

    def cost(j: int, flops, params, latency, layers):
        """The multipliers' price of these costs in stage ``j`` (``-1``: the stem)."""
        return per_flop * flops + per_param * params + per_ms * latency + layer_price[j] * layers

    # value[c]: F_{j-1}(c, .) on grid[j]; came[j][c]: per grid point of V_j, the option that attains it.
    value = {o.channels: np.full(len(grid[0]), -math.inf) for o in space.stem}
    stem_pick: dict[int, list[Option]] = {c: [None] * len(grid[0]) for c in value}
    for o in space.stem:
        v = (grid[0] + shift(-1, o.channels)) * o.entropy - cost(-1, o.flops, o.params, o.latency, o.layers)
        better = v > value[o.channels]
        value[o.channels] = np.where(better, v, value[o.channels])
        for g in np.flatnonzero(better):
            stem_pick[o.channels][g] = o
    came: list[dict[int, tuple[StageArrays, np.ndarray]]] = []
    for j in range(M):
        V = grid[j]
        now, picks = {}, {}
        for arr in space.chunks(j):
            best, where = _stage(arr, V, value, cost, j, j in covered, y)
            now[arr.channels] = best
            picks[arr.channels] = (arr, where)
        came.append(picks)
        after = grid[j + 1] if j + 1 < M else np.zeros(1)
        # F_j(c, U) = G_j(c, U + shift(j, c)): convex in U, read by interpolation (never below it).
        value = {c: np.interp(after + shift(j, c), V, g) if len(V) > 1 else g.copy() for c, g in now.items()}
    c = max(value, key=lambda w: value[w][0])
    bound = float(value[c][0]) + constant
    options, U = [], 0.0
    for j in range(M - 1, -1, -1):  # trace back, at the grid point nearest the weight
        Vj = U + shift(j, c)
        g = int(np.abs(grid[j] - Vj).argmin())
        arr, where = came[j][c]
        options.append(option_at(arr, *(int(x) for x in where[:, g])))
        c, U = options[-1].c_in, Vj
    g = int(np.abs(grid[0] - (U + 0.0)).argmin())
    return Relaxed(bound, stem_pick[c][g], options[::-1])


def _stage(arr: StageArrays, V: np.ndarray, before: dict[int, np.ndarray], cost, j: int, covered: bool, y: Multipliers):
    """``G_j(c, V)`` on the grid ``V`` for the chunk ``arr``, and per grid point the ``(ai, bi, ki, d)``
    of the option that attains it."""
    first, rest = arr.first, arr.rest
    inflow = np.stack([before.get(int(a), np.full(len(V), -math.inf)) for a in arr.inputs])  # [a, V]
    # The best depth per (b, k) and weight: (d - 1) copies of the rest block, less the depth moments.
    tail = np.full(rest.entropy.shape + (len(V),), -math.inf)
    depth = np.zeros(tail.shape, dtype=np.int64)
    per_rest = V * rest.entropy[..., None] - cost(j, rest.flops, rest.params, rest.latency, rest.layers)[..., None]
    for d in arr.depths.tolist():
        v = (d - 1) * per_rest
        if covered:
            v = v - (y.depth_sum * d + y.depth_squares * d * d)
        better = v > tail
        depth[better] = d
        np.maximum(tail, v, out=tail)
    flops, params, head_e, layers, latency = arr.head
    head_cost = cost(j, flops, params, latency, layers)
    first_cost = cost(j, first.flops, first.params, first.latency, first.layers)
    best = np.empty(len(V))
    where = np.zeros((4, len(V)), dtype=np.int64)
    for g in range(len(V)):
        total = V[g] * first.entropy - first_cost + tail[None, :, :, g] + inflow[:, g, None, None]
        at = int(total.argmax())
        best[g] = total.flat[at] + V[g] * head_e - head_cost
        ai, bi, ki = np.unravel_index(at, total.shape)
        where[:, g] = (ai, bi, ki, depth[bi, ki, g])
    return best, where


@dataclass
class Dual:
    """What :func:`dual` leaves: the best bound found, its multipliers, and the designs the passes
    traced (best bound first), whose widths are worth an exact look."""

    bound: float
    multipliers: Multipliers
    designs: list[Relaxed]
    passes: int


FINE_POINTS, FINE_COST = 32, 3.5
"""Grid points of the last pass, at the best multipliers (deepmad-r50: 0.3 % below 8 points), and
its time as a multiple of a pass's (deepmad-r18: 7.0 s against 2.1 s)."""


PATIENCE = 8
"""Passes after which :func:`dual` gives up when its bound is still no better than ``beat``. From
column generation's prices at 120 s, deepmad-r18's passes went below column generation's bound
(38,594) from the sixth on, and reached 38,099; deepmad-r50's stayed above its bound (52,696)
for twenty passes (52,794 at best). Three passes were too few for deepmad-r18 at 300 s."""


def dual(
    space: Space, start: Multipliers, *, deadline: float, max_passes: int = 60, tolerance: float = 5e-4,
    beat: float = math.inf,
) -> Dual:
    """Minimise :func:`relax`'s bound over the multipliers, from ``start``, until ``deadline`` (a
    ``time.perf_counter`` value), ``max_passes`` passes, or until the cutting-plane model promises
    less than ``tolerance`` (relative) more; in that last case a pass on a finer grid
    (:data:`FINE_POINTS`) at the best multipliers ends it, where the time allows. It also stops
    after :data:`PATIENCE` passes that found no bound below ``beat`` (another method's bound).

    Each pass's design gives a cut: its Lagrangian value is affine in the multipliers and never above
    the bound (:func:`_cut`). The next multipliers minimise the largest cut within a box around the
    best multipliers so far, which grows after a pass that lowers the bound and shrinks after one that
    does not (a trust region). Every bound :func:`relax` returns is valid; the smallest is kept. The
    budget multipliers are scaled by their limits, so that the cuts' slopes are shares of a budget.
    A tangent of the effectiveness bound joins at the depth of each prefix of each design traced.
    """
    problem = space.problem
    limits = budget_limits(problem)
    keys: list[tuple] = [("budget", k) for k in limits] + [("rho", i, n) for i, n in start.rho]
    if space.covered:
        keys += [("depth_sum",), ("depth_squares",)]
    free = {("depth_sum",), ("depth_squares",)}

    def vector(y: Multipliers) -> np.ndarray:
        return np.array([
            y.budgets.get(k[1], 0.0) * limits[k[1]] if k[0] == "budget" else y.rho.get(k[1:], 0.0) if k[0] == "rho"
            else y.depth_sum if k == ("depth_sum",) else y.depth_squares for k in keys
        ])

    def multipliers(x: np.ndarray) -> Multipliers:
        y = Multipliers()
        for k, v in zip(keys, x):
            if k[0] == "budget":
                y.budgets[k[1]] = v / limits[k[1]] if limits[k[1]] else 0.0
            elif k[0] == "rho":
                if v > 0.0:
                    y.rho[k[1:]] = v
            elif k == ("depth_sum",):
                y.depth_sum = v
            else:
                y.depth_squares = v
        return y

    x = vector(start)
    delta = np.maximum(0.5 * np.abs(x), 1.0)
    center, best, best_y = x, math.inf, start
    cuts: list[_Cut] = []
    designs: list[Relaxed] = []
    passes, took, converged = 0, 0.0, False
    while passes < max_passes and time.perf_counter() + took < deadline and not interrupt.requested():
        y = multipliers(x)
        began = time.perf_counter()
        r = relax(space, y)
        took = time.perf_counter() - began
        passes += 1
        designs.append(r)
        cuts.append(_cut(space, r, y))
        if r.bound < best:
            if best < math.inf:
                delta = delta * 1.5
            center, best, best_y = x, r.bound, y
        else:
            delta = delta * 0.5
        if passes >= PATIENCE and best >= beat:
            break
        if problem.rho is not None:
            for i, n in enumerate(cuts[-1].D):
                if ("rho", i, n) not in keys:
                    keys.append(("rho", i, n))
                    center, delta = np.append(center, 0.0), np.append(delta, 1.0)
        # The model: minimise t >= value_r + slopes_r . x over the box around the center.
        K = len(keys)
        rows = np.array([[cut.slope(k) for k in keys] + [-1.0] for cut in cuts])
        rhs = np.array([-cut.value for cut in cuts])
        box = [(center[q] - delta[q] if keys[q] in free else max(0.0, center[q] - delta[q]), center[q] + delta[q]) for q in range(K)]
        lp = linprog(np.append(np.zeros(K), 1.0), A_ub=rows, b_ub=rhs, bounds=box + [(None, None)], method="highs")
        if lp.status != 0 or best - lp.fun <= tolerance * abs(best):
            converged = True
            break
        x = lp.x[:K]
    # The finer grid only pays once the multipliers are near their best (deepmad-50m: one pass
    # from column generation's prices and a fine one gave 47,392; five passes, 37,613).
    if converged and time.perf_counter() + FINE_COST * took < deadline and not interrupt.requested():
        fine = relax(space, best_y, points=FINE_POINTS)
        designs.append(fine)
        best = min(best, fine.bound)
    designs.sort(key=lambda r: r.bound)
    return Dual(best, best_y, designs, passes)


def _last(space: Space, i: int) -> int:
    """The last stage of scoring prefix ``i`` (``-1``: the stem)."""
    return space.levels[i].last_stage if i < len(space.levels) - 1 else space.nstages - 1


@dataclass(frozen=True)
class _Cut:
    """A design as a cut: its Lagrangian value ``value + sum_k slope(k) x_k`` at any multipliers
    ``x`` (in :func:`dual`'s keys and scaling) is never above the bound there, since the design,
    with the depth moments that were best where it was found, is one point of the relaxed problem."""

    value: float
    budgets: dict[tuple, float]  # slack per budget, as a share of the limit
    S: list[float]
    D: list[int]
    depth_sum: float  # u - sum d, the slack of the depth_sum row
    depth_squares: float
    rho0: float | None

    def slope(self, key: tuple) -> float:
        if key[0] == "budget":
            return self.budgets[key[1]]
        if key[0] == "rho":
            _, i, n = key
            return rho_slope(n, self.rho0) * (n - self.D[i]) - rho_cut(n, self.rho0) + 2.0 * self.S[i]
        return self.depth_sum if key == ("depth_sum",) else self.depth_squares


def _cut(space: Space, r: Relaxed, y: Multipliers) -> _Cut:
    problem = space.problem
    chosen = [r.stem, *r.options]
    value, S, D = 0.0, [], []
    for i in range(len(space.levels)):
        S.append(sum(o.entropy for o in chosen[:_last(space, i) + 2]))
        D.append(sum(o.layers for o in chosen[:_last(space, i) + 2]))
        end = chosen[_last(space, i) + 1].channels
        value += (space.weight(i, end) if space.has_sigma(i) else space.weight(i, problem.space.head)) * S[-1]
    used = {("flops",): sum(o.flops for o in chosen) / FLOPS_UNIT, ("params",): float(sum(o.params for o in chosen)),
            ("latency",): sum(o.latency for o in chosen), ("layers",): float(sum(o.layers for o in chosen))}
    budgets = {key: (1.0 - used[key] / limit if limit else 0.0) for key, limit in budget_limits(problem).items()}
    slack_sum = slack_squares = 0.0
    if space.covered:
        n = len(space.covered)
        u, v = max(
            _reachable_sums([problem.space.depths[j] for j in space.covered]),
            key=lambda m: -problem.scoring.beta * math.exp(_pstdev(m[0], m[1], n)) + y.depth_sum * m[0] + y.depth_squares * m[1],
        )
        value -= problem.scoring.beta * math.exp(_pstdev(u, v, n))
        slack_sum = u - sum(r.options[j].depth for j in space.covered)
        slack_squares = v - sum(r.options[j].depth ** 2 for j in space.covered)
    else:
        value -= problem.scoring.beta
    return _Cut(value, budgets, S, D, slack_sum, slack_squares, problem.rho)
