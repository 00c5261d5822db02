"""The scoring as the solvers see it: prefixes, their weights, and designs scored from stage sums.

:meth:`deepmad.problem.problem.Problem.check` scores a design from its layers (the
reference, independent of any solver). The solvers score many designs at once
from per-stage sums (entropy, costs, layer counts) and need the same terms in
pieces: which scoring prefixes contain a stage, the weight ``alpha_i ln(c_i
r_i^2)`` of a prefix's entropy, which stages the depth penalty covers. One
:class:`Context` per problem holds them, and every step of a solve uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..problem.problem import Problem


@dataclass(frozen=True)
class Totals:
    """Per-stage sums of designs (numbers or arrays that broadcast): ``entropy``, ``flops``,
    ``params``, ``latency`` (ms), ``layers`` and ``depth`` per stage, ``widths`` the stages' output
    channels; ``stem`` the stem's ``(width, entropy, flops, params, latency)``."""

    stem: tuple
    widths: list
    entropy: list
    flops: list
    params: list
    latency: list
    layers: list
    depth: list


class Context:
    """The scoring prefixes of a problem's designs (all of them share one skeleton)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        space = problem.space
        skeleton = space.skeleton()
        self.levels = skeleton.levels()
        self.alpha = problem.scoring.alphas(len(self.levels))
        self.covered = problem.scoring.covered_stages(skeleton)
        self.side = problem.scoring.side(skeleton)
        self.nstages = len(space.strides)
        self.r2 = [(self.side // level.reduction) ** 2 for level in self.levels]
        self.last = [level.last_stage if i < len(self.levels) - 1 else self.nstages - 1 for i, level in enumerate(self.levels)]
        self.head = space.head
        self.fixed_ms = problem.latency_model.calibration.fixed_ms if problem.latency_model is not None else 0.0

    def prefixes_of(self, j: int) -> list[int]:
        """The scoring prefixes that contain stage ``j`` (``-1``: the stem)."""
        return [i for i, last in enumerate(self.last) if j <= last]

    def ending(self, j: int) -> list[int]:
        """The prefixes whose last stage is ``j`` (``-1``: the stem)."""
        return [i for i, last in enumerate(self.last) if last == j]

    def weight(self, i: int, c) -> float:
        """``alpha_i ln(c r_i^2)``: the objective weight of ``S_i`` when prefix ``i`` ends at width ``c``."""
        return self.alpha[i] * np.log(np.multiply(c, self.r2[i]))

    def has_sigma(self, i: int) -> bool:
        """Whether prefix ``i``'s end width is chosen (every prefix but a last one that a head conv ends)."""
        return not (i == len(self.levels) - 1 and self.head)

    def end_weight(self, i: int, c) -> float:
        """The weight of ``S_i`` when the stage that ends prefix ``i`` has width ``c`` (the head's where it ends it)."""
        return self.weight(i, c) if self.has_sigma(i) else self.weight(i, self.head)

    def penalty(self, depths) -> float:
        """``beta exp(pstdev)`` of the covered stages' depths (numbers or arrays); ``beta`` with none."""
        beta = self.problem.scoring.beta
        if not self.covered:
            return beta
        ds = [np.asarray(depths[j], dtype=float) for j in self.covered]
        mean = sum(ds) / len(ds)
        var = sum((x - mean) ** 2 for x in ds) / len(ds)
        return beta * np.exp(np.sqrt(np.maximum(var, 0.0)))

    def score(self, t: Totals) -> tuple:
        """``(violation, objective)`` of designs: the objective as :func:`deepmad.model.entropy.score` gives
        it, and the sum of every budget's and rho0's relative excess and the depth spread's excess
        (zero when the design meets them; the guidelines and space rules are the caller's)."""
        problem = self.problem
        width0, e0, f0, p0, t0 = t.stem
        objective, worst_rho = 0.0, 0.0
        for i, last in enumerate(self.last):
            s = e0 + sum(t.entropy[j] for j in range(last + 1))
            d = 1 + sum(t.layers[j] for j in range(last + 1))
            c = self.head if i == len(self.levels) - 1 and self.head else (width0 if last < 0 else t.widths[last])
            objective = objective + self.alpha[i] * np.log(np.multiply(c, self.r2[i])) * s
            worst_rho = np.maximum(worst_rho, d * np.exp(-2.0 * s / d))
        objective = objective - self.penalty(t.depth)
        violation = 0.0
        used = ((f0 + sum(t.flops), problem.flops), (p0 + sum(t.params), problem.params), (worst_rho, problem.rho),
                (1 + sum(t.layers), problem.max_layers), (t0 + sum(t.latency) + self.fixed_ms, problem.latency))
        for value, limit in used:
            if limit is not None:
                violation = violation + np.maximum(0.0, value / limit - 1.0)
        if problem.max_depth_spread is not None and self.covered:
            ds = np.broadcast_arrays(*(np.asarray(t.depth[j], dtype=float) for j in self.covered))
            violation = violation + np.maximum(0.0, np.max(ds, axis=0) - np.min(ds, axis=0) - problem.max_depth_spread)
        return violation, objective
