"""Design spaces: the discretized choices of every stage, and the space rules.

A :class:`DesignSpace` fixes the block type, the input resolution, the
strides and the head width, and says which values the searched variables may
take: stem width, and per stage the output channels, the inner width, the
kernel and the depth. Widths lie on grids of multiples of ``channel_step`` and
``inner_step``. Space rules (spec section 5), each switchable with ``None``:

* ``inner_ratio = (lo, hi)``: the inner width lies between ``lo * c`` and
  ``hi * c`` of the stage's output channels ``c``, each end rounded to the
  inner grid as TinyNAS's ``smart_round`` does (nearest multiple, at least one
  step), so ``c = 1232`` allows ``b = 120`` under ``lo = 0.1``; ``None`` (the
  default) takes the block type's range, and is the only value for a block
  type without an inner width (whose inner width is then ``c``);
* ``max_growth``: a stage's output is at most ``max_growth`` times its input
  (``c_j <= 4 * c_{j-1}``), for every stage after the first;
* ``stem_growth``: the same rule between the stem and the first stage.

Guidelines (non-decreasing channels, uniform depth) are not space rules; they
belong to :class:`deepmad.problem.problem.Problem`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

from ..errors import InputError
from ..model.architecture import MAX, Architecture, Head, Stage, Stem
from ..model.blocks import BLOCK_TYPES


def smart_round(x: float, step: int) -> int:
    """Nearest multiple of ``step``, at least ``step`` (TinyNAS ``smart_round``)."""
    return max(step, round(x / step) * step)


def _grid(lo: int, hi: int, step: int) -> tuple[int, ...]:
    first = -(-lo // step) * step
    return tuple(range(max(first, step), hi + 1, step))


@dataclass(frozen=True)
class DesignSpace:
    """The searched variables' domains for one network family.

    Widths are counts of channels; ``resolution`` is the input side in pixels;
    ``depths`` holds one ``(min, max)`` block count per stage.
    """

    block: str
    resolution: int
    strides: tuple[int, ...]
    depths: tuple[tuple[int, int], ...]
    stem_channels: tuple[int, int] = (16, 64)
    channels: tuple[int, int] = (8, 2048)
    kernels: tuple[int, ...] | None = None
    head: int | None = None
    stem_stride: int = 2
    channel_step: int = 8
    inner_step: int = 8
    inner_ratio: tuple[float, float] | None = None
    max_growth: float | None = 4.0
    stem_growth: float | None = 4.0
    stem_kernel: int = 3
    in_channels: int = 3

    def __post_init__(self) -> None:
        if self.block not in BLOCK_TYPES:
            raise InputError("block", f"unknown block type {self.block!r}; use one of {', '.join(BLOCK_TYPES)}")
        block = BLOCK_TYPES[self.block]
        object.__setattr__(self, "strides", tuple(self.strides))
        object.__setattr__(self, "depths", tuple(tuple(d) for d in self.depths))
        object.__setattr__(self, "kernels", tuple(sorted(set(block.kernels if self.kernels is None else self.kernels))))
        if not block.has_inner:
            if self.inner_ratio is not None:
                raise InputError("inner_ratio", f"{self.block} blocks have no inner width; leave it unset")
        elif self.inner_ratio is None:
            object.__setattr__(self, "inner_ratio", block.inner_range)
        if not self.strides:
            raise InputError("strides", "at least one stage is needed")
        if len(self.depths) != len(self.strides):
            raise InputError("depths", f"needs one (min, max) per stage: {len(self.strides)}, got {len(self.depths)}")
        for j, (lo, hi) in enumerate(self.depths):
            if not 1 <= lo <= hi:
                raise InputError(f"depths[{j}]", f"needs 1 <= min <= max, got ({lo}, {hi})")
            if hi > MAX["depth"]:
                raise InputError(f"depths[{j}]", f"needs max <= {MAX['depth']:,} blocks per stage, got ({lo}, {hi})")
        for name, (lo, hi) in (("stem_channels", self.stem_channels), ("channels", self.channels)):
            if not 0 < lo <= hi:
                raise InputError(name, f"needs 0 < min <= max, got ({lo}, {hi})")
            if hi > MAX["channels"]:
                raise InputError(name, f"needs max <= {MAX['channels']:,} channels, got ({lo}, {hi})")
        if not self.kernels or any(k <= 0 or k % 2 == 0 for k in self.kernels):
            raise InputError("kernels", f"needs a non-empty set of odd positive kernels, got {self.kernels}")
        if max(self.kernels) > MAX["kernel"]:
            raise InputError("kernels", f"needs kernels <= {MAX['kernel']}, got {self.kernels}")
        if not 0 < self.stem_kernel <= MAX["kernel"] or self.stem_kernel % 2 == 0:
            raise InputError("stem_kernel", f"needs an odd kernel from 1 to {MAX['kernel']}, got {self.stem_kernel}")
        if self.inner_ratio is not None:
            lo, hi = self.inner_ratio
            if not 0 < lo <= hi:
                raise InputError("inner_ratio", f"needs 0 < lo <= hi, got ({lo}, {hi})")
            if not math.isfinite(hi):
                raise InputError("inner_ratio", f"needs a finite hi, got ({lo}, {hi})")
        if not self.channel_grid() or not self.stem_grid():
            raise InputError("channels", f"no multiple of {self.channel_step} lies in the channel ranges")
        # Validates strides, resolution and head through the architecture model.
        self.skeleton()

    def skeleton(self) -> Architecture:
        """The smallest design of the space: its strides, levels and head are every design's."""
        c = self.channel_grid()[0]
        if self.head:
            try:
                Head(self.head)
            except InputError as exc:
                raise exc.within("head") from None
        return self.design(self.stem_grid()[0], [(c, c, self.kernels[0], lo) for lo, _ in self.depths])

    def design(self, stem: int, stages: Sequence[tuple[int, int, int, int]], *, name: str = "") -> Architecture:
        """The design of this space with stem width ``stem`` and, per stage, ``(channels, inner,
        kernel, depth)``: the one place a design is assembled from its choices (the stem's kernel,
        stride and input channels, the strides, block, head and resolution are the space's)."""
        return Architecture(
            stem=Stem(stem, self.stem_kernel, self.stem_stride),
            stages=tuple(Stage(self.block, c, b, k, d, s) for (c, b, k, d), s in zip(stages, self.strides)),
            head=Head(self.head) if self.head else None,
            resolution=self.resolution,
            in_channels=self.in_channels,
            name=name,
        )

    # -- domains -----------------------------------------------------------

    def stem_grid(self) -> tuple[int, ...]:
        return _grid(*self.stem_channels, self.channel_step)

    def channel_grid(self) -> tuple[int, ...]:
        return _grid(*self.channels, self.channel_step)

    def inner_grid(self, channels: int) -> tuple[int, ...]:
        """Inner widths allowed for a stage with ``channels`` outputs (``channels`` itself where the
        block type has no inner width)."""
        if self.inner_ratio is None:
            return (channels,)
        lo, hi = self.inner_ratio
        return _grid(smart_round(lo * channels, self.inner_step), smart_round(hi * channels, self.inner_step), self.inner_step)

    def growth_ok(self, c_in: int, c_out: int, *, first: bool) -> bool:
        limit = self.stem_growth if first else self.max_growth
        return limit is None or c_out <= limit * c_in

    # -- membership --------------------------------------------------------

    def violations(self, arch: Architecture) -> list[str]:
        """Why ``arch`` is not in this space (empty when it is)."""
        out: list[str] = []
        if arch.stages and any(s.block != self.block for s in arch.stages):
            out.append(f"block: the space holds {self.block} stages only")
        if arch.resolution != self.resolution:
            out.append(f"resolution: {arch.resolution}, the space's is {self.resolution}")
        if arch.stem.stride != self.stem_stride or tuple(s.stride for s in arch.stages) != self.strides:
            out.append(f"strides: {(arch.stem.stride, *(s.stride for s in arch.stages))}, the space's are {(self.stem_stride, *self.strides)}")
        if (arch.head.channels if arch.head else None) != self.head:
            out.append(f"head: {arch.head.channels if arch.head else None}, the space's is {self.head}")
        if arch.stem.channels not in self.stem_grid():
            out.append(f"stem.channels: {arch.stem.channels} is not in {self.stem_channels} on the grid of {self.channel_step}")
        if arch.stem.kernel != self.stem_kernel:
            out.append(f"stem.kernel: {arch.stem.kernel}, the space's stem is {self.stem_kernel}x{self.stem_kernel}")
        if arch.in_channels != self.in_channels:
            out.append(f"in_channels: {arch.in_channels}, the space's input has {self.in_channels}")
        for j, (stage, c_in) in enumerate(zip(arch.stages, arch.stage_inputs())):
            where = f"stages[{j}]"
            if stage.channels not in self.channel_grid():
                out.append(f"{where}.channels: {stage.channels} is not in {self.channels} on the grid of {self.channel_step}")
            if stage.inner not in self.inner_grid(stage.channels):
                grid = self.inner_grid(stage.channels)
                out.append(f"{where}.inner: {stage.inner} is not in {grid[0]}..{grid[-1]} on the grid of {self.inner_step}")
            if stage.kernel not in self.kernels:
                out.append(f"{where}.kernel: {stage.kernel} is not in {self.kernels}")
            if j < len(self.depths) and not self.depths[j][0] <= stage.depth <= self.depths[j][1]:
                out.append(f"{where}.depth: {stage.depth} is not in {self.depths[j]}")
            if not self.growth_ok(c_in, stage.channels, first=j == 0):
                limit = self.stem_growth if j == 0 else self.max_growth
                out.append(f"{where}.channels: {stage.channels} is more than {limit:g} x its input {c_in}")
        return out

    def contains(self, arch: Architecture) -> bool:
        return not self.violations(arch)

    def size(self) -> int:
        """Number of designs in the space (growth rule ignored: an upper bound)."""
        per_stage = [
            sum(len(self.inner_grid(c)) for c in self.channel_grid()) * len(self.kernels) * (hi - lo + 1)
            for lo, hi in self.depths
        ]
        total = len(self.stem_grid())
        for n in per_stage:
            total *= n
        return total

    def option_count(self) -> int:
        """Stage options of the exact program before the growth rule filters them (an upper bound)."""
        inputs = [len(self.stem_grid())] + [len(self.channel_grid())] * (len(self.strides) - 1)
        per_width = sum(len(self.inner_grid(c)) for c in self.channel_grid()) * len(self.kernels)
        return sum(n * per_width * (hi - lo + 1) for n, (lo, hi) in zip(inputs, self.depths))

    def designs(self) -> Iterator[Architecture]:
        """Every design of the space, in a fixed order (for brute force on tiny spaces)."""
        options = [
            [
                (c, b, k, d)
                for c in self.channel_grid()
                for b in self.inner_grid(c)
                for k in self.kernels
                for d in range(lo, hi + 1)
            ]
            for lo, hi in self.depths
        ]
        for stem in self.stem_grid():
            for choice in itertools.product(*options):
                widths = [stem] + [c for c, _, _, _ in choice]
                if not all(self.growth_ok(widths[j], widths[j + 1], first=j == 0) for j in range(len(choice))):
                    continue
                yield self.design(stem, choice)


def _up(x: int, step: int) -> int:
    return -(-x // step) * step


def snap(arch: Architecture, space: DesignSpace) -> Architecture:
    """``arch`` with every width rounded up to ``space``'s grids (stem and stage
    channels to ``channel_step``, inner widths to ``inner_step``)."""
    step, inner = space.channel_step, space.inner_step
    return Architecture(
        stem=Stem(_up(arch.stem.channels, step), arch.stem.kernel, arch.stem.stride),
        stages=tuple(
            Stage(s.block, _up(s.channels, step), _up(s.inner, inner) if s.block_type.has_inner else _up(s.channels, step), s.kernel,
                  s.depth, s.stride) for s in arch.stages
        ),
        head=arch.head,
        resolution=arch.resolution,
        in_channels=arch.in_channels,
        num_classes=arch.num_classes,
        name=arch.name,
    )
