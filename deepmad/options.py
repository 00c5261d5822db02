"""The discrete options of a problem, each with its exact cost and entropy.

An option of stage ``j`` fixes its input width ``c_in`` (the previous stage's
or the stem's output), its output ``channels``, ``inner`` width, ``kernel``
and ``depth``. Its coefficients come from the accounting and the block
layouts (:mod:`deepmad.accounting`, :mod:`deepmad.blocks`), never from a
second formula: ``flops`` (in the problem's convention), ``params``,
``entropy`` (``1/2 * sum ln w`` over its layers), ``layers`` and, where the
problem has a latency model, ``latency`` (ms). The last stage's options
include the head conv, which belongs to the last prefix (and, for latency,
the classifier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .accounting import LayerCost, conv_cost
from .architecture import Architecture, Head, Stage, Stem
from .arrays import StageArrays, stage_arrays
from .blocks import Conv
from .latency import stem_unit
from .problem import Problem


@dataclass(frozen=True)
class Option:
    """One choice for a stage (``stage >= 0``) or the stem (``stage == -1``)."""

    stage: int
    c_in: int
    channels: int
    inner: int
    kernel: int
    depth: int
    flops: int
    params: int
    entropy: float
    layers: int
    latency: float = 0.0


def _sum(rows: list[LayerCost], problem: Problem) -> tuple[int, int]:
    flops = sum(r.flops_tinynas if problem.flops_convention == "tinynas" else r.macs for r in rows)
    return flops, sum(r.params for r in rows)


def stem_options(problem: Problem) -> list[Option]:
    space = problem.space
    side = space.resolution // space.stem_stride
    out = []
    for c in space.stem_grid():
        conv = Conv(3, c, 3, space.stem_stride)
        flops, params = _sum([conv_cost("stem", conv, side, activation=True)], problem)
        latency = problem.latency_model
        ms = float(latency.unit_ms(stem_unit(c, space.stem_stride, space.resolution))) if latency else 0.0
        out.append(Option(-1, 3, c, 0, 3, 1, flops, params, 0.5 * math.log(conv.fan_in), 1, ms))
    return out


def option_at(arr: StageArrays, ai: int, bi: int, ki: int, d: int) -> Option:
    """The option of ``arr`` with input ``arr.inputs[ai]``, inner ``arr.inner[bi]``, kernel ``arr.kernels[ki]`` and depth ``d``."""
    first, rest, head = arr.first, arr.rest, arr.head
    return Option(
        stage=arr.stage,
        c_in=int(arr.inputs[ai]),
        channels=arr.channels,
        inner=int(arr.inner[bi]),
        kernel=arr.kernels[ki],
        depth=d,
        flops=int(first.flops[ai, bi, ki]) + (d - 1) * int(rest.flops[bi, ki]) + head[0],
        params=int(first.params[ai, bi, ki]) + (d - 1) * int(rest.params[bi, ki]) + head[1],
        entropy=float(first.entropy[ai, bi, ki]) + (d - 1) * float(rest.entropy[bi, ki]) + head[2],
        layers=first.layers + (d - 1) * rest.layers + head[3],
        latency=float(first.latency[ai, bi, ki]) + (d - 1) * float(rest.latency[bi, ki]) + head[4],
    )


def stage_options(problem: Problem, j: int) -> list[Option]:
    """Every option of stage ``j`` that the space rules and the channel guideline allow
    (evaluated in bulk by :func:`deepmad.arrays.stage_arrays`)."""
    out = []
    for c in problem.space.channel_grid():
        arr = stage_arrays(problem, j, c)
        if arr is not None:
            out += [
                option_at(arr, ai, bi, ki, d)
                for bi in range(len(arr.inner))
                for ki in range(len(arr.kernels))
                for ai in range(len(arr.inputs))
                for d in arr.depths.tolist()
            ]
    return out


def pareto(options: list[Option]) -> list[Option]:
    """The options no other option of the same stage, input, output width and depth dominates.

    ``a`` dominates ``b`` when it costs no more FLOPs, no more parameters and
    no more latency, and has at least the entropy (same layers, same width chain, same depth:
    everything else in the program is equal). Dropping dominated options
    keeps an optimal design, so the program stays exact. Ties keep the first
    option in table order, so the result is deterministic.
    """
    groups: dict[tuple[int, int, int, int], list[Option]] = {}
    for opt in options:
        groups.setdefault((opt.stage, opt.c_in, opt.channels, opt.depth), []).append(opt)
    kept: set[int] = set()
    for group in groups.values():
        front: list[Option] = []
        for opt in sorted(group, key=lambda o: (-o.entropy, o.flops, o.params, o.latency)):
            if not any(f.flops <= opt.flops and f.params <= opt.params and f.latency <= opt.latency for f in front):
                front.append(opt)
        kept.update(id(o) for o in front)
    return [o for o in options if id(o) in kept]


def assemble(problem: Problem, stem: Option, stages: list[Option]) -> Architecture:
    """The architecture that a choice of one stem and one option per stage describes."""
    space = problem.space
    return Architecture(
        stem=Stem(stem.channels, stride=space.stem_stride),
        stages=tuple(Stage(space.block, o.channels, o.inner, o.kernel, o.depth, s) for o, s in zip(stages, space.strides)),
        head=Head(space.head) if space.head else None,
        resolution=space.resolution,
        name=problem.name,
    )
