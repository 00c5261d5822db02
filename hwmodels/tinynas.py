"""Import of TinyNAS op-profiler tables (``conv_data.<dtype>.out``).

Each line is ``{Conv_type,Batch,In_C,In_H,In_W,Out_C,Kernel,Stride,ElmtFused} latency_ms``:
``Conv_type`` is ``Regular`` (a dense conv) or ``Depthwise``; the latency is
for the whole batch in milliseconds under TensorRT, with BatchNorm and the
activation fused into the conv and, where ``ElmtFused`` is 1, the residual
addition too; ``-1`` marks a failed measurement. Lines are parsed as
literals by a regular expression, never evaluated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .table import MAX_INT, CostTable, Row, TableError, TableMeta, read_text
from .units import Unit

_LINE = re.compile(r"\{(Regular|Depthwise),([0-9]+),([0-9]+),([0-9]+),([0-9]+),([0-9]+),([0-9]+),([0-9]+),([01])\}[ \t]+(-1|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")
DTYPES = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Imported:
    """An imported table and what was left out: ``failed`` rows (latency -1) and ``non_square`` maps."""

    table: CostTable
    failed: int
    non_square: int


def import_tinynas(path: str | Path, *, device: str = "NVIDIA V100", dtype: str | None = None, backend: str = "TensorRT") -> Imported:
    """Read a TinyNAS table. ``dtype`` defaults to the one in the file name (``conv_data.fp16.out``)."""
    path = Path(path)
    for name, value in (("device", device), ("backend", backend)):
        if not isinstance(value, str) or not value.strip():
            raise TableError(str(path), f"the {name} must be a non-empty name, got {value!r}")  # a table header needs one
    if dtype is None:
        found = [d for d in DTYPES if f".{d}." in path.name]
        if len(found) != 1:
            raise TableError(str(path), f"cannot tell the data type from the file name; give it ({', '.join(DTYPES)})")
        dtype = found[0]
    text = read_text(path)
    rows: dict[tuple, Row] = {}
    failed = non_square = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line.strip())
        if not match:
            raise TableError(f"{path} line {number}", "expected {Conv_type,Batch,In_C,In_H,In_W,Out_C,Kernel,Stride,ElmtFused} latency_ms")
        kind, *ints, latency = match.groups()
        if any(len(v.lstrip("0")) > len(str(MAX_INT)) for v in ints):  # also spares int() thousands of digits
            raise TableError(f"{path} line {number}", f"sizes must be integers from 1 to {MAX_INT}")
        batch, c_in, h, w, c_out, kernel, stride, fused = map(int, ints)
        if min(batch, c_in, h, w, c_out, kernel, stride) <= 0 or max(batch, c_in, h, w, c_out, kernel, stride) > MAX_INT:
            raise TableError(f"{path} line {number}", f"sizes must be integers from 1 to {MAX_INT}")
        if latency == "-1":
            failed += 1
            continue
        ms = float(latency)
        if not math.isfinite(ms):
            raise TableError(f"{path} line {number}", f"the latency {latency[:20]}{'...' if len(latency) > 20 else ''} ms is not a finite number")
        if h != w:
            non_square += 1
            continue
        if kind == "Depthwise" and c_in != c_out:
            raise TableError(f"{path} line {number}", f"a Depthwise row needs In_C == Out_C, got {c_in} and {c_out}")
        op = "conv" if kind == "Regular" else "dwconv"
        row = Row(Unit(op, c_in, c_out, kernel, stride, h, bool(fused), "any"), batch, ms)
        if row.key in rows:
            raise TableError(f"{path} line {number}", "the same conv is measured twice")
        rows[row.key] = row
    if not rows:
        raise TableError(str(path), "holds no successful measurement")
    meta = TableMeta(
        device=device,
        backend=backend,
        dtype=dtype,
        protocol="TinyNAS op profiler: whole-batch latency per conv, BN and activation fused",
        source=f"imported from {path.name} (TinyNAS op-profiler format)",
    )
    return Imported(CostTable(meta, tuple(rows.values())), failed, non_square)
