"""A learned latency model of a cost table: gradient-boosted trees on the units' shape and work.

Where a table has not measured a shape, interpolating between neighbouring
measured shapes smears the steps a runtime takes between them (TensorRT's
fp16 k7 conv is 7.5x slower at side 6 than at side 8; a kernel choice
changes with the channel count's divisibility). A tree ensemble learns such
steps from every group, batch size and kernel of the table at once.

Model: LightGBM with linear models in the leaves (``linear_tree``), fitted
on the table's rows (every batch size) to ``ln ms``, deterministically
(``deterministic``, one thread, a fixed seed): the same rows and settings
give the same model on every run. Features of a unit (all of them functions
of its columns): its op, activation, kernel, stride, fused add, and the
log2 of batch, widths, sizes, work (multiply-accumulates), input and output
elements and weights, and whether each width is a multiple of 8, 16, 32, 64
(the channel tiles of GPU tensor cores and CPU vector units).

A fitted model is plain text (LightGBM's model format) and can be kept in a
folder by a digest of the rows and settings (:func:`fitted`), checked
against the digest of its own text when it is read back. Tables never hold
models: a model is always rebuilt from the rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from . import files
from .units import ACTS, OPS

FORMAT = "deepmad-latency-model"
VERSION = 1
FLOOR_MS = 1e-9
_TILES = (8, 16, 32, 64)
_MAX_MODEL_BYTES = 256 << 20


@dataclass(frozen=True, kw_only=True)
class LearnerSettings:
    """How the trees are grown (LightGBM's parameters of the same meaning).

    The defaults were chosen on the V100 TensorRT tables' held-out rows
    (``benchmarks/latency.py``): more or deeper trees gain little there and
    cost time in every prediction.
    """

    trees: int = 2000
    """Boosting rounds (``n_estimators``)."""
    learning_rate: float = 0.05
    leaves: int = 255
    """Leaves per tree (``num_leaves``)."""
    min_rows: int = 10
    """Least rows in a leaf (``min_child_samples``)."""
    linear_lambda: float = 0.1
    """Ridge penalty of the leaves' linear models."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("trees", "leaves", "min_rows"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < (2 if name == "leaves" else 1):
                raise ValueError(f"{name} must be an integer of at least {2 if name == 'leaves' else 1}, got {getattr(self, name)!r}")
        if not 0 < self.learning_rate <= 1:
            raise ValueError(f"learning_rate must be in (0, 1], got {self.learning_rate!r}")
        if not self.linear_lambda >= 0:
            raise ValueError(f"linear_lambda must be >= 0, got {self.linear_lambda!r}")

    def params(self) -> dict:
        return {
            "objective": "regression", "n_estimators": self.trees, "learning_rate": self.learning_rate,
            "num_leaves": self.leaves, "min_child_samples": self.min_rows, "linear_tree": True,
            "linear_lambda": self.linear_lambda, "seed": self.seed, "deterministic": True,
            "force_row_wise": True, "num_threads": 1, "verbose": -1,
        }


_WORK_EXPONENTS = {
    # (c_in, c_out, side_out, kernel^2) exponents of an op's multiply-accumulates
    "conv": (1, 1, 2, 1),
    "dwconv": (1, 0, 2, 1),
    "se": (1, 1, 0, 0),
    "pool": (1, 0, 2, 0),
    "classifier": (1, 1, 0, 0),
}


def features(op: str, kernel: int, stride: int, fused_add: bool, act: str, batch, c_in, c_out, size) -> np.ndarray:
    """The model's inputs (rows x columns, float) for units of one kind; widths, sizes and batch may be arrays."""
    b, ci, co, s = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(batch, c_in, c_out, size))
    side_out = np.ceil(s / stride)
    e_in, e_out, e_side, e_k = _WORK_EXPONENTS[op]
    work = ci**e_in * co**e_out * side_out**e_side * float(kernel * kernel) ** e_k
    weights = ci * (co if op != "dwconv" else 1.0) * (kernel * kernel if op in ("conv", "dwconv") else 1.0)
    n = len(b)
    cols = [
        np.full(n, OPS.index(op), dtype=float), np.full(n, ACTS.index(act), dtype=float),
        np.full(n, float(kernel)), np.full(n, float(stride)), np.full(n, float(fused_add)),
        np.log2(b), np.log2(ci), np.log2(co), np.log2(s), np.log2(side_out),
        np.log2(b * work), np.log2(b * ci * s * s), np.log2(b * co * side_out * side_out), np.log2(np.maximum(weights, 1.0)),
    ]
    for tile in _TILES:
        cols += [(ci % tile == 0).astype(float), (co % tile == 0).astype(float)]
    return np.stack(cols, axis=1)


CATEGORICAL = [0, 1]
"""Columns of :func:`features` that name a kind (op, activation), not a quantity."""


class Learned:
    """A fitted model: :meth:`ln_ms` of units' :func:`features`."""

    def __init__(self, booster) -> None:
        self._booster = booster

    def ln_ms(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros(0)
        return np.asarray(self._booster.predict(x, num_threads=1), dtype=float)

    def to_text(self) -> str:
        return self._booster.model_to_string()

    @classmethod
    def from_text(cls, text: str) -> "Learned":
        import lightgbm

        return cls(lightgbm.Booster(model_str=text))


def fit(x: np.ndarray, ln_ms: np.ndarray, settings: LearnerSettings = LearnerSettings()) -> Learned:
    """A model of ``ln_ms`` from the rows' :func:`features` ``x``."""
    import lightgbm

    data = lightgbm.Dataset(x, label=ln_ms, categorical_feature=CATEGORICAL, free_raw_data=False,
                            params={"verbose": -1, "linear_tree": True, "min_data_in_bin": 1})
    params = settings.params()
    rounds = params.pop("n_estimators")
    return Learned(lightgbm.train(params, data, num_boost_round=rounds))


def digest(x: np.ndarray, ln_ms: np.ndarray, settings: LearnerSettings) -> str:
    """What a model depends on, as a hex digest: the rows, the settings and LightGBM's version."""
    import lightgbm

    h = hashlib.sha256(json.dumps([FORMAT, VERSION, lightgbm.__version__, asdict(settings)]).encode())
    h.update(np.ascontiguousarray(x, dtype=float).tobytes())
    h.update(np.ascontiguousarray(ln_ms, dtype=float).tobytes())
    return h.hexdigest()


def fitted(x: np.ndarray, ln_ms: np.ndarray, settings: LearnerSettings = LearnerSettings(), *, folder: Path | None = None) -> Learned:
    """:func:`fit`, or the model fitted before on the same rows and settings and kept in ``folder``.

    A kept file is a JSON header line (format, version, the digest it was fitted
    for, the SHA-256 of the model text) and LightGBM's text; one that fails a
    check is fitted again and replaced. A folder that cannot be written is no cache.
    """
    key = digest(x, ln_ms, settings)
    path = folder / f"{key[:32]}.txt" if folder is not None else None
    if path is not None and path.is_file():
        try:
            header, _, text = files.read_text(path, _MAX_MODEL_BYTES).partition("\n")
            meta = json.loads(header)
            if (meta.get("format"), meta.get("version"), meta.get("key")) == (FORMAT, VERSION, key) \
                    and meta.get("sum") == hashlib.sha256(text.encode()).hexdigest():
                os.utime(path)  # recently used, for a cache that drops the least recently used first
                return Learned.from_text(text)
        except (OSError, ValueError, UnicodeDecodeError):
            pass
    model = fit(x, ln_ms, settings)
    if path is not None:
        text = model.to_text()
        header = json.dumps({"format": FORMAT, "version": VERSION, "key": key, "sum": hashlib.sha256(text.encode()).hexdigest()})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            files.write_bytes(path, (header + "\n" + text).encode())
        except (OSError, ValueError):
            pass
    return model


def training_set(rows: Iterable, *, channel_block: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """:func:`features` and ``ln ms`` of table rows (:class:`hwmodels.table.Row`), grouped by kind in a fixed order."""
    from .predict import blocked_widths

    kinds: dict[tuple, list] = {}
    for r in rows:
        kinds.setdefault((r.unit.op, r.unit.kernel, r.unit.stride, r.unit.fused_add, r.unit.act), []).append(r)
    xs, ys = [], []
    for (op, kernel, stride, fused, act), group in sorted(kinds.items(), key=lambda kv: repr(kv[0])):
        widths = np.array([[r.unit.c_in, r.unit.c_out, r.unit.size] for r in group], dtype=np.int64)
        widths = blocked_widths(op, kernel, widths, channel_block)
        xs.append(features(op, kernel, stride, fused, act, [r.batch for r in group], widths[:, 0], widths[:, 1], widths[:, 2]))
        ys.append(np.log(np.maximum([r.ms for r in group], FLOOR_MS)))
    if not xs:
        return np.zeros((0, 14 + 2 * len(_TILES))), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys)
