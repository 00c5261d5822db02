"""Ctrl-C during a solve: stop early and keep the best design found so far.

While :func:`catching` is active in the main thread, the first SIGINT does not
raise: it sets a flag that the solver's loops read (:func:`past`), and it
cancels the HiGHS runs in progress (HiGHS checks for a cancel in its own
callbacks, which run Python code often enough for the signal to be seen). The
solve then returns its best design, with status ``"interrupted"``. A second
SIGINT raises :class:`KeyboardInterrupt` as usual; where it lands in a HiGHS
callback, which swallows exceptions, it is raised again at the run's end
(:func:`running`) and in the solver's loops (:func:`past`).

Python runs a signal's handler once for every press that arrives while the main
thread is inside one long native call (a numba kernel, a HiGHS run): two quick
presses would read as one. The presses are therefore also counted on a wakeup
pipe (:func:`signal.set_wakeup_fd`), where the interpreter writes one byte per
signal as it arrives.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

_requested = threading.Event()
_aborted = threading.Event()  # a second Ctrl-C: stop at once
_happened = threading.Event()  # the last catching block saw a Ctrl-C
_presses: tuple[int, int] | None = None  # the wakeup pipe of the active catching block
_running: list[Any] = []  # highspy.Highs objects whose run is in progress


def requested() -> bool:
    """Whether Ctrl-C was pressed during the current solve."""
    return _requested.is_set()


def happened() -> bool:
    """Whether Ctrl-C was pressed during the last solve that caught it (even if that solve went on
    to finish): a caller running many solves stops there."""
    return _happened.is_set()


def past(deadline: float) -> bool:
    """Whether a loop should stop: ``deadline`` (a ``time.perf_counter`` value) passed, or Ctrl-C.
    Raises :class:`KeyboardInterrupt` after a second Ctrl-C (see :func:`_handler`)."""
    if _aborted.is_set():
        raise KeyboardInterrupt
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
    global _presses
    _presses = os.pipe()
    for end in _presses:
        os.set_blocking(end, False)
    previous_fd = signal.set_wakeup_fd(_presses[1], warn_on_full_buffer=False)
    previous = signal.signal(signal.SIGINT, _handler)
    _requested.clear()
    _aborted.clear()
    _happened.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.set_wakeup_fd(previous_fd)
        for end in _presses:
            os.close(end)
        _presses = None
        if _requested.is_set():
            _happened.set()
        _requested.clear()  # later solves, in any thread, start afresh
        _aborted.clear()


def _pressed() -> int:
    """The SIGINTs delivered since the last call (the wakeup pipe's bytes, emptied)."""
    count = 0
    while _presses is not None:
        try:
            data = os.read(_presses[0], 512)
        except BlockingIOError:
            break
        if not data:
            break
        count += data.count(signal.SIGINT)
    return count


def _handler(signum: int, frame: Any) -> None:
    if _requested.is_set() or _pressed() > 1:
        # Raised here, the exception may land in a HiGHS callback, which swallows it: the flag makes
        # the run's end (:func:`running`) and the solver's loops (:func:`past`) raise it again.
        _aborted.set()
        for solver in list(_running):
            _cancel(solver)
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
    if _aborted.is_set():
        raise KeyboardInterrupt
