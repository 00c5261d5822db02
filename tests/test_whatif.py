"""What-if sweeps: exact solves per point, the same table on any executor, resumable, with fronts and a report."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import re
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest

from deepmad import whatif
from deepmad.cli import main
from deepmad.errors import InputError
from deepmad.whatif.report import Reference, front_png, html_report
from deepmad.problem.presets import preset
from deepmad.problem.problem import Problem
from deepmad.problem.space import DesignSpace
from deepmad.solvers import solve

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

    monkeypatch.setattr(whatif.sweeps, "solve_chain", counting)
    again = whatif.sweep(PROBLEM, {"flops": FLOPS}, time_limit=60, out=out)
    assert sorted(solved) == list(range(3, len(FLOPS)))
    assert [r["objective"] for r in again.rows] == [r["objective"] for r in full.rows]
    assert again.solved == len(FLOPS) - 3
    with pytest.raises(InputError, match="holds a sweep of another problem"):
        whatif.sweep(dataclasses.replace(PROBLEM, params=50e3), {"flops": FLOPS}, time_limit=60, out=out)
    with pytest.raises(InputError, match="holds a sweep solved with --time-limit 60, this run's is 30; pass --time-limit 60 to go on with it, or give another --out"):
        whatif.sweep(PROBLEM, {"flops": FLOPS}, time_limit=30, out=out)


def test_a_points_default_time_limit_follows_its_method_and_the_file_keeps_it_as_the_default(tmp_path, monkeypatch):
    """60 s where the whole program solves the space (its proof may take that), 6 s on large spaces:
    a 40-point sweep of a preset answers in about two minutes on 2 workers."""
    assert whatif.point_seconds(PROBLEM) == whatif.POINT_SECONDS["milp"] == 60.0
    assert whatif.point_seconds(preset("deepmad-r50")) == whatif.POINT_SECONDS["large"] == 6.0
    assert whatif.point_seconds(preset("deepmad-r50"), "milp") == 60.0
    limits = []
    monkeypatch.setattr("deepmad.solvers.solve", lambda p, **kw: limits.append(kw["time_limit"]) or solve(p, **kw))
    out = tmp_path / "s.jsonl"
    whatif.sweep(PROBLEM, {"flops": FLOPS[:2]}, out=out)
    assert limits == [60.0, 60.0] and json.loads(out.read_text().splitlines()[0])["settings"]["time_limit"] is None
    assert whatif.sweep(PROBLEM, {"flops": FLOPS[:2]}, out=out).solved == 0
    with pytest.raises(InputError, match="solved with --time-limit the default, this run's is 60; leave --time-limit out to go on"):
        whatif.sweep(PROBLEM, {"flops": FLOPS[:2]}, time_limit=60, out=out)


def test_a_chains_cold_first_point_not_proven_is_solved_again_from_the_point_before_it(tmp_path, monkeypatch):
    """Chains run side by side, so a chain's first point starts cold; once they are done it is solved
    once more from the design of the point before it, keeping the better design and the lower bound."""
    calls = []

    def weak_when_cold(p, **kw):  # a cold solve stops short of its proof (as on a large space)
        s = solve(p, **kw)
        calls.append((p.flops, kw["start"] is not None))
        return s if kw["start"] is not None else dataclasses.replace(s, status="time_limit", bound=s.bound + 50.0)

    monkeypatch.setattr("deepmad.solvers.solve", weak_when_cold)
    out = tmp_path / "s.jsonl"
    result = whatif.sweep(PROBLEM, {"flops": FLOPS[:6]}, chain_count=2, out=out, share=False)
    assert calls[:6] == [(f, i not in (0, 3)) for i, f in enumerate(FLOPS[:6])]
    assert calls[6:] == [(FLOPS[3], True)]  # the second chain's first point; the first has no point before it
    assert [r["status"] for r in result.rows] == ["time_limit"] + ["optimal"] * 5
    exact = solve(dataclasses.replace(PROBLEM, flops=FLOPS[3]))
    row = result.rows[3]
    assert row["objective"] == pytest.approx(exact.objective) and row["bound"] == pytest.approx(exact.bound) and row["warm_start"]
    assert whatif.sweep(PROBLEM, {"flops": FLOPS[:6]}, chain_count=2, out=out, share=False).solved == 0 and len(calls) == 7
    first, second = {"objective": 10.0, "bound": 14.0, "status": "time_limit", "solve_seconds": 1.0, "design": "a", "warm_start": False}, \
        {"objective": 12.0, "bound": 15.0, "status": "time_limit", "solve_seconds": 2.0, "design": "b", "warm_start": True}
    both = whatif.merged(first, second, gap=1e-5)
    assert (both["design"], both["objective"], both["bound"], both["solve_seconds"]) == ("b", 12.0, 14.0, 3.0)
    assert both["gap"] == pytest.approx(2 / 14) and both["status"] == "time_limit"
    assert whatif.merged(first, {**second, "bound": 12.0}, gap=1e-5)["status"] == "optimal"


def test_a_sweep_file_names_its_tables_and_a_changed_table_is_another_sweep(tmp_path):
    """A sweep over cost tables states each table's digest in its file's header; the same run
    resumes, and a table whose rows changed (re-profiled) makes it another sweep."""
    from hwmodels.table import Calibration, save

    from conftest import synthetic_table

    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    save(synthetic_table(PROBLEM, Calibration(1.0, 0.002, 0.3, 0.05, 0)), first)
    save(synthetic_table(PROBLEM, Calibration(1.5, 0.002, 0.3, 0.05, 0)), second)
    from deepmad.hardware.latency import load_model

    problem = dataclasses.replace(PROBLEM, latency=1.0, latency_model=load_model(str(first)))
    out = tmp_path / "s.jsonl"
    result = whatif.sweep(problem, {"table": (str(first), str(second))}, time_limit=60, out=out)
    header = json.loads(out.read_text().splitlines()[0])
    assert sorted(header["tables"]) == sorted([str(first), str(second)])
    assert all(re.fullmatch(r"[0-9a-f]{16}", d) for d in header["tables"].values())
    assert [r["design_latency_ms"] <= 1.0 for r in result.rows] == [True, True]
    assert whatif.sweep(problem, {"table": (str(first), str(second))}, time_limit=60, out=out).solved == 0
    save(synthetic_table(PROBLEM, Calibration(2.0, 0.002, 0.3, 0.05, 0)), second)
    with pytest.raises(InputError, match=f"another version of the table {re.escape(str(second))}"):
        whatif.sweep(problem, {"table": (str(first), str(second))}, time_limit=60, out=out)


def test_a_sweep_file_grows_by_the_values_added_to_its_axes(tmp_path, monkeypatch):
    out = tmp_path / "s.jsonl"
    first = whatif.sweep(PROBLEM, {"flops": FLOPS[:3]}, time_limit=60, out=out)
    solved = []
    real = whatif.solve_chain
    monkeypatch.setattr(whatif.sweeps, "solve_chain", lambda p, chain, **kw: solved.append([pt["flops"] for _, pt in chain]) or real(p, chain, **kw))
    again = whatif.sweep(PROBLEM, {"flops": FLOPS[:3]}, time_limit=60, out=out)
    assert solved == [] and again.solved == 0 and comparable(again.rows) == comparable(first.rows)
    grown = whatif.sweep(PROBLEM, {"flops": (FLOPS[5], *FLOPS[:3])}, time_limit=60, out=out)
    assert solved == [[FLOPS[5]]] and grown.solved == 1
    assert [r["index"] for r in grown.rows] == [0, 1, 2, 3] and [r["flops"] for r in grown.rows] == [FLOPS[5], *FLOPS[:3]]
    assert comparable(grown.rows[1:]) == [{**r, "index": r["index"] + 1} for r in comparable(first.rows)]
    subset = whatif.sweep(PROBLEM, {"flops": FLOPS[1:3]}, time_limit=60, out=out)  # fewer values: every point read back
    assert len(solved) == 1 and subset.solved == 0 and len(out.read_text().splitlines()) == 5
    longer = whatif.sweep(PROBLEM, {"flops": (FLOPS[5], *FLOPS[:4])}, time_limit=60, out=out)
    assert solved[1:] == [[FLOPS[3]]] and longer.rows[4]["warm_start"]  # from the design of the point before it, read back
    assert longer.rows[4]["objective"] == pytest.approx(solve(dataclasses.replace(PROBLEM, flops=FLOPS[3]), time_limit=60).objective)
    grid = whatif.sweep(PROBLEM, {"nondecreasing": (True,), "flops": FLOPS[:2]}, time_limit=60, out=tmp_path / "g.jsonl")
    again = whatif.sweep(PROBLEM, {"flops": FLOPS[:2], "nondecreasing": (True, False)}, time_limit=60, out=tmp_path / "g.jsonl")
    assert again.solved == 2 and [r["objective"] for r in again.rows][::2] == [r["objective"] for r in grid.rows]


def test_a_format_1_sweep_file_is_read_and_rewritten(tmp_path):
    out = tmp_path / "s.jsonl"
    whatif.sweep(PROBLEM, {"flops": FLOPS[:2]}, time_limit=60, out=out)
    lines = out.read_text().splitlines()
    header = json.loads(lines[0])
    old = {**header, "version": 1, "axes": [["flops", list(FLOPS[:2])]]}
    out.write_text("\n".join([json.dumps(old), *lines[1:]]) + "\n")
    assert whatif.sweep(PROBLEM, {"flops": FLOPS[:2]}, time_limit=60, out=out).solved == 0
    assert out.read_text().splitlines() == lines


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
    assert "<svg" in page and "<table>" in page and "objective per MFLOP (neighbours)" in page
    assert "Reference designs" in page and "ref" in page
    assert main(argv) == 2  # outputs exist: --force is needed
    assert "exists; pass --force" in capsys.readouterr().err


def test_a_finished_sweep_run_again_solves_nothing_and_exits_0_and_one_more_value_solves_one_point(tmp_path, capsys, monkeypatch):
    out, csv_path, html_path = tmp_path / "s.jsonl", tmp_path / "s.csv", tmp_path / "r.html"
    argv = ["whatif", *SMALL, "--out", str(out), "--csv", str(csv_path), "--html", str(html_path)]
    assert main([*argv, "--vary", "flops=0.7M:1.3M:3"]) == 0
    first = capsys.readouterr()
    assert first.out == "" and "3 points: 3 optimal; outputs: " in first.err
    table = csv_path.read_text()
    solved = []
    real = whatif.solve_chain
    monkeypatch.setattr(whatif.sweeps, "solve_chain", lambda p, chain, **kw: solved.extend(i for i, _ in chain) or real(p, chain, **kw))
    assert main([*argv, "--vary", "flops=0.7M:1.3M:3"]) == 0
    err = capsys.readouterr().err
    assert solved == [] and f"3 points (0 solved now, 3 read from {out})" in err and str(csv_path) in err and str(html_path) in err
    assert csv_path.read_text() == table
    assert main([*argv, "--vary", "flops=0.7M:1.6M:4"]) == 0
    assert solved == [3] and "4 points (1 solved now, 3 read from" in capsys.readouterr().err
    assert csv_path.read_text().startswith(table)
    other = [a if a != "40k" else "50k" for a in argv]  # another problem: refused before anything is written
    assert main([*other, "--vary", "flops=0.7M:1.6M:4"]) == 2
    assert "holds a sweep of another problem" in capsys.readouterr().err and csv_path.read_text().startswith(table)


def test_a_front_marks_references_and_labels_its_axes():
    result = whatif.Sweep({"flops": (1e6, 2e6)}, [
        {"index": 0, "flops": 1e6, "status": "optimal", "objective": 5.0, "design_flops": 0.9e6, "binding": "flops"},
        {"index": 1, "flops": 2e6, "status": "optimal", "objective": 6.0, "design_flops": 1.9e6, "binding": "flops;params"},
    ])
    png = front_png(result, references=[Reference("published", 5.5, 1.5e6, 1e4, None)])
    assert png.startswith(b"\x89PNG")
    page = html_report(result, title="t", references=[Reference("published", 5.5, 1.5e6, 1e4, None)])
    assert page.count("<tr") == 1 + 2 + 2  # header, two points, reference header and row
    assert "design FLOPs (MFLOPs)" in page and "<td>published</td><td>5.50</td><td>1.5 MFLOPs</td><td>10 K params</td>" in page


def test_values_are_shown_in_the_unit_their_size_calls_for():
    assert whatif.AXES["flops"].display([5e6, 40e6]) == (1e6, "MFLOPs", "MFLOP")
    assert whatif.AXES["flops"].display([1e9, 8e9]) == (1e9, "GFLOPs", "GFLOP")
    assert whatif.AXES["flops"].display([500.0]) == (1e3, "KFLOPs", "KFLOP")  # below the smallest unit: the smallest
    assert whatif.AXES["params"].display([0.2e6]) == (1e3, "K params", "K params")
    assert whatif.AXES["latency"].display([5.0, 20.0]) == (1.0, "ms", "ms")
    assert whatif.AXES["rho"].display([0.5]) == (1.0, "", "")
    rows = [{"index": i, "flops": f, "objective": o} for i, (f, o) in enumerate([(5e6, 10.0), (10e6, 14.0), (15e6, 16.0)])]
    assert whatif.Sweep({"flops": (5e6, 10e6, 15e6)}, rows).marginals("flops") == [0.8, 0.6, 0.4]  # per MFLOP


def test_the_multipliers_are_the_slope_of_the_certificates_bound():
    """Each point's certificate, moved by its own multipliers to a neighbouring budget, bounds that
    neighbour's optimum (exactly: it is the Lagrangian at those multipliers) and is at least the
    neighbour's own certificate (the bound is concave in the budget; within 0.1 %, as column
    generation stops short of the exact dual)."""
    space = DesignSpace(block="basic", resolution=64, strides=(2, 2, 2), depths=((1, 3),) * 3, stem_channels=(16, 64),
                        channels=(16, 64), kernels=(3, 5))
    result = whatif.sweep(Problem(space, params=0.2e6, rho=0.5), {"flops": tuple(f * 1e6 for f in range(5, 41, 5))}, time_limit=60,
                          method="large", share=False)
    slopes = result.multipliers("flops")  # per MFLOP: the sweep's unit
    assert all(r["certificate"]["prices"]["flops"] == pytest.approx(y) for r, y in zip(result.rows, slopes))
    assert result.multipliers("rho") == [None] * len(result.rows)
    bounds = [r["certificate"]["bound"] for r in result.rows]
    mflops = [r["flops"] / 1e6 for r in result.rows]
    for i, y in enumerate(slopes):
        for j in (i - 1, i + 1):
            if 0 <= j < len(bounds):
                moved = bounds[i] + y * (mflops[j] - mflops[i])
                assert moved >= bounds[j] - 1e-3 * bounds[j]
                if j < i:
                    assert moved >= result.rows[j]["objective"] - 1e-6
    # on the smooth middle of the front they agree with the optimum's differences within a third
    middle = [(y, d) for y, d, f in zip(slopes, result.marginals("flops"), mflops) if 15 <= f <= 30]
    assert all(abs(y - d) <= d / 3 for y, d in middle), middle
    page = html_report(result, title="t")
    assert "objective per MFLOP (multiplier)" in page and "certificate: bound" in page


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
    monkeypatch.setattr(whatif.sweeps, "solve_chain", lambda p, chain, **kw: solved.extend(i for i, _ in chain) or real(p, chain, **kw))
    whatif.sweep(PROBLEM, {"flops": FLOPS[:4]}, time_limit=60, out=out)
    whatif.sweep(PROBLEM, {"flops": FLOPS[:4]}, time_limit=60, out=out)
    assert solved == [2, 3] and len(out.read_text().splitlines()) == 5


def test_a_sweep_with_its_axes_in_another_order_reads_its_points_and_other_axes_are_another_sweep(tmp_path):
    out = tmp_path / "s.jsonl"
    first = whatif.sweep(PROBLEM, {"flops": FLOPS[:2], "nondecreasing": (True, False)}, time_limit=60, out=out)
    turned = whatif.sweep(PROBLEM, {"nondecreasing": (True, False), "flops": FLOPS[:2]}, time_limit=60, out=out)
    assert turned.solved == 0 and [r["objective"] for r in turned.rows] == [r["objective"] for r in first.rows[::2] + first.rows[1::2]]
    with pytest.raises(InputError, match="holds a sweep over flops, nondecreasing, this one varies flops"):
        whatif.sweep(PROBLEM, {"flops": FLOPS[:2]}, time_limit=60, out=out)


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



class _Links(HTMLParser):
    """Every tag and every attribute that could fetch something, as the page states them."""

    def __init__(self):
        super().__init__()
        self.tags, self.links = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value or "" for name, value in attrs if name in ("src", "href", "xlink:href", "data", "action", "poster", "srcset")]


def _report(tmp_path: Path) -> tuple[str, list[dict]]:
    """The report and the sweep file's rows of a sweep with certificates and a design spanning two budgets."""
    out, page, reference = tmp_path / "s.jsonl", tmp_path / "r.html", tmp_path / "smallest.json"
    space = DesignSpace(block="basic", resolution=64, strides=(2, 2, 2), depths=((1, 3),) * 3, stem_channels=(16, 64),
                        channels=(16, 64), kernels=(3, 5))
    reference.write_text(space.skeleton().to_json())
    argv = ["whatif", "--block", "basic", "--strides", "2,2,2", "--resolution", "64", "--channels", "16:64", "--depth", "1:3",
            "--kernels", "3,5", "--params", "0.2M", "--rho", "0.5", "--vary", "flops=20M:40M:5", "--method", "large",
            "--out", str(out), "--html", str(page), "--reference", str(reference)]
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    return page.read_text(), rows


def test_the_report_fetches_nothing_and_its_hover_cards_match_the_sweep_file(tmp_path):
    page, rows = _report(tmp_path)
    links = _Links()
    links.feed(page)
    assert "link" not in links.tags and "iframe" not in links.tags and "img" not in links.tags
    assert all(link.startswith("#") for link in links.links), links.links  # only the SVG's own glyphs and markers
    assert "url(http" not in page and "@import" not in page and "<script src" not in page
    every = json.loads(page.split('<script type="application/json" id="hover-data">')[1].split("</script>")[0])
    cards = [c for c in every if c["id"].startswith("point-")]
    (star,) = [c for c in every if c["id"].startswith("reference-")]
    assert star["title"] == "reference: smallest" and f'id="{star["id"]}"' in page and star["lines"][0].startswith("objective ")
    by_index = {r["index"]: r for r in rows}
    assert sorted(i for c in cards for i in c["points"]) == sorted(by_index)
    for card in cards:
        assert f'id="{card["id"]}"' in page
        members = [by_index[i] for i in card["points"]]
        assert all(r["architecture"] == members[0]["architecture"] for r in members)  # one marker, one design
        assert card["design"] == members[0]["design"] and card["objective"] == members[0]["objective"]
        for r in members:
            assert any(line.startswith(f"point {r['index']}: flops {r['flops'] / 1e6:.4g} MFLOPs: {r['status']}") for line in card["lines"])
            assert any(line.strip().startswith(f"certificate: bound {r['certificate']['bound']:,.2f}") for line in card["lines"])
    designs = [json.dumps(by_index[c["points"][0]]["architecture"], sort_keys=True) for c in cards]
    assert len(set(designs)) == len(designs) < len(rows)  # 35M and 40M share their design: one marker
    # the table: units in the headings, gaps in %, seconds to 0.1, no column that is empty everywhere
    assert "<th>flops (MFLOPs)</th>" in page and "<th>design_params (K params)</th>" in page and " %</td>" in page
    assert not any(f"<th>{c}" in page for c in ("design_from", "bound_from", "error", "design latency"))
    assert re.search(r"<td>\d+\.\d</td><td class=text>stem", page)  # the solve time, then the design


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_a_browser_runs_the_report_and_a_link_to_a_point_opens_its_card(tmp_path):
    page, rows = _report(tmp_path)
    dom = subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          f"file://{tmp_path / 'r.html'}#point-1"], capture_output=True, text=True, timeout=120).stdout
    card = dom.split('<div id="tip"')[1].split("</div></div>")[0]
    assert "display: block" in card
    cards = json.loads(page.split('<script type="application/json" id="hover-data">')[1].split("</script>")[0])
    assert f"<b>{cards[1]['design']}</b>" in card and cards[1]["lines"][0] in card
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900", f"--screenshot={shot}",
                    f"file://{tmp_path / 'r.html'}"], capture_output=True, timeout=120)
    image = matplotlib.image.imread(shot)
    assert image.shape[:2] == (900, 1200) and image[..., :3].std() > 0.05  # a page drawn, not a blank one
