"""The second exact path (the nonlinear program of :mod:`deepmad.scip` on SCIP) against the MILP and brute force.

SCIP's statement is written from the spec, not from the accounting, so three
independent answers must agree: brute force (optimal by enumeration), the
MILP on HiGHS and SCIP, on the status and, when a design exists, on the
optimum.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from deepmad import BLOCK_TYPES, Architecture, DeepmadError, Head, InputError, Scoring, Stage, Stem, costs, score
from deepmad.problem.problem import Problem
from deepmad.problem.space import DesignSpace
from deepmad.solution import Solution
from deepmad.solvers import solve as milp_solve
from deepmad.solvers.checks import bruteforce, scip

BLOCKS = sorted(BLOCK_TYPES)
SIZE_CAP = int(os.environ.get("DEEPMAD_SCIP_SIZE_CAP", "1500"))
EXAMPLES = int(os.environ.get("DEEPMAD_SCIP_EXAMPLES", "15"))
REL = 1e-6


def rel_close(a: float, b: float, rel: float = REL) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def assert_three_agree(problem: Problem, brute: Solution | None = None) -> tuple[Solution, Solution, Solution]:
    """Brute force, the MILP and SCIP give the same status and optimum; SCIP's design is checked and proven."""
    brute = brute or bruteforce.solve(problem)
    milp = milp_solve(problem, time_limit=60)
    nlp = scip.solve(problem, time_limit=60)
    assert nlp.method == "scip"
    assert brute.status in ("optimal", "infeasible")
    assert (brute.status, milp.status, nlp.status) == (brute.status,) * 3, (problem, brute, milp, nlp)
    if brute.status == "infeasible":
        assert nlp.architecture is None and nlp.check is None and nlp.objective is None
        return brute, milp, nlp
    assert rel_close(milp.objective, brute.objective), ("MILP", problem, milp.architecture, brute.architecture)
    assert rel_close(nlp.objective, brute.objective), ("SCIP", problem, nlp.objective, brute.objective, nlp.architecture, brute.architecture)
    check = problem.check(nlp.architecture)
    assert check.violations == () and check == nlp.check
    assert nlp.architecture.name == problem.name
    assert nlp.bound >= nlp.objective and nlp.gap <= 1e-8
    return brute, milp, nlp


# ---------------------------------------------------------------------------
# Random tiny problems
# ---------------------------------------------------------------------------


def _shrink(space: DesignSpace) -> DesignSpace:
    """Narrow ``space`` until brute force enumerates it quickly: channels, then kernels, stem, depths."""
    while space.size() > SIZE_CAP:
        lo, hi = space.channels
        if hi > lo:
            space = dataclasses.replace(space, channels=(lo, hi - space.channel_step))
        elif len(space.kernels) > 1:
            space = dataclasses.replace(space, kernels=space.kernels[:1])
        elif space.stem_channels[1] > space.stem_channels[0]:
            space = dataclasses.replace(space, stem_channels=(space.stem_channels[0],) * 2)
        else:
            widest = max(range(len(space.depths)), key=lambda j: space.depths[j][1] - space.depths[j][0])
            lo_d, hi_d = space.depths[widest]
            depths = list(space.depths)
            depths[widest] = (lo_d, hi_d - 1)
            space = dataclasses.replace(space, depths=tuple(depths))
    return space


@st.composite
def tiny_spaces(draw) -> DesignSpace:
    block = draw(st.sampled_from(BLOCKS))
    n = draw(st.integers(1, 3))
    inner_range = BLOCK_TYPES[block].inner_range
    inverted = inner_range is not None and inner_range[1] > 1  # expanding blocks
    lo = draw(st.sampled_from((8, 16)))
    return _shrink(
        DesignSpace(
            block=block,
            resolution=32,
            strides=tuple(draw(st.sampled_from((1, 2))) for _ in range(n)),
            depths=tuple(tuple(sorted((draw(st.integers(1, 3)), draw(st.integers(1, 3))))) for _ in range(n)),
            stem_channels=draw(st.sampled_from(((8, 8), (8, 16), (16, 16)))),
            channels=(lo, draw(st.sampled_from([c for c in (8, 16, 24, 32) if c >= lo]))),
            kernels=draw(st.sampled_from(((3, 5), (3,), (5,)))),
            head=draw(st.sampled_from((None, 32))) if inverted else None,
            inner_ratio=(1.5, 3.0) if inverted else None if inner_range is None else draw(st.sampled_from((None, (0.5, 1.0)))),
            max_growth=draw(st.sampled_from((4.0, 2.0))),
            stem_growth=draw(st.sampled_from((4.0, 2.0, None))),
        )
    )


@st.composite
def tiny_problems(draw) -> tuple[Problem, Solution]:
    """A tiny problem with budgets as fractions of its unconstrained optimum, and its brute-force solution."""
    space = draw(tiny_spaces())
    free = Problem(
        space,
        flops_convention=draw(st.sampled_from(("tinynas", "macs"))),
        nondecreasing=draw(st.booleans()),
        max_depth_spread=draw(st.sampled_from((None, None, 1))),
        name="tiny",
    )
    reference = bruteforce.solve(free)
    assume(reference.status == "optimal")  # guidelines alone leave no design: the MILP's diagnosis fails (known)
    ref = reference.check
    fraction = st.floats(0.3, 1.2, allow_nan=False)
    budgets = {}
    if draw(st.booleans()):
        budgets["flops"] = draw(fraction) * ref.flops
    if draw(st.booleans()):
        budgets["params"] = draw(fraction) * ref.params
    if draw(st.booleans()):
        # Away from the optimum's own rho: a budget at a design's rho is a tolerance edge.
        budgets["rho"] = draw(st.floats(0.3, 1.5, allow_nan=False).filter(lambda f: abs(f - 1) > 1e-3)) * ref.rho
    problem = dataclasses.replace(free, **budgets)
    return problem, bruteforce.solve(problem)


# Derandomized so that CI stays deterministic. CI on 2026-11-26 saw rare disagreements (a 1-stage
# basic space where SCIP reported infeasible, or 406.96 against brute force's 408.11; issue 3). A
# random run reproduced one (test_symmetric_stages_with_budgets_found_by_a_random_run): SCIP's
# reformulation of binary products returned a design over the budgets as optimal; with it off
# (deepmad/scip.py) 2,200 random examples agreed. The CI cases themselves were not recovered, so
# they are not proven to share that cause.
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(tiny_problems())
def test_scip_milp_and_brute_force_agree(case):
    problem, brute = case
    event(f"{problem.space.block}: {brute.status}")
    assert_three_agree(problem, brute)


# ---------------------------------------------------------------------------
# Hand-picked problems
# ---------------------------------------------------------------------------


def fixed_space(block: str, **kw) -> DesignSpace:
    inner_range = BLOCK_TYPES[block].inner_range
    inverted = inner_range is not None and inner_range[1] > 1  # expanding blocks
    args = dict(block=block, resolution=32, strides=(2, 1, 2), depths=((1, 2), (1, 2), (1, 2)), stem_channels=(16, 16),
                channels=(8, 16), kernels=(3, 5), inner_ratio=(1.5, 2.0) if inverted else None if inner_range is None else (0.5, 1.0),
                head=32 if inverted else None)
    args.update(kw)
    return DesignSpace(**args)


def free_optimum(problem: Problem):
    return bruteforce.solve(dataclasses.replace(problem, flops=None, params=None, rho=None, max_layers=None)).check


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("convention", ["tinynas", "macs"])
def test_tight_budgets(block, convention):
    free = Problem(fixed_space(block), flops_convention=convention)
    ref = free_optimum(free)
    problem = dataclasses.replace(free, flops=0.6 * ref.flops, params=0.7 * ref.params, rho=1.1 * ref.rho)
    brute, _, nlp = assert_three_agree(problem)
    assert brute.status == "optimal"
    assert nlp.check.flops <= problem.flops and nlp.check.params <= problem.params and nlp.check.rho <= problem.rho


@pytest.mark.parametrize("block", BLOCKS)
def test_dips_without_the_channel_guideline(block):
    """Without non-decreasing channels, narrow stages and width changes (shortcut rules) are in play."""
    space = fixed_space(block, strides=(2, 2, 2), channels=(8, 24), stem_channels=(16, 16), kernels=(3,), depths=((1, 2), (1, 2), (1, 2)))
    free = Problem(space, nondecreasing=False)
    ref = free_optimum(free)
    assert_three_agree(dataclasses.replace(free, flops=0.5 * ref.flops))


@pytest.mark.parametrize("block", BLOCKS)
def test_depth_spread_layers_and_scoring_options(block):
    scoring = Scoring(alpha=(2.0, 1.0, 4.0), beta=25.0, penalty_stages=(0, 2), resolution=64)
    free = Problem(fixed_space(block), max_depth_spread=1, scoring=scoring, name=f"opts-{block}")
    ref = free_optimum(free)
    problem = dataclasses.replace(free, max_layers=ref.layers - 2, params=0.8 * ref.params)
    _, _, nlp = assert_three_agree(problem)
    depths = [s.depth for s in nlp.architecture.stages]
    assert abs(depths[0] - depths[2]) <= 1


@pytest.mark.parametrize("block", BLOCKS)
def test_infeasible_budget(block):
    free = Problem(fixed_space(block))
    least = min(c.flops for c in map(free.check, free.space.designs()) if c.feasible)
    for flops in (least - 1, least):
        problem = dataclasses.replace(free, flops=flops)
        brute, _, nlp = assert_three_agree(problem)
        if flops < least:
            assert nlp.status == "infeasible" and nlp.shortfalls == () and nlp.bound == -math.inf
        else:
            assert nlp.status == "optimal" and nlp.check.flops == least  # a budget met exactly is met


def test_solving_twice_gives_the_same_design():
    free = Problem(fixed_space("inverted_residual_se"))
    ref = free_optimum(free)
    problem = dataclasses.replace(free, flops=0.7 * ref.flops, rho=1.2 * ref.rho)
    a, b = scip.solve(problem), scip.solve(problem)
    assert a.status == b.status == "optimal"
    assert a.architecture == b.architecture and a.check == b.check


def test_a_time_limit_stops_with_a_checked_design_or_an_error():
    """SCIP's run times are erratic: a run cut short returns a checked design with a valid bound, or says it has none."""
    free = Problem(fixed_space("inverted_residual_se", depths=((1, 3),) * 3, channels=(8, 32)))
    problem = dataclasses.replace(free, flops=4e5, rho=0.8)
    try:
        nlp = scip.solve(problem, time_limit=0.05)
    except DeepmadError as exc:
        assert "no feasible design" in str(exc)
        return
    assert nlp.status in ("time_limit", "optimal")
    assert problem.check(nlp.architecture).feasible and nlp.bound >= nlp.objective


def test_symmetric_stages_with_budgets_found_by_a_random_run():
    """Found by random tiny problems (issue 3): two symmetric stride-1 stages, where swapping the inner widths
    keeps the objective but not the costs. SCIP's reformulation of the binary products (``same_j``) let it
    return, as optimal, a design 41 % over the FLOPs budget ("internal error: SCIP's design breaks flops")."""
    space = DesignSpace(block="bottleneck", resolution=32, strides=(1, 1), depths=((2, 3), (2, 2)), stem_channels=(16, 16),
                        channels=(16, 16), kernels=(3, 5), head=None, inner_ratio=(0.5, 1.0), max_growth=2.0, stem_growth=2.0)
    problem = Problem(space, flops=3103402.6666666665, params=15590.479992051009, rho=0.5214444914877598,
                      flops_convention="tinynas", nondecreasing=False, name="tiny")
    brute, _, nlp = assert_three_agree(problem)
    assert brute.status == "optimal" and math.isclose(brute.objective, 1474.7716203436373, rel_tol=1e-9)
    assert nlp.check.flops <= problem.flops and nlp.check.params <= problem.params


@pytest.mark.parametrize("kw, field", [({"time_limit": 0}, "time_limit"), ({"time_limit": math.inf}, "time_limit"),
                                        ({"gap": 1.0}, "gap"), ({"gap": -1e-3}, "gap")])
def test_arguments_are_validated(kw, field):
    with pytest.raises(InputError) as info:
        scip.solve(Problem(fixed_space("basic")), **kw)
    assert info.value.field == field


# ---------------------------------------------------------------------------
# The statement, evaluated on numbers, is the accounting and the score
# ---------------------------------------------------------------------------


def _random_design(space: DesignSpace, rng: random.Random) -> Architecture:
    stages = []
    for (lo, hi), s in zip(space.depths, space.strides):
        c = rng.choice(space.channel_grid())
        stages.append(Stage(space.block, c, rng.choice(space.inner_grid(c)), rng.choice(space.kernels), rng.randint(lo, hi), s))
    return Architecture(Stem(rng.choice(space.stem_grid())), tuple(stages), Head(space.head) if space.head else None, resolution=space.resolution)


@pytest.mark.parametrize("block", BLOCKS)
def test_statement_is_the_accounting_and_the_score(block):
    """SCIP's formulas, written from the spec, give every design's costs, layers, rho and objective exactly."""
    rng = random.Random(block)
    inverted = block.startswith("inverted_residual")
    for strides in [(1,), (2, 1, 2, 2), (1, 2, 1, 2), (2, 2, 2, 2, 1)]:
        space = DesignSpace(block=block, resolution=64, strides=strides, depths=((1, 4),) * len(strides), stem_channels=(8, 24),
                            channels=(8, 48), kernels=(3, 5, 7), head=40 if inverted and len(strides) > 1 else None,
                            inner_ratio=(1.5, 4.0) if inverted else None, max_growth=None, stem_growth=None)
        assert [(lvl.last_stage, lvl.reduction) for lvl in space.skeleton().levels()] == scip.levels(Problem(space))
        for convention in ("tinynas", "macs"):
            scoring = Scoring(beta=rng.choice((0.0, 10.0)), resolution=rng.choice((None, 128)))
            problem = Problem(space, flops_convention=convention, scoring=scoring)
            for _ in range(40):
                arch = _random_design(space, rng)
                mine, c, s = scip.evaluate(problem, arch), costs(arch), score(arch, scoring)
                assert mine.flops == (c.flops_tinynas if convention == "tinynas" else c.macs)
                assert mine.params == c.params
                assert mine.layers == s.layers
                assert math.isclose(max(mine.rho()), s.rho, rel_tol=1e-12)
                assert math.isclose(mine.objective, s.objective, rel_tol=1e-12, abs_tol=1e-9)
                assert math.isclose(mine.penalty, s.penalty, rel_tol=1e-12)


def test_a_block_the_oracle_does_not_know_is_an_error_not_another_blocks_costs():
    with pytest.raises(ValueError, match="knows no block 'vgg'"):
        scip.block_costs("vgg", 16, 16, 16, 3, 0, 64, 64, stride=1, same=1, first=True)
    with pytest.raises(ValueError, match="knows no block 'vgg'"):
        scip.block_log_width("vgg", 1.0, 1.0, 1.0, 1.0, stride=1, first=True)
    with pytest.raises(ValueError, match="knows no block 'vgg'"):
        scip.block_layers("vgg", 1, True)


def test_the_oracle_reads_each_block_from_its_definition():
    """Layer widths (fan-ins) and layer counts follow the layouts: ln a + 2 ln b + 2 ln k for a bottleneck
    (1x1 a->b, kxk b->b, 1x1 b->c), ln a + 2 ln k for a plain conv, 2 ln k + ln a + ln b for a large-kernel block
    (depthwise on the input, 1x1 a->b, 1x1 b->c)."""
    la, lc, lb, lk = 1.0, 10.0, 100.0, 1000.0
    assert scip.block_log_width("bottleneck", la, lc, lb, lk, stride=2, first=True) == la + 2 * lb + 2 * lk
    assert scip.block_log_width("basic", la, lc, lb, lk, stride=2, first=True) == la + lb + 4 * lk
    assert scip.block_log_width("inverted_residual", la, lc, lb, lk, stride=2, first=True) == la + lb + 2 * lk
    assert scip.block_log_width("plain", la, lc, lb, lk, stride=2, first=True) == la + 2 * lk
    assert scip.block_log_width("large_kernel", la, lc, lb, lk, stride=2, first=True) == 2 * lk + la + lb
    assert [scip.block_layers(b, 1, False) for b in ("bottleneck", "basic", "inverted_residual_se", "plain", "large_kernel")] == [3, 2, 3, 1, 3]
