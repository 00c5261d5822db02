"""DeepMAD scoring: multi-scale entropy, depth penalty and effectiveness (spec sections 3-4).

Layer widths are the fan-ins ``c_in * k^2 / groups`` of the main-path convs
(stem, every block's main convs, head conv), read off the block layouts of
:mod:`deepmad.model.blocks`. For scoring prefix ``i`` (the resolution levels of
:meth:`Architecture.levels`, the last one with the head conv):

* ``S_i = 1/2 * sum of ln(w_l)`` over all layers from the input to its end,
* ``H_i = ln(c_i * r_i^2) * S_i`` with ``c_i`` the channels of its last layer
  and ``r_i`` the side of its output map at the scoring resolution,
* ``rho_i = D_i * exp(-2 * S_i / D_i)`` with ``D_i`` its layer count,

and the objective is ``sum_i alpha_i * H_i - beta * exp(pstdev(L_j, j in P))``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from ..errors import InputError, shown
from .architecture import MAX, Architecture

DEFAULT_BETA = 10.0
LAST_ALPHA = 8.0


@dataclass(frozen=True)
class Scoring:
    """How to score. All fields are optional; keyword-only.

    ``alpha``: one weight per scoring prefix (default ``(1, ..., 1, 8)``).
    ``beta``: depth penalty weight (default 10).
    ``penalty_stages``: indices (0-based) of the stages whose depths the
    penalty covers; default from the block type
    (:attr:`deepmad.model.blocks.BlockType.penalty_stages`: the last three stages for
    bottleneck and basic networks, all stages for inverted residuals), all
    stages for networks that mix block types with different defaults.
    ``resolution``: the input side the ``r_i`` are taken at; default the
    design resolution. The reference code always uses 224.
    """

    alpha: tuple[float, ...] | None = None
    beta: float = DEFAULT_BETA
    penalty_stages: tuple[int, ...] | None = None
    resolution: int | None = None

    def __post_init__(self) -> None:
        if self.alpha is not None:
            object.__setattr__(self, "alpha", _sequence("alpha", self.alpha))
            for a in self.alpha:
                _finite("alpha", a)
                if a < 0:
                    raise InputError("alpha", f"weights must be at least 0, got {a!r}")
        _finite("beta", self.beta)
        if self.beta < 0:
            raise InputError("beta", f"must be at least 0 (a penalty), got {self.beta!r}")
        if self.penalty_stages is not None:
            stages = _sequence("penalty_stages", self.penalty_stages)
            object.__setattr__(self, "penalty_stages", stages)
            for j in stages:
                if isinstance(j, bool) or not isinstance(j, int) or j < 0:
                    raise InputError("penalty_stages", f"must be stage indices (0, 1, ...), got {shown(j)}")
            if len(set(stages)) != len(stages):
                raise InputError("penalty_stages", f"lists a stage twice: {list(stages)}")
        if self.resolution is not None and (
            isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or not 0 < self.resolution <= MAX["resolution"]
        ):
            raise InputError("resolution", f"scoring resolution must be a positive integer up to {MAX['resolution']}, got {shown(self.resolution)}")

    def side(self, arch: Architecture) -> int:
        """The input side the ``r_i`` of ``arch`` are taken at; it must be a multiple of the total stride."""
        res = self.resolution or arch.resolution
        if res % arch.total_stride:
            raise InputError("resolution", f"scoring resolution {res} is not divisible by the total stride {arch.total_stride}")
        return res

    def alphas(self, prefixes: int) -> tuple[float, ...]:
        if self.alpha is None:
            return (1.0,) * (prefixes - 1) + (LAST_ALPHA,)
        if len(self.alpha) != prefixes:
            raise InputError("alpha", f"needs one weight per scoring prefix: {prefixes} values, got {len(self.alpha)}")
        return self.alpha

    def covered_stages(self, arch: Architecture) -> tuple[int, ...]:
        m = len(arch.stages)
        if self.penalty_stages is not None:
            for j in self.penalty_stages:
                if j >= m:
                    raise InputError("penalty_stages", f"stage {j} does not exist; the network has stages 0..{m - 1}")
            return self.penalty_stages
        rules = {s.block_type.penalty_stages for s in arch.stages}
        if rules == {"last3"}:
            return tuple(range(max(0, m - 3), m))
        return tuple(range(m))


def _finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(name, f"must be a finite number, got {shown(value)}")


def _sequence(name: str, value: object) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InputError(name, f"must be a sequence, got {shown(value)}")
    return tuple(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Prefix:
    """One scoring prefix: ``layers`` = D_i, ``channels`` = c_i, ``side`` = r_i,
    ``log_width_sum`` = S_i, ``entropy`` = H_i, ``rho`` = rho_i."""

    last_stage: int
    layers: int
    channels: int
    side: int
    log_width_sum: float
    entropy: float
    rho: float


@dataclass(frozen=True)
class Score:
    """DeepMAD score of a design: ``objective = entropy - penalty``, ``entropy`` the weighted sum."""

    prefixes: tuple[Prefix, ...]
    alpha: tuple[float, ...]
    entropy: float
    penalty: float
    objective: float
    rho: float
    layers: int
    widths: tuple[int, ...]
    resolution: int
    penalty_stages: tuple[int, ...]


def layer_widths(arch: Architecture) -> list[tuple[int, int]]:
    """``(stage index, width)`` of every scored layer in order; the stem has
    stage index -1 and the head conv ``len(stages)``."""
    widths = [(-1, arch.stem_conv().fan_in)]
    for j, _, layout in arch.blocks():
        widths += [(j, conv.fan_in) for conv in layout.convs]
    head = arch.head_conv()
    if head is not None:
        widths.append((len(arch.stages), head.fan_in))
    return widths


def depth_penalty(depths: Sequence[int], beta: float = DEFAULT_BETA) -> float:
    """``beta * exp(pstdev(depths))`` (population standard deviation); ``beta`` for no depths."""
    return beta * math.exp(statistics.pstdev(depths)) if depths else beta


def score(arch: Architecture, scoring: Scoring = Scoring()) -> Score:
    """Score ``arch`` as DeepMAD does (see the module docstring)."""
    res = scoring.side(arch)
    widths = layer_widths(arch)
    levels = arch.levels()
    alpha = scoring.alphas(len(levels))
    prefixes = []
    for i, level in enumerate(levels):
        last = level is levels[-1]
        ws = [w for j, w in widths if j <= level.last_stage or last]
        s = 0.5 * sum(math.log(w) for w in ws)
        d = len(ws)
        c = arch.out_channels if last else level.channels
        r = res // level.reduction
        prefixes.append(Prefix(level.last_stage, d, c, r, s, math.log(c * r * r) * s, d * math.exp(-2.0 * s / d)))
    entropy = sum(a * p.entropy for a, p in zip(alpha, prefixes))
    covered = scoring.covered_stages(arch)
    penalty = depth_penalty([arch.stages[j].depth for j in covered], scoring.beta)
    return Score(
        prefixes=tuple(prefixes),
        alpha=alpha,
        entropy=entropy,
        penalty=penalty,
        objective=entropy - penalty,
        rho=max(p.rho for p in prefixes),
        layers=len(widths),
        widths=tuple(w for _, w in widths),
        resolution=res,
        penalty_stages=covered,
    )
