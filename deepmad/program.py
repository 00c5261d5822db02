"""The DeepMAD design problem as a mixed-integer linear program (spec section 5).

:func:`build_program` states the whole program in Pyomo, exactly on the
discretized space; any MILP solver can be handed the model. The statement:

* **choices**: one stem width (``stem[s]``) and, per stage, one option
  (``pick[j, o]``: input width, output channels, inner width, kernel, depth;
  see :mod:`deepmad.options`). Consecutive choices must agree on the width
  between them: the width leaving stage ``j - 1`` enters stage ``j`` (a flow
  through a layered graph of widths), so the picks form one network;
* **costs**: FLOPs, parameters and, with a latency model, latency (ms) are
  sums of the picked options' coefficients, bounded by the budgets (FLOPs in
  MFLOPs to keep the rows well scaled);
* **entropy**: ``S_i`` and ``D_i`` of every scoring prefix are variables
  equal to the sums of the picked options' entropies and layer counts (two
  rows each, so the rows that use them stay sparse);
* **effectiveness**: ``rho_i <= rho0`` is ``2 S_i >= D_i ln(D_i / rho0)``; the
  right side is convex in the integer ``D_i``, so its tangents at every
  integer ``n`` state it exactly;
* **objective**: ``H_i = ln(c_i r_i^2) S_i`` multiplies the prefix's end
  width (a choice) by ``S_i``: ``sigma[i, c]`` carries ``S_i`` on the picked
  end width ``c`` and is zero elsewhere (``sigma <= cap(c) * [c picked]``,
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
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Bounds:
    """Bounds on every design of a space, per scoring prefix ``i``: ``s_max[i] >= S_i``,
    ``layers[i]`` the range of ``D_i``, and ``caps[i, c] >= S_i`` over the designs whose
    prefix ``i`` ends at width ``c`` (``s_max[i]`` where absent)."""

    s_max: list[float]
    layers: list[tuple[int, int]]
    caps: dict[tuple[int, int], float] = field(default_factory=dict)
    setting: tuple[float, float, int] | None = None  # the caps' best multipliers (see deepmad.colgen.space_bounds)

    def cap(self, i: int, c: int) -> float:
        """The bound on ``S_i`` where prefix ``i`` ends at width ``c`` (0 when no design of the
        space that meets the budgets ends there)."""
        return max(0.0, min(self.s_max[i], self.caps.get((i, c), math.inf)))


def build_program(problem: Problem, tables: Tables, *, bounds: Bounds | None = None) -> pyo.ConcreteModel:
    """The Pyomo model of ``problem`` over the options in ``tables`` (maximize the DeepMAD objective).

    Every row is stated as ``body <= constant`` or ``body == constant`` and
    keyed by what it is about (``flow[j, a]``, ``rho[i, n]``, ``sigma_link[i, c]``,
    ...), so that :mod:`deepmad.colgen` can price options the model does not
    hold from its duals. ``bounds`` bound ``S_i`` and ``D_i`` (default: what
    the tables allow); a caller solving over part of a space passes the
    whole space's bounds, so that every row is a row of the whole space's
    program. The tighter the entropy caps, the tighter the relaxation.
    """
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

    # One stem and one option per stage; the width leaving each stage (or the stem) enters the next one.
    m.one_stem = pyo.Constraint(expr=sum(m.stem.values()) == 1)
    m.one_option = pyo.Constraint(range(nstages), rule=lambda m, j: sum(x for _, x in chosen(j)) == 1)
    widths = [(j, a) for j in range(nstages) for a in sorted({o.c_in for o in tables.stages[j]} | {o.channels for o, _ in chosen(j - 1)})]
    m.flow = pyo.Constraint(widths, rule=lambda m, j, a: width_is(j - 1, a) - sum(x for o, x in chosen(j) if o.c_in == a) == 0)

    # Budgets.
    last = nstages - 1
    if problem.flops is not None:
        m.flops = pyo.Constraint(expr=total(last, "flops") / FLOPS_UNIT <= math.floor(problem.flops) / FLOPS_UNIT)
    if problem.params is not None:
        m.params = pyo.Constraint(expr=total(last, "params") <= math.floor(problem.params))
    if problem.max_layers is not None:
        m.layers = pyo.Constraint(expr=total(last, "layers") <= problem.max_layers)
    if problem.latency is not None:  # ms; the calibration's fixed term is a constant
        fixed = problem.latency_model.calibration.fixed_ms
        m.latency = pyo.Constraint(expr=total(last, "latency") <= problem.latency - fixed)

    # Scoring prefixes: entropy S_i, depth D_i, effectiveness, and H_i.
    m.prefixes = pyo.RangeSet(0, len(levels) - 1)
    if bounds is None:
        bounds = Bounds(
            [sum(max(o.entropy for o, _ in chosen(j)) for j in range(-1, level.last_stage + 1)) for level in levels],
            [tuple(sum(f(o.layers for o, _ in chosen(j)) for j in range(-1, level.last_stage + 1)) for f in (min, max)) for level in levels],
        )
    s_max, layers = bounds.s_max, bounds.layers
    m.S = pyo.Var(m.prefixes, bounds=lambda _, i: (0.0, s_max[i]))
    m.D = pyo.Var(m.prefixes, bounds=lambda _, i: layers[i])
    m.S_def = pyo.Constraint(m.prefixes, rule=lambda m, i: m.S[i] - total(levels[i].last_stage, "entropy") == 0)
    m.D_def = pyo.Constraint(m.prefixes, rule=lambda m, i: m.D[i] - total(levels[i].last_stage, "layers") == 0)
    tangents = [(i, n) for i, (lo, hi) in enumerate(layers) for n in range(lo, hi + 1)] if problem.rho is not None else []
    m.rho = pyo.Constraint(tangents, rule=lambda m, i, n: rho_slope(n, problem.rho) * m.D[i] - 2.0 * m.S[i] <= rho_slope(n, problem.rho) * n - rho_cut(n, problem.rho))
    ends = [(i, c) for i, level in enumerate(levels) if not (i == len(levels) - 1 and space.head)
            for c in sorted({o.channels for o, _ in chosen(level.last_stage)})]
    m.sigma = pyo.Var(ends, bounds=lambda _, i, c: (0.0, bounds.cap(i, c)))
    m.sigma_link = pyo.Constraint(ends, rule=lambda m, i, c: m.sigma[i, c] - bounds.cap(i, c) * width_is(levels[i].last_stage, c) <= 0)
    m.sigma_sum = pyo.Constraint(sorted({i for i, _ in ends}), rule=lambda m, i: sum(m.sigma[i, c] for k, c in ends if k == i) - m.S[i] <= 0)

    def entropy_weight(i: int, c: int) -> float:
        return alpha[i] * math.log(c * (score_side // levels[i].reduction) ** 2)

    m.H = pyo.Expression(m.prefixes, rule=lambda m, i: sum(entropy_weight(i, c) / alpha[i] * m.sigma[k, c] for k, c in ends if k == i))
    if space.head:
        m.H[len(levels) - 1] = entropy_weight(len(levels) - 1, space.head) / alpha[-1] * m.S[len(levels) - 1]

    # Depth penalty, exact over the reachable (sum L, sum L^2) of the covered stages.
    penalty = 0.0
    if covered:
        depth = {j: sum(opt.depth * x for opt, x in chosen(j)) for j in covered}
        pairs = _reachable_sums([space.depths[j] for j in covered])
        m.moments = pyo.Var(range(len(pairs)), within=pyo.Binary)
        m.one_moment = pyo.Constraint(expr=sum(m.moments.values()) == 1)
        m.depth_sum = pyo.Constraint(expr=sum(u * m.moments[p] for p, (u, _) in enumerate(pairs)) - sum(depth.values()) == 0)
        m.depth_squares = pyo.Constraint(
            expr=sum(v * m.moments[p] for p, (_, v) in enumerate(pairs)) - sum(opt.depth**2 * x for j in covered for opt, x in chosen(j)) == 0
        )
        n = len(covered)
        penalty = sum(scoring.beta * math.exp(_pstdev(u, v, n)) * m.moments[p] for p, (u, v) in enumerate(pairs))
        if problem.max_depth_spread is not None:
            m.spread = pyo.Constraint([(a, b) for a in covered for b in covered if a != b],
                                      rule=lambda m, a, b: depth[a] - depth[b] <= problem.max_depth_spread)
    else:
        penalty = depth_penalty([], scoring.beta)

    m.objective = pyo.Objective(expr=sum(alpha[i] * m.H[i] for i in m.prefixes) - penalty, sense=pyo.maximize)
    return m


def rho_slope(n: int, rho: float) -> float:
    """Slope at ``D = n`` of ``D ln(D / rho)``, the right side of ``2 S >= D ln(D / rho)``."""
    return math.log(n / rho) + 1.0


def rho_cut(n: int, rho: float) -> float:
    """Value at ``D = n`` of ``D ln(D / rho)``."""
    return n * math.log(n / rho)


def picked(m: pyo.ConcreteModel, tables: Tables) -> tuple[Option, list[Option]]:
    """The stem and stage options a solved model picked."""
    stem = next(opt for o, opt in enumerate(tables.stem) if pyo.value(m.stem[o]) > 0.5)
    stages = [next(opt for o, opt in enumerate(options) if pyo.value(m.pick[j, o]) > 0.5) for j, options in enumerate(tables.stages)]
    return stem, stages
