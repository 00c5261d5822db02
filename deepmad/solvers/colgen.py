"""Column generation over the LP relaxation of the whole space, its Lagrangian bound, the entropy
caps that tighten it, and reduced-cost fixing.

The program of :mod:`deepmad.solvers.formulation` has one column per stage
option, and a preset space has billions, so its LP relaxation is never stated
whole:

0. **Entropy caps** (:func:`caps`). Longest paths over the width graph with
   multipliers on the budgets and on a tangent of the effectiveness bound cap
   ``S_i`` per prefix and end width: the big-M of the ``ln(c) * S`` products.
1. **Column generation** (:func:`generate`). A master LP (held in HiGHS,
   grown column by column) holds a few thousand options; its duals price
   every option of the space in bulk (:mod:`deepmad.solvers.pricing`), and the
   best-priced join the master.
2. **A valid bound at every round.** Relaxing every row but the choice and the
   width flow with the duals gives the Lagrangian bound: the longest path over
   the width graph (the flow multipliers cancel along every path) plus the
   rows' constant terms. It bounds every design of the space whatever the
   duals are, as long as their signs are right.
3. **Reduced-cost fixing** (:func:`survivors`). An option through which no
   path reaches the incumbent's objective cannot be in a better design; the
   options that survive go to an exact MILP, whose optimum is then the
   optimum of the whole space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import interrupt
from ..errors import DeepmadError
from ..model.architecture import Architecture
from ..problem.problem import Problem
from .context import Context
from .engine import Engine, key as options_key
from .formulation import Caps, Formulation, Model, Options
from .pricing import Paths, StagePrices, longest_paths, options_above, price, stage_options, stem_options
from .rows import Program, budget_limits, rho_cut, rho_slope
from .settings import Settings


def layer_ranges(engine: Engine, context: Context) -> list[tuple[int, int]]:
    """The range of ``D_i`` over the space, per prefix."""
    out = []
    for last in context.last:
        lo = 1 + sum(int(t.layers(t.depths[0])) for t in engine.stages[:last + 1])
        hi = 1 + sum(int(t.layers(t.depths[-1])) for t in engine.stages[:last + 1])
        out.append((lo, hi))
    return out


GUESS = (100.0, 1.5, 0.8)
"""The caps' multipliers ``(t, mu, q)`` tried in their first pass, ``n`` at ``q`` of the layer range
(deepmad-r50 at 1, 4 and 8 GFLOPs: the caps' own bound 49,832, 64,947 and 72,288 with it, 119,166
without)."""


def caps(engine: Engine, context: Context, program: Program, *, passes: int, hint: tuple[float, float, int] | None = None,
         deadline: float = math.inf) -> Caps:
    """Bounds on ``S_i`` over the designs of the space that meet the budgets and rho0.

    For a design within the budgets ``B`` with ``2 S_i >= D_i ln(D_i / rho0) >= g_n + s_n (D_i - n)``
    (the tangent at any ``n``) and multipliers ``lam, mu >= 0``: ``S_i <= (1 + 2 mu) S_i - mu s_n D_i
    - lam . costs + mu (s_n n - g_n) + lam . B``, and the largest value of the first three terms over
    the designs ending prefix ``i`` at width ``c`` is a longest path. The settings tried: no
    multipliers, :data:`GUESS` and ``hint`` (a neighbouring problem's best), then a coarse grid and a
    finer one around its best, in at most ``passes`` passes over the space (each setting is one);
    every cap found is valid, more settings only tighten them."""
    problem = program.problem
    limits = program.limits()
    budget_f, budget_p, budget_t = (limits.get((n,), 0.0) for n in ("flops", "params", "latency"))
    budget_f *= 1e6  # raw FLOPs
    layers = layer_ranges(engine, context)
    d_lo, d_hi = layers[-1]
    found: dict[tuple[int, int], float] = {}
    chosen = [None, math.inf]
    budgets = bool(budget_f or budget_p or budget_t)
    done = [0]

    def evaluate(grid: list[tuple[float, float, int]]) -> tuple[float, float, int] | None:
        best, best_score = None, math.inf
        for t, mu, n in grid:
            if done[0] >= passes or (done[0] and interrupt.past(deadline)):
                break
            done[0] += 1
            lf = t * 0.5 / budget_f if budget_f else 0.0
            lp = t * 0.5 / budget_p if budget_p else 0.0
            lt = t * 0.5 / budget_t if budget_t > 0 else 0.0
            per_layer = mu * rho_slope(n, problem.rho) if problem.rho else 0.0
            sp = StagePrices(np.array([1.0 + 2.0 * mu]), -lf, -lp, -lt, -per_layer)
            st = engine.stem
            stem = (1.0 + 2.0 * mu) * st.entropy - lf * st.flops - lp * st.params - lt * st.latency - per_layer
            paths = longest_paths(engine, 0.0, stem, [price(t, sp) for t in engine.stages])
            offset = lf * budget_f + lp * budget_p + lt * budget_t
            offset += mu * (rho_slope(n, problem.rho) * n - rho_cut(n, problem.rho)) if problem.rho else 0.0
            ends = _ends(engine, paths)
            for i, last in enumerate(context.last):
                widths, values = (st.widths, stem) if last < 0 else ends[last]
                for c, v in zip(widths.tolist(), values.tolist()):
                    if v > -math.inf:
                        found[(i, c)] = min(found.get((i, c), math.inf), v + offset)
            score = float(np.max(ends[-1][1])) + offset
            if score < best_score:
                best, best_score = (t, mu, n), score
            if score < chosen[1]:
                chosen[:] = (t, mu, n), score
        return best

    first = [(0.0, 0.0, d_lo)]
    if budgets or problem.rho:
        t, mu, q = GUESS
        first += [(t, mu, max(1, int(d_lo + q * (d_hi - d_lo))))] + ([hint] if hint is not None else [])
    evaluate([(t if budgets else 0.0, mu if problem.rho else 0.0, n) for t, mu, n in first])
    if budgets or problem.rho:
        ts = [0.0] if not budgets else list(np.geomspace(20.0, 500.0, 5))
        mus = [0.0] if not problem.rho else [0.0, 0.5, 1.5]
        ns = sorted({max(1, int(d_lo + q * (d_hi - d_lo))) for q in (0.3, 0.8)})
        best = evaluate([(t, mu, n) for t in ts for mu in mus for n in ns])
        if best is not None:
            t, mu, n = best
            evaluate([(t * a, mu * b if mu else b * 0.25, max(1, int(n * c)))
                      for a in ((0.7, 1.0, 1.4) if t else (0.0,)) for b in ((0.7, 1.0, 1.4) if problem.rho else (0.0,))
                      for c in ((0.85, 1.0, 1.15) if problem.rho else (1.0,))])
    s_max = [max(v for (k, _), v in found.items() if k == i) for i in range(len(context.last))]
    return Caps(s_max, layers, found, chosen[0])


def _ends(engine: Engine, paths: Paths) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per stage: its widths and the best value of a path from the stem that ends there."""
    out = []
    for j, pr in enumerate(paths.priced):
        t = pr.table
        best = np.full(len(t.widths), -math.inf)
        np.maximum.at(best, pr.edge_widths(), paths.into[j][pr.edge_inputs()] + paths.edges[j])
        out.append((t.widths, best))
    return out


@dataclass(frozen=True)
class Lagrangian:
    """Column generation's best bound and the duals it was found at (``duals``, by row key), the
    caps' best multipliers (``caps``), the master's options (``columns``, per stage) and the
    :func:`deepmad.solvers.engine.key` they were computed for (``options``): a warm start for a
    neighbouring problem, and, moved, a bound for another (:func:`certified`)."""

    bound: float
    duals: dict[tuple, float]
    caps: tuple[float, float, int] | None = None
    columns: tuple[Options, ...] = ()
    options: tuple = ()


@dataclass
class Result:
    """What column generation leaves: its best bound, the duals and paths of that bound, the LP value,
    the master's options, and a design from a longest path where one beat the floor."""

    bound: float
    lp: float
    rounds: int
    duals: dict[tuple, float]
    paths: Paths
    prices: list[StagePrices]
    columns: list[Options]
    caps: Caps
    design: Architecture | None = None
    options: tuple = field(default=())
    work: float = 0.0  # reference seconds spent

    @property
    def lagrangian(self) -> Lagrangian:
        return Lagrangian(self.bound, self.duals, self.caps.setting, tuple(self.columns), self.options)


class Pricer:
    """The master's duals as prices of the whole space (see the module docstring)."""

    def __init__(self, engine: Engine, formulation: Formulation):
        self.engine, self.f = engine, formulation
        self.context = formulation.context

    def bound_duals(self, y: dict[tuple, float]) -> dict[tuple, float]:
        """``y`` for the Lagrangian bound: the choice and flow rows kept (their duals dropped), every
        ``<=`` row's dual at least 0, and each sigma link's at ``max(0, weight - y_sum)`` (the best for
        the bound: no sigma column then prices above zero)."""
        ctx, f = self.context, self.f
        equal = {row.key for row in f.rows if row.equality} | {k for k in y if k[0] in ("S_def", "D_def")}
        out = {k: (v if k in equal else max(0.0, v)) for k, v in y.items()
               if k[0] not in ("flow", "one_option", "one_stem", "sigma_link", "one_moment")}
        for i, last in enumerate(ctx.last):
            if ctx.has_sigma(i):
                widths = self.engine.stem.widths if last < 0 else self.engine.stages[last].widths
                y_sum = out.get(("sigma_sum", i), 0.0)
                for c in widths.tolist():
                    out[("sigma_link", i, c)] = max(0.0, float(ctx.weight(i, c)) - y_sum)
        return out

    def constant(self, y: dict[tuple, float]) -> float:
        """The Lagrangian's terms outside the paths at bound duals ``y``: the rows' right sides, the
        ``S_i`` and ``D_i`` columns at their best bound, and the best depth moment."""
        f, ctx = self.f, self.context
        out = sum(y.get(row.key, 0.0) * row.rhs for row in f.rows)
        for i in range(len(ctx.last)):
            rc_s = -y.get(("S_def", i), 0.0) + (y.get(("sigma_sum", i), 0.0) if ctx.has_sigma(i) else 0.0)
            rc_d = -y.get(("D_def", i), 0.0)
            for row in f.rows:
                if row.key[0] == "rho" and row.key[1] == i:
                    v = y.get(row.key, 0.0)
                    rc_s -= v * row.terms[("S", i)]
                    rc_d -= v * row.terms[("D", i)]
            out += max(0.0, rc_s) * f.caps.s_max[i] + max(rc_d * n for n in f.caps.layers[i])
        if ctx.covered:
            out += max(-penalty - y.get(("depth_sum",), 0.0) * u - y.get(("depth_squares",), 0.0) * v
                       for u, v, penalty in f.program.moments)
        return out

    def stage_prices(self, y: dict[tuple, float]) -> list[tuple[StagePrices, float, np.ndarray, np.ndarray]]:
        """Per stage: its attribute prices, the "one option" price, and the values of its input
        widths and output widths (arrays over ``inputs`` and ``widths``)."""
        out = []
        for j, t in enumerate(self.engine.stages):
            prices, inflow, outflow = self.f.reduced(j, y)
            sp = StagePrices(np.array([prices["entropy"]]), prices["flops"], prices["params"], prices["latency"], prices["layers"],
                             prices["depth"], prices["depth2"])
            into = np.array([inflow.get(int(a), 0.0) for a in t.inputs])
            out_ = np.array([outflow.get(int(c), 0.0) for c in t.widths])
            out.append((sp, prices["one"], into, out_))
        return out

    def stem_value(self, y: dict[tuple, float]) -> np.ndarray:
        prices, _, outflow = self.f.reduced(-1, y)
        st = stem_options(self.engine)
        value = sum(prices[a] * st.attribute(a) for a in ("entropy", "flops", "params", "latency", "layers")) + prices["one"]
        return value + np.array([outflow.get(int(c), 0.0) for c in st.channels])

    def paths(self, y: dict[tuple, float]) -> tuple[Paths, list[StagePrices]]:
        """The Lagrangian bound's longest paths at duals ``y`` (made bound duals first): every
        option priced once, the same pricing the round's new columns are read from."""
        b = self.bound_duals(y)
        stages = self.stage_prices(b)
        priced = [price(t, s[0]) for t, s in zip(self.engine.stages, stages)]
        paths = longest_paths(self.engine, self.constant(b), self.stem_value(b), priced,
                              inflow=[s[2] for s in stages], outflow=[s[3] + s[1] for s in stages])
        return paths, [s[0] for s in stages]

    def option_values(self, j: int, opts: Options, y: dict[tuple, float]) -> np.ndarray:
        """The LP reduced costs of ``opts`` at duals ``y``."""
        prices, inflow, outflow = self.f.reduced(j, y)
        value = sum(prices[a] * opts.attribute(a) for a in prices)
        if j >= 0:
            value = value + np.array([inflow.get(int(a), 0.0) for a in opts.c_in])
        return value + np.array([outflow.get(int(c), 0.0) for c in opts.channels])


def seed(engine: Engine, j: int) -> Options:
    """The first master options of stage ``j``: per width, its cheapest option fed by the same width
    (every stem width, for the first stage), so that constant-width networks of every width exist."""
    t = engine.stages[j]
    rows = []
    for m in range(len(t.widths)):
        for ai in range(int(t.a_lo[m]), int(t.a_hi[m])):
            if j == 0 or ai == t.same[m]:
                p = int(t.starts[m])
                f = t.first_block(m, ai, p, np.arange(len(t.kernels)))[0]
                rows.append((m, ai, p, int(np.argmin(f)), int(t.depths[0])))
    m, ai, p, k, d = (np.array(x) for x in zip(*rows))
    return stage_options(engine, j, m, ai, p, k, d)


def options_of(engine: Engine, arch: Architecture) -> list[Options] | None:
    """The stage options that make up ``arch`` (``None`` where it is not a design of the engine's space)."""
    found = engine.locate(arch)
    if found is None:
        return None
    return [stage_options(engine, j, [m], [ai], [p], [k], [d]) for j, (m, ai, p, k, d) in enumerate(found[1])]


def _unique(parts: list[Options], stage: int) -> Options:
    both = Options.concat(parts, stage)
    if not len(both):
        return both
    keys = np.stack([both.c_in, both.channels, both.inner, both.kernel, both.depth], axis=1)
    _, at = np.unique(keys, axis=0, return_index=True)
    return both.take(np.sort(at))


def generate(
    engine: Engine, context: Context, program: Program, caps_: Caps, settings: Settings, *, rounds: int = 10**6, work: float = math.inf,
    tolerance: float = 1e-6, floor: float = -math.inf, start: Architecture | None = None, warm: Lagrangian | None = None,
    log=None, deadline: float = math.inf,
) -> Result:
    """Column generation on the LP relaxation of the whole space, for at most ``rounds`` rounds and
    ``work`` reference seconds (:class:`Settings`' costs: each round's pricing pass and master LP);
    returns the best Lagrangian bound seen. It stops when the bound is within ``tolerance``
    (relative) of the LP or of ``floor`` (the objective of a known design), when the LP is known
    within :attr:`Settings.colgen_settled` of the gap, or when no option prices in. ``start``: a
    design whose options join the first master. Each round's longest path that is a feasible design
    better than ``floor`` raises it and becomes :attr:`Result.design`.

    ``warm``: the :attr:`Result.lagrangian` of a neighbouring problem: its duals (of the rows this
    program has) are priced at before the first master LP, and its master's options start the
    master where the options are the same."""
    problem = program.problem
    formulation = Formulation(program, caps_)
    pricer = Pricer(engine, formulation)
    master = Model(formulation, stem_options(engine), integer=False, elastic=True)
    columns = [seed(engine, j) for j in range(len(engine.stages))]
    if warm is not None and warm.options == options_key(problem):
        columns = [_unique([c, w], j) for j, (c, w) in enumerate(zip(columns, warm.columns))]
    if start is not None:
        mine = options_of(engine, start)
        if mine is not None:
            columns = [_unique([c, o], j) for j, (c, o) in enumerate(zip(columns, mine))]
    for j, c in enumerate(columns):
        master.add(j, c)
    known = [set(map(c.key, range(len(c)))) for c in columns]
    y0 = {k: v for k, v in warm.duals.items() if k in master.rows} if warm is not None else {}
    paths, prices = pricer.paths(y0)
    best = Result(paths.bound, -math.inf, 0, y0, paths, prices, columns, caps_, options=options_key(problem))
    found = _path_design(engine, problem, paths, floor)
    if found is not None:
        floor, best.design = found
    if log:
        log(f"column generation: {'warm' if warm else 'no'} multipliers, bound {paths.bound:,.1f}")
    center = y0 if y0 else None
    lines = sum(t.pairs * len(t.kernels) for t in engine.stages)
    pass_cost = settings.cost_line * lines + settings.cost_pass
    best.work = pass_cost
    for round_ in range(1, rounds + 1):
        if interrupt.past(deadline) or best.work >= work:
            break
        status = master.solve()
        best.work += pass_cost + settings.cost_round + settings.cost_master_iteration * max(0, master.h.getInfo().simplex_iteration_count)
        if status != "Optimal":
            if best.rounds == 0 and not math.isfinite(best.bound):
                raise DeepmadError("HiGHS found no optimum of the first master LP; try --method milp on a smaller space")
            break  # numerical trouble: keep the best bound so far (valid whatever the round)
        lp, current = master.objective(), master.duals()
        at = current if center is None else _mix(center, current, settings.colgen_smoothing)
        paths, prices = pricer.paths(at)
        added = _add_columns(engine, pricer, master, columns, known, at, paths, settings.colgen_per_round)
        if added == 0 and center is not None:  # a mispricing: no column at the smoothed duals
            at = current
            paths, prices = pricer.paths(at)
            added = _add_columns(engine, pricer, master, columns, known, at, paths, settings.colgen_per_round)
        design = _path_design(engine, problem, paths, floor)
        if design is not None:
            floor, best.design = design
            if log:
                log(f"column generation: round {round_}'s longest path is a design, objective {floor:,.1f}")
        if paths.bound < best.bound:
            best.bound, best.duals, best.paths, best.prices = paths.bound, at, paths, prices
            center = current if center is None else _mix(center, current, settings.colgen_smoothing)
        best.lp, best.rounds, best.columns = lp, round_, list(columns)
        close = best.bound - max(lp, floor) <= tolerance * abs(best.bound)
        settled = floor > -math.inf and best.bound - lp <= settings.colgen_settled * (best.bound - floor)
        if close or settled or added == 0:
            break
    return best


def _mix(center: dict, current: dict, weight: float) -> dict:
    # Keys in a fixed order: a set of keys holding strings is ordered by their hashes, which Python
    # draws per process, and sums over the multipliers would add up in another order in another run.
    keys = [*center, *(k for k in current if k not in center)]
    return {k: weight * center.get(k, 0.0) + (1.0 - weight) * current.get(k, 0.0) for k in keys}


def _path_design(engine: Engine, problem: Problem, paths: Paths, floor: float):
    stem, stages = paths.best_path()
    arch = engine.design(problem, stem, stages)
    check = problem.check(arch)
    return (check.objective, arch) if check.feasible and check.objective > floor else None


def _add_columns(engine: Engine, pricer: Pricer, master: Model, columns: list[Options], known: list[set], y: dict, paths: Paths,
                 per_round: int) -> int:
    """Add the options of largest LP reduced cost at duals ``y`` (read off the pricing of ``paths``,
    whose attribute prices are the same), per stage at most ``per_round``, where they price above
    the master's own best; returns how many joined."""
    added = 0
    # An end width the master lacks has no sigma column yet: an option that brings it also brings
    # that column, priced as the bound prices it (a sigma link's best multiplier).
    priced_at = dict(pricer.bound_duals(y))
    priced_at.update(y)
    stages = pricer.stage_prices(priced_at)
    for j, (t, (sp, one, into, out)) in enumerate(zip(engine.stages, stages)):
        pr = paths.priced[j]
        value = pr.value[:, 0] + pr.head[pr.edge_widths(), 0] + into[pr.edge_inputs()] + out[pr.edge_widths()] + one
        enough = max(0.0, float(np.max(pricer.option_values(j, columns[j], priced_at)))) + 1e-7
        order = np.argsort(-value, kind="stable")
        rows = []
        for e in order[: 4 * per_round].tolist():
            if value[e] <= enough or len(rows) >= per_round:
                break
            p, k, d = pr.choice(e)
            rows.append((int(pr.edge_widths()[e]), int(pr.edge_inputs()[e]), p, k, d))
        if not rows:
            continue
        m, ai, p, k, d = (np.array(x) for x in zip(*rows))
        opts = stage_options(engine, j, m, ai, p, k, d)
        fresh = [i for i in range(len(opts)) if opts.key(i) not in known[j]]
        if fresh:
            opts = opts.take(np.array(fresh))
            known[j].update(map(opts.key, range(len(opts))))
            master.add(j, opts)
            columns[j] = Options.concat([columns[j], opts], j)
            added += len(opts)
    return added


def survivors(engine: Engine, result: Result, floor: float, *, limit: int) -> list[Options] | None:
    """Per stage, every option of the space that can be in a design worth at least ``floor``
    (the longest path through it, at the best bound's duals, reaches it); ``None`` when more than
    ``limit`` do."""
    paths = result.paths
    slack = 1e-7 * max(1.0, abs(paths.bound))
    out, total = [], 0
    for j, (t, sp) in enumerate(zip(engine.stages, result.prices)):
        pr = paths.priced[j]
        # Everything of an edge's path but its option: the path before and after it, and its width terms.
        rest = paths.through(j) - (pr.value[:, 0] + pr.head[pr.edge_widths(), 0])
        threshold = floor - slack - rest
        rows, count = options_above(t, sp, threshold, limit - total)
        total += count
        if total > limit:
            return None
        m, ai, q, di = rows.T if len(rows) else (np.zeros(0, dtype=np.int64),) * 4
        K = len(t.kernels)
        out.append(stage_options(engine, j, m, ai, q // K, q % K, t.depths[di]))
    return out


def certificate(problem: Problem, lagrangian: Lagrangian) -> dict:
    """Column generation's bound for ``problem`` as the multipliers of its budget rows and their right
    sides (``prices`` and ``limits``, by budget name, per unit of the row), in plain numbers: what
    :func:`certified` needs to bound another problem."""
    limits = budget_limits(problem)
    return {"bound": lagrangian.bound, "prices": {key[0]: max(0.0, lagrangian.duals.get(key, 0.0)) for key in limits},
            "limits": {key[0]: limit for key, limit in limits.items()}}


def certified(certificate: dict, problem: Problem) -> float:
    """A bound on a problem's optimum from another problem's :func:`certificate`, where every design
    that meets this problem's constraints meets the other's (the same space, scoring and rules; each
    budget, rho0 included, at most the other's): at the same multipliers ``y >= 0`` the Lagrangian
    bound moves by ``y . (b - b_other)``. Infinite (no bound) where this problem lacks one of the
    other's budgets or has a looser one."""
    limits = {key[0]: limit for key, limit in budget_limits(problem).items()}
    if any(name not in limits or limits[name] > limit for name, limit in certificate["limits"].items()):
        return math.inf
    return certificate["bound"] + sum(y * (limits[name] - certificate["limits"][name]) for name, y in certificate["prices"].items())


def smallest_costs(engine: Engine, problem: Problem, allowed: list[np.ndarray | None] | None = None) -> dict[str, float]:
    """The least FLOPs (in the problem's convention), parameters and, with a latency model, latency
    (ms) of any design of the space (space rules and the width guidelines kept, budgets and rho0
    dropped): shortest paths over the width graph. ``allowed``: per stage, the depths allowed (a mask;
    all where ``None``)."""
    out = {}
    st = engine.stem
    names = ["flops", "params"] + (["latency"] if problem.latency_model is not None else [])
    masks = allowed if allowed is not None else [None] * len(engine.stages)
    for name in names:
        prices = [StagePrices(np.zeros(1), *(-1.0 if n == name else 0.0 for n in ("flops", "params", "latency")), allowed=mask)
                  for mask in masks]
        paths = longest_paths(engine, 0.0, -getattr(st, name).astype(float), [price(t, sp) for t, sp in zip(engine.stages, prices)])
        out[name] = -paths.bound
    if "latency" in out:
        out["latency"] += problem.latency_model.calibration.fixed_ms
    return out

