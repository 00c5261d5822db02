"""Latency prediction against its targets: V100 held-out rows, and designs measured on this CPU.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/latency.py held-out [--before DIR]
    .venv/bin/python benchmarks/latency.py designs --table r18-cpu.jsonl --preset deepmad-r18 [--threads 1 2]

``held-out`` imports the V100 TensorRT tables of ``../shared/data/tinynas/v100``
and prints, per dtype and seed, what ``deepmad latency-check --table
v100-trt-DTYPE --held-out`` prints (10 % of the rows held out and predicted by
a model of the others), beside the targets of issue 18. ``--before DIR`` runs
the same split with the code of another checkout (``git worktree add DIR
REV``) in a subprocess, for a side-by-side table.

``designs`` measures random designs of a preset's space end to end on this CPU
on the table's backend (the generated torch module, or its ONNX export in
ONNX Runtime) and prints the share within ±10 % of the table's prediction,
per thread count (a table predicts the thread count it was measured with).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

V100 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinynas" / "v100"
TARGETS = {  # median at most, within 10 % at least, RMSPE at most (percent)
    "fp16": (2.5, 88.0, 12.0),
    "fp32": (2.5, 94.0, 6.0),
    "int8": (2.5, 94.0, 6.0),
}
_BEFORE = """
import json, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from hwmodels.predict import held_out
from hwmodels.tinynas import import_tinynas
rel = held_out(import_tinynas(sys.argv[2]).table, fraction=0.1, seed=int(sys.argv[3]))
print(json.dumps([float(np.median(rel)), float((rel <= 0.1).mean()), float(np.sqrt((rel ** 2).mean()))]))
"""


def figures(rel: np.ndarray) -> tuple[float, float, float]:
    return 100 * float(np.median(rel)), 100 * float((rel <= 0.1).mean()), 100 * float(np.sqrt((rel**2).mean()))


def held_out_table(before: str | None) -> None:
    from threadpoolctl import threadpool_limits

    from hwmodels.predict import held_out
    from hwmodels.tinynas import import_tinynas

    print(f"{'table':<14} {'seed':>4} {'rows':>6} {'median %':>9} {'<=10 % %':>9} {'RMSPE %':>8} {'seconds':>8}  "
          f"{'target':<18} {'met':<4}{'  before: median / <=10 % / RMSPE' if before else ''}")
    for dtype, (t_med, t_w10, t_rmspe) in TARGETS.items():
        table = import_tinynas(V100 / f"conv_data.{dtype}.out").table
        for seed in (0, 1):
            start = time.perf_counter()
            with threadpool_limits(1):
                rel = held_out(table, fraction=0.1, seed=seed)
            seconds = time.perf_counter() - start
            med, w10, rmspe = figures(rel)
            met = med <= t_med and w10 >= t_w10 and rmspe <= t_rmspe
            old = ""
            if before:
                out = subprocess.run([sys.executable, "-c", _BEFORE, before, str(V100 / f"conv_data.{dtype}.out"), str(seed)],
                                     capture_output=True, text=True, check=True)
                m, w, r = json.loads(out.stdout)
                old = f"  {100 * m:.2f} / {100 * w:.1f} / {100 * r:.1f}"
            print(f"v100-trt-{dtype:<5} {seed:>4} {len(rel):>6,} {med:>9.2f} {w10:>9.1f} {rmspe:>8.1f} {seconds:>8.1f}  "
                  f"<={t_med} / >={t_w10:g} / <={t_rmspe:g}".ljust(18) + f" {'yes' if met else 'NO':<4}{old}", flush=True)


def designs_table(args: argparse.Namespace) -> None:
    from deepmad.hardware.latency import LatencyModel, find_table
    from deepmad.hardware.latencycheck import check
    from deepmad.problem.presets import preset
    from hwmodels.profile import backend_of
    from hwmodels.table import load

    problem = preset(args.preset, space=args.space)
    table = load(find_table(args.table))
    model, backend = LatencyModel.of(table), backend_of(table.meta)
    print(f"{args.preset} ({args.space} space), table {args.table}, backend {backend}, {args.designs} random designs")
    print(f"{'threads':>7} {'within 10 %':>12} {'median %':>9} {'RMSPE %':>8} {'seconds':>8}")
    for threads in args.threads:
        start = time.perf_counter()
        result = check(problem, model, designs=args.designs, seed=args.seed, threads=threads, backend=backend)
        f = result.figures
        print(f"{threads:>7} {f['within_10']:>11.0f}% {f['median_abs']:>9.1f} {f['rmspe']:>8.1f} {time.perf_counter() - start:>8.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    h = sub.add_parser("held-out")
    h.add_argument("--before", help="a checkout of another revision, run side by side")
    d = sub.add_parser("designs")
    d.add_argument("--table", required=True)
    d.add_argument("--preset", default="deepmad-r18")
    d.add_argument("--space", default="wide")
    d.add_argument("--designs", type=int, default=30)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    if args.what == "held-out":
        held_out_table(args.before)
    else:
        designs_table(args)


if __name__ == "__main__":
    main()
