"""Measuring units on this machine with torch: a cost table, row by row, resumable.

Protocol (written into the table's ``meta.protocol``): the unit is built as
the same torch modules a generated model runs (``Conv2d`` without bias,
``BatchNorm2d``, the activation in place; eval mode, ``torch.inference_mode``),
on random input of the row's batch size, :data:`INSTANCES` times afresh; for
each instance :data:`WARMUP` calls are discarded, then calls are timed one by
one until at least :data:`MIN_REPEATS` calls and :data:`MIN_SECONDS` of
timing (at most :data:`MAX_REPEATS`); the row keeps the median and the
interquartile range of all timed calls. On CPU the timer is ``time.perf_counter`` with
``torch.set_num_threads(threads)``; on CUDA, CUDA events after a synchronise.

Two backends run the units: ``torch`` (eager, as above) and ``onnxruntime``
(CPU): the same torch modules exported to ONNX (opset :data:`OPSET`; torch's
TorchScript exporter, since the dynamo exporter takes 0.8 s a unit, half an
hour for a preset's table), run by an ONNX Runtime session with
``threads`` intra-op threads, one inter-op thread and every graph
optimisation (BatchNorm folded, activations and adds fused, NCHWc blocked
convs). A table records its backend (``meta.backend``, see
:func:`backend_of`); end-to-end checks time whole networks on the same one,
exported the same way (:func:`onnx_bytes`).

:func:`profile` appends each row to the table file as soon as it is measured
(flushed to disk), so an interrupted run loses nothing: run it again with the
same file and it measures only the rows still missing.
"""

from __future__ import annotations

import ctypes
import math
import platform
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from .table import CostTable, Row, TableError, TableMeta, append, load, parse, save
from .units import Unit

BACKENDS = ("torch", "onnxruntime")
OPSET = 18
INSTANCES = 2
WARMUP = 2
"""Fresh instances per row, and calls discarded per instance. Two of each time a row as well as
three did (40 rows of deepmad-29m-224's space, timed twice each way: the same row differs by 0.9 %
median, 3 % at the 90th percentile, either way; the two protocols' means agree to 0.1 %) in 60 %
of the time, which brings a preset's table under 15 minutes."""
MIN_REPEATS = 5
MAX_REPEATS = 50
MIN_SECONDS = 0.02
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters
CPU_BLOCKS = {"AVX512": 16, "AVX2": 8}
"""Channel blocking of oneDNN's direct conv kernels by the CPU's vector width (fp32 lanes)."""


def steady_memory() -> bool:
    """Keep freed memory in the process (glibc: no ``mmap`` for large blocks, no trimming).

    Otherwise a large output buffer is mapped afresh and page-faulted on every
    call, or not, depending on the allocator's history: on this project's CPU
    a 3-channel stem conv then takes 0.24 or 1.9 ms in turn. With this, a unit
    and a whole network are timed in the same steady state, the state of a
    long-running inference process. Returns whether it applied (glibc only).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def backend_of(meta: TableMeta) -> str:
    """The backend (one of :data:`BACKENDS`) of a table's ``meta.backend`` text."""
    return "onnxruntime" if meta.backend.lower().startswith("onnxruntime") else "torch"


def protocol(device: str, backend: str = "torch") -> str:
    timer = "CUDA events after synchronize" if device.startswith("cuda") else "time.perf_counter; glibc malloc without mmap or trimming"
    runs = (f"torch {_torch().__version__} eager, eval, inference_mode" if backend == "torch" else
            f"ONNX Runtime {_onnxruntime().__version__} CPUExecutionProvider, graph optimisation all, sequential, the unit "
            f"exported from torch {_torch().__version__} (TorchScript exporter, opset {OPSET})")
    return (
        f"{runs}; {INSTANCES} fresh instances (module and input), each "
        f"{WARMUP} warm-up calls then timed calls until >= {MIN_REPEATS} calls and >= {MIN_SECONDS:g} s (at most "
        f"{MAX_REPEATS}); median and interquartile range of all timed calls; timer {timer}"
    )


def _torch():
    import torch

    return torch


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise TableError("--backend", "onnxruntime is not installed: pip install 'deepmad[onnx]'") from None
    return onnxruntime


def check_backend(backend: str, device: str) -> None:
    """A :class:`TableError` (where ``--backend``) for an unknown backend or one this device does not run."""
    if backend not in BACKENDS:
        raise TableError("--backend", f"expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnxruntime":
        if device != "cpu":
            raise TableError("--backend", f"onnxruntime runs on --device cpu here, not {device}")
        _onnxruntime()


def ort_session(model: bytes, *, threads: int | None):
    """An ONNX Runtime CPU session of an ONNX file's bytes, timed as the module docstring says."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnx_bytes(module, args: tuple) -> bytes:
    """``module`` (eval mode) called on ``args`` as ONNX bytes, for timing: the TorchScript exporter
    (quietly), inputs named ``x0``, ``x1``, ... Units and whole networks are timed from the same
    exporter's graphs."""
    import io
    import warnings

    torch = _torch()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=OPSET, input_names=[f"x{i}" for i in range(len(args))])
    return buffer.getvalue()


def module_for(unit: Unit):
    """The torch module a unit stands for, and a function making its inputs for a batch size."""
    torch = _torch()
    nn = torch.nn
    acts = {"relu": lambda: nn.ReLU(inplace=True), "silu": lambda: nn.SiLU(inplace=True), "gelu": nn.GELU}

    def act(kind: str):
        return acts[kind]() if kind in acts else nn.Identity()

    c_in, c_out, k, s, size = int(unit.c_in), int(unit.c_out), unit.kernel, unit.stride, int(unit.size)
    if unit.op in ("conv", "dwconv"):
        groups = c_in if unit.op == "dwconv" else 1

        class ConvUnit(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(c_in, c_out, k, s, padding=k // 2, groups=groups, bias=False)
                self.bn = nn.BatchNorm2d(c_out)
                self.act = act(unit.act)

            def forward(self, x, residual=None):
                out = self.bn(self.conv(x))
                if residual is not None:
                    out = out + residual
                return self.act(out)

        side_out = (size + 2 * (k // 2) - k) // s + 1

        def inputs(batch: int):
            x = torch.randn(batch, c_in, size, size)
            return (x, torch.randn(batch, c_out, side_out, side_out)) if unit.fused_add else (x,)

        return ConvUnit(), inputs
    if unit.op == "se":

        class SEUnit(nn.Module):
            def __init__(self):
                super().__init__()
                self.reduce = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.SiLU(inplace=True))
                self.expand = nn.Sequential(nn.Conv2d(c_out, c_in, 1, bias=False), nn.BatchNorm2d(c_in))

            def forward(self, x):
                return x * torch.sigmoid(self.expand(self.reduce(x.mean((2, 3), keepdim=True))))

        return SEUnit(), lambda batch: (torch.randn(batch, c_in, size, size),)
    if unit.op == "pool":
        return nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False), lambda batch: (torch.randn(batch, c_in, size, size),)
    if unit.op == "classifier":
        model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c_in, c_out))
        return model, lambda batch: (torch.randn(batch, c_in, size, size),)
    raise ValueError(f"unknown op {unit.op!r}")


def time_call(make: Callable[[], Callable[[], object]], *, device: str = "cpu", min_seconds: float = MIN_SECONDS) -> tuple[float, float, int]:
    """Median and interquartile range (ms) of calls, and the number of timed calls.

    ``make()`` builds a fresh instance (module and inputs) and returns the call
    to time; :data:`INSTANCES` instances are timed in turn and their calls
    pooled, since a kernel's speed can depend on where its buffers happen to
    lie in memory. Each instance is timed for at least ``min_seconds``.
    """
    torch = _torch()
    cuda = device.startswith("cuda")
    times: list[float] = []
    for _ in range(INSTANCES):
        call = make()
        for _ in range(WARMUP):
            call()
        spent, count = 0.0, 0
        while count < MAX_REPEATS and (count < MIN_REPEATS or spent < min_seconds):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                call()
                end.record()
                torch.cuda.synchronize()
                ms = start.elapsed_time(end)
            else:
                t = time.perf_counter()
                call()
                ms = (time.perf_counter() - t) * 1e3
            times.append(ms)
            spent += ms / 1e3
            count += 1
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(p * (len(times) - 1) + 0.5))]  # noqa: E731
    n = len(times)
    median = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    return median, q(0.75) - q(0.25), n


def measure(unit: Unit, *, batch: int = 1, device: str = "cpu", backend: str = "torch", threads: int | None = 1) -> Row:
    """One row: ``unit`` timed under the protocol, on ``backend`` (``threads``: ONNX Runtime's
    intra-op threads; torch's are set by the caller)."""
    torch = _torch()
    exported: list[bytes] = []  # the unit's ONNX export, once per row, not per instance (about 12 ms an export)

    def make():
        module, make_inputs = module_for(unit)
        module = module.eval().to(device)
        args = tuple(a.to(device) for a in make_inputs(batch))
        if backend == "onnxruntime":
            if not exported:
                exported.append(onnx_bytes(module, args))
            session = ort_session(exported[0], threads=threads)
            feed = {f"x{i}": a.numpy() for i, a in enumerate(args)}
            return lambda: session.run(None, feed)
        return lambda: module(*args)

    with torch.inference_mode():
        median, spread, n = time_call(make, device=device)
    return Row(unit, batch, median, spread, n)


_DEVICE = re.compile(r"cpu|cuda(?::[0-9]{1,4})?")


def check_device(device: str) -> None:
    """A :class:`TableError` (where ``--device``) unless ``device`` is ``cpu`` or a CUDA device torch has here."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise TableError("--device", f"expected cpu or cuda[:N], got {device!r}")
    if device.startswith("cuda"):
        torch = _torch()
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = f"cuda:0..cuda:{count - 1}" if count else "no CUDA device"
            raise TableError("--device", f"{device} is not available here (torch {torch.__version__} sees {have}); use --device cpu")


def local_meta(*, device: str, threads: int | None, source: str = "", backend: str = "torch") -> TableMeta:
    """The header of a table measured here."""
    check_device(device)
    check_backend(backend, device)
    torch = _torch()
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        runtime = f"torch {torch.__version__} CUDA {torch.version.cuda}"
    else:
        name = f"{platform.processor() or platform.machine()} ({platform.system()})"
        runtime = f"torch {torch.__version__} CPU" if backend == "torch" else f"onnxruntime {_onnxruntime().__version__} CPU"
    return TableMeta(
        device=name,
        backend=runtime,
        dtype="fp32",
        threads=None if device.startswith("cuda") else threads,
        date=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        protocol=protocol(device, backend),
        source=source,
        channel_block=1 if device.startswith("cuda") else CPU_BLOCKS.get(torch.backends.cpu.get_cpu_capability(), 1),
    )


def _resume(path: Path, meta: TableMeta) -> CostTable:
    """The rows already in ``path``: a last line cut short by an interruption is dropped from the file."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        cut = text.rfind("\n") + 1
        with open(path, "r+", encoding="utf-8") as fh:
            fh.truncate(len(text[:cut].encode("utf-8")))
        text = text[:cut]
    table = parse(text.split("\n"), str(path))
    old = table.meta
    if (old.device, old.backend, old.threads) != (meta.device, meta.backend, meta.threads):
        raise TableError(
            str(path),
            f"was measured on {old.device} / {old.backend} / threads {old.threads}, not here "
            f"({meta.device} / {meta.backend} / threads {meta.threads}); give another output file",
        )
    return table


def profile(
    units: Iterable[Unit],
    path: str | Path,
    *,
    batch: int = 1,
    device: str = "cpu",
    threads: int | None = 1,
    source: str = "",
    backend: str = "torch",
    progress: Callable[[int, int, float], None] | None = None,
) -> CostTable:
    """Measure every unit not yet in the table at ``path`` (created if missing) and return the table.

    ``progress(done, total, seconds_left)`` is called once the table and the device are checked
    (``done`` 0) and after each row; the estimate of the time left scales the time spent by the work left (the
    units' multiply-accumulates plus a fixed share per row).
    """
    torch = _torch()
    if not device.startswith("cuda") and threads is not None:
        torch.set_num_threads(threads)
    steady_memory()
    path = Path(path)
    if path.is_dir():
        raise TableError(str(path), "is a directory; give a table file path such as table.jsonl")
    meta = local_meta(device=device, threads=threads, source=source, backend=backend)
    if path.exists():
        done = {r.key for r in _resume(path, meta).rows}
    else:
        save(CostTable(meta), path)
        done = set()
    todo = [u for u in dict.fromkeys(units) if Row(u, batch, 0.0).key not in done]
    weights = [_work(u) for u in todo]
    total_work, spent_work, start = sum(weights), 0.0, time.perf_counter()
    if progress is not None:
        progress(0, len(todo), math.nan)
    for i, (unit, w) in enumerate(zip(todo, weights), 1):
        append(path, [measure(unit, batch=batch, device=device, backend=backend, threads=threads)])
        spent_work += w
        if progress is not None:
            elapsed = time.perf_counter() - start
            progress(i, len(todo), elapsed * (total_work - spent_work) / spent_work if spent_work else math.nan)
    return load(path)


def _work(unit: Unit) -> float:
    """A rough cost of timing ``unit``: its multiply-accumulates plus a fixed overhead per row."""
    macs = int(unit.c_in) * int(unit.c_out) * unit.kernel**2 * int(unit.size) ** 2 / unit.stride**2
    if unit.op == "dwconv":
        macs /= int(unit.c_in)
    return macs + 2e7


def print_progress(done: int, total: int, left: float) -> None:
    """A one-line progress bar on standard error."""
    width = 30
    fill = int(width * done / total) if total else width
    eta = "--:--" if not math.isfinite(left) else f"{int(left) // 60:d}:{int(left) % 60:02d}"
    end = "\n" if done == total else ""
    print(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} rows, {eta} left", end=end, file=sys.stderr, flush=True)

