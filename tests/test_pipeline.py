"""The solvers as a user steers them: settings, work budgets (the same answer on every run), the
hard stop, and the engines kept on disk."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepmad import InputError
from deepmad.cli import main
from deepmad.problem.presets import preset
from deepmad.problem.problem import Problem
from deepmad.problem.space import DesignSpace
from deepmad.solvers import Settings, cache, colgen, engine_of, pipeline, solve
from deepmad.solvers.context import Context
from deepmad.solvers.engine import Engine
from deepmad.solvers.pipeline import STEPS, State
from deepmad.solvers.progress import Progress
from deepmad.solvers.rows import Program

SPACE = DesignSpace(block="bottleneck", resolution=64, strides=(2, 2, 2), depths=((1, 3),) * 3, stem_channels=(16, 32),
                    channels=(16, 128), kernels=(3, 5))
PROBLEM = Problem(SPACE, flops=3e7, params=3e5, rho=0.5)


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """An empty engine folder, and no engine held in this process."""
    monkeypatch.setenv("DEEPMAD_CACHE", str(tmp_path / "engines"))
    monkeypatch.setattr(cache, "_held", type(cache._held)())
    return tmp_path / "engines"


@pytest.mark.parametrize("field, value", [("search_share", 1.5), ("plan_share", 0.0), ("search_kicks", -1), ("dual_points", 0),
                                          ("cost_line", float("nan")), ("chain_solves", 2.5), ("node_solves", -1),
                                          ("survivors", True)])
def test_settings_refuse_a_bad_value_naming_the_field(field, value):
    with pytest.raises(InputError, match=f"settings.{field}"):
        Settings(**{field: value})


def test_settings_are_keyword_only_frozen_and_checked_by_solve():
    with pytest.raises(TypeError):
        Settings(0.5)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().plan_share = 0.9  # type: ignore[misc]
    with pytest.raises(InputError, match="settings"):
        solve(PROBLEM, settings={"plan_share": 0.5})  # type: ignore[arg-type]


def test_a_solve_compiles_no_kernel_beyond_what_it_compiles_before_its_steps():
    """In a fresh process (numba's disk cache aside), the kernels' compiled types after a
    large-space solve are those :func:`compile_kernels` gave them before its steps: a first solve
    after installing counts no compile time as a step's work."""
    code = """
import dataclasses, json, numba
from deepmad.hardware.latency import LatencyModel
from deepmad.solvers import kernels, solve
from deepmad.solvers.cache import engine_of
from deepmad.solvers.pricing import compile_kernels
from conftest import synthetic_table
from test_pipeline import PROBLEM
LATENCY = dataclasses.replace(PROBLEM, latency_model=LatencyModel.of(synthetic_table(PROBLEM)), latency=5.0)
def compiled():
    return {n: len(f.signatures) for n, f in vars(kernels).items() if isinstance(f, numba.core.registry.CPUDispatcher)}
for problem in (PROBLEM, LATENCY):
    compile_kernels(engine_of(problem))
    before = compiled()
    solve(problem, method="large", time_limit=1)
    print(json.dumps([before, compiled()]))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for line in done.stdout.split("\n")[-3:-1]:
        before, after = json.loads(line)
        assert before["envelopes"] >= 1 and before["undominated"] >= 1
        assert after == before


def test_below_branching_above_the_branch_and_bound_gives_its_share_to_the_widths_step():
    s = Settings()
    below = {step.name: step.share(s, 0.99 * s.branching_above) for step in STEPS}
    above = {step.name: step.share(s, s.branching_above) for step in STEPS}
    assert below["branching"] == 0.0 and above["branching"] == s.branching_share
    assert below["widths"] == pytest.approx(s.widths_share + s.branching_share) and above["widths"] == s.widths_share
    assert {k: v for k, v in below.items() if k not in ("branching", "widths")} == {k: v for k, v in above.items()
                                                                                  if k not in ("branching", "widths")}
    solution = solve(PROBLEM, method="large", time_limit=5, gap=0.0, settings=Settings(branching_above=100.0))
    assert "branching" not in solution.work


def test_the_widths_step_chooses_among_every_chain_a_pass_traced_and_solves_the_best_probed_first():
    """The chains the branch and bound's boxes trace join the dual's in the pool the widths step
    draws from; the widths step probes chains before it solves them, and the first chain it
    solves is the one of largest probed bound."""
    problem = preset("deepmad-r18")  # a space whose LP bound proves nothing soon
    engine = cache.engine_of(problem)
    context = Context(problem)
    program = Program(problem, context, colgen.layer_ranges(engine, context))
    state = State(problem, engine, context, program, Settings(), Progress(), math.inf, 1e-5)
    for step, work in zip(STEPS[:4], (0.3, 0.2, 0.5, 0.5)):  # search, own widths, column generation, dual
        step.run(state, work)
    traced = list(state.chains)
    pipeline.branching(state, 1.0)
    assert state.chains[:len(traced)] == traced and len(state.chains) > len(traced)

    events = []  # ("probe", chain, bound) and ("solve", chain), in order
    fixed = pipeline._fixed(state)
    probe, solve_ = fixed.probe, fixed.solve

    def probing(w, y, **kw):
        found = probe(w, y, **kw)
        events.append(("probe", w.values(engine), found[0]))
        return found

    def solving(w, **kw):
        events.append(("solve", w.values(engine)))
        return solve_(w, **kw)

    fixed.probe, fixed.solve = probing, solving
    floor = state.objective
    pipeline.widths(state, 1.0)
    first = next(i for i, e in enumerate(events) if e[0] == "solve")
    bounds = {e[1]: e[2] for e in events[:first] if e[2] > floor}
    assert events[0][0] == "probe" and bounds[events[first][1]] == max(bounds.values())


def test_own_widths_solves_the_incumbents_chain_then_the_searchs_other_local_optima_best_first():
    """The search keeps the feasible local optima its climbs reach, best first; the own-widths step
    solves the incumbent's width chain exactly, then theirs (each chain once) while its work lasts."""
    problem = preset("deepmad-r18")
    engine = cache.engine_of(problem)
    context = Context(problem)
    program = Program(problem, context, colgen.layer_ranges(engine, context))
    state = State(problem, engine, context, program, Settings(), Progress(), math.inf, 1e-5)
    pipeline.search(state, 0.3)
    objectives = [problem.check(a).objective for a in state.optima]
    assert objectives == sorted(objectives, reverse=True) and objectives[0] == state.objective
    chains = list(dict.fromkeys(pipeline._chain(a) for a in [state.design, *state.optima]))
    assert len(chains) >= 2
    solved = []
    fixed = pipeline._fixed(state)
    solve_ = fixed.solve

    def solving(w, **kw):
        solved.append(w.values(engine))
        return solve_(w, **kw)

    fixed.solve = solving
    pipeline.own_widths(state, 1.0)
    assert len(solved) >= 2 and solved == chains[:len(solved)]


def test_a_chains_neighbours_include_two_neighbouring_stages_made_equal():
    """Beside one- and two-step moves, a chain's neighbours include each pair of neighbouring stages
    whose widths differ set to either's width or to the grid width between them (deepmad-r18's best
    designs have equal widths in the stages of one scoring prefix)."""
    state = type("S", (), {"problem": PROBLEM})()
    grid = SPACE.channel_grid()
    chain = (16, grid[1], grid[3], grid[9])
    near = pipeline._neighbours(state, chain)
    for c in (grid[3], grid[9], grid[6]):
        assert (16, grid[1], c, c) in near
    for c in (grid[1], grid[3], grid[2]):
        assert (16, c, c, grid[9]) in near
    assert all(len(n) == len(chain) for n in near) and chain not in near


def test_the_work_planned_is_the_share_of_the_time_limit_settings_give_less_the_solves_start():
    """Each step reports the work it did (reference seconds); in all, about ``plan_share`` of the
    limit less the solve's start, whatever the machine's load; a step runs only where the steps
    before left a gap."""
    engine = engine_of(PROBLEM)
    for share in (0.1, 0.3):
        settings = Settings(plan_share=share, colgen_share=0.1)
        setup = settings.cost_setup + settings.cost_setup_line * sum(t.pairs * len(t.kernels) for t in engine.stages)
        plan = share * 10 - setup
        solution = solve(PROBLEM, method="large", time_limit=10, settings=settings)
        assert set(solution.work) <= {step.name for step in STEPS}
        assert list(solution.work) == [s.name for s in STEPS if s.name in solution.work]  # in the declared order
        assert 0.5 * plan <= sum(solution.work.values()) <= 1.1 * plan or solution.status == "optimal"
        assert solution.bound >= solution.objective and solution.check.feasible


def test_the_same_solve_gives_the_same_answer_from_a_built_and_a_stored_engine(own_cache):
    settings = Settings(plan_share=0.2)
    first = solve(PROBLEM, method="large", time_limit=10, settings=settings)
    assert len(list(own_cache.glob("*.npz"))) == 1
    cache._held.clear()  # the second solve reads the engine back from disk
    second = solve(PROBLEM, method="large", time_limit=10, settings=settings)
    assert second.architecture == first.architecture and second.bound == first.bound and second.work == first.work
    assert second.status == first.status


def _arrays(engine: Engine) -> dict[str, np.ndarray]:
    return cache._arrays(engine)


def test_a_stored_engine_is_the_built_one_and_a_damaged_file_is_rebuilt(own_cache):
    built = Engine.of(PROBLEM)
    stored = cache.engine_of(PROBLEM)
    (path,) = own_cache.glob("*.npz")
    cache._held.clear()
    read = cache.engine_of(PROBLEM)
    assert read is not stored and read.key == built.key
    for name, value in _arrays(built).items():
        assert np.array_equal(_arrays(read)[name], value), name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the digest (or the archive) refuses it
    path.write_bytes(bytes(data))
    cache._held.clear()
    rebuilt = cache.engine_of(PROBLEM)
    for name, value in _arrays(built).items():
        assert np.array_equal(_arrays(rebuilt)[name], value), name
    assert cache._read(PROBLEM) is not None  # written whole again


def test_an_engine_with_latency_is_stored_under_its_tables_digest(own_cache):
    from conftest import synthetic_table

    from deepmad.hardware.latency import LatencyModel
    from hwmodels.table import Row

    table = synthetic_table(PROBLEM)
    sparse = dataclasses.replace(table, rows=table.rows[::2])  # the learned model fills the lattice
    timed = dataclasses.replace(PROBLEM, latency_model=LatencyModel.of(sparse), latency=5.0)
    built = Engine.of(timed)
    cache.engine_of(timed)
    assert len(list(own_cache.glob("*.npz"))) == 1 and len(list((own_cache / "models").glob("*.txt"))) == 1
    cache._held.clear()
    again = dataclasses.replace(PROBLEM, latency_model=LatencyModel.of(sparse), latency=5.0)  # the same table, read anew
    read = cache.engine_of(again)
    assert read.stages[0].latency is not None
    for name, value in _arrays(built).items():
        assert np.array_equal(_arrays(read)[name], value), name
    for j, stage in enumerate(built.stages):
        for field in dataclasses.fields(stage.latency):
            assert np.array_equal(getattr(stage.latency, field.name), getattr(read.stages[j].latency, field.name)), (j, field.name)
    changed = dataclasses.replace(sparse, rows=(Row(sparse.rows[0].unit, 1, 2 * sparse.rows[0].ms), *sparse.rows[1:]))
    cache.engine_of(dataclasses.replace(PROBLEM, latency_model=LatencyModel.of(changed), latency=5.0))
    assert len(list(own_cache.glob("*.npz"))) == 2  # one row measured otherwise: another engine


def test_an_engine_of_other_rules_is_another_file(own_cache):
    cache.engine_of(PROBLEM)
    cache.engine_of(dataclasses.replace(PROBLEM, flops=2e7))  # budgets are not the engine's business
    assert len(list(own_cache.glob("*.npz"))) == 1
    cache.engine_of(dataclasses.replace(PROBLEM, nondecreasing=False))
    cache.engine_of(dataclasses.replace(PROBLEM, space=dataclasses.replace(SPACE, kernels=(3,))))
    assert len(list(own_cache.glob("*.npz"))) == 3


def test_the_cache_command_reports_and_clears_the_folder(own_cache, capsys):
    cache.engine_of(PROBLEM)
    assert main(["cache"]) == 0
    shown = capsys.readouterr().out
    assert f"{own_cache}: 1 file (engines and latency models)," in shown
    assert main(["cache", "--clear"]) == 0
    capsys.readouterr()
    assert list(own_cache.glob("*.npz")) == [] and cache.usage() == (0, 0)


def test_the_cache_keeps_under_its_size_limit(own_cache, monkeypatch):
    cache.engine_of(PROBLEM)
    (first,) = own_cache.glob("*.npz")
    monkeypatch.setenv("DEEPMAD_CACHE_MB", str(1.5 * first.stat().st_size / (1 << 20)))
    time.sleep(0.01)
    cache.engine_of(dataclasses.replace(PROBLEM, space=dataclasses.replace(SPACE, kernels=(3,))))
    kept = list(own_cache.glob("*.npz"))
    assert len(kept) == 1 and kept[0] != first  # the least recently used file went


def test_stop_at_is_a_hard_stop_with_an_honest_bound():
    problem = preset("deepmad-r18")
    began = time.perf_counter()
    solution = solve(problem, time_limit=60, stop_at=began + 3)
    assert time.perf_counter() - began < 5
    assert solution.status == "time_limit" and solution.check.feasible and solution.bound >= solution.objective
