"""The engine (option arrays) and its kernels, against the accounting and brute force."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmad.hardware.latency import LatencyModel
from deepmad.model.accounting import block_costs
from deepmad.model.architecture import Stage
from deepmad.model.blocks import BLOCK_TYPES
from deepmad.problem.problem import Problem
from deepmad.problem.space import DesignSpace
from deepmad.solvers.engine import Engine
from deepmad.solvers.kernels import _by_slope, depth_envelope, undominated
from deepmad.solvers.pricing import StagePrices, longest_paths, options_above, price, stage_options, stem_options
from deepmad.solvers.search import first_best
from hwmodels.table import Calibration

from conftest import synthetic_table

BLOCKS = sorted(BLOCK_TYPES)


def _space(block: str, **kw) -> DesignSpace:
    base = dict(block=block, resolution=64, strides=(2, 1, 2), depths=((1, 2), (1, 3), (1, 2)),
                stem_channels=(16, 24), channels=(16, 48), kernels=(3, 5), head=64 if "inverted" in block else None)
    base.update(kw)
    return DesignSpace(**base)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(BLOCKS), st.sampled_from([1, 2]), st.integers(1, 40), st.integers(1, 40), st.integers(0, 59),
       st.sampled_from([3, 5, 7]), st.sampled_from(["tinynas", "macs"]), st.integers(1, 3))
def test_an_engine_option_costs_what_the_accounting_counts(block, stride, a8, c8, b, k, convention, depth):
    """Affine in the input width, as the engine holds them, the first block's costs are exact."""
    a, c = 8 * a8, 8 * c8
    space = DesignSpace(block=block, resolution=64, strides=(stride,), depths=((1, 3),), stem_channels=(a, a),
                        channels=(c, c), kernels=(k,), inner_ratio=(0.01, 50.0) if BLOCK_TYPES[block].has_inner else None, stem_growth=None,
                        max_growth=None)
    problem = Problem(space, flops_convention=convention, nondecreasing=False)
    engine = Engine.of(problem)
    t = engine.stages[0]
    p = int(t.starts[0]) + b % t.pairs
    o = stage_options(engine, 0, [0], [0], [p], [0], [depth])
    first, rest = Stage(block, c, int(t.inner[p]), k, depth, stride).layouts(a)
    rows = block_costs("f", first, 32) + (block_costs("r", rest, 32 // stride) * (depth - 1) if rest else [])
    pick = (lambda r: r.flops_tinynas) if convention == "tinynas" else (lambda r: r.macs)
    assert o.flops[0] == sum(map(pick, rows))
    assert o.params[0] == sum(r.params for r in rows)
    entropy = 0.5 * sum(math.log(cv.fan_in) for cv in first.convs) + (depth - 1) * 0.5 * sum(math.log(cv.fan_in) for cv in rest.convs) if rest \
        else 0.5 * sum(math.log(cv.fan_in) for cv in first.convs)
    assert o.entropy[0] == pytest.approx(entropy, rel=1e-12)


TINY = dict(stem_channels=(16, 16), channels=(16, 24), kernels=(3, 5), depths=((1, 2), (1, 1), (1, 2)))
"""A few hundred designs: brute force over every one is quick."""


def _problems(**tiny):
    space = _space("bottleneck", **tiny)
    yield Problem(space, flops=2.5e7, params=1.2e5, rho=0.3)
    yield Problem(_space("inverted_residual_se", inner_ratio=(1.5, 3.0), **tiny), flops=6e6, params=8e4, rho=0.5, nondecreasing=False)
    yield Problem(_space("basic", **tiny), flops=2.5e7, params=1.2e5, rho=0.3, max_depth_spread=1)
    latency = LatencyModel.of(synthetic_table(Problem(space), Calibration(1.0, 0.002, 0.3, 0.05, 0)))
    yield Problem(space, flops=2.5e7, params=1.2e5, rho=0.3, latency=5.0, latency_model=latency)


PROBLEMS = list(_problems(**TINY))
WIDE = list(_problems())  # more widths, inner widths and depths: more lines per kernel call


def _designs(problem: Problem):
    engine = Engine.of(problem)
    for arch in problem.space.designs():
        if problem.nondecreasing and any(x.channels > y.channels for x, y in zip(arch.stages, arch.stages[1:])):
            continue
        found = engine.locate(arch)
        if found is not None:
            yield arch, found


@pytest.mark.slow
@pytest.mark.parametrize("problem", PROBLEMS)
def test_a_designs_options_add_up_to_its_accounting_and_latency(problem):
    engine = Engine.of(problem)
    for arch, (s, stages) in itertools.islice(_designs(problem), 0, None, 3):
        parts = [stage_options(engine, j, *([x] for x in choice)) for j, choice in enumerate(stages)]
        stem = stem_options(engine)
        check = problem.check(arch)
        assert int(stem.flops[s]) + sum(int(o.flops[0]) for o in parts) == check.flops
        assert int(stem.params[s]) + sum(int(o.params[0]) for o in parts) == check.params
        if problem.latency_model is not None:
            total = float(stem.latency[s]) + sum(float(o.latency[0]) for o in parts) + problem.latency_model.calibration.fixed_ms
            assert total == pytest.approx(check.latency_ms, rel=1e-9)


def _random_prices(rng, problem, engine, G: int = 1):
    latency = -rng.uniform(0.0, 50.0) if problem.latency_model is not None else 0.0
    return [StagePrices(rng.uniform(-1.0, 6.0, G), -rng.uniform(0, 2e-6), -rng.uniform(0, 3e-4), latency, rng.uniform(-2, 2),
                        rng.uniform(-3, 3), rng.uniform(-0.3, 0.3)) for _ in engine.stages]


def _value(engine, j: int, sp: StagePrices, g: int, opts) -> np.ndarray:
    e = np.asarray(sp.entropy)[g]
    d = opts.depth.astype(float)
    return (e * opts.entropy + sp.flops * opts.flops + sp.params * opts.params + sp.latency * opts.latency + sp.layers * opts.layers
            + sp.depth * d + sp.depth2 * d * d)


@pytest.mark.parametrize("which", range(len(WIDE)))
def test_the_envelope_kernel_finds_the_best_option_of_every_edge(which):
    """At random prices and several entropy settings, every edge's value is the largest of its
    options' values (brute force over the engine's options), and its choice attains it."""
    problem = WIDE[which]
    engine = Engine.of(problem)
    rng = np.random.default_rng(which)
    prices = _random_prices(rng, problem, engine, G=3)
    for j, (t, sp) in enumerate(zip(engine.stages, prices)):
        pr = price(t, sp)
        K = len(t.kernels)
        for e in range(0, len(t.edge_inputs), 5):
            m, ai = int(t.edge_widths[e]), int(t.edge_inputs[e])
            p = np.arange(t.starts[m], t.starts[m + 1])
            grid = np.meshgrid(p, np.arange(K), t.depths, indexing="ij")
            opts = stage_options(engine, j, np.full(grid[0].size, m), np.full(grid[0].size, ai), *(x.ravel() for x in grid))
            for g in range(3):
                head = pr.head[m, g]
                values = _value(engine, j, sp, g, opts)
                assert pr.value[e, g] + head == pytest.approx(values.max(), rel=1e-9, abs=1e-6)
                pp, k, d = pr.choice(e, g)
                at = np.flatnonzero((opts.inner == t.inner[pp]) & (opts.kernel == t.kernels[k]) & (opts.depth == d))
                assert values[at[0]] == pytest.approx(values.max(), rel=1e-9, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=40), st.integers(1, 4), st.booleans())
def test_lines_are_ordered_by_slope_as_a_stable_sort_orders_them(values, K, shared):
    """Ties (many: the kernels of a pair share their slope where the input feeds a 1x1 conv) keep
    the lines' order, whether or not every pair's kernels share it."""
    w = np.repeat(np.asarray(values, dtype=float), K) if shared else np.asarray(values * K, dtype=float)
    assert np.array_equal(_by_slope(w, K), np.argsort(w, kind="mergesort"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from([0.0, 1.0, 2.0])), min_size=1, max_size=60))
def test_undominated_keeps_what_no_earlier_option_dominates(costs):
    f, q, t = (np.array(c) for c in zip(*costs))
    direct = [not any(f[j] <= f[i] and q[j] <= q[i] and t[j] <= t[i] for j in range(i)) for i in range(len(f))]
    assert undominated(f.astype(np.int64), q.astype(np.int64), t.astype(float)).tolist() == direct


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0, math.inf, math.nan]), st.sampled_from([-math.inf, -1.0, 0.0, 2.0, math.nan])),
                min_size=1, max_size=30))
def test_a_move_takes_the_first_of_the_least_violation_and_largest_objective(pairs):
    v, o = (np.array(x, dtype=float) for x in zip(*pairs))
    assert first_best(v, o) == int(np.lexsort((-o, v))[0])


def test_the_depth_envelope_is_the_maximum_over_depths():
    rng = np.random.default_rng(0)
    for _ in range(50):
        depths = np.arange(1, int(rng.integers(2, 17)))
        extra = rng.normal(0, 5, len(depths))
        if rng.random() < 0.3:
            extra[rng.random(len(depths)) < 0.5] = -np.inf
        slopes, intercepts, picks, breaks = depth_envelope(depths, extra)
        for r in rng.normal(0, 10, 20):
            direct = ((depths - 1) * r + extra).max()
            at = np.searchsorted(breaks, r, side="right")
            assert slopes[at] * r + intercepts[at] == pytest.approx(direct) or direct == -np.inf


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1, 3])
def test_longest_paths_are_the_best_priced_design_and_fixing_keeps_exactly_the_designs_above_a_floor(which):
    """At random prices: the path bound is the largest priced value of any design (brute force),
    its path is such a design, and the options above each edge's threshold are exactly those of the
    designs worth at least a floor."""
    problem = PROBLEMS[which]
    engine = Engine.of(problem)
    rng = np.random.default_rng(10 + which)
    prices = _random_prices(rng, problem, engine)
    st_ = stem_options(engine)
    stem_value = _value(engine, -1, StagePrices(np.asarray(prices[0].entropy), prices[0].flops, prices[0].params, prices[0].latency,
                                                prices[0].layers), 0, st_) - prices[0].depth - prices[0].depth2
    paths = longest_paths(engine, 0.0, stem_value, [price(t, sp) for t, sp in zip(engine.stages, prices)])
    value = {}
    for arch, (s, stages) in _designs(problem):
        parts = [stage_options(engine, j, *([x] for x in choice)) for j, choice in enumerate(stages)]
        value[(s, tuple(stages))] = stem_value[s] + sum(float(_value(engine, j, sp, 0, o)[0]) for j, (sp, o) in enumerate(zip(prices, parts)))
    assert paths.bound == pytest.approx(max(value.values()), rel=1e-9)
    s, stages = paths.best_path()
    assert value[(s, tuple(stages))] == pytest.approx(paths.bound, rel=1e-9)
    floor = sorted(value.values())[len(value) * 9 // 10]
    slack = 1e-7 * abs(paths.bound)
    for j, (t, sp) in enumerate(zip(engine.stages, prices)):
        pr = paths.priced[j]
        rest = paths.through(j) - (pr.value[:, 0] + pr.head[pr.edge_widths(), 0])
        rows, count = options_above(t, sp, floor - slack - rest, 10**7)
        K = len(t.kernels)
        kept = {(int(m), int(ai), int(q) // K, int(q) % K, int(t.depths[di])) for m, ai, q, di in rows}
        assert count == len(kept)
        above = {choice[j] for (_, choice), v in value.items() if v >= floor}
        near = {choice[j] for (_, choice), v in value.items() if v >= floor - 2 * slack}
        assert above <= kept <= near


def test_the_engine_refuses_a_block_whose_first_costs_are_not_affine_in_the_input(monkeypatch):
    from deepmad.model import blocks
    from deepmad.model.blocks import BlockLayout, Conv
    from deepmad.errors import DeepmadError

    def squared(c_in, c_out, inner, kernel, stride, first):  # a made-up block: its first conv keeps the input width
        return BlockLayout((Conv(c_in, c_in, 1), Conv(c_in, c_out, kernel, stride)), "none", "relu")

    monkeypatch.setitem(blocks.BLOCK_TYPES, "squared", dataclasses.replace(blocks.BLOCK_TYPES["basic"], name="squared", layout=squared))
    with pytest.raises(DeepmadError, match="not affine"):
        Engine.of(Problem(_space("squared", inner_ratio=(0.5, 1.0))))
