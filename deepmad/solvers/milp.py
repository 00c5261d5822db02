"""Exact MILPs over option tables: the whole program, or the options that survive fixing.

:func:`tables` lists every option of a space (less those another option of the
same stage, widths and depth dominates); :func:`solve_options` states the
program over given options (:class:`deepmad.solvers.formulation.Model`) and
hands it to HiGHS, warm-started from a design where one is known. The design
it returns is re-scored by :meth:`deepmad.problem.problem.Problem.check` and must meet
every constraint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..errors import DeepmadError
from ..model.architecture import Architecture
from ..problem.problem import Check, Problem
from .engine import Engine, assemble
from .formulation import Caps, Formulation, Model, Options
from .pricing import stage_options, stem_options


def every_option(engine: Engine, j: int) -> Options:
    """Every option of stage ``j``."""
    t = engine.stages[j]
    K = len(t.kernels)
    parts = []
    for m in range(len(t.widths)):
        ai = np.arange(t.a_lo[m], t.a_hi[m])
        p = np.arange(t.starts[m], t.starts[m + 1])
        grid = np.meshgrid(ai, p, np.arange(K), t.depths, indexing="ij")
        parts.append(stage_options(engine, j, np.full(grid[0].size, m), *(g.ravel() for g in grid)))
    return Options.concat(parts, j)


def pareto(opts: Options) -> Options:
    """The options no other option of the same input, output width and depth dominates: at most its
    FLOPs, parameters and latency, and at least its entropy (everything else in the program is then
    equal). Dropping dominated options keeps an optimal design; ties keep the first option."""
    if not len(opts):
        return opts
    keys = np.stack([opts.c_in, opts.channels, opts.depth], axis=1)
    order = np.lexsort((np.arange(len(opts)), opts.latency, opts.params, opts.flops, -opts.entropy, keys[:, 2], keys[:, 1], keys[:, 0]))
    k = keys[order]
    cut = np.flatnonzero(np.any(k[1:] != k[:-1], axis=1)) + 1
    kept = []
    for group in np.split(order, cut):
        f, q, t = opts.flops[group], opts.params[group], opts.latency[group]
        front: list[int] = []
        for i in range(len(group)):
            if front:
                fr = np.array(front)
                if np.any((f[fr] <= f[i]) & (q[fr] <= q[i]) & (t[fr] <= t[i])):
                    continue
            front.append(i)
        kept.extend(group[front].tolist())
    return opts.take(np.sort(np.array(kept, dtype=np.int64)))


def tables(engine: Engine) -> list[Options]:
    """Every option of every stage, dominated ones dropped."""
    return [pareto(every_option(engine, j)) for j in range(len(engine.stages))]


def option_caps(context, stem: Options, stages: list[Options]) -> Caps:
    """The caps the options themselves give: ``S_i`` at most the sum of each stage's largest entropy."""
    parts = [stem] + stages
    s_max, layers = [], []
    for last in context.last:
        upto = parts[:last + 2]
        s_max.append(float(sum(np.max(o.entropy) for o in upto)))
        layers.append((int(sum(np.min(o.layers) for o in upto)), int(sum(np.max(o.layers) for o in upto))))
    return Caps(s_max, layers)


@dataclass
class Solved:
    """A MILP's outcome: HiGHS's status, the design it found (checked), and its proven bound."""

    status: str
    design: Architecture | None
    check: Check | None
    bound: float


def solve_options(problem: Problem, formulation: Formulation, stem: Options, stages: list[Options], *, seconds: float, gap: float,
                  start: Architecture | None = None, log: bool = False, nodes: int | None = None) -> Solved:
    """The program over ``stages`` (and ``stem``) on HiGHS, from ``start`` where it is among them.

    HiGHS meets the rows within its tolerance (1e-9): where ``rho0`` equals some design's ``rho`` to
    the last bits, it can return a design a hair over it, which the exact check refuses. That design
    alone is then cut off (its picks cannot all be chosen again) and HiGHS runs again, at most
    :data:`RETRIES` times; the bound stays HiGHS's, which the cut can only lower."""
    model = Model(formulation, stem, integer=True)
    for j, opts in enumerate(stages):
        model.add(j, opts)
    warm = _start(model, start) if start is not None else None
    deadline = time.perf_counter() + seconds
    bound = math.inf
    for _ in range(RETRIES):
        status = model.solve(seconds=deadline - time.perf_counter(), gap=gap, start=warm, log=log, nodes=nodes)
        found = model.bound() if status not in ("Infeasible",) else -math.inf
        bound = min(bound, found) if math.isfinite(found) else bound if status != "Infeasible" else -math.inf
        if not model.has_solution():
            return Solved(status, None, None, bound)
        picks = model.picked()
        arch = assemble(problem, int(picks[-1][0].channels[picks[-1][1]]),
                        [(int(o.channels[i]), int(o.inner[i]), int(o.kernel[i]), int(o.depth[i])) for o, i in (picks[j] for j in range(len(stages)))])
        check = problem.check(arch)
        if check.feasible:
            return Solved(status, arch, check, max(bound, check.objective) if math.isfinite(bound) else math.inf)
        model.exclude()
        warm = None
    raise DeepmadError(f"internal error: the solver's designs break {', '.join(v.message for v in check.violations)}")


RETRIES = 20
"""Most designs a hair over a limit that :func:`solve_options` cuts off before it gives up."""


def _start(model: Model, arch: Architecture) -> dict[int, int] | None:
    """The columns that state ``arch``; ``None`` where one of its options is not held."""
    out = {}
    col = model.column_of(-1, (3, arch.stem.channels, 0, 3, 1))
    if col is None:
        return None
    out[-1] = col
    c_in = arch.stem.channels
    for j, stage in enumerate(arch.stages):
        col = model.column_of(j, (c_in, stage.channels, stage.inner, stage.kernel, stage.depth))
        if col is None:
            return None
        out[j] = col
        c_in = stage.channels
    return out


__all__ = ["Solved", "every_option", "option_caps", "pareto", "solve_options", "stem_options", "tables"]
