"""Engines built once: per process (the last few used), and on disk between runs.

A problem's engine (:mod:`deepmad.solvers.engine`) depends only on its space,
FLOPs convention, non-decreasing rule and latency model. In a process, the
last :data:`KEPT` engines are held (a sweep over one space builds one). On
disk, an engine is kept as plain arrays (``.npz``, read with
``allow_pickle=False``) named by a digest of what it depends on (with a
latency model, the digest of its table's rows, batch, calibration and
learner: :attr:`deepmad.hardware.latency.LatencyModel.digest`), with that description
and a digest of its arrays inside, both checked when it is read back; a file
that fails either is rebuilt. The folder (:mod:`deepmad.cachedir`) holds at
most ``$DEEPMAD_CACHE_MB`` megabytes, the least recently used files going
first; ``deepmad cache --clear`` empties it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..cachedir import folder, limit_bytes, models
from ..files import atomic_write_bytes
from ..problem.problem import Problem
from .engine import Costs, Engine, Latency, StageTable, StemTable, key

KEPT = 4
"""Engines held per process."""

FORMAT = 4
"""The layout of the files; a file of another layout is rebuilt."""

_held: OrderedDict = OrderedDict()


def engine_of(problem: Problem) -> Engine:
    """The engine of ``problem``'s options: held, read from disk, or built (and then kept)."""
    k = key(problem)
    if k in _held:
        _held.move_to_end(k)
        return _held[k]
    engine = _read(problem)
    if engine is None:
        engine = Engine.of(problem)
        _write(problem, engine)
    _held[k] = engine
    while len(_held) > KEPT:
        _held.popitem(last=False)
    return engine


def describe(problem: Problem) -> str:
    """What an engine depends on, as text (its file's name is this text's digest)."""
    latency = problem.latency_model.digest if problem.latency_model is not None else None
    return repr((FORMAT, dataclasses.astuple(problem.space), problem.flops_convention, problem.nondecreasing, latency))


def _path(problem: Problem) -> Path:
    return folder() / (hashlib.sha256(describe(problem).encode()).hexdigest()[:32] + ".npz")


def _arrays(engine: Engine) -> dict[str, np.ndarray]:
    out = {f"stem.{f.name}": np.asarray(getattr(engine.stem, f.name)) for f in dataclasses.fields(StemTable)}
    for j, t in enumerate(engine.stages):
        for f in dataclasses.fields(StageTable):
            value = getattr(t, f.name)
            if isinstance(value, Costs):
                for g in dataclasses.fields(Costs):
                    out[f"{j}.{f.name}.{g.name}"] = getattr(value, g.name)
            elif isinstance(value, Latency):
                for g in dataclasses.fields(Latency):
                    out[f"{j}.latency.{g.name}"] = getattr(value, g.name)
            elif value is not None:
                out[f"{j}.{f.name}"] = np.asarray(value)
    return out


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """A CRC-32 of the arrays' names, dtypes, shapes and bytes. It guards against a file damaged or
    cut short, not against one forged (a forger would rewrite the digest beside it): CRC-32 reads
    the 180 MB of an inverted-residual engine in 0.03 s where SHA-256 took 0.2 s of a solve's start."""
    crc = 0
    for name in sorted(arrays):
        a = arrays[name]
        crc = zlib.crc32(f"{name}:{a.dtype.str}:{a.shape}".encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(a).reshape(-1).view(np.uint8), crc)
    return f"crc32:{crc:08x}"


def _write(problem: Problem, engine: Engine) -> None:
    arrays = _arrays(engine)
    buffer = io.BytesIO()
    np.savez(buffer, __key__=np.array(describe(problem)), __sum__=np.array(_digest(arrays)), **arrays)
    data = buffer.getvalue()
    if len(data) > limit_bytes():
        return
    try:
        path = _path(problem)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data, force=True)
        _trim()
    except (OSError, ValueError):  # a cache that cannot be written is no cache: build each time
        pass


def _trim() -> None:
    files = sorted(_files(), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    while files and total > limit_bytes():
        old = files.pop(0)
        total -= old.stat().st_size
        old.unlink(missing_ok=True)


def _read(problem: Problem) -> Engine | None:
    path = _path(problem)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing, damaged or not ours: rebuilt
        return None
    if str(arrays.pop("__key__", "")) != describe(problem) or str(arrays.pop("__sum__", "")) != _digest(arrays):
        return None
    try:
        os.utime(path)  # recently used
        stem = StemTable(**{f.name: arrays[f"stem.{f.name}"] for f in dataclasses.fields(StemTable)})
        stem = dataclasses.replace(stem, layers=int(stem.layers))
        stages = []
        for j in range(len(problem.space.strides)):
            fields = {}
            for f in dataclasses.fields(StageTable):
                if f.name == "latency":
                    fields[f.name] = (Latency(*(arrays[f"{j}.latency.{g.name}"] for g in dataclasses.fields(Latency)))
                                      if f"{j}.latency.first" in arrays else None)
                elif f"{j}.{f.name}" in arrays:
                    fields[f.name] = arrays[f"{j}.{f.name}"]
                else:
                    fields[f.name] = Costs(*(arrays[f"{j}.{f.name}.{g.name}"] for g in dataclasses.fields(Costs)))
            for name in ("index", "first_layers", "rest_layers", "head_layers"):
                fields[name] = int(fields[name])
            fields["log_a"] = float(fields["log_a"])
            fields["kernels"] = tuple(int(k) for k in fields["kernels"])
            stages.append(StageTable(**fields))
    except (KeyError, TypeError, ValueError):
        return None
    return Engine(stem, tuple(stages), key(problem))


def _files() -> list[Path]:
    where = folder()
    return (list(where.glob("*.npz")) if where.is_dir() else []) + (list(models().glob("*.txt")) if models().is_dir() else [])


def clear() -> tuple[int, int]:
    """Empty the folder on disk (engines and latency models); how many files and bytes it held."""
    files = _files()
    size = sum(p.stat().st_size for p in files)
    for p in files:
        p.unlink(missing_ok=True)
    return len(files), size


def usage() -> tuple[int, int]:
    """How many files and bytes the folder on disk holds (engines and latency models)."""
    files = _files()
    return len(files), sum(p.stat().st_size for p in files)


__all__ = ["clear", "engine_of", "folder", "limit_bytes", "usage"]
