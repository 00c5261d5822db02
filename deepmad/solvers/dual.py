"""The Lagrangian bound with the entropy products kept exact: a dynamic program over (width, future weight).

The LP of :mod:`deepmad.solvers.formulation` writes each ``ln(c_i r_i^2) S_i``
with a big-M link, and column generation's bound inherits that weakness.
Here only the program's rows are relaxed (:class:`deepmad.solvers.rows.Prices`:
budgets, rho tangents, spread, depth moments); what is left is a longest path
over the stages in which each stage's entropy is multiplied by the widths of
the prefixes still to come. A stage's *future weight* ``V_j = sum over the
prefixes i that contain stage j of (alpha_i ln(c_i r_i^2) + price of S_i)`` is
fixed by the widths after it, so a forward pass carries, per width ``c`` that
stage ``j`` ends at, the best value of the stages so far as a function
``F_j(c, U)`` of the weight ``U`` still to come: a maximum of functions affine
in ``U``, hence convex. It is held on a grid of ``U`` and read between grid
points by linear interpolation, which for a convex function never lies below
it: the value at the end is an upper bound on every design of the space at
these multipliers (weak duality), however coarse the grid.

:func:`dual` minimises that bound over the multipliers with a cutting-plane
method in a trust region. Each pass also traces a design (the longest path
on the grid), whose widths are worth an exact look
(:mod:`deepmad.solvers.fixed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import highspy
import numpy as np

from .. import interrupt
from ..model.architecture import Architecture
from .context import Context
from .engine import Engine
from .formulation import _highs
from .pricing import StagePrices, price, stage_options
from .rows import Program, Row


@dataclass(frozen=True)
class Relaxed:
    """One pass: ``bound`` bounds the objective of every design of the space; ``stem`` and ``stages``
    (engine indices ``(m, ai, p, k, d)``) a design that attains it up to the grid, which as a rule
    breaks a budget or rho0; ``moments`` the depth moments best at these multipliers."""

    bound: float
    stem: int
    stages: list[tuple[int, int, int, int, int]]
    moments: tuple[int, int]

    def widths(self, engine: Engine) -> tuple[int, ...]:
        return (int(engine.stem.widths[self.stem]), *(int(t.widths[m]) for t, (m, *_) in zip(engine.stages, self.stages)))

    def design(self, engine: Engine, problem) -> Architecture:
        return engine.design(problem, self.stem, self.stages)


EXCLUDED = -1e30
"""The value a pass gives widths outside its node: finite, so that interpolating over it stays a number."""


@dataclass(frozen=True)
class Allowed:
    """A box of widths: per place (``-1`` the stem, ``j`` stage ``j``) an interval ``(lo, hi)`` of
    indices into that table's widths, both included; the whole table where a place is missing."""

    boxes: tuple[tuple[int, int, int], ...]  # (place, lo, hi), sorted by place
    sizes: tuple[int, ...]  # the number of widths of the stem, then of every stage

    @classmethod
    def whole(cls, engine: Engine) -> "Allowed":
        return cls((), (len(engine.stem.widths), *(len(t.widths) for t in engine.stages)))

    def interval(self, place: int) -> tuple[int, int]:
        for q, lo, hi in self.boxes:
            if q == place:
                return lo, hi
        return 0, self.sizes[place + 1] - 1

    def mask(self, place: int) -> np.ndarray:
        lo, hi = self.interval(place)
        out = np.zeros(self.sizes[place + 1], dtype=bool)
        out[lo:hi + 1] = True
        return out

    def chain(self, engine: Engine) -> tuple[int, ...]:
        """The widths of a box of one width per place."""
        lo = [self.interval(q)[0] for q in range(-1, len(self.sizes) - 1)]
        return (int(engine.stem.widths[lo[0]]), *(int(t.widths[m]) for t, m in zip(engine.stages, lo[1:])))

    def split(self, place: int, at: int) -> tuple["Allowed", "Allowed"]:
        """The two boxes with the place's interval cut before index ``at``."""
        lo, hi = self.interval(place)
        assert lo < at <= hi
        rest = tuple(b for b in self.boxes if b[0] != place)
        return (Allowed(tuple(sorted(rest + ((place, lo, at - 1),))), self.sizes),
                Allowed(tuple(sorted(rest + ((place, at, hi),))), self.sizes))


def relax(engine: Engine, program: Program, rows: list[Row], y: dict[tuple, float], *, points: int,
          allowed: "Allowed | None" = None) -> Relaxed:
    """The Lagrangian bound at multipliers ``y`` (by row key) and its design (module docstring), over
    the designs whose widths ``allowed`` allows (all where ``None``)."""
    ctx: Context = program.context
    prices = program.prices(y, rows)
    moment, moments = prices.moment_value()
    constant = prices.constant + moment
    s_price = prices.entropy_by_prefix()
    M = ctx.nstages

    def shift(j: int, widths) -> np.ndarray:
        """What the prefixes that end at stage ``j`` (width ``widths``) add to the weight of the stages before."""
        out = np.zeros(len(widths))
        for i in ctx.ending(j):
            out = out + ctx.end_weight(i, widths) + s_price[i]
        return out

    stem = engine.stem
    shifts = {-1: shift(-1, stem.widths)}
    for j, t in enumerate(engine.stages):
        shifts[j] = shift(j, t.widths)
    span, grid = (0.0, 0.0), {}
    for j in range(M - 1, -2, -1):
        span = (span[0] + float(np.min(shifts[j])), span[1] + float(np.max(shifts[j])))
        grid[j] = np.linspace(*span, points) if span[1] > span[0] else np.array([span[0]])

    e0, f0, q0, t0, n0, _, _ = prices.stage(-1)
    value = ((grid[0][None, :] + shifts[-1][:, None]) * stem.entropy[:, None]
             + (f0 * stem.flops + q0 * stem.params + t0 * stem.latency + n0)[:, None])
    if allowed is not None:
        value[~allowed.mask(-1)] = EXCLUDED
    widths = stem.widths
    traces = []
    for j, t in enumerate(engine.stages):
        V = grid[j]
        _, f, q, lat, n, dp, dq = prices.stage(j)
        Z = np.full((len(t.inputs), len(V)), -math.inf)
        idx = np.searchsorted(t.inputs, widths)
        ok = (idx < len(t.inputs)) & (t.inputs[np.minimum(idx, len(t.inputs) - 1)] == widths)
        Z[idx[ok]] = value[ok]
        pr = price(t, StagePrices(V, f, q, lat, n, dp, dq), Z)
        best = pr.best + pr.head
        if allowed is not None:
            best[~allowed.mask(j)] = EXCLUDED
        traces.append(pr)
        after = grid[j + 1] if j + 1 < M else np.zeros(1)
        if len(V) > 1:
            value = np.stack([np.interp(after + s, V, b) for s, b in zip(shifts[j], best)])
        else:
            value = best.copy()
        widths = t.widths
    m = int(np.argmax(value[:, 0]))
    bound = float(value[m, 0]) + constant
    stages, U = [], 0.0
    for j in range(M - 1, -1, -1):  # trace back, at the grid point nearest the weight
        pr = traces[j]
        t = pr.table
        Vj = U + float(shifts[j][m])
        g = int(np.abs(grid[j] - Vj).argmin())
        ai = int(pr.at[m, g])
        e = int(pr.edge_start[m] + ai - t.a_lo[m])
        stages.append((m, ai, *pr.choice(e, g)))
        U = Vj
        if j > 0:
            m = int(np.searchsorted(engine.stages[j - 1].widths, t.inputs[ai]))
    stages.reverse()
    return Relaxed(bound, stages[0][1], stages, moments)


@dataclass
class Dual:
    """What :func:`dual` leaves: the best bound found, its multipliers, the designs the passes traced
    (best bound first), and how many passes it took."""

    bound: float
    multipliers: dict[tuple, float]
    designs: list[Relaxed]
    passes: int


def quantities(engine: Engine, program: Program, r: Relaxed) -> dict[tuple, float]:
    """The quantities of a traced design, with the depth moments it was traced with."""
    stem = engine.stem
    out: dict[tuple, float] = {}

    def add(q: tuple, v: float) -> None:
        out[q] = out.get(q, 0.0) + v

    picks = [(-1, stem.entropy[r.stem], stem.flops[r.stem], stem.params[r.stem], stem.latency[r.stem], 1, 1)]
    for j, (m, ai, p, k, d) in enumerate(r.stages):
        o = stage_options(engine, j, [m], [ai], [p], [k], [d])
        picks.append((j, o.entropy[0], o.flops[0], o.params[0], o.latency[0], o.layers[0], d))
    for j, e, f, q, lat, n, d in picks:
        for key, v in program.quantities(j, float(e), float(f), float(q), float(lat), int(n), int(d)).items():
            add(key, v)
    out[("u",)], out[("v",)] = float(r.moments[0]), float(r.moments[1])
    return out


def objective_part(engine: Engine, program: Program, r: Relaxed, q: dict[tuple, float]) -> float:
    """The traced design's weighted entropy, less the penalty of its moments."""
    ctx = program.context
    widths = r.widths(engine)
    value = sum(ctx.end_weight(i, widths[last + 1]) * q[("S", i)] for i, last in enumerate(ctx.last))
    if ctx.covered:
        value -= next(p for u, v, p in program.moments if (u, v) == r.moments)
    else:
        value -= program.problem.scoring.beta
    return float(value)


def dual(engine: Engine, program: Program, start: dict[tuple, float], *, passes: int, points: int, patience: int,
         tolerance: float, beat: float = math.inf, deadline: float = math.inf, allowed: Allowed | None = None) -> Dual:
    """Minimise :func:`relax`'s bound over the multipliers, from ``start``, for at most ``passes``
    passes, or until the cutting-plane model promises less than ``tolerance`` (relative) more, or
    after ``patience`` passes with no bound below ``beat`` (another method's bound).

    Each pass's design gives a cut: its Lagrangian value is affine in the multipliers and never
    above the bound. The next multipliers minimise the largest cut within a box around the best
    multipliers so far, which grows after a pass that lowers the bound and shrinks after one that
    does not (a trust region). Budget multipliers are scaled by their limits, so that the cuts'
    slopes are shares of a budget. A tangent of the effectiveness bound joins at the depth of each
    prefix of each traced design. Stops early at ``deadline`` (``time.perf_counter``)."""
    problem = program.problem
    rows = {row.key: row for row in program.budgets()}
    if program.context.covered:
        for row in program.rows():
            if row.key[0] in ("depth_sum", "depth_squares", "spread"):
                rows[row.key] = row
    for key in start:
        if key[0] == "rho" and problem.rho is not None:
            rows[key] = program.tangent(key[1], key[2])
    keys = list(rows)
    free = {k for k, row in rows.items() if row.equality}
    scale = {k: (abs(row.rhs) if row.key[0] in ("flops", "params", "layers", "latency") and row.rhs else 1.0) for k, row in rows.items()}

    def multipliers(x: np.ndarray) -> dict[tuple, float]:
        return {k: v / scale[k] for k, v in zip(keys, x) if v != 0.0}

    x = np.array([start.get(k, 0.0) * scale[k] for k in keys])
    delta = np.maximum(0.5 * np.abs(x), 1.0)
    center, best, best_y = x, math.inf, multipliers(x)
    cuts: list[tuple[float, dict, dict]] = []  # per traced design: objective part, quantities, slacks by row
    designs: list[Relaxed] = []
    done = last_gain = 0
    h = None  # the cutting-plane LP's HiGHS object, made at the first cut
    while done < passes and not interrupt.past(deadline):
        y = multipliers(x)
        r = relax(engine, program, list(rows.values()), y, points=points, allowed=allowed)
        done += 1
        designs.append(r)
        q = quantities(engine, program, r)
        for i, n in enumerate([int(round(q[("D", i)])) for i in range(len(program.context.last))]):
            if problem.rho is not None and ("rho", i, n) not in rows:
                rows[("rho", i, n)] = program.tangent(i, n)
                scale[("rho", i, n)] = 1.0
                keys.append(("rho", i, n))
                center, delta, x = np.append(center, 0.0), np.append(delta, 1.0), np.append(x, 0.0)
        cuts.append((objective_part(engine, program, r, q), q, {}))
        if r.bound < best - tolerance * abs(best):
            last_gain = done
        if r.bound < best:
            if best < math.inf:
                delta = delta * 1.5
            center, best, best_y = x, r.bound, y
        else:
            delta = delta * 0.5
        if (done >= patience and best >= beat) or done - last_gain >= patience:
            break
        K = len(keys)
        for _, q, slack in cuts:  # each cut's slopes: its design's slack in every row so far
            missing = [rows[k] for k in keys if k not in slack]
            if missing:
                slack.update(program.slacks(q, missing))
        A = np.array([[slack[k] / scale[k] for k in keys] + [-1.0] for _, _, slack in cuts])
        b = np.array([-cut[0] for cut in cuts])
        box = [(center[i] - delta[i] if keys[i] in free else max(0.0, center[i] - delta[i]), center[i] + delta[i]) for i in range(K)]
        h = h if h is not None else _lp_highs()
        found = _model_minimum(A, b, box, h)
        if found is None or best - found[1] <= tolerance * abs(best):
            break
        x = found[0]
    designs.sort(key=lambda r: r.bound)
    return Dual(best, best_y, designs, done)


def _lp_highs() -> highspy.Highs:
    """A HiGHS object for the cutting-plane LP: HiGHS's own feasibility tolerances (the cuts are
    estimates, not the program's rows)."""
    h = _highs()
    h.setOptionValue("primal_feasibility_tolerance", 1e-7)
    return h


def _model_minimum(A: np.ndarray, b: np.ndarray, box: list[tuple[float, float]], h: highspy.Highs) -> tuple[np.ndarray, float] | None:
    """The multipliers ``x`` within ``box`` that minimise the cutting-plane model ``max_c (A_c x - b_c)``
    (an LP in ``(x, t)``: minimise ``t`` subject to ``A x - t <= b``), and that minimum; ``None``
    where HiGHS finds no optimum."""
    rows, K = A.shape[0], A.shape[1] - 1
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = K + 1, rows
    lp.col_cost_ = np.append(np.zeros(K), 1.0)
    lp.col_lower_ = np.array([lo for lo, _ in box] + [-highspy.kHighsInf])
    lp.col_upper_ = np.array([hi for _, hi in box] + [highspy.kHighsInf])
    lp.row_lower_ = np.full(rows, -highspy.kHighsInf)
    lp.row_upper_ = np.asarray(b, dtype=float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, rows * (K + 2), rows, dtype=np.int32)[:K + 2]
    lp.a_matrix_.index_ = np.tile(np.arange(rows, dtype=np.int32), K + 1)
    lp.a_matrix_.value_ = np.asarray(A, dtype=float).T.ravel()
    h.clearModel()
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    x = np.asarray(h.getSolution().col_value)
    return x[:K], float(x[K])
