"""Independent exact solvers, for cross-checks in the tests: not part of a solve.

* ``"bruteforce"`` (:mod:`.bruteforce`): every design of a tiny space, scored by
  :meth:`deepmad.problem.problem.Problem.check`;
* ``"scip"`` (:mod:`.scip`): the problem stated straight from the spec as a
  nonlinear integer program on SCIP (needs ``pyscipopt``, the ``test`` extra).
"""

from __future__ import annotations

from typing import Callable

from ...solution import Solution


def _scip(problem, **kw) -> Solution:
    from .scip import solve  # pyscipopt is a test dependency, imported where it is used

    return solve(problem, **kw)


def _bruteforce(problem, **kw) -> Solution:
    from .bruteforce import solve

    return solve(problem, **kw)


CHECKS: dict[str, Callable[..., Solution]] = {"bruteforce": _bruteforce, "scip": _scip}
"""The cross-checks by name."""
