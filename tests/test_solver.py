"""The exact solver (the MILP of :mod:`deepmad.solvers.formulation` on HiGHS) against brute force.

Brute force (:mod:`deepmad.solvers.checks.bruteforce`) scores every design of a tiny space
with :meth:`Problem.check` and is optimal by construction; the MILP must find
the same optimum, prove it, and diagnose infeasible problems the same way.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pyomo.environ as pyo
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pyomo.contrib.solver.common.factory import SolverFactory

from deepmad import BLOCK_TYPES, InputError, Scoring, costs, score
from deepmad.problem.problem import Problem
from deepmad.problem.space import DesignSpace
from deepmad.solution import Solution
from deepmad.solvers import colgen, solve
from deepmad.solvers.checks import bruteforce
from deepmad.solvers.context import Context
from deepmad.solvers.engine import Engine, assemble
from deepmad.solvers.formulation import Formulation, Model
from deepmad.solvers.milp import option_caps, stem_options, tables
from deepmad.solvers.rows import Program

BLOCKS = sorted(BLOCK_TYPES)

#: Largest space the property test enumerates (brute force runs twice per example at ~0.1 ms a design).
SIZE_CAP = int(os.environ.get("DEEPMAD_TEST_SIZE_CAP", "6000"))
EXAMPLES = int(os.environ.get("DEEPMAD_TEST_EXAMPLES", "25"))


def rel_close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


# ---------------------------------------------------------------------------
# Random tiny problems
# ---------------------------------------------------------------------------


def _shrink(space: DesignSpace) -> DesignSpace:
    """Make ``space`` small enough to enumerate: narrow the channels, then kernels, then depths."""
    while space.size() > SIZE_CAP:
        lo, hi = space.channels
        if hi - lo >= space.channel_step:
            space = dataclasses.replace(space, channels=(lo, hi - space.channel_step))
        elif len(space.kernels) > 1:
            space = dataclasses.replace(space, kernels=space.kernels[:1])
        elif space.stem_channels[1] > space.stem_channels[0]:
            space = dataclasses.replace(space, stem_channels=(space.stem_channels[0],) * 2)
        else:
            widest = max(range(len(space.depths)), key=lambda j: space.depths[j][1] - space.depths[j][0])
            lo_d, hi_d = space.depths[widest]
            assert hi_d > lo_d, "cannot shrink the space any further"
            depths = list(space.depths)
            depths[widest] = (lo_d, hi_d - 1)
            space = dataclasses.replace(space, depths=tuple(depths))
    return space


@st.composite
def tiny_spaces(draw) -> DesignSpace:
    block = draw(st.sampled_from(BLOCKS))
    n = draw(st.sampled_from((3, 2, 3, 1, 2)))  # mostly several stages
    strides = tuple(draw(st.sampled_from((1, 2))) for _ in range(n))
    depths = tuple(tuple(sorted((draw(st.integers(1, 3)), draw(st.integers(1, 3))))) for _ in range(n))
    lo = draw(st.sampled_from((8, 16)))
    hi = draw(st.sampled_from([c for c in (32, 24, 16, 8) if c >= lo]))
    stem_lo = draw(st.sampled_from((8, 16)))
    stem_hi = draw(st.sampled_from([c for c in (16, 8) if c >= stem_lo]))
    kernels = draw(st.sampled_from(((3, 5), (3,), (5,))))
    inner_range = BLOCK_TYPES[block].inner_range
    if inner_range is None:
        ratio, head = None, None
    elif inner_range[1] > 1:  # expanding blocks (inverted residuals, large kernels), often with a head
        ratio = draw(st.sampled_from(((1.5, 3.0), (2.0, 2.0), (1.5, 2.0))))
        head = draw(st.sampled_from((None, 32, 64)))
    else:
        ratio = draw(st.sampled_from((None, (0.25, 1.0), (0.5, 0.5))))
        head = None
    growth = draw(st.sampled_from((4.0, 2.0, None)))
    space = DesignSpace(
        block=block,
        resolution=32,
        strides=strides,
        depths=depths,
        stem_channels=(stem_lo, stem_hi),
        channels=(lo, hi),
        kernels=kernels,
        head=head,
        channel_step=8,
        inner_step=8,
        inner_ratio=ratio,
        max_growth=growth,
        stem_growth=growth,
    )
    return _shrink(space)


@st.composite
def tiny_problems(draw) -> tuple[Problem, Solution]:
    """A tiny problem with budgets relative to its unconstrained brute-force optimum (also returned)."""
    space = draw(tiny_spaces())
    n = len(space.strides)
    scoring = Scoring()
    if draw(st.booleans()):
        beta = draw(st.sampled_from((0.0, 1.0, 10.0, 40.0)))
        stages = draw(st.one_of(st.none(), st.lists(st.integers(0, n - 1), unique=True).map(lambda s: tuple(sorted(s)))))
        scoring = Scoring(beta=beta, penalty_stages=stages, resolution=draw(st.sampled_from((None, 64))))
    free = Problem(
        space,
        flops_convention=draw(st.sampled_from(("tinynas", "macs"))),
        nondecreasing=draw(st.booleans()),
        max_depth_spread=draw(st.sampled_from((None, None, 1, 2))),
        scoring=scoring,
    )
    reference = bruteforce.solve(free)
    # Spaces the guidelines alone empty out are a separate, known case
    # (test_space_emptied_by_the_guidelines_is_diagnosed).
    assume(reference.status == "optimal")
    ref = reference.check
    fraction = st.floats(0.3, 1.2, allow_nan=False)
    budgets = {}
    if draw(st.booleans()):
        budgets["flops"] = draw(fraction) * ref.flops
    if draw(st.booleans()):
        budgets["params"] = draw(fraction) * ref.params
    if draw(st.booleans()):
        # Not within 0.1% of the optimum's rho: a budget at the least rho the space allows is a
        # known edge (test_rho_budget_at_its_least_is_no_shortfall).
        budgets["rho"] = draw(st.floats(0.3, 1.5, allow_nan=False).filter(lambda f: abs(f - 1) > 1e-3)) * ref.rho
    if draw(st.integers(0, 5)) == 5:
        budgets["max_layers"] = max(1, math.floor(draw(st.floats(0.7, 1.2)) * ref.layers))
    return dataclasses.replace(free, **budgets), reference


def assert_agree(problem: Problem, milp: Solution, brute: Solution) -> None:
    """The MILP's answer is brute force's: the same status, optimum and diagnosis; a proven, checked design."""
    assert brute.status in ("optimal", "infeasible")
    assert milp.status == brute.status, (milp, brute)
    if brute.status == "infeasible":
        assert milp.architecture is None and milp.objective is None
        by_name = {s.name: s for s in brute.shortfalls}
        assert sorted(s.name for s in milp.shortfalls) == sorted(by_name), (milp.shortfalls, brute.shortfalls)
        for s in milp.shortfalls:
            ref = by_name[s.name]
            assert s.limit == ref.limit
            if s.name == "rho":
                assert rel_close(s.smallest, ref.smallest, 1e-4), (s, ref)
            else:
                assert s.smallest == ref.smallest, (s, ref)
        return
    assert milp.status == "optimal", milp
    assert rel_close(milp.objective, brute.objective, 1e-6), (milp.objective, brute.objective, milp.architecture, brute.architecture)
    assert milp.bound >= milp.objective
    assert milp.gap is not None and milp.gap <= 1e-5
    check = problem.check(milp.architecture)
    assert check.violations == ()
    assert check.objective == milp.objective
    assert check == milp.check
    assert milp.shortfalls == ()


# ---------------------------------------------------------------------------
# Agreement with brute force (the key test)
# ---------------------------------------------------------------------------


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
@given(tiny_problems())
def test_milp_agrees_with_brute_force(case):
    problem, _ = case
    brute = bruteforce.solve(problem)
    milp = solve(problem, time_limit=60)
    event(f"status: {brute.status}" + (f" ({', '.join(s.name for s in brute.shortfalls) or 'combination'})" if brute.shortfalls or brute.status == "infeasible" else ""))
    event(f"space size: {'<100' if problem.space.size() < 100 else '<1000' if problem.space.size() < 1000 else '>=1000'}")
    assert_agree(problem, milp, brute)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("convention", ["tinynas", "macs"])
def test_milp_agrees_with_brute_force_on_a_fixed_problem(block, convention):
    """A deterministic companion of the property test: tight budgets, every block type, both conventions."""
    inner_range = BLOCK_TYPES[block].inner_range
    inverted = inner_range is not None and inner_range[1] > 1  # expanding blocks
    space = DesignSpace(
        block=block, resolution=32, strides=(2, 1, 2), depths=((1, 2), (1, 1), (1, 2)), stem_channels=(8, 16), channels=(8, 16),
        kernels=(3, 5), inner_ratio=(1.5, 2.0) if inverted else None if inner_range is None else (0.5, 1.0), head=32 if inverted else None,
    )
    free = Problem(space, flops_convention=convention)
    ref = bruteforce.solve(free).check
    problem = dataclasses.replace(free, flops=0.6 * ref.flops, params=0.7 * ref.params, rho=1.1 * ref.rho)
    brute = bruteforce.solve(problem)
    assert brute.status == "optimal"
    assert_agree(problem, solve(problem), brute)


def test_depth_spread_zero_agrees_with_brute_force():
    space = DesignSpace(block="bottleneck", resolution=32, strides=(2, 2), depths=((1, 3), (1, 3)), stem_channels=(8, 8),
                        channels=(8, 16), kernels=(3,))
    problem = Problem(space, max_depth_spread=0)
    brute = bruteforce.solve(problem)
    milp = solve(problem)
    assert_agree(problem, milp, brute)
    assert milp.architecture.stages[0].depth == milp.architecture.stages[1].depth


@pytest.mark.parametrize("method", ["milp", "large"])
def test_a_penalty_over_no_stage_is_the_constant_beta_in_every_method(method):
    """With ``penalty_stages=()`` the penalty is ``beta`` whatever the depths: a constant the program
    carries with no moment column (CI found the MILP's bound and objective ``beta`` too high)."""
    space = DesignSpace(block="bottleneck", resolution=32, strides=(1, 1), depths=((1, 2), (1, 1)), stem_channels=(16, 16),
                        channels=(8, 32), kernels=(3, 5), inner_ratio=(0.1, 1.0))
    problem = Problem(space, scoring=Scoring(beta=3.0, penalty_stages=()))
    brute = bruteforce.solve(problem)
    assert brute.check.objective == score(brute.architecture, problem.scoring).entropy - 3.0
    assert_agree(problem, solve(problem, method=method), brute)


# ---------------------------------------------------------------------------
# Infeasible problems
# ---------------------------------------------------------------------------


def diagnosis_space() -> DesignSpace:
    return DesignSpace(block="bottleneck", resolution=32, strides=(2, 2), depths=((1, 2), (1, 3)), stem_channels=(8, 16),
                       channels=(8, 32), kernels=(3, 5))


def least(problem: Problem) -> dict[str, float]:
    """The smallest flops, params and rho over the designs that meet the space and guidelines (budgets dropped)."""
    free = dataclasses.replace(problem, flops=None, params=None, rho=None, max_layers=None)
    checks = [free.check(a) for a in free.space.designs()]
    checks = [c for c in checks if c.feasible]
    return {"flops": min(c.flops for c in checks), "params": min(c.params for c in checks), "rho": min(c.rho for c in checks)}


@pytest.fixture(scope="module")
def smallest() -> dict[str, float]:
    return least(Problem(diagnosis_space()))


@pytest.fixture(scope="module")
def largest() -> dict[str, float]:
    free = Problem(diagnosis_space())
    checks = [free.check(a) for a in free.space.designs() if free.check(a).feasible]
    return {"flops": max(c.flops for c in checks), "params": max(c.params for c in checks), "rho": max(c.rho for c in checks)}


@pytest.mark.parametrize("name", ["flops", "params", "rho"])
def test_only_one_budget_is_impossible(name, smallest, largest):
    budgets = {k: v * 2 for k, v in largest.items()}
    budgets[name] = smallest[name] * 0.9
    problem = Problem(diagnosis_space(), **budgets)
    for solution in (solve(problem), bruteforce.solve(problem)):
        assert solution.status == "infeasible"
        assert solution.architecture is None and solution.check is None
        assert solution.objective is None and solution.gap is None
        assert [s.name for s in solution.shortfalls] == [name]
        (shortfall,) = solution.shortfalls
        assert shortfall.limit == budgets[name]
        if name == "rho":
            assert rel_close(shortfall.smallest, smallest["rho"], 1e-4)
            assert shortfall.smallest >= smallest["rho"] * (1 - 1e-9)
        else:
            assert shortfall.smallest == smallest[name]
        assert shortfall.message.startswith(f"{name}: the limit")


def test_every_impossible_budget_is_named(smallest):
    problem = Problem(diagnosis_space(), flops=smallest["flops"] - 1, params=smallest["params"] - 1, rho=smallest["rho"] * 0.5)
    milp, brute = solve(problem), bruteforce.solve(problem)
    assert [s.name for s in milp.shortfalls] == [s.name for s in brute.shortfalls] == ["flops", "params", "rho"]
    assert_agree(problem, milp, brute)


def test_each_budget_reachable_but_not_together(smallest):
    """The least-flops designs are shallow and narrow, so their rho is high: both near their least cannot hold."""
    problem = Problem(diagnosis_space(), flops=smallest["flops"], rho=smallest["rho"] * 1.01)
    # Each budget alone is met by some design ...
    for alone in (dataclasses.replace(problem, rho=None), dataclasses.replace(problem, flops=None)):
        assert bruteforce.solve(alone).status == "optimal"
        assert solve(alone).status == "optimal"
    # ... but no design meets both, and no budget is to blame alone.
    assert not any(problem.check(a).feasible for a in problem.space.designs())
    for solution in (solve(problem), bruteforce.solve(problem)):
        assert solution.status == "infeasible"
        assert solution.shortfalls == ()


def test_rho_budget_at_its_least_is_no_shortfall(smallest):
    # rho alone at its least is feasible for both solvers ...
    alone = Problem(diagnosis_space(), rho=smallest["rho"])
    assert bruteforce.solve(alone).status == "optimal"
    assert solve(alone).status == "optimal"
    # ... so when flops make the problem infeasible, rho must not be blamed.
    problem = dataclasses.replace(alone, flops=smallest["flops"])
    assert bruteforce.solve(problem).shortfalls == ()
    assert solve(problem).shortfalls == ()


def test_budgets_at_their_least_are_met_exactly(smallest):
    problem = Problem(diagnosis_space(), flops=smallest["flops"])
    milp = solve(problem)
    assert milp.status == "optimal" and milp.check.flops == smallest["flops"]
    assert_agree(problem, milp, bruteforce.solve(problem))
    problem = Problem(diagnosis_space(), params=smallest["params"])
    milp = solve(problem)
    assert milp.status == "optimal" and milp.check.params == smallest["params"]
    assert_agree(problem, milp, bruteforce.solve(problem))


def test_space_emptied_by_the_guidelines_is_diagnosed():
    # Depths 1 and 3 on the penalised stages can never be within 1 of each other.
    space = DesignSpace(block="bottleneck", resolution=32, strides=(2, 2), depths=((1, 1), (3, 3)), stem_channels=(8, 16),
                        channels=(8, 16), kernels=(3,))
    problem = Problem(space, flops=1e9, max_depth_spread=1)
    brute = bruteforce.solve(problem)
    assert brute.status == "infeasible"
    milp = solve(problem)
    assert milp.status == "infeasible"
    assert {s.name for s in milp.shortfalls} == {s.name for s in brute.shortfalls}


def test_space_emptied_by_the_guidelines_without_budgets():
    space = DesignSpace(block="bottleneck", resolution=32, strides=(2, 2), depths=((1, 1), (3, 3)), stem_channels=(8, 16),
                        channels=(8, 16), kernels=(3,))
    problem = Problem(space, max_depth_spread=1)
    for solution in (solve(problem), bruteforce.solve(problem)):
        assert solution.status == "infeasible" and solution.shortfalls == ()


# ---------------------------------------------------------------------------
# Determinism and the solution object
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS)
def test_solving_twice_gives_the_same_design(block):
    inverted = block.startswith("inverted_residual")
    space = DesignSpace(block=block, resolution=32, strides=(2, 2, 2), depths=((1, 2), (1, 3), (1, 3)), stem_channels=(8, 16),
                        channels=(8, 32), kernels=(3, 5), inner_ratio=(1.5, 3.0) if inverted else None, head=64 if inverted else None)
    free = Problem(space)
    ref = solve(free).check
    problem = dataclasses.replace(free, flops=0.7 * ref.flops, rho=1.2 * ref.rho)
    a, b = solve(problem), solve(problem)
    assert a.status == b.status == "optimal"
    assert a.architecture == b.architecture
    assert a.architecture.to_dict() == b.architecture.to_dict()
    assert a.objective == b.objective
    assert a.check == b.check


def test_brute_force_is_deterministic():
    problem = Problem(diagnosis_space(), rho=0.5)
    first, second = bruteforce.solve(problem), bruteforce.solve(problem)
    assert first.architecture == second.architecture and first.objective == second.objective


def test_solution_reports_its_certificate():
    problem = Problem(diagnosis_space(), rho=0.5)
    solution = solve(problem)
    assert solution.method == "milp"
    assert solution.solve_seconds >= 0
    assert solution.architecture.name == problem.name
    data = solution.to_dict()
    assert data["status"] == "optimal"
    assert data["objective"] == solution.objective == score(solution.architecture, problem.scoring).objective
    assert data["bound"] == solution.bound >= solution.objective
    assert data["architecture"] == solution.architecture.to_dict()
    assert data["shortfalls"] == []
    assert bruteforce.solve(problem).method == "brute_force"


@pytest.mark.parametrize("kw, field", [({"time_limit": 0}, "time_limit"), ({"time_limit": float("inf")}, "time_limit"),
                                        ({"gap": 1.0}, "gap"), ({"gap": -0.1}, "gap")])
def test_solve_validates_its_arguments(kw, field):
    with pytest.raises(InputError) as info:
        solve(Problem(diagnosis_space()), **kw)
    assert info.value.field == field


def test_brute_force_refuses_large_spaces():
    space = DesignSpace(block="bottleneck", resolution=224, strides=(2, 2, 2, 1, 2), depths=((1, 4),) * 5)
    with pytest.raises(InputError) as info:
        bruteforce.solve(Problem(space))
    assert info.value.field == "space"
    assert bruteforce.solve(Problem(diagnosis_space()), max_designs=diagnosis_space().size()).status == "optimal"
    with pytest.raises(InputError):
        bruteforce.solve(Problem(diagnosis_space()), max_designs=diagnosis_space().size() - 1)


# ---------------------------------------------------------------------------
# The MILP statement
# ---------------------------------------------------------------------------


STATEMENT_CASES = {  # channels 8..16, kernels 3 and 5: under 3,000 designs each
    "bottleneck": dict(strides=(2, 1, 2), depths=((1, 2), (1, 1), (1, 2)), inner_ratio=(0.25, 1.0)),
    "basic": dict(strides=(1, 2, 2), depths=((1, 2), (1, 1), (2, 3))),
    "inverted_residual": dict(strides=(2, 2), depths=((1, 3), (1, 3)), inner_ratio=(1.5, 3.0), head=64),
    "inverted_residual_se": dict(strides=(2, 2, 1), depths=((1, 2), (1, 2), (1, 1)), inner_ratio=(1.5, 2.0)),
    "plain": dict(strides=(2, 1, 2), depths=((1, 3), (1, 3), (1, 2))),
    "large_kernel": dict(strides=(2, 2, 1), depths=((1, 2), (1, 1), (1, 1)), inner_ratio=(1.0, 1.5), head=32),
}


def statement_space(block: str) -> DesignSpace:
    return DesignSpace(block=block, resolution=32, stem_channels=(8, 16), channels=(8, 16), kernels=(3, 5), **STATEMENT_CASES[block])


def _whole(problem: Problem) -> tuple[Model, list]:
    engine = Engine.of(problem)
    context = Context(problem)
    program = Program(problem, context, colgen.layer_ranges(engine, context))
    stem, stages = stem_options(engine), tables(engine)
    model = Model(Formulation(program, option_caps(context, stem, stages)), stem, integer=True)
    for j, opts in enumerate(stages):
        model.add(j, opts)
    return model, stages


def _design(problem: Problem, picks: dict):
    stem_opts, s = picks[-1]
    return assemble(problem, int(stem_opts.channels[s]),
                    [(int(o.channels[i]), int(o.inner[i]), int(o.kernel[i]), int(o.depth[i])) for o, i in (picks[j] for j in range(len(picks) - 1))])


@pytest.mark.parametrize("block", BLOCKS)
def test_statement_objective_is_the_deepmad_objective(block):
    """The program's optimum is the DeepMAD objective of the design it picks, and brute force's
    optimum; the same program handed to Pyomo (:meth:`Model.pyomo`) and its HiGHS gives it too."""
    space = statement_space(block)
    free = Problem(space, name=f"tiny-{block}")
    ref = bruteforce.solve(free).check
    problem = dataclasses.replace(free, flops=0.8 * ref.flops, params=0.9 * ref.params, rho=1.1 * ref.rho)
    model, _ = _whole(problem)
    assert model.solve(gap=0.0) == "Optimal"
    arch = _design(problem, model.picked())
    statement = model.objective()
    assert rel_close(statement, score(arch, problem.scoring).objective, 1e-6)
    assert problem.check(arch).feasible
    brute = bruteforce.solve(problem)
    assert rel_close(statement, brute.objective, 1e-6)
    exported = model.pyomo()
    assert isinstance(exported, pyo.ConcreteModel)
    result = SolverFactory("highs").solve(exported, rel_gap=0.0, load_solutions=False, raise_exception_on_nonoptimal_result=False)
    assert rel_close(result.incumbent_objective, brute.objective, 1e-6)


@pytest.mark.parametrize("block", BLOCKS)
def test_options_cost_what_the_accounting_counts(block):
    """Every assembled choice of options costs, in both conventions, exactly the accounting of its architecture."""
    space = statement_space(block)
    for convention in ("tinynas", "macs"):
        problem = Problem(space, flops_convention=convention, nondecreasing=False)
        engine = Engine.of(problem)
        stem, stages = stem_options(engine), tables(engine)
        s = len(stem) - 1
        chain, c_prev = [], int(stem.channels[s])
        for opts in stages:
            at = np.flatnonzero(opts.c_in == c_prev)
            chain.append((opts, int(at[len(at) // 2])))
            c_prev = int(opts.channels[chain[-1][1]])
        arch = assemble(problem, int(stem.channels[s]), [(int(o.channels[i]), int(o.inner[i]), int(o.kernel[i]), int(o.depth[i])) for o, i in chain])
        c, sc = costs(arch), score(arch)
        assert int(stem.flops[s]) + sum(int(o.flops[i]) for o, i in chain) == (c.flops_tinynas if convention == "tinynas" else c.macs)
        assert int(stem.params[s]) + sum(int(o.params[i]) for o, i in chain) == c.params
        assert int(stem.layers[s]) + sum(int(o.layers[i]) for o, i in chain) == sc.layers
        assert math.isclose(float(stem.entropy[s]) + sum(float(o.entropy[i]) for o, i in chain), sc.prefixes[-1].log_width_sum, rel_tol=1e-12)


@pytest.mark.parametrize("alpha", [(1.0, -1.0, 8.0), (-1.0, -1.0, -8.0)])
def test_negative_alpha_is_refused(alpha):
    """The program's linearisation of H_i is exact for non-negative weights only, so others are refused."""
    with pytest.raises(InputError) as info:
        Scoring(alpha=alpha)
    assert info.value.field == "alpha"


def test_a_design_without_a_proven_bound_is_never_optimal():
    from deepmad.solution import Solution
    from deepmad.solvers import _status

    assert _status(10.0, math.inf, 1e-5) == "time_limit"
    arch = DesignSpace(block="basic", resolution=32, strides=(2,), depths=((1, 1),), channels=(16, 16), stem_channels=(16, 16),
                       kernels=(3,)).skeleton()
    check = Problem(DesignSpace(block="basic", resolution=32, strides=(2,), depths=((1, 1),), channels=(16, 16),
                                stem_channels=(16, 16), kernels=(3,))).check(arch)
    solution = Solution("time_limit", arch, check, math.inf, 1.0, "milp")
    assert solution.gap is None and solution.to_dict()["bound"] is None


# ---------------------------------------------------------------------------
# Edge cases an independent audit found
# ---------------------------------------------------------------------------


def test_a_rho_budget_equal_to_a_designs_rho_to_the_last_bits_is_met():
    """rho0 equal to the optimum's rho to the last bits, another design over it by 1e-10 (relative):
    HiGHS's tolerance lets that one through, the exact check refuses it, and the solve goes on to the
    optimum (once the run died with "internal error: the solver's design breaks rho")."""
    space = DesignSpace(block="bottleneck", resolution=48, strides=(2,), depths=((1, 2),), channels=(16, 40), stem_channels=(24, 24),
                        kernels=(3,))
    problem = Problem(space, rho=0.10628578524698974)
    assert bruteforce.solve(problem).objective == pytest.approx(561.56, abs=0.01)
    for method in ("milp", "large"):
        solution = solve(problem, method=method)
        assert solution.status == "optimal" and solution.objective == pytest.approx(561.56, abs=0.01)
        assert problem.check(solution.architecture).feasible


@pytest.mark.parametrize("method", ["milp", "large"])
def test_an_infeasible_problem_is_diagnosed_exactly_and_its_json_is_strict(method, smallest):
    """Within any time limit, each budget named is one the space cannot meet, with its exact
    smallest value (brute force's), and the result is strict JSON (no Infinity)."""
    import json

    problem = Problem(diagnosis_space(), flops=smallest["flops"] * 0.9, params=smallest["params"] * 2, rho=smallest["rho"] * 0.5)
    solution = solve(problem, method=method, time_limit=3)
    brute = bruteforce.solve(problem)
    assert solution.status == "infeasible"
    assert [(s.name, s.limit) for s in solution.shortfalls] == [(s.name, s.limit) for s in brute.shortfalls] == [
        ("flops", problem.flops), ("rho", problem.rho)]
    assert solution.shortfalls[0].smallest == brute.shortfalls[0].smallest
    assert rel_close(solution.shortfalls[1].smallest, brute.shortfalls[1].smallest, 1e-4)
    json.dumps(solution.to_dict(), allow_nan=False)


@pytest.mark.parametrize("block", ["basic", "inverted_residual_se"])
def test_the_stem_kernel_and_input_channels_belong_to_the_space_and_every_method_agrees(block):
    """A 5x5 stem on grey images (one input channel): the methods, the SCIP oracle and brute force
    agree; the design carries the space's stem; the generated module measures as computed."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from deepmad.solvers.checks import scip
    from generators import pytorch

    inverted = block.startswith("inverted_residual")
    space = DesignSpace(block=block, resolution=32, strides=(2, 2), depths=((1, 2), (1, 2)), stem_channels=(8, 16), channels=(8, 24),
                        kernels=(3, 5), inner_ratio=(1.5, 2.0) if inverted else (0.5, 1.0), stem_kernel=5, in_channels=1)
    free = Problem(space)
    ref = bruteforce.solve(free).check
    problem = dataclasses.replace(free, flops=0.6 * ref.flops, params=0.7 * ref.params, rho=1.1 * ref.rho)
    brute = bruteforce.solve(problem)
    assert brute.status == "optimal"
    for method in ("milp", "large"):
        assert_agree(problem, solve(problem, method=method), brute)
    assert scip.solve(problem).objective == pytest.approx(brute.objective, rel=1e-6)
    arch = brute.architecture
    assert (arch.stem.kernel, arch.in_channels) == (5, 1) and not space.violations(arch)
    assert any("stem.kernel" in v for v in space.violations(dataclasses.replace(arch, stem=dataclasses.replace(arch.stem, kernel=3))))
    assert any("in_channels" in v for v in space.violations(dataclasses.replace(arch, in_channels=3)))
    model = pytorch.build(arch).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 1, 32, 32))
    c = costs(arch)
    assert counter.get_total_flops() // 2 == c.macs_with_classifier and sum(p.numel() for p in model.parameters()) == c.params_with_classifier
