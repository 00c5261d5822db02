"""The engine: a problem's stage options as arrays, built once and shared by every step of a solve.

A stage option ``(a, c, b, k, d)`` (input width, output width, inner width,
kernel, depth) costs its first block, ``d - 1`` copies of the block that
follows, and, in the last stage, the head. The preset spaces hold billions of
such options, but their coefficients have a structure that makes them cheap
to hold: a block's FLOPs and parameters are *affine* in its input width ``a``
(the input width meets only the first conv and the shortcut), and its entropy
is ``E0 + h ln a``. So per stage, per pair ``(c, b)`` and kernel, the engine
keeps

* ``first`` (the first block at ``a = 0``, entropy at ``a = 1``) and ``slope``
  (per unit of ``a``), with ``log_a = h``;
* ``alike``, the first block when ``a == c`` (inverted residual and basic
  blocks change their shortcut there, bottlenecks keep the projection);
* ``rest``, one of the other blocks;

and per output width the head (last stage only). The arrays come from the
block type's own layout (:mod:`deepmad.model.blocks`), traced with placeholder
widths and evaluated by the accounting (:func:`deepmad.model.accounting.block_costs`)
on arrays: no formula of their own. The affine structure is checked when the
arrays are built, at a third input width; a block type that broke it would be
refused, not mispriced.

With a latency model, the first block's latency is not affine in ``a``: the
units it meets (the first conv ``a -> b``, the shortcut ``a -> c``) are timed
on the grids they span (:class:`Latency`), which stays small.

Everything is indexed: stage ``j`` has output widths ``widths[m]`` fed by
``inputs[a_lo[m]:a_hi[m]]`` (``same[m]`` is the index of the input equal to
the width, or -1), and pairs ``starts[m]:starts[m + 1]`` of inner widths
``inner[p]``; kernels ``kernels[k]``; depths ``depths``. FLOPs are in the
problem's convention, latency in ms, entropy ``1/2 sum ln(fan-in)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..errors import DeepmadError
from ..hardware.latency import block_units, head_units, stem_unit
from ..model.accounting import block_costs, conv_cost
from ..model.architecture import MAX, Architecture
from ..model.blocks import BLOCK_TYPES, BlockLayout, Conv, SqueezeExcite, se_hidden_width
from ..problem.problem import Problem

# Placeholder widths for the trace: far above any allowed width, distinct from each other
# and from the SE hidden width of the inner placeholder.
_A = 10 * MAX["channels"] + 1
_C = 20 * MAX["channels"] + 3
_B = 40 * MAX["channels"]
_H = se_hidden_width(_B)
assert len({_A, _B, _C, _H}) == 4 and min(_A, _B, _C, _H) > MAX["channels"]

def log(x) -> np.ndarray:
    """``math.log`` of non-negative integers, element-wise (``-inf`` at 0): the same bits as the
    scalar path on every machine (numpy's own log may differ in the last bit between CPUs)."""
    x = np.asarray(x)
    values, at = np.unique(x, return_inverse=True)
    return np.array([math.log(v) if v > 0 else -math.inf for v in values.tolist()])[at].reshape(x.shape)


def traced(block: str, c_in, c_out, inner, kernel: int, stride: int, first: bool, *, alike: bool = False) -> BlockLayout:
    """The layout of a ``block`` with input ``c_in``, output ``c_out`` and inner width ``inner``
    (numbers, or arrays that broadcast): the block type's own layout traced at placeholder widths,
    the placeholders then replaced. ``alike``: a block whose input equals its output (``c_in`` unused)."""
    layout = BLOCK_TYPES[block].layout(_C if alike else _A, _C, _B, kernel, stride, first)
    values = {_A: c_in, _C: c_out, _B: inner}
    if layout.se and inner is not _B:  # traced with the placeholder itself: the SE width stays one
        values[_H] = se_hidden_width(inner)

    def sub(v: int):
        return values.get(v, v)

    convs = tuple(dataclasses.replace(x, c_in=sub(x.c_in), c_out=sub(x.c_out), groups=sub(x.groups)) for x in layout.convs)
    se = layout.se and SqueezeExcite(sub(layout.se.channels), sub(layout.se.hidden), layout.se.after)
    return BlockLayout(convs, layout.shortcut, layout.activation, se)


@dataclass(frozen=True)
class Costs:
    """FLOPs and parameters (int64) and entropy (float) of blocks over a grid."""

    flops: np.ndarray
    params: np.ndarray
    entropy: np.ndarray

    @classmethod
    def of(cls, layout: BlockLayout, side_in: int, convention: str, shape: tuple[int, ...]) -> "Costs":
        rows = block_costs("block", layout, side_in)
        flops = sum((r.flops_tinynas if convention == "tinynas" else r.macs) for r in rows)
        params = sum(r.params for r in rows)
        entropy = 0.5 * sum(log(np.asarray(conv.fan_in)) for conv in layout.convs)
        return cls(*(np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=t), shape)) for x, t in
                     ((flops, np.int64), (params, np.int64), (entropy, float))))


@dataclass(frozen=True, eq=False)
class Latency:
    """Latency (ms) of a stage's blocks: ``first[p, k] + units[a, bi[p], k] + shortcut[a, m, k]`` for
    the first block fed by input ``a`` (:meth:`of_first`); ``alike`` and ``rest`` as in
    :class:`StageTable`. ``inner`` is the grid ``bi`` indexes (every inner width of the stage);
    ``shortcut`` holds the units that meet the input but not the inner width (the shortcut, and a
    conv from the input straight to the output or on the input alone)."""

    first: np.ndarray
    units: np.ndarray
    shortcut: np.ndarray
    inner: np.ndarray
    bi: np.ndarray
    alike: np.ndarray
    rest: np.ndarray

    def of_first(self, ai, m, p, k):
        """The first block's latency fed by input index ``ai`` (not its output width), at output width
        ``m``, pair ``p`` and kernel ``k`` (arrays that broadcast)."""
        return self.first[p, k] + self.units[ai, self.bi[p], k] + self.shortcut[ai, m, k]


@dataclass(frozen=True, eq=False)
class StageTable:
    """Every option of one stage (see the module docstring)."""

    index: int
    inputs: np.ndarray
    widths: np.ndarray
    a_lo: np.ndarray
    a_hi: np.ndarray
    same: np.ndarray
    starts: np.ndarray
    pair_width: np.ndarray
    inner: np.ndarray
    kernels: tuple[int, ...]
    depths: np.ndarray
    first: Costs
    slope: Costs  # entropy unused: see log_a
    log_a: float
    alike: Costs
    rest: Costs
    first_layers: int
    rest_layers: int
    head: Costs  # per output width (zeros but in the last stage)
    head_layers: int
    head_latency: np.ndarray  # per output width: head conv and classifier (last stage), ms
    latency: Latency | None

    @property
    def pairs(self) -> int:
        return len(self.inner)

    @cached_property
    def edge_start(self) -> np.ndarray:
        """Where each output width's edges (one per input that may feed it) start in a flat list."""
        return np.concatenate([[0], np.cumsum(self.a_hi - self.a_lo)]).astype(np.int64)

    @cached_property
    def edge_widths(self) -> np.ndarray:
        """The output width index of every edge."""
        return np.repeat(np.arange(len(self.widths)), self.a_hi - self.a_lo)

    @cached_property
    def edge_inputs(self) -> np.ndarray:
        """The input index of every edge."""
        counts = self.a_hi - self.a_lo
        return self.a_lo[self.edge_widths] + (np.arange(int(counts.sum())) - np.repeat(self.edge_start[:-1], counts))

    def layers(self, d) -> np.ndarray:
        return self.first_layers + (np.asarray(d) - 1) * self.rest_layers + self.head_layers

    def width_index(self, c: int) -> int | None:
        at = int(np.searchsorted(self.widths, c))
        return at if at < len(self.widths) and self.widths[at] == c else None

    def input_index(self, a: int) -> int | None:
        at = int(np.searchsorted(self.inputs, a))
        return at if at < len(self.inputs) and self.inputs[at] == a else None

    def pair_index(self, m: int, b: int) -> int | None:
        lo, hi = int(self.starts[m]), int(self.starts[m + 1])
        at = lo + int(np.searchsorted(self.inner[lo:hi], b))
        return at if at < hi and self.inner[at] == b else None

    def first_block(self, m: int, ai: int, p, k):
        """FLOPs, parameters, entropy and latency of the first block of width ``m`` fed by
        ``inputs[ai]``, at pairs ``p`` and kernels ``k`` (arrays that broadcast)."""
        if ai == self.same[m]:
            f, q, e = self.alike.flops[p, k], self.alike.params[p, k], self.alike.entropy[p, k]
            t = self.latency.alike[p, k] if self.latency is not None else 0.0
        else:
            a = int(self.inputs[ai])
            f = self.first.flops[p, k] + a * self.slope.flops[p, k]
            q = self.first.params[p, k] + a * self.slope.params[p, k]
            e = self.first.entropy[p, k] + self.log_a * float(log(a))
            t = 0.0
            if self.latency is not None:
                lat = self.latency
                t = lat.of_first(ai, m, p, k)
        return f, q, e, t


@dataclass(frozen=True, eq=False)
class StemTable:
    """The stem's options, one per width."""

    widths: np.ndarray
    flops: np.ndarray
    params: np.ndarray
    entropy: np.ndarray
    latency: np.ndarray
    layers: int = 1


@dataclass(frozen=True, eq=False)
class Engine:
    """A problem's options: the stem and one :class:`StageTable` per stage. Depends only on
    :func:`key` of the problem (space, FLOPs convention, non-decreasing rule, latency model)."""

    stem: StemTable
    stages: tuple[StageTable, ...]
    key: tuple = field(repr=False)

    @classmethod
    def of(cls, problem: Problem) -> "Engine":
        return cls(_stem(problem), tuple(_stage(problem, j) for j in range(len(problem.space.strides))), key(problem))

    @property
    def nbytes(self) -> int:
        total = 0
        for t in self.stages:
            for costs in (t.first, t.slope, t.alike, t.rest):
                total += costs.flops.nbytes + costs.params.nbytes + costs.entropy.nbytes
            if t.latency is not None:
                total += sum(getattr(t.latency, n).nbytes for n in ("first", "units", "shortcut", "alike", "rest"))
        return total

    def locate(self, arch: Architecture) -> tuple[int, list[tuple[int, int, int, int, int]]] | None:
        """``arch`` as indices: the stem's, and per stage ``(m, ai, p, k, d)``; ``None`` where one of
        its choices is not an option of this engine."""
        s = np.flatnonzero(self.stem.widths == arch.stem.channels)
        if not len(s):
            return None
        out, c_in = [], arch.stem.channels
        for t, stage in zip(self.stages, arch.stages):
            m = t.width_index(stage.channels)
            ai = t.input_index(c_in)
            if m is None or ai is None or not t.a_lo[m] <= ai < t.a_hi[m] or stage.kernel not in t.kernels:
                return None
            p = t.pair_index(m, stage.inner)
            if p is None or not t.depths[0] <= stage.depth <= t.depths[-1]:
                return None
            out.append((m, ai, p, t.kernels.index(stage.kernel), stage.depth))
            c_in = stage.channels
        return int(s[0]), out

    def design(self, problem: Problem, stem: int, stages: list[tuple[int, int, int, int, int]]) -> Architecture:
        """The architecture of the choices ``stem`` and ``(m, ai, p, k, d)`` per stage (see :meth:`locate`)."""
        return assemble(problem, int(self.stem.widths[stem]),
                        [(int(t.widths[m]), int(t.inner[p]), t.kernels[k], int(d)) for t, (m, _, p, k, d) in zip(self.stages, stages)])


def assemble(problem: Problem, stem: int, stages: list[tuple[int, int, int, int]]) -> Architecture:
    """The architecture of a stem width and, per stage, ``(channels, inner, kernel, depth)``
    (:meth:`deepmad.problem.space.DesignSpace.design`, named after the problem)."""
    return problem.space.design(stem, stages, name=problem.name)


def key(problem: Problem) -> tuple:
    """What a problem's options (their widths, costs and entropy) depend on."""
    return problem.space, problem.flops_convention, problem.nondecreasing, problem.latency_model


def _stem(problem: Problem) -> StemTable:
    space = problem.space
    side = space.resolution // space.stem_stride
    widths = np.array(space.stem_grid(), dtype=np.int64)
    rows = [conv_cost("stem", Conv(space.in_channels, int(c), space.stem_kernel, space.stem_stride), side, activation=True) for c in widths]
    model = problem.latency_model
    ms = [float(model.unit_ms(stem_unit(space.in_channels, int(c), space.stem_kernel, space.stem_stride, space.resolution))) if model else 0.0
          for c in widths]
    return StemTable(
        widths,
        np.array([r.flops_tinynas if problem.flops_convention == "tinynas" else r.macs for r in rows], dtype=np.int64),
        np.array([r.params for r in rows], dtype=np.int64),
        0.5 * log(np.full(len(widths), space.in_channels * space.stem_kernel**2)),  # the stem's fan-in
        np.array(ms),
    )


def _inputs(problem: Problem, j: int) -> np.ndarray:
    space = problem.space
    return np.array(space.stem_grid() if j == 0 else space.channel_grid(), dtype=np.int64)


def _stage(problem: Problem, j: int) -> StageTable:
    space = problem.space
    inputs = _inputs(problem, j)
    lo_hi, widths, inner_lists = [], [], []
    for c in space.channel_grid():
        ok = [space.growth_ok(int(a), c, first=j == 0) and not (j > 0 and problem.nondecreasing and c < a) for a in inputs]
        at = np.flatnonzero(ok)
        inner = space.inner_grid(c)
        if not len(at) or not inner:
            continue
        if at[-1] - at[0] + 1 != len(at):  # the rules are monotone in the input width: a range
            raise DeepmadError(f"internal error: the inputs of stage {j} at width {c} are not a range")
        lo_hi.append((int(at[0]), int(at[-1]) + 1))
        widths.append(c)
        inner_lists.append(inner)
    if not widths:
        raise DeepmadError(f"internal error: stage {j} has no options")  # DesignSpace validation prevents it
    widths_ = np.array(widths, dtype=np.int64)
    counts = np.array([len(b) for b in inner_lists], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    pair_width = np.repeat(np.arange(len(widths)), counts)
    inner = np.concatenate([np.array(b, dtype=np.int64) for b in inner_lists])
    c = widths_[pair_width]
    same = np.full(len(widths), -1, dtype=np.int64)
    for m, (w, (lo, hi)) in enumerate(zip(widths, lo_hi)):
        at = np.flatnonzero(inputs[lo:hi] == w)
        if len(at):
            same[m] = lo + int(at[0])

    stride = space.strides[j]
    side_in = space.resolution // (space.stem_stride * math.prod(space.strides[:j]))
    side_out = side_in // stride
    conv = problem.flops_convention
    shape = (len(inner), len(space.kernels))
    by_kernel: dict[str, list[Costs]] = {"at0": [], "at1": [], "check": [], "alike": [], "rest": []}
    check_a = 1000
    for k in space.kernels:
        for name, a in (("at0", 0), ("at1", 1), ("check", check_a)):
            by_kernel[name].append(Costs.of(traced(space.block, np.full(len(inner), a), c, inner, k, stride, True), side_in, conv, (len(inner),)))
        by_kernel["alike"].append(Costs.of(traced(space.block, None, c, inner, k, stride, True, alike=True), side_in, conv, (len(inner),)))
        by_kernel["rest"].append(Costs.of(traced(space.block, None, c, inner, k, 1, False, alike=True), side_out, conv, (len(inner),)))

    def stacked(name: str) -> Costs:
        parts = by_kernel[name]
        return Costs(*(np.stack([getattr(x, a) for x in parts], axis=1) for a in ("flops", "params", "entropy")))

    at0, at1, at_check = stacked("at0"), stacked("at1"), stacked("check")
    slope = Costs(at1.flops - at0.flops, at1.params - at0.params, np.zeros(shape))
    # Entropy: at a = 1 the input's log term is 0; the check below reads its coefficient.
    log_a = round(2.0 * float((at_check.entropy - at1.entropy).flat[0]) / math.log(check_a)) / 2.0
    first = Costs(at0.flops, at0.params, at1.entropy)
    if not (np.array_equal(at_check.flops, first.flops + check_a * slope.flops)
            and np.array_equal(at_check.params, first.params + check_a * slope.params)
            and np.allclose(at_check.entropy, first.entropy + log_a * math.log(check_a), rtol=0, atol=1e-9)):
        raise DeepmadError(f"block type {space.block!r}: the first block's costs are not affine in its input width")

    head = Costs(np.zeros(len(widths), dtype=np.int64), np.zeros(len(widths), dtype=np.int64), np.zeros(len(widths)))
    head_layers = 0
    head_latency = np.zeros(len(widths))
    last = j == len(space.strides) - 1
    if last and space.head:
        rows = [conv_cost("head", Conv(int(w), space.head, 1), side_out, activation=True) for w in widths]
        head = Costs(np.array([r.flops_tinynas if conv == "tinynas" else r.macs for r in rows], dtype=np.int64),
                     np.array([r.params for r in rows], dtype=np.int64), 0.5 * log(widths_))
        head_layers = 1
    model = problem.latency_model
    latency = None
    if model is not None:
        latency = _latency(problem, j, inputs, widths_, inner, c, side_in, side_out, stride)
        if last:
            head_latency = np.array([float(model.units_ms(head_units(int(w), space.head, side_out, Architecture.num_classes)))
                                     for w in widths])
    first_layers = len(traced(space.block, 8, 8, 8, space.kernels[0], stride, True).convs)
    lo_hi_ = np.array(lo_hi, dtype=np.int64)
    return StageTable(
        index=j, inputs=inputs, widths=widths_, a_lo=lo_hi_[:, 0].copy(), a_hi=lo_hi_[:, 1].copy(), same=same, starts=starts,
        pair_width=pair_width, inner=inner, kernels=space.kernels, depths=np.arange(space.depths[j][0], space.depths[j][1] + 1),
        first=first, slope=slope, log_a=log_a, alike=stacked("alike"), rest=stacked("rest"), first_layers=first_layers,
        rest_layers=len(traced(space.block, 8, 8, 8, space.kernels[0], 1, False).convs), head=head, head_layers=head_layers,
        head_latency=head_latency, latency=latency,
    )


def _latency(problem: Problem, j: int, inputs, widths, inner, c, side_in: int, side_out: int, stride: int) -> Latency:
    """The blocks' latency, split by what each unit of the traced layout depends on."""
    space, model = problem.space, problem.latency_model
    grid = np.unique(inner)
    bi = np.searchsorted(grid, inner)
    first, units, shortcut, alike, rest = [], [], [], [], []
    for k in space.kernels:
        per_pair = np.zeros(len(inner))
        per_unit = np.zeros((len(inputs), len(grid)))
        per_width = np.zeros((len(inputs), len(widths)))
        for unit in block_units(traced(space.block, _A, _C, _B, k, stride, True), side_in):  # placeholders kept
            fields = {unit.c_in, unit.c_out}
            uses_a = _A in fields
            if uses_a and _C in fields and (_B in fields or _H in fields):
                raise DeepmadError(f"block type {space.block!r}: a unit depends on the input, inner and output widths at once")

            def at(a, cc, b):
                sub = {_A: a, _C: cc, _B: b, _H: None if b is None else se_hidden_width(b)}
                return model.unit_ms(dataclasses.replace(unit, c_in=sub.get(unit.c_in, unit.c_in), c_out=sub.get(unit.c_out, unit.c_out)))

            if not uses_a:
                per_pair = per_pair + np.broadcast_to(at(None, c, inner), per_pair.shape)
            elif not ({_B, _H} & fields):
                per_width = per_width + np.broadcast_to(at(inputs[:, None], widths[None, :], None), per_width.shape)
            else:
                per_unit = per_unit + np.broadcast_to(at(inputs[:, None], None, grid[None, :]), per_unit.shape)
        first.append(per_pair)
        units.append(per_unit)
        shortcut.append(per_width)
        alike.append(np.broadcast_to(model.units_ms(block_units(traced(space.block, None, c, inner, k, stride, True, alike=True), side_in)), len(inner)))
        rest.append(np.broadcast_to(model.units_ms(block_units(traced(space.block, None, c, inner, k, 1, False, alike=True), side_out)), len(inner)))
    return Latency(np.stack(first, axis=1), np.stack(units, axis=2), np.stack(shortcut, axis=2), grid, bi, np.stack(alike, axis=1),
                   np.stack(rest, axis=1))
