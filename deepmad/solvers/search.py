"""Local search for good designs: whole-stage moves scored in bulk on the engine.

It finds incumbents (designs whose objective bounds the optimum from below)
and proves nothing. A design is a stem width and, per stage, an output width,
inner width, kernel and depth. Two kinds of move, each the best of all its
alternatives scored at once from the engine's arrays
(:mod:`deepmad.solvers.engine`) with the problem's scoring
(:class:`deepmad.solvers.context.Context`):

* a **stage move** replaces one stage's width, inner width, kernel and depth
  (or the stem's width), every other stage fixed; the next stage's first
  block follows the new width;
* a **pair move** replaces the inner widths, kernels and depths of two stages
  at once, widths fixed: one stage gives up budget that the other spends,
  which no stage move can do once the budgets bind. The candidates of each
  stage are its options of largest Lagrangian value at a few prices of the
  budgets (:data:`PAIR_CANDIDATES` per price).

Moves are ranked by (violation of the budgets and rho0, objective), so a
search first reaches the feasible region and then climbs; it stops when no
move improves. Kicks redraw one or two stages at random (a seeded generator)
and climb again. Work is counted in moves: the same problem, start and
budget give the same design on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import interrupt
from ..model.architecture import Architecture
from .context import Context, Totals
from .engine import Engine, log


@dataclass(frozen=True)
class Design:
    """A design as engine indices: stem index ``stem``; per stage ``(m, p, k, d)``: output width
    index, pair index (inner width), kernel index and depth."""

    stem: int
    stages: tuple[tuple[int, int, int, int], ...]


MOVE_WIDTHS = 16
"""A stage move tries the output widths within this many grid steps of the stage's own (all of them
on deepmad-89m's wide stages made one move score ten million options)."""

PAIR_CANDIDATES = 40
"""Options per stage and price in a pair move."""

PAIR_SHARES = (0.0, 0.5, 1.0)
PAIR_SCALES = (0.25, 0.5, 1.0, 2.0)
"""The prices of a pair move's candidates: ``factor * share`` of the stage's largest weighted entropy
per whole FLOPs budget, ``factor * (1 - share)`` per whole parameter budget."""


class Search:
    """Moves over a problem's designs (see the module docstring)."""

    def __init__(self, engine: Engine, context: Context, *, cost: float = 0.0):
        self.engine, self.context = engine, context
        self.cost = cost  # reference seconds per option scored
        self.problem = context.problem
        self.moves = 0  # moves tried
        self.scored = 0  # options scored by them: the work done

    # -- a design's terms ---------------------------------------------------

    def _input(self, x: Design, j: int) -> int | None:
        """The index of stage ``j``'s input width (the previous stage's, or the stem's) in its inputs."""
        t = self.engine.stages[j]
        a = int(self.engine.stem.widths[x.stem]) if j == 0 else int(self.engine.stages[j - 1].widths[x.stages[j - 1][0]])
        return t.input_index(a)

    def _terms(self, j: int, ai: int, m, p, k, d):
        """Entropy, FLOPs, params, latency and layers of stage ``j``'s options (arrays that broadcast)."""
        t = self.engine.stages[j]
        f, q, e, lat = _first_many(t, ai, m, p, k)
        n = np.asarray(d) - 1
        e = e + n * t.rest.entropy[p, k] + t.head.entropy[m]
        f = f + n * t.rest.flops[p, k] + t.head.flops[m]
        q = q + n * t.rest.params[p, k] + t.head.params[m]
        if t.latency is not None:
            lat = lat + n * t.latency.rest[p, k] + t.head_latency[m]
        return e, f, q, lat, t.layers(d)

    def totals(self, x: Design) -> Totals | None:
        """The design's per-stage sums; ``None`` where a width does not feed the next stage."""
        stem = self.engine.stem
        parts = []
        for j, (m, p, k, d) in enumerate(x.stages):
            ai = self._input(x, j)
            t = self.engine.stages[j]
            if ai is None or not t.a_lo[m] <= ai < t.a_hi[m]:
                return None
            parts.append(self._terms(j, ai, m, p, k, d))
        e, f, q, lat, n = (list(v) for v in zip(*parts))
        return Totals((int(stem.widths[x.stem]), stem.entropy[x.stem], stem.flops[x.stem], stem.params[x.stem], stem.latency[x.stem]),
                      [int(self.engine.stages[j].widths[s[0]]) for j, s in enumerate(x.stages)], e, f, q, lat, n,
                      [s[3] for s in x.stages])

    def value(self, x: Design) -> tuple[float, float]:
        """``(violation, objective)``; ``(inf, -inf)`` where the design breaks a space rule."""
        t = self.totals(x)
        if t is None:
            return math.inf, -math.inf
        v, o = self.context.score(t)
        if self.problem.nondecreasing and any(a > b for a, b in zip(t.widths, t.widths[1:])):
            return math.inf, -math.inf
        return float(v), float(o)

    # -- moves --------------------------------------------------------------

    def _better(self, v, o, key):
        """The index of the best ``(v, o)`` and its key, or ``None`` when it does not beat ``key``."""
        v, o = (np.ravel(a) for a in np.broadcast_arrays(v, o))
        at = first_best(v, o)
        found = (float(v[at]), -float(o[at]))
        return (at, found) if found < (key[0], key[1] - 1e-9 * abs(key[1])) else None

    def stage_move(self, x: Design, j: int, key) -> tuple[Design, tuple] | None:
        """The best replacement of stage ``j`` (``-1``: the stem's width) where it beats ``key``."""
        self.moves += 1
        base = self.totals(x)
        if base is None:
            return None
        eng, ctx = self.engine, self.context
        if j < 0:
            return self._stem_move(x, base, key)
        t = eng.stages[j]
        ai = self._input(x, j)
        ms = np.flatnonzero((t.a_lo <= ai) & (ai < t.a_hi)) if ai is not None else np.zeros(0, dtype=np.int64)
        m0 = x.stages[j][0]
        ms = ms[np.abs(ms - m0) <= MOVE_WIDTHS]  # widths near the stage's own: a move's work stays bounded
        nxt = x.stages[j + 1] if j + 1 < len(x.stages) else None
        if nxt is not None:  # the next stage's first block follows the new width
            tn = eng.stages[j + 1]
            ain = np.array([tn.input_index(int(c)) if tn.input_index(int(c)) is not None else -1 for c in t.widths[ms]])
            ok = (ain >= 0) & (tn.a_lo[nxt[0]] <= ain) & (ain < tn.a_hi[nxt[0]])
            ms, ain = ms[ok], ain[ok]
        if not len(ms):
            return None
        p = np.concatenate([np.arange(t.starts[m], t.starts[m + 1]) for m in ms])
        mp = t.pair_width[p]
        K, D = len(t.kernels), t.depths
        self.scored += len(p) * K * len(D)
        e, f, q, lat, n = self._terms(j, ai, mp[:, None, None], p[:, None, None], np.arange(K)[None, :, None], D[None, None, :])
        parts = {name: list(getattr(base, name)) for name in ("widths", "entropy", "flops", "params", "latency", "layers", "depth")}
        parts["widths"][j], parts["depth"][j] = t.widths[mp][:, None, None], D[None, None, :]
        parts["entropy"][j], parts["flops"][j], parts["params"][j], parts["latency"][j], parts["layers"][j] = e, f, q, lat, n
        if nxt is not None:
            pos = np.searchsorted(ms, mp)
            e2, f2, q2, lat2, n2 = _next_terms(eng.stages[j + 1], ain[pos], nxt)
            parts["entropy"][j + 1], parts["flops"][j + 1], parts["params"][j + 1] = e2[:, None, None], f2[:, None, None], q2[:, None, None]
            parts["latency"][j + 1] = lat2[:, None, None] if np.ndim(lat2) else lat2
        v, o = ctx.score(Totals(base.stem, **parts))
        v, o = np.broadcast_arrays(v, o)
        if self.problem.nondecreasing:  # the non-decreasing rule, against the next stage (the inputs keep the last)
            if nxt is not None:
                wide = t.widths[mp] > eng.stages[j + 1].widths[nxt[0]]
                v = np.where(wide[:, None, None], np.inf, v)
        found = self._better(v, o, key)
        if found is None:
            return None
        at, new_key = found
        pi, ki, di = np.unravel_index(at, v.shape)
        stages = list(x.stages)
        stages[j] = (int(mp[pi]), int(p[pi]), int(ki), int(D[di]))
        return Design(x.stem, tuple(stages)), new_key

    def pair_move(self, x: Design, j1: int, j2: int, key) -> tuple[Design, tuple] | None:
        """The best replacement of the inner widths, kernels and depths of stages ``j1`` and ``j2``
        together (widths fixed) among their candidates (:meth:`candidates`), where it beats ``key``."""
        self.moves += 1
        base = self.totals(x)
        if base is None:
            return None
        weights = self.stage_weights(base)
        lists = [self.candidates(x, j, weights[j]) for j in (j1, j2)]
        self.scored += len(lists[0][0]) * len(lists[1][0])
        parts = {name: list(getattr(base, name)) for name in ("widths", "entropy", "flops", "params", "latency", "layers", "depth")}
        for axis, (j, (p, k, d, terms)) in enumerate(zip((j1, j2), lists)):
            shape = (-1, 1) if axis == 0 else (1, -1)
            for name, value in zip(("entropy", "flops", "params", "latency", "layers"), terms):
                parts[name][j] = np.reshape(value, shape) if np.ndim(value) else value
            parts["depth"][j] = np.reshape(d, shape)
        v, o = self.context.score(Totals(base.stem, **parts))
        found = self._better(*np.broadcast_arrays(v, o), key)
        if found is None:
            return None
        at, new_key = found
        a, b = np.unravel_index(at, (len(lists[0][0]), len(lists[1][0])))
        stages = list(x.stages)
        for j, (p, k, d, _), i in ((j1, lists[0], a), (j2, lists[1], b)):
            stages[j] = (stages[j][0], int(p[i]), int(k[i]), int(d[i]))
        return Design(x.stem, tuple(stages)), new_key

    def stage_weights(self, t: Totals) -> list[float]:
        """Per stage, the objective weight of its entropy at the design's widths."""
        ctx = self.context
        ends = [ctx.end_weight(i, t.stem[0] if last < 0 else t.widths[last]) for i, last in enumerate(ctx.last)]
        return [float(sum(ends[i] for i in ctx.prefixes_of(j))) for j in range(ctx.nstages)]

    def candidates(self, x: Design, j: int, weight: float):
        """Stage ``j``'s options at its widths of largest Lagrangian value ``weight * entropy - lam .
        costs`` at a few prices ``lam`` of the budgets, and its current choice: ``(p, k, d, terms)``."""
        t = self.engine.stages[j]
        m, p0, k0, d0 = x.stages[j]
        ai = self._input(x, j)
        p = np.arange(t.starts[m], t.starts[m + 1])
        K, D = len(t.kernels), t.depths
        self.scored += len(p) * K * len(D)
        e, f, q, lat, n = self._terms(j, ai, m, p[:, None, None], np.arange(K)[None, :, None], D[None, None, :])
        e, f, q = np.broadcast_arrays(e, f, q)
        problem = self.problem
        scale = weight * float(np.max(e))
        picks = {int(np.ravel_multi_index((p0 - t.starts[m], k0, d0 - D[0]), e.shape))}
        for share in PAIR_SHARES:
            for factor in PAIR_SCALES:
                value = weight * e
                if problem.flops is not None:
                    value = value - factor * share * scale * f / problem.flops
                if problem.params is not None:
                    value = value - factor * (1.0 - share) * scale * q / problem.params
                picks.update(np.argpartition(-value.ravel(), min(PAIR_CANDIDATES, value.size - 1))[:PAIR_CANDIDATES].tolist())
        at = np.array(sorted(picks))
        pi, ki, di = np.unravel_index(at, e.shape)
        lat = np.broadcast_to(lat, e.shape).ravel()[at] if np.ndim(lat) else lat
        return p[pi], ki, D[di], (e.ravel()[at], f.ravel()[at], q.ravel()[at], lat, t.layers(D[di]))

    def _stem_move(self, x: Design, base: Totals, key):
        eng = self.engine
        t = eng.stages[0]
        m, p, k, d = x.stages[0]
        best = None
        for s in range(len(eng.stem.widths)):
            ai = t.input_index(int(eng.stem.widths[s]))
            if s == x.stem or ai is None or not t.a_lo[m] <= ai < t.a_hi[m]:
                continue
            y = Design(s, x.stages)
            v, o = self.value(y)
            if (v, -o) < (key if best is None else best[1]) and (best is not None or (v, -o) < (key[0], key[1] - 1e-9 * abs(key[1]))):
                best = (y, (v, -o))
        return best

    @property
    def spent(self) -> float:
        """The work done so far, in reference seconds."""
        return self.scored * self.cost

    def climb(self, x: Design, *, work: float = math.inf, max_moves: int | None = None) -> Design:
        """Stage moves over every stage (stem first), then pair moves over every pair of stages,
        until none improves, ``work`` more reference seconds are spent, or ``max_moves`` moves
        were tried in all."""
        v, o = self.value(x)
        key = (v, -o)
        M = len(x.stages)
        moves = [(j,) for j in range(-1, M)] + [(a, b) for a in range(M) for b in range(a + 1, M)]
        until = self.spent + work
        most = max_moves if max_moves is not None else math.inf

        def done() -> bool:
            return self.spent >= until or self.moves >= most or interrupt.requested()

        while not done():
            improved = False
            for move in moves:
                if done():
                    break
                found = self.stage_move(x, move[0], key) if len(move) == 1 else self.pair_move(x, *move, key)
                if found is not None:
                    x, key = found
                    improved = True
            if not improved:
                break
        return x

    def kick(self, x: Design, rng: np.random.Generator) -> Design:
        """``x`` with one or two stages' width (within eight grid steps), inner width and depth redrawn."""
        stages = list(x.stages)
        for _ in range(int(rng.integers(1, 3))):
            j = int(rng.integers(0, len(stages)))
            t = self.engine.stages[j]
            m, p, k, d = stages[j]
            m = int(min(len(t.widths) - 1, max(0, m + int(rng.integers(-8, 9)))))
            p = int(rng.integers(t.starts[m], t.starts[m + 1]))
            stages[j] = (m, p, k, int(rng.integers(t.depths[0], t.depths[-1] + 1)))
        return Design(x.stem, tuple(stages))

    # -- designs and architectures --------------------------------------------

    def locate(self, arch: Architecture) -> Design | None:
        found = self.engine.locate(arch)
        if found is None:
            return None
        s, stages = found
        return Design(s, tuple((m, p, k, d) for m, _, p, k, d in stages))

    def architecture(self, x: Design) -> Architecture:
        stages, c_in = [], int(self.engine.stem.widths[x.stem])
        for j, (m, p, k, d) in enumerate(x.stages):
            t = self.engine.stages[j]
            stages.append((m, t.input_index(c_in), p, k, d))
            c_in = int(t.widths[m])
        return self.engine.design(self.problem, x.stem, stages)

    def start(self) -> Design:
        """A start design: the narrowest stem, and every stage at the same middle-ish width with its
        widest inner width, largest kernel and smallest depth (a shallow, wide network meets the
        effectiveness bound most easily)."""
        eng = self.engine
        grid = list(self.problem.space.channel_grid())
        for c in grid[len(grid) // 8:] + grid[: len(grid) // 8][::-1]:
            stages = []
            for t in eng.stages:
                m = t.width_index(c)
                if m is None:
                    break
                stages.append((m, int(t.starts[m + 1]) - 1, len(t.kernels) - 1, int(t.depths[0])))
            if len(stages) == len(eng.stages):
                x = Design(0, tuple(stages))
                if self.totals(x) is not None:
                    return x
        raise ValueError("no constant-width start design in the space")


def first_best(v: np.ndarray, o: np.ndarray) -> int:
    """The index of the least violation ``v`` and, among those, the largest objective ``o``, the
    first on a tie: ``np.lexsort((-o, v))[0]`` without sorting (a move scores up to millions)."""
    if np.isnan(v).any() or np.isnan(o).any():
        return int(np.lexsort((-o, v))[0])
    least = v == v.min()
    top = np.where(least, o, -np.inf)
    return int(np.argmax(top)) if top.max() > -np.inf else int(np.argmax(least))


def _first_many(t, ai: int, m, p, k):
    """The first block of several output widths ``m`` (per pair) fed by input ``ai``."""
    a = int(t.inputs[ai])
    same = t.same[m] == ai
    f = np.where(same, t.alike.flops[p, k], t.first.flops[p, k] + a * t.slope.flops[p, k])
    q = np.where(same, t.alike.params[p, k], t.first.params[p, k] + a * t.slope.params[p, k])
    e = np.where(same, t.alike.entropy[p, k], t.first.entropy[p, k] + t.log_a * float(log(a)))
    lat = 0.0
    if t.latency is not None:
        L = t.latency
        lat = np.where(same, L.alike[p, k], L.of_first(ai, m, p, k))
    return f, q, e, lat


def _next_terms(t, ais: np.ndarray, choice: tuple[int, int, int, int]):
    """The next stage's sums for each of its possible input indices ``ais`` (its choice fixed)."""
    m, p, k, d = choice
    f, q, e, lat = _first_at(t, ais, m, p, k)
    n = d - 1
    e = e + n * t.rest.entropy[p, k] + t.head.entropy[m]
    f = f + n * t.rest.flops[p, k] + t.head.flops[m]
    q = q + n * t.rest.params[p, k] + t.head.params[m]
    if t.latency is not None:
        lat = lat + n * t.latency.rest[p, k] + t.head_latency[m]
    return e, f, q, lat, t.layers(d)


def _first_at(t, ais: np.ndarray, m: int, p: int, k: int):
    """The first block of width ``m``, pair ``p``, kernel ``k`` fed by each input index of ``ais``."""
    a = t.inputs[ais]
    same = ais == t.same[m]
    f = np.where(same, t.alike.flops[p, k], t.first.flops[p, k] + a * t.slope.flops[p, k])
    q = np.where(same, t.alike.params[p, k], t.first.params[p, k] + a * t.slope.params[p, k])
    e = np.where(same, t.alike.entropy[p, k], t.first.entropy[p, k] + t.log_a * log(a))
    lat = 0.0
    if t.latency is not None:
        L = t.latency
        lat = np.where(same, L.alike[p, k], L.of_first(ais, m, p, k))
    return f, q, e, lat
