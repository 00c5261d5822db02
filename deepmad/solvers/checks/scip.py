"""A second, independent exact path: the design program as a nonlinear integer program on SCIP.

The solvers (:mod:`deepmad.solvers`) enumerate stage options whose coefficients
come from the accounting. This module states the same problem a second way,
straight from the spec (sections 2-5), as nonlinear expressions of the stage
variables, so that the paths and brute force (:mod:`deepmad.solvers.checks.bruteforce`)
can be required to agree. What a block is made of (its convs' widths, kernels,
groups, strides and activations, its SE, its shortcut rule) it reads from the
block type's one definition (:mod:`deepmad.model.blocks`), traced at placeholder
widths; what each part costs and contributes it states itself. It uses neither
:mod:`deepmad.model.accounting`, :mod:`deepmad.model.entropy` nor the solvers' engine to
build the model; the returned design is re-scored by :meth:`Problem.check` like
every solver's.

Variables: per stage ``j`` the output channels ``C_j`` (one-hot over the
channel grid), the inner width ``B_j`` (one-hot over the union of the inner
grids, each value allowed only with the channels whose grid holds it), the
kernel ``K_j`` (one-hot over the kernels), the depth ``L_j`` (an integer);
the stem width ``C_-1`` (one-hot over the stem grid). ``same_j``, the product
of the one-hots of ``C_{j-1}`` and ``C_j`` summed over the common widths, is
1 exactly when the first block keeps its width; it switches the shortcut
terms (projection, pooling) on and off.

* costs: per conv ``c_in c_out k^2 / g + 2 c_out`` parameters and, in the
  tinynas convention, ``(that + c_out) H W`` FLOPs (the activation after
  each main conv that has one), pooling ``c_in H_in W_in`` for a strided block with a
  shortcut, projections where the block type has them, SE parameters (not
  SE FLOPs); in the macs convention the multiply-accumulates of every conv,
  SE and projection included. The rest blocks of a stage count
  ``(L_j - 1)`` times: polynomials of degree up to four in the variables.
* entropy: ``S_i = 1/2 sum ln w_l`` over the prefix's layers, with the logs
  of the variables (``ln C``, ``ln B``, ``ln K``) times the depths;
  ``H_i = ln(c_i r_i^2) S_i``;
* effectiveness ``rho_i = D_i exp(-2 S_i / D_i) <= rho0`` as
  ``2 S_i >= D_i ln(D_i / rho0)``;
* depth penalty ``beta exp(pstdev(L_P))`` with
  ``pstdev = sqrt(n sum L^2 - (sum L)^2) / n`` (the radicand is a positive
  semidefinite quadratic form, so it is never negative).

Budgets are integer totals, so ``flops <= B`` is stated, unscaled, as
``flops <= floor(B) + 1/2``: SCIP checks nonlinear constraints with an
absolute tolerance (1e-6), so no design over the budget passes for one
under it. (A tighter ``numerics/feastol`` is no help: at 1e-7 and below SCIP's
relaxation stalls and even tiny problems run into the time limit.) The
effectiveness rows keep that absolute 1e-6, so a design whose ``rho`` lies
within about 1e-8 of ``rho0`` may be misjudged; :meth:`Problem.check` has
the last word and a design it rejects raises an error. SCIP's reformulation
of products of binaries (``constraints/nonlinear/reformbinprods``) is off: with
it, SCIP returned as optimal a design far over the FLOPs budget (two symmetric
stages, see tests/test_scip.py). SCIP runs on one
thread with fixed seeds and a time limit; ``optimal`` means SCIP proved the
relative gap below ``gap``.

For small spaces: the model has one binary per width, inner width and
kernel of each stage, and SCIP's proof time grows quickly with them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import pyscipopt
from pyscipopt import quicksum

from ...errors import DeepmadError, InputError
from ...model.architecture import Architecture
from ...model.blocks import BLOCK_TYPES, BlockLayout, Conv
from ...problem.problem import Problem
from ...solution import Solution

LAST_ALPHA = 8.0


def se_hidden(b: int) -> int:
    """SE hidden width of an inner width ``b`` (spec section 2)."""
    return max(1, round(b / 4) // 8) * 8


# ---------------------------------------------------------------------------
# The statement, on numbers or on SCIP expressions alike
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ops:
    log: Callable[[Any], Any]
    exp: Callable[[Any], Any]
    sqrt: Callable[[Any], Any]


NUMBERS = Ops(math.log, math.exp, math.sqrt)
SCIP = Ops(pyscipopt.log, pyscipopt.exp, pyscipopt.sqrt)


@dataclass(frozen=True)
class StageVars:
    """One stage's quantities: channels ``c``, inner ``b``, kernel ``k``, SE hidden ``h``, depth ``L``
    and ``same`` = [input width == ``c``]; numbers, or SCIP variables and expressions."""

    c: Any
    b: Any
    k: Any
    h: Any
    L: Any
    same: Any


@dataclass(frozen=True)
class Statement:
    """The program's quantities for one choice of the variables."""

    flops: Any  # in the problem's convention
    params: Any
    layers: Any  # D of the last prefix
    S: tuple[Any, ...]  # per prefix
    D: tuple[Any, ...]  # per prefix
    entropy: Any  # sum alpha_i H_i
    penalty: Any
    covered: tuple[int, ...]

    @property
    def objective(self) -> Any:
        return self.entropy - self.penalty

    def rho(self) -> tuple[float, ...]:
        """``rho_i = D_i exp(-2 S_i / D_i)`` (numbers only)."""
        return tuple(d * math.exp(-2.0 * s / d) for s, d in zip(self.S, self.D))


def levels(problem: Problem) -> list[tuple[int, int]]:
    """Scoring prefixes as ``(last stage, reduction)``: one ends before every stride-2 stage and one at the end."""
    space = problem.space
    out, reduction = [], space.stem_stride
    for j, s in enumerate(space.strides):
        if s == 2:
            out.append((j - 1, reduction))
        reduction *= s
    out.append((len(space.strides) - 1, reduction))
    return out


def alphas(problem: Problem, prefixes: int) -> tuple[float, ...]:
    """The prefix weights: the scoring's, or ``(1, ..., 1, 8)``."""
    alpha = problem.scoring.alpha
    if alpha is None:
        return (1.0,) * (prefixes - 1) + (LAST_ALPHA,)
    if len(alpha) != prefixes:
        raise InputError("alpha", f"needs one weight per scoring prefix: {prefixes} values, got {len(alpha)}")
    return tuple(alpha)


def covered(problem: Problem) -> tuple[int, ...]:
    """The stages the depth penalty covers: the scoring's, or the block type's default (the last three or all)."""
    m = len(problem.space.strides)
    stages = problem.scoring.penalty_stages
    if stages is not None:
        for j in stages:
            if j >= m:
                raise InputError("penalty_stages", f"stage {j} does not exist; the network has stages 0..{m - 1}")
        return tuple(stages)
    last3 = BLOCK_TYPES[problem.space.block].penalty_stages == "last3"
    return tuple(range(max(0, m - 3), m)) if last3 else tuple(range(m))


def score_side(problem: Problem) -> int:
    """The input side the ``r_i`` are taken at: the scoring's resolution, or the design's."""
    space = problem.space
    res = problem.scoring.resolution or space.resolution
    total = space.stem_stride * math.prod(space.strides)
    if res % total:
        raise InputError("resolution", f"scoring resolution {res} is not divisible by the total stride {total}")
    return res


def _is_zero(x: Any) -> bool:
    return isinstance(x, (int, float)) and x == 0


# The block's layout (its one definition, :mod:`deepmad.model.blocks`) is read at placeholder widths and
# kernel, distinct from each other, from the SE width of the inner placeholder and from every real
# value; the oracle states each conv's costs from the spec with the placeholders replaced by the
# stage's variables.
_A, _C, _B, _K = 1_000_003, 2_000_003, 4_000_000, 1_001
_H = se_hidden(_B)


def _traced(block: str, stride: int, first: bool, *, alike: bool) -> BlockLayout:
    """The layout of ``block`` at the placeholders (input ``_C`` where ``alike``: a block that keeps its width)."""
    if block not in BLOCK_TYPES:  # a block this oracle cannot read would otherwise be checked against another's costs
        raise ValueError(f"the SCIP cross-check knows no block {block!r}")
    return BLOCK_TYPES[block].layout(_C if alike else _A, _C, _B, _K, stride, first)


def _value(x: int, env: dict[int, Any]) -> Any:
    """A traced width or kernel as the stage's variable, or the constant the layout fixed (1: a 1x1 conv, a group)."""
    if x in env:
        return env[x]
    if x == 1:
        return 1
    raise ValueError(f"the SCIP cross-check cannot state a layout value {x} (neither a stage variable nor 1)")


def _conv_weights(conv: Conv, env: dict[int, Any]) -> Any:
    """``c_in c_out k^2 / g`` for a dense (``g = 1``) or depthwise (``g = c_in = c_out``) conv."""
    k2 = _value(conv.kernel, env) * _value(conv.kernel, env)
    if conv.groups == 1:
        return _value(conv.c_in, env) * _value(conv.c_out, env) * k2
    if conv.groups == conv.c_in == conv.c_out:
        return _value(conv.c_out, env) * k2
    raise ValueError(f"the SCIP cross-check states dense and depthwise convs only, got groups {conv.groups}")


def _select(when_apart: Any, when_same: Any, same: Any) -> Any:
    """``when_apart`` where the input width differs from the output, ``when_same`` where they agree."""
    if isinstance(when_apart, (int, float)) and isinstance(when_same, (int, float)) and when_apart == when_same:
        return when_apart
    return when_apart + same * (when_same - when_apart)


def block_layers(block: str, stride: int, first: bool) -> int:
    """Main-path layers of one block (spec section 4)."""
    return len(_traced(block, stride, first, alike=False).convs)


def block_costs(block: str, a: Any, c: Any, b: Any, k: Any, h: Any, area_in: int, area_out: int, *, stride: int, same: Any,
                first: bool) -> tuple[Any, Any, Any]:
    """``(params, tinynas flops, macs)`` of one block: input width ``a``, output ``c``, inner ``b``,
    kernel ``k``, SE hidden ``h``, input and output map areas; ``same`` = [a == c] (1, 0 or an expression)."""
    apart, kept = _traced(block, stride, first, alike=False), _traced(block, stride, first, alike=True)
    env = {_A: a, _C: c, _B: b, _H: h, _K: k}
    params: Any = 0
    flops: Any = 0
    macs: Any = 0
    area = area_in
    for conv in apart.convs:  # the main path: the same convs whether or not the block keeps its width
        if conv.stride != 1:
            area = area_out
        w, co = _conv_weights(conv, env), _value(conv.c_out, env)
        params = params + w + 2 * co  # weights, BN
        flops = flops + (w + (3 if conv.act else 2) * co) * area  # weights, BN, the activation where there is one
        macs = macs + w * area
    if apart.se is not None:  # two 1x1 convs with BN on the pooled map; no tinynas FLOPs
        ch, hid = _value(apart.se.channels, env), _value(apart.se.hidden, env)
        params = params + 2 * ch * hid + 2 * hid + 2 * ch
        macs = macs + 2 * ch * hid
    pool = _select(int(apart.pools_shortcut), int(kept.pools_shortcut), same)
    if not _is_zero(pool):
        flops = flops + pool * (a * area_in)  # average pool of the shortcut input
    projection = _select(int(apart.projection is not None), int(kept.projection is not None), same)
    if not _is_zero(projection):
        params = params + projection * (a * c + 2 * c)
        flops = flops + projection * ((a * c + 3 * c) * area_out)  # conv, BN and the addition
        macs = macs + projection * (a * c * area_out)
    return params, flops, macs


def _total(terms) -> Any:
    """``sum`` of numbers or expressions alike."""
    total: Any = 0
    for t in terms:
        total = total + t
    return total


def block_log_width(block: str, log_a: Any, log_c: Any, log_b: Any, log_k: Any, *, stride: int, first: bool) -> Any:
    """``sum ln w_l`` over one block's layers, ``w = c_in k^2 / g`` (fan-ins; spec section 3)."""
    logs = {_A: log_a, _C: log_c, _B: log_b, _K: log_k}
    total: Any = 0
    for conv in _traced(block, stride, first, alike=False).convs:
        if conv.groups == 1:
            total = total + _value(conv.c_in, logs)
        elif conv.groups != conv.c_in:
            raise ValueError(f"the SCIP cross-check states dense and depthwise convs only, got groups {conv.groups}")
        if conv.kernel != 1:
            total = total + 2 * _value(conv.kernel, logs)
    return total


def statement(problem: Problem, stem: Any, stages: list[StageVars], ops: Ops) -> Statement:
    """The program's costs, entropies, layer counts and objective for stem width ``stem`` and ``stages``."""
    space, scoring = problem.space, problem.scoring
    block = space.block
    macs = problem.flops_convention == "macs"

    side = space.resolution // space.stem_stride
    area = side * side
    fan_in = space.in_channels * space.stem_kernel**2  # the stem conv's, on the input image
    params: Any = (fan_in + 2) * stem
    flops: Any = (fan_in * area if macs else (fan_in + 3) * area) * stem
    log_w: list[Any] = []  # sum ln w of each stage
    layer_counts: list[Any] = []
    widths = [stem] + [s.c for s in stages]
    log_c = [ops.log(w) for w in widths]  # log_c[j + 1] = ln C_j
    for j, st in enumerate(stages):
        stride = space.strides[j]
        area_in = side * side
        side //= stride
        area_out = side * side
        first = block_costs(block, widths[j], st.c, st.b, st.k, st.h, area_in, area_out, stride=stride, same=st.same, first=True)
        rest = block_costs(block, st.c, st.c, st.b, st.k, st.h, area_out, area_out, stride=1, same=1, first=False)
        pick = 2 if macs else 1
        params = params + first[0] + (st.L - 1) * rest[0]
        flops = flops + first[pick] + (st.L - 1) * rest[pick]
        log_b, log_k = ops.log(st.b), ops.log(st.k)
        log_w.append(block_log_width(block, log_c[j], log_c[j + 1], log_b, log_k, stride=stride, first=True)
                     + (st.L - 1) * block_log_width(block, log_c[j + 1], log_c[j + 1], log_b, log_k, stride=1, first=False))
        layer_counts.append(block_layers(block, stride, True) + (st.L - 1) * block_layers(block, 1, False))
    head_log = 0.0
    if space.head:
        area = side * side
        c = stages[-1].c
        params = params + space.head * c + 2 * space.head
        flops = flops + (space.head * c * area if macs else (space.head * c + 3 * space.head) * area)
        head_log = log_c[-1]

    r_side = score_side(problem)
    prefixes = levels(problem)
    alpha = alphas(problem, len(prefixes))
    S, D = [], []
    entropy: Any = 0.0
    for i, (last, reduction) in enumerate(prefixes):
        end = i == len(prefixes) - 1
        s = 0.5 * (math.log(fan_in) + _total(log_w[: last + 1]) + (head_log if end else 0.0))
        d = 1 + _total(layer_counts[: last + 1]) + (1 if end and space.head else 0)
        r = r_side // reduction
        log_end = math.log(space.head) if end and space.head else log_c[last + 1]
        entropy = entropy + alpha[i] * (log_end + math.log(r * r)) * s
        S.append(s)
        D.append(d)

    cover = covered(problem)
    n = len(cover)
    if n <= 1 or scoring.beta == 0:
        penalty: Any = scoring.beta  # the pstdev of at most one depth is 0
    else:
        depths = [stages[j].L for j in cover]
        if all(space.depths[j][0] == space.depths[j][1] for j in cover):
            depths, ops = [space.depths[j][0] for j in cover], NUMBERS  # fixed depths: a constant penalty
        total = _total(depths)
        radicand = n * _total(x * x for x in depths) - total * total  # n^2 pstdev^2, never negative
        penalty = scoring.beta * ops.exp(ops.sqrt(radicand) / n)
    return Statement(flops, params, D[-1], tuple(S), tuple(D), entropy, penalty, cover)


def evaluate(problem: Problem, arch: Architecture) -> Statement:
    """The statement's numbers for ``arch`` (a design of ``problem``'s space): what the SCIP model computes
    when its variables take ``arch``'s values."""
    inputs = [arch.stem.channels] + [s.channels for s in arch.stages[:-1]]
    stages = [StageVars(s.channels, s.inner, s.kernel, se_hidden(s.inner), s.depth, int(a == s.channels)) for s, a in zip(arch.stages, inputs)]
    return statement(problem, arch.stem.channels, stages, NUMBERS)


# ---------------------------------------------------------------------------
# The SCIP model
# ---------------------------------------------------------------------------


@dataclass
class _Model:
    model: pyscipopt.Model
    stem: dict[int, Any]
    width: list[dict[int, Any]]
    inner: list[dict[int, Any]]
    kernel: list[dict[int, Any]]
    depth: list[Any]
    objective: Any


def _one_hot(m: pyscipopt.Model, values: tuple[int, ...] | list[int], name: str) -> tuple[dict[int, Any], Any]:
    """Binaries over ``values`` (exactly one set) and the integer variable they choose."""
    pick = {v: m.addVar(name=f"{name}[{v}]", vtype="B") for v in values}
    var = m.addVar(name=name, vtype="I", lb=min(values), ub=max(values))
    m.addCons(quicksum(pick.values()) == 1, name=f"{name}_one")
    m.addCons(var == quicksum(v * x for v, x in pick.items()), name=f"{name}_value")
    return pick, var


def _budget(m: pyscipopt.Model, expr: Any, limit: float, name: str) -> None:
    """``expr <= limit`` for an integer-valued ``expr``: ``expr <= floor(limit) + 1/2``, unscaled, so that
    SCIP's absolute tolerance on nonlinear constraints (1e-6) lets no integer total over the limit pass."""
    m.addCons(expr <= math.floor(limit) + 0.5, name=name)


def build_model(problem: Problem) -> _Model:
    """The SCIP model of ``problem`` (maximize ``t`` subject to ``t <= objective``)."""
    space = problem.space
    m = pyscipopt.Model(problem.name or "deepmad")
    channels = space.channel_grid()
    stem_pick, stem = _one_hot(m, space.stem_grid(), "stem")
    widths = [stem_pick]
    stages: list[StageVars] = []
    inner_picks, kernel_picks, depth_vars = [], [], []
    for j, (lo, hi) in enumerate(space.depths):
        pick, c = _one_hot(m, channels, f"c{j}")
        grids = {w: space.inner_grid(w) for w in channels}
        inner_values = sorted({b for g in grids.values() for b in g})
        inner_pick, b = _one_hot(m, inner_values, f"b{j}")
        for v, y in inner_pick.items():  # an inner width only with channels whose inner grid holds it
            m.addCons(y <= quicksum(x for w, x in pick.items() if v in grids[w]), name=f"b{j}_range[{v}]")
        kernel_pick, k = _one_hot(m, space.kernels, f"k{j}")
        L = m.addVar(name=f"L{j}", vtype="I", lb=lo, ub=hi)
        h = quicksum(se_hidden(v) * y for v, y in inner_pick.items())
        before = widths[-1]
        for a, xa in before.items():  # growth rule and non-decreasing channels, pair by pair
            for w, xc in pick.items():
                if not space.growth_ok(a, w, first=j == 0) or (j > 0 and problem.nondecreasing and w < a):
                    m.addCons(xa + xc <= 1, name=f"c{j}_from[{a},{w}]")
        common = sorted(set(before) & set(pick))
        same = quicksum(before[w] * pick[w] for w in common) if common else 0
        stages.append(StageVars(c, b, k, h, L, same))
        widths.append(pick)
        inner_picks.append(inner_pick)
        kernel_picks.append(kernel_pick)
        depth_vars.append(L)

    st = statement(problem, stem, stages, SCIP)
    if problem.flops is not None:
        _budget(m, st.flops, problem.flops, "flops")
    if problem.params is not None:
        _budget(m, st.params, problem.params, "params")
    if problem.max_layers is not None:
        m.addCons(st.layers <= problem.max_layers, name="layers")
    if problem.rho is not None:
        for i, (s, d) in enumerate(zip(st.S, st.D)):
            # rho_i = D exp(-2 S / D) <= rho0  <=>  2 S >= D ln(D / rho0)
            m.addCons(2 * s - d * (pyscipopt.log(d) - math.log(problem.rho)) >= 0, name=f"rho{i}")
    if problem.max_depth_spread is not None:
        for a in st.covered:
            for b in st.covered:
                if a != b:
                    m.addCons(depth_vars[a] - depth_vars[b] <= problem.max_depth_spread, name=f"spread[{a},{b}]")
    t = m.addVar(name="objective", vtype="C", lb=None, ub=None)
    m.addCons(t <= st.objective, name="objective_def")
    m.setObjective(t, "maximize")
    return _Model(m, stem_pick, widths[1:], inner_picks, kernel_picks, depth_vars, t)


def _configure(m: pyscipopt.Model, time_limit: float, gap: float) -> None:
    m.hideOutput()
    m.setParam("limits/time", float(time_limit))
    m.setParam("limits/gap", float(gap))
    m.setParam("constraints/nonlinear/violscale", "n")  # absolute violations (see _budget)
    # SCIP's reformulation of products of binaries (``same_j``) let a heuristic's design that breaks
    # the FLOPs and parameter budgets in the original model pass as optimal (issue 3); leave them as products.
    m.setParam("constraints/nonlinear/reformbinprods", False)
    m.setParam("randomization/randomseedshift", 0)
    m.setParam("randomization/permutationseed", 0)
    m.setParam("randomization/lpseed", 0)
    m.setParam("randomization/permuteconss", False)
    m.setParam("randomization/permutevars", False)
    m.setParam("parallel/maxnthreads", 1)
    m.setParam("lp/threads", 1)
    m.setParam("timing/clocktype", 2)  # wall clock


def _chosen(m: pyscipopt.Model, sol: Any, picks: dict[int, Any]) -> int:
    return max(picks, key=lambda v: m.getSolVal(sol, picks[v]))


def solve(problem: Problem, *, time_limit: float = 60.0, gap: float = 1e-9) -> Solution:
    """Maximize ``problem``'s objective with SCIP; ``time_limit`` in seconds, ``gap`` relative.

    ``optimal`` when SCIP proves the gap, ``time_limit`` when it stops with a design but no proof,
    ``infeasible`` (no shortfall diagnosis) when it proves no design exists. Raises
    :class:`DeepmadError` when it stops without a design or its design fails :meth:`Problem.check`.
    """
    if not (isinstance(time_limit, (int, float)) and math.isfinite(time_limit) and time_limit > 0):
        raise InputError("time_limit", f"must be a positive number of seconds, got {time_limit!r}")
    if not (isinstance(gap, (int, float)) and 0 <= gap < 1):
        raise InputError("gap", f"must be a relative gap in [0, 1), got {gap!r}")
    if problem.latency is not None:
        raise InputError("latency", "the SCIP cross-check states FLOPs, parameter and rho budgets only; solve latency budgets with deepmad.solve")
    start = time.perf_counter()
    model = build_model(problem)
    m = model.model
    _configure(m, time_limit, gap)
    m.optimize()
    seconds = time.perf_counter() - start
    status = m.getStatus()
    if status == "infeasible":
        return Solution("infeasible", None, None, -math.inf, seconds, "scip")
    if m.getNSols() == 0:
        raise DeepmadError(f"SCIP found no feasible design within {time_limit:g} s (status {status}); raise the time limit")
    sol = m.getBestSol()
    space = problem.space
    arch = space.design(_chosen(m, sol, model.stem), [
        (_chosen(m, sol, model.width[j]), _chosen(m, sol, model.inner[j]), _chosen(m, sol, model.kernel[j]), round(m.getSolVal(sol, model.depth[j])))
        for j in range(len(space.strides))
    ], name=problem.name)
    check = problem.check(arch)
    if not check.feasible:
        raise DeepmadError(f"internal error: SCIP's design breaks {', '.join(v.message for v in check.violations)}")
    value = m.getSolVal(sol, model.objective)
    proven = status in ("optimal", "gaplimit")
    if proven and abs(value - check.objective) > 1e-6 * max(1.0, abs(check.objective)):
        raise DeepmadError(f"internal error: SCIP's statement scores its design {value!r}, the accounting {check.objective!r}")
    bound = max(m.getDualbound(), check.objective)
    return Solution("optimal" if proven else "time_limit", arch, check, bound, seconds, "scip")
