"""Dominance pruning of stage options keeps exactly the non-dominated ones."""

from __future__ import annotations

from deepmad.options import pareto, stage_options
from deepmad.problem import Problem
from deepmad.space import DesignSpace


def _dominated(o, others) -> bool:
    return any(
        p is not o and (p.stage, p.c_in, p.channels, p.depth) == (o.stage, o.c_in, o.channels, o.depth)
        and p.flops <= o.flops and p.params <= o.params and p.entropy >= o.entropy
        and (p.flops, p.params, p.entropy) != (o.flops, o.params, o.entropy)
        for p in others
    )


def test_pareto_drops_exactly_the_strictly_dominated_options():
    space = DesignSpace(block="bottleneck", resolution=64, strides=(2, 2), depths=((1, 2), (1, 2)),
                        stem_channels=(16, 16), channels=(16, 48), kernels=(3, 5, 7))
    options = stage_options(Problem(space), 1)
    kept = pareto(options)
    assert len(kept) < len(options)
    for o in options:
        if _dominated(o, options):
            assert o not in kept
    for o in kept:
        assert not _dominated(o, options)
    # every dropped option is weakly dominated by a kept one of its group
    for o in options:
        if o not in kept:
            assert any((k.stage, k.c_in, k.channels, k.depth) == (o.stage, o.c_in, o.channels, o.depth)
                       and k.flops <= o.flops and k.params <= o.params and k.entropy >= o.entropy for k in kept)
