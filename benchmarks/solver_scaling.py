"""How the exact program's size and solve time grow with the grid and the number of stages.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/solver_scaling.py [--repeats 3]

For bottleneck spaces at resolution 64 with budgets at 60% of the
unconstrained optimum's costs, it prints the number of stage options, the
MILP's rows and columns, and the median wall time of `deepmad.solvers.solve`
(one HiGHS thread) over the repeats, beside the space's design count.
"""

from __future__ import annotations

import argparse
import statistics
import time

from deepmad.problem.problem import Problem
from deepmad.problem.space import DesignSpace
from deepmad.solvers import colgen, solve
from deepmad.solvers.context import Context
from deepmad.solvers.engine import Engine
from deepmad.solvers.formulation import Formulation, Model
from deepmad.solvers.milp import option_caps, stem_options, tables
from deepmad.solvers.rows import Program


def case(stages: int, channel_hi: int, depth_hi: int) -> Problem:
    space = DesignSpace(
        block="bottleneck", resolution=64, strides=(2,) * stages, depths=((1, depth_hi),) * stages,
        stem_channels=(16, 16), channels=(16, channel_hi), kernels=(3, 5),
    )
    free = solve(Problem(space, rho=0.3), time_limit=600)
    return Problem(space, flops=0.6 * free.check.flops, params=0.6 * free.check.params, rho=0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'stages':>6} {'widths':>6} {'depth':>5} {'designs':>10} {'options':>8} {'rows':>7} {'cols':>7} {'median s':>9}  status")
    for stages, channel_hi, depth_hi in [(2, 32, 2), (2, 64, 3), (3, 64, 3), (3, 96, 4), (4, 64, 3), (4, 128, 4)]:
        problem = case(stages, channel_hi, depth_hi)
        engine, context = Engine.of(problem), Context(problem)
        stem, stages = stem_options(engine), tables(engine)
        model = Model(Formulation(Program(problem, context, colgen.layer_ranges(engine, context)), option_caps(context, stem, stages)),
                      stem, integer=True)
        for j, opts in enumerate(stages):
            model.add(j, opts)
        rows, cols = model.h.getNumRow(), model.h.getNumCol()
        size = len(stem) + sum(len(o) for o in stages)
        times, status = [], ""
        for _ in range(args.repeats):
            start = time.perf_counter()
            status = solve(problem, time_limit=600).status
            times.append(time.perf_counter() - start)
        print(
            f"{stages:>6} {len(problem.space.channel_grid()):>6} {depth_hi:>5} {problem.space.size():>10.3g} "
            f"{size:>8} {rows:>7} {cols:>7} {statistics.median(times):>9.2f}  {status}"
        )


if __name__ == "__main__":
    main()
