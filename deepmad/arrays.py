"""Stage options in bulk: numpy arrays from the block layouts and the accounting.

The preset spaces hold billions of stage options, too many to list one by
one. For one stage and one output width ``c``, :func:`stage_arrays` gives the
costs and entropy of every input width ``a``, inner width ``b`` and kernel
``k`` at once, with no formula of its own: the block type's layout function
is called with placeholder widths (a trace), each conv of the traced layout
is rebuilt with arrays of ``a`` and ``b`` in place of the placeholders, and
the accounting (:func:`deepmad.accounting.block_costs`) and the entropy
(``1/2 * sum ln(fan_in)``) run on those arrays unchanged. A first block whose
input width equals ``c`` is traced apart, since inverted residual and basic
blocks change their shortcut there.

A stage option ``(a, c, b, k, d)`` costs ``first[a, b, k] + (d - 1) *
rest[b, k] + head`` (the head conv belongs to the last stage), and the same
holds for its entropy and layer count. Where the problem has a latency model,
the blocks' units (:func:`deepmad.latency.block_units`, from the same traced
layout) are timed in bulk too; the last stage's ``head`` then includes the
classifier, which runs after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .accounting import block_costs, conv_cost
from .architecture import MAX, Architecture
from .blocks import BLOCK_TYPES, BlockLayout, Conv, SqueezeExcite, se_hidden_width
from .latency import LatencyModel, block_units, head_units
from .problem import Problem

# Placeholder widths for the trace: far above any allowed width, and distinct
# from each other and from the SE hidden width of the inner placeholder.
_A = 10 * MAX["channels"] + 1
_B = 40 * MAX["channels"]
_H = se_hidden_width(_B)
assert len({_A, _B, _H}) == 3 and min(_A, _B, _H) > MAX["channels"]


_LOGS = np.zeros(0)


def _log(x) -> np.ndarray:
    """``math.log`` of positive integers, element-wise: the same bits as the scalar path on every
    machine (numpy's own log may differ in the last bit between CPUs)."""
    global _LOGS
    x = np.asarray(x)
    top = int(x.max())
    if top >= len(_LOGS):
        size = max(top + 1, 2 * len(_LOGS), 1 << 16)
        _LOGS = np.array([-math.inf] + [math.log(v) for v in range(1, size)])
    return _LOGS[x]


def traced_layout(block: str, c_in: int | None, c_out: int, kernel: int, stride: int, first: bool, a, b) -> BlockLayout:
    """The layout of a ``block`` with input ``a`` (or the scalar ``c_in`` where given) and inner ``b``
    (arrays that broadcast), output ``c_out``: the block type's own layout with the widths substituted."""
    layout = BLOCK_TYPES[block].layout(_A if c_in is None else c_in, c_out, _B, kernel, stride, first)

    values = {_A: a, _B: b, _H: se_hidden_width(b) if layout.se else None}

    def sub(v: int):
        return values.get(v, v)

    convs = tuple(Conv(sub(x.c_in), sub(x.c_out), x.kernel, x.stride, sub(x.groups)) for x in layout.convs)
    se = layout.se and SqueezeExcite(sub(layout.se.channels), sub(layout.se.hidden), layout.se.after)
    return BlockLayout(convs, layout.shortcut, layout.activation, se)


@dataclass(frozen=True)
class BlockArrays:
    """Costs and entropy of one block over a grid (``flops`` in the problem's convention,
    ``latency`` in ms, zero without a latency model)."""

    flops: np.ndarray
    params: np.ndarray
    entropy: np.ndarray
    layers: int
    latency: np.ndarray


def _evaluate(layout: BlockLayout, side_in: int, convention: str, shape: tuple[int, ...], model: LatencyModel | None) -> BlockArrays:
    rows = block_costs("block", layout, side_in)
    flops = sum((r.flops_tinynas if convention == "tinynas" else r.macs) for r in rows)
    params = sum(r.params for r in rows)
    entropy = 0.0
    for conv in layout.convs:
        entropy = entropy + _log(conv.fan_in)
    if model is None:  # no latency model: zeros that take no memory (read-only)
        latency = np.broadcast_to(np.zeros(()), shape)
    else:
        latency = np.broadcast_to(np.asarray(model.units_ms(block_units(layout, side_in)), dtype=float), shape).copy()
    return BlockArrays(
        np.broadcast_to(np.asarray(flops, dtype=np.int64), shape).copy(),
        np.broadcast_to(np.asarray(params, dtype=np.int64), shape).copy(),
        0.5 * np.broadcast_to(entropy, shape),
        len(layout.convs),
        latency,
    )


@dataclass(frozen=True)
class StageArrays:
    """Every option of stage ``stage`` with output width ``channels``.

    ``inputs``, ``inner``, ``kernels`` and ``depths`` are the allowed values;
    ``first`` is indexed ``[a, b, k]``, ``rest`` ``[b, k]``; ``head`` holds the
    head conv's flops, params, entropy and layers (zeros but for the last
    stage of a space with a head) and the latency of the head conv and the
    classifier (last stage only).
    """

    stage: int
    channels: int
    inputs: np.ndarray
    inner: np.ndarray
    kernels: tuple[int, ...]
    depths: np.ndarray
    first: BlockArrays
    rest: BlockArrays
    head: tuple[int, int, float, int, float]

    def flops(self, d: int) -> np.ndarray:
        return self.first.flops + (d - 1) * self.rest.flops[None] + self.head[0]

    def params(self, d: int) -> np.ndarray:
        return self.first.params + (d - 1) * self.rest.params[None] + self.head[1]

    def entropy(self, d: int) -> np.ndarray:
        return self.first.entropy + (d - 1) * self.rest.entropy[None] + self.head[2]

    def layers(self, d: int) -> int:
        return self.first.layers + (d - 1) * self.rest.layers + self.head[3]

    def latency(self, d: int) -> np.ndarray:
        return self.first.latency + (d - 1) * self.rest.latency[None] + self.head[4]


def stage_inputs(problem: Problem, j: int, c: int) -> np.ndarray:
    """Input widths that may feed stage ``j`` with output ``c`` (growth rule, non-decreasing guideline)."""
    space = problem.space
    grid = space.stem_grid() if j == 0 else space.channel_grid()
    return np.array(
        [a for a in grid if space.growth_ok(a, c, first=j == 0) and not (j > 0 and problem.nondecreasing and c < a)],
        dtype=np.int64,
    )


def stage_arrays(problem: Problem, j: int, c: int) -> StageArrays | None:
    """The options of stage ``j`` with output width ``c`` (``None`` when the rules leave none)."""
    space = problem.space
    inputs = stage_inputs(problem, j, c)
    inner = np.array(space.inner_grid(c), dtype=np.int64)
    if not len(inputs) or not len(inner):
        return None
    stride = space.strides[j]
    side_in = space.resolution // (space.stem_stride * math.prod(space.strides[:j]))
    side_out = side_in // stride
    conv = problem.flops_convention
    model = problem.latency_model
    a, b = inputs[:, None], inner[None, :]
    firsts, rests = [], []
    for k in space.kernels:
        first = _evaluate(traced_layout(space.block, None, c, k, stride, True, a, b), side_in, conv, (len(inputs), len(inner)), model)
        same = np.flatnonzero(inputs == c)
        if len(same):  # a first block that keeps the width: traced apart
            alike = _evaluate(traced_layout(space.block, c, c, k, stride, True, c, b), side_in, conv, (1, len(inner)), model)
            for attr in ("flops", "params", "entropy") + (("latency",) if model is not None else ()):
                getattr(first, attr)[same] = getattr(alike, attr)
        firsts.append(first)
        rests.append(_evaluate(traced_layout(space.block, c, c, k, 1, False, c, inner), side_out, conv, (len(inner),), model))
    head: tuple[int, int, float, int, float] = (0, 0, 0.0, 0, 0.0)
    if j == len(space.strides) - 1:
        tail = float(model.units_ms(head_units(c, space.head, side_out, Architecture.num_classes))) if model is not None else 0.0
        head = (0, 0, 0.0, 0, tail)
        if space.head:
            row = conv_cost("head", Conv(c, space.head, 1), side_out, activation=True)
            head = (row.flops_tinynas if conv == "tinynas" else row.macs, row.params, 0.5 * math.log(c), 1, tail)
    def stack(blocks: list[BlockArrays], attr: str) -> np.ndarray:
        if attr == "latency" and model is None:
            return np.broadcast_to(np.zeros(()), (*blocks[0].flops.shape, len(blocks)))
        return np.stack([getattr(x, attr) for x in blocks], axis=-1)

    lo, hi = space.depths[j]
    return StageArrays(
        stage=j,
        channels=c,
        inputs=inputs,
        inner=inner,
        kernels=space.kernels,
        depths=np.arange(lo, hi + 1),
        first=BlockArrays(stack(firsts, "flops"), stack(firsts, "params"), stack(firsts, "entropy"), firsts[0].layers, stack(firsts, "latency")),
        rest=BlockArrays(stack(rests, "flops"), stack(rests, "params"), stack(rests, "entropy"), rests[0].layers, stack(rests, "latency")),
        head=head,
    )
