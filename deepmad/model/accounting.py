"""Parameters and FLOPs, per layer and in total, in both conventions (spec section 2).

* ``macs``: multiply-accumulates of convolutions (SE and shortcut convs
  included) and of the classifier. Equals what torch's ``FlopCounterMode``
  reports for the generated module, divided by two.
* ``flops_tinynas``: DeepMAD's published budgets. Per conv
  ``(weights + 2 * c_out) * H_out * W_out``, plus ``c_out * H_out * W_out``
  for the activation that follows it where the block has one there (for a
  block's last conv: the activation after the addition) and for the addition of a projection
  shortcut; ``c_in * H_in * W_in`` for the average pool of a strided
  shortcut; SE FLOPs not counted; classifier not counted.
* ``params``: conv weights (no bias) plus the BN affine ``2 * c_out`` per
  conv, SE convs included. The same in both conventions; the classifier
  (``c * n + n`` with bias) is reported apart.

All counts are exact Python integers at the design resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

from .architecture import Architecture
from .blocks import BlockLayout, Conv


@dataclass(frozen=True)
class LayerCost:
    """One row of the accounting. ``name`` is the module path in the generated model."""

    name: str
    kind: str  # conv | dwconv | se | shortcut | pool | classifier
    params: int
    macs: int
    flops_tinynas: int


@dataclass(frozen=True)
class Costs:
    """Totals. ``params``, ``macs`` and ``flops_tinynas`` exclude the classifier."""

    params: int
    macs: int
    flops_tinynas: int
    classifier_params: int
    classifier_macs: int
    layers: tuple[LayerCost, ...]

    @property
    def params_with_classifier(self) -> int:
        return self.params + self.classifier_params

    @property
    def macs_with_classifier(self) -> int:
        return self.macs + self.classifier_macs


def conv_cost(name: str, conv: Conv, side_out: int, *, activation: bool, kind: str | None = None) -> LayerCost:
    """One conv with its BN (and activation) whose output map is ``side_out`` x ``side_out``."""
    area = side_out * side_out
    params = conv.weights + 2 * conv.c_out
    flops = params * area + (conv.c_out * area if activation else 0)
    kind = kind or ("dwconv" if conv.depthwise else "conv")
    return LayerCost(name, kind, params, conv.weights * area, flops)


def block_costs(name: str, layout: BlockLayout, side_in: int) -> list[LayerCost]:
    """Rows of one block whose input feature map is ``side_in`` x ``side_in``."""
    rows = []
    side = side_in
    for i, conv in enumerate(layout.convs):
        side //= conv.stride
        # A main conv's activation: for the last one, the one after the addition.
        rows.append(conv_cost(f"{name}.convs.{i}", conv, side, activation=conv.act))
        if layout.se is not None and layout.se.after == i:
            se_params = sum(c.weights + 2 * c.c_out for c in layout.se.convs)
            se_macs = sum(c.weights for c in layout.se.convs)  # on the pooled 1x1 map
            rows.append(LayerCost(f"{name}.se", "se", se_params, se_macs, 0))
    if layout.pools_shortcut:
        rows.append(LayerCost(f"{name}.shortcut.pool", "pool", 0, 0, layout.c_in * side_in * side_in))
    if layout.projection is not None:
        # The addition of a projected shortcut is counted with the projection.
        rows.append(conv_cost(f"{name}.shortcut.conv", layout.projection, side, activation=True, kind="shortcut"))
    return rows


def layer_costs(arch: Architecture, *, num_classes: int | None = None) -> list[LayerCost]:
    """Every row in forward order, classifier last (``num_classes`` defaults to the architecture's)."""
    side = arch.resolution // arch.stem.stride
    rows = [conv_cost("stem", arch.stem_conv(), side, activation=True)]
    for j, b, layout in arch.blocks():
        rows += block_costs(f"stages.{j}.{b}", layout, side)
        side //= layout.stride
    head = arch.head_conv()
    if head is not None:
        rows.append(conv_cost("head", head, side, activation=True))
    n = arch.num_classes if num_classes is None else num_classes
    c = arch.out_channels
    rows.append(LayerCost("fc", "classifier", c * n + n, c * n, 0))
    return rows


def costs(arch: Architecture, *, num_classes: int | None = None) -> Costs:
    """Totals of :func:`layer_costs`, classifier apart."""
    rows = layer_costs(arch, num_classes=num_classes)
    backbone = [r for r in rows if r.kind != "classifier"]
    fc = rows[-1]
    return Costs(
        params=sum(r.params for r in backbone),
        macs=sum(r.macs for r in backbone),
        flops_tinynas=sum(r.flops_tinynas for r in backbone),
        classifier_params=fc.params,
        classifier_macs=fc.macs,
        layers=tuple(rows),
    )
