"""The DeepMAD design problem as a mixed-integer linear program (spec section 5).

:func:`build_program` states the whole program in Pyomo, exactly on the
discretized space; any MILP solver can be handed the model. The statement:

* **choices**: one stem width (``stem[s]``) and, per stage, one option
  (``pick[j, o]``: input width, output channels, inner width, kernel, depth;
  see :mod:`deepmad.options`). Consecutive choices must agree on the width
  between them: the width leaving stage ``j - 1`` enters stage ``j`` (a flow
  through a layered graph of widths), so the picks form one network;
* **costs**: FLOPs and parameters are sums of the picked options'
  coefficients, bounded by the budgets (FLOPs in MFLOPs to keep the rows
  well scaled);
* **entropy**: ``S_i`` and ``D_i`` of every scoring prefix are sums of the
  picked options' entropies and layer counts;
* **effectiveness**: ``rho_i <= rho0`` is ``2 S_i >= D_i ln(D_i / rho0)``; the
  right side is convex in the integer ``D_i``, so its tangents at every
  integer ``n`` state it exactly;
* **objective**: ``H_i = ln(c_i r_i^2) S_i`` multiplies the prefix's end
  width (a choice) by ``S_i``: ``sigma[i, c]`` carries ``S_i`` on the picked
  end width ``c`` and is zero elsewhere (``sigma <= S_max * [c picked]``,
  ``sum_c sigma <= S_i``; exact since the objective grows with ``sigma``);
* **depth penalty**: ``beta * exp(pstdev(L_P))`` depends on the depths only
  through ``u = sum L_j`` and ``v = sum L_j^2`` over the covered stages; one
  binary per reachable ``(u, v)`` selects the exact penalty;
* **guidelines**: non-decreasing channels and the growth rule remove
  options; the hard depth spread bounds ``L_j - L_k``; ``max_layers`` bounds
  the last ``D_i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyomo.environ as pyo

from .entropy import depth_penalty
from .options import Option, pareto, stage_options, stem_options
from .problem import Problem

FLOPS_UNIT = 1e6


@dataclass(frozen=True)
class Tables:
    """The options of a problem: ``stem`` widths and ``stages[j]`` for each stage."""

    stem: list[Option]
    stages: list[list[Option]]

    @classmethod
    def of(cls, problem: Problem) -> "Tables":
        """All options, less those another option of the same group dominates (see :func:`pareto`)."""
        return cls(stem_options(problem), [pareto(stage_options(problem, j)) for j in range(len(problem.space.strides))])

    @property
    def size(self) -> int:
        return len(self.stem) + sum(len(s) for s in self.stages)


def _reachable_sums(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every ``(sum L, sum L^2)`` that depths in ``ranges`` can reach."""
    sums = {(0, 0)}
    for lo, hi in ranges:
        sums = {(u + d, v + d * d) for u, v in sums for d in range(lo, hi + 1)}
    return sorted(sums)


def _pstdev(u: int, v: int, n: int) -> float:
    return math.sqrt(max(0.0, v / n - (u / n) ** 2))


def build_program(problem: Problem, tables: Tables) -> pyo.ConcreteModel:
    """The Pyomo model of ``problem`` over the options in ``tables`` (maximize the DeepMAD objective)."""
    space, scoring = problem.space, problem.scoring
    skeleton = space.skeleton()
    levels = skeleton.levels()
    alpha = scoring.alphas(len(levels))
    covered = scoring.covered_stages(skeleton)
    nstages = len(tables.stages)
    score_side = scoring.side(skeleton)

    m = pyo.ConcreteModel(name=problem.name or "deepmad")
    m.stem = pyo.Var(range(len(tables.stem)), within=pyo.Binary)
    m.pick = pyo.Var([(j, o) for j in range(nstages) for o in range(len(tables.stages[j]))], within=pyo.Binary)

    def chosen(j: int) -> list[tuple[Option, pyo.Var]]:
        return [(opt, m.stem[o]) for o, opt in enumerate(tables.stem)] if j < 0 else [(opt, m.pick[j, o]) for o, opt in enumerate(tables.stages[j])]

    def total(j_last: int, attr: str) -> pyo.Expression:
        return sum(getattr(opt, attr) * x for j in range(-1, j_last + 1) for opt, x in chosen(j))

    def width_is(j: int, c: int) -> pyo.Expression:
        return sum(x for opt, x in chosen(j) if opt.channels == c)

    # One stem; the width leaving each stage (or the stem) enters the next one.
    m.one_stem = pyo.Constraint(expr=sum(m.stem.values()) == 1)
    m.flow = pyo.ConstraintList()
    for j in range(nstages):
        for a in sorted({opt.c_in for opt in tables.stages[j]} | {opt.channels for opt, _ in chosen(j - 1)}):
            m.flow.add(width_is(j - 1, a) == sum(x for opt, x in chosen(j) if opt.c_in == a))

    # Budgets.
    last = nstages - 1
    if problem.flops is not None:
        m.flops = pyo.Constraint(expr=total(last, "flops") / FLOPS_UNIT <= math.floor(problem.flops) / FLOPS_UNIT)
    if problem.params is not None:
        m.params = pyo.Constraint(expr=total(last, "params") <= math.floor(problem.params))
    if problem.max_layers is not None:
        m.layers = pyo.Constraint(expr=total(last, "layers") <= problem.max_layers)

    # Scoring prefixes: entropy S_i, depth D_i, effectiveness, and H_i.
    m.prefixes = pyo.RangeSet(0, len(levels) - 1)
    m.S = pyo.Expression(m.prefixes, rule=lambda _, i: total(levels[i].last_stage, "entropy"))
    m.D = pyo.Expression(m.prefixes, rule=lambda _, i: total(levels[i].last_stage, "layers"))
    m.rho = pyo.ConstraintList()
    m.H = pyo.Expression(m.prefixes)
    m.sigma = pyo.VarList(domain=pyo.NonNegativeReals)
    m.sigma_link = pyo.ConstraintList()
    for i, level in enumerate(levels):
        stages = range(-1, level.last_stage + 1)
        d_min = sum(min(opt.layers for opt, _ in chosen(j)) for j in stages)
        d_max = sum(max(opt.layers for opt, _ in chosen(j)) for j in stages)
        s_max = sum(max(opt.entropy for opt, _ in chosen(j)) for j in stages)
        if problem.rho is not None:
            for n in range(d_min, d_max + 1):
                g, slope = n * math.log(n / problem.rho), math.log(n / problem.rho) + 1.0
                m.rho.add(2.0 * m.S[i] >= g + slope * (m.D[i] - n))
        r2 = (score_side // level.reduction) ** 2
        is_last = i == len(levels) - 1
        if is_last and space.head:
            m.H[i] = math.log(space.head * r2) * m.S[i]
            continue
        end = level.last_stage
        terms = []
        for c in sorted({opt.channels for opt, _ in chosen(end)}):
            sigma = m.sigma.add()
            m.sigma_link.add(sigma <= s_max * width_is(end, c))
            terms.append((c, sigma))
        m.sigma_link.add(sum(s for _, s in terms) <= m.S[i])
        m.H[i] = sum(math.log(c * r2) * s for c, s in terms)

    # Depth penalty, exact over the reachable (sum L, sum L^2) of the covered stages.
    penalty = 0.0
    if covered:
        depth = {j: sum(opt.depth * x for opt, x in chosen(j)) for j in covered}
        pairs = _reachable_sums([space.depths[j] for j in covered])
        m.moments = pyo.Var(range(len(pairs)), within=pyo.Binary)
        m.one_moment = pyo.Constraint(expr=sum(m.moments.values()) == 1)
        m.depth_sum = pyo.Constraint(expr=sum(u * m.moments[p] for p, (u, _) in enumerate(pairs)) == sum(depth.values()))
        m.depth_squares = pyo.Constraint(
            expr=sum(v * m.moments[p] for p, (_, v) in enumerate(pairs))
            == sum(opt.depth**2 * x for j in covered for opt, x in chosen(j))
        )
        n = len(covered)
        penalty = sum(scoring.beta * math.exp(_pstdev(u, v, n)) * m.moments[p] for p, (u, v) in enumerate(pairs))
        if problem.max_depth_spread is not None:
            m.spread = pyo.ConstraintList()
            for a in covered:
                for b in covered:
                    if a != b:
                        m.spread.add(depth[a] - depth[b] <= problem.max_depth_spread)
    else:
        penalty = depth_penalty([], scoring.beta)

    m.objective = pyo.Objective(expr=sum(alpha[i] * m.H[i] for i in m.prefixes) - penalty, sense=pyo.maximize)
    return m


def picked(m: pyo.ConcreteModel, tables: Tables) -> tuple[Option, list[Option]]:
    """The stem and stage options a solved model picked."""
    stem = next(opt for o, opt in enumerate(tables.stem) if pyo.value(m.stem[o]) > 0.5)
    stages = [next(opt for o, opt in enumerate(options) if pyo.value(m.pick[j, o]) > 0.5) for j, options in enumerate(tables.stages)]
    return stem, stages
