"""Latency of a design on a device, from a cost table (spec section 6).

A network runs as a sequence of units (:class:`hwmodels.units.Unit`), read
off the block layouts of :mod:`deepmad.model.blocks` exactly as the generated
PyTorch module executes them: every main-path conv with its BatchNorm and
activation where it has one (the last conv of a block with a shortcut fuses the addition
before the block's activation), the squeeze-excite, the shortcut's average
pool and 1x1 projection (no activation), the head conv, and the global pool
with the classifier. A table's predictor times each unit (interpolating
between measured points) and the calibration of the table, if any, turns the
sum into an end-to-end latency::

    latency_ms = scale * sum(unit ms) + per_unit_ms * (number of units)
                 + per_mweight_ms * (weights / 1e6) + fixed_ms

All latencies are in milliseconds for one forward pass of the table's batch.
Units whose op a table never measured (TinyNAS tables time convs only) add
nothing and are named in :attr:`LatencyReport.uncovered`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from hwmodels.predict import VERSION as PREDICTOR_VERSION, Predictor
from hwmodels.table import Calibration, CostTable, TableError, load
from hwmodels.units import Unit

from .. import cachedir
from ..errors import InputError
from ..model.architecture import Architecture
from ..model.blocks import BlockLayout


def block_units(layout: BlockLayout, side_in) -> list[Unit]:
    """The units of one block whose input map is ``side_in`` wide (widths may be numpy arrays)."""
    units = []
    side = side_in
    last = len(layout.convs) - 1
    for i, conv in enumerate(layout.convs):
        op = "dwconv" if conv.depthwise else "conv"
        fused = i == last and layout.shortcut != "none"
        units.append(Unit(op, conv.c_in, conv.c_out, conv.kernel, conv.stride, side, fused, layout.activation if conv.act else "none"))
        side //= conv.stride
        if layout.se is not None and layout.se.after == i:
            units.append(Unit("se", layout.se.channels, layout.se.hidden, 1, 1, side, False, "silu"))
    if layout.pools_shortcut:
        units.append(Unit("pool", layout.c_in, layout.c_in, 2, 2, side_in, False, "none"))
    if layout.projection is not None:
        units.append(Unit("conv", layout.c_in, layout.c_out, 1, 1, side, False, "none"))
    return units


def stem_unit(c_in: int, channels, kernel: int, stride: int, resolution: int) -> Unit:
    """The stem conv: ``c_in`` input channels to ``channels``, ``kernel x kernel``, on the input image."""
    return Unit("conv", c_in, channels, kernel, stride, resolution, False, "relu")


def head_units(c_last, head: int | None, side: int, num_classes: int) -> list[Unit]:
    """The head conv (where there is one) and the classifier after the last stage of width ``c_last``."""
    units = [Unit("conv", c_last, head, 1, 1, side, False, "relu")] if head else []
    return units + [Unit("classifier", head or c_last, num_classes, 1, 1, side, False, "none")]


def architecture_units(arch: Architecture) -> list[tuple[str, Unit]]:
    """Every unit of ``arch`` in forward order, named by the part it belongs to
    (``stem``, ``stages.j``, ``head``)."""
    side = arch.resolution
    out = [("stem", stem_unit(arch.in_channels, arch.stem.channels, arch.stem.kernel, arch.stem.stride, side))]
    side //= arch.stem.stride
    for j, _, layout in arch.blocks():
        out += [(f"stages.{j}", u) for u in block_units(layout, side)]
        side //= layout.stride
    out += [("head", u) for u in head_units(arch.stages[-1].channels, arch.head.channels if arch.head else None, side, arch.num_classes)]
    return out


@dataclass(frozen=True)
class LatencyReport:
    """Predicted latency (ms): ``parts`` per stem/stage/head (calibrated, without ``fixed_ms``)."""

    total_ms: float
    parts: dict[str, float]
    fixed_ms: float
    units: int
    uncovered: tuple[str, ...]
    extrapolated: int


@dataclass(frozen=True, eq=False)
class LatencyModel:
    """A table's predictor at one batch size, with the table's calibration."""

    predictor: Predictor
    calibration: Calibration = field(default_factory=Calibration)
    name: str = ""

    @classmethod
    def of(cls, table: CostTable, *, batch: int | None = None, name: str = "") -> "LatencyModel":
        """The model of ``table``; its learned part is kept in the cache folder (:mod:`deepmad.cachedir`)."""
        calibration = table.meta.calibration or Calibration()
        name = name or table.meta.device
        return cls(Predictor.from_table(table, batch=batch, source=name, model_folder=cachedir.models()), calibration, name)

    @cached_property
    def digest(self) -> str:
        """What the model's predictions depend on, as a hex digest: the table's rows and channel
        blocking, the batch, the calibration and the learner's settings."""
        p = self.predictor
        h = hashlib.sha256(json.dumps([PREDICTOR_VERSION, p.batch, p.channel_block, dataclasses.asdict(self.calibration),
                                       dataclasses.asdict(p.settings)]).encode())
        for row in p.rows:
            h.update(json.dumps(row.to_json()).encode())
        return h.hexdigest()

    def unit_ms(self, unit: Unit) -> np.ndarray:
        """Calibrated latency of one unit (widths may be arrays): ``scale * ms + per_unit_ms +
        per_mweight_ms * weights / 1e6 + per_melement_ms * activations / 1e6``, at least 0."""
        cal = self.calibration
        ms = cal.scale * self.predictor.ms(unit) + cal.per_unit_ms + cal.per_mweight_ms * (unit.weights / 1e6)
        if cal.per_melement_ms:
            ms = ms + cal.per_melement_ms * (unit.activations / 1e6)
        return np.maximum(ms, 0.0)

    def units_ms(self, units: list[Unit]):
        """Calibrated latency of a list of units (summed; arrays broadcast)."""
        return sum((self.unit_ms(u) for u in units), 0.0)

    def units_each_ms(self, units: list[Unit]) -> np.ndarray:
        """Calibrated latency of each unit of a list of scalar units, one predictor call per kind."""
        kinds: dict[tuple, list[int]] = {}
        for i, unit in enumerate(units):
            kinds.setdefault(unit.group, []).append(i)
        ms = np.zeros(len(units))
        for (op, kernel, stride, fused, act), where in kinds.items():
            group = [units[i] for i in where]
            ms[where] = self.unit_ms(Unit(op, np.array([u.c_in for u in group]), np.array([u.c_out for u in group]), kernel, stride,
                                          np.array([u.size for u in group]), fused, act))
        return ms

    def predict(self, arch: Architecture) -> LatencyReport:
        before = self.predictor.extrapolated
        named = architecture_units(arch)
        ms = self.units_each_ms([u for _, u in named])
        parts: dict[str, float] = {}
        for (name, _), value in zip(named, ms.tolist()):
            parts[name] = parts.get(name, 0.0) + value
        fixed = self.calibration.fixed_ms
        return LatencyReport(
            total_ms=sum(parts.values()) + fixed,
            parts=parts,
            fixed_ms=fixed,
            units=len(named),
            uncovered=tuple(sorted({u.op for _, u in named if not self.predictor.covers(u.op)})),
            extrapolated=self.predictor.extrapolated - before,
        )


TABLES_ENV = "DEEPMAD_TABLES"


def tables_dir() -> Path:
    """Where imported tables live under their device names: ``$DEEPMAD_TABLES``, or
    ``$XDG_DATA_HOME/deepmad/tables`` (``~/.local/share/deepmad/tables``)."""
    if os.environ.get(TABLES_ENV):
        return Path(os.environ[TABLES_ENV])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "deepmad" / "tables"


def installed_tables() -> list[str]:
    folder = tables_dir()
    return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []


def find_table(name_or_path: str) -> Path:
    """A table file: a path to one, or the device name of an imported table (``v100-trt-fp16``)."""
    path = Path(name_or_path)
    if path.suffix == ".jsonl" or os.sep in name_or_path or path.exists():
        return path
    named = tables_dir() / f"{name_or_path}.jsonl"
    if named.exists():
        return named
    have = installed_tables()
    hint = f"installed: {', '.join(have)}" if have else f"none is installed in {tables_dir()}; use 'deepmad import-table'"
    raise InputError("--table", f"no table file or device named {name_or_path!r} ({hint})")


def load_model(name_or_path: str, *, batch: int | None = None) -> LatencyModel:
    """The latency model of a table file or installed device name; bad tables raise :class:`InputError`."""
    path = find_table(name_or_path)
    try:
        table = load(path)
        return LatencyModel.of(table, batch=batch, name=str(path))
    except TableError as exc:
        raise InputError(exc.where if exc.where != "batch" else "--batch", exc.reason) from None
