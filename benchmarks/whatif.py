"""What-if sweeps on this machine: a preset's FLOPs sweep on local workers, and what warm starts save.

    .venv/bin/python benchmarks/whatif.py sweep --preset deepmad-r50 --points 40 --time-limit 6 --workers 2
    .venv/bin/python benchmarks/whatif.py warm

``sweep`` prints the wall time, how many points were proven optimal, the
largest gap, and every step at which the objective decreased along the sweep
(a decrease means a solve was not optimal). ``warm`` solves the same sweep of
a custom problem (the whole MILP on HiGHS, 114,168 options) with and without warm starts, one process,
side by side, and prints the median solve time per point of each and their ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepmad import whatif  # noqa: E402
from deepmad.presets import preset  # noqa: E402
from deepmad.problem import Problem  # noqa: E402
from deepmad.space import DesignSpace  # noqa: E402


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
    print(f"{args.preset}: {len(rows)} points from 1 to 8 GFLOPs, {args.workers} workers, {args.time_limit:g} s per point")
    print(f"wall {wall:.1f} s; proven optimal {proven}/{len(rows)}; largest gap {max(gaps):.2%}; "
          f"median solve {statistics.median(r['solve_seconds'] for r in rows):.1f} s; "
          f"designs taken from another point {sum(r.get('design_from') is not None for r in rows)}, "
          f"bounds {sum(r.get('bound_from') is not None for r in rows)}")
    for a, b in zip(rows, rows[1:]):
        if a["objective"] is not None and b["objective"] is not None and b["objective"] < a["objective"]:
            print(f"  decrease: {a['flops'] / 1e9:.2f} -> {b['flops'] / 1e9:.2f} GFLOPs: {a['objective']:.1f} -> {b['objective']:.1f}")
    for r in rows:
        print(f"  {r['flops'] / 1e9:5.2f} G  {r['status']:<11} {r['objective'] or 0:10.1f}  gap {r['gap'] or 0:7.2%}  binds {r['binding'] or '-':<14} {r['design']}")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("sweep")
    p.add_argument("--preset", default="deepmad-r50")
    p.add_argument("--points", type=int, default=40)
    p.add_argument("--time-limit", type=float, default=6.0)
    p.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("warm")
    p.add_argument("--points", type=int, default=8)
    args = parser.parse_args()
    _sweep(args) if args.what == "sweep" else _warm(args)


if __name__ == "__main__":
    main()
