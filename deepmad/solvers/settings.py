"""Every tunable of the solvers, in one frozen object passed to :func:`deepmad.solvers.solve`.

Work is budgeted, not timed: each step of the large-space method is given a
share of the solve's *work*, counted in reference seconds (the time its
operations take on the reference machine: 2 cores, one busy, numba kernels
compiled), estimated from operation counts (passes over the space, option
evaluations, MILPs of a given size) and never read off a clock. The same
problem, settings and start give the same design on an idle and on a loaded
machine; the time limit stays a hard stop (a loaded machine that runs more
than about ``1 / plan_share`` times slower than the reference may reach it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ..errors import InputError


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Tunables of the large-space method (``method="large"``); the defaults are what the
    benchmarks were measured with (``benchmarks/solver.py``)."""

    plan_share: float = 0.5
    """Share of the time limit the planned work (the solve's start included: ``cost_setup``) may take
    on the reference machine: the rest is the margin a loaded machine needs to finish the same work
    (two busy processes beside a solve on the reference machine slow it 1.65x to 1.85x; at 0.55,
    with 0.23 s less of the start counted, deepmad-r50 at --time-limit 10 reached the stop beside
    them)."""

    cost_setup: float = 0.3
    """Reference seconds a solve spends before its steps beside reading the space's engine: the
    numba kernels loaded from their cache on their first call in a process (0.3 s). Taken off the
    planned work, as :attr:`cost_setup_line` is, whether or not they are loaded already, so that the
    same call plans the same work."""

    cost_setup_line: float = 1.5e-7
    """Reference seconds per line of the space (one inner width and kernel of one output width of a
    stage) that reading its engine from the cache takes: 0.08 s on deepmad-r50's 447,870 lines,
    0.21 s on deepmad-29m-288's 1,786,680."""

    search_share: float = 0.1
    """Share of the work for the local search that finds the first design."""

    own_share: float = 0.15
    """Share of the work for the exact solves at the first design's widths, then at the search's
    other local optima's."""

    dual_share: float = 0.2
    """Share of the work for the Lagrangian dual with exact entropy products (its bound, and the
    widths of its designs)."""

    widths_share: float = 0.15
    """Share of the work for the best-first search over width chains (the chains the bounds traced,
    probed, then the best of them solved exactly): at 60 s it finds the best designs more surely
    than more branching does (deepmad-r18, r34 and r50 at least 0.995 of the best known at plan
    shares 0.55 to 0.65, where 0.1 and 0.3 of branching gave 0.974 to 1.0). Below
    ``branching_above`` it has the branch and bound's share too."""

    branching_share: float = 0.2
    """Share of the work for the branch and bound over boxes of widths (a tighter bound, and the
    designs of other widths than the dual's)."""

    branching_above: float = 10.0
    """Planned work (reference seconds) below which the branch and bound does not run and its share
    goes to the widths step: with little work it bounds a box or two and its chains' first knapsacks
    rarely hold a better design, where the dual's chains, solved by the widths step, often do (at
    --time-limit 10, a plan of 4.4: deepmad-r34 0.948 -> 0.985 of the best design known, no preset
    worse; the bounds looser, r18's gap 15.9 % -> 21.1 %)."""

    colgen_share: float = 0.2
    """Share of the work for column generation (the LP bound and reduced-cost fixing, which prove
    optima on spaces whose LP is tight; its duals start the dual). Its LP needs a few rounds before
    its duals bound better than its caps alone: at 0.1, and own widths at 0.2, deepmad-r18 at
    --time-limit 10 stopped after two rounds and left the dual no multipliers (gap 23.6 %; 11 % at
    0.2). Over --time-limit 9 to 11 on the seven presets, the gaps at 0.2 were half those at 0.1
    (mean 6.7 % against 12.2 %) and the designs as good (mean 1.004 of the best known, 1.001)."""

    search_kicks: int = 8
    """Random restarts of the local search (one or two stages redrawn, then a climb)."""

    search_seed: int = 0
    """Seed of the local search's kicks."""

    dual_points: int = 8
    """Grid points of the future entropy weight per stage in a Lagrangian pass (a valid bound on
    any grid; finer grids are tighter and slower)."""

    dual_patience: int = 12
    """Passes without a better bound after which the dual stops."""

    dual_tolerance: float = 5e-4
    """The dual stops once its cutting-plane model promises less than this (relative)."""

    node_passes: int = 10
    """Lagrangian passes per box of the branch and bound (from its parent's multipliers)."""

    node_chains: int = 2
    """Width chains per box of the branch and bound, of those its passes trace (best bound first),
    that are solved at fixed widths."""

    node_solves: int = 4
    """Most knapsacks per width chain a box traces (the traced design's depths first, then the depth
    vectors of largest bound): many boxes looked at briefly find more than a few looked at fully
    (deepmad-r18 at 60 s: 37,451 with 4, 36,908 with 8)."""

    chain_solves: int = 12
    """Most knapsacks (exact solves at fixed widths and depths) per width chain the widths step
    tries (deepmad-r18: the dual's best chain, 36,908 after 12; proven after about 30)."""

    probe_lps: int = 4
    """LP relaxations with which the widths step probes a width chain before it ranks the chain to
    be solved (:meth:`deepmad.solvers.fixed.FixedWidths.probe`)."""

    depth_vectors: int = 2_000_000
    """Most depth vectors an exact solve at fixed widths enumerates; beyond, a window around the
    design's depths is enumerated (the solve is then not exact over depths)."""

    colgen_per_round: int = 400
    """Most options per stage that join the master LP in one round."""

    colgen_settled: float = 0.02
    """Column generation stops once the LP is known within this share of the gap."""

    colgen_smoothing: float = 0.7
    """Wentges smoothing: price at this mix of the best-bound duals and the master's duals."""

    survivors: int = 30_000
    """Most options left by reduced-cost fixing that the exact MILP over them is handed."""

    whole_options: int = 30_000
    """``method="auto"`` states the whole program for spaces of at most this many stage options."""

    milp_options: int = 2_000_000
    """Largest space (in stage options) the whole-program MILP is stated for."""

    cost_scored: float = 8e-8
    """Reference seconds per option a search move scores (fitted on five presets' climbs)."""

    cost_vector: float = 4.3e-9
    """Reference seconds per depth vector an exact solve at fixed widths bounds. This and the other
    costs of solves at fixed widths (``cost_knapsack`` to ``cost_node``) are fitted together on the
    solves, probes and bounds of the seven presets at --time-limit 10 and 60 (3,584 calls: their
    sum 0.99x the wall time in all, a call's median 1.03x; per preset 0.81x to 1.14x). A cost fitted
    to 0 is one the others account for on these presets."""

    cost_knapsack: float = 1.1e-3
    """Reference seconds per knapsack (an exact solve at fixed widths and depths): its model."""

    cost_option: float = 3.8e-6
    """Reference seconds per option of a knapsack's LP relaxation."""

    cost_mip: float = 0.0
    """Reference seconds per knapsack solved as a MILP (its LP may beat the incumbent), beside its
    simplex iterations and nodes."""

    cost_iteration: float = 1.4e-4
    """Reference seconds per simplex iteration HiGHS reports in a knapsack's MILP: the work of HiGHS
    counted in its own deterministic unit."""

    cost_mip_option: float = 3e-5
    """Reference seconds per option of a knapsack solved as a MILP (HiGHS's presolve and root work
    grow with its columns, beside its iterations)."""

    cost_node: float = 0.0
    """Reference seconds per branch-and-bound node HiGHS reports."""

    cost_master_iteration: float = 1e-4
    """Reference seconds per simplex iteration of column generation's master LP: 7.7e-5 in the small
    masters of --time-limit 10 (seven presets: 2.7 s for 34,824 iterations), up to 1.2e-4 in the
    larger ones of 60 s (deepmad-r50: 4.2 s for 34,239)."""

    cost_line: float = 2.6e-8
    """Reference seconds per line of a pricing pass of column generation, and of a pass of its
    entropy caps (a line: one inner width and kernel of one output width of a stage): 0.020 s a pass
    on the bottleneck presets (447,870 lines), 0.050 to 0.058 s on the inverted-residual ones
    (1,786,680 lines)."""

    cost_pass: float = 0.008
    """Reference seconds of a pricing or caps pass beside its lines."""

    cost_dual_line: float = 1.8e-8
    """Reference seconds per line of a Lagrangian pass of the dual (its prices, once per pass)."""

    cost_dual_point: float = 7.5e-6
    """Reference seconds per output width of a stage and grid point of a Lagrangian pass (its
    longest path over the future weight's grid): 4.8e-6 on deepmad-r18 (a pass at 8 points
    0.057 s), 6e-6 on deepmad-89m (0.079 s), 8.9e-6 on deepmad-29m-224 (0.10 s)."""

    cost_round: float = 0.03
    """Reference seconds of a round of column generation beside its master LP's iterations and its pricing."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"settings.{f.name}", f"must be a finite number, got {value!r}")
            if f.name.endswith("_share") and not 0 <= value <= 1:
                raise InputError(f"settings.{f.name}", f"must be a share in [0, 1], got {value!r}")
            if f.type == "int" and (not isinstance(value, int) or value < 0):
                raise InputError(f"settings.{f.name}", f"must be an integer >= 0, got {value!r}")
        if self.dual_points < 1:
            raise InputError("settings.dual_points", f"must be at least 1, got {self.dual_points}")
        if self.plan_share <= 0:
            raise InputError("settings.plan_share", f"must be positive, got {self.plan_share}")
