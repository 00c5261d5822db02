"""The program over a set of options as a sparse model on HiGHS: the MILP, the master LP, and
what their duals price.

Columns: one binary per stem option and per stage option (see
:class:`Options`), ``S_i`` and ``D_i`` per scoring prefix (bounded by
:class:`Caps`), ``sigma[i, c]``, the entropy of prefix ``i`` carried on the
width ``c`` it ends at (the product ``ln(c r_i^2) S_i`` is ``sum_c weight(i,
c) sigma[i, c]`` with ``sigma[i, c] <= cap(i, c) [prefix i ends at c]`` and
``sum_c sigma[i, c] <= S_i``: exact, since the objective grows with sigma),
and one binary per reachable depth moment ``(u, v)`` with its exact penalty.

Rows: the choice (``one_stem``, ``one_option[j]``), the width flow between
stages (``flow[j, a]``: the width leaving stage ``j - 1`` enters stage
``j``), the definitions ``S_def[i]`` and ``D_def[i]``, the sigma rows, and the
program's own rows (:class:`deepmad.solvers.rows.Program`: budgets, rho
tangents, spread, moments), whose quantities are read off the same columns.

An option's entry in each row is a linear function of its attributes
(:data:`ATTRIBUTES`) and, for the flow and sigma rows, of its widths
(:meth:`Formulation.entries`); so is its reduced cost at any duals
(:meth:`Formulation.reduced`), which is what lets column generation price
the whole space in bulk with the same numbers the master holds.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field

import highspy
import numpy as np

from .. import interrupt
from ..errors import Interrupted
from .context import Context
from .rows import BUDGETS, FLOPS_UNIT, Program, Row

ATTRIBUTES = ("entropy", "flops", "params", "latency", "layers", "depth", "depth2", "one")


@dataclass(frozen=True, eq=False)
class Options:
    """Options of one stage (``stage == -1``: the stem), as arrays of equal length."""

    stage: int
    c_in: np.ndarray
    channels: np.ndarray
    inner: np.ndarray
    kernel: np.ndarray
    depth: np.ndarray
    entropy: np.ndarray
    flops: np.ndarray
    params: np.ndarray
    latency: np.ndarray
    layers: np.ndarray

    def __len__(self) -> int:
        return len(self.channels)

    def attribute(self, name: str) -> np.ndarray:
        if name == "depth2":
            return self.depth.astype(float) ** 2
        if name == "one":
            return np.ones(len(self))
        return getattr(self, name)

    def take(self, at) -> "Options":
        return Options(self.stage, *(getattr(self, f)[at] for f in ("c_in", "channels", "inner", "kernel", "depth", "entropy", "flops",
                                                                       "params", "latency", "layers")))

    @classmethod
    def concat(cls, parts: list["Options"], stage: int) -> "Options":
        names = ("c_in", "channels", "inner", "kernel", "depth", "entropy", "flops", "params", "latency", "layers")
        if not parts:
            return cls(stage, *(np.zeros(0, dtype=float if n in ("entropy", "latency") else np.int64) for n in names))
        return cls(stage, *(np.concatenate([getattr(p, n) for p in parts]) for n in names))

    def key(self, i: int) -> tuple[int, int, int, int, int]:
        return int(self.c_in[i]), int(self.channels[i]), int(self.inner[i]), int(self.kernel[i]), int(self.depth[i])


@dataclass(frozen=True)
class Caps:
    """Bounds on every design of a space that meets the budgets and rho0, per scoring prefix ``i``:
    ``s_max[i] >= S_i``, ``layers[i]`` the range of ``D_i``, and ``caps[i, c] >= S_i`` over the designs
    whose prefix ``i`` ends at width ``c`` (``s_max[i]`` where absent). ``setting``: the multipliers
    the caps were found at (a warm start for a neighbouring problem)."""

    s_max: list[float]
    layers: list[tuple[int, int]]
    caps: dict[tuple[int, int], float] = field(default_factory=dict)
    setting: tuple[float, float, int] | None = None

    def cap(self, i: int, c: int) -> float:
        """The bound on ``S_i`` where prefix ``i`` ends at width ``c`` (0 where no design of the space
        that meets the budgets ends there)."""
        return max(0.0, min(self.s_max[i], self.caps.get((i, c), math.inf)))


class Formulation:
    """Which rows an option of a stage enters, and with what coefficient (see the module docstring)."""

    def __init__(self, program: Program, caps: Caps):
        self.program, self.caps = program, caps
        self.context: Context = program.context
        self.rows: list[Row] = program.rows()
        ctx = self.context
        self.nstages = ctx.nstages
        # Per stage: (row key, {attribute: coefficient}) of the rows that do not depend on its widths.
        self._stage_rows: dict[int, list[tuple[tuple, dict[str, float]]]] = {}
        for j in range(-1, self.nstages):
            rows = [(("one_stem",) if j < 0 else ("one_option", j), {"one": 1.0})]
            for i in ctx.prefixes_of(j):
                rows.append((("S_def", i), {"entropy": -1.0}))
                rows.append((("D_def", i), {"layers": -1.0}))
            for row in self.rows:  # the program's rows read the options' attributes (rho reads S and D)
                if row.key[0] in BUDGETS:
                    coefs = {row.key[0]: row.terms[row.key] / (FLOPS_UNIT if row.key[0] == "flops" else 1.0)}
                else:
                    coefs = {"depth": row.terms.get(("depth", j), 0.0), "depth2": row.terms.get(("depth2", j), 0.0)}
                coefs = {a: c for a, c in coefs.items() if c}
                if coefs:
                    rows.append((row.key, coefs))
            self._stage_rows[j] = rows
        # The objective weight of an option's entropy where the last prefix's width is the head's.
        self._head_weight = {j: sum(ctx.end_weight(i, None) for i in ctx.prefixes_of(j) if not ctx.has_sigma(i))
                             for j in range(-1, self.nstages)}

    # -- entries -------------------------------------------------------------

    def entries(self, j: int, opts: Options) -> list[tuple[tuple, np.ndarray]]:
        """Per row key, the coefficients of ``opts`` (stage ``j``) in it; flow and sigma rows keyed by width."""
        out = []
        for key, coefs in self._stage_rows[j]:
            out.append((key, sum(c * opts.attribute(a) for a, c in coefs.items())))
        ctx = self.context
        if j >= 0:
            for a in np.unique(opts.c_in):
                out.append((("flow", j, int(a)), np.where(opts.c_in == a, -1.0, 0.0)))
        if j + 1 < self.nstages:
            for c in np.unique(opts.channels):
                out.append((("flow", j + 1, int(c)), np.where(opts.channels == c, 1.0, 0.0)))
        for i in ctx.ending(j):
            if ctx.has_sigma(i):
                for c in np.unique(opts.channels):
                    out.append((("sigma_link", i, int(c)), np.where(opts.channels == c, -self.caps.cap(i, int(c)), 0.0)))
        return out

    def cost(self, j: int, opts: Options) -> np.ndarray:
        """The objective coefficients of ``opts`` (only where a head conv ends the last prefix)."""
        return self._head_weight[j] * opts.entropy

    # -- reduced costs ---------------------------------------------------------

    def reduced(self, j: int, y: dict[tuple, float]) -> tuple[dict[str, float], dict[int, float], dict[int, float]]:
        """An option's reduced cost at duals ``y`` as ``sum prices[attribute] * attribute +
        inflow[c_in] + outflow[channels]`` (attributes as in :data:`ATTRIBUTES`)."""
        prices = {a: 0.0 for a in ATTRIBUTES}
        prices["entropy"] += self._head_weight[j]
        for key, coefs in self._stage_rows[j]:
            v = y.get(key, 0.0)
            if v:
                for a, c in coefs.items():
                    prices[a] -= v * c
        inflow = {key[2]: v for key, v in y.items() if key[0] == "flow" and key[1] == j} if j >= 0 else {}
        outflow = {key[2]: -v for key, v in y.items() if key[0] == "flow" and key[1] == j + 1}
        ctx = self.context
        for i in ctx.ending(j):
            if ctx.has_sigma(i):
                for key, v in y.items():
                    if key[0] == "sigma_link" and key[1] == i:
                        outflow[key[2]] = outflow.get(key[2], 0.0) + v * self.caps.cap(i, key[2])
        return prices, inflow, outflow


class Model:
    """The formulation on HiGHS, grown column by column (the master LP) or stated whole (a MILP).

    ``elastic``: the budget and rho rows get a violation column priced :data:`ELASTIC` per unit,
    so that an LP over a few options is feasible from the start."""

    def __init__(self, formulation: Formulation, stem: Options, *, integer: bool, elastic: bool = False):
        self.f, self.integer, self.elastic = formulation, integer, elastic
        ctx, caps = formulation.context, formulation.caps
        self.h = _highs()
        self.h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        if not ctx.covered:  # the depth penalty covers no stage: a constant, beta, with no moment column to carry it
            self.h.changeObjectiveOffset(-ctx.penalty(()))
        self.rows: dict[tuple, int] = {}
        self.options: list[tuple[int, int, Options]] = []  # (first column, stage, options)
        self.moments: list[tuple[int, int]] = []
        inf = highspy.kHighsInf
        for row in formulation.rows:
            if row.key[0] not in ("depth_sum", "depth_squares"):
                self._row(row.key, row.rhs if row.equality else -inf, row.rhs)
                if elastic and row.key[0] in ("flops", "params", "layers", "latency", "rho"):
                    self._col(-ELASTIC, 0.0, inf, {row.key: -1.0})
        for i in range(len(ctx.last)):
            self._row(("S_def", i), 0.0, 0.0)
            self._row(("D_def", i), 0.0, 0.0)
            if ctx.has_sigma(i):
                self._row(("sigma_sum", i), -inf, 0.0)
        self._row(("one_stem",), 1.0, 1.0)
        for j in range(ctx.nstages):
            self._row(("one_option", j), 1.0, 1.0)
        # S_i and D_i: their definitions, the tangents' terms on them, and the head's weight.
        for i in range(len(ctx.last)):
            s_entries, d_entries = {("S_def", i): 1.0}, {("D_def", i): 1.0}
            if ctx.has_sigma(i):
                s_entries[("sigma_sum", i)] = -1.0
            for row in formulation.rows:
                if row.key[0] == "rho" and row.key[1] == i:
                    s_entries[row.key] = row.terms[("S", i)]
                    d_entries[row.key] = row.terms[("D", i)]
            self._col(0.0, 0.0, caps.s_max[i], s_entries)
            self._col(0.0, float(caps.layers[i][0]), float(caps.layers[i][1]), d_entries)
        if ctx.covered:
            self._row(("depth_sum",), 0.0, 0.0)
            self._row(("depth_squares",), 0.0, 0.0)
            self._row(("one_moment",), 1.0, 1.0)
            for u, v, penalty in formulation.program.moments:
                self.moments.append((u, v))
                self._col(-penalty, 0.0, 1.0 if integer else inf, {("one_moment",): 1.0, ("depth_sum",): float(u), ("depth_squares",): float(v)},
                          integer=integer)
        self.add(-1, stem)

    def _row(self, key: tuple, lo: float, hi: float) -> int:
        if key not in self.rows:
            self.rows[key] = len(self.rows)
            self.h.addRow(lo, hi, 0, np.zeros(0, dtype=np.int32), np.zeros(0))
        return self.rows[key]

    def _col(self, cost: float, lo: float, hi: float, entries: dict, integer: bool = False) -> int:
        index = np.array([self.rows[k] for k in entries], dtype=np.int32)
        self.h.addCol(cost, lo, hi, len(index), index, np.array(list(entries.values()), dtype=float))
        col = self.h.getNumCol() - 1
        if integer:
            self.h.changeColIntegrality(col, highspy.HighsVarType.kInteger)
        return col

    def add(self, j: int, opts: Options) -> None:
        """Add the columns of ``opts`` (stage ``j``), creating the flow and sigma rows they need."""
        if not len(opts):
            return
        f, inf = self.f, highspy.kHighsInf
        ctx = f.context
        for i in ctx.ending(j):  # sigma columns of the end widths met for the first time
            if ctx.has_sigma(i):
                for c in np.unique(opts.channels).tolist():
                    if ("sigma_link", i, c) not in self.rows:
                        link = self._row(("sigma_link", i, c), -inf, 0.0)
                        self.h.addCol(ctx.weight(i, c), 0.0, f.caps.cap(i, c), 2, np.array([link, self.rows[("sigma_sum", i)]], dtype=np.int32),
                                      np.array([1.0, 1.0]))
        entries = f.entries(j, opts)
        for key, _ in entries:
            if key[0] == "flow":
                self._row(key, 0.0, 0.0)
        n = len(opts)
        rows_, values = [], []
        for key, coef in entries:
            coef = np.broadcast_to(np.asarray(coef, dtype=float), (n,))
            rows_.append(np.full(n, self.rows[key], dtype=np.int32))
            values.append(coef)
        rows_a, values_a = np.stack(rows_, axis=1), np.stack(values, axis=1)  # (n, entries)
        keep = values_a != 0.0
        starts = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
        first = self.h.getNumCol()
        self.h.addCols(n, f.cost(j, opts), np.zeros(n), np.full(n, 1.0 if self.integer else inf), int(starts[-1]), starts[:-1],
                       rows_a[keep].astype(np.int32), values_a[keep])
        if self.integer:
            self.h.changeColsIntegrality(n, np.arange(first, first + n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger))
        self.options.append((first, j, opts))

    # -- solving ---------------------------------------------------------------

    def solve(self, *, seconds: float = math.inf, gap: float = 0.0, start: dict[int, int] | None = None, nodes: int | None = None,
              log: bool = False) -> str:
        """Run HiGHS; returns its model status by name (``"Optimal"``, ``"Infeasible"``, ...).
        ``start``: a design as ``{stage: column index}`` (stem at -1), HiGHS's first incumbent."""
        h = self.h
        h.setOptionValue("output_flag", log)
        h.setOptionValue("time_limit", max(0.01, seconds) if math.isfinite(seconds) else highspy.kHighsInf)
        h.setOptionValue("mip_rel_gap", gap)
        if nodes is not None:
            h.setOptionValue("mip_max_nodes", int(nodes))
        if start:
            cols = np.array(sorted(start.values()), dtype=np.int32)
            h.setSolution(len(cols), cols, np.ones(len(cols)))
        if interrupt.requested():
            raise Interrupted("interrupted")
        with interrupt.running(h):
            status = h.run()
        if status == highspy.HighsStatus.kError:
            highspy.Highs.resetGlobalScheduler(True)
            h.run()
        if not self.integer and h.getModelStatus() not in (highspy.HighsModelStatus.kOptimal,):
            h.clearSolver()  # numerical trouble: once more from scratch
            h.run()
        return h.modelStatusToString(h.getModelStatus())

    def has_solution(self) -> bool:
        return self.h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible

    def objective(self) -> float:
        return self.h.getInfo().objective_function_value

    def bound(self) -> float:
        """The MILP's proven bound (the LP's value for an LP)."""
        info = self.h.getInfo()
        return info.mip_dual_bound if self.integer else info.objective_function_value

    def duals(self) -> dict[tuple, float]:
        """Row duals by key (an LP)."""
        duals = self.h.getSolution().row_dual
        return {key: duals[r] for key, r in self.rows.items()}

    def picked(self) -> dict[int, tuple[Options, int]]:
        """Per stage (-1: the stem), the options and index of the option the solution picks."""
        x = np.asarray(self.h.getSolution().col_value)
        out = {}
        for first, j, opts in self.options:
            values = x[first:first + len(opts)]
            at = int(np.argmax(values))
            if values[at] > 0.5:
                out[j] = (opts, at)
        return out

    def pyomo(self):
        """This model as a Pyomo model (the same columns, rows and objective), for any MILP solver
        Pyomo drives."""
        import pyomo.environ as pyo

        lp = self.h.getLp()
        a = lp.a_matrix_
        n, m = lp.num_col_, lp.num_row_
        integer = self.integer and len(lp.integrality_) == n
        model = pyo.ConcreteModel(name="deepmad")
        model.x = pyo.Var(range(n), within=pyo.Reals)
        for c in range(n):
            model.x[c].setlb(lp.col_lower_[c] if math.isfinite(lp.col_lower_[c]) else None)
            model.x[c].setub(lp.col_upper_[c] if math.isfinite(lp.col_upper_[c]) else None)
            if integer and lp.integrality_[c] == highspy.HighsVarType.kInteger:
                model.x[c].domain = pyo.Integers
        rows: list[list] = [[] for _ in range(m)]
        for c in range(n):
            for at in range(a.start_[c], a.start_[c + 1]):
                rows[a.index_[at]].append((a.value_[at], c))
        model.rows = pyo.ConstraintList()
        for r in range(m):
            body = sum(v * model.x[c] for v, c in rows[r])
            lo, hi = lp.row_lower_[r], lp.row_upper_[r]
            if isinstance(body, (int, float)):
                continue
            if lo == hi:
                model.rows.add(body == lo)
            else:
                if math.isfinite(lo):
                    model.rows.add(body >= lo)
                if math.isfinite(hi):
                    model.rows.add(body <= hi)
        model.objective = pyo.Objective(expr=sum(lp.col_cost_[c] * model.x[c] for c in range(n) if lp.col_cost_[c]), sense=pyo.maximize)
        return model

    def exclude(self) -> None:
        """Cut off the design the last solution picked: its picks cannot all be chosen again."""
        x = np.asarray(self.h.getSolution().col_value)
        cols = np.array([first + int(np.argmax(x[first:first + len(opts)])) for first, _, opts in self.options], dtype=np.int32)
        self.h.addRow(-highspy.kHighsInf, float(len(cols) - 1), len(cols), cols, np.ones(len(cols)))

    def column_of(self, j: int, key: tuple) -> int | None:
        """The column of stage ``j``'s option ``(c_in, channels, inner, kernel, depth)``, if held."""
        for first, jj, opts in self.options:
            if jj != j:
                continue
            hit = np.flatnonzero((opts.c_in == key[0]) & (opts.channels == key[1]) & (opts.inner == key[2]) & (opts.kernel == key[3])
                                 & (opts.depth == key[4]))
            if len(hit):
                return first + int(hit[0])
        return None


ELASTIC = 1e5
"""Objective cost of one unit of violation of a budget or rho row in an elastic (master) LP."""


def _highs() -> highspy.Highs:
    """A HiGHS object on one thread, with fixed seeds and the program's tolerances."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:  # highspy prints a banner on standard output when made
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    h.setOptionValue("output_flag", False)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("threads", 1)
    h.setOptionValue("mip_feasibility_tolerance", 1e-9)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    return h
