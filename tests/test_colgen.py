"""The large-space method: column generation, its bound and caps, fixing, and agreement with the whole MILP."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepmad import BLOCK_TYPES
from deepmad.hardware.latency import LatencyModel
from deepmad.model import tinynas
from deepmad.model.entropy import score
from deepmad.problem.presets import PUBLISHED_FILES, preset
from deepmad.problem.problem import Problem
from deepmad.solvers import Settings, colgen, solve
from deepmad.solvers.checks import bruteforce
from deepmad.solvers.context import Context
from deepmad.solvers.engine import Engine
from deepmad.solvers.rows import Program
from hwmodels.table import Calibration

from conftest import PUBLISHED, synthetic_table
from test_engine import BLOCKS, TINY, _space


def _with_latency(problem: Problem, share: float) -> Problem:
    """``problem`` with a latency budget on the made-up device: ``share`` of its free optimum's latency."""
    model = LatencyModel.of(synthetic_table(problem, Calibration(1.0, 0.002, 0.3, 0.05, 0)))
    free = solve(problem, method="milp")
    return dataclasses.replace(problem, latency=share * model.predict(free.architecture).total_ms, latency_model=model)


def _parts(problem: Problem):
    engine = Engine.of(problem)
    context = Context(problem)
    return engine, context, Program(problem, context, colgen.layer_ranges(engine, context))


def _tiny_problems():
    tiny = dict(stem_channels=(16, 16), channels=(16, 32), kernels=(3, 5), depths=((1, 2), (1, 2), (1, 2)))
    yield Problem(_space("bottleneck", **tiny), flops=1.2e7, params=4e4, rho=0.3)
    yield Problem(_space("inverted_residual_se", inner_ratio=(2.0, 3.0), **{**tiny, "kernels": (3,)}),
                  flops=5.3e6, params=2.9e4, rho=0.5, nondecreasing=False)
    yield _with_latency(Problem(_space("bottleneck", **{**tiny, "kernels": (3,)}), flops=1.2e7, params=4e4, rho=0.3), 0.85)


_FREE_CHECKS: dict[int, list] = {}


def _free_checks(index: int) -> list:
    """Every design of tiny problem ``index`` with its check under no budget (computed once: the
    enumeration is most of these tests' time)."""
    if index not in _FREE_CHECKS:
        problem = list(_tiny_problems())[index]
        free = dataclasses.replace(problem, flops=None, params=None, rho=None, latency=None)
        _FREE_CHECKS[index] = [(arch, free.check(arch)) for arch in problem.space.designs()]
    return _FREE_CHECKS[index]


def _within_budgets(problem: Problem, check) -> bool:
    """A cheap necessary condition of feasibility: the free check meets the budgets."""
    return ((problem.flops is None or check.flops <= problem.flops) and (problem.params is None or check.params <= problem.params)
            and (problem.latency is None or check.latency_ms <= problem.latency))


@pytest.mark.slow
@pytest.mark.parametrize("index", range(3))
def test_entropy_caps_hold_for_every_feasible_design(index):
    """With and without a neighbouring problem's best caps multipliers tried first (``hint``)."""
    problem = list(_tiny_problems())[index]
    engine, context, program = _parts(problem)
    neighbour = dataclasses.replace(problem, flops=0.8 * problem.flops)
    hint = colgen.caps(*_parts(neighbour), passes=100).setting
    assert hint is not None
    quick = [colgen.caps(engine, context, program, passes=1 + extra, hint=h).s_max for extra, h in ((0, None), (1, hint))]
    assert all(a <= b + 1e-9 for a, b in zip(quick[1], quick[0]))
    every = [colgen.caps(engine, context, program, passes=100), colgen.caps(engine, context, program, passes=100, hint=hint)]
    checked = 0
    for arch, free in _free_checks(index):
        if not (free.feasible and _within_budgets(problem, free) and problem.check(arch).feasible):
            continue
        checked += 1
        s = score(arch, problem.scoring)
        for i, prefix in enumerate(s.prefixes):
            level = arch.levels()[i]
            end = arch.stem.channels if level.last_stage < 0 else arch.stages[level.last_stage].channels
            for caps in every:
                assert prefix.log_width_sum <= caps.cap(i, end) + 1e-9
                assert caps.layers[i][0] <= prefix.layers <= caps.layers[i][1]
    assert checked > 0


@pytest.mark.parametrize("problem", list(_tiny_problems()))
def test_every_rounds_bound_bounds_the_optimum(problem):
    """After any number of rounds (any duals) the bound is valid; converged, it is the LP's."""
    optimum = solve(problem, method="milp").objective
    engine, context, program = _parts(problem)
    caps = colgen.caps(engine, context, program, passes=50)
    for rounds in (0, 1, 3, 200):
        result = colgen.generate(engine, context, program, caps, Settings(colgen_settled=0.0), rounds=rounds)
        assert result.bound >= optimum - 1e-6 * abs(optimum)
    assert result.bound == pytest.approx(result.lp, rel=1e-4)


@pytest.mark.slow
@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BLOCKS), st.floats(0.3, 0.9), st.floats(0.3, 0.9), st.sampled_from([0.3, 0.5, None]))
def test_the_large_method_proves_the_same_optimum_as_the_whole_program(block, f_share, p_share, rho):
    space = _space(block)
    free = solve(Problem(space, rho=rho), method="large")  # the budgets' scale only
    problem = Problem(space, flops=f_share * free.check.flops, params=p_share * free.check.params, rho=rho)
    whole = solve(problem, method="milp")
    if whole.status == "infeasible":
        assert solve(problem, method="large").status == "infeasible"
        return
    large = solve(problem, method="large")
    assert large.status == "optimal" and whole.status == "optimal"
    assert large.objective == pytest.approx(whole.objective, rel=1e-5)
    assert large.bound >= large.objective and large.check.feasible
    assert problem.check(large.architecture).objective == large.objective


@pytest.mark.slow
@pytest.mark.parametrize("block", ["bottleneck", "inverted_residual_se"])
@pytest.mark.parametrize("share", [0.6, 0.85])
def test_the_large_method_with_a_latency_budget_proves_the_same_optimum(block, share):
    space = _space(block)
    free = solve(Problem(space, rho=0.5), method="large")  # the budgets' scale only
    problem = _with_latency(Problem(space, flops=0.7 * free.check.flops, params=0.7 * free.check.params, rho=0.5), share)
    whole, large = solve(problem, method="milp"), solve(problem, method="large")
    assert whole.status == large.status == "optimal"
    assert large.objective == pytest.approx(whole.objective, rel=1e-5)
    assert large.check.latency_ms <= problem.latency * (1 + 1e-9)


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_type_brute_force_the_whole_program_and_the_large_method_agree(block):
    """On a tiny space of each block type, with FLOPs, parameter, rho and latency budgets, the three
    exact paths find the same optimum (the latency arrays of each family's units included)."""
    inner = BLOCK_TYPES[block].inner_range
    narrow = {"inner_ratio": (inner[0], inner[0] + 0.5)} if inner and inner[1] > 1 else {}  # a few hundred designs
    space = _space(block, **{**TINY, "depths": ((1, 2), (1, 1), (1, 1))}, **narrow)
    free = bruteforce.solve(Problem(space, rho=0.5))
    problem = _with_latency(Problem(space, flops=0.8 * free.check.flops, params=0.8 * free.check.params, rho=0.5), 0.95)
    brute, whole, large = bruteforce.solve(problem), solve(problem, method="milp"), solve(problem, method="large")
    assert brute.status == whole.status == large.status == "optimal"
    assert whole.objective == pytest.approx(brute.objective, rel=1e-9)
    assert large.objective == pytest.approx(brute.objective, rel=1e-9)
    assert large.check.latency_ms <= problem.latency * (1 + 1e-9)


def test_a_large_space_names_an_impossible_latency_and_the_smallest_one():
    problem = _with_latency(Problem(_space("bottleneck"), flops=2.5e7, params=1.2e5, rho=0.3), 1.0)
    least = colgen.smallest_costs(Engine.of(problem), dataclasses.replace(problem, latency=None))["latency"]
    solution = solve(dataclasses.replace(problem, latency=0.5 * least), method="large")
    assert solution.status == "infeasible"
    (short,) = solution.shortfalls
    assert short.name == "latency" and short.smallest == pytest.approx(least)


@pytest.mark.slow
def test_a_preset_returns_a_design_that_beats_the_published_one_with_a_valid_bound():
    problem = preset("deepmad-r18")
    solution = solve(problem, time_limit=10)
    assert solution.check.feasible and solution.status in ("optimal", "time_limit")
    assert solution.bound >= solution.objective
    reference = tinynas.load(PUBLISHED / PUBLISHED_FILES["deepmad-r18"], resolution=224)
    assert solution.objective > score(reference).objective


@pytest.mark.slow
@pytest.mark.parametrize("index", range(3))
def test_smallest_costs_are_brute_forces(index):
    problem = list(_tiny_problems())[index]
    engine = Engine.of(problem)
    least = colgen.smallest_costs(engine, problem)
    checks = [c for _, c in _free_checks(index) if c.feasible]
    assert least["flops"] == min(c.flops for c in checks)
    assert least["params"] == min(c.params for c in checks)
    if problem.latency_model is not None:
        assert least["latency"] == pytest.approx(min(c.latency_ms for c in checks), rel=1e-9)


@pytest.mark.slow
def test_a_preset_with_an_impossible_budget_names_it_and_its_smallest_value():
    problem = dataclasses.replace(preset("deepmad-r18"), flops=1e6)
    solution = solve(problem, time_limit=20)
    assert solution.status == "infeasible" and solution.architecture is None
    (short,) = solution.shortfalls
    assert short.name == "flops" and short.limit == 1e6 and short.smallest > 1e6
    assert short.smallest == colgen.smallest_costs(Engine.of(problem), problem)["flops"]


@pytest.mark.slow
def test_end_widths_no_design_can_afford_get_a_zero_cap_and_the_methods_still_agree():
    space = _space("inverted_residual_se", channels=(16, 96), strides=(1, 2, 2))  # wide ends cannot be afforded
    free = solve(Problem(space, rho=0.5), method="large")
    problem = Problem(space, flops=0.02 * free.check.flops, params=0.02 * free.check.params, rho=0.5)
    caps = colgen.caps(*_parts(problem), passes=100)
    assert min(caps.caps.values()) < 0 <= min(caps.cap(i, c) for i, c in caps.caps)
    whole, large = solve(problem, method="milp"), solve(problem, method="large")
    assert whole.status == large.status == "optimal"
    assert large.objective == pytest.approx(whole.objective, rel=1e-5)


def test_multipliers_of_another_problem_bound_this_one_from_the_first_pass():
    """Column generation started from a neighbouring problem's multipliers (other budgets, one
    budget dropped, a rule added) gives a valid bound before its first master LP, and where only a
    budget moved, a tighter one than a first round from scratch."""
    space = _space("bottleneck")
    here = Problem(space, flops=2.5e7, params=1.2e5, rho=0.3)
    engine, context, program = _parts(here)
    caps = colgen.caps(engine, context, program, passes=100)
    converged = colgen.generate(engine, context, program, caps, Settings(), rounds=200)
    assert converged.duals[("params",)] > 0 and converged.duals[("flops",)] > 0
    neighbours = [dataclasses.replace(here, flops=2.2e7), dataclasses.replace(here, params=None),
                  dataclasses.replace(here, flops=2.2e7, max_depth_spread=1, max_layers=14)]
    for problem in neighbours:
        optimum = solve(problem, method="milp")
        parts = _parts(problem)
        warm = colgen.generate(*parts, colgen.caps(*parts, passes=100), Settings(), rounds=0, warm=converged.lagrangian)
        assert warm.bound >= optimum.objective - 1e-6 * abs(optimum.objective)
    parts = _parts(neighbours[0])
    caps = colgen.caps(*parts, passes=100)
    cold = colgen.generate(*parts, caps, Settings(), rounds=1)
    warm = colgen.generate(*parts, caps, Settings(), rounds=0, warm=converged.lagrangian)
    assert warm.bound < cold.bound
    assert all({c.key(i) for i in range(len(c))} <= {w.key(i) for i in range(len(w))} for c, w in zip(converged.columns, warm.columns))


def test_a_solve_started_from_a_solution_starts_from_its_multipliers():
    space = _space("bottleneck")
    first = solve(Problem(space, flops=2.5e7, params=1.2e5, rho=0.3), method="large")
    assert first.lagrangian is not None
    problem = Problem(space, flops=2.2e7, params=1.2e5, rho=0.3)
    second = solve(problem, method="large", start=first)
    assert second.status == "optimal"
    assert second.objective == pytest.approx(solve(problem, method="milp").objective, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("rounds", [3, 500])
def test_a_certificate_bounds_every_problem_whose_designs_are_among_its_own(rounds):
    """Column generation's bound moved to tighter budgets (rho0 included) by its multipliers is
    never below the optimum there (the whole MILP's), never above the bound it came from, and
    infinite where a budget is looser or missing."""
    space = _space("bottleneck")
    here = Problem(space, flops=2.5e7, params=1.2e5, rho=0.3)
    engine, context, program = _parts(here)
    result = colgen.generate(engine, context, program, colgen.caps(engine, context, program, passes=100), Settings(), rounds=rounds)
    cert = colgen.certificate(here, result.lagrangian)
    if rounds > 3:  # converged: the budgets bind, so the certificate moves the bound
        assert cert["prices"]["flops"] > 0 or cert["prices"]["params"] > 0
    for changes in ({"flops": 2.0e7}, {"params": 1.0e5}, {"flops": 1.8e7, "params": 0.9e5, "rho": 0.25}, {"rho": 0.2}):
        there = dataclasses.replace(here, **changes)
        bound = colgen.certified(cert, there)
        assert bound <= result.bound + 1e-9
        optimum = solve(there, method="milp")
        assert optimum.status == "infeasible" or bound >= optimum.objective - 1e-6 * abs(optimum.objective)
    assert colgen.certified(cert, dataclasses.replace(here, flops=3e7)) == math.inf
    assert colgen.certified(cert, dataclasses.replace(here, params=None)) == math.inf


def test_smoothed_duals_keep_their_keys_in_a_fixed_order():
    """The mix of two dual vectors lists the centre's keys, then the new ones, in their order: not
    in a set's, which follows string hashes Python draws per process (sums over the multipliers
    would then round differently from run to run)."""
    center = {("flops",): 1.0, ("rho", 0, 7): 2.0, ("params",): 3.0, ("S_def", 1): 4.0}
    current = {("layers",): 1.0, ("params",): 1.0, ("spread",): 2.0, ("rho", 2, 9): 5.0}
    mixed = colgen._mix(center, current, 0.25)
    assert list(mixed) == [("flops",), ("rho", 0, 7), ("params",), ("S_def", 1), ("layers",), ("spread",), ("rho", 2, 9)]
    assert mixed[("params",)] == 0.25 * 3.0 + 0.75 * 1.0 and mixed[("layers",)] == 0.75
