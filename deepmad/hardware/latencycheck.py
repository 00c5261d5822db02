"""Checking a latency model against end-to-end measurements on this machine (``deepmad latency-check``).

Like the CLI, this module sits on top of the others: it builds the generated
PyTorch module of each design (:mod:`generators.pytorch`), times it whole
under the same protocol as the table's rows (:func:`hwmodels.profile.time_call`,
same batch, same thread count) and compares the table's prediction
(:mod:`deepmad.hardware.latency`). :func:`calibrate` fits the table's per-network
overhead the same way on other random designs.
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwmodels import calibrate as fitting
from hwmodels.predict import held_out
from hwmodels.profile import backend_of
from hwmodels.table import Calibration, CostTable

from .. import cachedir
from ..errors import InputError
from ..files import atomic_write_bytes
from ..model.architecture import Architecture
from ..problem.problem import Problem
from ..threads import limited
from .latency import LatencyModel, architecture_units
from .profiling import random_designs


NETWORK_SECONDS = 0.25
"""Least timing per instance of a whole network (s): longer than a unit's, for a steadier median."""


def measure_designs(archs: list[Architecture], *, batch: int = 1, device: str = "cpu", threads: int | None = 1,
                    backend: str = "torch") -> list[float]:
    """End-to-end latency (ms, median of the protocol's repeats) of each design's generated module,
    run by ``backend``: torch eager, or ONNX Runtime with ``threads`` intra-op threads on its ONNX
    export (:func:`hwmodels.profile.onnx_bytes`, as the table's units were)."""
    import torch

    from generators import pytorch
    from hwmodels.profile import check_backend, onnx_bytes, ort_session, steady_memory, time_call

    check_backend(backend, device)
    if not device.startswith("cuda") and threads is not None:
        torch.set_num_threads(threads)
    steady_memory()
    out = []
    for arch in archs:
        def make(arch: Architecture = arch):
            model = pytorch.build(arch).to(device)
            x = torch.randn(batch, arch.in_channels, arch.resolution, arch.resolution, device=device)
            if backend == "onnxruntime":
                session, feed = ort_session(onnx_bytes(model, (x,)), threads=threads), {"x0": x.numpy()}
                return lambda: session.run(None, feed)
            return lambda: model(x)

        with torch.inference_mode():
            out.append(time_call(make, device=device, min_seconds=NETWORK_SECONDS)[0])
    return out


def calibrate(problem: Problem, table: CostTable, *, designs: int = 10, seed: int = 1000, device: str = "cpu") -> Calibration:
    """The table's calibration, fitted on ``designs`` random designs of ``problem`` measured here: with
    the call and activation terms (either sign) for an ONNX Runtime table, without for torch's."""
    raw = LatencyModel.of(table.with_calibration(None))
    archs = random_designs(problem, designs, seed=seed)
    sums, counts, weights, activations, units = [], [], [], [], []
    for arch in archs:
        named = [u for _, u in architecture_units(arch)]
        each = raw.units_each_ms(named)
        sums.append(float(sum(each)))
        counts.append(len(named))
        weights.append(sum(u.weights for u in named))
        activations.append(sum(u.activations for u in named))
        units.extend((ms, u.weights, u.activations) for ms, u in zip(each, named))
    backend = backend_of(table.meta)
    measured = measure_designs(archs, batch=raw.predictor.batch, device=device, threads=table.meta.threads, backend=backend)
    if backend != "onnxruntime":
        # torch eager pays its per-call costs in a network too: the call and layout terms only overfit
        # (r18 space, 30 designs: within 10 % fell from 87 to 80 % with them, 20 designs fitted).
        return fitting.fit(sums, counts, weights, measured)
    return fitting.fit(sums, counts, weights, measured, activations, np.array(units))


def _calibrate_file(problem: Problem, path: str, designs: int, seed: int, device: str) -> Calibration:
    from hwmodels.table import load

    return calibrate(problem, load(path), designs=designs, seed=seed, device=device)


def calibrate_apart(problem: Problem, path: str | Path, *, designs: int = 20, seed: int = 1000, device: str = "cpu") -> Calibration:
    """:func:`calibrate` for the table at ``path``, in a fresh Python process.

    A process that has just timed thousands of units holds a large heap, and
    networks time differently there (a fixed ~0.6 ms more on this project's
    CPU) than in a process that runs one network, as deployment and
    ``deepmad latency-check`` do.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_calibrate_file, problem, str(path), designs, seed, device).result()


SPEED_ROWS = 24
"""Rows of a table timed again by :func:`speed`."""


def speed(table: CostTable, *, batch: int = 1, rows: int = SPEED_ROWS, seed: int = 0, device: str = "cpu", threads: int | None = 1,
          backend: str = "torch") -> float:
    """How fast this machine runs the table's units now against when they were measured: ``rows``
    random rows (of ``batch``, from the longer half, whose times are the steadier) timed again
    under the table's protocol, their summed time over their summed recorded time (1.3: units
    take 30 % longer now). Summed, so that the units a network spends its time in weigh most:
    compute-bound convs slow down most when a neighbour shares the core.

    A shared machine drifts: on this project's 2-core VM the same conv took 0.55 ms when its table
    was profiled and 0.75 ms two hours later, with nothing else running. No prediction from a
    table can follow that; the ratio tells drift apart from the model's error."""
    import numpy as np
    import torch

    from hwmodels.profile import measure, steady_memory

    if not device.startswith("cuda") and threads is not None:
        torch.set_num_threads(threads)
    steady_memory()
    usable = sorted((r for r in table.rows if r.batch == batch and r.ms > 0), key=lambda r: r.ms)
    usable = usable[len(usable) // 2:]
    if not usable:
        return 1.0
    picked = np.random.default_rng(seed).choice(len(usable), size=min(rows, len(usable)), replace=False)
    again = [measure(usable[i].unit, batch=batch, device=device, backend=backend, threads=threads).ms for i in picked]
    return float(sum(again) / sum(usable[i].ms for i in picked))


@dataclass(frozen=True)
class CheckResult:
    """Predicted and measured latencies (ms) of random designs, and the error figures (percent);
    ``speed`` (:func:`speed`, the mean of its value before and after the designs were measured)
    and the figures of the predictions scaled by it, where measured."""

    names: list[str]
    predicted: list[float]
    measured: list[float]
    figures: dict[str, float]
    speed: float | None = None
    figures_now: dict[str, float] | None = None


def check(problem: Problem, model: LatencyModel, *, designs: int = 30, seed: int = 0, device: str = "cpu", threads: int | None = 1,
          backend: str = "torch", table: CostTable | None = None) -> CheckResult:
    """``designs`` random designs of ``problem``: ``model``'s prediction and their latency measured
    here on ``backend`` with ``threads``; with the model's ``table``, also the machine's
    :func:`speed` against it, before and after."""
    archs = random_designs(problem, designs, seed=seed)
    with limited():
        predicted = [model.predict(a).total_ms for a in archs]
    batch = model.predictor.batch
    timing = dict(batch=batch, device=device, threads=threads, backend=backend)
    before = speed(table, **timing) if table is not None else None
    measured = measure_designs(archs, **timing)
    result = CheckResult([a.name for a in archs], predicted, measured, fitting.errors(predicted, measured))
    if table is None:
        return result
    now = (before + speed(table, seed=1, **timing)) / 2
    return dataclasses.replace(result, speed=now, figures_now=fitting.errors([p * now for p in predicted], measured))


def held_out_figures(table: CostTable, *, fraction: float = 0.1, seed: int = 0, batch: int | None = None) -> dict[str, float]:
    """Accuracy on rows left out of the interpolation (percent), for tables not measurable here."""
    if not 0 < fraction < 1:
        raise InputError("--fraction", f"must be between 0 and 1, got {fraction!r}")
    batches = table.batches()
    if not batches:
        raise InputError("--table", "holds no measured rows, only its header; profile or import a table with rows")
    if batch is not None and batch not in batches:
        raise InputError("--batch", f"the table has no rows for batch {batch}; it has {', '.join(map(str, batches))}")
    with limited():
        rel = held_out(table, fraction=fraction, seed=seed, batch=batch, model_folder=cachedir.models())
    if not len(rel):
        raise InputError("--fraction", f"no row could be held out and predicted from the others in {len(table.rows)} rows; raise it")
    return {
        "rows": float(len(rel)),
        "median_abs": float(100 * _median(rel)),
        "within_5": float(100 * (rel <= 0.05).mean()),
        "within_10": float(100 * (rel <= 0.10).mean()),
        "within_15": float(100 * (rel <= 0.15).mean()),
        "rmspe": float(100 * ((rel**2).mean() ** 0.5)),
    }


def _median(x) -> float:
    return float(np.median(x)) if len(x) else float("nan")


def scatter(result: CheckResult, path: str | Path, *, title: str) -> None:
    """Predicted against measured latency, with the ±10 % band, as a PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=120)
    lo = 0.9 * min(result.measured + result.predicted)
    hi = 1.1 * max(result.measured + result.predicted)
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="predicted = measured")
    ax.fill_between([lo, hi], [0.9 * lo, 0.9 * hi], [1.1 * lo, 1.1 * hi], color="tab:green", alpha=0.15, label="±10 %")
    ax.scatter(result.measured, result.predicted, s=18, color="tab:blue", label=f"{len(result.measured)} random designs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.tick_params(which="minor", labelsize=7)
    ax.set_xlabel("measured end-to-end latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    f = result.figures
    ax.set_title(f"{title}\nwithin ±10 %: {f['within_10']:.0f} %, RMSPE {f['rmspe']:.1f} %", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
