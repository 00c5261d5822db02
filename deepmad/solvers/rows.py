"""The program's rows, stated once (spec section 5), and the prices any multipliers give them.

A design picks one stem width and one option per stage. What the constraints
read of it are its *quantities*, each a sum over the picks:

* ``("flops",)`` (in :data:`FLOPS_UNIT`), ``("params",)``, ``("latency",)``
  (ms), ``("layers",)``: totals;
* ``("S", i)`` and ``("D", i)``: entropy ``1/2 sum ln w`` and layer count of
  scoring prefix ``i``;
* ``("depth", j)`` and ``("depth2", j)``: depth and squared depth of a stage
  the depth penalty covers; ``("u",)`` and ``("v",)``: the sums of those that
  the penalty is read at (the penalty ``beta exp(pstdev)`` is a function of
  them).

The rows (:class:`Row`, each ``sum coef * quantity <= rhs``, or ``==``) are
the budgets ``("flops",)``, ``("params",)``, ``("layers",)``,
``("latency",)``; the effectiveness bound ``rho_i <= rho0`` as its tangents
``("rho", i, n)``: ``slope(n) D_i - 2 S_i <= slope(n) n - cut(n)``, exact for
integer ``D_i`` since ``D ln(D / rho0)`` is convex; the hard depth spread
``("spread", a, b)``; and the moment rows ``("depth_sum",)`` and
``("depth_squares",)`` that tie ``u`` and ``v`` to the covered depths.

Every method reads these: the MILP and the master LP
(:mod:`deepmad.solvers.formulation`) state them, the Lagrangian relaxations
price them (:class:`Prices`: multipliers ``y >= 0`` on ``<=`` rows of the
maximisation, free on ``==`` rows), a design's cut reads its slacks
(:meth:`Program.slacks`), and an exact solve at fixed depths keeps the
tangent at each prefix's own ``D_i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..problem.problem import Problem
from .context import Context

FLOPS_UNIT = 1e6
"""FLOPs rows are stated in MFLOPs, so that they are scaled like the others."""

BUDGETS = ("flops", "params", "layers", "latency")


@dataclass(frozen=True)
class Row:
    """``sum of terms[q] * quantity q <= rhs`` (``==`` where ``equality``)."""

    key: tuple
    terms: dict
    rhs: float
    equality: bool = False


PRICE_UNITS = {"flops": FLOPS_UNIT, "params": 1.0, "layers": 1.0, "latency": 1.0}
"""What one unit of each budget row is, in the problem's own units (FLOPs, parameters, layers, ms):
a multiplier of the row is an objective per that much of the budget."""


def budget_limits(problem: Problem) -> dict[tuple, float]:
    """The right sides of the budget rows by key: FLOPs in MFLOPs, parameters, layers, and latency
    in ms less the calibration's fixed term (a constant of every design)."""
    out = {}
    if problem.flops is not None:
        out[("flops",)] = math.floor(problem.flops) / FLOPS_UNIT
    if problem.params is not None:
        out[("params",)] = float(math.floor(problem.params))
    if problem.max_layers is not None:
        out[("layers",)] = float(problem.max_layers)
    if problem.latency is not None:
        out[("latency",)] = problem.latency - problem.latency_model.calibration.fixed_ms
    return out


def rho_slope(n: int, rho: float) -> float:
    """Slope at ``D = n`` of ``D ln(D / rho)``, the right side of ``2 S >= D ln(D / rho)``."""
    return math.log(n / rho) + 1.0


def rho_cut(n: int, rho: float) -> float:
    """Value at ``D = n`` of ``D ln(D / rho)``."""
    return n * math.log(n / rho)


def pstdev(u: float, v: float, n: int) -> float:
    """Population standard deviation of ``n`` values whose sum is ``u`` and sum of squares ``v``."""
    return math.sqrt(max(0.0, v / n - (u / n) ** 2))


def reachable_moments(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every ``(sum L, sum L^2)`` that depths in ``ranges`` can reach."""
    sums = {(0, 0)}
    for lo, hi in ranges:
        sums = {(u + d, v + d * d) for u, v in sums for d in range(lo, hi + 1)}
    return sorted(sums)


class Program:
    """The rows of a problem (see the module docstring). ``layers[i]``: the range of ``D_i`` over
    the space, whose integers the tangents are taken at."""

    def __init__(self, problem: Problem, context: Context, layers: list[tuple[int, int]]):
        self.problem, self.context, self.layers = problem, context, layers

    @cached_property
    def moments(self) -> list[tuple[int, int, float]]:
        """Every reachable ``(u, v)`` of the covered depths with its penalty ``beta exp(pstdev)``."""
        ctx, problem = self.context, self.problem
        n = len(ctx.covered)
        return [(u, v, problem.scoring.beta * math.exp(pstdev(u, v, n)))
                for u, v in reachable_moments([problem.space.depths[j] for j in ctx.covered])]

    def budgets(self) -> list[Row]:
        return [Row(key, {key: 1.0}, rhs) for key, rhs in budget_limits(self.problem).items()]

    def tangent(self, i: int, n: int) -> Row:
        rho = self.problem.rho
        return Row(("rho", i, n), {("D", i): rho_slope(n, rho), ("S", i): -2.0}, rho_slope(n, rho) * n - rho_cut(n, rho))

    def rows(self) -> list[Row]:
        """Every row: budgets, every tangent, spread and moment rows."""
        out = self.budgets()
        if self.problem.rho is not None:
            out += [self.tangent(i, n) for i, (lo, hi) in enumerate(self.layers) for n in range(lo, hi + 1)]
        ctx = self.context
        if self.problem.max_depth_spread is not None:
            out += [Row(("spread", a, b), {("depth", a): 1.0, ("depth", b): -1.0}, float(self.problem.max_depth_spread))
                    for a in ctx.covered for b in ctx.covered if a != b]
        if ctx.covered:
            out.append(Row(("depth_sum",), {("u",): 1.0, **{("depth", j): -1.0 for j in ctx.covered}}, 0.0, equality=True))
            out.append(Row(("depth_squares",), {("v",): 1.0, **{("depth2", j): -1.0 for j in ctx.covered}}, 0.0, equality=True))
        return out

    def limits(self) -> dict[tuple, float]:
        """The budget rows' right sides by key."""
        return budget_limits(self.problem)

    def quantities(self, j: int, entropy, flops, params, latency, layers, depth) -> dict:
        """What a pick of stage ``j`` (``-1``: the stem) adds to each quantity (numbers, or arrays
        of several picks)."""
        ctx = self.context
        f = lambda x: np.asarray(x, dtype=float)  # noqa: E731
        out = {("flops",): f(flops) / FLOPS_UNIT, ("params",): f(params), ("latency",): f(latency), ("layers",): f(layers)}
        for i in ctx.prefixes_of(j):
            out[("S", i)] = f(entropy)
            out[("D", i)] = f(layers)
        if j in ctx.covered:
            out[("depth", j)] = f(depth)
            out[("depth2", j)] = f(depth) ** 2
        return out

    def slacks(self, quantities: dict, rows: list[Row]) -> dict[tuple, float]:
        """``rhs - sum terms * quantity`` of each row at a design's ``quantities`` (with its ``u``, ``v``)."""
        return {row.key: row.rhs - sum(c * quantities.get(q, 0.0) for q, c in row.terms.items()) for row in rows}

    def prices(self, y: dict[tuple, float], rows: list[Row] | None = None) -> "Prices":
        """The prices of multipliers ``y`` (by row key; rows absent from ``y`` get 0)."""
        by_key = {row.key: row for row in (rows if rows is not None else self.rows())}
        for key in y:
            if key[0] == "rho" and key not in by_key and self.problem.rho is not None:
                by_key[key] = self.tangent(key[1], key[2])
        constant, quantity = 0.0, {}
        for key, value in y.items():
            row = by_key.get(key)
            if row is None or value == 0.0:
                continue
            constant += value * row.rhs
            for q, c in row.terms.items():
                quantity[q] = quantity.get(q, 0.0) - value * c
        return Prices(self, constant, quantity)


@dataclass(frozen=True)
class Prices:
    """The Lagrangian ``objective + sum_r y_r (rhs_r - row_r)`` of multipliers ``y``: ``constant``
    (``sum y_r rhs_r``) plus ``quantity[q]`` per unit of each quantity. Read per stage by
    :meth:`stage`; the moment term by :meth:`moment_value`."""

    program: Program
    constant: float
    quantity: dict

    def of(self, q: tuple) -> float:
        return self.quantity.get(q, 0.0)

    def stage(self, j: int) -> tuple[float, float, float, float, float, float, float]:
        """Prices of one pick of stage ``j`` (``-1``: the stem): per unit of entropy (beyond its
        objective weight), FLOP (raw, not MFLOPs), parameter, ms of latency, layer, depth and
        squared depth."""
        ctx = self.program.context
        prefixes = ctx.prefixes_of(j)
        return (
            sum(self.of(("S", i)) for i in prefixes),
            self.of(("flops",)) / FLOPS_UNIT,
            self.of(("params",)),
            self.of(("latency",)),
            self.of(("layers",)) + sum(self.of(("D", i)) for i in prefixes),
            self.of(("depth", j)),
            self.of(("depth2", j)),
        )

    def entropy_by_prefix(self) -> list[float]:
        """The price per unit of ``S_i``, per prefix (what rho's tangents add to its weight)."""
        return [self.of(("S", i)) for i in range(len(self.program.context.last))]

    def moment_value(self) -> tuple[float, tuple[int, int]]:
        """The best of ``-penalty(u, v) + price_u u + price_v v`` over the reachable moments, and that
        ``(u, v)``; ``-beta`` where the penalty covers no stage."""
        moments = self.program.moments
        if not self.program.context.covered:
            return -self.program.problem.scoring.beta, (0, 0)
        pu, pv = self.of(("u",)), self.of(("v",))
        value, u, v = max((-pen + pu * u + pv * v, u, v) for u, v, pen in moments)
        return value, (u, v)
