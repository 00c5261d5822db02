"""The exact solver against an evolutionary search with DeepMAD's published settings.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/evolution.py [--seconds 60] [--seed 0] [NAME ...]

The evolutionary search is TinyNAS's: a population of 256 designs; each child
copies a random member and applies two single-stage mutations (one stage's
output width, inner width, kernel or depth changed); children that break a
budget or rho0 are dropped; when the population is full the worst member
leaves. It starts from the same design the solver's local search starts
from (walking down the violation until a child is feasible), scores designs with the same evaluator (the accounting in bulk), and
runs for the same wall time as `deepmad design` on one core. The script
prints the search's best objective over time, then the solver's objective,
bound and time, and the published structure's objective, per preset.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from deepmad.model import tinynas
from deepmad.model.entropy import score
from deepmad.problem.presets import PRESETS, PUBLISHED_FILES
from deepmad.problem.problem import Problem
from deepmad.solvers import solve
from deepmad.solvers.cache import engine_of
from deepmad.solvers.context import Context
from deepmad.solvers.search import Design, Search

PUBLISHED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinynas" / "published"
POPULATION = 256


def _mutate(search: Search, x: Design, rng: np.random.Generator) -> Design:
    """One stage's output width (two grid steps at most), inner width (two steps), kernel or depth changed."""
    stages = list(x.stages)
    j = int(rng.integers(0, len(stages)))
    t = search.engine.stages[j]
    m, p, k, d = stages[j]
    what = int(rng.integers(0, 4))
    if what == 0:
        step = p - int(t.starts[m])
        m = int(min(len(t.widths) - 1, max(0, m + int(rng.choice([-2, -1, 1, 2])))))
        p = int(t.starts[m]) + min(step, int(t.starts[m + 1] - t.starts[m]) - 1)
    elif what == 1:
        p = int(min(t.starts[m + 1] - 1, max(t.starts[m], p + int(rng.choice([-2, -1, 1, 2])))))
    elif what == 2:
        k = int(rng.integers(0, len(t.kernels)))
    else:
        d = int(min(t.depths[-1], max(t.depths[0], d + int(rng.choice([-1, 1])))))
    stages[j] = (m, p, k, d)
    return Design(x.stem, tuple(stages))


def evolve(problem: Problem, seconds: float, seed: int, checkpoints: list[float]) -> list[tuple[float, float, int]]:
    """Best objective at each checkpoint (seconds), with the number of designs evaluated."""
    search = Search(engine_of(problem), Context(problem))
    rng = np.random.default_rng(seed)
    start_design = search.start()
    population: list[tuple[float, Design]] = []
    violation, objective = search.value(start_design)
    if violation == 0:
        population.append((objective, start_design))
    parent, parent_violation = start_design, violation
    out, evaluated, begin = [], 0, time.perf_counter()
    for mark in checkpoints:
        while time.perf_counter() - begin < min(mark, seconds):
            if population:
                parent = population[int(rng.integers(0, len(population)))][1]
            child = _mutate(search, _mutate(search, parent, rng), rng)
            violation, objective = search.value(child)
            evaluated += 1
            if violation > 0:
                if not population and violation < parent_violation:  # still walking to a first feasible design
                    parent, parent_violation = child, violation
                continue
            population.append((objective, child))
            if len(population) > POPULATION:
                population.remove(min(population, key=lambda m: m[0]))
        out.append((mark, max((m[0] for m in population), default=float("nan")), evaluated))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("names", nargs="*", default=list(PRESETS))
    args = parser.parse_args()
    marks = [args.seconds * f for f in (0.05, 0.1, 0.25, 0.5, 1.0)]
    for name in args.names:
        problem = PRESETS[name]
        reference = tinynas.load(PUBLISHED / PUBLISHED_FILES[name], resolution=problem.space.resolution)
        print(f"{name}: published structure {score(reference, problem.scoring).objective:.1f}", flush=True)
        for mark, best, evaluated in evolve(problem, args.seconds, args.seed, marks):
            print(f"  evolution  {mark:7.1f} s  best {best:10.1f}  ({evaluated:,} designs)", flush=True)
        solution = solve(problem, time_limit=args.seconds)
        print(f"  solver     {solution.solve_seconds:7.1f} s  objective {solution.objective:10.1f}  bound {solution.bound:10.1f}  "
              f"gap {solution.gap:.2%}  {solution.status}", flush=True)


if __name__ == "__main__":
    main()
