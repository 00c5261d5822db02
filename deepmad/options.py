"""The discrete options of a problem, each with its exact cost and entropy.

An option of stage ``j`` fixes its input width ``c_in`` (the previous stage's
or the stem's output), its output ``channels``, ``inner`` width, ``kernel``
and ``depth``. Its coefficients come from the accounting and the block
layouts (:mod:`deepmad.accounting`, :mod:`deepmad.blocks`), never from a
second formula: ``flops`` (in the problem's convention), ``params``,
``entropy`` (``1/2 * sum ln w`` over its layers) and ``layers``. The last
stage's options include the head conv, which belongs to the last prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .accounting import LayerCost, block_costs, conv_cost
from .architecture import Architecture, Head, Stage, Stem
from .blocks import BlockLayout, Conv
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


def _sum(rows: list[LayerCost], problem: Problem) -> tuple[int, int]:
    flops = sum(r.flops_tinynas if problem.flops_convention == "tinynas" else r.macs for r in rows)
    return flops, sum(r.params for r in rows)


def _entropy(layout: BlockLayout) -> float:
    return 0.5 * sum(math.log(conv.fan_in) for conv in layout.convs)


def stem_options(problem: Problem) -> list[Option]:
    space = problem.space
    side = space.resolution // space.stem_stride
    out = []
    for c in space.stem_grid():
        conv = Conv(3, c, 3, space.stem_stride)
        flops, params = _sum([conv_cost("stem", conv, side, activation=True)], problem)
        out.append(Option(-1, 3, c, 0, 3, 1, flops, params, 0.5 * math.log(conv.fan_in), 1))
    return out


def stage_options(problem: Problem, j: int) -> list[Option]:
    """Every option of stage ``j`` that the space rules and the channel guideline allow."""
    space = problem.space
    stride = space.strides[j]
    side_in = space.resolution // (space.stem_stride * math.prod(space.strides[:j]))
    side_out = side_in // stride
    inputs = space.stem_grid() if j == 0 else space.channel_grid()
    last = j == len(space.strides) - 1
    out = []
    for c in space.channel_grid():
        for b in space.inner_grid(c):
            for k in space.kernels:
                rest_stage = Stage(space.block, c, b, k, 2, 1)
                rest = rest_stage.layouts(c)[1]
                assert rest is not None
                rest_cost = _sum(block_costs("rest", rest, side_out), problem)
                rest_entropy = _entropy(rest)
                head_cost, head_entropy, head_layers = (0, 0), 0.0, 0
                if last and space.head:
                    head = Conv(c, space.head, 1)
                    head_cost = _sum([conv_cost("head", head, side_out, activation=True)], problem)
                    head_entropy, head_layers = 0.5 * math.log(head.fan_in), 1
                for a in inputs:
                    if not space.growth_ok(a, c, first=j == 0) or (j > 0 and problem.nondecreasing and c < a):
                        continue
                    first = Stage(space.block, c, b, k, 1, stride).layouts(a)[0]
                    first_cost = _sum(block_costs("first", first, side_in), problem)
                    for d in range(space.depths[j][0], space.depths[j][1] + 1):
                        out.append(
                            Option(
                                stage=j,
                                c_in=a,
                                channels=c,
                                inner=b,
                                kernel=k,
                                depth=d,
                                flops=first_cost[0] + (d - 1) * rest_cost[0] + head_cost[0],
                                params=first_cost[1] + (d - 1) * rest_cost[1] + head_cost[1],
                                entropy=_entropy(first) + (d - 1) * rest_entropy + head_entropy,
                                layers=len(first.convs) * d + head_layers,
                            )
                        )
    return out


def pareto(options: list[Option]) -> list[Option]:
    """The options no other option of the same stage, input, output width and depth dominates.

    ``a`` dominates ``b`` when it costs no more FLOPs and no more parameters
    and has at least the entropy (same layers, same width chain, same depth:
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
        for opt in sorted(group, key=lambda o: (-o.entropy, o.flops, o.params)):
            if not any(f.flops <= opt.flops and f.params <= opt.params for f in front):
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
