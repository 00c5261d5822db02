"""Numerical libraries run one thread each in the solver and in sweep workers, unless asked for more."""

from __future__ import annotations

import os

import numpy as np  # noqa: F401  (its BLAS is loaded: threadpoolctl sees it)
import pytest
import scipy.linalg  # noqa: F401  (scipy's own BLAS too)
from threadpoolctl import threadpool_info

from deepmad import whatif
from deepmad.problem.problem import Problem
from deepmad.problem.space import DesignSpace
from deepmad.solvers import Progress, solve
from deepmad.threads import ENV, limited, numerical_threads


def tiny_problem() -> Problem:
    space = DesignSpace(block="basic", resolution=32, strides=(2, 2), depths=((1, 2), (1, 2)), stem_channels=(16, 16),
                        channels=(16, 48), kernels=(3, 5))
    return Problem(space, flops=4e6)


def _pools() -> set[int]:
    """The thread counts of the BLAS and OpenMP pools loaded in this process."""
    return {pool["num_threads"] for pool in threadpool_info()}


class Watching(Progress):
    """A progress that notes the pools' thread counts at every event of a solve."""

    def __init__(self):
        super().__init__()
        self.seen: list[set[int]] = []

    def __bool__(self) -> bool:
        return True

    def event(self, step, incumbent, bound, note=""):
        self.seen.append(_pools())


@pytest.mark.parametrize("method", ["milp", "large"])
def test_a_solve_runs_numerical_libraries_on_one_thread(method):
    watching = Watching()
    solve(tiny_problem(), time_limit=20, method=method, progress=watching)
    assert watching.seen and all(seen == {1} for seen in watching.seen)


def test_the_environment_asks_for_more(monkeypatch):
    monkeypatch.setenv(ENV, "2")
    assert numerical_threads() == 2
    with limited():
        assert max(_pools()) == 2 and os.environ["OPENBLAS_NUM_THREADS"] == "2"  # (a single-threaded build stays at 1)
    monkeypatch.setenv(ENV, "many")
    assert numerical_threads() == 1


def _worker_state() -> tuple[set[int], str | None]:
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401

    return _pools(), os.environ.get("OMP_NUM_THREADS")


def test_sweep_workers_are_pinned():
    with whatif.process_pool(2) as pool:
        states = [f.result(timeout=120) for f in [pool.submit(_worker_state) for _ in range(4)]]
    assert all(pools == {1} and omp == "1" for pools, omp in states)
