"""What-if sweeps: exact solves per point, the same table on any executor, resumable, with fronts and a report."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib.image
import pytest

from deepmad import whatif
from deepmad.cli import main
from deepmad.errors import InputError
from deepmad.pareto import Reference, front_png, html_report
from deepmad.problem import Problem
from deepmad.solvers import solve
from deepmad.space import DesignSpace

SPACE = DesignSpace(block="basic", resolution=32, strides=(2, 2), depths=((1, 2), (1, 2)), stem_channels=(16, 16),
                    channels=(16, 32), kernels=(3,))
PROBLEM = Problem(SPACE, params=40e3, rho=0.5)
FLOPS = tuple(0.7e6 + i * 0.3e6 for i in range(8))
SMALL = ["--block", "basic", "--strides", "2,2", "--resolution", "32", "--channels", "16:32",
         "--stem-channels", "16:16", "--depth", "1:2", "--kernels", "3", "--params", "40k", "--rho", "0.5"]


def comparable(rows):
    """Rows without the one measured field."""
    return [{k: v for k, v in r.items() if k != "solve_seconds"} for r in rows]


def test_parse_axis_reads_lists_and_ranges():
    assert whatif.parse_axis("flops=1G:8G:8") == ("flops", tuple(1e9 * (1 + i) for i in range(8)))
    assert whatif.parse_axis("params=10M,20M") == ("params", (10e6, 20e6))
    assert whatif.parse_axis("block=bottleneck,basic") == ("block", ("bottleneck", "basic"))
    assert whatif.parse_axis("nondecreasing=on,off") == ("nondecreasing", (True, False))
    assert whatif.parse_axis("max-depth-spread=none,2") == ("max_depth_spread", (None, 2))
    for bad in ("flops", "colour=red", "flops=8G:1G:4", "flops=", "block=resnext", "flops=1G:2G:0"):
        with pytest.raises(InputError):
            whatif.parse_axis(bad)


def test_points_make_a_grid_first_axis_slowest():
    grid = whatif.points({"flops": (1, 2), "block": ("a", "b", "c")})
    assert [tuple(p.values()) for p in grid] == [(1, "a"), (1, "b"), (1, "c"), (2, "a"), (2, "b"), (2, "c")]


def test_chains_cover_the_points_in_order():
    assert whatif.chains(10, parts=3) == [range(0, 3), range(3, 7), range(7, 10)]
    assert whatif.chains(2, parts=5) == [range(0, 1), range(1, 2)]


def test_a_flops_sweep_is_exact_at_every_point_and_never_decreases():
    result = whatif.sweep(PROBLEM, {"flops": FLOPS}, time_limit=60)
    objectives = [r["objective"] for r in result.rows]
    assert all(r["status"] == "optimal" for r in result.rows)
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(objectives, objectives[1:])), objectives
    for row, flops in zip(result.rows, FLOPS):
        alone = solve(dataclasses.replace(PROBLEM, flops=flops), time_limit=60)
        assert row["objective"] == pytest.approx(alone.objective, rel=1e-9)
        assert row["design_flops"] <= flops and row["design_params"] <= 40e3
        if "flops" in row["binding"].split(";"):
            assert row["design_flops"] >= 0.97 * flops
    # the warm start is the previous point's design, within each chain
    assert [r["warm_start"] for r in result.rows][:2] == [False, True]


def test_the_table_is_the_same_on_every_executor(tmp_path):
    from distributed import Client, LocalCluster

    axes = {"flops": FLOPS[:6], "nondecreasing": (True, False)}
    here = whatif.sweep(PROBLEM, axes, time_limit=60)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        local = whatif.sweep(PROBLEM, axes, time_limit=60, executor=pool)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        dask = whatif.sweep(PROBLEM, axes, time_limit=60, executor=client.get_executor(pure=False))
    assert comparable(here.rows) == comparable(local.rows) == comparable(dask.rows)
    assert here.to_csv().count("\n") == 13


def test_an_interrupted_sweep_resumes_without_solving_finished_points(tmp_path, monkeypatch):
    out = tmp_path / "s.jsonl"
    full = whatif.sweep(PROBLEM, {"flops": FLOPS}, time_limit=60, out=out)
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "deepmad-sweep" and len(lines) == 1 + len(FLOPS)
    out.write_text("\n".join(lines[:4]) + "\n" + lines[4][:30])  # three rows kept, the fourth cut in half
    solved = []
    real = whatif.solve_chain

    def counting(problem, chain, **kw):
        solved.extend(i for i, _ in chain)
        return real(problem, chain, **kw)

    monkeypatch.setattr(whatif, "solve_chain", counting)
    again = whatif.sweep(PROBLEM, {"flops": FLOPS}, time_limit=60, out=out)
    assert sorted(solved) == list(range(3, len(FLOPS)))
    assert [r["objective"] for r in again.rows] == [r["objective"] for r in full.rows]
    with pytest.raises(InputError, match="holds another sweep"):
        whatif.sweep(PROBLEM, {"flops": FLOPS[:3]}, time_limit=60, out=out)


def test_marginals_are_central_differences_per_unit():
    rows = [{"index": i, "flops": f, "objective": o} for i, (f, o) in enumerate([(1e9, 10.0), (2e9, 14.0), (3e9, 16.0)])]
    assert whatif.Sweep({"flops": (1e9, 2e9, 3e9)}, rows).marginals("flops") == [4.0, 3.0, 2.0]


def test_whatif_command_writes_the_table_the_front_and_the_report(tmp_path, capsys):
    reference = tmp_path / "ref.json"
    reference.write_text(SPACE.skeleton().to_json())
    paths = {k: tmp_path / f"s.{k}" for k in ("csv", "json", "png", "html")}
    argv = ["whatif", *SMALL, "--vary", "flops=0.7M:2.8M:4", "--vary", "nondecreasing=on,off", "--reference", str(reference),
            "--change-points"]
    argv += [a for k, p in paths.items() for a in (f"--{k}", str(p))]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "8 points: 8 optimal" in err
    assert paths["csv"].read_text().splitlines()[0].startswith("index,flops,nondecreasing,status,objective,bound,gap,design_flops")
    assert paths["csv"].read_text().splitlines()[0].endswith(",design,design_from,bound_from,error,next_change_flops")
    assert len(json.loads(paths["json"].read_text())["rows"]) == 8
    image = matplotlib.image.imread(paths["png"])
    assert image.shape[0] > 400 and image.shape[1] > 600
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page and "<table>" in page and "d objective / d flops (per GFLOPs)" in page
    assert "Reference designs" in page and "ref" in page
    assert main(argv) == 2  # outputs exist: --force is needed
    assert "exists; pass --force" in capsys.readouterr().err


def test_a_front_marks_references_and_labels_its_axes():
    result = whatif.Sweep({"flops": (1e6, 2e6)}, [
        {"index": 0, "flops": 1e6, "objective": 5.0, "design_flops": 0.9e6, "binding": "flops"},
        {"index": 1, "flops": 2e6, "objective": 6.0, "design_flops": 1.9e6, "binding": "flops;params"},
    ])
    png = front_png(result, references=[Reference("published", 5.5, 1.5e6, 1e4, None)])
    assert png.startswith(b"\x89PNG")
    page = html_report(result, title="t", figures={"front": png}, references=[Reference("published", 5.5, 1.5e6, 1e4, None)])
    assert page.count("<tr") == 1 + 2 + 2  # header, two points, reference header and row


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_and_keeps_its_finished_points(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "s.jsonl"
    medium = ["--block", "basic", "--strides", "2,2,2", "--resolution", "64", "--channels", "16:64", "--depth", "1:3",
              "--kernels", "3,5", "--params", "0.2M", "--rho", "0.5"]
    argv = [sys.executable, "-m", "deepmad", "whatif", *medium, "--vary", "flops=10M:40M:6", "--out", str(out), "--csv", str(tmp_path / "s.csv")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": str(root)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().endswith("deepmad: interrupted") and "Traceback" not in err
    kept = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    assert 2 <= len(kept) < 6 and all(r["status"] == "optimal" for r in kept)
    assert not (tmp_path / "s.csv").exists()


def test_change_points_are_where_the_optimum_first_improves():
    flops = FLOPS[1:5]
    result = whatif.sweep(PROBLEM, {"flops": flops}, time_limit=60)
    found = whatif.change_points(PROBLEM, result, "flops", time_limit=60)
    assert found[-1] is None and any(v is not None for v in found)
    for row, change in zip(result.rows, found):
        if change is None:
            continue
        assert row["flops"] < change <= flops[flops.index(row["flops"]) + 1]
        at = solve(dataclasses.replace(PROBLEM, flops=change), time_limit=60)
        just_below = solve(dataclasses.replace(PROBLEM, flops=change - 1), time_limit=60)
        assert at.objective > row["objective"] and just_below.objective == pytest.approx(row["objective"], rel=1e-9)


def test_a_point_not_proven_optimal_takes_a_better_design_that_fits_it():
    exact = whatif.sweep(PROBLEM, {"flops": FLOPS[1:]}, time_limit=60)
    rows = [dict(r) for r in exact.rows]
    weak = rows[-1]
    first = rows[0]
    weak.update(status="time_limit", objective=first["objective"], architecture=first["architecture"], bound=weak["bound"] * 1.5)
    fixed = whatif.shared(PROBLEM, rows, whatif.points(exact.axes), slack=0.03, gap=1e-5)
    assert fixed[:-1] == rows[:-1]  # proven rows are left as they are
    last = fixed[-1]
    assert last["objective"] == max(r["objective"] for r in rows[:-1]) and last["design_from"] is not None
    assert last["status"] == "time_limit" and last["bound"] == weak["bound"] and last["gap"] > 0
    assert last["design_flops"] <= last["flops"]


def test_a_point_takes_the_least_bound_of_the_points_whose_budgets_are_all_at_least_its_own():
    axes = {"flops": FLOPS[2:5], "params": (35e3, 40e3), "nondecreasing": (True, False)}
    exact = whatif.sweep(PROBLEM, axes, time_limit=60, share=False)
    grid = whatif.points(axes)
    rows = [dict(r, status="time_limit", bound=r["bound"] * (1.5 + 0.1 * (i % 3))) for i, r in enumerate(exact.rows)]
    fixed = whatif.shared(PROBLEM, rows, grid, slack=0.03, gap=1e-5)
    for row, new, point in zip(rows, fixed, grid):
        holds = [r["bound"] for r, other in zip(rows, grid) if whatif.looser(other, point)]
        assert new["bound"] == min(holds)  # its own included
        assert new.get("bound_from") is None or whatif.looser(grid[new["bound_from"]], point)
        assert new["bound"] >= new["objective"]
    # along each budget axis, other inputs equal, the bounds do not decrease
    for a, b in zip(fixed, fixed[1:]):
        if whatif.looser(grid[b["index"]], grid[a["index"]]):
            assert b["bound"] >= a["bound"]
    # a bound that meets the design proves it
    rows[0]["bound"] = rows[0]["objective"] * (1 + 1e-7)
    assert whatif.shared(PROBLEM, rows, grid, slack=0.03, gap=1e-5)[0]["status"] == "optimal"


def test_resuming_twice_after_a_cut_line_solves_each_point_once(tmp_path, monkeypatch):
    out = tmp_path / "s.jsonl"
    whatif.sweep(PROBLEM, {"flops": FLOPS[:4]}, time_limit=60, out=out)
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][:25])  # two rows kept, the third cut in half
    solved = []
    real = whatif.solve_chain
    monkeypatch.setattr(whatif, "solve_chain", lambda p, chain, **kw: solved.extend(i for i, _ in chain) or real(p, chain, **kw))
    whatif.sweep(PROBLEM, {"flops": FLOPS[:4]}, time_limit=60, out=out)
    whatif.sweep(PROBLEM, {"flops": FLOPS[:4]}, time_limit=60, out=out)
    assert solved == [2, 3] and len(out.read_text().splitlines()) == 5


def test_a_sweep_with_its_axes_in_another_order_is_another_sweep(tmp_path):
    out = tmp_path / "s.jsonl"
    whatif.sweep(PROBLEM, {"flops": FLOPS[:2], "nondecreasing": (True, False)}, time_limit=60, out=out)
    with pytest.raises(InputError, match="holds another sweep"):
        whatif.sweep(PROBLEM, {"nondecreasing": (True, False), "flops": FLOPS[:2]}, time_limit=60, out=out)


def test_a_point_whose_solve_fails_is_a_row_that_says_why(monkeypatch):
    from deepmad import solvers as solve_module
    from deepmad.errors import DeepmadError

    real = solve_module.solve

    def failing(problem, **kw):
        if problem.flops == FLOPS[1]:
            raise DeepmadError("no feasible design found within 1 s; raise --time-limit, or loosen the budgets")
        return real(problem, **kw)

    monkeypatch.setattr(solve_module, "solve", failing)
    result = whatif.sweep(PROBLEM, {"flops": FLOPS[:3]}, time_limit=60, share=False)
    row = result.rows[1]
    assert row["status"] == "time_limit" and row["objective"] is None and "no feasible design" in row["error"]
    assert result.rows[0]["status"] == result.rows[2]["status"] == "optimal"
    assert result.marginals("flops")[1] is None
    shared = whatif.shared(PROBLEM, result.rows, whatif.points(result.axes), slack=0.03, gap=1e-5)
    # the design of the smaller budget fits; the optimum of the larger one bounds it
    assert shared[1]["design_from"] == 0 and shared[1]["bound_from"] == 2 and shared[1]["bound"] == result.rows[2]["bound"]
    assert shared[1]["status"] == "time_limit"


def test_a_chain_hands_each_solve_the_last_solution_where_only_budgets_changed(monkeypatch):
    """Along a budget axis each solve starts from the last solution (its design and multipliers);
    across block types, whose spaces differ, from the last design only where it fits."""
    from deepmad import solvers as solve_module
    from deepmad.solution import Solution

    starts = []
    real = solve_module.solve
    monkeypatch.setattr(solve_module, "solve", lambda p, **kw: starts.append(kw["start"]) or real(p, **kw))
    whatif.sweep(PROBLEM, {"flops": FLOPS[:3]}, time_limit=60, method="large", chain_count=1)
    assert starts[0] is None and all(isinstance(s, Solution) and s.lagrangian for s in starts[1:])
    starts.clear()
    whatif.sweep(PROBLEM, {"block": ("basic", "bottleneck")}, time_limit=60, method="large", chain_count=1)
    assert not any(isinstance(s, Solution) for s in starts)

