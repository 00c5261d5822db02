"""`deepmad design --preset P --time-limit T` per preset, this checkout beside another, in one run.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/solver.py [--before DIR] [--limits 10,60] [--load] [--space reference] [NAME ...]

Each run is the whole command as a user types it (a fresh process: imports,
solve, model file written and checked with torch), one at a time, and the
table gives its wall time (process start to exit), peak memory, objective,
bound and gap, the published structure's objective and the best designs and
bounds any run of this project has found. ``--before DIR``: a checkout of
another commit (``git worktree add DIR COMMIT``), run the same way, line by
line beside this one. ``--load``: each run of this checkout once more beside
two busy-looping processes, and whether its result JSON is the same (timing
fields apart).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from deepmad.model import tinynas  # noqa: E402
from deepmad.model.entropy import score  # noqa: E402
from deepmad.problem.presets import PRESETS, PUBLISHED_FILES  # noqa: E402

PUBLISHED = HERE.parent / "shared" / "data" / "tinynas" / "published"

BEST_KNOWN = {  # objective, bound: the best any run of this project has found (issue 16, and since)
    "deepmad-r18": (37463, 38092), "deepmad-r34": (48928, 49765), "deepmad-r50": (51901, 52603),
    "deepmad-29m-224": (27473, 29748), "deepmad-29m-288": (28431, 30296), "deepmad-50m": (34465, 37173),
    "deepmad-89m": (42967, 45003),
}
TIMING = ("solve_seconds",)


def run(checkout: Path, name: str, limit: float, out: Path, space: str = "wide") -> dict:
    """One `deepmad design` in a fresh process of ``checkout``; its wall time, peak memory and result."""
    result = out / "result.json"
    report = ("import atexit, resource, sys; atexit.register(lambda: print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
              "file=sys.stderr)); from deepmad.cli import main; sys.exit(main())")
    command = [sys.executable, "-c", report, "design", "--preset", name, *(["--space", space] if space != "wide" else []),
               "--time-limit", str(limit), "-o", str(out / "model.py"), "--json", str(result), "--force", "--no-progress"]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)}, capture_output=True, text=True)
    wall = time.perf_counter() - began
    lines = done.stderr.strip().splitlines()
    if done.returncode != 0:
        return {"error": next((x for x in reversed(lines) if not x.startswith("peak ")), "?"), "wall": wall}
    peak = next(int(x.split()[1]) for x in reversed(lines) if x.startswith("peak "))
    data = json.loads(result.read_text())
    return {"wall": wall, "peak_mb": peak / 1024, "objective": data["objective"], "bound": data["bound"], "gap": data["gap"],
            "json": {k: v for k, v in data.items() if k not in TIMING}}


def busy(n: int) -> list[subprocess.Popen]:
    """``n`` busy-looping processes, each of which stops once this one is gone (a benchmark killed
    midway leaves none behind to slow what runs next)."""
    loop = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout, run beside this one")
    parser.add_argument("--limits", default="10,60", help="time limits, seconds (default 10,60)")
    parser.add_argument("--load", action="store_true", help="also each run beside two busy-looping processes")
    parser.add_argument("--space", choices=("wide", "reference"), default="wide",
                        help="the presets' space (reference: TinyNAS's; /best is then still the wide spaces' best known)")
    parser.add_argument("names", nargs="*", default=list(PRESETS))
    args = parser.parse_args()
    limits = [float(x) for x in args.limits.split(",")]
    checkouts = [("after", HERE)] + ([("before", args.before.resolve())] if args.before else [])
    print(f"{'preset':<16} {'limit':>5} {'run':<7} {'wall s':>7} {'MB':>6} {'objective':>10} {'bound':>10} {'gap':>7} "
          f"{'published':>10} {'/best':>6}  same under load")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            problem = PRESETS[name]
            published = score(tinynas.load(PUBLISHED / PUBLISHED_FILES[name], resolution=problem.space.resolution), problem.scoring).objective
            best = BEST_KNOWN[name][0]
            for limit in limits:
                for label, checkout in checkouts:
                    r = run(checkout, name, limit, Path(tmp), args.space)
                    if "error" in r:
                        print(f"{name:<16} {limit:>5g} {label:<7} {r['wall']:>7.1f}  failed: {r['error']}", flush=True)
                        continue
                    same = ""
                    if args.load and label == "after":  # the claim is this checkout's; the other is timed
                        loops = busy(2)
                        try:
                            loaded = run(checkout, name, limit, Path(tmp), args.space)
                        finally:
                            for p in loops:
                                p.kill()
                        same = "yes" if loaded.get("json") == r["json"] else f"NO ({loaded.get('objective')}, {loaded.get('wall', 0):.1f} s)"
                    gap = f"{r['gap']:.2%}" if r["gap"] is not None else "-"
                    bound = f"{r['bound']:>10.1f}" if r["bound"] is not None else f"{'-':>10}"
                    print(f"{name:<16} {limit:>5g} {label:<7} {r['wall']:>7.1f} {r['peak_mb']:>6.0f} {r['objective']:>10.1f} {bound} {gap:>7} "
                          f"{published:>10.1f} {r['objective'] / best:>6.3f}  {same}", flush=True)


if __name__ == "__main__":
    main()
