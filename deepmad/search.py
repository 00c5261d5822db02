"""A fast local search for good designs: exact stage moves evaluated in bulk.

It finds the incumbent that the exact method of :mod:`deepmad.colgen` needs
(a design whose objective bounds the optimum from below), and proves
nothing itself. A move replaces one stage's output width, inner width,
kernel and depth (or the stem width) by the best of all the alternatives the
space allows, every other stage fixed: the alternatives of one output width
are scored at once from :func:`deepmad.arrays.stage_arrays`, and the next
stage's first block follows the new width. Moves are ranked by (budget and
effectiveness violation, objective), so the search first reaches the
feasible region and then climbs; it stops when no move improves. The design
it returns is re-scored by :meth:`Problem.check`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from collections import OrderedDict

import numpy as np

from . import interrupt
from .architecture import Architecture
from .arrays import StageArrays, stage_arrays
from .options import assemble, stem_options
from .problem import Problem


@dataclass(frozen=True)
class Choice:
    """One stage of a design: output ``channels``, ``inner`` width, ``kernel`` and ``depth``."""

    channels: int
    inner: int
    kernel: int
    depth: int


class _Evaluator:
    """Scores designs given as per-stage arrays of (entropy, flops, params, layers, latency)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        space = problem.space
        skeleton = space.skeleton()
        self.levels = skeleton.levels()
        self.alpha = problem.scoring.alphas(len(self.levels))
        self.covered = problem.scoring.covered_stages(skeleton)
        side = problem.scoring.side(skeleton)
        self.r2 = [(side // level.reduction) ** 2 for level in self.levels]
        self.stem = {o.channels: o for o in stem_options(problem)}
        self.arrays = _ArrayCache(problem)

    def score(self, stem: int, widths: list, e: list, f: list, p: list, n: list, t: list, depths: list) -> tuple:
        """Violation and objective of designs; every argument but ``stem`` is a per-stage list of
        numbers or arrays that broadcast together (``widths[j]`` the output channels of stage j)."""
        problem, space = self.problem, self.problem.space
        s0 = self.stem[stem]
        flops = s0.flops + sum(f)
        params = s0.params + sum(p)
        latency = s0.latency + sum(t) + (problem.latency_model.calibration.fixed_ms if problem.latency_model else 0.0)
        objective, worst_rho = 0.0, 0.0
        for i, level in enumerate(self.levels):
            upto = range(level.last_stage + 1) if i < len(self.levels) - 1 else range(len(e))
            s = s0.entropy + sum(e[j] for j in upto)
            d = s0.layers + sum(n[j] for j in upto)
            last = i == len(self.levels) - 1
            c = space.head if last and space.head else (stem if level.last_stage < 0 else widths[level.last_stage])
            objective = objective + self.alpha[i] * np.log(np.multiply(c, self.r2[i])) * s
            worst_rho = np.maximum(worst_rho, d * np.exp(-2.0 * s / d))
        if self.covered:
            ds = [depths[j] for j in self.covered]
            mean = sum(ds) / len(ds)
            var = sum((x - mean) ** 2 for x in ds) / len(ds)
            objective = objective - problem.scoring.beta * np.exp(np.sqrt(np.maximum(var, 0.0)))
        else:
            objective = objective - problem.scoring.beta
        violation = 0.0
        for value, limit in ((flops, problem.flops), (params, problem.params), (worst_rho, problem.rho),
                             (s0.layers + sum(n), problem.max_layers), (latency, problem.latency)):
            if limit is not None:
                violation = violation + np.maximum(0.0, value / limit - 1.0)
        if problem.max_depth_spread is not None and self.covered:
            ds = [np.asarray(depths[j], dtype=float) for j in self.covered]
            spread = np.max(np.broadcast_arrays(*ds), axis=0) - np.min(np.broadcast_arrays(*ds), axis=0)
            violation = violation + np.maximum(0.0, spread - problem.max_depth_spread)
        return violation, objective


class _ArrayCache:
    """:func:`stage_arrays` by ``(stage, width)``, least recently used first out, holding at most
    :data:`CACHE_BYTES` of arrays (a whole preset space's arrays take about 1.5 GB)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.held: OrderedDict[tuple[int, int], StageArrays | None] = OrderedDict()
        self.bytes = 0

    def __call__(self, j: int, c: int) -> StageArrays | None:
        key = (j, c)
        if key in self.held:
            self.held.move_to_end(key)
            return self.held[key]
        arr = stage_arrays(self.problem, j, c)
        self.held[key] = arr
        self.bytes += _nbytes(arr)
        while self.bytes > CACHE_BYTES and len(self.held) > 1:
            _, old = self.held.popitem(last=False)
            self.bytes -= _nbytes(old)
        return arr


CACHE_BYTES = 512 << 20


def _nbytes(arr: StageArrays | None) -> int:
    if arr is None:
        return 0
    blocks = (arr.first, arr.rest)
    return sum(getattr(b, a).base.nbytes if getattr(b, a).base is not None else getattr(b, a).nbytes
               for b in blocks for a in ("flops", "params", "entropy", "latency"))


def _stage_terms(arr: StageArrays, ai: int, bi, ki, d):
    """Entropy, flops, params, layers and latency of stage options of ``arr`` fed by input index ``ai``."""
    first, rest, head = arr.first, arr.rest, arr.head
    e = first.entropy[ai, bi, ki] + (d - 1) * rest.entropy[bi, ki] + head[2]
    f = first.flops[ai, bi, ki] + (d - 1) * rest.flops[bi, ki] + head[0]
    p = first.params[ai, bi, ki] + (d - 1) * rest.params[bi, ki] + head[1]
    n = first.layers + (d - 1) * rest.layers + head[3]
    t = first.latency[ai, bi, ki] + (d - 1) * rest.latency[bi, ki] + head[4]
    return e, f, p, n, t


def _index(values: np.ndarray, x: int) -> int | None:
    hit = np.flatnonzero(values == x)
    return int(hit[0]) if len(hit) else None


class LocalSearch:
    """Coordinate ascent over stage choices (see the module docstring)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.ev = _Evaluator(problem)
        self.nstages = len(problem.space.strides)

    def _terms(self, stem: int, stages: list[Choice]):
        out = []
        for j, ch in enumerate(stages):
            arr = self.ev.arrays(j, ch.channels)
            a = stem if j == 0 else stages[j - 1].channels
            ai = _index(arr.inputs, a) if arr is not None else None
            if ai is None:
                return None
            e, f, p, n, t = _stage_terms(arr, ai, _index(arr.inner, ch.inner), arr.kernels.index(ch.kernel), ch.depth)
            out.append((float(e), int(f), int(p), int(n), float(t)))
        return out

    def value(self, stem: int, stages: list[Choice]) -> tuple[float, float]:
        terms = self._terms(stem, stages)
        if terms is None:
            return math.inf, -math.inf
        e, f, p, n, t = (list(x) for x in zip(*terms))
        v, o = self.ev.score(stem, [s.channels for s in stages], e, f, p, n, t, [s.depth for s in stages])
        return float(v), float(o)

    def _move(self, stem: int, stages: list[Choice], j: int) -> tuple[tuple[float, float], int, list[Choice]] | None:
        """The best replacement of stage ``j`` (``-1``: the stem), others fixed."""
        terms = self._terms(stem, stages)
        if terms is None:
            return None
        e, f, p, n, t = (list(x) for x in zip(*terms))
        widths, depths = [s.channels for s in stages], [s.depth for s in stages]
        best = None
        nxt = stages[j + 1] if j + 1 < self.nstages else None
        nxt_arr = self.ev.arrays(j + 1, nxt.channels) if nxt else None
        candidates = self.problem.space.stem_grid() if j < 0 else self.problem.space.channel_grid()
        for c in candidates:
            ee, ff, pp, nn, tt, ww, dd = list(e), list(f), list(p), list(n), list(t), list(widths), list(depths)
            if nxt is not None:
                ai = _index(nxt_arr.inputs, c)
                if ai is None:
                    continue
                nt = _stage_terms(nxt_arr, ai, _index(nxt_arr.inner, nxt.inner), nxt_arr.kernels.index(nxt.kernel), nxt.depth)
                ee[j + 1], ff[j + 1], pp[j + 1], nn[j + 1], tt[j + 1] = float(nt[0]), int(nt[1]), int(nt[2]), int(nt[3]), float(nt[4])
            if j < 0:
                v, o = self.ev.score(c, ww, ee, ff, pp, nn, tt, dd)
                key = (float(v), -float(o))
                if best is None or key < best[0]:
                    best = (key, c, list(stages))
                continue
            arr = self.ev.arrays(j, c)
            a = stem if j == 0 else stages[j - 1].channels
            ai = _index(arr.inputs, a) if arr is not None else None
            if ai is None:
                continue
            d = arr.depths[None, None, :]
            bi = np.arange(len(arr.inner))[:, None, None]
            ki = np.arange(len(arr.kernels))[None, :, None]
            ee[j], ff[j], pp[j], nn[j], tt[j] = _stage_terms(arr, ai, bi, ki, d)
            ww[j], dd[j] = c, d
            v, o = self.ev.score(stem, ww, ee, ff, pp, nn, tt, dd)
            v, o = np.broadcast_arrays(v, o)
            order = np.lexsort((-o.ravel(), v.ravel()))[0]
            b_, k_, d_ = np.unravel_index(int(order), v.shape)
            key = (float(v.ravel()[order]), -float(o.ravel()[order]))
            if best is None or key < best[0]:
                new = list(stages)
                new[j] = Choice(c, int(arr.inner[b_]), arr.kernels[k_], int(arr.depths[d_]))
                best = (key, stem, new)
        return best

    def run(self, stem: int, stages: list[Choice], *, max_sweeps: int = 50, deadline: float = math.inf) -> tuple[int, list[Choice]]:
        """Climb from a start design until no single-stage move improves it (or ``deadline``, a
        ``time.perf_counter`` value, passes)."""
        key = self.value(stem, stages)
        key = (key[0], -key[1])
        for _ in range(max_sweeps):
            improved = False
            for j in range(-1, self.nstages):
                if interrupt.past(deadline):
                    return stem, stages
                found = self._move(stem, stages, j)
                if found is not None and found[0] < (key[0], key[1] - 1e-9 * abs(key[1])):
                    key, stem, stages = found
                    improved = True
            if not improved:
                break
        return stem, stages

    def start(self) -> tuple[int, list[Choice]]:
        """A start design: the narrowest stem, and every stage at the same middle-ish width, its
        widest inner width, largest kernel and smallest depth (a shallow, wide network meets the
        effectiveness bound most easily)."""
        space = self.problem.space
        grid = space.channel_grid()
        stem = space.stem_grid()[0]
        for c in grid[len(grid) // 8:] + grid[: len(grid) // 8][::-1]:
            stages = []
            for j in range(self.nstages):
                arr = self.ev.arrays(j, c)
                if arr is None or (j == 0 and _index(arr.inputs, stem) is None):
                    break
                stages.append(Choice(c, int(arr.inner[-1]), arr.kernels[-1], int(arr.depths[0])))
            if len(stages) == self.nstages:
                return stem, stages
        raise ValueError("no constant-width start design in the space")

    def architecture(self, stem: int, stages: list[Choice]) -> Architecture:
        from .options import Option

        def opt(j: int, c: int, ch: Choice | None) -> Option:
            return Option(j, 0, c, ch.inner if ch else 0, ch.kernel if ch else 3, ch.depth if ch else 1, 0, 0, 0.0, 0, 0.0)

        return assemble(self.problem, opt(-1, stem, None), [opt(j, ch.channels, ch) for j, ch in enumerate(stages)])


def local_search(
    problem: Problem, *, kicks: int = 30, seconds: float = math.inf, seed: int = 0, start: Architecture | None = None
) -> Architecture:
    """A good design of ``problem`` (feasible when the search reaches the feasible region):
    the climb of :class:`LocalSearch` from ``start`` (a design of the space; default a wide,
    shallow constant-width one), then ``kicks`` times one or two stages' width, inner
    width and depth redrawn at random (from a generator seeded with ``seed``) followed by a
    climb, keeping the best design. Deterministic unless ``seconds`` cuts the climbs short."""
    ls = LocalSearch(problem)
    rng = np.random.default_rng(seed)
    deadline = time.perf_counter() + seconds
    first = ls.start() if start is None else (start.stem.channels, [Choice(s.channels, s.inner, s.kernel, s.depth) for s in start.stages])
    best = ls.run(*first, deadline=deadline)
    best_key = ls.value(*best)
    grid = problem.space.channel_grid()
    for _ in range(kicks):
        if interrupt.past(deadline):
            break
        stem, stages = best[0], list(best[1])
        for _ in range(int(rng.integers(1, 3))):
            j = int(rng.integers(0, len(stages)))
            lo, hi = problem.space.depths[j]
            old = stages[j]
            c = int(grid[min(len(grid) - 1, max(0, grid.index(old.channels) + int(rng.integers(-8, 9))))])
            arr = ls.ev.arrays(j, c)
            if arr is None:
                continue
            inner = int(arr.inner[int(rng.integers(0, len(arr.inner)))])
            stages[j] = Choice(c, inner, old.kernel, int(rng.integers(lo, hi + 1)))
        candidate = ls.run(stem, stages, deadline=deadline)
        key = ls.value(*candidate)
        if (key[0], -key[1]) < (best_key[0], -best_key[1]):
            best, best_key = candidate, key
    return ls.architecture(*best)
