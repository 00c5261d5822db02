"""How the exact program's size and solve time grow with the grid and the number of stages.

Run on demand (not part of the tests):

    .venv/bin/python benchmarks/solver_scaling.py [--repeats 3]

For bottleneck spaces at resolution 64 with budgets at 60% of the
unconstrained optimum's costs, it prints the number of stage options, the
MILP's rows and columns, and the median wall time of `deepmad.solve.solve`
(one HiGHS thread) over the repeats, beside the space's design count.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyomo.environ as pyo

from deepmad.problem import Problem
from deepmad.program import Tables, build_program
from deepmad.solve import solve
from deepmad.space import DesignSpace


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
        tables = Tables.of(problem)
        model = build_program(problem, tables)
        rows = sum(1 for _ in model.component_data_objects(ctype=pyo.Constraint, active=True))
        cols = sum(1 for _ in model.component_data_objects(ctype=pyo.Var))
        times, status = [], ""
        for _ in range(args.repeats):
            start = time.perf_counter()
            status = solve(problem, time_limit=600).status
            times.append(time.perf_counter() - start)
        print(
            f"{stages:>6} {len(problem.space.channel_grid()):>6} {depth_hi:>5} {problem.space.size():>10.3g} "
            f"{tables.size:>8} {rows:>7} {cols:>7} {statistics.median(times):>9.2f}  {status}"
        )


if __name__ == "__main__":
    main()
