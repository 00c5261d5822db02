"""What to measure for a design problem, and random designs to check predictions against.

:func:`profile_units` lists the units (:mod:`hwmodels.units`) a cost table
needs so that every design of a problem's space is predicted by
interpolation rather than extrapolation: the block layouts of the space are
traced over a ladder of widths (multiples of the channel step at ratios of
about 1.5 and 4/3: 8, 16, 24, 32, 48, 64, 96, ...) that includes both ends
of each range, at the resolutions and strides of the space, and the units of
those blocks are collected once each, with the square companions (``c -> c``)
of every dense conv so that the points' hull reaches the diagonal; the kxk convs that map the inner
width to itself (the bottleneck's middle conv, the depthwise conv), which
carry most of the time, are measured at every second inner step up to
:data:`DENSE_UP_TO`, and so are those that map the channel width to itself
(a plain block's conv, a large-kernel block's depthwise conv). Units whose multiply-accumulates alone
exceed the problem's FLOPs budget cannot be part of a design that meets it
and are left out.

:func:`random_designs` draws designs of a space that meet the problem's
FLOPs and parameter budgets (rejection sampling, widths log-uniform), for
calibration and validation of a latency model.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hwmodels.units import Unit

from ..errors import InputError
from ..model.accounting import costs
from ..model.architecture import Architecture
from ..model.blocks import BLOCK_TYPES
from ..problem.problem import Problem
from .latency import block_units, head_units, stem_unit


DENSE_UP_TO = 512
"""Inner widths up to this are measured at every second step for kxk convs on the inner width alone."""


def ladder(lo: int, hi: int, step: int) -> list[int]:
    """Widths from ``lo`` to ``hi`` (both kept): ``step`` times 1, 2, 3, 4, 6, 8, 12, 16, ... in between."""
    multiples = {2**e for e in range(24)} | {3 * 2**e for e in range(23)}
    return sorted({lo, hi} | {step * m for m in multiples if lo < step * m < hi})


def _macs(u: Unit) -> float:
    side_out = -(-int(u.size) // u.stride)
    per = int(u.c_in) * int(u.c_out) * u.kernel**2 * side_out**2
    return per / int(u.c_in) if u.op == "dwconv" else per


def profile_units(problem: Problem) -> list[Unit]:
    """Every unit a table needs for ``problem`` (see the module docstring), in a fixed order."""
    space = problem.space
    block = BLOCK_TYPES[space.block]
    grid = space.channel_grid()
    widths = ladder(grid[0], grid[-1], space.channel_step)
    stems = ladder(space.stem_grid()[0], space.stem_grid()[-1], space.channel_step)
    units: dict[Unit, None] = {stem_unit(space.in_channels, c, space.stem_kernel, space.stem_stride, space.resolution): None for c in stems}
    side = space.resolution // space.stem_stride
    for j, stride in enumerate(space.strides):
        inputs = stems if j == 0 else widths
        for c in widths:
            inner = space.inner_grid(c)
            inners = ladder(inner[0], inner[-1], space.inner_step)
            for a in inputs:
                if not space.growth_ok(a, c, first=j == 0) or (j > 0 and problem.nondecreasing and c < a):
                    continue
                for b in inners:
                    for k in space.kernels:
                        for u in block_units(block.layout(a, c, b, k, stride, True), side):
                            units.setdefault(u)
            for b in inners:
                for k in space.kernels:
                    for u in block_units(block.layout(c, c, b, k, 1, False), side // stride):
                        units.setdefault(u)
            # The kxk convs on the inner width alone (b -> b, depthwise or dense) carry most of the
            # time and depend on one width only: measure them on a dense ladder.
            dense = [b for b in range(2 * space.inner_step, min(inner[-1], DENSE_UP_TO) + 1, 2 * space.inner_step) if b >= inner[0]]
            for b in dense:
                for k in space.kernels:
                    for layout, at in ((block.layout(c, c, b, k, stride, True), side), (block.layout(c, c, b, k, 1, False), side // stride)):
                        for u in block_units(layout, at):
                            if u.kernel > 1 and u.c_in == u.c_out == b:
                                units.setdefault(u)
            if j == len(space.strides) - 1:
                for u in head_units(c, space.head, side // stride, Architecture.num_classes):
                    units.setdefault(u)
        # Likewise the kxk convs on the channel width alone (c -> c: a plain block's conv, a depthwise
        # conv on a block's input), on a dense ladder of channel widths.
        for c in (c for c in grid if c <= DENSE_UP_TO and c % (2 * space.channel_step) == 0):
            b = space.inner_grid(c)[0]
            for k in space.kernels:
                for layout, at in ((block.layout(c, c, b, k, stride, True), side), (block.layout(c, c, b, k, 1, False), side // stride)):
                    for u in block_units(layout, at):
                        if u.op in ("conv", "dwconv") and u.kernel > 1 and u.c_in == u.c_out == c != b:
                            units.setdefault(u)
        side //= stride
    # Square companions of every dense conv between grid widths, so that the measured points'
    # hull (in log space) reaches the diagonal c_in == c_out that some layouts never use.
    for u in list(units):
        if u.op == "conv" and u.c_in != u.c_out and min(u.c_in, u.c_out) >= grid[0]:
            units.setdefault(dataclasses.replace(u, c_in=u.c_out))
            units.setdefault(dataclasses.replace(u, c_out=u.c_in))
    limit = problem.flops if problem.flops is not None else math.inf
    return [u for u in units if _macs(u) <= limit]


def random_designs(problem: Problem, n: int, *, seed: int = 0, max_tries: int = 200_000) -> list[Architecture]:
    """``n`` distinct random designs of ``problem``'s space that meet its FLOPs and parameter budgets."""
    space = problem.space
    rng = np.random.default_rng(seed)
    grid = np.array(space.channel_grid())
    stems = np.array(space.stem_grid())
    out: dict[Architecture, None] = {}
    for _ in range(max_tries):
        if len(out) == n:
            break
        stem = int(rng.choice(stems))
        stages, c_prev = [], stem
        for j, stride in enumerate(space.strides):
            allowed = [c for c in grid if space.growth_ok(c_prev, c, first=j == 0) and not (j > 0 and problem.nondecreasing and c < c_prev)]
            if not allowed:
                break
            logs = np.log(allowed)
            c = int(allowed[int(np.abs(logs - rng.uniform(logs[0], logs[-1])).argmin())])
            inner = space.inner_grid(c)
            lo, hi = space.depths[j]
            stages.append((c, int(rng.choice(inner)), int(rng.choice(space.kernels)), int(rng.integers(lo, hi + 1))))
            c_prev = c
        if len(stages) != len(space.strides):
            continue
        arch = space.design(stem, stages)
        c = costs(arch)
        flops = c.flops_tinynas if problem.flops_convention == "tinynas" else c.macs
        if (problem.flops is None or flops <= problem.flops) and (problem.params is None or c.params <= problem.params):
            out.setdefault(arch)
    if len(out) < n:
        raise InputError("--designs", f"found only {len(out)} random designs within the budgets in {max_tries:,} tries; ask for fewer")
    return [dataclasses.replace(arch, name=f"random-{seed}-{i}") for i, arch in enumerate(out)]
