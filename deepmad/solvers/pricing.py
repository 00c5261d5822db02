"""Pricing passes over the whole space: every option valued at linear prices, stage by stage.

A stage option's value at prices is ``sum price * attribute`` (entropy, FLOPs,
parameters, latency, layers, depth, squared depth) plus terms of its input
and output widths. :func:`price` values every option of one stage at ``G``
settings of the entropy price at once (the other prices shared), and keeps,
per output width and input width (an *edge* of the width graph), the best
option's value and choice: the question a Lagrangian pass, a column
generation round, the entropy caps and a longest path all ask
(:mod:`deepmad.solvers.kernels`). :class:`Paths` are the longest paths over
the width graph at one setting, and :func:`options_above` lists the options
through which a path can reach a floor (reduced-cost fixing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .engine import Engine, StageTable, log
from .formulation import Options
from .kernels import above, depth_envelope, envelopes, line_costs, line_depths, undominated


@dataclass(frozen=True)
class StagePrices:
    """Value per unit of each attribute of a stage's options: ``entropy`` per setting (an array of
    ``G``), the others shared (FLOPs raw, latency in ms)."""

    entropy: np.ndarray
    flops: float = 0.0
    params: float = 0.0
    latency: float = 0.0
    layers: float = 0.0
    depth: float = 0.0
    depth2: float = 0.0
    allowed: np.ndarray | None = None  # the depths allowed (a mask over the stage's depths); all where None


@dataclass(frozen=True, eq=False)
class Priced:
    """One stage at one set of prices. Edge ``e`` (``edge_start[m] + ai - a_lo[m]``): width ``m``
    fed by input ``ai``; ``value[e, g]`` the best option's value (its first and other blocks,
    without the head), ``line[e, g]`` its pair and kernel (``p K + k``), ``depth[e, g]`` its
    depth; ``head[m, g]`` the head's value; ``best``/``at``: per width, the best over the inputs of
    ``value + Z`` and its input (where a ``Z`` was given)."""

    table: StageTable
    edge_start: np.ndarray
    value: np.ndarray
    line: np.ndarray
    depth: np.ndarray
    head: np.ndarray
    best: np.ndarray | None
    at: np.ndarray | None

    def edge_inputs(self) -> np.ndarray:
        """The input index of every edge."""
        return self.table.edge_inputs

    def edge_widths(self) -> np.ndarray:
        """The output width index of every edge."""
        return self.table.edge_widths

    def choice(self, e: int, g: int = 0) -> tuple[int, int, int]:
        """``(p, k, d)`` of the best option of edge ``e`` at setting ``g``."""
        p, k = divmod(int(self.line[e, g]), len(self.table.kernels))
        return p, k, int(self.depth[e, g])


def edge_starts(t: StageTable) -> np.ndarray:
    return t.edge_start


def _lines(t: StageTable, sp: StagePrices) -> dict:
    """The kernel's per-line arrays at prices ``sp`` (lines ``q = p K + k``): the first block's
    ``(entropy, flops, params, latency)``, the alike block's, one further block's, the slopes in the
    input width, the prices of the costs (per FLOP, per parameter, per ms: the latency's only where
    the stage has latencies), the priced layers of a first and a further block, the depth envelope
    of ``extra[d]``, and ``za[a, g]``, the input's own entropy term
    (:func:`deepmad.solvers.kernels.envelopes`)."""
    e = np.asarray(sp.entropy, dtype=float)
    lat = t.latency
    none = np.zeros(1)

    def block(c, latency):
        return (c.entropy.reshape(-1), c.flops.reshape(-1), c.params.reshape(-1), latency.reshape(-1) if lat is not None else none)

    extra = sp.depth * t.depths + sp.depth2 * t.depths.astype(float) ** 2
    if sp.allowed is not None:
        extra = np.where(sp.allowed, extra, -np.inf)
    slopes, intercepts, depths, breaks = depth_envelope(t.depths, extra)
    return dict(
        V=e, first=block(t.first, lat.first if lat else None), alike=block(t.alike, lat.alike if lat else None),
        rest=block(t.rest, lat.rest if lat else None), slope=(t.slope.flops.reshape(-1), t.slope.params.reshape(-1)),
        prices=np.array([sp.flops, sp.params, sp.latency if lat is not None else 0.0], dtype=float),
        layers=(float(sp.layers * t.first_layers), float(sp.layers * t.rest_layers)),
        slopes=slopes, intercepts=intercepts, depths=depths, breaks=breaks, extra=extra,
        za=(t.log_a * log(t.inputs))[:, None] * e[None, :],
    )


def _costs(L: dict, block: str) -> np.ndarray:
    """A block's priced costs of every line (:func:`_lines`)."""
    _, flops, params, latency = L[block]
    return line_costs(flops, params, latency, L["prices"], L["layers"][block == "rest"])


_NO_LATENCY = (np.zeros((1, 1, 1)), np.zeros((1, 1, 1)), np.zeros(1, dtype=np.int64))


def price(t: StageTable, sp: StagePrices, Z: np.ndarray | None = None) -> Priced:
    """Every option of stage table ``t`` at prices ``sp``; ``Z[ai, g]``: a value per input (a path's
    value so far) to find the best edge into each width."""
    L = _lines(t, sp)
    V = L["V"]
    starts = edge_starts(t)
    lat = t.latency
    lu, ls, bi = (lat.units, lat.shortcut, lat.bi) if lat is not None else _NO_LATENCY
    zz = np.zeros((len(t.inputs), len(V))) if Z is None else Z
    E, Q, best, at = envelopes(V, L["first"], L["alike"], L["rest"], L["slope"], L["prices"], L["layers"], L["slopes"], L["intercepts"],
                               L["breaks"], L["za"], zz, t.inputs.astype(float), t.a_lo, t.a_hi, t.same, t.starts, len(t.kernels), starts,
                               lu, ls, bi, sp.latency if lat is not None else 0.0)
    depth = line_depths(Q, V, L["rest"], L["prices"], L["layers"], L["slopes"], L["intercepts"], L["depths"], L["breaks"])
    head = (V[None, :] * t.head.entropy[:, None] + (sp.flops * t.head.flops + sp.params * t.head.params + sp.latency * t.head_latency
                                                    + sp.layers * t.head_layers)[:, None])
    return Priced(t, starts, E, Q, depth, head, best if Z is not None else None, at if Z is not None else None)


def compile_kernels(engine: Engine) -> None:
    """Have numba compile, or load from its cache, every kernel a large-space solve calls, at the
    types the solve calls them with, by pricing the first stage once. A solve does this before its
    steps begin: the first solve after installing spends its compile time (about 4 s) here, where
    no step's work is counted, and returns the result the next one does, unless that time brings
    it to its time limit."""
    t = engine.stages[0]
    sp = StagePrices(np.zeros(1))
    price(t, sp)
    options_above(t, sp, np.full(len(t.edge_inputs), np.inf), 0)
    undominated(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1))


def options_above(t: StageTable, sp: StagePrices, threshold: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """Rows ``(m, ai, q, di)`` of every option of ``t`` whose value at ``sp`` (one setting; the head
    included) is at least ``threshold[edge]``, and their count (``limit + 1``: more than ``limit``)."""
    L = _lines(t, StagePrices(np.asarray(sp.entropy, dtype=float)[:1], sp.flops, sp.params, sp.latency, sp.layers, sp.depth, sp.depth2,
                              sp.allowed))
    v = float(L["V"][0])
    head = v * t.head.entropy + sp.flops * t.head.flops + sp.params * t.head.params + sp.latency * t.head_latency + sp.layers * t.head_layers
    thr = threshold - np.repeat(head, t.a_hi - t.a_lo)  # the head is the same for every option of a width
    lat = t.latency
    lu, ls, bi = (lat.units, lat.shortcut, lat.bi) if lat is not None else _NO_LATENCY
    W = L["prices"][0] * L["slope"][0] + L["prices"][1] * L["slope"][1]
    return above(v * L["first"][0] + _costs(L, "first"), W, v * L["alike"][0] + _costs(L, "alike"), L["za"][:, 0].copy(),
                 v * L["rest"][0] + _costs(L, "rest"), L["extra"].astype(float), t.depths.astype(float), thr.astype(float), t.inputs.astype(float),
                 t.a_lo, t.a_hi, t.same, t.starts, len(t.kernels), edge_starts(t), limit, lu, ls, bi,
                 sp.latency if lat is not None else 0.0)


def stage_options(engine: Engine, j: int, m, ai, p, k, d) -> Options:
    """The options of stage ``j`` at engine indices (arrays of equal length), with exact costs."""
    t = engine.stages[j]
    m, ai, p, k, d = (np.asarray(x, dtype=np.int64) for x in (m, ai, p, k, d))
    a = t.inputs[ai]
    same = ai == t.same[m]
    n = d - 1
    flops = np.where(same, t.alike.flops[p, k], t.first.flops[p, k] + a * t.slope.flops[p, k]) + n * t.rest.flops[p, k] + t.head.flops[m]
    params = np.where(same, t.alike.params[p, k], t.first.params[p, k] + a * t.slope.params[p, k]) + n * t.rest.params[p, k] + t.head.params[m]
    entropy = (np.where(same, t.alike.entropy[p, k], t.first.entropy[p, k] + t.log_a * log(a)) + n * t.rest.entropy[p, k]
               + t.head.entropy[m])
    latency = np.zeros(len(m))
    if t.latency is not None:
        L = t.latency
        latency = (np.where(same, L.alike[p, k], L.of_first(ai, m, p, k)) + n * L.rest[p, k]
                   + t.head_latency[m])
    return Options(j, a, t.widths[m], t.inner[p], np.asarray(t.kernels)[k], d, entropy, flops, params, latency, t.layers(d))


def stem_options(engine: Engine) -> Options:
    st = engine.stem
    n = len(st.widths)
    return Options(-1, np.full(n, 3), st.widths, np.zeros(n, dtype=np.int64), np.full(n, 3), np.ones(n, dtype=np.int64), st.entropy,
                   st.flops, st.params, st.latency, np.ones(n, dtype=np.int64))


def _at_widths(values: np.ndarray, widths: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``values`` (indexed like ``widths``) moved onto ``grid`` (``-inf`` where ``widths`` has no entry)."""
    out = np.full(len(grid), -math.inf)
    idx = np.searchsorted(grid, widths)
    ok = (idx < len(grid)) & (grid[np.minimum(idx, len(grid) - 1)] == widths)
    out[idx[ok]] = values[ok]
    return out


@dataclass(frozen=True, eq=False)
class Paths:
    """Longest paths over the width graph at one setting of prices.

    ``into[j][ai]``: the best value of a stem and stages ``0..j-1`` ending at input ``ai`` of stage
    ``j`` (``into[0]``: the stem's values); ``after[j][m]``: the best value of stages ``j+1..`` after
    stage ``j`` ends at width ``m`` (zero after the last stage); ``edges[j][e]``: the value of edge
    ``e`` of stage ``j`` (its best option, the head and the width terms); ``constant`` is added to
    every path."""

    constant: float
    into: list[np.ndarray]
    after: list[np.ndarray]
    edges: list[np.ndarray]
    priced: list[Priced]

    @property
    def bound(self) -> float:
        pr = self.priced[-1]
        return self.constant + float(np.max(self.into[-1][pr.edge_inputs()] + self.edges[-1]))

    def through(self, j: int) -> np.ndarray:
        """The value of the best path through each edge of stage ``j`` (constant included)."""
        pr = self.priced[j]
        return self.constant + self.into[j][pr.edge_inputs()] + self.edges[j] + self.after[j][pr.edge_widths()]

    def best_path(self) -> tuple[int, list[tuple[int, int, int, int, int]]]:
        """The longest path: the stem index and per stage ``(m, ai, p, k, d)``."""
        out = []
        j = len(self.priced) - 1
        e = int(np.argmax(self.through(j)))
        while True:
            pr = self.priced[j]
            m, ai = int(pr.edge_widths()[e]), int(pr.edge_inputs()[e])
            out.append((m, ai, *pr.choice(e)))
            if j == 0:
                break
            prev = self.priced[j - 1]
            mp = int(np.searchsorted(prev.table.widths, pr.table.inputs[ai]))
            lo, hi = int(prev.edge_start[mp]), int(prev.edge_start[mp + 1])
            e = lo + int(np.argmax(self.into[j - 1][prev.edge_inputs()[lo:hi]] + self.edges[j - 1][lo:hi]))
            j -= 1
        out.reverse()
        return out[0][1], out  # stage 0's input index is the stem's index


def longest_paths(engine: Engine, constant: float, stem_value: np.ndarray, priced: list[Priced],
                  inflow: list | None = None, outflow: list | None = None) -> Paths:
    """The longest paths over the stages ``priced`` (one setting each, see :func:`price`).
    ``stem_value``: per stem width; ``inflow[j][ai]`` and ``outflow[j][m]``: values of stage ``j``'s
    input and output widths (none where ``None``)."""
    M = len(engine.stages)
    into = [np.asarray(stem_value, dtype=float)]
    edges = []
    for j, t in enumerate(engine.stages):
        pr = priced[j]
        value = pr.value[:, 0] + pr.head[pr.edge_widths(), 0]
        if inflow is not None and inflow[j] is not None:
            value = value + inflow[j][pr.edge_inputs()]
        if outflow is not None and outflow[j] is not None:
            value = value + outflow[j][pr.edge_widths()]
        edges.append(value)
        if j + 1 < M:
            best = np.full(len(t.widths), -math.inf)
            np.maximum.at(best, pr.edge_widths(), into[j][pr.edge_inputs()] + value)
            into.append(_at_widths(best, t.widths, engine.stages[j + 1].inputs))
    after: list = [None] * M
    after[M - 1] = np.zeros(len(engine.stages[-1].widths))
    for j in range(M - 1, 0, -1):
        pr, t = priced[j], engine.stages[j]
        best = np.full(len(t.inputs), -math.inf)
        np.maximum.at(best, pr.edge_inputs(), edges[j] + after[j][pr.edge_widths()])
        prev = engine.stages[j - 1]
        after[j - 1] = best[np.searchsorted(t.inputs, prev.widths)]  # every width of a stage is an input of the next
    return Paths(constant, into, after, edges, priced)
