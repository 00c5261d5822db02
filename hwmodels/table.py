"""Cost tables: measured latencies of units on one device, in a versioned JSON Lines file.

Format (``deepmad-cost-table``, version 1), UTF-8, one JSON object per line:

* line 1, the header::

    {"format": "deepmad-cost-table", "version": 1,
     "meta": {"device": "...", "backend": "...", "dtype": "fp32", "threads": 1,
              "date": "2026-11-26T03:00:00Z", "protocol": "...", "source": "...",
              "calibration": null}}

  ``threads`` is the CPU thread count of the measurement (``null`` where it
  does not apply); ``protocol`` says how each row was timed (warm-up,
  repeats, statistic, timer); ``channel_block`` (optional, default 1) is the
  channel blocking of the runtime's kxk and depthwise conv kernels: they run
  as if their widths were rounded up to a multiple of it (16 for oneDNN on
  AVX-512), which the predictor follows; ``calibration`` is ``null`` or
  ``{"scale": s, "per_unit_ms": u, "per_mweight_ms": w, "fixed_ms": f, "designs": n,
  "per_melement_ms": e}``: end-to-end latency of a network = the sum over its
  units of ``s * ms + u + w * (millions of weights) + e * (millions of
  activation elements)``, each at least 0, plus ``f`` (fitted by
  :mod:`hwmodels.calibrate` on ``n`` designs; ``per_melement_ms``, which may be
  missing, defaults to 0).
* every other line, one measured unit (:class:`hwmodels.units.Unit`)::

    {"op": "conv", "batch": 1, "c_in": 64, "c_out": 128, "kernel": 3, "stride": 2,
     "size": 56, "fused_add": false, "act": "relu",
     "ms": 0.512, "spread": 0.011, "repeats": 25}

  ``ms`` is the median latency of one call on the whole batch, in
  milliseconds; ``spread`` the interquartile range of the repeats in ms
  (``null`` where unknown); ``repeats`` the number of timed calls (``null``
  where unknown). Failed measurements are left out, never written.

Loading checks every line and fails with :class:`TableError` naming the file,
the line and the reason. Nothing in a table is ever evaluated as code.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from . import files
from .units import ACTS, OPS, Unit

FORMAT = "deepmad-cost-table"
VERSION = 1
MAX_BYTES = 256 << 20
MAX_INT = 1 << 20
ROW_KEYS = ("op", "batch", "c_in", "c_out", "kernel", "stride", "size", "fused_add", "act", "ms", "spread", "repeats")
META_KEYS = ("device", "backend", "dtype", "threads", "date", "protocol", "source", "channel_block", "calibration")
CALIBRATION_KEYS = ("scale", "per_unit_ms", "per_mweight_ms", "fixed_ms", "designs", "per_melement_ms")


class TableError(ValueError):
    """A cost table that cannot be used: ``where`` is ``file`` or ``file line N``."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Calibration:
    """End-to-end latency (ms) = the sum over units of ``max(0, scale * ms + per_unit_ms +
    per_mweight_ms * weights / 1e6 + per_melement_ms * activations / 1e6)``, plus ``fixed_ms``.

    In isolation a unit's weights stay in cache between timed calls; in a network they
    are read from memory each pass, which ``per_mweight_ms`` (>= 0) charges. A unit timed
    alone may also pay what a network pays once: a runtime's call overhead (a negative
    ``per_unit_ms``) and converting its input and output between the plain layout and the
    runtime's blocked one (ONNX Runtime's NCHWc: a negative ``per_melement_ms``, per
    million activation elements, :attr:`hwmodels.units.Unit.activations`)."""

    scale: float = 1.0
    per_unit_ms: float = 0.0
    per_mweight_ms: float = 0.0
    fixed_ms: float = 0.0
    designs: int = 0
    per_melement_ms: float = 0.0


@dataclass(frozen=True)
class TableMeta:
    """How and where a table was measured."""

    device: str
    backend: str
    dtype: str = "fp32"
    threads: int | None = None
    date: str = ""
    protocol: str = ""
    source: str = ""
    channel_block: int = 1
    calibration: Calibration | None = None


@dataclass(frozen=True)
class Row:
    """One measured unit at one batch size: median ``ms``, interquartile ``spread`` (ms), ``repeats``."""

    unit: Unit
    batch: int
    ms: float
    spread: float | None = None
    repeats: int | None = None

    @property
    def key(self) -> tuple:
        u = self.unit
        return (u.op, self.batch, u.c_in, u.c_out, u.kernel, u.stride, u.size, u.fused_add, u.act)

    def to_json(self) -> dict[str, Any]:
        u = self.unit
        return {
            "op": u.op, "batch": self.batch, "c_in": u.c_in, "c_out": u.c_out, "kernel": u.kernel,
            "stride": u.stride, "size": u.size, "fused_add": u.fused_add, "act": u.act,
            "ms": self.ms, "spread": self.spread, "repeats": self.repeats,
        }


@dataclass(frozen=True)
class CostTable:
    """A device's measured units. ``rows`` keep file order; keys are unique."""

    meta: TableMeta
    rows: tuple[Row, ...] = field(default=())

    def batches(self) -> tuple[int, ...]:
        return tuple(sorted({r.batch for r in self.rows}))

    def with_calibration(self, calibration: Calibration | None) -> "CostTable":
        return replace(self, meta=replace(self.meta, calibration=calibration))


# -- reading -------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer beyond the float range
        return False


def _names(keys: Iterable[Any]) -> str:
    """Keys for a message: plain names as they are, others quoted and escaped (one line)."""
    return ", ".join(k if isinstance(k, str) and k.isidentifier() else repr(k)[:60] for k in keys)


def _row(obj: Any) -> Row:
    if not isinstance(obj, dict):
        raise ValueError(f"a row must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in ROW_KEYS if k not in obj]
    if missing:
        raise ValueError(f"missing column {', '.join(missing)}")
    extra = sorted(set(obj) - set(ROW_KEYS))
    if extra:
        raise ValueError(f"unknown column {_names(extra)}; the columns are {', '.join(ROW_KEYS)}")
    if obj["op"] not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, got {obj['op']!r}")
    if obj["act"] not in ACTS:
        raise ValueError(f"act must be one of {', '.join(ACTS)}, got {obj['act']!r}")
    for name in ("batch", "c_in", "c_out", "kernel", "stride", "size"):
        v = obj[name]
        if not _is_int(v) or not 0 < v <= MAX_INT:
            raise ValueError(f"{name} must be an integer from 1 to {MAX_INT}, got {v!r}")
    if not isinstance(obj["fused_add"], bool):
        raise ValueError(f"fused_add must be true or false, got {obj['fused_add']!r}")
    if obj["op"] in ("dwconv", "pool") and obj["c_in"] != obj["c_out"]:
        raise ValueError(f"a {obj['op']} row needs c_in == c_out, got {obj['c_in']} and {obj['c_out']}")
    ms = obj["ms"]
    if not _number(ms) or ms < 0:
        raise ValueError(f"ms must be a finite number >= 0, got {ms!r} (failed measurements are left out)")
    spread, repeats = obj["spread"], obj["repeats"]
    if spread is not None and (not _number(spread) or spread < 0):
        raise ValueError(f"spread must be a finite number >= 0 or null, got {spread!r}")
    if repeats is not None and (not _is_int(repeats) or repeats <= 0):
        raise ValueError(f"repeats must be a positive integer or null, got {repeats!r}")
    unit = Unit(obj["op"], obj["c_in"], obj["c_out"], obj["kernel"], obj["stride"], obj["size"], obj["fused_add"], obj["act"])
    return Row(unit, obj["batch"], float(ms), None if spread is None else float(spread), repeats)


def _meta(obj: Any) -> TableMeta:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f'the first line must be the header {{"format": "{FORMAT}", "version": {VERSION}, "meta": {{...}}}}')
    version = obj.get("version")
    if not _is_int(version) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise ValueError(f"version {version} is newer than this deepmad reads ({VERSION}); upgrade deepmad")
    meta = obj.get("meta")
    if not isinstance(meta, dict):
        raise ValueError("the header needs a meta object")
    extra = sorted(set(meta) - set(META_KEYS))
    if extra:
        raise ValueError(f"unknown meta field {_names(extra)}; the fields are {', '.join(META_KEYS)}")
    for name in ("device", "backend"):
        if not isinstance(meta.get(name), str) or not meta[name].strip():
            raise ValueError(f"meta.{name} must be a non-empty string")
    for name in ("dtype", "date", "protocol", "source"):
        if not isinstance(meta.get(name, ""), str):
            raise ValueError(f"meta.{name} must be a string")
    threads = meta.get("threads")
    if threads is not None and (not _is_int(threads) or threads <= 0):
        raise ValueError(f"meta.threads must be a positive integer or null, got {threads!r}")
    block = meta.get("channel_block", 1)
    if not _is_int(block) or not 1 <= block <= 1024:
        raise ValueError(f"meta.channel_block must be an integer from 1 to 1024, got {block!r}")
    cal = meta.get("calibration")
    calibration = None
    if cal is not None:
        cal = {"per_melement_ms": 0.0, **cal} if isinstance(cal, dict) else cal
        if not isinstance(cal, dict) or set(cal) != set(CALIBRATION_KEYS):
            raise ValueError(f"meta.calibration must be null or an object with {', '.join(CALIBRATION_KEYS[:-1])} "
                             f"(and optionally {CALIBRATION_KEYS[-1]})")
        if not all(_number(cal[k]) for k in CALIBRATION_KEYS) or cal["scale"] <= 0 or cal["per_mweight_ms"] < 0 \
                or cal["fixed_ms"] < 0 or not _is_int(cal["designs"]):
            raise ValueError("meta.calibration: scale must be > 0, per_mweight_ms and fixed_ms >= 0, the other terms numbers, "
                             "designs an integer")
        calibration = Calibration(float(cal["scale"]), float(cal["per_unit_ms"]), float(cal["per_mweight_ms"]), float(cal["fixed_ms"]),
                                  cal["designs"], float(cal["per_melement_ms"]))
    return TableMeta(
        device=meta["device"], backend=meta["backend"], dtype=meta.get("dtype", "fp32"), threads=threads,
        date=meta.get("date", ""), protocol=meta.get("protocol", ""), source=meta.get("source", ""), channel_block=block,
        calibration=calibration,
    )


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def read_text(path: Path) -> str:
    """The UTF-8 text of a table file (at most :data:`MAX_BYTES`); :class:`TableError` otherwise."""
    try:
        return files.read_text(path, MAX_BYTES)
    except ValueError as exc:
        raise TableError(str(path), str(exc)) from None


def parse(lines: list[str], where: str) -> CostTable:
    """A table from its lines (blank lines ignored); :class:`TableError` on the first bad line."""
    meta = None
    rows: list[Row] = []
    seen: dict[tuple, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_reject_constant)
            if meta is None:
                meta = _meta(obj)
                continue
            row = _row(obj)
        except (ValueError, RecursionError) as exc:
            reason = f"not valid JSON ({exc})" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise TableError(f"{where} line {number}", reason) from None
        if row.key in seen:
            raise TableError(f"{where} line {number}", f"the same unit and batch as line {seen[row.key]}")
        seen[row.key] = number
        rows.append(row)
    if meta is None:
        raise TableError(where, "is empty; a cost table starts with its header line")
    return CostTable(meta, tuple(rows))


def load(path: str | Path) -> CostTable:
    """Read and check the table at ``path``."""
    return parse(read_text(Path(path)).split("\n"), str(path))


# -- writing -------------------------------------------------------------------


def header_line(meta: TableMeta) -> str:
    body = asdict(meta)
    return json.dumps({"format": FORMAT, "version": VERSION, "meta": body}, sort_keys=False)


def row_line(row: Row) -> str:
    return json.dumps(row.to_json())


def dump(table: CostTable) -> str:
    return "\n".join([header_line(table.meta), *(row_line(r) for r in table.rows)]) + "\n"


def save(table: CostTable, path: str | Path) -> Path:
    """Write ``table`` atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise TableError(str(path), f"folder {str(path.parent)!r} does not exist; create it first")
    try:
        files.write_bytes(path, dump(table).encode("utf-8"))
    except OSError as exc:  # a folder in the way, a name too long, no permission, a full disk
        raise TableError(str(path), f"cannot be written ({exc.strerror or exc})") from None
    return path


def append(path: str | Path, rows: Iterable[Row]) -> None:
    """Append rows to an existing table, each flushed to disk as it is written."""
    with open(path, "a", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(row_line(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
