"""What-if sweeps on this machine: a preset's FLOPs sweep on local workers, what warm starts save,
and what a latency budget buys against FLOPs budgets and torchvision's ResNets.

    .venv/bin/python benchmarks/whatif.py sweep --preset deepmad-r50 --points 40 --workers 2 [--compare 5]
    .venv/bin/python benchmarks/whatif.py warm
    .venv/bin/python benchmarks/whatif.py latency --table r18-cpu.jsonl --png docs/whatif-latency.png

``sweep`` prints the wall time, how many points were proven optimal, the
largest gap, and every step at which the objective decreased along the sweep
(a decrease means a solve was not optimal); with ``--compare N``, N points
spread over the range are solved again alone with ``--compare-limit`` s (issue
19 asks the sweep's designs to reach 98 % of 120 s solves). ``warm`` solves the same sweep of
a custom problem (the whole MILP on HiGHS, 114,168 options) with and without warm starts, one process,
side by side, and prints the median solve time per point of each and their ratio.

``latency`` (needs ``pip install 'deepmad[bench]'``, i.e. torchvision, and a
cost table of deepmad-r18's space profiled here, ``deepmad profile --preset
deepmad-r18``) measures torchvision's ResNet-18, -34 and -50 on this CPU with
the table's protocol and threads, then designs with the ResNet presets'
problems twice: as published (their FLOPs budgets) and with the FLOPs budget
replaced by a latency budget equal to the ResNet's measured latency. Every
design's generated module is measured the same way; the table prints each
design's objective, FLOPs, predicted and measured latency beside its ResNet,
and the figure plots objective against measured latency.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepmad import whatif  # noqa: E402
from deepmad.problem.presets import preset  # noqa: E402
from deepmad.problem.problem import Problem  # noqa: E402
from deepmad.problem.space import DesignSpace  # noqa: E402


def _sweep(args: argparse.Namespace) -> None:
    problem = preset(args.preset)
    flops = tuple(1e9 + (8e9 - 1e9) * i / (args.points - 1) for i in range(args.points))
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        result = whatif.sweep(problem, {"flops": flops}, time_limit=args.time_limit, executor=pool)
    wall = time.perf_counter() - started
    rows = result.rows
    proven = sum(r["status"] == "optimal" for r in rows)
    gaps = [r["gap"] for r in rows if r["gap"] is not None]
    limit = args.time_limit if args.time_limit is not None else whatif.point_seconds(problem)
    print(f"{args.preset}: {len(rows)} points from 1 to 8 GFLOPs, {args.workers} workers, {limit:g} s per point"
          f"{'' if args.time_limit is not None else ' (the default)'}")
    print(f"wall {wall:.1f} s; proven optimal {proven}/{len(rows)}; largest gap {max(gaps):.2%}; "
          f"median solve {statistics.median(r['solve_seconds'] for r in rows):.1f} s; "
          f"designs taken from another point {sum(r.get('design_from') is not None for r in rows)}, "
          f"bounds {sum(r.get('bound_from') is not None for r in rows)}")
    for a, b in zip(rows, rows[1:]):
        if a["objective"] is not None and b["objective"] is not None and b["objective"] < a["objective"]:
            print(f"  decrease: {a['flops'] / 1e9:.2f} -> {b['flops'] / 1e9:.2f} GFLOPs: {a['objective']:.1f} -> {b['objective']:.1f}")
    for r in rows:
        print(f"  {r['flops'] / 1e9:5.2f} G  {r['status']:<11} {r['objective'] or 0:10.1f}  gap {r['gap'] or 0:7.2%}  binds {r['binding'] or '-':<14} {r['design']}")
    if args.compare:
        # Issue 19's measure: the sweep's design against a long solve of the same point, at points spread over the range.
        picked = sorted({round(k * (len(rows) - 1) / (args.compare - 1)) for k in range(args.compare)}) if args.compare > 1 else [0]
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            alone = list(pool.map(_solve_alone, [(args.preset, rows[i]["flops"], args.compare_limit) for i in picked]))
        print(f"the sweep's designs against solves of {args.compare_limit:g} s of the same points:")
        for i, (objective, status) in zip(picked, alone):
            ratio = rows[i]["objective"] / objective if rows[i]["objective"] and objective else float("nan")
            print(f"  {rows[i]['flops'] / 1e9:5.2f} G  sweep {rows[i]['objective'] or 0:10.1f}  alone {objective or 0:10.1f} ({status})  "
                  f"sweep / alone {ratio:.1%}")


def _solve_alone(job: tuple) -> tuple:
    from deepmad.solvers import solve

    name, flops, limit = job
    s = solve(dataclasses.replace(preset(name), flops=flops), time_limit=limit)
    return s.objective, s.status


def _warm(args: argparse.Namespace) -> None:
    space = DesignSpace(block="bottleneck", resolution=224, strides=(2, 2, 2, 1, 2), depths=((1, 4),) * 5, channels=(8, 128))
    problem = Problem(space, params=2e6, rho=0.3)
    flops = tuple(0.25e9 + 0.01e9 * i for i in range(args.points))
    times, objectives = {}, {}
    for warm in (False, True):
        result = whatif.sweep(problem, {"flops": flops}, time_limit=300, method="milp", warm_start=warm, chain_count=1)
        times[warm] = [r["solve_seconds"] for r in result.rows]
        objectives[warm] = [r["objective"] for r in result.rows]
        print(f"warm start {'on ' if warm else 'off'}: median {statistics.median(times[warm]):.1f} s per point, "
              f"total {sum(times[warm]):.1f} s; statuses {sorted(set(r['status'] for r in result.rows))}")
    same = all(abs(a - b) <= 1e-6 * abs(a) for a, b in zip(objectives[False], objectives[True]))
    print(f"the same optimum at every point with and without warm starts: {same}")
    ratios = [a / b for a, b in zip(times[False], times[True])]
    print(f"cold / warm per point: median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")


def _resnets() -> dict:
    """torchvision's ResNet-18/34/50 builders. The package's own ``__init__`` loads its compiled
    ops, which need the CUDA build of torch that torchvision's wheels are made for; the model
    definitions are plain Python, so the package is entered without running it."""
    import importlib.util
    import types

    if "torchvision" not in sys.modules:
        spec = importlib.util.find_spec("torchvision")
        if spec is None:
            sys.exit("latency needs torchvision: pip install 'deepmad[bench]'")
        package = types.ModuleType("torchvision")
        package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
        sys.modules["torchvision"] = package
    from torchvision.models import resnet

    return {"ResNet-18": resnet.resnet18, "ResNet-34": resnet.resnet34, "ResNet-50": resnet.resnet50}


def _macs(model, resolution: int) -> float:
    """Multiply-accumulates of one 1-image pass (torch's FLOP counter halved): the tinynas
    convention in which the presets state their FLOPs budgets."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.randn(1, 3, resolution, resolution))
    return counter.get_total_flops() / 2


def _latency(args: argparse.Namespace) -> None:
    import json

    import torch

    from deepmad.hardware.latency import find_table, load_model
    from deepmad.hardware.latencycheck import NETWORK_SECONDS, measure_designs, speed
    from deepmad.solvers import solve
    from hwmodels.profile import steady_memory, time_call
    from hwmodels.table import load

    model = load_model(args.table)
    table = load(find_table(args.table))
    threads = table.meta.threads or 1
    torch.set_num_threads(threads)
    steady_memory()
    before = speed(table, threads=threads)
    rows, figure = [], []
    for (name, build), preset_name in zip(_resnets().items(), ("deepmad-r18", "deepmad-r34", "deepmad-r50")):
        net = build().eval()
        x = torch.randn(1, 3, 224, 224)
        with torch.inference_mode():
            ms = time_call(lambda: (lambda: net(x)), min_seconds=NETWORK_SECONDS)[0]
        rows.append({"name": name, "budget": "-", "objective": None, "flops": _macs(net, 224), "params": sum(p.numel() for p in net.parameters()),
                     "predicted_ms": None, "measured_ms": ms})
        figure.append(("reference", name, None, ms))
        base = dataclasses.replace(preset(preset_name), latency_model=model)
        for label, problem in ((f"{preset_name}, FLOPs {base.flops / 1e9:.2f}G", base),
                               (f"{preset_name}, latency {ms:.1f} ms", dataclasses.replace(base, flops=None, latency=ms))):
            s = solve(problem, time_limit=args.time_limit)
            measured = measure_designs([s.architecture], threads=threads)[0]
            rows.append({"name": label, "budget": "latency" if problem.latency else "flops", "objective": s.objective, "gap": s.gap,
                         "flops": s.check.flops, "params": s.check.params, "predicted_ms": s.check.latency_ms,
                         "measured_ms": measured, "design": whatif.summary(s.architecture), "architecture": s.architecture.to_dict()})
            figure.append((rows[-1]["budget"], label, s.objective, measured))
    now = (before + speed(table, seed=1, threads=threads)) / 2
    print(f"{args.table}: {threads} thread(s), batch 1, 224x224; time limit {args.time_limit:g} s per design")
    print(f"this machine now takes {now:.2f}x the table's times (rows timed again before and after: {before:.2f}x, "
          f"{2 * now - before:.2f}x); 'now' is the prediction scaled by it")
    print(f"{'network':<38} {'objective':>10} {'gap':>6} {'MACs':>7} {'params':>7} {'predicted':>10} {'now':>8} {'measured':>9}")
    for r in rows:
        objective = f"{r['objective']:10,.0f}" if r["objective"] is not None else f"{'-':>10}"
        gap = f"{r['gap']:6.1%}" if r.get("gap") is not None else f"{'-':>6}"
        predicted = f"{r['predicted_ms']:8.1f}ms {r['predicted_ms'] * now:6.1f}ms" if r["predicted_ms"] is not None else f"{'-':>10} {'-':>8}"
        print(f"{r['name']:<38} {objective} {gap} {r['flops'] / 1e9:6.2f}G {r['params'] / 1e6:6.2f}M {predicted} {r['measured_ms']:7.1f}ms"
              + (f"  {r['design']}" if r.get("design") else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"speed": now, "rows": rows}, indent=1) + "\n")
    if args.png:
        _latency_png(figure, args.png, f"{args.table}, {threads} thread(s)")


def _latency_png(figure: list, path: str, where: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {"flops": ("s", "tab:blue", "FLOPs budget of the ResNet (published DeepMAD problem)"),
              "latency": ("D", "tab:red", "latency budget = the ResNet's measured latency")}
    for kind, (marker, colour, legend) in styles.items():
        points = [(ms, obj, label) for k, label, obj, ms in figure if k == kind]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, color=colour, ls="none", ms=7, label=legend)
        for ms, obj, label in points:
            ax.annotate(label.split(",")[0].removeprefix("deepmad-"), (ms, obj), textcoords="offset points", xytext=(6, -4), fontsize=8)
    for _, label, _, ms in (f for f in figure if f[0] == "reference"):
        ax.axvline(ms, color="grey", ls="--", lw=1)
        ax.annotate(f"{label} {ms:.1f} ms", (ms, 0.98), xycoords=("data", "axes fraction"), rotation=90, fontsize=8, color="grey",
                    xytext=(-10, 0), textcoords="offset points", va="top")
    ax.set_xlim(left=min(f[3] for f in figure) * 0.92)  # room for the leftmost reference's label
    ax.set_xlabel(f"measured latency (ms; {where})")
    ax.set_ylabel("DeepMAD objective")
    ax.set_title("DeepMAD designs against the latency of torchvision's ResNets")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("sweep")
    p.add_argument("--preset", default="deepmad-r50")
    p.add_argument("--points", type=int, default=40)
    p.add_argument("--time-limit", type=float, default=None, help="seconds per point (default: whatif's, 6 s on a preset)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--compare", type=int, default=0, metavar="N", help="also solve N points alone, spread over the range")
    p.add_argument("--compare-limit", type=float, default=120.0, metavar="S", help="their time limit (s)")
    p = sub.add_parser("warm")
    p.add_argument("--points", type=int, default=8)
    p = sub.add_parser("latency")
    p.add_argument("--table", required=True, help="a cost table of deepmad-r18's space profiled on this machine")
    p.add_argument("--time-limit", type=float, default=30.0)
    p.add_argument("--json", help="write the rows as JSON")
    p.add_argument("--png", help="write the figure: objective against measured latency")
    args = parser.parse_args()
    {"sweep": _sweep, "warm": _warm, "latency": _latency}[args.what](args)


if __name__ == "__main__":
    main()
