"""Sweeps: exact solves of a problem's variants, in chains of neighbours, resumable from a file.

A sweep varies one or more *axes* of a problem (a budget, the cost table, the
block type, the resolution, a guideline switch), alone or as a grid, and
solves every point exactly (:func:`deepmad.solvers.solve`). Each point gives one
row: its inputs, ``status``, ``objective``, ``bound``, ``gap``, the design's
FLOPs (the problem's convention), parameters, latency (ms) and max rho, the
budgets that bind (slack within ``slack``, relative), the solve time and the
design in short (depth, width and kernel per stage).

Points are solved in *chains* of neighbours: each solve starts from the
previous point's design where that design is feasible (a warm start, see
:func:`deepmad.solvers.solve`'s ``start``). A chain's first point has no
design before it while the chains run side by side; once they are done, each
such point that was not proven is solved once more from the design of the
point before it, and keeps the better design and the lower bound of its two
solves (:func:`merged`). The chains are cut the same way
whatever runs them, so the table does not depend on the executor (any
:class:`concurrent.futures.Executor`, a Dask ``Client.get_executor()``
included) or on the order in which chains finish; only ``solve_seconds``
differs between runs. With ``out``, rows are appended to a JSON Lines file as
chains finish, after a header that states the sweep (problem, settings, cost
tables and the axes' names). A later run given the same file solves only the
points the file lacks: an interrupted sweep resumes, and a sweep with more
values on its axes grows the file (as trials are added to an Optuna study).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .. import interrupt, threads
from ..errors import DeepmadError, InputError, Interrupted, shown
from ..files import atomic_write_text, read_text
from ..model.architecture import Architecture
from ..problem.problem import Problem
from ..solvers.colgen import certificate, certified
from ..solvers.rows import PRICE_UNITS
from .axes import AXES, BUDGETS, points, variant


def summary(arch: Architecture) -> str:
    """A design in one line: stem width, then per stage ``depth x width (kernel)``."""
    return f"stem {arch.stem.channels} | " + " ".join(f"{s.depth}x{s.channels}k{s.kernel}" for s in arch.stages)


def binding(problem: Problem, check, *, slack: float) -> list[str]:
    """The budgets the design meets with at most ``slack`` (relative) to spare."""
    out = []
    for name, field in (("flops", "flops"), ("params", "params"), ("latency", "latency_ms"), ("rho", "rho")):
        limit = getattr(problem, name)
        value = getattr(check, field)
        if limit is not None and value is not None and value >= limit * (1 - slack):
            out.append(name)
    if problem.max_layers is not None and check.layers >= problem.max_layers * (1 - slack):
        out.append("layers")
    return out


POINT_SECONDS = {"milp": 60.0, "large": 6.0}
"""A sweep's time limit per point by default (s), by the method the point's space takes
(:func:`deepmad.solvers.method_for`): a space the whole program solves gets the time its proof may
take; on a large space, where proofs do not come in seconds, a 40-point sweep of a preset takes
about two minutes on 2 workers (``benchmarks/whatif.py sweep``), its designs within a few per cent
of what 120 s solves find."""


def point_seconds(problem: Problem, method: str = "auto") -> float:
    """The default time limit (s) of one point of a sweep: :data:`POINT_SECONDS` of its method."""
    from ..solvers import method_for

    return POINT_SECONDS[method_for(problem, method)]

CHAIN = 4
"""Points per chain of neighbours by default: longer chains warm-start more solves, shorter
ones spread over more workers."""

COLUMNS = ("index", "status", "objective", "bound", "gap", "design_flops", "design_params", "design_latency_ms", "design_rho",
           "layers", "binding", "solve_seconds", "design", "design_from", "bound_from", "error")
"""A row's columns after the axes' (whose names are the inputs, e.g. the ``flops`` budget):
``design_*`` are the returned design's FLOPs (the problem's convention), parameters, latency (ms)
and max rho; ``design_from`` and ``bound_from`` are the points whose design and bound a point took (:func:`shared`), if any;
``error`` says why a point has no design (the budget the space cannot meet, and its smallest value)."""


def solve_chain(problem: Problem, chain: Sequence[tuple[int, dict[str, Any]]], *, time_limit: float | None, gap: float, method: str,
                slack: float, warm_start: bool, on_row: Callable[[dict[str, Any]], None] | None = None,
                start: Architecture | None = None) -> list[dict[str, Any]]:
    """Solve the points of one chain in order, each from the previous design where it is feasible
    (the first from ``start``, the design of the point before the chain, where one is known);
    ``on_row(row)`` as each is done; ``time_limit`` per point, ``None``: :func:`point_seconds`. Ctrl-C
    stops the chain (:class:`KeyboardInterrupt`): the interrupted point is not a finished row."""
    from ..solvers import solve

    rows, before, last = [], start, None  # the last design, the last solution and its problem
    for index, point in chain:
        p = variant(problem, point)
        start = before if warm_start and before is not None and p.check(before).feasible else None
        if warm_start and last is not None and last[0].lagrangian is not None and (last[1].space, last[1].scoring) == (p.space, p.scoring):
            start = last[0]  # its design where it fits, and its multipliers: only budgets or rules changed
        limit = time_limit if time_limit is not None else point_seconds(p, method)
        try:
            s = solve(p, time_limit=limit, gap=gap, method=method, start=start)
        except Interrupted:
            raise KeyboardInterrupt from None
        except InputError:
            raise
        except DeepmadError as exc:  # e.g. no design found within the time limit: a row that says so
            row = {"index": index, **{k: _plain(v) for k, v in point.items()}, "status": "time_limit", "objective": None,
                   "bound": None, "gap": None, "error": str(exc), "solve_seconds": limit, "warm_start": start is not None}
            rows.append(row)
            if on_row is not None:
                on_row(row)
            continue
        if interrupt.happened():  # during the solve, whether or not it had finished
            raise KeyboardInterrupt
        row: dict[str, Any] = {"index": index, **{k: _plain(v) for k, v in point.items()}, "status": s.status,
                               "objective": s.objective, "bound": s.bound if math.isfinite(s.bound) else None, "gap": s.gap}
        if s.check is not None:
            row |= {"design_flops": s.check.flops, "design_params": s.check.params, "design_latency_ms": s.check.latency_ms,
                    "design_rho": s.check.rho, "layers": s.check.layers, "binding": ";".join(binding(p, s.check, slack=slack)),
                    "design": summary(s.architecture), "architecture": s.architecture.to_dict()}
        else:
            row["shortfalls"] = [{"name": f.name, "limit": f.limit, "smallest": f.smallest} for f in s.shortfalls]
            row["error"] = "; ".join(f.message for f in s.shortfalls) or "the budgets are reachable one by one, not together"
        if s.lagrangian is not None:
            row["certificate"] = certificate(p, s.lagrangian)
        row["solve_seconds"] = s.solve_seconds
        row["warm_start"] = start is not None
        rows.append(row)
        if on_row is not None:
            on_row(row)
        before, last = s.architecture or before, (s, p)
    return rows


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def chains(count: int, *, parts: int) -> list[range]:
    """``range(count)`` cut into at most ``parts`` contiguous chains of near-equal length."""
    parts = max(1, min(parts, count))
    bounds = [round(i * count / parts) for i in range(parts + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


@dataclass
class Sweep:
    """A finished sweep: the axes, one row per point in the points' order, and how many points
    this run solved (the others were read from the sweep file)."""

    axes: dict[str, tuple]
    rows: list[dict[str, Any]]
    solved: int | None = None

    def columns(self) -> list[str]:
        extra = [k for k in (self.rows[0] if self.rows else {}) if k.startswith("next_change_")]
        return ["index", *self.axes, *(c for c in COLUMNS if c != "index"), *extra]

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns(), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in self.columns()})
        return buf.getvalue()

    def to_json(self) -> str:
        return json.dumps({"axes": {k: list(map(_plain, v)) for k, v in self.axes.items()}, "rows": self.rows}, indent=1) + "\n"

    def unit(self, budget: str) -> tuple[float, str, str]:
        """The unit this sweep shows ``budget`` in (:meth:`AxisKind.display` of its values)."""
        return AXES[budget].display(self.axes[budget])

    def marginals(self, budget: str) -> list[float | None]:
        """Per row, the objective gained per unit of ``budget`` (in :meth:`unit`) from the
        neighbouring points along that axis, other axes equal (central differences; one-sided at
        the ends); ``None`` where a neighbour has no design."""
        scale = self.unit(budget)[0]
        others = [a for a in self.axes if a != budget]
        out: list[float | None] = [None] * len(self.rows)
        groups: dict[tuple, list[int]] = {}
        for i, row in enumerate(self.rows):
            groups.setdefault(tuple(row[a] for a in others), []).append(i)
        for members in groups.values():
            members.sort(key=lambda i: self.rows[i][budget])
            for pos, i in enumerate(members):
                lo, hi = members[max(0, pos - 1)], members[min(len(members) - 1, pos + 1)]
                a, b = self.rows[lo], self.rows[hi]
                if a[budget] != b[budget] and None not in (a["objective"], b["objective"], self.rows[i]["objective"]):
                    out[i] = (b["objective"] - a["objective"]) / ((b[budget] - a[budget]) / scale)
        return out

    def multipliers(self, budget: str) -> list[float | None]:
        """Per row, the multiplier of ``budget``'s row in the point's certificate (column
        generation's bound, :func:`deepmad.solvers.colgen.certificate`) per unit of ``budget`` (in
        :meth:`unit`): the slope of that bound in the budget. ``None`` where a point has no
        certificate (a solve that did not price) or the budget has no row (rho0 is not a linear
        budget).

        The bound is a concave function of the budget (it is the Lagrangian dual), and the
        multiplier is its slope: between the points of a sweep it is bracketed by the bound's
        differences. The optimum itself moves in steps, so its differences (:meth:`marginals`)
        agree with the multiplier only where the bound meets the optimum and the front is smooth;
        on a step they can be 0 or several times the multiplier."""
        if budget not in PRICE_UNITS:
            return [None] * len(self.rows)
        scale = self.unit(budget)[0] / PRICE_UNITS[budget]
        out: list[float | None] = []
        for row in self.rows:
            prices = (row.get("certificate") or {}).get("prices", {})
            out.append(prices[budget] * scale if budget in prices else None)
        return out


SWEEP_FORMAT = 2
"""Version of a sweep file's header: 2 names the axes without their values (rows carry them), so
that a file grows with the values a later run adds; 1 (read, then rewritten as 2) listed them."""


def _digest(table: str) -> str:
    """A short digest of a cost table's file (an edited or re-profiled table is another table)."""
    from ..hardware.latency import find_table

    return hashlib.sha256(Path(find_table(table)).read_bytes()).hexdigest()[:16]


def _header(problem: Problem, axes: Mapping[str, Sequence], settings: dict[str, Any]) -> dict[str, Any]:
    """What a sweep's ``out`` file starts with: the problem, the axes' names, the settings and a
    digest of each cost table. A later run with the same header (its axes in any order, with any
    values) reuses the file's points."""
    model = problem.latency_model
    described = repr(dataclasses.replace(problem, latency=None, latency_model=None))
    tables = {}
    if model is not None:
        described += f", latency {problem.latency} ms on {model.name}, batch {model.predictor.batch}"
        tables[model.name] = _digest(model.name)
    for name in axes.get("table", ()):
        tables[str(name)] = _digest(str(name))
    return {"format": "deepmad-sweep", "version": SWEEP_FORMAT, "problem": described, "axes": sorted(axes), "tables": tables,
            "settings": settings}


def point_key(values: Mapping[str, Any], names: Sequence[str]) -> str:
    """A point's identity in a sweep file: its value on each axis, by axis name."""
    return json.dumps([[n, _plain(values[n])] for n in sorted(names)])


def _setting(value: Any) -> str:
    return "the default" if value is None else str(value)


def _other_sweep(kept: Any, header: dict[str, Any]) -> tuple[str, str | None] | None:
    """What makes the file's header ``kept`` another sweep than ``header``, and how to go on with it
    where a setting is all that differs (``None``: the same sweep)."""
    if not isinstance(kept, dict) or kept.get("format") != "deepmad-sweep" or kept.get("version") not in (1, SWEEP_FORMAT):
        return "is not a deepmad sweep file", None
    names = sorted(a[0] for a in kept.get("axes") or ()) if kept["version"] == 1 else kept.get("axes")
    if names != header["axes"]:
        return f"holds a sweep over {', '.join(map(str, names or ())) or 'no axes'}, this one varies {', '.join(header['axes'])}", None
    if kept.get("problem") != header["problem"]:
        return "holds a sweep of another problem", None
    ours, theirs = header["settings"], kept.get("settings") or {}
    for name in sorted(set(ours) | set(theirs)):
        if ours.get(name) != theirs.get(name):
            option = {"time_limit": "--time-limit", "gap": "--gap", "method": "--method", "slack": "--slack"}.get(name, name)
            fix = f"pass {option} {theirs[name]}" if theirs.get(name) is not None else f"leave {option} out"
            return f"holds a sweep solved with {option} {_setting(theirs.get(name))}, this run's is {_setting(ours.get(name))}", f"{fix} to go on with it"
    tables = kept.get("tables") or {}
    for t, digest in header["tables"].items():
        if t in tables and tables[t] != digest:
            return f"holds a sweep on another version of the table {t} (its rows changed)", None
    return None


def _resume(path: Path, header: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The finished rows of earlier runs of the same sweep at ``path`` (any values of the same axes),
    by :func:`point_key`. A half-written last line (a killed run) is dropped; the header is
    rewritten when this sweep names tables the file did not, or the file is of format 1."""
    text = read_text(path, max_bytes=1 << 30)
    lines = text.split("\n")
    try:
        kept = json.loads(lines[0])
    except ValueError:
        kept = None
    other = _other_sweep(kept, header)
    if other is not None:
        reason, fix = other
        raise InputError(str(path), f"{reason}; {fix + ', or ' if fix else ''}give another --out, or --force to start afresh")
    done = {}
    for line in lines[1:-1]:  # complete lines only
        try:
            row = json.loads(line)
            done[point_key(row, header["axes"])] = row
        except (ValueError, KeyError, TypeError):
            raise InputError(str(path), f"holds a line that is not a sweep row: {shown(line)}; give another --out, or --force") from None
    merged = {**header, "tables": {**(kept.get("tables") or {}), **header["tables"]}}
    if lines[-1] or merged != kept:  # cut off a half-written line; state the tables this run adds
        atomic_write_text(path, "\n".join([json.dumps(merged), *lines[1:-1], ""]))
    return done


def process_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` processes for :func:`sweep`'s ``executor``: spawned (no state inherited from this
    process), each with its numerical libraries pinned (:func:`deepmad.threads.pin_process`)."""
    import multiprocessing

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=threads.pin_process)


def sweep(
    problem: Problem,
    axes: Mapping[str, Sequence],
    *,
    time_limit: float | None = None,
    gap: float = 1e-5,
    method: str = "auto",
    executor: Executor | None = None,
    chain_count: int | None = None,
    out: str | Path | None = None,
    force: bool = False,
    slack: float = 0.03,
    warm_start: bool = True,
    progress: Callable[[int, int], None] | None = None,
    share: bool = True,
    in_flight: int | None = None,
) -> Sweep:
    """Solve ``problem`` at every point of ``axes`` (name -> values, see :data:`AXES`).

    ``time_limit`` (s; default :func:`point_seconds`) and ``gap`` apply to each solve. ``executor`` runs the chains (default:
    in this process, one after another); ``chain_count`` (default: one per :data:`CHAIN`
    points, whatever the executor) sets how the points are cut into chains of neighbours. ``out``: a
    JSON Lines file that keeps finished rows; where it holds the same sweep (any values of the
    same axes), its points are reused and only the others solved (``force`` starts it afresh). ``slack``: relative slack within which a budget binds. ``share``:
    points not proven optimal take a better design, and a lower bound, of another point where it
    holds for them (:func:`shared`).
    ``progress(done, total)`` is called as rows come in. ``in_flight``: at most this many chains
    handed to the executor at once (default: all), e.g. its worker count, so that Ctrl-C leaves
    no queued chain behind."""
    unknown = [a for a in axes if a not in AXES]
    if unknown:
        raise InputError("axes", f"unknown axis {unknown[0]!r}; the axes are {', '.join(AXES)}")
    if not axes or any(len(v) == 0 for v in axes.values()):
        raise InputError("axes", "give at least one axis with at least one value")
    axes = {k: tuple(v) for k, v in axes.items()}
    grid = points(axes)
    settings = {"time_limit": time_limit, "gap": gap, "method": method, "slack": slack, "warm_start": warm_start}
    header = _header(problem, axes, settings)
    done: dict[int, dict[str, Any]] = {}
    path = Path(out) if out is not None else None
    if path is not None:
        if path.exists() and not force:
            kept = _resume(path, header)
            done = {i: {**kept[k], "index": i} for i, k in enumerate(point_key(p, axes) for p in grid) if k in kept}
        else:
            atomic_write_text(path, json.dumps(header) + "\n")
    reused = len(done)
    if chain_count is None:
        chain_count = math.ceil(len(grid) / CHAIN)
    todo = [[(i, grid[i]) for i in c if i not in done] for c in chains(len(grid), parts=chain_count)]
    todo = [c for c in todo if c]
    kwargs = dict(time_limit=time_limit, gap=gap, method=method, slack=slack, warm_start=warm_start)

    kept = dict(done)  # read from the file: what every executor sees alike

    def start(chain: list) -> Architecture | None:
        """The design of the point just before ``chain`` where the file holds it (a resumed or grown sweep)."""
        row = kept.get(chain[0][0] - 1)
        return Architecture.from_dict(row["architecture"]) if row is not None and row.get("architecture") else None

    def finished(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            done[row["index"]] = row
        if path is not None:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(r) + "\n" for r in rows))
                fh.flush()
                os.fsync(fh.fileno())
        if progress is not None:
            progress(len(done), len(grid))

    def run(jobs: list[tuple[list, Architecture | None]], on_rows: Callable[[list[dict[str, Any]]], None]) -> None:
        """Solve the chains of ``jobs`` (each with its start design) here or on the executor."""
        if executor is None:  # rows are kept one by one, so Ctrl-C loses only the point being solved
            for chain, first in jobs:
                solve_chain(problem, chain, on_row=lambda row: on_rows([row]), start=first, **kwargs)
            return
        from concurrent.futures import as_completed

        waiting = list(jobs)
        running: set = set()
        try:
            while waiting or running:
                while waiting and (in_flight is None or len(running) < in_flight):
                    chain, first = waiting.pop(0)
                    running.add(executor.submit(solve_chain, problem, chain, start=first, **kwargs))
                future = next(as_completed(running))
                running.remove(future)
                on_rows(future.result())
        except BaseException:  # Ctrl-C (or a failed chain): the chains not yet started are dropped
            for future in running:
                future.cancel()
            raise

    run([(chain, start(chain)) for chain in todo], finished)
    if warm_start:  # the chains' cold first points, once more from the design of the point before them
        again = []
        for i in sorted(set(done) - set(kept)):
            before = done.get(i - 1, {}).get("architecture")
            if done[i].get("warm_start") is False and done[i]["status"] not in ("optimal", "infeasible") and before is not None:
                arch = Architecture.from_dict(before)
                if variant(problem, grid[i]).check(arch).feasible:
                    again.append(([(i, grid[i])], arch))
        run(again, lambda rows: finished([merged(done[r["index"]], r, gap=gap) for r in rows]))
    rows = [done[i] for i in range(len(grid))]
    if share:
        rows = shared(problem, rows, grid, slack=slack, gap=gap)
    return Sweep(axes, rows, solved=len(grid) - reused)


def merged(first: dict[str, Any], second: dict[str, Any], *, gap: float) -> dict[str, Any]:
    """Two solves' rows of one point as one: the better design (with its figures and certificate),
    the lower of the two bounds, the status that bound proves, and both solves' time."""
    better = second if (second["objective"] or -math.inf) > (first["objective"] or -math.inf) else first
    out = dict(better)
    bounds = [r["bound"] for r in (first, second) if r["bound"] is not None]
    out["bound"] = min(bounds) if bounds else None
    if out["objective"] is not None and out["bound"] is not None:
        out["gap"] = max(0.0, (out["bound"] - out["objective"]) / abs(out["bound"])) if out["bound"] else 0.0
        if out["gap"] <= gap:
            out["status"] = "optimal"
    out["solve_seconds"] = first["solve_seconds"] + second["solve_seconds"]
    out["warm_start"] = True
    return out


def looser(point: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether every design that meets ``other``'s constraints meets ``point``'s: each budget axis
    of ``point`` at least ``other``'s (every budget is an upper limit), every other axis equal."""
    return all(point[a] >= other[a] if a in BUDGETS else point[a] == other[a] for a in point)


def shared(problem: Problem, rows: list[dict[str, Any]], grid: list[dict[str, Any]], *, slack: float, gap: float) -> list[dict[str, Any]]:
    """The rows, where a point not proven optimal takes from the other points what holds for it too:

    * the best design of any other point that meets its constraints and is worth more than its own
      (``design_from`` names that point). A design found under a smaller budget is feasible under a
      larger one, so along a budget axis the objectives no longer decrease where one chain of
      solves ran out of time before the next;
    * the least bound of the points whose budgets are all at least its own, other axes equal
      (:func:`looser`; ``bound_from`` names that point): their designs include all of its own, so
      their optima are at least its optimum; and, from such a point's column generation, its
      Lagrangian bound moved to this point's budgets (:func:`deepmad.solvers.colgen.certified`), lower by
      the multipliers times the budgets given up. Along a budget axis the bounds then never
      decrease, and the points of a sweep bound one another.

    The row is ``optimal`` where the bound so taken proves the design."""
    designs = [(r["index"], Architecture.from_dict(r["architecture"])) for r in rows if r.get("architecture") is not None]
    bounds = [(r["index"], r["bound"], r.get("certificate"), point) for r, point in zip(rows, grid) if r["bound"] is not None]
    out = []
    for row, point in zip(rows, grid):
        if row["status"] in ("optimal", "infeasible"):
            out.append(row)
            continue
        p = variant(problem, point)
        new = dict(row)
        own = row["objective"] if row["objective"] is not None else -math.inf
        best = None
        for index, arch in designs:
            if index != row["index"]:
                check = p.check(arch)
                if check.feasible and check.objective > (best[2].objective if best else own):
                    best = (index, arch, check)
        if best is not None:
            index, arch, check = best
            new |= {
                "objective": check.objective, "error": None, "design_flops": check.flops, "design_params": check.params,
                "design_latency_ms": check.latency_ms, "design_rho": check.rho, "layers": check.layers,
                "binding": ";".join(binding(p, check, slack=slack)), "design": summary(arch), "architecture": arch.to_dict(),
                "design_from": index,
            }
        lowest = min(((min(b, certified(c, p) if c else math.inf), i) for i, b, c, other in bounds
                      if i != row["index"] and looser(other, point)), default=None)
        if lowest is not None and (new["bound"] is None or lowest[0] < new["bound"]):
            new |= {"bound": lowest[0], "bound_from": lowest[1]}
        if new["objective"] is not None and new["bound"] is not None:
            bound = new["bound"] = max(new["bound"], new["objective"])
            new["gap"] = max(0.0, (bound - new["objective"]) / abs(bound)) if bound else 0.0
            if bound - new["objective"] <= gap * abs(bound) + 1e-9:
                new["status"] = "optimal"
        out.append(new)
    return out
