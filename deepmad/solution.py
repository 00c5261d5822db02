"""What a solver returns: a design with its certificate."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import InputError, shown
from .files import read_text
from .model.architecture import Architecture
from .problem.problem import Check

if TYPE_CHECKING:
    from .problem.problem import Problem
    from .solvers.colgen import Lagrangian

Status = Literal["optimal", "time_limit", "interrupted", "infeasible"]


@dataclass(frozen=True)
class Shortfall:
    """A budget no design of the space meets: ``smallest`` is the least value the space allows."""

    name: str
    limit: float
    smallest: float

    @property
    def message(self) -> str:
        if not math.isfinite(self.smallest):
            return f"{self.name}: the space's rules and guidelines leave no design that meets the limit {self.limit:,.6g}"
        return f"{self.name}: the limit {self.limit:,.6g} is below the smallest value the space allows, {self.smallest:,.6g}"


@dataclass(frozen=True)
class Solution:
    """``objective`` is the accounting's value of ``architecture`` (re-scored, not a solver's number);
    ``bound`` a proven upper bound on the optimum; ``gap = (bound - objective) / |bound|``.
    When ``status`` is ``"infeasible"`` there is no architecture and ``shortfalls``
    names the budgets the space cannot meet (empty when only their combination fails)."""

    status: Status
    architecture: Architecture | None
    check: Check | None
    bound: float
    solve_seconds: float
    method: str
    shortfalls: tuple[Shortfall, ...] = field(default=())
    lagrangian: "Lagrangian | None" = field(default=None, repr=False, compare=False)
    """The large-space method's best column-generation bound with its multipliers: a warm start for a
    neighbouring problem, e.g. the same space under other budgets (``solve(..., start=solution)``),
    and a bound for the problems whose designs are among this one's
    (:func:`deepmad.solvers.colgen.certificate`); ``None`` from the whole-program method."""
    work: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    """The large-space method's work per step, in reference seconds (see :mod:`deepmad.solvers.settings`)."""

    @property
    def objective(self) -> float | None:
        return self.check.objective if self.check else None

    @property
    def gap(self) -> float | None:
        if self.check is None:
            return None
        if not math.isfinite(self.bound):  # no bound was proven
            return None
        return max(0.0, (self.bound - self.check.objective) / abs(self.bound)) if self.bound else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RESULT_FORMAT,
            "version": RESULT_VERSION,
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound if math.isfinite(self.bound) else None,
            "gap": self.gap,
            "solve_seconds": self.solve_seconds,
            "method": self.method,
            "architecture": self.architecture.to_dict() if self.architecture else None,
            "shortfalls": [{"name": s.name, "limit": s.limit, "smallest": s.smallest if math.isfinite(s.smallest) else None}
                           for s in self.shortfalls],
        }


RESULT_FORMAT = "deepmad-result"
RESULT_VERSION = 1


def record(problem: "Problem", solution: Solution, *, command: str) -> dict[str, Any]:
    """Where a design comes from, as plain JSON data: the deepmad version, the ``command`` that
    produced it, the problem (:meth:`Problem.to_dict`) and the certificate (status, objective,
    bound, gap, method). Kept in ``result.json`` and in the model file (``DESIGN``); it holds no
    timing, so the same command gives the same record."""
    from . import __version__

    def plain(x: float | None) -> float | None:  # not numpy's floats, whose repr is no literal
        return None if x is None or not math.isfinite(x) else float(x)

    return {"deepmad_version": __version__, "command": command, "problem": problem.to_dict(), "status": solution.status,
            "objective": plain(solution.objective), "bound": plain(solution.bound), "gap": plain(solution.gap),
            "method": solution.method}


def load_design(path: str | Path) -> tuple[Architecture, dict[str, Any] | None]:
    """The architecture of a file: an architecture JSON file, or a ``deepmad design --json`` result
    (then also its :func:`record`, ``None`` for a result written before records were kept)."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return Architecture.load(path), None  # names the file and what is wrong
    if not (isinstance(data, dict) and (data.get("format") == RESULT_FORMAT or {"status", "architecture"} <= data.keys())):
        return Architecture.load(path), None
    if data.get("architecture") is None:
        raise InputError(str(path), f"is a result with status {shown(data.get('status'))} and no design to read")
    try:
        arch = Architecture.from_dict(data["architecture"])
    except InputError as exc:
        raise InputError(f"{path}: architecture.{exc.field}", exc.message) from None
    kept = {k: data[k] for k in ("deepmad_version", "command", "problem", "status", "objective", "bound", "gap", "method") if k in data}
    return arch, kept if "problem" in kept else None
