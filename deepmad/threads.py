"""How many threads numerical libraries may run: one each, unless the user asks for more.

numpy's and scipy's BLAS (OpenBLAS, MKL) and OpenMP runtimes start a thread per
core. Beside the user's other work, or beside a sweep's other workers, that
oversubscribes the cores: on a busy 2-core machine a latency model's build
took 15 s instead of 1.1 s. So the solver, the latency predictor and every
sweep worker run them with :func:`numerical_threads` threads:
``$DEEPMAD_THREADS`` where set (a positive integer), else 1. Timing a network
or a unit is not covered: it sets torch's threads to what the cost table says.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

ENV = "DEEPMAD_THREADS"
_LIBRARY_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "NUMBA_NUM_THREADS")


def numerical_threads() -> int:
    """``$DEEPMAD_THREADS`` if it is a positive integer, else 1."""
    value = os.environ.get(ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


@contextlib.contextmanager
def limited(threads: int | None = None) -> Iterator[None]:
    """Within the block, the BLAS and OpenMP pools of the libraries loaded so far limited to
    ``threads`` (default :func:`numerical_threads`), and those loaded in it started so; after it,
    the pools loaded before are as they were."""
    from threadpoolctl import threadpool_limits

    n = threads or numerical_threads()
    saved = {name: os.environ.get(name) for name in _LIBRARY_ENV}
    os.environ.update({name: str(n) for name in _LIBRARY_ENV})
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pin_process(threads: int | None = None) -> None:
    """Limit this process's BLAS and OpenMP pools for good: those loaded now (threadpoolctl) and
    those loaded later (their environment variables, which they read when they load). A worker
    process's initializer."""
    from threadpoolctl import threadpool_limits

    n = str(threads or numerical_threads())
    for name in _LIBRARY_ENV:
        os.environ[name] = n
    threadpool_limits(limits=int(n))
