"""Every preset solved by `deepmad design`'s default method, beside its published structure.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/presets.py [--time-limit 60] [NAME ...]

For each preset it prints the status, the objective of the returned design,
the proven upper bound and relative gap, the solve time, and the objective
of the published DeepMAD structure of the same name scored the same way
(``../shared/data/tinynas/published``), with the ratio of the two.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepmad.model import tinynas
from deepmad.model.entropy import score
from deepmad.problem.presets import PRESETS, PUBLISHED_FILES
from deepmad.solvers import solve

PUBLISHED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinynas" / "published"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("names", nargs="*", default=list(PRESETS))
    args = parser.parse_args()
    print(f"{'preset':<16} {'status':<10} {'objective':>10} {'bound':>10} {'gap':>7} {'seconds':>8} {'published':>10} {'ratio':>6}")
    for name in args.names:
        problem = PRESETS[name]
        solution = solve(problem, time_limit=args.time_limit)
        reference = tinynas.load(PUBLISHED / PUBLISHED_FILES[name], resolution=problem.space.resolution)
        published = score(reference, problem.scoring).objective
        print(
            f"{name:<16} {solution.status:<10} {solution.objective:>10.1f} {solution.bound:>10.1f} "
            f"{solution.gap:>7.2%} {solution.solve_seconds:>8.1f} {published:>10.1f} {solution.objective / published:>6.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
