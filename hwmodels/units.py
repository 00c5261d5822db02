"""The measured units of a cost table: one layer (or one small fixed group of ops) of a network.

A :class:`Unit` is what a table row times and what a latency prediction sums.
Its ``op`` says what runs, with BatchNorm always folded into the unit:

* ``conv``: a dense ``kernel x kernel`` convolution (padding ``kernel // 2``,
  no bias) and its BatchNorm; with ``fused_add``, the addition of a residual
  tensor of the output's shape; then the activation ``act``.
* ``dwconv``: the same with ``groups = c_in = c_out`` (depthwise).
* ``se``: squeeze-excite on ``c_in`` channels with hidden width ``c_out``:
  global average pool, 1x1 conv+BN+SiLU, 1x1 conv+BN, sigmoid, multiply.
* ``pool``: the 2x2 stride-2 average pool of a strided shortcut (``c_out = c_in``).
* ``classifier``: global average pool and a linear layer ``c_in -> c_out``.

``size`` is the side of the (square) input feature map; ``act`` is ``relu``,
``silu``, ``gelu``, ``none``, or ``any`` in tables whose runtime fuses the activation
into the conv so that its kind does not change the time (TensorRT).
Widths and sizes may be numpy arrays of equal shape (a predictor evaluates
many units of one kind at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPS = ("conv", "dwconv", "se", "pool", "classifier")
ACTS = ("relu", "silu", "none", "any", "gelu")


@dataclass(frozen=True)
class Unit:
    """One measured unit; see the module docstring for what each ``op`` runs."""

    op: str
    c_in: Any
    c_out: Any
    kernel: int
    stride: int
    size: Any
    fused_add: bool = False
    act: str = "none"

    @property
    def weights(self):
        """Weights the unit reads: conv ``c_in * c_out * k^2`` (``c * k^2`` depthwise), SE
        ``2 * c_in * c_out``, classifier ``c_in * c_out``, pool none."""
        if self.op == "conv":
            return self.c_in * self.c_out * self.kernel**2
        if self.op == "dwconv":
            return self.c_in * self.kernel**2
        if self.op == "se":
            return 2 * self.c_in * self.c_out
        if self.op == "classifier":
            return self.c_in * self.c_out
        return 0

    @property
    def activations(self):
        """Activation elements the unit reads and writes per image: ``c_in * size^2`` in and
        ``c_out * ceil(size / stride)^2`` out (a pool's and a classifier's output as their op gives)."""
        side_out = -(-self.size // self.stride) if self.op not in ("se", "classifier") else self.size
        out = 1 if self.op == "classifier" else side_out * side_out
        return self.c_in * self.size * self.size + self.c_out * out

    @property
    def group(self) -> tuple[str, int, int, bool, str]:
        """What must match exactly between a unit and the table rows that predict it."""
        return (self.op, self.kernel, self.stride, self.fused_add, self.act)

    def describe(self) -> str:
        extra = " +add" if self.fused_add else ""
        return f"{self.op} {self.c_in}->{self.c_out} k{self.kernel} s{self.stride} @{self.size} {self.act}{extra}"
