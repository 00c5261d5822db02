"""A design problem: a space, budgets, the effectiveness bound and the guidelines.

``Problem.check`` re-scores any architecture independently of how it was
found (accounting and entropy only) and lists every constraint it breaks, by
name. Solvers are judged by it: a returned design must have no violation and
its objective is the accounting's, never a solver's own number.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InputError, shown
from ..model.accounting import costs
from ..model.architecture import Architecture
from ..model.entropy import Scoring, score
from .space import DesignSpace

if TYPE_CHECKING:
    from ..hardware.latency import LatencyModel

FlopsConvention = Literal["tinynas", "macs"]
LATENCY_RTOL = 1e-9
"""Relative slack of the latency check: unit latencies are summed in another order by the program."""


@dataclass(frozen=True)
class Violation:
    """One broken constraint: ``name`` (e.g. ``flops``), the design's ``value`` and the ``limit``."""

    name: str
    value: float
    limit: float
    message: str


@dataclass(frozen=True)
class Check:
    """The independent evaluation of a design under a problem."""

    flops: int
    params: int
    rho: float
    layers: int
    objective: float
    violations: tuple[Violation, ...]
    latency_ms: float | None = None

    @property
    def feasible(self) -> bool:
        return not self.violations


def _positive(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(name, f"must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class Problem:
    """Maximize the DeepMAD objective over ``space`` subject to the budgets.

    ``flops`` is a budget in the ``flops_convention`` (``"tinynas"``, the
    published DeepMAD budgets, or ``"macs"``, classifier excluded in both);
    ``params`` counts parameters without the classifier; ``rho`` bounds every
    prefix's effectiveness; ``max_layers`` bounds the layer count. Guidelines:
    ``nondecreasing`` channels across stages (stem excluded), and the depth
    rule, either the objective's penalty (always there) plus, with
    ``max_depth_spread``, a hard limit on ``max L_j - min L_j`` over the
    penalty's stages. ``latency`` bounds the latency in milliseconds that
    ``latency_model`` predicts (:mod:`deepmad.hardware.latency`); one needs the other.
    """

    space: DesignSpace
    flops: float | None = None
    params: float | None = None
    rho: float | None = None
    max_layers: int | None = None
    flops_convention: FlopsConvention = "tinynas"
    nondecreasing: bool = True
    max_depth_spread: int | None = None
    scoring: Scoring = field(default_factory=Scoring)
    name: str = ""
    latency: float | None = None
    latency_model: "LatencyModel | None" = None

    def __post_init__(self) -> None:
        for name in ("flops", "params", "rho", "max_layers", "latency"):
            _positive(name, getattr(self, name))
        if self.latency is not None and self.latency_model is None:
            raise InputError("latency", "a latency budget needs a cost table (--table FILE or an installed device name)")
        spread = self.max_depth_spread
        if spread is not None and (isinstance(spread, bool) or not isinstance(spread, int) or spread < 0):
            raise InputError("max_depth_spread", f"must be an integer >= 0 (0: all covered depths equal), got {shown(spread)}")
        if self.flops_convention not in ("tinynas", "macs"):
            raise InputError("flops_convention", f"must be 'tinynas' or 'macs', got {self.flops_convention!r}")

    def to_dict(self) -> dict[str, Any]:
        """The problem as plain JSON data, for the record of a design (``result.json``, the model
        file): its name (a preset's, or empty), budgets (``flops`` in ``flops_convention``,
        ``params`` without the classifier, ``latency_ms`` with its cost table), rules, scoring and
        space."""
        model = self.latency_model
        return {
            "name": self.name,
            "budgets": {"flops": self.flops, "flops_convention": self.flops_convention, "params": self.params, "rho": self.rho,
                        "max_layers": self.max_layers, "latency_ms": self.latency,
                        "latency_table": model.name if model is not None else None},
            "rules": {"nondecreasing": self.nondecreasing, "max_depth_spread": self.max_depth_spread},
            "scoring": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.scoring).items()},
            "space": {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
                      for k, v in dataclasses.asdict(self.space).items()},
        }

    def check(self, arch: Architecture) -> Check:
        """Re-score ``arch`` and list every constraint it breaks (space rules included)."""
        c = costs(arch)
        s = score(arch, self.scoring)
        flops = c.flops_tinynas if self.flops_convention == "tinynas" else c.macs
        found: list[Violation] = []

        def limit(name: str, value: float, bound: float | None, unit: str = "") -> None:
            if bound is not None and value > bound:
                found.append(Violation(name, value, bound, f"{name}: {value:,.6g}{unit} exceeds the limit {bound:,.6g}{unit}"))

        limit("flops", flops, self.flops)
        limit("params", c.params, self.params)
        limit("rho", s.rho, self.rho)
        limit("layers", s.layers, self.max_layers)
        latency = self.latency_model.predict(arch).total_ms if self.latency_model is not None else None
        if latency is not None and self.latency is not None and latency > self.latency * (1 + LATENCY_RTOL):
            limit("latency", latency, self.latency, " ms")
        widths = [st.channels for st in arch.stages]
        for j in range(1, len(widths)):
            if self.nondecreasing and widths[j] < widths[j - 1]:
                found.append(Violation("nondecreasing", widths[j], widths[j - 1], f"stages[{j}].channels: {widths[j]} is narrower than the stage before ({widths[j - 1]})"))
        if self.max_depth_spread is not None:
            depths = [arch.stages[j].depth for j in self.scoring.covered_stages(arch)]
            limit("depth_spread", max(depths) - min(depths) if depths else 0, self.max_depth_spread)
        for reason in self.space.violations(arch):
            found.append(Violation("space", 0, 0, reason))
        return Check(flops, c.params, s.rho, s.layers, s.objective, tuple(found), latency)

