"""The Lagrangian bound with exact entropy products, and the exact solves at fixed widths, against brute force."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmad.model.entropy import score
from deepmad.problem.problem import Problem
from deepmad.solvers import colgen, dual
from deepmad.solvers.context import Context
from deepmad.solvers.engine import Engine
from deepmad.solvers.fixed import FixedWidths, Widths
from deepmad.solvers.rows import FLOPS_UNIT, Program, budget_limits, rho_cut, rho_slope

from test_colgen import _with_latency
from test_engine import _space

_TINY = dict(stem_channels=(16, 16), channels=(16, 32), kernels=(3,), depths=((1, 2), (1, 2), (1, 2)))
PROBLEMS = [  # a few thousand designs each, for brute force
    Problem(_space("bottleneck", **_TINY), flops=1.2e7, params=4e4, rho=0.3),
    Problem(_space("inverted_residual_se", inner_ratio=(2.0, 3.0), **{**_TINY, "depths": ((1, 2), (1, 1), (1, 2))}),
            flops=5.3e6, params=2.9e4, rho=0.5, nondecreasing=False),
    _with_latency(Problem(_space("basic", **_TINY), flops=1.2e7, params=4e4, rho=0.3, max_layers=12), 0.85),
]


def _parts(problem: Problem):
    engine = Engine.of(problem)
    context = Context(problem)
    return engine, context, Program(problem, context, colgen.layer_ranges(engine, context))


def _widths(arch) -> tuple[int, ...]:
    return (arch.stem.channels, *(s.channels for s in arch.stages))


@functools.cache
def _table(which: int) -> dict:
    """Per design of ``PROBLEMS[which]``, what its Lagrangian value depends on, from the accounting and
    the scoring: weighted entropy, costs, ``S_i`` and ``D_i`` per prefix, depth moments."""
    problem = PROBLEMS[which]
    context = Context(problem)
    rows = []
    for arch in problem.space.designs():
        if problem.nondecreasing and any(a.channels > b.channels for a, b in zip(arch.stages, arch.stages[1:])):
            continue
        s = score(arch, problem.scoring)
        check = problem.check(arch)
        depths = [arch.stages[j].depth for j in context.covered]
        latency = (check.latency_ms - problem.latency_model.calibration.fixed_ms) if problem.latency_model else 0.0
        rows.append((arch, s.entropy, check.flops / FLOPS_UNIT, check.params, latency, s.layers, [p.log_width_sum for p in s.prefixes],
                     [p.layers for p in s.prefixes], sum(depths), sum(d * d for d in depths), check.feasible, check.objective))
    arch, entropy, flops, params, latency, layers, S, D, u, v, feasible, objective = zip(*rows)
    used = {("flops",): flops, ("params",): params, ("latency",): latency, ("layers",): layers}
    return dict(arch=arch, entropy=np.array(entropy), used={k: np.array(x, dtype=float) for k, x in used.items()},
                S=np.array(S), D=np.array(D, dtype=float), u=np.array(u, dtype=float), v=np.array(v, dtype=float),
                feasible=np.array(feasible), objective=np.array(objective))


def _lagrangian(which: int, y: dict) -> np.ndarray:
    """Every design's value in the relaxation at ``y``: weighted entropy, plus each multiplier times
    its row's slack, the depth moments at their best."""
    problem, t = PROBLEMS[which], _table(which)
    _, context, program = _parts(problem)
    value = t["entropy"].copy()
    for key, limit in budget_limits(problem).items():
        value += y.get(key, 0.0) * (limit - t["used"][key])
    for key, mu in y.items():
        if key[0] == "rho":
            _, i, n = key
            slope = rho_slope(n, problem.rho)
            value += mu * (slope * n - rho_cut(n, problem.rho) + 2 * t["S"][:, i] - slope * t["D"][:, i])
    if context.covered:
        value += y.get(("depth_sum",), 0.0) * t["u"] + y.get(("depth_squares",), 0.0) * t["v"]
        value += max(-pen - y.get(("depth_sum",), 0.0) * u - y.get(("depth_squares",), 0.0) * v for u, v, pen in program.moments)
    else:
        value -= problem.scoring.beta
    return value


def _multipliers(problem, draw) -> dict:
    y = {key: draw[q] * 30.0 / limit for q, (key, limit) in enumerate(budget_limits(problem).items())}
    levels = len(Context(problem).last)
    y.update({("rho", i, n): draw[4 + i] * 5.0 for i, n in enumerate((3, 7, 11, 15)[:levels])})
    y[("depth_sum",)], y[("depth_squares",)] = 2.0 * draw[8] - 1.0, 0.2 * draw[9] - 0.1
    return y


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(st.sampled_from(range(len(PROBLEMS))), st.lists(st.floats(0.0, 1.0), min_size=10, max_size=10))
def test_the_bound_is_never_below_any_designs_lagrangian_value_and_is_attained_on_a_fine_grid(which, draw):
    """At any multipliers, the dynamic program's bound is at least every design's Lagrangian value
    (brute force, from the accounting and the scoring), however coarse its grid; on a fine grid it
    is within a hair of the largest, and its design attains that."""
    problem = PROBLEMS[which]
    engine, _, program = _parts(problem)
    y = _multipliers(problem, draw)
    rows = program.rows() + [program.tangent(k[1], k[2]) for k in y if k[0] == "rho"]
    values = _lagrangian(which, y)
    top = values.max()
    for points in (2, 8):
        assert dual.relax(engine, program, rows, y, points=points).bound >= top - 1e-9 * abs(top)
    fine = dual.relax(engine, program, rows, y, points=400)
    assert fine.bound == pytest.approx(top, rel=2e-4)
    assert values[_table(which)["arch"].index(fine.design(engine, problem))] == pytest.approx(top, rel=2e-4)


def test_a_sign_error_in_the_moments_is_caught():
    """The brute-force check above would fail if the moments entered with the wrong sign (a bug an
    earlier prototype had): at these multipliers, the flipped moments give a bound below the best
    Lagrangian value."""
    problem = PROBLEMS[0]
    engine, _, program = _parts(problem)
    y = {("depth_sum",): 3.0, ("depth_squares",): -0.5}
    flipped = {k: -v for k, v in y.items()}
    top = _lagrangian(0, y).max()
    assert dual.relax(engine, program, program.rows(), y, points=8).bound >= top - 1e-9
    assert dual.relax(engine, program, program.rows(), flipped, points=8).bound < top - 1e-6


@pytest.mark.parametrize("which", range(len(PROBLEMS)))
def test_the_dual_bounds_the_optimum_and_improves_on_its_start(which):
    problem, t = PROBLEMS[which], _table(which)
    engine, _, program = _parts(problem)
    best = t["objective"][t["feasible"]].max()
    at_start = dual.relax(engine, program, program.rows(), {}, points=8).bound
    result = dual.dual(engine, program, {}, passes=25, points=8, patience=25, tolerance=5e-4)
    assert best - 1e-9 * abs(best) <= result.bound <= at_start
    assert result.bound < at_start  # without multipliers the budgets are ignored: far above
    assert result.designs and all(result.bound <= r.bound + 1e-9 for r in result.designs)


def test_the_dual_gives_up_when_it_cannot_beat_another_bound():
    engine, _, program = _parts(PROBLEMS[0])
    assert dual.dual(engine, program, {}, passes=60, points=8, patience=2, tolerance=0.0, beat=-math.inf).passes == 2
    assert dual.dual(engine, program, {}, passes=5, points=8, patience=60, tolerance=0.0).passes == 5


@pytest.mark.parametrize("which", range(len(PROBLEMS)))
def test_at_any_widths_the_fixed_solve_finds_and_proves_the_best_design_there(which):
    """At the optimum's widths and at a few others: the best design with those widths (brute force),
    proven; the chain's bound at any multipliers is at least it."""
    problem, t = PROBLEMS[which], _table(which)
    engine, context, program = _parts(problem)
    best_at: dict[tuple, float] = {}
    for arch, ok, objective in zip(t["arch"], t["feasible"], t["objective"]):
        if ok:
            best_at[_widths(arch)] = max(best_at.get(_widths(arch), -math.inf), objective)
    fw = FixedWidths(engine, context, program, max_vectors=10**6)
    optimum = max(best_at, key=best_at.get)
    for chain in [optimum] + sorted(best_at)[:: max(1, len(best_at) // 5)]:
        w = Widths.of(engine, chain)
        found = fw.solve(w, floor=-math.inf, solves=500)
        assert found.proven and found.check.objective == pytest.approx(best_at[chain], rel=1e-9)
        assert _widths(found.design) == chain
        assert fw.bound(w, {("flops",): 3.0, ("params",): 1e-4}) >= best_at[chain] - 1e-6 * abs(best_at[chain])


@pytest.mark.parametrize("which", range(len(PROBLEMS)))
def test_a_probe_bounds_every_design_of_its_chain_and_is_at_most_the_bound_it_starts_from(which):
    """At every width chain (brute force): a probe's bound is at least the chain's best design, no
    more than :meth:`FixedWidths.bound` at the multipliers it starts from, and tighter with more
    LPs, most chains tighter than the bound it starts from."""
    problem, t = PROBLEMS[which], _table(which)
    engine, context, program = _parts(problem)
    best_at: dict[tuple, float] = {}
    for arch, ok, objective in zip(t["arch"], t["feasible"], t["objective"]):
        best_at.setdefault(_widths(arch), -math.inf)
        if ok:
            best_at[_widths(arch)] = max(best_at[_widths(arch)], objective)
    fw = FixedWidths(engine, context, program, max_vectors=10**6)
    y = {("flops",): 3.0, ("params",): 1e-4}
    tightened = 0
    for chain, best in best_at.items():
        w = Widths.of(engine, chain)
        start = fw.bound(w, y)
        one, _ = fw.probe(w, y, lps=1)
        four, multipliers = fw.probe(w, y, lps=4)
        assert best - 1e-6 * abs(best) <= four <= one + 1e-6 * abs(one) and one <= start + 1e-6 * abs(start)
        assert all(v >= 0 for v in multipliers.values())
        tightened += four < start - 1e-6 * abs(start)
    assert tightened > len(best_at) // 2


def _knapsacks(which: int):
    """The fixed-width solver of problem ``which``, and the best objective per (width chain, depths)
    of its feasible designs (brute force)."""
    problem, t = PROBLEMS[which], _table(which)
    engine, context, program = _parts(problem)
    best: dict[tuple, float] = {}
    for arch, ok, objective in zip(t["arch"], t["feasible"], t["objective"]):
        if ok:
            key = (_widths(arch), tuple(s.depth for s in arch.stages))
            best[key] = max(best.get(key, -math.inf), objective)
    return engine, FixedWidths(engine, context, program, max_vectors=10**6), best


@pytest.mark.parametrize("which", range(len(PROBLEMS)))
def test_at_fixed_widths_and_depths_one_knapsack_gives_the_best_design_there(which):
    engine, fw, best = _knapsacks(which)
    for (chain, depths), objective in list(best.items())[::7]:
        found = fw.at_depths(Widths.of(engine, chain), list(depths), floor=-math.inf)
        assert found is not None and found[1].objective == pytest.approx(objective, rel=1e-9)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(range(len(PROBLEMS))), st.lists(st.floats(0.0, 1.0), min_size=10, max_size=10))
def test_at_fixed_widths_every_depth_vectors_bound_is_at_least_its_best_design(which, draw):
    """The bounds the exact solve at fixed widths ranks its depth vectors by: at any multipliers of
    the budgets and of every prefix's effectiveness tangent, each vector's is at least the best
    design with those widths and depths (brute force). A vector bounded too low would be passed
    over, and a chain's optimum missed."""
    engine, fw, best = _knapsacks(which)
    y = _multipliers(PROBLEMS[which], draw)
    assert sum(k[0] == "rho" for k in y) == len(fw.context.last)
    for chain in sorted({chain for chain, _ in best}):
        w = Widths.of(engine, chain)
        depth_sets, _, shape, tables, D, fixed = fw._setup(w, None)
        bounds = fw._bound(tables, fw.weights(w), y, D, fixed, shape)
        for at in np.ndindex(*shape):
            objective = best.get((chain, tuple(int(depth_sets[j][i]) for j, i in enumerate(at))))
            if objective is not None:
                assert bounds[at] >= objective - 1e-9 * abs(objective)


@pytest.mark.parametrize("which", range(len(PROBLEMS)))
def test_a_knapsack_keeps_the_best_design_above_its_floor_and_none_below(which):
    """With a floor just below the best design at fixed widths and depths (brute force), the
    knapsack (its options fixed by their reduced costs against the floor, then its MILP) still
    finds that design; with the floor at it, none."""
    engine, fw, best = _knapsacks(which)
    for (chain, depths), objective in list(best.items())[::5]:
        w = Widths.of(engine, chain)
        found = fw.at_depths(w, list(depths), floor=objective - 1e-4 * abs(objective))
        assert found is not None and found[1].objective == pytest.approx(objective, rel=1e-9)
        assert fw.at_depths(w, list(depths), floor=objective + 1e-9 * abs(objective)) is None


def _box(engine, draw) -> dual.Allowed:
    """A box of widths drawn from ``draw`` (shares in [0, 1]): per place, an interval of its widths."""
    box = dual.Allowed.whole(engine)
    boxes = []
    for place, n in zip(range(-1, len(box.sizes) - 1), box.sizes):
        lo = min(int(draw[2 * place + 2] * n), n - 1)
        hi = min(lo + int(draw[2 * place + 3] * (n - lo)), n - 1)
        boxes.append((place, lo, hi))
    return dual.Allowed(tuple(boxes), box.sizes)


def _inside(engine, box: dual.Allowed, chain: tuple[int, ...]) -> bool:
    tables = [engine.stem.widths] + [t.widths for t in engine.stages]
    return all(lo <= int(np.searchsorted(w, c)) <= hi for w, c, (lo, hi) in
               zip(tables, chain, (box.interval(q) for q in range(-1, len(tables) - 1))))


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(st.sampled_from(range(len(PROBLEMS))), st.lists(st.floats(0.0, 1.0), min_size=10, max_size=10),
       st.lists(st.floats(0.0, 1.0), min_size=10, max_size=10))
def test_a_box_of_widths_bounds_every_design_it_allows_and_its_design_lies_in_it(which, draw, shares):
    """The branch and bound's node bound: over the designs whose widths a box allows, at least their
    best Lagrangian value on any grid (brute force), attained on a fine grid by a design in the box."""
    problem, t = PROBLEMS[which], _table(which)
    engine, _, program = _parts(problem)
    box = _box(engine, shares)
    y = _multipliers(problem, draw)
    rows = program.rows() + [program.tangent(k[1], k[2]) for k in y if k[0] == "rho"]
    inside = np.array([_inside(engine, box, _widths(arch)) for arch in t["arch"]])
    if not inside.any():  # the box allows no design of the space (widths that never chain)
        assert dual.relax(engine, program, rows, y, points=8, allowed=box).bound < -1e20
        return
    top = _lagrangian(which, y)[inside].max()
    assert dual.relax(engine, program, rows, y, points=2, allowed=box).bound >= top - 1e-9 * abs(top)
    fine = dual.relax(engine, program, rows, y, points=400, allowed=box)
    assert fine.bound == pytest.approx(top, rel=2e-4)
    assert _inside(engine, box, fine.widths(engine))


@pytest.mark.parametrize("which", range(len(PROBLEMS)))
def test_the_halves_of_a_box_bound_their_designs_and_never_exceed_the_whole(which):
    problem, t = PROBLEMS[which], _table(which)
    engine, _, program = _parts(problem)
    whole = dual.dual(engine, program, {}, passes=25, points=8, patience=25, tolerance=5e-4)
    box = dual.Allowed.whole(engine)
    place = len(engine.stages) - 1
    for half in box.split(place, box.sizes[-1] // 2 + 1 if box.sizes[-1] > 2 else 1):
        found = dual.dual(engine, program, whole.multipliers, passes=10, points=8, patience=10, tolerance=5e-4, allowed=half)
        assert found.bound <= whole.bound + 1e-9 * abs(whole.bound)
        feasible = [o for a, ok, o in zip(t["arch"], t["feasible"], t["objective"]) if ok and _inside(engine, half, _widths(a))]
        if feasible:
            assert found.bound >= max(feasible) - 1e-9 * abs(max(feasible))


@pytest.mark.parametrize("which", range(len(PROBLEMS)))
def test_branching_over_widths_proves_the_optimum_without_column_generation(which):
    """From the worst feasible design, with the dual and the branch and bound only: the dual leaves
    a gap on these spaces, and the branch and bound over boxes of widths closes it (brute force gives
    the optimum)."""
    from deepmad.solvers import Settings, solve

    problem, t = PROBLEMS[which], _table(which)
    best = t["objective"][t["feasible"]].max()
    worst = t["arch"][int(np.argmin(np.where(t["feasible"], t["objective"], np.inf)))]
    only = Settings(search_share=0.0, own_share=0.0, colgen_share=0.0, dual_share=0.1, branching_share=0.9, widths_share=0.0)
    solution = solve(problem, method="large", time_limit=60, settings=only, start=worst)
    assert solution.status == "optimal" and solution.objective == pytest.approx(best, rel=1e-9)
    assert solution.work.get("branching", 0.0) > 0.0
