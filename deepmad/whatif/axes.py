"""What a sweep varies: its axes (a budget, the cost table, the block type, the resolution, a
guideline switch), how their values are read from text, and how a point's values change a problem."""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

from ..errors import InputError, shown
from ..model.blocks import BLOCK_TYPES
from ..problem.problem import Problem
from ..units import parse_amount, parse_duration_ms


@dataclass(frozen=True)
class AxisKind:
    """What a sweep can vary: how a typed value is read, and how it changes a problem.

    ``units``: the scales figures and tables may show the value in, smallest first, each as
    ``(scale, unit, one)``: ``value / scale`` in ``unit`` (``one`` names a single unit, for rates
    such as "per MFLOP"); see :meth:`display`."""

    parse: Callable[[str], Any]
    apply: Callable[[Problem, Any], Problem]
    label: str
    units: tuple[tuple[float, str, str], ...] = ()
    budget: str | None = None  # the Check field the axis bounds, for budgets

    def display(self, values: Sequence[Any]) -> tuple[float, str, str]:
        """The unit to show ``values`` in: the largest of :attr:`units` that the largest value
        reaches (5M to 40M FLOPs in MFLOPs, 1G to 8G in GFLOPs); ``(1.0, "", "")`` without units."""
        if not self.units:
            return 1.0, "", ""
        top = max((abs(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)), default=0.0)
        return next((u for u in reversed(self.units) if top >= u[0]), self.units[0])


def _space(problem: Problem, **changes: Any) -> Problem:
    return dataclasses.replace(problem, space=dataclasses.replace(problem.space, **changes))


def _switch(text: str) -> bool:
    value = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}.get(text.strip().lower())
    if value is None:
        raise InputError("nondecreasing", f"expected on or off, got {shown(text)}")
    return value


def _block(text: str) -> str:
    if text not in BLOCK_TYPES:
        raise InputError("block", f"unknown block type {text!r}; the types are {', '.join(BLOCK_TYPES)}")
    return text


def _positive_int(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise InputError(name, f"expected a positive integer, got {shown(text)}")
        return value

    return parse


def _spread(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise InputError("max_depth_spread", f"expected an integer >= 0 or none, got {shown(text)}")
    return value


@lru_cache(maxsize=8)
def _model(table: str, batch: int | None):
    from ..hardware.latency import load_model

    return load_model(table, batch=batch)


def _table(problem: Problem, table: str) -> Problem:
    batch = problem.latency_model.predictor.batch if problem.latency_model is not None else None
    return dataclasses.replace(problem, latency_model=_model(table, batch))


_FLOPS_UNITS = ((1e3, "KFLOPs", "KFLOP"), (1e6, "MFLOPs", "MFLOP"), (1e9, "GFLOPs", "GFLOP"), (1e12, "TFLOPs", "TFLOP"))
_PARAMS_UNITS = ((1.0, "params", "param"), (1e3, "K params", "K params"), (1e6, "M params", "M params"))

AXES: dict[str, AxisKind] = {
    "flops": AxisKind(lambda t: parse_amount(t, "flops"), lambda p, v: dataclasses.replace(p, flops=v), "FLOPs budget", _FLOPS_UNITS, "flops"),
    "params": AxisKind(lambda t: parse_amount(t, "params"), lambda p, v: dataclasses.replace(p, params=v), "parameter budget", _PARAMS_UNITS,
                       "params"),
    "rho": AxisKind(lambda t: parse_amount(t, "rho"), lambda p, v: dataclasses.replace(p, rho=v), "rho0", budget="rho"),
    "latency": AxisKind(lambda t: parse_duration_ms(t, "latency"), lambda p, v: dataclasses.replace(p, latency=v), "latency budget",
                        ((1.0, "ms", "ms"),), "latency_ms"),
    "table": AxisKind(str, _table, "cost table"),
    "block": AxisKind(_block, lambda p, v: _space(p, block=v, inner_ratio=None), "block type"),
    "resolution": AxisKind(_positive_int("resolution"), lambda p, v: _space(p, resolution=v), "resolution", ((1.0, "px", "px"),)),
    "nondecreasing": AxisKind(_switch, lambda p, v: dataclasses.replace(p, nondecreasing=v), "non-decreasing widths"),
    "max_depth_spread": AxisKind(_spread, lambda p, v: dataclasses.replace(p, max_depth_spread=v), "max depth spread"),
}
"""The axes a sweep can vary, by name."""

BUDGETS = ("flops", "params", "latency", "rho")

MAX_POINTS = 10_000
"""Most values of one axis."""


def parse_axis(text: str) -> tuple[str, tuple]:
    """``NAME=V1,V2,...`` or, for budgets, ``NAME=LO:HI:N`` (N evenly spaced values, ends included)."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in AXES:
        raise InputError("--vary", f"expected NAME=V1,V2,... or NAME=LO:HI:N with NAME one of {', '.join(AXES)}, got {shown(text)}")
    kind = AXES[name]
    parts = values.split(":")
    if len(parts) == 3 and name in BUDGETS:
        lo, hi = kind.parse(parts[0]), kind.parse(parts[1])
        n = int(parts[2]) if re.fullmatch(r"[0-9]{1,5}", parts[2].strip()) else 0
        if not 1 <= n <= MAX_POINTS or (n == 1 and hi != lo):
            raise InputError("--vary", f"{name}: LO:HI:N needs a count N from 2 to {MAX_POINTS:,} (1 when LO == HI), got {shown(values)}")
        if hi < lo:
            raise InputError("--vary", f"{name}: LO:HI:N needs LO <= HI, got {shown(values)}")
        return name, tuple(lo + (hi - lo) * i / (n - 1) for i in range(n)) if n > 1 else (lo,)
    items = tuple(kind.parse(v) for v in values.split(",") if v.strip())
    if not items:
        raise InputError("--vary", f"{name}: no values given, e.g. {name}=1G,2G or {name}=1G:8G:8")
    return name, items


def points(axes: Mapping[str, Sequence]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, the first axis slowest."""
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]


def variant(problem: Problem, point: Mapping[str, Any]) -> Problem:
    """``problem`` with the point's values applied (in the axes' order)."""
    for name, value in point.items():
        problem = AXES[name].apply(problem, value)
    return problem
