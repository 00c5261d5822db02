"""What-if analysis: what another budget, device, block type or rule buys.

* :mod:`.axes`: what a sweep varies (:data:`AXES`), read from text (:func:`parse_axis`), and a
  point's problem (:func:`variant`);
* :mod:`.sweeps`: exact solves of every point in chains of neighbours, warm-started, resumable from
  a file, the points sharing designs and bounds (:func:`sweep`, :class:`Sweep`);
* :mod:`.changes`: where along a budget the optimum changes (:func:`change_points`);
* :mod:`.report`: Pareto fronts as PNG and a self-contained HTML report.

Data flows down: ``report`` and ``changes`` read a :class:`Sweep`; ``sweeps`` solves the
:mod:`.axes`' variants with :func:`deepmad.solvers.solve`.
"""

from .axes import AXES, BUDGETS, MAX_POINTS, AxisKind, parse_axis, points, variant
from .changes import change_points, next_change
from .sweeps import (CHAIN, COLUMNS, POINT_SECONDS, SWEEP_FORMAT, Sweep, binding, chains, looser, merged, point_key, point_seconds,
                     process_pool, shared, solve_chain, summary, sweep)

__all__ = ["AXES", "BUDGETS", "CHAIN", "COLUMNS", "MAX_POINTS", "POINT_SECONDS", "SWEEP_FORMAT", "AxisKind", "Sweep", "binding",
           "chains", "change_points", "looser", "merged", "next_change", "parse_axis", "point_key", "point_seconds", "points",
           "process_pool", "shared", "solve_chain", "summary", "sweep", "variant"]
