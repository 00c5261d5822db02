"""Latency of units from a cost table: measured rows on a lattice, a learned model in between.

How: rows are grouped by what must match exactly (op, kernel, stride, fused
residual add, activation, batch). A group's rows are points ``(ln c_in, ln
c_out, ln size)`` with value ``ln ms``; the values each coordinate takes in
the group are the axes of a lattice. A lattice point that a row measured
holds the row's value (rows that meet at one point are averaged in log
space); every other point that a prediction needs is filled once by the
table's learned model (:mod:`hwmodels.learned`, fitted on all the table's
rows, every batch size: it knows the runtime's steps between shapes where
interpolation would smear them). A unit is predicted by multilinear
interpolation of ``ln ms`` between the lattice points around it, so a unit
that a row measured gets exactly that row's time.

A coordinate that is constant in a group, or equal to another coordinate
(``c_out == c_in`` for depthwise convs, or a dense conv measured only on that
diagonal), is not an axis. A unit beyond the lattice (a wider conv, another
size, off such a diagonal) takes the nearest lattice point scaled by the
ratio of work, ``c_in * c_out * size^2`` for a dense conv and ``c *
size^2`` for the other ops: an extrapolation, counted in
:attr:`Predictor.extrapolated`.

Where the table's ``channel_block`` is ``B > 1``, the widths of kxk dense
convs and of depthwise convs that are at least ``B`` are rounded up to a
multiple of ``B`` first, in the rows and in the units alike: such kernels run
blocked, so a conv of 40 channels costs what one of 48 does.

An activation ``act`` falls back to rows measured with ``act == "any"``
(runtimes that fuse the activation). An op that the table never measures
(TinyNAS tables hold convs only) is *not covered*: it predicts 0 ms and
:meth:`Predictor.covers` says so, so reports can name it.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import learned
from .learned import FLOOR_MS, LearnerSettings
from .table import CostTable, Row, TableError
from .units import Unit

VERSION = 2
"""How predictions are made (2: lattice and learned model; 1: Delaunay interpolation). Caches of
predictions name it, so that a new way of predicting is never mixed with an old one's results."""

# Exponents of (c_in, c_out, size) in the work of each op, for extrapolation.
_WORK = {
    "conv": (1.0, 1.0, 2.0),
    "dwconv": (1.0, 0.0, 2.0),
    "se": (1.0, 0.0, 2.0),
    "pool": (1.0, 0.0, 2.0),
    "classifier": (1.0, 1.0, 0.0),
}


def blocked(c: np.ndarray, block: int) -> np.ndarray:
    """Widths of at least ``block`` rounded up to a multiple of it (others unchanged)."""
    return np.where(c >= block, -(-c // block) * block, c) if block > 1 else c


def blocked_widths(op: str, kernel: int, widths: np.ndarray, block: int) -> np.ndarray:
    """``(c_in, c_out, size)`` rows with the channel blocking of a kxk or depthwise conv applied."""
    if block > 1 and (op == "dwconv" or (op == "conv" and kernel > 1)):
        widths = widths.copy()
        widths[:, :2] = blocked(widths[:, :2], block)
    return widths


class _Lattice:
    """``ln ms`` of one group on the lattice of its measured coordinates (see the module docstring).

    ``fill(points)`` gives the learned ``ln ms`` at log-space points (n x 3) that no row measured.
    """

    def __init__(self, op: str, points: np.ndarray, ms: np.ndarray, fill: Callable[[np.ndarray], np.ndarray]):
        self.work = np.array(_WORK[op])
        points, inverse = np.unique(points, axis=0, return_inverse=True)
        logs = np.log(np.maximum(ms, FLOOR_MS))
        values = np.bincount(inverse.ravel(), weights=logs) / np.bincount(inverse.ravel())
        self.keep, self.same = [], []
        for d in range(3):
            twin = next((e for e in self.keep if np.array_equal(points[:, d], points[:, e])), None)
            if twin is not None:
                self.same.append((d, twin))
            else:
                self.keep.append(d)
        self.axes = [np.unique(points[:, d]) for d in self.keep]
        self.grid = np.full(tuple(len(a) for a in self.axes), np.nan)
        self.grid[tuple(np.searchsorted(a, points[:, d]) for a, d in zip(self.axes, self.keep))] = values
        self.fill = fill

    def __call__(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``ln ms`` at the log-space points ``q`` (n x 3), and which were extrapolated."""
        shift = np.zeros(len(q))
        outside = np.zeros(len(q), dtype=bool)
        for d, twin in self.same:  # measured only where the two coordinates are equal
            off = q[:, d] - q[:, twin]
            shift += off * self.work[d]
            outside |= off != 0
        lows, fractions = [], []
        for axis, d in zip(self.axes, self.keep):
            x = q[:, d]
            clamped = np.clip(x, axis[0], axis[-1])
            shift += (x - clamped) * self.work[d]
            outside |= x != clamped
            if len(axis) == 1:
                lows.append(np.zeros(len(q), dtype=np.int64))
                fractions.append(np.zeros(len(q)))
                continue
            lo = np.clip(np.searchsorted(axis, clamped, side="right") - 1, 0, len(axis) - 2)
            lows.append(lo)
            fractions.append((clamped - axis[lo]) / (axis[lo + 1] - axis[lo]))
        corners = []
        for steps in itertools.product((0, 1), repeat=len(self.axes)):
            weight = np.ones(len(q))
            index = []
            for step, lo, t, axis in zip(steps, lows, fractions, self.axes):
                weight = weight * (t if step else 1.0 - t)
                index.append(np.minimum(lo + step, len(axis) - 1))
            corners.append((weight, np.ravel_multi_index(tuple(index), self.grid.shape)))
        flat = self.grid.reshape(-1)
        needed = np.unique(np.concatenate([at[w > 0] for w, at in corners]))
        missing = needed[np.isnan(flat[needed])]
        if len(missing):
            coords = np.zeros((len(missing), 3))
            for axis, d, i in zip(self.axes, self.keep, np.unravel_index(missing, self.grid.shape)):
                coords[:, d] = axis[i]
            for d, twin in self.same:
                coords[:, d] = coords[:, twin]
            flat[missing] = self.fill(coords)
        est = shift.copy()
        for weight, at in corners:
            est += np.where(weight > 0, weight * flat[at], 0.0)
        return est, outside


class Predictor:
    """Unit latencies (ms, whole batch) at one batch size of a table.

    ``rows`` are all the table's rows: those of ``batch`` make the lattices, and
    all of them teach the learned model (fitted on first need with
    ``settings``, or taken from ``model_folder`` where it was kept; see
    :func:`hwmodels.learned.fitted`). ``model`` passes a model fitted before on
    these rows (a held-out check fits one for every batch size).
    """

    def __init__(self, rows: Iterable[Row], *, batch: int, channel_block: int = 1, source: str = "table",
                 settings: LearnerSettings = LearnerSettings(), model_folder: Path | None = None,
                 model: learned.Learned | None = None):
        self.channel_block = channel_block
        self.source = source
        self.rows = tuple(rows)
        grouped: dict[tuple, list[Row]] = defaultdict(list)
        for row in self.rows:
            if row.batch == batch:
                grouped[row.unit.group].append(row)
        if not grouped:
            raise TableError(source, f"has no rows for batch {batch}")
        self.batch = batch
        self.settings = settings
        self.model_folder = model_folder
        self._model = model
        self._rows = grouped
        self._groups: dict[tuple, _Lattice] = {}
        self._known: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.ops = frozenset(key[0] for key in grouped)
        self.extrapolated = 0

    @property
    def model(self) -> learned.Learned:
        """The learned model of the table's rows (fitted, or read from ``model_folder``, on first use)."""
        if self._model is None:
            x, y = learned.training_set(self.rows, channel_block=self.channel_block)
            self._model = learned.fitted(x, y, self.settings, folder=self.model_folder)
        return self._model

    @classmethod
    def from_table(cls, table: CostTable, *, batch: int | None = None, source: str = "table",
                   settings: LearnerSettings = LearnerSettings(), model_folder: Path | None = None) -> "Predictor":
        """``batch`` defaults to 1, or to the table's only batch size; ``source`` names the table in errors."""
        batches = table.batches()
        if not batches:
            raise TableError(source, "holds no measured rows, only its header; profile or import a table with rows")
        if batch is None:
            batch = 1 if 1 in batches or len(batches) != 1 else batches[0]
        if batch not in batches:
            raise TableError("batch", f"the table has no rows for batch {batch}; it has {', '.join(map(str, batches))}")
        return cls(table.rows, batch=batch, channel_block=table.meta.channel_block, source=source, settings=settings,
                   model_folder=model_folder)

    def covers(self, op: str) -> bool:
        """Whether the table measures ``op`` at all (an uncovered op predicts 0 ms)."""
        return op in self.ops

    def _group(self, unit: Unit) -> _Lattice | None:
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
            op, kernel, stride, fused, act = key

            def fill(coords: np.ndarray) -> np.ndarray:
                c_in, c_out, size = np.rint(np.exp(coords)).T
                return self.model.ln_ms(learned.features(op, kernel, stride, fused, act, self.batch, c_in, c_out, size))

            self._groups[key] = _Lattice(unit.op, points, np.array([r.ms for r in rows]), fill)
        return self._groups[key]

    def _blocked(self, unit: Unit, widths: np.ndarray) -> np.ndarray:
        """``(c_in, c_out, size)`` rows with the channel blocking of ``unit``'s kind applied."""
        return blocked_widths(unit.op, unit.kernel, widths, self.channel_block)

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


def held_out(table: CostTable, *, fraction: float = 0.1, seed: int = 0, batch: int | None = None,
             settings: LearnerSettings = LearnerSettings(), model_folder: Path | None = None) -> np.ndarray:
    """Relative errors ``|predicted / measured - 1|`` of rows left out of the model.

    A random ``fraction`` of the rows (of one batch size, or of all batch sizes
    when ``batch`` is None) is held out; each is predicted by a predictor of the
    rows kept (one model fitted on the kept rows of every batch size, kept in
    ``model_folder`` where given, as :class:`Predictor` keeps it).
    """
    rng = np.random.default_rng(seed)
    out = rng.random(len(table.rows)) < fraction
    kept = [r for r, o in zip(table.rows, out) if not o]
    model: learned.Learned | None = None
    errors = []
    for b in sorted({r.batch for r in table.rows} if batch is None else {batch}):
        test = [r for r, o in zip(table.rows, out) if o and r.batch == b]
        if not test or not any(r.batch == b for r in kept):
            continue
        predictor = Predictor(kept, batch=b, channel_block=table.meta.channel_block, settings=settings, model=model,
                              model_folder=model_folder)
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
        model = predictor._model
    return np.array(errors)
