"""The large-space method: bulk option arrays, the master, the bounds, and agreement with the whole MILP."""

from __future__ import annotations

import dataclasses
import math

import pyomo.environ as pyo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyomo.contrib.solver.common.factory import SolverFactory

from deepmad import colgen, lagrange, tinynas
from deepmad.accounting import block_costs
from deepmad.architecture import Stage
from deepmad.arrays import stage_arrays
from deepmad.blocks import BLOCK_TYPES
from deepmad.entropy import score
from deepmad.latency import LatencyModel
from deepmad.options import stage_options
from deepmad.presets import PUBLISHED_FILES, preset
from deepmad.problem import Problem
from deepmad.program import Tables, build_program
from deepmad.search import local_search
from deepmad.solve import solve
from deepmad.space import DesignSpace
from hwmodels.table import Calibration

from conftest import PUBLISHED, synthetic_table

BLOCKS = sorted(BLOCK_TYPES)


def _space(block: str, **kw) -> DesignSpace:
    base = dict(block=block, resolution=64, strides=(2, 1, 2), depths=((1, 2), (1, 3), (1, 2)),
                stem_channels=(16, 24), channels=(16, 48), kernels=(3, 5), head=64 if "inverted" in block else None)
    base.update(kw)
    return DesignSpace(**base)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(BLOCKS), st.sampled_from([1, 2]), st.integers(1, 40), st.integers(1, 40), st.integers(1, 60),
       st.sampled_from([3, 5, 7]), st.sampled_from(["tinynas", "macs"]))
def test_stage_arrays_equal_the_scalar_accounting(block, stride, a8, c8, b, k, convention):
    a, c = 8 * a8, 8 * c8
    space = DesignSpace(block=block, resolution=64, strides=(stride,), depths=((1, 3),), stem_channels=(a, a),
                        channels=(c, c), kernels=(k,), inner_ratio=(0.01, 50.0), stem_growth=None, max_growth=None)
    problem = Problem(space, flops_convention=convention, nondecreasing=False)
    arr = stage_arrays(problem, 0, c)
    bi = list(arr.inner).index(8 * (1 + b % len(arr.inner))) if 8 * (1 + b % len(arr.inner)) in arr.inner else 0
    inner = int(arr.inner[bi])
    first, rest = Stage(block, c, inner, k, 2, stride).layouts(a)
    side = 64 // 2
    rows_first = block_costs("f", first, side)
    rows_rest = block_costs("r", rest, side // stride)
    pick = (lambda r: r.flops_tinynas) if convention == "tinynas" else (lambda r: r.macs)
    assert arr.first.flops[0, bi, 0] == sum(map(pick, rows_first))
    assert arr.first.params[0, bi, 0] == sum(r.params for r in rows_first)
    assert arr.rest.flops[bi, 0] == sum(map(pick, rows_rest))
    assert arr.rest.params[bi, 0] == sum(r.params for r in rows_rest)
    assert arr.first.entropy[0, bi, 0] == 0.5 * sum(math.log(cv.fan_in) for cv in first.convs)
    assert arr.rest.entropy[bi, 0] == 0.5 * sum(math.log(cv.fan_in) for cv in rest.convs)


def _pyomo_lp(problem, tables, bounds):
    m = build_program(problem, tables, bounds=bounds)
    pyo.TransformationFactory("core.relax_integer_vars").apply_to(m)
    rows = [getattr(m, n) for n in ("flops", "params", "layers", "latency") if hasattr(m, n)] + list(m.rho.values())
    m.elastic = pyo.Var(range(len(rows)), within=pyo.NonNegativeReals)
    for r, con in enumerate(rows):
        con.set_value(con.body - m.elastic[r] <= con.upper)
    m.objective.set_value(m.objective.expr - colgen.ELASTIC * sum(m.elastic.values()))
    res = SolverFactory("highs").solve(m, load_solutions=False)
    return res.incumbent_objective, colgen.keyed(res.solution_loader.get_duals())


def _with_latency(problem: Problem, share: float) -> Problem:
    """``problem`` with a latency budget on the made-up device: ``share`` of its free optimum's latency."""
    model = LatencyModel.of(synthetic_table(problem, Calibration(1.0, 0.002, 0.3, 0.05, 0)))
    free = solve(problem, method="milp")
    return dataclasses.replace(problem, latency=share * model.predict(free.architecture).total_ms, latency_model=model)


def _problems():
    space = _space("bottleneck")
    yield Problem(space, flops=2.5e7, params=1.2e5, rho=0.3)
    yield Problem(space, flops=2.5e7, params=1.2e5, rho=0.3, max_layers=14, max_depth_spread=1)
    yield Problem(_space("inverted_residual_se"), flops=6e6, params=8e4, rho=0.5, nondecreasing=False)
    yield _with_latency(Problem(space, flops=2.5e7, params=1.2e5, rho=0.3), 0.8)


@pytest.mark.parametrize("problem", list(_problems()))
def test_the_master_is_the_programs_relaxation_and_its_prices_are_its_duals(problem):
    space = colgen.Space(problem)
    bounds = colgen.space_bounds(space)
    columns = [stage_options(problem, j)[::5] for j in range(space.nstages)]
    master = colgen.Master(space, bounds)
    for cols in columns:
        for o in cols:
            master.add(o)
    lp, duals = master.solve()
    pyomo_lp, pyomo_duals = _pyomo_lp(problem, Tables(space.stem, columns), bounds)
    assert lp == pytest.approx(pyomo_lp, rel=1e-9)
    for y in (duals, pyomo_duals):
        p = colgen.prices(space, y, bounds)
        # The Lagrangian bound over the master's own columns is the LP value (strong duality):
        # the prices are the program's reduced costs.
        restricted = p.constant + p.moments + p.stem_max(space.stem) + sum(max(p.of(o) for o in cols) for cols in columns)
        assert restricted == pytest.approx(lp, rel=1e-8)
        # ...and the bulk pricing agrees with the option-by-option one.
        for j, cols in enumerate(columns):
            for arr in space.chunks(j):
                priced = colgen.price(arr, p)
                for o in cols[:: max(1, len(cols) // 20)]:
                    if o.channels == arr.channels:
                        ai = list(arr.inputs).index(o.c_in)
                        bi = list(arr.inner).index(o.inner)
                        ki = arr.kernels.index(o.kernel)
                        di = list(arr.depths).index(o.depth)
                        assert priced.first[ai, bi, ki] + priced.extra[bi, ki, di] == pytest.approx(p.of(o), rel=1e-9, abs=1e-6)


def _tiny_problems():
    tiny = dict(stem_channels=(16, 16), channels=(16, 32), kernels=(3, 5), depths=((1, 2), (1, 2), (1, 2)))
    yield Problem(_space("bottleneck", **tiny), flops=1.2e7, params=4e4, rho=0.3)
    yield Problem(_space("inverted_residual_se", inner_ratio=(2.0, 3.0), **{**tiny, "kernels": (3,)}),
                  flops=5.3e6, params=2.9e4, rho=0.5, nondecreasing=False)
    yield _with_latency(Problem(_space("bottleneck", **tiny), flops=1.2e7, params=4e4, rho=0.3), 0.85)


@pytest.mark.parametrize("problem", list(_tiny_problems()))
def test_entropy_caps_hold_for_every_feasible_design(problem):
    """With and without a neighbouring problem's best caps multipliers tried first (``hint``)."""
    space = colgen.Space(problem)
    hint = colgen.space_bounds(colgen.Space(dataclasses.replace(problem, flops=0.8 * problem.flops))).setting
    assert hint is not None
    # with no time for more than the first pass, the hint's caps are at least as tight
    quick = [colgen.space_bounds(space, deadline=0.0, hint=h).s_max for h in (None, hint)]
    assert all(a <= b + 1e-9 for a, b in zip(quick[1], quick[0]))
    every = [colgen.space_bounds(space), colgen.space_bounds(space, hint=hint)]
    checked = 0
    for arch in problem.space.designs():
        check = problem.check(arch)
        if not check.feasible:
            continue
        checked += 1
        s = score(arch, problem.scoring)
        for i, prefix in enumerate(s.prefixes):
            level = arch.levels()[i]
            end = arch.stem.channels if level.last_stage < 0 else arch.stages[level.last_stage].channels
            for bounds in every:
                assert prefix.log_width_sum <= bounds.cap(i, end) + 1e-9
                assert bounds.layers[i][0] <= prefix.layers <= bounds.layers[i][1]
    assert checked > 0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BLOCKS), st.floats(0.3, 0.9), st.floats(0.3, 0.9), st.sampled_from([0.3, 0.5, None]))
def test_column_generation_proves_the_same_optimum_as_the_whole_program(block, f_share, p_share, rho):
    space = _space(block)
    free = solve(Problem(space, rho=rho), method="milp")
    problem = Problem(space, flops=f_share * free.check.flops, params=p_share * free.check.params, rho=rho)
    whole = solve(problem, method="milp")
    if whole.status == "infeasible":
        return
    large = solve(problem, method="colgen")
    assert large.status == "optimal" and whole.status == "optimal"
    assert large.objective == pytest.approx(whole.objective, rel=1e-5)
    assert large.bound >= large.objective and large.check.feasible
    assert problem.check(large.architecture).objective == large.objective


@pytest.mark.parametrize("block", BLOCKS)
def test_when_too_many_options_survive_a_space_small_enough_is_solved_whole(block, monkeypatch):
    """Reduced-cost fixing leaves more options than the survivors' MILP takes: the whole program
    (small enough to state) is solved with the time left, from the design found so far."""
    from deepmad import solve as solve_module

    space = _space(block)
    free = solve(Problem(space, rho=0.5), method="milp")
    problem = Problem(space, flops=0.6 * free.check.flops, params=0.7 * free.check.params, rho=0.5)
    whole = solve(problem, method="milp")
    monkeypatch.setattr(solve_module, "MAX_SURVIVORS", 0)
    monkeypatch.setattr(solve_module, "local_search", lambda p, **kw: p.space.skeleton())  # a poor first design
    large = solve(problem, method="colgen")
    assert large.status == "optimal" and large.objective == pytest.approx(whole.objective, rel=1e-5)


@pytest.mark.parametrize("block", ["bottleneck", "inverted_residual_se"])
@pytest.mark.parametrize("share", [0.6, 0.85])
def test_column_generation_with_a_latency_budget_proves_the_same_optimum(block, share):
    space = _space(block)
    free = solve(Problem(space, rho=0.5), method="milp")
    problem = _with_latency(Problem(space, flops=0.7 * free.check.flops, params=0.7 * free.check.params, rho=0.5), share)
    whole, large = solve(problem, method="milp"), solve(problem, method="colgen")
    assert whole.status == large.status == "optimal"
    assert large.objective == pytest.approx(whole.objective, rel=1e-5)
    assert large.check.latency_ms <= problem.latency * (1 + 1e-9)


def test_a_large_space_names_an_impossible_latency_and_the_smallest_one():
    problem = _with_latency(Problem(_space("bottleneck"), flops=2.5e7, params=1.2e5, rho=0.3), 1.0)
    least = colgen.smallest_costs(dataclasses.replace(problem, latency=None))["latency"]
    solution = solve(dataclasses.replace(problem, latency=0.5 * least), method="colgen")
    assert solution.status == "infeasible"
    (short,) = solution.shortfalls
    assert short.name == "latency" and short.smallest == pytest.approx(least)


def test_local_search_designs_are_feasible_and_deterministic():
    problem = Problem(_space("bottleneck", channels=(16, 96)), flops=3e7, params=2e5, rho=0.3)
    a, b = local_search(problem, kicks=5), local_search(problem, kicks=5)
    assert a == b and problem.check(a).feasible


def test_a_preset_returns_a_design_that_beats_the_published_one_with_a_valid_bound():
    problem = preset("deepmad-r18")
    solution = solve(problem, time_limit=30)
    assert solution.check.feasible and solution.status in ("optimal", "time_limit")
    assert solution.bound >= solution.objective
    reference = tinynas.load(PUBLISHED / PUBLISHED_FILES["deepmad-r18"], resolution=224)
    assert solution.objective > score(reference).objective


@pytest.mark.parametrize("problem", list(_problems()))
def test_smallest_costs_are_those_of_the_whole_program(problem):
    from deepmad.solve import _smallest

    least = colgen.smallest_costs(problem)
    assert least["flops"] == _smallest(problem, "flops", 60)
    assert least["params"] == _smallest(problem, "params", 60)
    if problem.latency_model is not None:
        assert least["latency"] == pytest.approx(_smallest(problem, "latency", 60), rel=1e-9)


def test_a_preset_with_an_impossible_budget_names_it_and_its_smallest_value():
    problem = dataclasses.replace(preset("deepmad-r18"), flops=1e6)
    solution = solve(problem, time_limit=60)
    assert solution.status == "infeasible" and solution.architecture is None
    (short,) = solution.shortfalls
    assert short.name == "flops" and short.limit == 1e6 and short.smallest > 1e6
    assert short.smallest == colgen.smallest_costs(dataclasses.replace(problem, flops=None))["flops"]


def test_end_widths_no_design_can_afford_get_a_zero_cap_and_the_methods_still_agree():
    space = _space("inverted_residual_se", channels=(16, 128), strides=(1, 2, 2))  # wide ends cannot be afforded
    free = solve(Problem(space, rho=0.5), method="milp")
    problem = Problem(space, flops=0.02 * free.check.flops, params=0.02 * free.check.params, rho=0.5)
    bounds = colgen.space_bounds(colgen.Space(problem))
    assert min(bounds.caps.values()) < 0 <= min(bounds.cap(i, c) for i, c in bounds.caps)
    whole, large = solve(problem, method="milp"), solve(problem, method="colgen")
    assert whole.status == large.status == "optimal"
    assert large.objective == pytest.approx(whole.objective, rel=1e-5)


@pytest.mark.parametrize("problem", list(_tiny_problems())[:2])
def test_when_no_exact_milp_fits_the_design_is_the_best_of_the_options_gathered(problem, monkeypatch):
    """Too many survivors and a space too large to state whole: the master's options, solved as
    a MILP from the first design, give the design: the best design made of them (brute force)."""
    import itertools

    from deepmad import solve as solve_module
    from deepmad.options import assemble, stem_options

    gathered, duals = [], []
    generate, dual = colgen.generate, lagrange.dual
    monkeypatch.setattr(solve_module, "MAX_SURVIVORS", 0)
    monkeypatch.setattr(solve_module, "MAX_OPTIONS", 0)
    monkeypatch.setattr(colgen, "generate", lambda *a, **kw: gathered.append(generate(*a, **kw)) or gathered[-1])
    monkeypatch.setattr(lagrange, "dual", lambda *a, **kw: duals.append(dual(*a, **kw)) or duals[-1])
    monkeypatch.setattr(solve_module, "_fixed_widths_design", lambda p, widths, arch, *a: (arch, p.check(arch)))
    first = min((a for a in problem.space.designs() if problem.check(a).feasible), key=lambda a: problem.check(a).objective)
    monkeypatch.setattr(solve_module, "local_search", lambda p, **kw: first)  # the worst feasible design
    large = solve(problem, method="colgen")
    (result,), (relaxed,) = gathered, duals
    best = -math.inf
    for stem in stem_options(problem):
        for stages in itertools.product(*result.columns):
            widths = [stem.channels] + [o.channels for o in stages]
            if all(o.c_in == widths[j] for j, o in enumerate(stages)):
                check = problem.check(assemble(problem, stem, list(stages)))
                if check.feasible:
                    best = max(best, check.objective)
    assert large.check.feasible and large.objective == pytest.approx(best, rel=1e-9)
    assert large.objective > problem.check(first).objective
    bound = min(result.bound, relaxed.bound)
    assert large.bound >= bound - 1e-9 * abs(bound) or large.status == "optimal"


@pytest.mark.parametrize("problem", list(_tiny_problems())[:2])
def test_longest_paths_find_the_best_design_at_any_prices_and_fixing_keeps_every_design_above_the_floor(problem):
    """At the first master's prices: the path bound is the largest Lagrangian value of any design
    (brute force), its path is such a design, and reduced-cost fixing keeps exactly the options of
    the designs worth at least the floor."""
    space = colgen.Space(problem)
    bounds = colgen.space_bounds(space)
    master = colgen.Master(space, bounds)
    for j in range(space.nstages):
        for arr in space.chunks(j):
            for o in colgen.seed(arr):
                master.add(o)
    _, y = master.solve()
    p = colgen.prices(space, y, bounds)
    paths = colgen.longest_paths(space, p)
    stem = {o.channels: p.of(o) for o in space.stem}
    value = {}
    for arch in problem.space.designs():
        if problem.nondecreasing and any(a.channels > b.channels for a, b in zip(arch.stages, arch.stages[1:])):
            continue
        options = tuple(colgen.options_of(problem, arch))
        value[(arch.stem.channels, options)] = paths.constant + stem[arch.stem.channels] + sum(p.of(o) for o in options)
    assert paths.bound == pytest.approx(max(value.values()), rel=1e-9)
    found = paths.design(problem)
    assert value[(found.stem.channels, tuple(colgen.options_of(problem, found)))] == pytest.approx(paths.bound, rel=1e-9)
    floor = sorted(value.values())[len(value) * 9 // 10]
    result = colgen.Result(paths.bound, -math.inf, 0, [], p, paths, 0.0, bounds)
    kept = [set(stage) for stage in colgen.survivors(problem, result, floor)]
    def options_above(level: float) -> list[set]:
        out = [set() for _ in kept]
        for (_, options), v in value.items():
            if v >= level:
                for j, o in enumerate(options):
                    out[j].add(o)
        return out

    slack = 1e-6 * abs(paths.bound)
    for at_least, fixed, at_most in zip(options_above(floor), kept, options_above(floor - slack)):
        assert at_least <= fixed <= at_most


def test_where_the_local_search_finds_no_design_it_climbs_again_from_the_longest_path(monkeypatch):
    """The first local search ends outside the feasible region and column generation stops after
    one round: the local search starts again from the longest path's design (the Lagrangian
    solution, which may break a budget), and the solve returns what it finds, its widths solved
    exactly."""
    from deepmad import solve as solve_module

    problem = next(_tiny_problems())
    gathered, starts = [], []
    generate, search = colgen.generate, local_search
    monkeypatch.setattr(colgen, "generate", lambda *a, **kw: gathered.append(generate(*a, **{**kw, "max_rounds": 1})) or gathered[-1])
    monkeypatch.setattr(solve_module, "MAX_SURVIVORS", 0)
    monkeypatch.setattr(solve_module, "MAX_OPTIONS", 0)
    monkeypatch.setattr(solve_module, "_master_design", lambda p, result, arch, *a: (arch, p.check(arch)))
    widest = max(problem.space.designs(), key=lambda a: problem.check(a).flops)
    assert not problem.check(widest).feasible

    def searched(p, *, start=None, **kw):
        starts.append(start)
        return widest if start is None else search(p, start=start)

    monkeypatch.setattr(solve_module, "local_search", searched)
    large = solve(problem, method="colgen")
    (result,) = gathered
    assert result.design is None  # the longest path was no design
    path = result.paths.design(problem)
    assert starts == [None, path]
    repaired = search(problem, start=path)
    assert problem.check(repaired).feasible
    exact = solve_module._fixed_widths_design(problem, [solve_module._widths(repaired)], repaired, 60.0, 1e-5)[1]
    assert large.check.feasible and large.objective >= exact.objective - 1e-9 * abs(exact.objective)


def test_multipliers_of_another_problem_bound_this_one_from_the_first_pass():
    """Column generation started from a neighbouring problem's multipliers (other budgets, one
    budget dropped, a rule added) gives a valid bound before its first master LP, and where only a
    budget moved, a tighter one than a first round from scratch."""
    space = _space("bottleneck")
    here = Problem(space, flops=2.5e7, params=1.2e5, rho=0.3)
    converged = colgen.generate(here, time_limit=60)
    assert converged.duals[("params",)] > 0 and converged.duals[("flops",)] > 0  # both budgets bind: their rows matter
    neighbours = [dataclasses.replace(here, flops=2.2e7), dataclasses.replace(here, params=None),
                  dataclasses.replace(here, flops=2.2e7, max_depth_spread=1, max_layers=14)]
    for problem in neighbours:
        optimum = solve(problem, method="milp")
        warm = colgen.generate(problem, time_limit=1e-9, warm=converged.lagrangian)
        assert warm.rounds == 0  # the time was up after the given multipliers' pass
        assert warm.bound >= optimum.objective - 1e-6 * abs(optimum.objective)
    cold = colgen.generate(neighbours[0], max_rounds=1)
    warm = colgen.generate(neighbours[0], time_limit=1e-9, warm=converged.lagrangian)
    assert warm.bound < cold.bound
    # the neighbour's master options start the master, where the options are the same
    assert all(set(a) <= set(b) for a, b in zip(converged.columns, warm.columns))
    other = colgen.generate(dataclasses.replace(neighbours[0], nondecreasing=False), time_limit=1e-9, warm=converged.lagrangian)
    assert not all(set(a) <= set(b) for a, b in zip(converged.columns, other.columns))


def test_a_solve_started_from_a_solution_prices_at_its_multipliers_first(monkeypatch):
    from deepmad import solve as solve_module

    space = _space("bottleneck")
    first = solve(Problem(space, flops=2.5e7, params=1.2e5, rho=0.3), method="colgen")
    assert first.lagrangian is not None
    given = []
    generate = colgen.generate
    monkeypatch.setattr(solve_module.colgen, "generate", lambda *a, **kw: given.append(kw["warm"]) or generate(*a, **kw))
    problem = Problem(space, flops=2.2e7, params=1.2e5, rho=0.3)
    second = solve(problem, method="colgen", start=first)
    assert given == [first.lagrangian]
    assert second.status == "optimal"
    assert second.objective == pytest.approx(solve(problem, method="milp").objective, rel=1e-5)


@pytest.mark.parametrize("rounds", [3, 500])
def test_a_certificate_bounds_every_problem_whose_designs_are_among_its_own(rounds):
    """Column generation's bound moved to tighter budgets (rho0 included) by its multipliers is
    never below the optimum there (the whole MILP's), never above the bound it came from, and
    infinite where a budget is looser or missing: after 3 rounds (any multipliers) and converged
    (where the bound is tight, so that a move too large shows)."""
    space = _space("bottleneck")
    here = Problem(space, flops=2.5e7, params=1.2e5, rho=0.3)
    result = colgen.generate(here, max_rounds=rounds)
    cert = colgen.certificate(here, result.lagrangian)
    assert cert["prices"]["flops"] > 0 or cert["prices"]["params"] > 0
    for changes in ({"flops": 2.0e7}, {"params": 1.0e5}, {"flops": 1.8e7, "params": 0.9e5, "rho": 0.25}, {"rho": 0.2}):
        there = dataclasses.replace(here, **changes)
        bound = colgen.certified(cert, there)
        assert bound <= result.bound + 1e-9
        optimum = solve(there, method="milp")
        assert optimum.status == "infeasible" or bound >= optimum.objective - 1e-6 * abs(optimum.objective)
    assert colgen.certified(cert, dataclasses.replace(here, flops=3e7)) == math.inf
    assert colgen.certified(cert, dataclasses.replace(here, params=None)) == math.inf
