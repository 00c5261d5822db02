"""Latency of units from a cost table, by interpolation between measured rows.

How: rows are grouped by what must match exactly (op, kernel, stride, fused
residual add, activation, batch). Within a group each row is a point
``(ln c_in, ln c_out, ln size)`` with value ``ln ms``; a unit inside the
convex hull of its group's points gets the piecewise-linear interpolation of
``ln ms`` over the Delaunay triangulation of those points (scipy's
``LinearNDInterpolator``; in one dimension ``numpy.interp``). Coordinates
that are constant in a group, or equal to another coordinate (``c_out ==
c_in`` for depthwise convs), are left out of the triangulation. A unit outside
the hull takes its nearest measured point (in the same log space) scaled by
the ratio of work, ``c_in * c_out * size^2`` for a dense conv and ``c *
size^2`` for the other ops: an extrapolation, counted in
:attr:`Predictor.extrapolated`.

Where the table's ``channel_block`` is ``B > 1``, the widths of kxk dense
convs and of depthwise convs that are at least ``B`` are rounded up to a
multiple of ``B`` first, in the rows and in the units alike (rows that meet
at one point are averaged in log space): such kernels run blocked, so a conv
of 40 channels costs what one of 48 does, and interpolating between 32 and
48 would be wrong.

An activation ``act`` falls back to rows measured with ``act == "any"``
(runtimes that fuse the activation). An op that the table never measures
(TinyNAS tables hold convs only) is *not covered*: it predicts 0 ms and
:meth:`Predictor.covers` says so, so reports can name it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

from .table import CostTable, Row, TableError
from .units import Unit

# Exponents of (c_in, c_out, size) in the work of each op, for extrapolation.
_WORK = {
    "conv": (1.0, 1.0, 2.0),
    "dwconv": (1.0, 0.0, 2.0),
    "se": (1.0, 0.0, 2.0),
    "pool": (1.0, 0.0, 2.0),
    "classifier": (1.0, 1.0, 0.0),
}
_FLOOR_MS = 1e-9


def blocked(c: np.ndarray, block: int) -> np.ndarray:
    """Widths of at least ``block`` rounded up to a multiple of it (others unchanged)."""
    return np.where(c >= block, -(-c // block) * block, c) if block > 1 else c


class _Group:
    """Interpolation over the rows of one group (see the module docstring)."""

    def __init__(self, op: str, points: np.ndarray, ms: np.ndarray):
        # scipy's interpolation takes half a second to import: only where a table is read
        from scipy.interpolate import LinearNDInterpolator
        from scipy.spatial import QhullError, cKDTree

        self.work = np.array(_WORK[op])
        points, inverse = np.unique(points, axis=0, return_inverse=True)
        logs = np.log(np.maximum(ms, _FLOOR_MS))
        self.points = points
        self.values = np.bincount(inverse.ravel(), weights=logs) / np.bincount(inverse.ravel())
        keep, fixed, same = [], [], []
        for d in range(3):
            col = points[:, d]
            twin = next((e for e in keep if np.array_equal(col, points[:, e])), None)
            if np.all(col == col[0]):
                fixed.append(d)
            elif twin is not None:
                same.append((d, twin))
            else:
                keep.append(d)
        self.keep, self.fixed, self.same = keep, fixed, same
        self.tree = cKDTree(points[:, keep]) if keep else None
        self.linear = None
        if len(keep) >= 2:
            try:
                self.linear = LinearNDInterpolator(points[:, keep], self.values)
            except (QhullError, ValueError):  # degenerate point sets: nearest point only
                self.linear = None
        elif len(keep) == 1:
            order = np.argsort(points[:, keep[0]], kind="stable")
            self.line = (points[order, keep[0]], self.values[order])

    def __call__(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``ln ms`` at the log-space points ``q`` (n x 3), and which were extrapolated."""
        est = np.full(len(q), np.nan)
        match = np.ones(len(q), dtype=bool)
        for d in self.fixed:
            match &= q[:, d] == self.points[0, d]
        for d, twin in self.same:  # measured only where these two coordinates are equal
            match &= q[:, d] == q[:, twin]
        if match.any():
            qk = q[match][:, self.keep]
            if len(self.keep) >= 2 and self.linear is not None:
                est[match] = self.linear(qk)
            elif len(self.keep) == 1:
                xs, ys = self.line
                x = qk[:, 0]
                inside = (x >= xs[0]) & (x <= xs[-1])
                sub = np.full(len(x), np.nan)
                sub[inside] = np.interp(x[inside], xs, ys)
                est[match] = sub
            elif not self.keep:
                est[match] = self.values[0]
        outside = np.isnan(est)
        if outside.any():
            qo = q[outside]
            if self.tree is not None:
                _, nearest = self.tree.query(qo[:, self.keep])
            else:
                nearest = np.zeros(len(qo), dtype=int)
            est[outside] = self.values[nearest] + (qo - self.points[nearest]) @ self.work
        return est, outside


class Predictor:
    """Unit latencies (ms, whole batch) from the rows of one batch size of a table."""

    def __init__(self, rows: Iterable[Row], *, batch: int, channel_block: int = 1, source: str = "table"):
        self.channel_block = channel_block
        self.source = source
        grouped: dict[tuple, list[Row]] = defaultdict(list)
        for row in rows:
            if row.batch == batch:
                grouped[row.unit.group].append(row)
        if not grouped:
            raise TableError(source, f"has no rows for batch {batch}")
        self.batch = batch
        self._rows = grouped
        self._groups: dict[tuple, _Group] = {}
        self._known: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.ops = frozenset(key[0] for key in grouped)
        self.extrapolated = 0

    @classmethod
    def from_table(cls, table: CostTable, *, batch: int | None = None, source: str = "table") -> "Predictor":
        """``batch`` defaults to 1, or to the table's only batch size; ``source`` names the table in errors."""
        batches = table.batches()
        if not batches:
            raise TableError(source, "holds no measured rows, only its header; profile or import a table with rows")
        if batch is None:
            batch = 1 if 1 in batches or len(batches) != 1 else batches[0]
        if batch not in batches:
            raise TableError("batch", f"the table has no rows for batch {batch}; it has {', '.join(map(str, batches))}")
        return cls(table.rows, batch=batch, channel_block=table.meta.channel_block, source=source)

    def covers(self, op: str) -> bool:
        """Whether the table measures ``op`` at all (an uncovered op predicts 0 ms)."""
        return op in self.ops

    def _group(self, unit: Unit) -> _Group | None:
        key = unit.group
        if key not in self._rows and unit.act != "any":
            key = (*key[:4], "any")
        if key not in self._rows:
            if not self.covers(unit.op):
                return None
            have = sorted({(k[1], k[2], k[3], k[4]) for k in self._rows if k[0] == unit.op})
            listed = ", ".join(f"k{k} s{s}{' +add' if f else ''} {a}" for k, s, f, a in have[:12])
            raise TableError(
                self.source,
                f"has no {unit.op} rows with kernel {unit.kernel}, stride {unit.stride}, "
                f"{'a fused add, ' if unit.fused_add else ''}activation {unit.act}; it has {listed}; "
                "profile a table that covers this space",
            )
        if key not in self._groups:
            rows = self._rows[key]
            widths = np.array([[r.unit.c_in, r.unit.c_out, r.unit.size] for r in rows], dtype=np.int64)
            points = np.log(self._blocked(unit, widths).astype(float))
            self._groups[key] = _Group(unit.op, points, np.array([r.ms for r in rows]))
        return self._groups[key]

    def _blocked(self, unit: Unit, widths: np.ndarray) -> np.ndarray:
        """``(c_in, c_out, size)`` rows with the channel blocking of ``unit``'s kind applied."""
        if self.channel_block > 1 and (unit.op == "dwconv" or (unit.op == "conv" and unit.kernel > 1)):
            widths = widths.copy()
            widths[:, :2] = blocked(widths[:, :2], self.channel_block)
        return widths

    def ms(self, unit: Unit) -> np.ndarray:
        """Latency of ``unit`` in ms; its widths and size may be arrays (broadcast together).

        Each group remembers the points it has predicted (sorted packed keys), so
        the same units asked for again, in any shape of array, cost a lookup.
        """
        c_in, c_out, size = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64) for v in (unit.c_in, unit.c_out, unit.size)))
        group = self._group(unit)
        if group is None:
            return np.zeros(c_in.shape)
        flat = self._blocked(unit, np.stack([c_in.ravel(), c_out.ravel(), size.ravel()], axis=1))
        packed = (flat[:, 0] << 42) | (flat[:, 1] << 21) | flat[:, 2]
        unique, inverse = np.unique(packed, return_inverse=True)
        keys, values, outside = self._known.get(unit.group, _EMPTY)
        at = np.minimum(np.searchsorted(keys, unique), max(len(keys) - 1, 0))
        hit = (keys[at] == unique) if len(keys) else np.zeros(len(unique), dtype=bool)
        if not hit.all():
            new = unique[~hit]
            coords = np.stack([new >> 42, (new >> 21) & _MASK, new & _MASK], axis=1)
            est, out = group(np.log(coords.astype(float)))
            keys, values, outside = (np.concatenate(x) for x in ((keys, new), (values, np.exp(est)), (outside, out)))
            order = np.argsort(keys, kind="stable")
            keys, values, outside = keys[order], values[order], outside[order]
            self._known[unit.group] = (keys, values, outside)
            at = np.searchsorted(keys, unique)
        self.extrapolated += int(outside[at][inverse.ravel()].sum())
        return values[at][inverse.ravel()].reshape(c_in.shape)


_MASK = (1 << 21) - 1
_EMPTY = (np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=bool))


def held_out(table: CostTable, *, fraction: float = 0.1, seed: int = 0, batch: int | None = None) -> np.ndarray:
    """Relative errors ``|predicted / measured - 1|`` of rows left out of the interpolation.

    A random ``fraction`` of the rows (of one batch size, or all batch sizes
    when ``batch`` is None) is held out; each is predicted from the others.
    """
    rng = np.random.default_rng(seed)
    rows = [r for r in table.rows if batch is None or r.batch == batch]
    out = rng.random(len(rows)) < fraction
    errors = []
    for b in sorted({r.batch for r in rows}):
        kept = [r for r, o in zip(rows, out) if not o and r.batch == b]
        test = [r for r, o in zip(rows, out) if o and r.batch == b]
        if not kept or not test:
            continue
        predictor = Predictor(kept, batch=b, channel_block=table.meta.channel_block)
        by_group: dict[tuple, list[Row]] = defaultdict(list)
        for r in test:
            if predictor.covers(r.unit.op) and r.ms > 0:
                by_group[r.unit.group].append(r)
        for (op, kernel, stride, fused, act), group in by_group.items():
            unit = Unit(op, [r.unit.c_in for r in group], [r.unit.c_out for r in group], kernel, stride, [r.unit.size for r in group], fused, act)
            try:
                predicted = predictor.ms(unit)
            except TableError:  # every row of this group was held out
                continue
            errors.extend(np.abs(predicted / np.array([r.ms for r in group]) - 1))
    return np.array(errors)
