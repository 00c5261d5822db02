"""Block types: one definition each.

A :class:`BlockType` states a block family: a function from a block's shape
(input and output channels, inner width, kernel, stride, whether it opens its
stage) to a :class:`BlockLayout` (the convs of its main path with their
fan-in, groups, stride placement and activations, its squeeze-excite, its
shortcut rule), whether the family has an inner width and its range, its
default kernels and depth-penalty stages, and its TinyNAS class names where
TinyNAS has the family. Everything else is derived from that definition and
from nothing else:

* parameters and FLOPs in both conventions (:mod:`deepmad.model.accounting`),
* the layer widths that enter the entropy and the effectiveness
  (:mod:`deepmad.model.entropy`): the fan-in ``c_in * k^2 / groups`` of each
  main-path conv,
* the latency units (:mod:`deepmad.hardware.latency`) and what the profiler times
  (:mod:`deepmad.hardware.profiling`),
* the solver's option arrays and rows (:mod:`deepmad.solvers.engine` traces
  the layout), the SCIP cross-check's statement
  (:mod:`deepmad.solvers.checks.scip` reads the same layout symbolically),
* the PyTorch module (:mod:`generators.pytorch` writes the layout out and one
  generic block class builds it).

Adding a block type is one new entry in :data:`BLOCK_TYPES`; no other module
switches on block names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

Shortcut = Literal["none", "identity", "projection"]
Activation = Literal["relu", "silu", "gelu"]


@dataclass(frozen=True)
class Conv:
    """A convolution without bias, followed by BatchNorm (padding ``kernel // 2``).

    ``act``: whether the block's activation follows it (for a block's last conv: the activation
    after the addition of the shortcut). Stems, heads and shortcut projections ignore it."""

    c_in: int
    c_out: int
    kernel: int
    stride: int = 1
    groups: int = 1
    act: bool = True

    @property
    def _per_group(self):
        """``groups``, at least 1 (traces evaluate a depthwise conv at zero width)."""
        return self.groups if isinstance(self.groups, int) else np.maximum(self.groups, 1)

    @property
    def weights(self) -> int:
        """Number of weights: ``c_in * c_out * k^2 / groups``."""
        return self.c_in * self.c_out * self.kernel**2 // self._per_group

    @property
    def depthwise(self) -> bool:
        if isinstance(self.groups, int) and isinstance(self.c_in, int):  # one conv (the common case: no numpy call)
            return 1 < self.groups == self.c_in
        return bool(np.all((self.groups > 1) & (self.groups == self.c_in)))

    @property
    def fan_in(self) -> int:
        """The layer width ``w = c_in * k^2 / groups`` of the entropy (spec section 3)."""
        return self.c_in * self.kernel**2 // self._per_group


@dataclass(frozen=True)
class SqueezeExcite:
    """Squeeze-excite on ``channels``: pool, 1x1 conv+BN to ``hidden``, SiLU,
    1x1 conv+BN back, sigmoid gate. Applied after main-path conv ``after``."""

    channels: int
    hidden: int
    after: int

    @property
    def convs(self) -> tuple[Conv, Conv]:
        return (Conv(self.channels, self.hidden, 1), Conv(self.hidden, self.channels, 1))


@dataclass(frozen=True)
class BlockLayout:
    """What one block is made of.

    ``convs`` is the main path in order; the block's activation follows every
    conv whose ``act`` is set, the last conv's after the sum of that conv and
    the shortcut.
    A ``"projection"`` shortcut is a 1x1 conv+BN ``c_in -> c_out`` at the
    output resolution; any shortcut of a strided block first average-pools
    its input (2x2, stride 2).
    """

    convs: tuple[Conv, ...]
    shortcut: Shortcut
    activation: Activation
    se: SqueezeExcite | None = None

    @property
    def c_in(self) -> int:
        return self.convs[0].c_in

    @property
    def c_out(self) -> int:
        return self.convs[-1].c_out

    @property
    def stride(self) -> int:
        stride = 1
        for conv in self.convs:
            stride *= conv.stride
        return stride

    @property
    def pools_shortcut(self) -> bool:
        return self.shortcut != "none" and self.stride != 1

    @property
    def projection(self) -> Conv | None:
        return Conv(self.c_in, self.c_out, 1) if self.shortcut == "projection" else None


LayoutFn = Callable[[int, int, int, int, int, bool], BlockLayout]


@dataclass(frozen=True)
class BlockType:
    """A registered block type.

    ``layout(c_in, c_out, inner, kernel, stride, first)`` builds one block;
    ``first`` is true for the block that opens a stage. ``penalty_stages``
    says which stages the depth penalty covers by default (``"last3"`` or
    ``"all"``, spec section 3). ``inner_range`` is the inner width range
    relative to the output channels (TinyNAS's search space, spec section 5,
    for its families); ``None``: the family has no inner width, a stage's
    ``inner`` then equals its channels and the layout ignores it.
    ``kernels``: the kernels a custom space of this family offers by default.
    ``tinynas_class`` and ``tinynas_inner_class``: the family's classes in
    TinyNAS's structure format, ``None`` for a family TinyNAS does not have.
    """

    name: str
    description: str
    layout: LayoutFn
    penalty_stages: Literal["last3", "all"]
    inner_range: tuple[float, float] | None
    kernels: tuple[int, ...] = (3, 5, 7)
    tinynas_class: str | None = None
    tinynas_inner_class: str | None = None

    @property
    def has_inner(self) -> bool:
        return self.inner_range is not None


def se_hidden_width(channels):
    """SE hidden width, as TinyNAS: ``max(1, round(channels / 4) // 8) * 8`` (round half
    to even, as Python's ``round``). Takes an int, or a numpy array of them."""
    width = np.maximum(1, np.round(np.multiply(channels, 0.25)).astype(np.int64) // 8) * 8
    return int(width) if np.ndim(width) == 0 else width


def _bottleneck(c_in: int, c_out: int, inner: int, kernel: int, stride: int, first: bool) -> BlockLayout:
    # TinyNAS forces a projection on the first block of a stage, even when c_in == c_out.
    return BlockLayout(
        convs=(Conv(c_in, inner, 1), Conv(inner, inner, kernel, stride), Conv(inner, c_out, 1)),
        shortcut="projection" if first or c_in != c_out else "identity",
        activation="relu",
    )


def _basic(c_in: int, c_out: int, inner: int, kernel: int, stride: int, first: bool) -> BlockLayout:
    # The second conv carries the stride, as in TinyNAS's ResKXKX.
    return BlockLayout(
        convs=(Conv(c_in, inner, kernel), Conv(inner, c_out, kernel, stride)),
        shortcut="projection" if c_in != c_out else "identity",
        activation="relu",
    )


def _inverted_residual(se: bool) -> LayoutFn:
    def layout(c_in: int, c_out: int, inner: int, kernel: int, stride: int, first: bool) -> BlockLayout:
        # No projection: a block that changes width has no shortcut at all.
        return BlockLayout(
            convs=(Conv(c_in, inner, 1), Conv(inner, inner, kernel, stride, groups=inner), Conv(inner, c_out, 1)),
            shortcut="identity" if c_in == c_out else "none",
            activation="silu",
            se=SqueezeExcite(inner, se_hidden_width(inner), after=1) if se else None,
        )

    return layout


def _plain(c_in: int, c_out: int, inner: int, kernel: int, stride: int, first: bool) -> BlockLayout:
    # VGG, and RepVGG in its deployed form: one conv, no shortcut, no inner width.
    return BlockLayout(convs=(Conv(c_in, c_out, kernel, stride),), shortcut="none", activation="relu")


def _large_kernel(c_in: int, c_out: int, inner: int, kernel: int, stride: int, first: bool) -> BlockLayout:
    # RepLKNet/ConvNeXt: a depthwise kxk token mixer on the input width (carrying the stride), then a
    # pointwise MLP (1x1 up to the inner width, GELU, 1x1 down). No activation after the depthwise
    # conv nor after the addition; the shortcut is projected where the width changes.
    return BlockLayout(
        convs=(Conv(c_in, c_in, kernel, stride, groups=c_in, act=False), Conv(c_in, inner, 1), Conv(inner, c_out, 1, act=False)),
        shortcut="identity" if c_in == c_out else "projection",
        activation="gelu",
    )


BLOCK_TYPES: dict[str, BlockType] = {
    "bottleneck": BlockType(
        name="bottleneck",
        tinynas_class="SuperResK1KXK1",
        tinynas_inner_class="ResK1KXK1",
        description="1x1 -> kxk (stride) -> 1x1, ReLU; projection shortcut on each stage's first block",
        layout=_bottleneck,
        penalty_stages="last3",
        inner_range=(0.1, 1.0),
    ),
    "inverted_residual_se": BlockType(
        name="inverted_residual_se",
        tinynas_class="SuperResK1DWSEK1",
        tinynas_inner_class="ResK1DWSEK1",
        description="1x1 expand -> depthwise kxk (stride) -> SE -> 1x1, SiLU (MBConv)",
        layout=_inverted_residual(se=True),
        penalty_stages="all",
        inner_range=(1.5, 6.0),
    ),
    "inverted_residual": BlockType(
        name="inverted_residual",
        tinynas_class="SuperResK1DWK1",
        tinynas_inner_class="ResK1DWK1",
        description="1x1 expand -> depthwise kxk (stride) -> 1x1, SiLU (MBConv without SE)",
        layout=_inverted_residual(se=False),
        penalty_stages="all",
        inner_range=(1.5, 6.0),
    ),
    "basic": BlockType(
        name="basic",
        tinynas_class="SuperResKXKX",
        tinynas_inner_class="ResKXKX",
        description="kxk -> kxk (stride), ReLU: the ResNet-18/34 block",
        layout=_basic,
        penalty_stages="last3",
        inner_range=(0.1, 1.0),
    ),
    "plain": BlockType(
        name="plain",
        description="kxk (stride), ReLU, no shortcut: VGG, RepVGG as deployed",
        layout=_plain,
        penalty_stages="last3",
        inner_range=None,
    ),
    "large_kernel": BlockType(
        name="large_kernel",
        description="depthwise kxk (stride) -> 1x1 up -> GELU -> 1x1 down, shortcut: RepLKNet/ConvNeXt",
        layout=_large_kernel,
        penalty_stages="all",
        inner_range=(1.0, 4.0),
        kernels=(7, 13, 31),
    ),
}

