"""Design spaces, presets and the independent check of a design against a problem.

* presets: each preset states the published DeepMAD problem (budgets, rho0,
  block, strides, head, resolution), and the published structure of the same
  name, snapped to the preset's grids, lies in the preset's space;
* :class:`DesignSpace`: validation names the bad field; the inner-width grid
  follows TinyNAS's ``smart_round``; ``violations`` names each broken space
  rule; ``designs`` enumerates the space exactly, in a fixed order;
* :meth:`Problem.check`: every kind of violation is reported by its name and
  the objective is the scoring's.
"""

from __future__ import annotations

import dataclasses

import pytest

from deepmad import Architecture, Head, InputError, Scoring, Stage, Stem, costs, score
from deepmad.model import tinynas
from deepmad.problem.presets import PRESETS, PUBLISHED_FILES, preset
from deepmad.problem.problem import Check, Problem, Violation
from deepmad.problem.space import DesignSpace, smart_round, snap

from conftest import PUBLISHED

# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------

#: The published DeepMAD problems: (FLOPs budget, params budget, rho0, block, head, strides, resolution).
EXPECTED_PRESETS = {
    "deepmad-r18": (1.82e9, 11.69e6, 0.3, "bottleneck", None, (2, 2, 2, 1, 2), 224),
    "deepmad-r34": (3.68e9, 21.80e6, 0.3, "bottleneck", None, (2, 2, 2, 1, 2), 224),
    "deepmad-r50": (4.13e9, 25.55e6, 0.3, "bottleneck", None, (2, 2, 2, 1, 2), 224),
    "deepmad-29m-224": (4.5e9, 29e6, 0.5, "inverted_residual_se", 1792, (1, 2, 2, 2, 2), 224),
    "deepmad-29m-288": (4.5e9, 29e6, 0.5, "inverted_residual_se", 1792, (2, 2, 2, 1, 2), 288),
    "deepmad-50m": (8.7e9, 50e6, 0.5, "inverted_residual_se", 2048, (2, 2, 2, 2, 1), 224),
    "deepmad-89m": (15.4e9, 89e6, 0.5, "inverted_residual_se", 2560, (2, 2, 2, 2, 1), 224),
}

#: Budgets the snapped published structures break (tinynas counting, classifier excluded).
#: Known facts, not defects of the presets:
#: * the published deepmad-R18 is already on the grid and counts 1,837,323,208
#:   tinynas FLOPs, above its 1.82e9 budget;
#: * the published 29M structures are within 4.5e9 as published, but their odd
#:   widths (85, 134, 201, ...) rounded up to multiples of 8 push them over.
KNOWN_OVER_BUDGET = {
    "deepmad-r18": {"flops"},
    "deepmad-29m-224": {"flops"},
    "deepmad-29m-288": {"flops"},
}

R18_TINYNAS_FLOPS = 1_837_323_208


def published(name: str) -> Architecture:
    problem = PRESETS[name]
    return tinynas.load(PUBLISHED / PUBLISHED_FILES[name], resolution=problem.space.resolution)


def test_every_preset_is_listed_and_has_a_published_file():
    assert set(PRESETS) == set(EXPECTED_PRESETS)
    assert set(PUBLISHED_FILES) == set(PRESETS)
    for name in PRESETS:
        assert (PUBLISHED / PUBLISHED_FILES[name]).is_file(), name


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_preset_states_the_published_problem(name):
    flops, params, rho, block, head, strides, resolution = EXPECTED_PRESETS[name]
    problem = preset(name)
    assert problem is PRESETS[name]
    assert problem.name == name
    assert problem.flops == flops
    assert problem.params == params
    assert problem.rho == rho
    assert problem.flops_convention == "tinynas"
    space = problem.space
    assert space.block == block
    assert space.head == head
    assert space.strides == strides
    assert space.stem_stride == 2
    assert space.resolution == resolution
    assert len(space.depths) == 5
    # DeepMAD's scoring: alpha (1, 1, 1, 1, 8), beta 10.
    assert problem.scoring.beta == 10
    assert score(space.skeleton(), problem.scoring).alpha == (1, 1, 1, 1, 8)


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_preset_strides_head_and_block_are_the_published_structures(name):
    arch = published(name)
    space = PRESETS[name].space
    assert tuple(s.stride for s in arch.stages) == space.strides
    assert arch.stem.stride == space.stem_stride
    assert (arch.head.channels if arch.head else None) == space.head
    assert {s.block for s in arch.stages} == {space.block}


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_snapped_published_structure_lies_in_the_preset_space(name):
    problem = PRESETS[name]
    snapped = snap(published(name), problem.space)
    assert problem.space.violations(snapped) == []
    assert problem.space.contains(snapped)

    check = dataclasses.replace(problem, nondecreasing=False).check(snapped)
    assert {v.name for v in check.violations} <= {"flops", "params"}
    assert {v.name for v in check.violations} == KNOWN_OVER_BUDGET.get(name, set())
    for v in check.violations:
        assert v.value > v.limit == getattr(problem, v.name)


#: The reference spaces' rules, as TinyNAS's mutators enforce them (deepmad.problem.presets.REFERENCE_RULES).
REFERENCE_FIELDS = {
    "bottleneck": dict(kernels=(3, 5), channels=(8, 2048), stem_channels=(8, 32), inner_ratio=(0.1, 1.0), max_growth=4.0,
                       stem_growth=4.0, channel_step=8, inner_step=8),
    "inverted_residual_se": dict(kernels=(3, 5, 7), channels=(8, 1280), stem_channels=(16, 32), inner_ratio=(1.5, 6.0),
                                 max_growth=None, stem_growth=None, channel_step=8, inner_step=8),
}
#: Where the published structures lie outside their reference spaces (rules they break once snapped).
PUBLISHED_OUTSIDE_REFERENCE = {
    "deepmad-r18": [],
    "deepmad-r34": ["stages[0].channels: 128 is more than 4 x its input 24"],
    "deepmad-r50": [],
    "deepmad-29m-224": ["widths off the grid of 8", "stem.channels: 40 is not in (16, 32) on the grid of 8"],
    "deepmad-29m-288": ["widths off the grid of 8", "stem.channels: 40 is not in (16, 32) on the grid of 8",
                        "stages[0].depth: 4 is not in (1, 3)"],
    "deepmad-50m": ["widths off the grid of 8", "stem.channels: 48 is not in (16, 32) on the grid of 8",
                    "stages[0].depth: 7 is not in (1, 3)"],
    "deepmad-89m": ["widths off the grid of 8", "stem.channels: 56 is not in (16, 32) on the grid of 8",
                    "stages[0].depth: 10 is not in (1, 3)"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_reference_space_is_the_wide_problem_with_tinynas_rules(name):
    from deepmad.problem.presets import published_outside

    wide, ref = preset(name), preset(name, space="reference")
    assert ref.name == f"{name}-reference" and preset(name.upper(), space="reference") is ref
    # the same problem (budgets, rules, scoring, strides, head, resolution) ...
    assert dataclasses.replace(ref, space=wide.space, name=wide.name) == wide
    # ... in TinyNAS's space: at most 3 blocks in the first stage, the other stages' depths kept
    sp = ref.space
    assert sp.depths == ((1, 3), *wide.space.depths[1:])
    assert {f: getattr(sp, f) for f in REFERENCE_FIELDS[sp.block]} == REFERENCE_FIELDS[sp.block]
    assert (sp.block, sp.strides, sp.head, sp.resolution) == (wide.space.block, wide.space.strides, wide.space.head, wide.space.resolution)
    assert published_outside(name, PUBLISHED) == PUBLISHED_OUTSIDE_REFERENCE[name]


def test_an_unknown_space_names_the_choices():
    with pytest.raises(InputError, match="--space: must be one of wide, reference, got 'narrow'"):
        preset("deepmad-r18", space="narrow")


def _small_reference(block: str) -> DesignSpace:
    """A space small enough for brute force whose rules are a reference space's, each able to bind:
    at most 3 blocks in the first stage, the reference kernels and inner ratios, the widening limits."""
    small = dict(channels=(8, 48), stem_channels=(8, 16)) if block == "bottleneck" else dict(channels=(8, 24), stem_channels=(16, 16))
    rules = dict(REFERENCE_FIELDS[block], **small)
    return DesignSpace(block=block, resolution=32, strides=(2, 2), depths=((1, 3), (1, 2)), **rules)


@pytest.mark.slow
@pytest.mark.parametrize("block", ["bottleneck", "inverted_residual_se"])
def test_designs_in_a_reference_space_obey_its_rules_and_are_brute_forces(block):
    from deepmad.solvers import solve
    from deepmad.solvers.checks import bruteforce

    space = _small_reference(block)
    flops = 3e6 if block == "bottleneck" else 1.5e6
    problem = Problem(space, flops=flops, params=60e3, rho=0.6)
    best = bruteforce.solve(problem)
    for method in ("milp", "large"):
        found = solve(problem, method=method, time_limit=60)
        arch = found.architecture
        assert found.status == "optimal" and found.objective == pytest.approx(best.objective, rel=1e-6), method
        assert space.violations(arch) == [] and problem.check(arch).feasible
        assert all(s.kernel in space.kernels for s in arch.stages) and arch.stages[0].depth <= 3
        assert all(space.inner_ratio[0] * s.channels - 4 <= s.inner <= space.inner_ratio[1] * s.channels + 4 for s in arch.stages)
        if space.max_growth is not None:
            widths = [arch.stem.channels, *(s.channels for s in arch.stages)]
            assert all(b <= 4 * a for a, b in zip(widths, widths[1:]))


def test_published_r18_exceeds_its_flops_budget_by_tinynas_counting():
    """A documented fact: deepmad-R18 as published counts 1,837,323,208 tinynas FLOPs > 1.82e9."""
    problem = PRESETS["deepmad-r18"]
    arch = published("deepmad-r18")
    assert snap(arch, problem.space) == arch  # already on the grid
    assert costs(arch).flops_tinynas == R18_TINYNAS_FLOPS
    check = dataclasses.replace(problem, nondecreasing=False).check(arch)
    assert check.flops == R18_TINYNAS_FLOPS
    assert [(v.name, v.value, v.limit) for v in check.violations] == [("flops", R18_TINYNAS_FLOPS, 1.82e9)]
    assert "1,837,323,208" in check.violations[0].message or "1.83732e+09" in check.violations[0].message


@pytest.mark.parametrize("name", ["deepmad-29m-224", "deepmad-29m-288"])
def test_published_29m_structures_meet_the_budget_before_snapping(name):
    problem = PRESETS[name]
    check = dataclasses.replace(problem, nondecreasing=False).check(published(name))
    assert [v.name for v in check.violations if v.name in ("flops", "params", "rho")] == []


@pytest.mark.parametrize("name", ["deepmad-r19", "DEEPMAD-R19", "deepmad-50n"])
def test_unknown_preset_suggests_close_names(name):
    with pytest.raises(InputError) as info:
        preset(name)
    assert "did you mean" in info.value.message
    assert name in info.value.message
    if "r19" in name.lower():
        assert "deepmad-r18" in info.value.message
    else:
        assert "deepmad-50m" in info.value.message


def test_unknown_preset_without_close_names_lists_all():
    with pytest.raises(InputError) as info:
        preset("zzz")
    assert "did you mean" not in info.value.message
    for name in PRESETS:
        assert name in info.value.message


def test_preset_names_are_case_insensitive():
    assert preset("DeepMAD-R18") is PRESETS["deepmad-r18"]


# ---------------------------------------------------------------------------
# DesignSpace validation
# ---------------------------------------------------------------------------


def space(**kw) -> DesignSpace:
    fields = dict(
        block="bottleneck",
        resolution=64,
        strides=(2, 2),
        depths=((1, 2), (1, 3)),
        stem_channels=(16, 32),
        channels=(16, 64),
        kernels=(3, 5),
    ) | kw
    return DesignSpace(**fields)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"block": "resnet"}, "block"),
        ({"depths": ((1, 2),)}, "depths"),
        ({"depths": ((1, 2), (1, 2), (1, 2))}, "depths"),
        ({"depths": ((0, 2), (1, 3))}, "depths[0]"),
        ({"depths": ((1, 2), (3, 2))}, "depths[1]"),
        ({"kernels": (3, 4)}, "kernels"),
        ({"kernels": (2,)}, "kernels"),
        ({"kernels": ()}, "kernels"),
        ({"kernels": (-3,)}, "kernels"),
        ({"channels": (1, 7)}, "channels"),
        ({"channels": (33, 39)}, "channels"),
        ({"stem_channels": (9, 15)}, "channels"),
        ({"channels": (64, 16)}, "channels"),
        ({"channels": (0, 16)}, "channels"),
        ({"stem_channels": (32, 16)}, "stem_channels"),
        ({"inner_ratio": (1.0, 0.5)}, "inner_ratio"),
        ({"inner_ratio": (0.0, 0.5)}, "inner_ratio"),
        ({"strides": ()}, "strides"),
        ({"strides": (2, 3)}, "stride"),
        ({"resolution": 30}, "resolution"),
    ],
)
def test_space_validation_names_the_field(kw, field):
    if kw.get("strides") == ():
        kw = kw | {"depths": ()}
    with pytest.raises(InputError) as info:
        space(**kw)
    assert info.value.field == field, info.value


def test_space_normalises_its_fields():
    s = space(kernels=[5, 3, 5], strides=[2, 2], depths=[[1, 2], [1, 3]])
    assert s.kernels == (3, 5)
    assert s.strides == (2, 2)
    assert s.depths == ((1, 2), (1, 3))
    assert s.inner_ratio == (0.1, 1.0)  # the block type's TinyNAS range
    assert space(block="inverted_residual").inner_ratio == (1.5, 6.0)


def test_grids():
    s = space(channels=(10, 50), stem_channels=(16, 16))
    assert s.channel_grid() == (16, 24, 32, 40, 48)
    assert s.stem_grid() == (16,)
    assert space(channels=(1, 8)).channel_grid() == (8,)


# ---------------------------------------------------------------------------
# smart_round and the inner-width grid
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, step, expected",
    [(123.2, 8, 120), (0.8, 8, 8), (0.0, 8, 8), (12.0, 8, 16), (11.9, 8, 8), (20.1, 8, 24), (96.0, 8, 96), (100.0, 16, 96)],
)
def test_smart_round(x, step, expected):
    assert smart_round(x, step) == expected


@pytest.mark.parametrize(
    "channels, ratio, expected",
    [
        # TinyNAS: c = 1232 at ratio 0.1 allows 120, below 123.2 = 0.1 * c.
        (1232, (0.1, 1.0), tuple(range(120, 1233, 8))),
        (40, (0.1, 1.0), (8, 16, 24, 32, 40)),  # 4 rounds to 0 steps, at least one step: 8
        (8, (0.1, 1.0), (8,)),
        (64, (1.5, 6.0), tuple(range(96, 385, 8))),
        (40, (1.5, 6.0), tuple(range(64, 241, 8))),  # 60 -> 64
        (16, (1.5, 3.0), (24, 32, 40, 48)),
        (32, (1.5, 3.0), tuple(range(48, 97, 8))),
        (100, (0.25, 0.5), (24, 32, 40, 48)),  # 25 -> 24, 50 -> 48
    ],
)
def test_inner_grid_follows_tinynas_smart_round(channels, ratio, expected):
    s = space(block="inverted_residual" if ratio[0] > 1 else "bottleneck", inner_ratio=ratio, channels=(8, 2048))
    assert s.inner_grid(channels) == expected


def test_inner_grid_respects_the_inner_step():
    s = space(inner_step=16, inner_ratio=(0.1, 1.0))
    assert s.inner_grid(1232) == tuple(range(128, 1233, 16))  # 123.2 / 16 = 7.7 -> 8 steps


# ---------------------------------------------------------------------------
# Membership: violations
# ---------------------------------------------------------------------------


def member(**changes) -> Architecture:
    """A design of ``space()``; ``changes`` replace top-level fields or ``stage0``/``stage1`` fields."""
    s0 = dict(block="bottleneck", channels=32, inner=16, kernel=3, depth=2, stride=2) | changes.pop("stage0", {})
    s1 = dict(block="bottleneck", channels=64, inner=32, kernel=5, depth=3, stride=2) | changes.pop("stage1", {})
    fields = dict(stem=Stem(16), stages=(Stage(**s0), Stage(**s1)), head=None, resolution=64) | changes
    return Architecture(**fields)


def test_member_is_in_the_space():
    assert space().violations(member()) == []
    assert space().contains(member())


@pytest.mark.parametrize(
    "arch, prefix",
    [
        (member(stage0={"channels": 36}), "stages[0].channels: 36 is not in"),
        (member(stage1={"channels": 72, "inner": 64}), "stages[1].channels: 72 is not in"),
        (member(stage0={"inner": 40}), "stages[0].inner: 40 is not in"),
        (member(stage0={"inner": 12}), "stages[0].inner: 12 is not in"),
        (member(stage1={"kernel": 7}), "stages[1].kernel: 7 is not in"),
        (member(stage0={"depth": 3}), "stages[0].depth: 3 is not in"),
        (member(stage1={"depth": 4}), "stages[1].depth: 4 is not in"),
        (member(stem=Stem(20)), "stem.channels: 20"),
        (member(stem=Stem(40)), "stem.channels: 40"),
        (member(stem=Stem(16, kernel=5)), "stem.kernel"),
        (member(stage1={"stride": 1}), "strides:"),
        (member(stem=Stem(16, stride=1)), "strides:"),
        (member(head=Head(128)), "head:"),
        (member(resolution=128), "resolution:"),
        (member(stage0={"block": "basic"}, stage1={"block": "basic"}), "block:"),
    ],
)
def test_violations_name_each_broken_rule(arch, prefix):
    found = space().violations(arch)
    assert len(found) == 1, found
    assert found[0].startswith(prefix), found
    assert not space().contains(arch)


def test_growth_rule_between_stages_and_from_the_stem():
    s = space(channels=(8, 64))
    # stage 1 more than 4x stage 0
    found = s.violations(member(stage0={"channels": 8, "inner": 8}, stage1={"channels": 40, "inner": 32}))
    assert len(found) == 1 and found[0].startswith("stages[1].channels: 40 is more than 4 x its input 8"), found
    # exactly 4x is allowed
    assert s.violations(member(stage0={"channels": 16, "inner": 8}, stage1={"channels": 64, "inner": 32})) == []
    # stage 0 more than 4x the stem
    s = space(channels=(8, 128), stem_channels=(16, 16))
    found = s.violations(member(stage0={"channels": 72, "inner": 64}, stage1={"channels": 72, "inner": 64}))
    assert len(found) == 1 and found[0].startswith("stages[0].channels: 72 is more than 4 x its input 16"), found
    # switched off
    s = space(channels=(8, 128), stem_growth=None, max_growth=None)
    assert s.violations(member(stage0={"channels": 72, "inner": 64}, stage1={"channels": 72, "inner": 64})) == []
    assert s.violations(member(stage0={"channels": 8, "inner": 8}, stage1={"channels": 128, "inner": 64})) == []


def test_violations_lists_every_broken_rule():
    arch = member(stem=Stem(20), stage0={"kernel": 7, "depth": 3}, stage1={"inner": 72}, resolution=128)
    found = space().violations(arch)
    starts = sorted(f.split(":")[0] for f in found)
    assert starts == ["resolution", "stages[0].depth", "stages[0].kernel", "stages[1].inner", "stem.channels"]


# ---------------------------------------------------------------------------
# Enumeration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        dict(block="bottleneck", channels=(16, 32), stem_channels=(16, 24)),
        dict(block="basic", channels=(8, 24), stem_channels=(8, 16), strides=(1, 2), depths=((1, 1), (2, 3))),
        dict(block="inverted_residual", channels=(8, 16), inner_ratio=(1.5, 3.0), kernels=(3,)),
        dict(block="inverted_residual_se", channels=(16, 24), inner_ratio=(2.0, 3.0), head=32, strides=(2,), depths=((1, 3),)),
    ],
)
def test_designs_enumerate_the_space_exactly_when_growth_does_not_bind(kw):
    s = space(**kw)
    designs = list(s.designs())
    assert len(designs) == s.size()
    assert len(set(designs)) == len(designs)
    assert all(s.violations(a) == [] for a in designs)
    # A fixed order: the same list again, and the size by hand.
    assert list(s.designs()) == designs
    per_stage = [sum(len(s.inner_grid(c)) for c in s.channel_grid()) * len(s.kernels) * (hi - lo + 1) for lo, hi in s.depths]
    expected = len(s.stem_grid())
    for n in per_stage:
        expected *= n
    assert s.size() == expected


def test_size_by_hand():
    # bottleneck (0.1, 1.0): c=16 -> inner 8, 16; c=24 -> 8, 16, 24: 5 (c, b) pairs
    s = space(channels=(16, 24), stem_channels=(16, 16), kernels=(3,), depths=((1, 1), (1, 2)))
    assert s.size() == 1 * (5 * 1 * 1) * (5 * 1 * 2)


def test_designs_skip_exactly_the_designs_that_break_the_growth_rule():
    bound = space(channels=(8, 48), stem_channels=(8, 16), kernels=(3,), depths=((1, 1), (1, 2)))
    free = dataclasses.replace(bound, max_growth=None, stem_growth=None)
    designs = list(bound.designs())
    everything = list(free.designs())
    assert len(everything) == free.size() == bound.size()
    expected = [a for a in everything if bound.contains(a)]
    assert designs == expected
    assert 0 < len(designs) < bound.size()


def test_designs_use_the_space_fields():
    s = space(block="inverted_residual_se", inner_ratio=(2.0, 2.0), channels=(16, 16), stem_channels=(16, 16),
              kernels=(5,), depths=((2, 2), (1, 1)), head=64, strides=(1, 2), resolution=32)
    (only,) = list(s.designs())
    assert only == Architecture(
        stem=Stem(16),
        stages=(Stage("inverted_residual_se", 16, 32, 5, 2, 1), Stage("inverted_residual_se", 16, 32, 5, 1, 2)),
        head=Head(64),
        resolution=32,
    )


def test_snap_rounds_widths_up_and_keeps_the_rest():
    arch = Architecture(
        stem=Stem(20, stride=2),
        stages=(Stage("bottleneck", 33, 9, 5, 2, 2), Stage("bottleneck", 64, 17, 3, 1, 2)),
        head=Head(100),
        resolution=64,
        num_classes=7,
        name="x",
    )
    out = snap(arch, space(inner_step=16))
    assert out.stem == Stem(24, 3, 2)
    assert out.stages == (Stage("bottleneck", 40, 16, 5, 2, 2), Stage("bottleneck", 64, 32, 3, 1, 2))
    assert out.head == Head(100) and out.resolution == 64 and out.num_classes == 7 and out.name == "x"
    assert snap(out, space(inner_step=16)) == out


# ---------------------------------------------------------------------------
# Problem.check
# ---------------------------------------------------------------------------


def design(widths=(32, 64), depths=(2, 3), kernels=(3, 5), inners=(16, 32), stem=16, head=None, block="bottleneck") -> Architecture:
    return Architecture(
        stem=Stem(stem),
        stages=tuple(Stage(block, c, b, k, d, 2) for c, b, k, d in zip(widths, inners, kernels, depths)),
        head=Head(head) if head else None,
        resolution=64,
    )


def names(check: Check) -> list[str]:
    return [v.name for v in check.violations]


def test_check_counts_and_scores_independently():
    arch = design()
    c, s = costs(arch), score(arch)
    check = Problem(space()).check(arch)
    assert check == Check(c.flops_tinynas, c.params, s.rho, s.layers, s.objective, ())
    assert check.feasible
    macs = Problem(space(), flops_convention="macs").check(arch)
    assert macs.flops == c.macs and macs.params == c.params


@pytest.mark.parametrize(
    "scoring",
    [Scoring(), Scoring(beta=0.0), Scoring(beta=3.5, penalty_stages=(0,)), Scoring(alpha=(2.0, 0.5, 1.0)), Scoring(resolution=128)],
)
def test_check_objective_is_the_scoring_objective(scoring):
    for arch in (design(), design(depths=(1, 3)), design(widths=(64, 32), inners=(32, 16))):
        check = Problem(space(), scoring=scoring).check(arch)
        assert check.objective == score(arch, scoring).objective
        assert check.rho == score(arch, scoring).rho


@pytest.mark.parametrize("convention, attr", [("tinynas", "flops_tinynas"), ("macs", "macs")])
def test_check_flops_in_both_conventions(convention, attr):
    arch = design()
    counted = getattr(costs(arch), attr)
    at = Problem(space(), flops=counted, flops_convention=convention).check(arch)
    assert at.feasible and at.flops == counted
    over = Problem(space(), flops=counted - 1, flops_convention=convention).check(arch)
    assert [(v.name, v.value, v.limit) for v in over.violations] == [("flops", counted, counted - 1)]
    assert over.violations[0].message.startswith("flops:")


def test_check_conventions_differ():
    arch = design()
    c = costs(arch)
    assert c.macs < c.flops_tinynas
    budget = (c.macs + c.flops_tinynas) / 2
    assert names(Problem(space(), flops=budget).check(arch)) == ["flops"]
    assert names(Problem(space(), flops=budget, flops_convention="macs").check(arch)) == []


def test_check_params():
    arch = design()
    p = costs(arch).params
    assert Problem(space(), params=p).check(arch).feasible
    check = Problem(space(), params=p - 1).check(arch)
    assert [(v.name, v.value, v.limit) for v in check.violations] == [("params", p, p - 1)]


def test_check_rho():
    arch = design()
    rho = score(arch).rho
    assert Problem(space(), rho=rho).check(arch).feasible
    check = Problem(space(), rho=rho * 0.99).check(arch)
    assert [(v.name, v.value) for v in check.violations] == [("rho", rho)]
    assert check.violations[0].limit == rho * 0.99


def test_check_layers():
    arch = design()
    layers = score(arch).layers
    assert layers == 1 + 3 * (2 + 3)
    assert Problem(space(), max_layers=layers).check(arch).feasible
    check = Problem(space(), max_layers=layers - 1).check(arch)
    assert [(v.name, v.value, v.limit) for v in check.violations] == [("layers", layers, layers - 1)]


def test_check_nondecreasing():
    arch = design(widths=(64, 32), inners=(32, 16))
    check = Problem(space()).check(arch)
    assert [(v.name, v.value, v.limit) for v in check.violations] == [("nondecreasing", 32, 64)]
    assert check.violations[0].message.startswith("stages[1].channels")
    assert Problem(space(), nondecreasing=False).check(arch).feasible
    # the stem is not a stage: a stem wider than stage 0 is allowed
    assert Problem(space(), nondecreasing=True).check(design(stem=32, widths=(16, 32), inners=(8, 16))).feasible


def test_check_depth_spread():
    arch = design(depths=(1, 3))
    assert Problem(space()).check(arch).feasible  # the penalty alone does not forbid
    assert Problem(space(), max_depth_spread=2).check(arch).feasible
    check = Problem(space(), max_depth_spread=1).check(arch)
    assert [(v.name, v.value, v.limit) for v in check.violations] == [("depth_spread", 2, 1)]
    # only the penalty's stages count
    only_last = Scoring(penalty_stages=(1,))
    assert Problem(space(), max_depth_spread=1, scoring=only_last).check(arch).feasible


def test_depth_spread_zero_means_equal_depths():
    problem = Problem(space(), max_depth_spread=0)
    assert problem.check(design(depths=(2, 2))).feasible
    assert names(problem.check(design(depths=(2, 3)))) == ["depth_spread"]


def test_check_space():
    arch = design(kernels=(7, 5))
    check = Problem(space()).check(arch)
    assert names(check) == ["space"]
    assert check.violations[0].message == space().violations(arch)[0]
    assert check.violations[0].message.startswith("stages[0].kernel")


def test_check_lists_every_violation():
    arch = design(widths=(64, 32), inners=(32, 16), depths=(1, 3), kernels=(7, 3))
    c, s = costs(arch), score(arch)
    problem = Problem(
        space(), flops=c.flops_tinynas - 1, params=c.params - 1, rho=s.rho / 2, max_layers=s.layers - 1, max_depth_spread=1
    )
    check = problem.check(arch)
    assert names(check) == ["flops", "params", "rho", "layers", "nondecreasing", "depth_spread", "space"]
    assert not check.feasible
    assert all(isinstance(v, Violation) for v in check.violations)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"flops": 0}, "flops"),
        ({"flops": -1.0}, "flops"),
        ({"params": float("nan")}, "params"),
        ({"rho": float("inf")}, "rho"),
        ({"rho": True}, "rho"),
        ({"max_layers": 0}, "max_layers"),
        ({"max_depth_spread": -1}, "max_depth_spread"),
        ({"flops_convention": "fvcore"}, "flops_convention"),
    ],
)
def test_problem_validation_names_the_field(kw, field):
    with pytest.raises(InputError) as info:
        Problem(space(), **kw)
    assert info.value.field == field
