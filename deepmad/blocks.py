"""Block types: one definition each.

A block type is a function from a block's shape (input and output channels,
inner width, kernel, stride, whether it opens its stage) to a
:class:`BlockLayout`: the convs of its main path, its squeeze-excite, its
shortcut and its activation. Everything else is derived from that layout and
from nothing else:

* parameters and FLOPs in both conventions (:mod:`deepmad.accounting`),
* the layer widths that enter the entropy and the effectiveness
  (:mod:`deepmad.entropy`): the fan-in ``c_in * k^2 / groups`` of each
  main-path conv,
* the PyTorch module (:mod:`generators.pytorch` writes the layout out and one
  generic block class builds it).

Adding a block type is one new entry in :data:`BLOCK_TYPES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

Shortcut = Literal["none", "identity", "projection"]
Activation = Literal["relu", "silu"]


@dataclass(frozen=True)
class Conv:
    """A convolution without bias, followed by BatchNorm (padding ``kernel // 2``)."""

    c_in: int
    c_out: int
    kernel: int
    stride: int = 1
    groups: int = 1

    @property
    def weights(self) -> int:
        """Number of weights: ``c_in * c_out * k^2 / groups``."""
        return self.c_in * self.c_out * self.kernel**2 // self.groups

    @property
    def depthwise(self) -> bool:
        if isinstance(self.groups, int) and isinstance(self.c_in, int):  # one conv (the common case: no numpy call)
            return 1 < self.groups == self.c_in
        return bool(np.all((self.groups > 1) & (self.groups == self.c_in)))

    @property
    def fan_in(self) -> int:
        """The layer width ``w = c_in * k^2 / groups`` of the entropy (spec section 3)."""
        return self.c_in * self.kernel**2 // self.groups


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
    conv but the last, and follows the sum of the last conv and the shortcut.
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
    ``"all"``, spec section 3); ``inner_range`` is the inner width range
    relative to the output channels in TinyNAS's search space (spec section 5).
    """

    name: str
    tinynas_class: str
    tinynas_inner_class: str
    description: str
    layout: LayoutFn
    penalty_stages: Literal["last3", "all"]
    inner_range: tuple[float, float]


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
}

