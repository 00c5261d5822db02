"""Progress a person can read: one line per event that matters.

Each line gives the elapsed time, the step, and the solve's incumbent, bound
and gap after it; a line is printed when a step ends or finds a better
design or bound, never per iteration. The solvers' own logs (HiGHS) are for
``verbose`` runs only.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


class Progress:
    """Prints event lines to ``stream`` (nothing where ``stream`` is ``None``)."""

    def __init__(self, stream: TextIO | None = None, *, began: float | None = None, verbose: bool = False):
        self.stream = stream
        self.verbose = verbose  # also the solvers' own logs (HiGHS)
        self.began = time.perf_counter() if began is None else began
        self.last: tuple | None = None

    def __bool__(self) -> bool:
        return self.stream is not None

    def event(self, step: str, incumbent: float | None, bound: float, note: str = "") -> None:
        if self.stream is None:
            return
        elapsed = time.perf_counter() - self.began
        shown = "-" if incumbent is None else f"{incumbent:,.1f}"
        bound_ = f"{bound:,.1f}" if math.isfinite(bound) else "-"
        gap = f"{max(0.0, bound - incumbent) / abs(bound):.2%}" if incumbent is not None and math.isfinite(bound) and bound else "-"
        line = f"{elapsed:7.1f} s  {step:<18} incumbent {shown:>11}  bound {bound_:>11}  gap {gap:>7}"
        print(line + (f"  {note}" if note else ""), file=self.stream, flush=True)


def terminal() -> Progress:
    """Progress lines on standard error (standard output stays for results)."""
    return Progress(sys.stderr)
