"""Ctrl-C during a solve: stop early and keep the best design found so far.

While :func:`catching` is active in the main thread, the first SIGINT does not
raise: it sets a flag that the solver's loops read (:func:`past`), and it
cancels the HiGHS runs in progress (HiGHS checks for a cancel in its own
callbacks, which run Python code often enough for the signal to be seen). The
solve then returns its best design, with status ``"interrupted"``. A second
SIGINT raises :class:`KeyboardInterrupt` as usual.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

_requested = threading.Event()
_happened = threading.Event()  # the last catching block saw a Ctrl-C
_running: list[Any] = []  # highspy.Highs objects whose run is in progress


def requested() -> bool:
    """Whether Ctrl-C was pressed during the current solve."""
    return _requested.is_set()


def happened() -> bool:
    """Whether Ctrl-C was pressed during the last solve that caught it (even if that solve went on
    to finish): a caller running many solves stops there."""
    return _happened.is_set()


def past(deadline: float) -> bool:
    """Whether a loop should stop: ``deadline`` (a ``time.perf_counter`` value) passed, or Ctrl-C."""
    return time.perf_counter() > deadline or _requested.is_set()


def _cancel(highs: Any) -> None:
    highs.cancelSolve()


@contextmanager
def catching() -> Iterator[None]:
    """Turn the first Ctrl-C into a request to stop (see the module's docstring). Outside the
    main thread, or nested in another :func:`catching`, it changes nothing."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is _handler:
        yield
        return
    previous = signal.signal(signal.SIGINT, _handler)
    _requested.clear()
    _happened.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if _requested.is_set():
            _happened.set()
        _requested.clear()  # later solves, in any thread, start afresh


def _handler(signum: int, frame: Any) -> None:
    if _requested.is_set():
        raise KeyboardInterrupt
    _requested.set()
    for solver in list(_running):
        _cancel(solver)


@contextmanager
def running(solver: Any) -> Iterator[None]:
    """Mark a ``highspy.Highs`` as running, so that Ctrl-C cancels it."""
    _running.append(solver)
    try:
        if _requested.is_set():
            _cancel(solver)
        yield
    finally:
        _running.remove(solver)
