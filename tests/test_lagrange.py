"""The Lagrangian bound with exact entropy products (deepmad.lagrange), against brute force."""

from __future__ import annotations

import functools
import math

import numpy as np

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmad import colgen, lagrange
from deepmad.entropy import score
from deepmad.program import FLOPS_UNIT, _pstdev, _reachable_sums, rho_cut, rho_slope
from deepmad.solve import _fixed_widths_design, _widths, _widths_climb

from test_colgen import _space, _with_latency

from deepmad.problem import Problem

_TINY = dict(stem_channels=(16, 16), channels=(16, 32), kernels=(3,), depths=((1, 2), (1, 2), (1, 2)))
PROBLEMS = [  # a few thousand designs each, for brute force
    Problem(_space("bottleneck", **_TINY), flops=1.2e7, params=4e4, rho=0.3),
    Problem(_space("inverted_residual_se", inner_ratio=(2.0, 3.0), **{**_TINY, "depths": ((1, 2), (1, 1), (1, 2))}),
            flops=5.3e6, params=2.9e4, rho=0.5, nondecreasing=False),
    _with_latency(Problem(_space("basic", **_TINY), flops=1.2e7, params=4e4, rho=0.3, max_layers=12), 0.85),
]


def _designs(problem):
    for arch in problem.space.designs():
        if problem.nondecreasing and any(a.channels > b.channels for a, b in zip(arch.stages, arch.stages[1:])):
            continue
        yield arch


@functools.cache
def _table(which: int) -> dict:
    """Per design of ``PROBLEMS[which]``, what its Lagrangian value depends on, from the accounting and
    the scoring: weighted entropy, costs, ``S_i`` and ``D_i`` per prefix, depth moments."""
    problem = PROBLEMS[which]
    space = colgen.Space(problem)
    rows = []
    for arch in _designs(problem):
        s = score(arch, problem.scoring)
        options = [next(o for o in space.stem if o.channels == arch.stem.channels), *colgen.options_of(problem, arch)]
        depths = [arch.stages[j].depth for j in space.covered]
        rows.append((arch, s.entropy, sum(o.flops for o in options) / FLOPS_UNIT, sum(o.params for o in options),
                     sum(o.latency for o in options), s.layers, [p.log_width_sum for p in s.prefixes],
                     [p.layers for p in s.prefixes], sum(depths), sum(d * d for d in depths)))
    arch, entropy, flops, params, latency, layers, S, D, u, v = zip(*rows)
    used = {("flops",): flops, ("params",): params, ("latency",): latency, ("layers",): layers}
    return dict(arch=arch, entropy=np.array(entropy), used={k: np.array(x, dtype=float) for k, x in used.items()},
                S=np.array(S), D=np.array(D, dtype=float), u=np.array(u, dtype=float), v=np.array(v, dtype=float),
                feasible=np.array([problem.check(a).feasible for a in arch]), objective=np.array([problem.check(a).objective for a in arch]))


def _lagrangian(which: int, y: lagrange.Multipliers) -> np.ndarray:
    """Every design's value in the relaxation at ``y``: weighted entropy, plus each multiplier times
    its row's slack, the depth moments at their best."""
    problem, t = PROBLEMS[which], _table(which)
    space = colgen.Space(problem)
    value = t["entropy"].copy()
    for key, limit in colgen.budget_limits(problem).items():
        value += y.budgets.get(key, 0.0) * (limit - t["used"][key])
    for (i, n), mu in y.rho.items():
        slope = rho_slope(n, problem.rho)
        value += mu * (slope * n - rho_cut(n, problem.rho) + 2 * t["S"][:, i] - slope * t["D"][:, i])
    if space.covered:
        value -= y.depth_sum * t["u"] + y.depth_squares * t["v"]
        value += max(-problem.scoring.beta * math.exp(_pstdev(u, v, len(space.covered))) + y.depth_sum * u + y.depth_squares * v
                     for u, v in _reachable_sums([problem.space.depths[j] for j in space.covered]))
    else:
        value -= problem.scoring.beta
    return value


def _multipliers(problem, draw) -> lagrange.Multipliers:
    limits = colgen.budget_limits(problem)
    budgets = {key: draw[q] * 30.0 / limit for q, (key, limit) in enumerate(limits.items())}
    space = colgen.Space(problem)
    rho = {(i, n): draw[4 + i] * 5.0 for i, n in enumerate((3, 7, 11, 15)[: len(space.levels)])}
    return lagrange.Multipliers(budgets, rho, 2.0 * draw[8] - 1.0, 0.2 * draw[9] - 0.1)


@settings(max_examples=8, deadline=None)
@given(st.sampled_from(range(len(PROBLEMS))), st.lists(st.floats(0.0, 1.0), min_size=10, max_size=10))
def test_the_bound_is_never_below_any_designs_lagrangian_value_and_is_attained_on_a_fine_grid(which, draw):
    """At any multipliers, the dynamic program's bound is at least every design's Lagrangian value
    (brute force, from the accounting and the scoring), however coarse its grid; on a fine grid it
    is within a hair of the largest, and its design attains that."""
    problem = PROBLEMS[which]
    space = colgen.Space(problem)
    y = _multipliers(problem, draw)
    values = _lagrangian(which, y)
    top = values.max()
    for points in (2, 8):
        assert lagrange.relax(space, y, points=points).bound >= top - 1e-9 * abs(top)
    fine = lagrange.relax(space, y, points=400)
    assert fine.bound == pytest.approx(top, rel=2e-4)
    assert values[_table(which)["arch"].index(fine.design(problem))] == pytest.approx(top, rel=2e-4)


@pytest.mark.parametrize("which", range(len(PROBLEMS)))
def test_the_dual_bounds_the_optimum_and_improves_on_its_start(which):
    problem, t = PROBLEMS[which], _table(which)
    space = colgen.Space(problem)
    best = t["objective"][t["feasible"]].max()
    start = lagrange.Multipliers()
    at_start = lagrange.relax(space, start).bound
    result = lagrange.dual(space, start, deadline=math.inf, max_passes=25)
    assert best - 1e-9 * abs(best) <= result.bound <= at_start
    assert result.bound < at_start  # without multipliers the budgets are ignored: far above
    assert result.designs and all(result.bound <= r.bound + 1e-9 for r in result.designs)


@pytest.mark.parametrize("which", range(len(PROBLEMS)))
def test_at_the_optimums_widths_the_fixed_widths_milp_finds_the_optimum(which):
    problem, t = PROBLEMS[which], _table(which)
    feasible = [a for a, ok in zip(t["arch"], t["feasible"]) if ok]
    optimum = max(feasible, key=lambda a: problem.check(a).objective)
    worst = min(feasible, key=lambda a: problem.check(a).objective)
    arch, check = _fixed_widths_design(problem, [(1, 2, 3, 4), _widths(optimum)], worst, 60.0, 1e-9)
    assert check.objective == pytest.approx(problem.check(optimum).objective, rel=1e-9)
    assert _widths(arch) == _widths(optimum) and check.feasible


def test_the_dual_gives_up_when_it_cannot_beat_another_bound(monkeypatch):
    monkeypatch.setattr(lagrange, "PATIENCE", 2)
    space = colgen.Space(PROBLEMS[0])
    assert lagrange.dual(space, lagrange.Multipliers(), deadline=math.inf, tolerance=0.0, beat=-math.inf).passes == 2
    assert lagrange.dual(space, lagrange.Multipliers(), deadline=math.inf, max_passes=5, tolerance=0.0).passes == 5


@pytest.mark.parametrize("which", [0, 1])
def test_the_widths_climb_ends_at_widths_no_neighbour_of_which_does_better(which):
    """From the worst feasible design: the climb's design is the best at its widths, and no widths
    one grid step away (stem or one stage) hold a better feasible design (brute force)."""
    problem, t = PROBLEMS[which], _table(which)
    best_at: dict[tuple, float] = {}
    for arch, ok, objective in zip(t["arch"], t["feasible"], t["objective"]):
        if ok:
            best_at[_widths(arch)] = max(best_at.get(_widths(arch), -math.inf), objective)
    worst = min((a for a, ok in zip(t["arch"], t["feasible"]) if ok), key=lambda a: problem.check(a).objective)
    arch, check = _widths_climb(problem, worst, 600.0, 1e-9)
    widths = _widths(arch)
    assert check.feasible and check.objective == pytest.approx(best_at[widths], rel=1e-9)
    assert check.objective > problem.check(worst).objective
    grids = [problem.space.stem_grid()] + [problem.space.channel_grid()] * len(arch.stages)
    for p, grid in enumerate(grids):
        for step in (1, -1):
            at = grid.index(widths[p]) + step
            if 0 <= at < len(grid):
                near = widths[:p] + (grid[at],) + widths[p + 1:]
                assert best_at.get(near, -math.inf) <= check.objective + 1e-9 * abs(check.objective)
