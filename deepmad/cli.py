"""The ``deepmad`` command line.

Every failure ends with one line on standard error, ``deepmad: error: ...``,
and exit status 2 for bad input (files, fields, options) or 1 for other
failures; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import re
import shlex
import time
from pathlib import Path
from typing import Sequence

from hwmodels.profile import BACKENDS
from hwmodels.table import TableError

from . import __version__
from .errors import DeepmadError, InputError, shown
from .files import atomic_write_bytes, atomic_write_text, check_output, holds
from .hardware.latency import LatencyModel, find_table, installed_tables, load_model, tables_dir
from .model import tinynas
from .model.architecture import Architecture
from .model.blocks import BLOCK_TYPES
from .model.entropy import Scoring
from .problem.presets import PRESETS, PUBLISHED_DIR, SPACES, preset
from .problem.problem import Problem
from .problem.report import metrics, table
from .problem.space import DesignSpace
from .solution import load_design, record
from .solvers import solve
from .solvers.settings import Settings
from .solvers.progress import Progress
from .units import parse_amount, parse_duration_ms, parse_range
from .whatif.sweeps import POINT_SECONDS


_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError("", f"{message} (see '{self.prog} --help')")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_architecture_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", nargs="?", metavar="ARCH", help="architecture JSON file, or the result JSON of `deepmad design --json`")
    p.add_argument("--tinynas", metavar="FILE", help="read a TinyNAS structure file instead of ARCH")
    p.add_argument("--resolution", type=_positive_int, metavar="N", help="input side for --tinynas (required with it)")


def _load_architecture(args: argparse.Namespace) -> Architecture:
    if args.tinynas is not None:
        if args.arch is not None:
            raise InputError("ARCH", "give either an architecture JSON file or --tinynas FILE, not both")
        if args.resolution is None:
            raise InputError("--resolution", "required with --tinynas (the format does not hold the input size), e.g. --resolution 224")
        return tinynas.load(args.tinynas, resolution=args.resolution)
    if args.arch is None:
        raise InputError("ARCH", "missing: give an architecture JSON file, or --tinynas FILE --resolution N")
    if args.resolution is not None:
        raise InputError("--resolution", "only used with --tinynas; an architecture JSON file holds its own resolution")
    arch, args.record = load_design(args.arch)
    return arch


_SCORING_OPTIONS = {"alpha": "--alpha", "beta": "--beta", "penalty_stages": "--penalty-stages", "resolution": "--score-resolution"}


def _cmd_score(args: argparse.Namespace) -> int:
    arch = _load_architecture(args)
    try:
        m = metrics(arch, Scoring(alpha=args.alpha, beta=args.beta, penalty_stages=args.penalty_stages, resolution=args.score_resolution))
    except InputError as exc:  # name the option the user typed
        raise InputError(_SCORING_OPTIONS.get(exc.field, exc.field), exc.message) from None
    print(json.dumps(m, indent=2) if args.json else table(arch, m))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from generators import pytorch  # torch is imported only where a model is built

    arch = _load_architecture(args)
    if Path(args.out).suffix.lower() == ".onnx":
        from generators import onnx

        check_output(args.out, force=args.force)
        onnx.write(arch, args.out, force=True)
        _report_write(args.out, True, " (checked with ONNX Runtime)")
        return 0
    kept = getattr(args, "record", None)  # where ARCH is a design's result.json
    text = pytorch.render(arch, record=kept)
    if not holds(args.out, text.encode("utf-8"), force=args.force) and args.verify:  # refuse before the torch check
        text = pytorch.verified(arch, record=kept)
    _report_write(args.out, atomic_write_text(args.out, text, force=args.force), " (verified with torch)" if args.verify else "")
    return 0


def _report_write(path: str, written: bool, detail: str = "") -> None:
    print(f"wrote {path}{detail}" if written else f"{path} is unchanged (it already holds this content)")


def _cmd_convert(args: argparse.Namespace) -> int:
    arch = _load_architecture(args)
    text = tinynas.dumps(arch) if args.to == "tinynas" else arch.to_json()
    if args.out == "-":
        sys.stdout.write(text)
    else:
        _report_write(args.out, atomic_write_text(args.out, text, force=args.force))
    return 0


def _problem(args: argparse.Namespace) -> Problem:
    """The problem of ``design``, ``profile`` and ``latency-check``: a preset, or one built from the
    flags (each flag overrides); an error names the option that was typed."""
    try:
        return _build_problem(args)
    except InputError as exc:
        raise _as_option(exc) from None


def _as_option(exc: InputError) -> InputError:
    """``exc`` with its field named as the command-line option that sets it."""
    field = exc.field.split("[")[0].split(".")[0]
    return InputError(_PROBLEM_OPTIONS.get(field, exc.field), exc.message)


def _build_problem(args: argparse.Namespace) -> Problem:
    if args.preset:
        base = preset(args.preset, space=args.space)
    elif args.space != "wide":
        raise InputError("--space", "chooses a preset's space: give --preset NAME too")
    else:
        if args.block is None or args.strides is None:
            raise InputError("--block", "give --preset NAME, or a custom problem with at least --block and --strides")
        base = Problem(DesignSpace(block=args.block, resolution=224, strides=args.strides, depths=((1, 16),) * len(args.strides)))
    space = base.space
    changes = {
        "block": args.block,
        "resolution": args.resolution,
        "strides": args.strides,
        "channels": args.channels,
        "stem_channels": args.stem_channels,
        "stem_kernel": args.stem_kernel,
        "in_channels": args.in_channels,
        "kernels": args.kernels,
        "head": args.head,
        "inner_ratio": args.inner_ratio,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if "block" in changes and "inner_ratio" not in changes:
        changes["inner_ratio"] = None  # the new block type's default range
    if args.depth is not None or "strides" in changes:
        depth = args.depth or space.depths[0]
        changes["depths"] = (depth,) * len(changes.get("strides", space.strides))
    if changes:
        space = dataclasses.replace(space, **changes)
    updates = {"space": space}
    for name in ("flops", "params", "rho", "max_layers", "max_depth_spread", "flops_convention"):
        if getattr(args, name) is not None:
            updates[name] = getattr(args, name)
    if args.no_nondecreasing:
        updates["nondecreasing"] = False
    if hasattr(args, "latency"):  # deepmad design: a latency budget, predicted from a table
        if args.latency is not None and args.table is None:
            raise InputError("--latency", "needs --table: a cost table file or the device name of an imported table")
        if args.batch is not None and args.table is None:
            raise InputError("--batch", "only used with --table (the batch whose table rows predict latency)")
        if args.table is not None:
            updates["latency_model"] = load_model(args.table, batch=args.batch)
            updates["latency"] = args.latency
    return dataclasses.replace(base, **updates)


_PROBLEM_OPTIONS = {
    "time_limit": "--time-limit",
    "gap": "--gap",
    "strides": "--strides",
    "stride": "--strides",
    "channels": "--channels",
    "stem_channels": "--stem-channels",
    "stem_kernel": "--stem-kernel",
    "in_channels": "--in-channels",
    "kernels": "--kernels",
    "inner_ratio": "--inner-ratio",
    "head": "--head",
    "resolution": "--resolution",
    "depths": "--depth",
    "latency": "--latency",
}


STARTUP_SECONDS = 0.4
"""What the command spends before the solve on the reference machine (starting Python, imports):
0.37 s. (The solve counts its own start, the space's engine read: ``Settings.cost_setup_line``.)"""

FINISH_SECONDS = 0.5
"""What the command keeps after the solve's stop beside the model file's check (its record, the
outputs written)."""

VERIFY_SECONDS = 0.6
"""What checking a model file with torch takes on the reference machine once torch is imported
(a second process imports it during the solve: :class:`generators.pytorch.Measurer`; about 0.5 s
for deepmad-r18's design)."""


def _process_age() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere since this module was imported)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def _cmd_design(args: argparse.Namespace) -> int:
    # The outputs depend on the solve: an existing one needs --force, checked before solving.
    check_output(args.out, force=args.force)
    check_output(None if args.json == "-" else args.json, force=args.force)
    if not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise InputError("--time-limit", f"must be a positive number of seconds, got {args.time_limit!r}")
    measurer = None
    if args.out and args.verify:
        from generators.pytorch import Measurer

        measurer = Measurer()
    try:
        return _design(args, measurer)
    finally:
        if measurer is not None:
            measurer.close()


def _design(args: argparse.Namespace, measurer) -> int:
    try:
        problem = _problem(args)
        progress = args.progress if args.progress is not None else sys.stderr.isatty()
        shown = Progress(sys.stderr if progress or args.verbose else None, verbose=args.verbose)
        # The solve stops where the whole command would overrun --time-limit. Its work is planned
        # from --time-limit alone (the same command gives the same design on a loaded machine), so
        # that the start-up and the work, both slowed by the 1 / plan_share a loaded machine may be
        # slower, end by that stop: the work is plan_share of the time to the stop less the start-up.
        verify = VERIFY_SECONDS if args.out and args.verify else 0.0
        window = args.time_limit - verify - FINISH_SECONDS
        plan = max(0.1 * args.time_limit, window - STARTUP_SECONDS / Settings().plan_share)
        stop = max(time.perf_counter() + 0.1, args.started + window)
        solution = solve(problem, time_limit=plan, gap=args.gap, progress=shown, method=args.method, stop_at=stop)
    except InputError as exc:  # name the option the user typed
        raise _as_option(exc) from None
    out = solution.to_dict()
    kept = record(problem, solution, command=shlex.join(["deepmad", *args.argv]))
    out.update(kept)
    if solution.architecture is not None:
        out["metrics"] = metrics(solution.architecture, problem.scoring)
        if problem.latency_model is not None:
            out["metrics"]["latency_ms"] = problem.latency_model.predict(solution.architecture).total_ms
        if all(s.block_type.tinynas_class for s in solution.architecture.stages):
            out["tinynas"] = tinynas.to_layers(solution.architecture)
        if args.out:
            from generators import pytorch

            pytorch.write(solution.architecture, args.out, verify=args.verify, force=True, measurer=measurer, record=kept)
    if args.json == "-":
        print(json.dumps(out, indent=2, allow_nan=False))
    elif args.json:
        atomic_write_text(args.json, json.dumps(out, indent=2, allow_nan=False) + "\n", force=True)
    if solution.architecture is None:
        reasons = "; ".join(s.message for s in solution.shortfalls) or "each budget alone is reachable, but not all of them together"
        print(f"deepmad: infeasible: no design of the space meets the budgets: {reasons}", file=sys.stderr)
        return 1
    if args.json != "-":
        print(
            f"{solution.status}{'' if solution.status == 'optimal' else ' (not proven optimal)'}: "
            f"objective {solution.objective:.4f}, "
            + (f"bound {solution.bound:.4f}, gap {solution.gap:.2e}, " if solution.gap is not None else "no bound proven yet, ")
            + f"{solution.solve_seconds:.2f} s" + (f"; wrote {args.out}" if args.out else "")
        )
        print(table(solution.architecture, out["metrics"]))
    return 0


def _cmd_latency(args: argparse.Namespace) -> int:
    model = load_model(args.table, batch=args.batch)
    arch = _load_architecture(args)
    report = model.predict(arch)
    if not math.isfinite(report.total_ms):
        raise InputError("--table", f"its figures give an infinite latency for this design ({report.total_ms}); check its rows and calibration")
    if args.json:
        print(json.dumps({"table": args.table, "batch": model.predictor.batch, "total_ms": report.total_ms, "parts_ms": report.parts,
                          "fixed_ms": report.fixed_ms, "units": report.units, "uncovered": list(report.uncovered),
                          "extrapolated_units": report.extrapolated}, indent=2))
        return 0
    print(f"{arch.name or 'architecture'} on {model.name} (batch {model.predictor.batch})")
    for name, ms in report.parts.items():
        print(f"  {name:<10} {ms:>10.4f} ms")
    if report.fixed_ms:
        print(f"  {'overhead':<10} {report.fixed_ms:>10.4f} ms")
    print(f"  {'total':<10} {report.total_ms:>10.4f} ms")
    if report.uncovered:
        print(f"not in the table (counted as 0): {', '.join(report.uncovered)}")
    if report.extrapolated:
        print(f"{report.extrapolated} unit(s) lie outside the table's measured range (extrapolated)")
    return 0


def _cmd_import_table(args: argparse.Namespace) -> int:
    from hwmodels.table import dump
    from hwmodels.tinynas import import_tinynas

    if not args.device.strip():
        raise InputError("--device", "must name the device the table was measured on, e.g. 'NVIDIA V100'")
    if args.out is not None:
        check_output(args.out, force=True)  # a bad path is refused before the file is read
    imported = import_tinynas(args.file, dtype=args.dtype, device=args.device)
    table = imported.table
    name = f"v100-trt-{table.meta.dtype}" if args.name is None else args.name
    if args.out is not None:
        path = Path(args.out)
    else:
        if not _NAME.fullmatch(name):
            raise InputError("--name", f"must be letters, digits, '-', '_' or '.', got {name!r}")
        tables_dir().mkdir(parents=True, exist_ok=True)
        path = tables_dir() / f"{name}.jsonl"
    written = atomic_write_text(path, dump(table), force=args.force)
    print(f"imported {len(table.rows):,} rows ({imported.failed:,} failed measurements left out) "
          + (f"to {path}" if written else f"; {path} already holds them") + ("" if args.out is not None else f"; use it as --table {name}"))
    return 0


def _cmd_tables(args: argparse.Namespace) -> int:
    names = installed_tables()
    print(f"tables in {tables_dir()}: {', '.join(names) if names else 'none (deepmad import-table FILE)'}")
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from hwmodels.calibrate import LEAST_DESIGNS
    from hwmodels.profile import print_progress, profile
    from hwmodels.table import save

    from .hardware.latencycheck import calibrate_apart
    from .hardware.profiling import profile_units

    problem = _problem(args)
    if 0 < args.calibrate < LEAST_DESIGNS:  # said before minutes of measuring, not after
        raise InputError("--calibrate", f"needs 0 (no calibration) or at least {LEAST_DESIGNS} designs (it fits four terms), "
                                        f"got {args.calibrate}")
    check_output(args.out, force=True)  # an existing table is completed, not replaced
    units = profile_units(problem)

    def progress(done: int, total: int, left: float) -> None:
        if done == 0:  # the table and the device are checked: say what is measured
            print(f"{len(units):,} units cover the space of {problem.name or 'the problem'} ({total:,} to measure); "
                  f"measuring on {args.device} ({args.backend}) with {args.threads} thread(s), batch {args.batch}, into {args.out}",
                  file=sys.stderr)
        print_progress(done, total, left)

    table = profile(units, args.out, batch=args.batch, device=args.device, threads=args.threads, backend=args.backend,
                    source=f"deepmad profile of {problem.name or 'a custom problem'}", progress=progress)
    if args.calibrate:
        print(f"calibrating on {args.calibrate} random designs measured end to end", file=sys.stderr)
        cal = calibrate_apart(problem, args.out, designs=args.calibrate, device=args.device)
        table = table.with_calibration(cal)
        save(table, args.out)
        print(f"calibration on {cal.designs} designs: latency = sum over units of max(0, {cal.scale:.4f} x ms {cal.per_unit_ms:+.4f} ms "
              f"{cal.per_mweight_ms:+.4f} ms x weights/1e6 {cal.per_melement_ms:+.4f} ms x activations/1e6) + {cal.fixed_ms:.4f} ms")
    print(f"{args.out}: {len(table.rows):,} rows")
    return 0


def _cmd_latency_check(args: argparse.Namespace) -> int:
    from hwmodels.profile import backend_of, local_meta
    from hwmodels.table import load

    from .hardware import latencycheck

    check_output(args.json, force=args.force)
    check_output(args.plot, force=args.force)
    path = find_table(args.table)
    table = load(path)
    backend = backend_of(table.meta)
    if args.backend is not None and args.backend != backend:
        raise InputError("--backend", f"the table was measured with {table.meta.backend}; check it on {backend}, or profile a table "
                                      f"with --backend {args.backend}")
    here = local_meta(device=args.device, threads=table.meta.threads, backend=backend)
    measurable = (table.meta.device, table.meta.backend) == (here.device, here.backend)
    if args.held_out or not measurable:
        figures = latencycheck.held_out_figures(table, fraction=args.fraction, seed=args.seed, batch=args.batch)
        why = "as asked" if args.held_out else f"the table was measured on {table.meta.device} / {table.meta.backend}, not here"
        print(f"held-out accuracy ({why}): {int(figures['rows']):,} rows predicted from the others: "
              f"median error {figures['median_abs']:.2f} %, within 5/10/15 %: "
              f"{figures['within_5']:.1f} / {figures['within_10']:.1f} / {figures['within_15']:.1f} %, RMSPE {figures['rmspe']:.1f} %")
        if args.json:
            atomic_write_text(args.json, json.dumps({"mode": "held_out", "table": str(path), **figures}, indent=2) + "\n", force=True)
        return 0
    problem = _problem(args)
    model = LatencyModel.of(table, batch=args.batch, name=path.stem)
    threads = args.threads or table.meta.threads
    result = latencycheck.check(problem, model, designs=args.designs, seed=args.seed, device=args.device, threads=threads, backend=backend,
                                table=table)
    f, now = result.figures, result.figures_now
    for name, p, m in zip(result.names, result.predicted, result.measured):
        print(f"  {name:<16} predicted {p:9.3f} ms  measured {m:9.3f} ms  {100 * (p / m - 1):+6.1f} %")
    print(f"{len(result.measured)} designs: within 5/10/15 %: {f['within_5']:.0f} / {f['within_10']:.0f} / {f['within_15']:.0f} %, "
          f"RMSPE {f['rmspe']:.1f} %, median error {f['median_abs']:.1f} % ({backend}, threads {threads}, batch {model.predictor.batch})")
    print(f"this machine now takes {result.speed:.2f}x the table's times ({latencycheck.SPEED_ROWS} rows timed again, before and after); "
          f"predictions scaled by it: within 5/10/15 %: {now['within_5']:.0f} / {now['within_10']:.0f} / {now['within_15']:.0f} %, "
          f"RMSPE {now['rmspe']:.1f} %")
    if args.plot:
        latencycheck.scatter(result, args.plot, title=f"{path.stem}: {problem.name or 'custom problem'}")
        print(f"wrote {args.plot}")
    if args.json:
        rows = [{"name": n, "predicted_ms": p, "measured_ms": m} for n, p, m in zip(result.names, result.predicted, result.measured)]
        atomic_write_text(args.json, json.dumps({"mode": "end_to_end", "table": str(path), "backend": backend, "threads": threads, **f,
                                                 "speed": result.speed, "scaled_by_speed": now, "designs": rows}, indent=2) + "\n", force=True)
    return 0


def _reference(path: str, problem: Problem):
    """A reference design for the front: an architecture JSON file, or a TinyNAS structure read at
    the problem's resolution."""
    from .whatif.report import Reference

    arch = Architecture.load(path) if path.endswith(".json") else tinynas.load(path, resolution=problem.space.resolution)
    return Reference.of(arch.name or Path(path).stem, arch, problem)


def _cmd_whatif(args: argparse.Namespace) -> int:
    from . import whatif
    from .whatif import report

    problem = _problem(args)
    axes = dict(args.vary)
    if len(axes) != len(args.vary):
        raise InputError("--vary", "each axis may be given once; list its values in one --vary NAME=V1,V2,...")
    if args.workers is not None and args.dask is not None:
        raise InputError("--workers", "give --workers N or --dask ADDRESS, not both")
    x = args.x or next((a for a in axes if a in report.COST_FIELDS), "flops")
    if (args.png or args.html) and x == "latency" and problem.latency_model is None and "table" not in axes:
        raise InputError("--x", "latency needs --table (or --vary table=...)")
    outputs = [args.out, args.csv, args.json, args.png, args.html]
    # The other outputs are made from the sweep file's points: where it exists (and holds this
    # sweep, checked before any solve), they are remade from it without --force.
    resumed = args.out is not None and Path(args.out).is_file() and not args.force
    for path in outputs[1:]:
        check_output(path, force=args.force or resumed)
    check_output(args.out, force=True)
    references = [_reference(path, problem) for path in args.reference]
    # Every point is checked before any solve: a bad value fails now, not after an hour.
    for point in whatif.points(axes):
        try:
            whatif.variant(problem, point)
        except InputError as exc:
            at = ", ".join(f"{k}={v}" for k, v in point.items())
            raise InputError("--vary", f"at {at}: {exc.field}: {exc.message}") from None

    def progress(done: int, total: int) -> None:
        print(f"{done}/{total} points solved", file=sys.stderr, flush=True)

    kwargs = dict(time_limit=args.time_limit, gap=args.gap, method=args.method, out=args.out, force=args.force,
                  slack=args.slack, warm_start=args.warm_start, progress=progress)
    if args.dask is not None:
        try:
            from distributed import Client
        except ImportError:
            raise InputError("--dask", "needs the dask extra: pip install 'deepmad[dask]'") from None
        with Client(args.dask) as client:
            result = whatif.sweep(problem, axes, executor=client.get_executor(pure=False), **kwargs)
    elif args.workers is not None and args.workers > 1:
        with whatif.process_pool(args.workers) as pool:
            # One chain per worker at a time: on Ctrl-C nothing waits in the pool's queue, and the
            # workers (same process group) stop their chains at once.
            result = whatif.sweep(problem, axes, executor=pool, in_flight=args.workers, **kwargs)
    else:
        result = whatif.sweep(problem, axes, **kwargs)
    if args.change_points:
        for budget in (a for a in axes if a in whatif.BUDGETS):
            found = whatif.change_points(problem, result, budget, time_limit=args.time_limit, gap=args.gap, method=args.method)
            for row, value in zip(result.rows, found):
                row[f"next_change_{budget}"] = value
    title = f"What if: {problem.name or 'custom problem'}, varying {', '.join(axes)}"
    if args.csv:
        atomic_write_text(args.csv, result.to_csv(), force=True)
    if args.json:
        atomic_write_text(args.json, result.to_json(), force=True)
    if args.png:
        atomic_write_bytes(args.png, report.front_png(result, x=x, references=references, title=title), force=True)
    if args.html:
        atomic_write_text(args.html, report.html_report(result, title=title, x=x, references=references), force=True)
    if not any(outputs):
        sys.stdout.write(result.to_csv())
    statuses = [r["status"] for r in result.rows]
    kept = f" ({result.solved} solved now, {len(statuses) - result.solved} read from {args.out})" if resumed else ""
    print(f"{len(statuses)} points{kept}: " + ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
          + (f"; outputs: {', '.join(p for p in outputs if p)}" if any(outputs) else ""), file=sys.stderr)
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from .problem.presets import REFERENCE_RULES, published_outside

    print(f"{'name':<17} {'block':<21} {'FLOPs':>8} {'params':>8} {'rho0':>5} {'res':>4}  strides     head")
    for name, p in PRESETS.items():
        sp = p.space
        print(
            f"{name:<17} {sp.block:<21} {p.flops / 1e9:>7.2f}G {p.params / 1e6:>7.2f}M {p.rho:>5g} {sp.resolution:>4}  "
            f"{','.join(map(str, sp.strides)):<11} {sp.head or '-'}"
        )
    print("\nFLOPs in the tinynas convention, params without the classifier (the published DeepMAD budgets).")
    print("\nSpaces (--space):")
    for block in dict.fromkeys(p.space.block for p in PRESETS.values()):
        wide = next(p.space for p in PRESETS.values() if p.space.block == block)
        print(f"  {block}, wide (default): kernels {', '.join(map(str, wide.kernels))}; {wide.depths[0][1]} blocks per stage at most; "
              f"channels up to {wide.channels[1]}, stem {wide.stem_channels[0]}..{wide.stem_channels[1]}")
        print(f"  {block}, reference (TinyNAS's): {REFERENCE_RULES[block]}")
    print(f"\nThe published structures ({args.published}) in their reference spaces:")
    for name in PRESETS:
        outside = published_outside(name, args.published)
        shown_ = "not found" if outside is None else "inside" if not outside else "outside: " + "; ".join(outside)
        print(f"  {name:<17} {shown_}")
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from .solvers import cache

    if args.clear:
        files, size = cache.clear()
        print(f"removed {files} file{'s' if files != 1 else ''} (engines and latency models, {size / 1e6:.1f} MB) from {cache.folder()}")
        return 0
    files, size = cache.usage()
    print(f"{cache.folder()}: {files} file{'s' if files != 1 else ''} (engines and latency models), {size / 1e6:.1f} MB "
          f"(limit {cache.limit_bytes() / 1e6:.0f} MB, $DEEPMAD_CACHE_MB)")
    return 0


def _argument(parse, field: str):
    """An argparse type from one of :mod:`deepmad.units`' parsers (its message, not argparse's)."""

    def convert(text: str):
        try:
            return parse(text, field)
        except InputError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return convert


def _axis(text: str, field: str) -> tuple[str, tuple]:
    from .whatif.axes import parse_axis

    return parse_axis(text)


def _ratio(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI such as 1.5:6, got {text!r}") from None
    return lo, hi


def _add_problem_args(p: argparse.ArgumentParser) -> None:
    """The options that state a design problem: a preset, or a custom one (each flag overrides)."""
    p.add_argument("--preset", metavar="NAME", help="a published DeepMAD problem (see 'deepmad presets')")
    p.add_argument("--space", choices=SPACES, default="wide",
                   help="the preset's space: wide (this project's, default) or reference (the one TinyNAS searched; see 'deepmad presets')")
    p.add_argument("--block", choices=tuple(BLOCK_TYPES), help="block type of a custom problem")
    p.add_argument("--flops", type=_argument(parse_amount, "--flops"), metavar="N", help="FLOPs budget, e.g. 1.8G (tinynas convention unless --flops-convention macs)")
    p.add_argument("--flops-convention", choices=("tinynas", "macs"), help="how --flops counts (default tinynas)")
    p.add_argument("--params", type=_argument(parse_amount, "--params"), metavar="N", help="parameter budget without the classifier, e.g. 11.7M")
    p.add_argument("--rho", type=_argument(parse_amount, "--rho"), metavar="R", help="effectiveness bound rho0, e.g. 0.3")
    p.add_argument("--max-layers", type=_positive_int, metavar="N", help="at most N scored layers")
    p.add_argument("--resolution", type=_positive_int, metavar="N", help="input side in pixels")
    p.add_argument("--strides", type=_int_list, metavar="S,S,..", help="stage strides (1 or 2), one per stage")
    p.add_argument("--depth", type=_argument(parse_range, "--depth"), metavar="LO:HI", help="blocks per stage")
    p.add_argument("--channels", type=_argument(parse_range, "--channels"), metavar="LO:HI", help="stage output channels (multiples of 8 between)")
    p.add_argument("--stem-channels", type=_argument(parse_range, "--stem-channels"), metavar="LO:HI", help="stem output channels")
    p.add_argument("--stem-kernel", type=_positive_int, metavar="K", help="the stem conv's kernel (odd; default 3)")
    p.add_argument("--in-channels", type=_positive_int, metavar="N", help="input image channels (default 3; 1 for grey)")
    p.add_argument("--kernels", type=_int_list, metavar="K,K,..", help="kernel choices, e.g. 3,5,7")
    p.add_argument("--inner-ratio", type=_ratio, metavar="LO:HI", help="inner width relative to output channels")
    p.add_argument("--head", type=_positive_int, metavar="N", help="head conv width")
    p.add_argument("--no-nondecreasing", action="store_true", help="allow a stage narrower than the one before")
    p.add_argument("--max-depth-spread", type=_count, metavar="N", help="hard limit on max L - min L over the penalised stages")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepmad", description="Solver-driven CNN architecture design after DeepMAD.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (accepted anywhere on the line)")
    parser.add_argument("--version", action="version", version=f"deepmad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("score", help="costs and DeepMAD score of an architecture")
    _add_architecture_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--score-resolution", type=_positive_int, metavar="N", help="take r_i at this input side (the reference code uses 224); default the design resolution")
    p.add_argument("--alpha", type=_float_list, metavar="A,B,..", help="prefix weights, one per scoring prefix (default 1,..,1,8)")
    p.add_argument("--beta", type=float, default=10.0, help="depth penalty weight (default 10)")
    p.add_argument("--penalty-stages", type=_int_list, metavar="J,K,..", help="0-based stages the depth penalty covers (default: the last three for "
                   f"{'/'.join(n for n, b in BLOCK_TYPES.items() if b.penalty_stages == 'last3')}, all for the other block types)")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("generate", help="write a standalone PyTorch model file, or an ONNX file")
    _add_architecture_args(p)
    p.add_argument("-o", "--out", required=True, metavar="PATH",
                   help="model file to write: .py (PyTorch), or .onnx (placeholder weights, checked with ONNX Runtime; "
                        "needs pip install 'deepmad[onnx]')")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                   help="build the model with torch and check params and MACs before writing (default: on)")
    p.add_argument("--force", action="store_true", help="replace an existing output file with other content")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("design", help="solve a design problem exactly and write the model file")
    _add_problem_args(p)
    p.add_argument("--latency", type=_argument(parse_duration_ms, "--latency"), metavar="T", help="latency budget, e.g. 12ms, predicted from --table")
    p.add_argument("--table", metavar="TABLE", help="cost table file, or the device name of an imported table (see 'deepmad tables')")
    p.add_argument("--batch", type=_positive_int, metavar="N", help="batch size whose table rows predict latency (default 1, or the table's only one)")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="S",
                   help="seconds for the whole command, a hard stop (default 60): the solve plans half of it, less "
                        "the start, as work counted in operations, not time, so the same command gives the same design "
                        "on a machine up to about 1.9x slower (two busy processes beside it on 2 cores); on a preset "
                        "(2 cores), 10 s takes 4-6 s and beats the published DeepMAD design, 60 s takes 22-30 s, "
                        "reaches the best designs known before (within 0.4%%) or beats them, and proves them within "
                        "1.4-5%%")
    p.add_argument("--gap", type=float, default=1e-5, help="relative optimality gap to stop at (default 1e-5)")
    p.add_argument("--method", choices=("auto", "milp", "large"), default="auto",
                   help="milp: the whole program on HiGHS; large: any space size (local search, exact solves at "
                        "fixed widths, column generation and a Lagrangian bound, reduced-cost fixing, branching "
                        "over widths); auto "
                        "(default): milp for small spaces")
    p.add_argument("-o", "--out", metavar="PATH", help="write the model file here")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                   help="check the model file with torch before writing it (default: on)")
    p.add_argument("--force", action="store_true", help="replace existing output files (checked before solving)")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON ('-' for standard output)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="one line per step and per better design or bound: elapsed, incumbent, bound, gap, on "
                        "standard error (default: on a terminal)")
    p.add_argument("--verbose", action="store_true", help="also the solvers' own logs (HiGHS)")
    p.set_defaults(func=_cmd_design)

    p = sub.add_parser("whatif", help="sweep budgets, devices, block types or rules: an exact solve per point, fronts and a report")
    _add_problem_args(p)
    p.add_argument("--vary", type=_argument(_axis, "--vary"), action="append", required=True, metavar="NAME=VALUES",
                   help="an axis: flops=1G:8G:40 (N values, ends included), params=10M,20M, rho=0.3,0.5, latency=5ms:20ms:4, "
                        "table=T1,T2, block=bottleneck,basic, resolution=224,256, nondecreasing=on,off, max_depth_spread=none,2; "
                        "several --vary make a grid")
    p.add_argument("--latency", type=_argument(parse_duration_ms, "--latency"), metavar="T", help="latency budget, e.g. 12ms, predicted from --table")
    p.add_argument("--table", metavar="TABLE", help="cost table file, or the device name of an imported table")
    p.add_argument("--batch", type=_positive_int, metavar="N", help="batch size whose table rows predict latency")
    p.add_argument("--time-limit", type=float, default=None, metavar="S",
                   help=f"seconds per point (default: {POINT_SECONDS['milp']:g} on spaces the whole program solves, where "
                        f"proofs come; {POINT_SECONDS['large']:g} on large spaces, a 40-point sweep of a preset in about 2 "
                        "minutes on 2 workers)")
    p.add_argument("--gap", type=float, default=1e-5, help="relative optimality gap per point (default 1e-5)")
    p.add_argument("--method", choices=("auto", "milp", "large"), default="auto", help="as for design")
    p.add_argument("--workers", type=_positive_int, metavar="N", help="solve on N local processes")
    p.add_argument("--dask", metavar="ADDRESS", help="solve on a Dask cluster (scheduler address; needs deepmad[dask])")
    p.add_argument("--out", metavar="PATH", help="keep finished points in this JSON Lines file: a rerun solves only the points it "
                   "lacks (it resumes, or grows by the values added to an axis) and remakes the other outputs from it")
    p.add_argument("--csv", metavar="PATH", help="write the table as CSV (default: standard output)")
    p.add_argument("--json", metavar="PATH", help="write the table as JSON")
    p.add_argument("--png", metavar="PATH", help="write the Pareto front as PNG")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report (figure and tables)")
    p.add_argument("--x", choices=("flops", "params", "latency"), help="the front's x axis (default: the first budget varied)")
    p.add_argument("--reference", action="append", default=[], metavar="FILE",
                   help="mark this design on the front (architecture JSON, or a TinyNAS structure at the problem's resolution)")
    p.add_argument("--slack", type=float, default=0.03, help="relative slack within which a budget counts as binding (default 0.03)")
    p.add_argument("--change-points", action="store_true",
                   help="per point, the smallest larger budget at which the optimal design changes (more exact solves)")
    p.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=True,
                   help="start each solve from the neighbouring point's design (default: on)")
    p.add_argument("--force", action="store_true", help="replace existing output files, and start --out afresh")
    p.set_defaults(func=_cmd_whatif)

    p = sub.add_parser("latency", help="predicted latency of an architecture, per stage and in total")
    _add_architecture_args(p)
    p.add_argument("--table", required=True, metavar="TABLE", help="cost table file, or the device name of an imported table")
    p.add_argument("--batch", type=_positive_int, metavar="N", help="batch size (default 1, or the table's only one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_latency)

    p = sub.add_parser("profile", help="measure a cost table on this machine for a problem's design space (resumable)")
    _add_problem_args(p)
    p.add_argument("-o", "--out", required=True, metavar="TABLE", help="table file (.jsonl); an existing one is completed, not redone")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--threads", type=_positive_int, default=1, metavar="N", help="CPU threads, recorded in the table (default 1)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="what runs the units: torch (eager, default) or onnxruntime (their ONNX export, CPU; needs the onnx extra)")
    p.add_argument("--batch", type=_positive_int, default=1, metavar="N", help="batch size (default 1)")
    p.add_argument("--calibrate", type=_count, default=20, metavar="N", help="fit the per-network overhead on N random designs measured end to end (default 20; 0: none)")
    p.set_defaults(func=_cmd_profile)

    p = sub.add_parser("latency-check", help="accuracy of a table's predictions: end to end on random designs, or on held-out rows")
    _add_problem_args(p)
    p.add_argument("--table", required=True, metavar="TABLE", help="cost table file, or the device name of an imported table")
    p.add_argument("--designs", type=_positive_int, default=30, metavar="N", help="random designs to measure (default 30)")
    p.add_argument("--seed", type=_count, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--backend", choices=BACKENDS, help="what runs the designs: the table's backend (default), which this must match")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="threads to measure with (default the table's); the prediction is the table's either way")
    p.add_argument("--batch", type=_positive_int, metavar="N", help="batch size (default 1, or the table's only one)")
    p.add_argument("--plot", metavar="PNG", help="write a scatter plot of predicted against measured latency")
    p.add_argument("--held-out", action="store_true", help="predict rows left out of the interpolation instead of measuring")
    p.add_argument("--fraction", type=float, default=0.1, help="share of rows held out (default 0.1)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    p.add_argument("--force", action="store_true", help="replace existing output files (checked before measuring)")
    p.set_defaults(func=_cmd_latency_check)

    p = sub.add_parser("import-table", help="import a TinyNAS op-profiler table (conv_data.<dtype>.out) as a device")
    p.add_argument("file", metavar="FILE", help="TinyNAS table, e.g. conv_data.fp16.out")
    p.add_argument("--name", metavar="NAME", help="device name to install it under (default v100-trt-<dtype>)")
    p.add_argument("--dtype", choices=("fp32", "fp16", "int8"), help="data type (default: from the file name)")
    p.add_argument("--device", default="NVIDIA V100", help="device recorded in the table (default 'NVIDIA V100')")
    p.add_argument("-o", "--out", metavar="PATH", help="write the table here instead of installing it")
    p.add_argument("--force", action="store_true", help="replace an existing output file with other content")
    p.set_defaults(func=_cmd_import_table)

    p = sub.add_parser("tables", help="list the installed cost tables")
    p.set_defaults(func=_cmd_tables)

    p = sub.add_parser("cache", help="where the solver keeps the option arrays of the spaces it solved, and how much")
    p.add_argument("--clear", action="store_true", help="remove them all (they are rebuilt when needed)")
    p.set_defaults(func=_cmd_cache)

    p = sub.add_parser("presets", help="list the published DeepMAD problems and their spaces")
    p.add_argument("--published", metavar="DIR", default=PUBLISHED_DIR,
                   help=f"folder of the published structures, checked against their reference spaces (default {PUBLISHED_DIR})")
    p.set_defaults(func=_cmd_presets)

    p = sub.add_parser("convert", help="convert between architecture JSON and the TinyNAS structure format")
    _add_architecture_args(p)
    p.add_argument("--to", choices=("json", "tinynas"), required=True, help="output format")
    p.add_argument("-o", "--out", default="-", metavar="PATH", help="output file (default: standard output)")
    p.add_argument("--force", action="store_true", help="replace an existing output file with other content")
    p.set_defaults(func=_cmd_convert)
    return parser


def _one_line(message: str) -> str:
    """``message`` with line breaks (from a typed path or argument) shown as ``\\n``: errors stay one line."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


_NEGATIVE = re.compile(r"-\.?[0-9]")


def _joined_negatives(argv: list[str]) -> list[str]:
    """``--latency -3ms`` as ``--latency=-3ms``: argparse would take ``-3ms`` for an option, and the
    user would be told a value is missing instead of that it must be positive."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and out[-1] != "--" and "=" not in out[-1] and _NEGATIVE.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    # The command's clock (--time-limit) starts with the process where this is its command (the
    # console script, `python -m deepmad`: starting Python and the imports count), else at this call
    # (a caller's process, a notebook's or a test run's, may be hours old).
    started = time.perf_counter() - (_process_age() if argv is None else 0.0)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = _joined_negatives([a for a in argv if a != "--debug"])  # --debug is accepted anywhere on the line
    try:
        args = build_parser().parse_args(argv)
        args.started = started
        args.argv = argv
        return args.func(args)
    except SystemExit as exc:  # --help and --version print and stop
        return exc.code if isinstance(exc.code, int) else 0
    except DeepmadError as exc:
        if debug:
            raise
        print(f"deepmad: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_status
    except TableError as exc:  # a cost table that cannot be used: bad input
        if debug:
            raise
        print(f"deepmad: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepmad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error of ours
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as exc:  # a bug or an environment failure: still one line, unless --debug
        if debug:
            raise
        print(f"deepmad: error: unexpected {type(exc).__name__}: {shown(str(exc), 200)} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
