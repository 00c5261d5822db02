"""Parameter and FLOP accounting checked by hand against the spec (section 2).

Every expected number below is written out as explicit per-layer arithmetic
from the spec's rules; no library helper is used to compute an expectation.

Conventions used in the comments (spec section 2, tinynas):

* conv row:  params = c_in*c_out*k*k/g + 2*c_out            (BN affine, no bias)
             macs   = c_in*c_out*k*k/g * H_out*W_out
             flops  = (c_in*c_out*k*k/g + 2*c_out) * H_out*W_out
                      + c_out*H_out*W_out                   (the activation after it;
                                                             for a block's last conv: the
                                                             activation after the add)
* projection shortcut: a 1x1 conv row as above, its "+ c_out*H*W" being the add;
* strided shortcut (any shortcut at all): avg-pool flops c_in*H_in*W_in;
* SE: params of two 1x1 convs with BN, macs b*h + h*b (1x1 pooled map), no tinynas flops;
* classifier: params c*n + n, macs c*n, counted apart.

Each expected layer is a tuple ``(params, macs, flops_tinynas)`` keyed by the
row name the library gives it (the module path in the generated model).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepmad
from conftest import inner_kept
from deepmad import Architecture, Head, Stage, Stem


def _check(arch: Architecture, expected: dict[str, tuple[int, int, int]], classifier: tuple[int, int]) -> None:
    """Compare the library's rows and totals with the hand-worked ones."""
    got = deepmad.costs(arch)
    rows = {r.name: (r.params, r.macs, r.flops_tinynas) for r in got.layers if r.kind != "classifier"}
    assert rows == expected
    assert got.params == sum(p for p, _, _ in expected.values())
    assert got.macs == sum(m for _, m, _ in expected.values())
    assert got.flops_tinynas == sum(f for _, _, f in expected.values())
    assert (got.classifier_params, got.classifier_macs) == classifier
    assert got.params_with_classifier == got.params + classifier[0]
    assert got.macs_with_classifier == got.macs + classifier[1]


# ---------------------------------------------------------------------------
# bottleneck (k1kxk1)
# ---------------------------------------------------------------------------

BOTTLENECK = Architecture(
    stem=Stem(16),
    stages=(
        # c_in == c_out == 16, stride 1, depth 2: the first block still gets a projection
        Stage("bottleneck", channels=16, inner=8, kernel=3, depth=2, stride=1),
        # 16 -> 32, stride 2, depth 2: projection + pool on the first block
        Stage("bottleneck", channels=32, inner=16, kernel=3, depth=2, stride=2),
        # c_in == c_out == 32, stride 2: projection (forced) + pool
        Stage("bottleneck", channels=32, inner=16, kernel=3, depth=1, stride=2),
    ),
    resolution=32,
    num_classes=10,
)


def test_bottleneck_hand_worked():
    expected = {
        # stem: 3x3 s2, 3->16, 32x32 -> 16x16
        "stem": (3*16*9 + 2*16, 3*16*9 * 16*16, (3*16*9 + 2*16)*16*16 + 16*16*16),
        # stage 0 block 0: 16 -> 8 -> 8 -> 16 at 16x16
        "stages.0.0.convs.0": (16*8 + 2*8, 16*8 * 256, (16*8 + 2*8)*256 + 8*256),
        "stages.0.0.convs.1": (8*8*9 + 2*8, 8*8*9 * 256, (8*8*9 + 2*8)*256 + 8*256),
        "stages.0.0.convs.2": (8*16 + 2*16, 8*16 * 256, (8*16 + 2*16)*256 + 16*256),
        # forced projection 16 -> 16 (c_in == c_out), plus the add; no pool (stride 1)
        "stages.0.0.shortcut.conv": (16*16 + 2*16, 16*16 * 256, (16*16 + 2*16)*256 + 16*256),
        # stage 0 block 1: identity shortcut, nothing extra
        "stages.0.1.convs.0": (16*8 + 2*8, 16*8 * 256, (16*8 + 2*8)*256 + 8*256),
        "stages.0.1.convs.1": (8*8*9 + 2*8, 8*8*9 * 256, (8*8*9 + 2*8)*256 + 8*256),
        "stages.0.1.convs.2": (8*16 + 2*16, 8*16 * 256, (8*16 + 2*16)*256 + 16*256),
        # stage 1 block 0: 16 -> 16 (1x1 at 16x16) -> 3x3 s2 (8x8) -> 32 (8x8)
        "stages.1.0.convs.0": (16*16 + 2*16, 16*16 * 256, (16*16 + 2*16)*256 + 16*256),
        "stages.1.0.convs.1": (16*16*9 + 2*16, 16*16*9 * 64, (16*16*9 + 2*16)*64 + 16*64),
        "stages.1.0.convs.2": (16*32 + 2*32, 16*32 * 64, (16*32 + 2*32)*64 + 32*64),
        "stages.1.0.shortcut.pool": (0, 0, 16*16*16),  # c_in * H_in * W_in
        "stages.1.0.shortcut.conv": (16*32 + 2*32, 16*32 * 64, (16*32 + 2*32)*64 + 32*64),
        # stage 1 block 1: 32 -> 16 -> 16 -> 32 at 8x8, identity
        "stages.1.1.convs.0": (32*16 + 2*16, 32*16 * 64, (32*16 + 2*16)*64 + 16*64),
        "stages.1.1.convs.1": (16*16*9 + 2*16, 16*16*9 * 64, (16*16*9 + 2*16)*64 + 16*64),
        "stages.1.1.convs.2": (16*32 + 2*32, 16*32 * 64, (16*32 + 2*32)*64 + 32*64),
        # stage 2 block 0: 32 -> 16 (8x8) -> 3x3 s2 (4x4) -> 32 (4x4)
        "stages.2.0.convs.0": (32*16 + 2*16, 32*16 * 64, (32*16 + 2*16)*64 + 16*64),
        "stages.2.0.convs.1": (16*16*9 + 2*16, 16*16*9 * 16, (16*16*9 + 2*16)*16 + 16*16),
        "stages.2.0.convs.2": (16*32 + 2*32, 16*32 * 16, (16*32 + 2*32)*16 + 32*16),
        "stages.2.0.shortcut.pool": (0, 0, 32*8*8),
        # forced projection 32 -> 32 at 4x4
        "stages.2.0.shortcut.conv": (32*32 + 2*32, 32*32 * 16, (32*32 + 2*32)*16 + 32*16),
    }
    _check(BOTTLENECK, expected, classifier=(32*10 + 10, 32*10))


def test_bottleneck_totals_literal():
    # The sums of the rows above, added up by hand once (a guard on the dict itself).
    c = deepmad.costs(BOTTLENECK)
    # params: stem 464; s0: (144+592+160+288) + (144+592+160); s1: (288+2336+576+576) + (544+2336+576);
    # s2: 544+2336+576+1088
    assert c.params == 464 + 1184 + 896 + 3776 + 3456 + 4544 == 14320
    # macs: stem 432*256; s0b0 (128+576+128+256)*256; s0b1 (128+576+128)*256;
    # s1b0 256*256 + (2304+512+512)*64; s1b1 (512+2304+512)*64; s2 512*64 + (2304+512+1024)*16
    assert c.macs == 110592 + 278528 + 212992 + 278528 + 212992 + 94208 == 1187840


# ---------------------------------------------------------------------------
# basic (kxkx), with a head conv
# ---------------------------------------------------------------------------

BASIC = Architecture(
    stem=Stem(8),
    stages=(
        # c_in == c_out == 8, stride 2: identity shortcut with pool, NO projection
        Stage("basic", channels=8, inner=8, kernel=3, depth=1, stride=2),
        # 8 -> 16, stride 1, depth 2: projection (no pool) on the first block
        Stage("basic", channels=16, inner=16, kernel=3, depth=2, stride=1),
        # 16 -> 24 with inner 16, stride 2: projection + pool
        Stage("basic", channels=24, inner=16, kernel=3, depth=1, stride=2),
    ),
    head=Head(32),
    resolution=32,
    num_classes=10,
)


def test_basic_with_head_hand_worked():
    expected = {
        # stem: 3x3 s2, 3->8, 32 -> 16
        "stem": (3*8*9 + 2*8, 3*8*9 * 256, (3*8*9 + 2*8)*256 + 8*256),
        # stage 0: 3x3 8->8 at 16x16, then 3x3 s2 8->8 to 8x8 (second conv carries the stride)
        "stages.0.0.convs.0": (8*8*9 + 2*8, 8*8*9 * 256, (8*8*9 + 2*8)*256 + 8*256),
        "stages.0.0.convs.1": (8*8*9 + 2*8, 8*8*9 * 64, (8*8*9 + 2*8)*64 + 8*64),
        "stages.0.0.shortcut.pool": (0, 0, 8*16*16),
        # stage 1 block 0: 3x3 8->16, 3x3 16->16 at 8x8, projection 8->16
        "stages.1.0.convs.0": (8*16*9 + 2*16, 8*16*9 * 64, (8*16*9 + 2*16)*64 + 16*64),
        "stages.1.0.convs.1": (16*16*9 + 2*16, 16*16*9 * 64, (16*16*9 + 2*16)*64 + 16*64),
        "stages.1.0.shortcut.conv": (8*16 + 2*16, 8*16 * 64, (8*16 + 2*16)*64 + 16*64),
        # stage 1 block 1: identity
        "stages.1.1.convs.0": (16*16*9 + 2*16, 16*16*9 * 64, (16*16*9 + 2*16)*64 + 16*64),
        "stages.1.1.convs.1": (16*16*9 + 2*16, 16*16*9 * 64, (16*16*9 + 2*16)*64 + 16*64),
        # stage 2: 3x3 16->16 at 8x8, 3x3 s2 16->24 at 4x4, pool 16x8x8, projection 16->24
        "stages.2.0.convs.0": (16*16*9 + 2*16, 16*16*9 * 64, (16*16*9 + 2*16)*64 + 16*64),
        "stages.2.0.convs.1": (16*24*9 + 2*24, 16*24*9 * 16, (16*24*9 + 2*24)*16 + 24*16),
        "stages.2.0.shortcut.pool": (0, 0, 16*8*8),
        "stages.2.0.shortcut.conv": (16*24 + 2*24, 16*24 * 16, (16*24 + 2*24)*16 + 24*16),
        # head: 1x1 24->32 at 4x4
        "head": (24*32 + 2*32, 24*32 * 16, (24*32 + 2*32)*16 + 32*16),
    }
    # classifier on the head width: c*n + n, c*n
    _check(BASIC, expected, classifier=(32*10 + 10, 32*10))


def test_basic_no_projection_when_widths_match():
    kinds = {r.name: r.kind for r in deepmad.costs(BASIC).layers}
    assert "stages.0.0.shortcut.conv" not in kinds
    assert kinds["stages.0.0.shortcut.pool"] == "pool"
    assert kinds["stages.1.0.shortcut.conv"] == "shortcut"
    assert "stages.1.0.shortcut.pool" not in kinds


# ---------------------------------------------------------------------------
# inverted residual (k1dwk1)
# ---------------------------------------------------------------------------

INVERTED = Architecture(
    stem=Stem(16),
    stages=(
        # 16 -> 16, stride 1, depth 2: identity shortcuts, no pool
        Stage("inverted_residual", channels=16, inner=48, kernel=3, depth=2, stride=1),
        # 16 -> 24, stride 2: NO shortcut at all on the first block (no projection, no pool)
        Stage("inverted_residual", channels=24, inner=64, kernel=5, depth=2, stride=2),
        # 24 -> 24, stride 2: identity with pool
        Stage("inverted_residual", channels=24, inner=96, kernel=3, depth=1, stride=2),
    ),
    resolution=32,
    num_classes=10,
)


def test_inverted_residual_hand_worked():
    # one block of stage 0 (16 -> 48 -> dw3x3 -> 16 at 16x16)
    s0 = {
        "convs.0": (16*48 + 2*48, 16*48 * 256, (16*48 + 2*48)*256 + 48*256),
        # depthwise: weights = 48*48*9/48 = 48*9
        "convs.1": (48*9 + 2*48, 48*9 * 256, (48*9 + 2*48)*256 + 48*256),
        "convs.2": (48*16 + 2*16, 48*16 * 256, (48*16 + 2*16)*256 + 16*256),
    }
    expected = {
        "stem": (3*16*9 + 2*16, 3*16*9 * 256, (3*16*9 + 2*16)*256 + 16*256),
        **{f"stages.0.0.{k}": v for k, v in s0.items()},
        **{f"stages.0.1.{k}": v for k, v in s0.items()},
        # stage 1 block 0: 1x1 16->64 at 16x16, dw5x5 s2 on 64 to 8x8, 1x1 64->24 at 8x8
        "stages.1.0.convs.0": (16*64 + 2*64, 16*64 * 256, (16*64 + 2*64)*256 + 64*256),
        "stages.1.0.convs.1": (64*25 + 2*64, 64*25 * 64, (64*25 + 2*64)*64 + 64*64),
        "stages.1.0.convs.2": (64*24 + 2*24, 64*24 * 64, (64*24 + 2*24)*64 + 24*64),
        # stage 1 block 1: 24 -> 64 -> dw5x5 -> 24 at 8x8
        "stages.1.1.convs.0": (24*64 + 2*64, 24*64 * 64, (24*64 + 2*64)*64 + 64*64),
        "stages.1.1.convs.1": (64*25 + 2*64, 64*25 * 64, (64*25 + 2*64)*64 + 64*64),
        "stages.1.1.convs.2": (64*24 + 2*24, 64*24 * 64, (64*24 + 2*24)*64 + 24*64),
        # stage 2: 1x1 24->96 at 8x8, dw3x3 s2 to 4x4, 1x1 96->24, identity with pool 24x8x8
        "stages.2.0.convs.0": (24*96 + 2*96, 24*96 * 64, (24*96 + 2*96)*64 + 96*64),
        "stages.2.0.convs.1": (96*9 + 2*96, 96*9 * 16, (96*9 + 2*96)*16 + 96*16),
        "stages.2.0.convs.2": (96*24 + 2*24, 96*24 * 16, (96*24 + 2*24)*16 + 24*16),
        "stages.2.0.shortcut.pool": (0, 0, 24*8*8),
    }
    _check(INVERTED, expected, classifier=(24*10 + 10, 24*10))


def test_inverted_residual_shortcuts():
    names = {r.name for r in deepmad.costs(INVERTED).layers}
    assert not any("shortcut.conv" in n for n in names)  # never a projection
    assert "stages.1.0.shortcut.pool" not in names  # widths differ: no shortcut, so no pool
    assert "stages.2.0.shortcut.pool" in names


# ---------------------------------------------------------------------------
# inverted residual with squeeze-excite (k1dwsek1), with a head conv
# ---------------------------------------------------------------------------

INVERTED_SE = Architecture(
    stem=Stem(8),
    stages=(
        # 8 -> 8, stride 2: identity with pool; SE hidden max(1, round(32/4)//8)*8 = 8
        Stage("inverted_residual_se", channels=8, inner=32, kernel=3, depth=1, stride=2),
        # 8 -> 16, stride 1, depth 2: first block without shortcut; SE hidden max(1, 12//8)*8 = 8
        Stage("inverted_residual_se", channels=16, inner=48, kernel=3, depth=2, stride=1),
        # 16 -> 32, stride 2: no shortcut; SE hidden max(1, 24//8)*8 = 24
        Stage("inverted_residual_se", channels=32, inner=96, kernel=3, depth=1, stride=2),
    ),
    head=Head(64),
    resolution=32,
    num_classes=10,
)


def test_inverted_residual_se_hand_worked():
    se48 = (48*8 + 2*8 + 8*48 + 2*48, 48*8 + 8*48, 0)
    expected = {
        "stem": (3*8*9 + 2*8, 3*8*9 * 256, (3*8*9 + 2*8)*256 + 8*256),
        # stage 0: 1x1 8->32 at 16x16, dw3x3 s2 on 32 to 8x8, SE(32, 8), 1x1 32->8, pool 8x16x16
        "stages.0.0.convs.0": (8*32 + 2*32, 8*32 * 256, (8*32 + 2*32)*256 + 32*256),
        "stages.0.0.convs.1": (32*9 + 2*32, 32*9 * 64, (32*9 + 2*32)*64 + 32*64),
        "stages.0.0.se": (32*8 + 2*8 + 8*32 + 2*32, 32*8 + 8*32, 0),
        "stages.0.0.convs.2": (32*8 + 2*8, 32*8 * 64, (32*8 + 2*8)*64 + 8*64),
        "stages.0.0.shortcut.pool": (0, 0, 8*16*16),
        # stage 1 block 0: 8 -> 48 -> dw3x3 -> SE(48, 8) -> 16 at 8x8, no shortcut
        "stages.1.0.convs.0": (8*48 + 2*48, 8*48 * 64, (8*48 + 2*48)*64 + 48*64),
        "stages.1.0.convs.1": (48*9 + 2*48, 48*9 * 64, (48*9 + 2*48)*64 + 48*64),
        "stages.1.0.se": se48,
        "stages.1.0.convs.2": (48*16 + 2*16, 48*16 * 64, (48*16 + 2*16)*64 + 16*64),
        # stage 1 block 1: 16 -> 48 -> ... -> 16, identity at stride 1 (no pool)
        "stages.1.1.convs.0": (16*48 + 2*48, 16*48 * 64, (16*48 + 2*48)*64 + 48*64),
        "stages.1.1.convs.1": (48*9 + 2*48, 48*9 * 64, (48*9 + 2*48)*64 + 48*64),
        "stages.1.1.se": se48,
        "stages.1.1.convs.2": (48*16 + 2*16, 48*16 * 64, (48*16 + 2*16)*64 + 16*64),
        # stage 2: 1x1 16->96 at 8x8, dw3x3 s2 to 4x4, SE(96, 24), 1x1 96->32, no shortcut
        "stages.2.0.convs.0": (16*96 + 2*96, 16*96 * 64, (16*96 + 2*96)*64 + 96*64),
        "stages.2.0.convs.1": (96*9 + 2*96, 96*9 * 16, (96*9 + 2*96)*16 + 96*16),
        "stages.2.0.se": (96*24 + 2*24 + 24*96 + 2*96, 96*24 + 24*96, 0),
        "stages.2.0.convs.2": (96*32 + 2*32, 96*32 * 16, (96*32 + 2*32)*16 + 32*16),
        # head: 1x1 32->64 at 4x4
        "head": (32*64 + 2*64, 32*64 * 16, (32*64 + 2*64)*16 + 64*16),
    }
    _check(INVERTED_SE, expected, classifier=(64*10 + 10, 64*10))


def test_se_is_the_only_difference_between_inverted_residual_types():
    plain = dataclasses.replace(
        INVERTED_SE, stages=tuple(dataclasses.replace(s, block="inverted_residual") for s in INVERTED_SE.stages)
    )
    a, b = deepmad.costs(INVERTED_SE), deepmad.costs(plain)
    # SE(32,8) + 2 * SE(48,8) + SE(96,24)
    se_params = (32*8 + 16 + 8*32 + 64) + 2*(48*8 + 16 + 8*48 + 96) + (96*24 + 48 + 24*96 + 192)
    se_macs = (32*8 + 8*32) + 2*(48*8 + 8*48) + (96*24 + 24*96)
    assert a.params - b.params == se_params
    assert a.macs - b.macs == se_macs
    assert a.flops_tinynas == b.flops_tinynas  # SE flops are not counted in tinynas


@pytest.mark.parametrize(
    "inner, hidden",
    [
        (8, 8),      # round(2) // 8 = 0 -> max(1, 0) * 8
        (32, 8),     # round(8) // 8 = 1
        (64, 16),    # round(16) // 8 = 2
        (96, 24),    # round(24) // 8 = 3
        (100, 24),   # round(25) // 8 = 3
        (130, 32),   # round(32.5) = 32 (either rounding) // 8 = 4
        (256, 64),   # round(64) // 8 = 8
    ],
)
def test_se_hidden_width(inner, hidden):
    arch = Architecture(
        stem=Stem(8),
        stages=(Stage("inverted_residual_se", channels=8, inner=inner, kernel=3, depth=1, stride=1),),
        resolution=8,
    )
    se = next(r for r in deepmad.costs(arch).layers if r.kind == "se")
    assert se.params == inner*hidden + 2*hidden + hidden*inner + 2*inner
    assert se.macs == inner*hidden + hidden*inner
    assert se.flops_tinynas == 0


def test_classifier_num_classes_override():
    c = deepmad.costs(BASIC, num_classes=1000)
    assert (c.classifier_params, c.classifier_macs) == (32*1000 + 1000, 32*1000)
    # the backbone does not depend on the classifier
    assert c.params == deepmad.costs(BASIC).params


# ---------------------------------------------------------------------------
# properties on random small architectures
# ---------------------------------------------------------------------------

BLOCKS = ("bottleneck", "basic", "inverted_residual", "inverted_residual_se", "plain", "large_kernel")


@st.composite
def architectures(draw):
    block = draw(st.sampled_from(BLOCKS))
    n = draw(st.integers(1, 4))
    stages = tuple(
        inner_kept(Stage,
            block=block,
            channels=draw(st.integers(1, 40)),
            inner=draw(st.integers(1, 64)),
            kernel=draw(st.sampled_from((1, 3, 5, 7))),
            depth=draw(st.integers(1, 3)),
            stride=draw(st.sampled_from((1, 2))),
        )
        for _ in range(n)
    )
    stem = Stem(draw(st.integers(1, 32)), kernel=draw(st.sampled_from((3, 5))), stride=2)
    head = draw(st.one_of(st.none(), st.builds(Head, st.integers(1, 64))))
    total_stride = 2 * math.prod(s.stride for s in stages)
    resolution = total_stride * draw(st.integers(1, 4))
    return Architecture(stem=stem, stages=stages, head=head, resolution=resolution,
                        num_classes=draw(st.integers(1, 20)))


def _reference(arch: Architecture) -> tuple[int, int, int]:
    """An independent spec-section-2 counter: (params, macs, flops_tinynas) without classifier."""
    total = [0, 0, 0]

    def conv(c_in, c_out, k, side_out, groups=1, act=True):
        w = c_in * c_out * k * k // groups
        area = side_out * side_out
        total[0] += w + 2 * c_out
        total[1] += w * area
        total[2] += (w + 2 * c_out) * area + (c_out * area if act else 0)  # conv+BN, then activation (or add)

    side = arch.resolution // 2
    conv(arch.in_channels, arch.stem.channels, arch.stem.kernel, side)
    c_prev = arch.stem.channels
    for stage in arch.stages:
        for i in range(stage.depth):
            c_in, s = (c_prev, stage.stride) if i == 0 else (stage.channels, 1)
            c, b, k = stage.channels, stage.inner, stage.kernel
            out = side // s
            if stage.block == "bottleneck":
                conv(c_in, b, 1, side)
                conv(b, b, k, out)
                conv(b, c, 1, out)
                has_shortcut, proj = True, i == 0 or c_in != c
            elif stage.block == "basic":
                conv(c_in, b, k, side)
                conv(b, c, k, out)
                has_shortcut, proj = True, c_in != c
            elif stage.block == "plain":
                conv(c_in, c, k, out)
                has_shortcut, proj = False, False
            elif stage.block == "large_kernel":  # depthwise on the input (strided), 1x1 up, GELU, 1x1 down; no act after the add
                conv(c_in, c_in, k, out, groups=c_in, act=False)
                conv(c_in, b, 1, out)
                conv(b, c, 1, out, act=False)
                has_shortcut, proj = True, c_in != c
            else:
                assert stage.block.startswith("inverted_residual")
                conv(c_in, b, 1, side)
                conv(b, b, k, out, groups=b)
                if stage.block == "inverted_residual_se":
                    h = max(1, round(b / 4) // 8) * 8
                    total[0] += (b * h + 2 * h) + (h * b + 2 * b)
                    total[1] += b * h + h * b
                conv(b, c, 1, out)
                has_shortcut, proj = c_in == c, False
            if has_shortcut and s == 2:
                total[2] += c_in * side * side
            if proj:
                conv(c_in, c, 1, out)
            side = out
        c_prev = stage.channels
    if arch.head is not None:
        conv(c_prev, arch.head.channels, 1, side)
    return tuple(total)


def _repeated_block(block: str, c: int, b: int, k: int, side: int) -> tuple[int, int, int]:
    """(params, macs, flops_tinynas) of one c -> c stride-1 block (identity shortcut) at ``side``."""
    a = side * side
    if block == "bottleneck":
        p = (c*b + 2*b) + (b*b*k*k + 2*b) + (b*c + 2*c)
        m = (c*b + b*b*k*k + b*c) * a
        f = (p + b + b + c) * a
    elif block == "basic":
        p = (c*b*k*k + 2*b) + (b*c*k*k + 2*c)
        m = (c*b*k*k + b*c*k*k) * a
        f = (p + b + c) * a
    elif block == "plain":
        p = c*c*k*k + 2*c
        m = c*c*k*k * a
        f = (p + c) * a
    elif block == "large_kernel":
        p = (c*k*k + 2*c) + (c*b + 2*b) + (b*c + 2*c)
        m = (c*k*k + c*b + b*c) * a
        f = (p + b) * a  # the activation after the 1x1 up only
    else:
        assert block.startswith("inverted_residual")
        p = (c*b + 2*b) + (b*k*k + 2*b) + (b*c + 2*c)
        m = (c*b + b*k*k + b*c) * a
        f = (p + b + b + c) * a
        if block == "inverted_residual_se":
            h = max(1, round(b / 4) // 8) * 8
            p += b*h + 2*h + h*b + 2*b
            m += b*h + h*b
    return p, m, f


FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(architectures())
def test_totals_are_row_sums_and_match_reference(arch):
    c = deepmad.costs(arch)
    backbone = [r for r in c.layers if r.kind != "classifier"]
    assert c.params == sum(r.params for r in backbone)
    assert c.macs == sum(r.macs for r in backbone)
    assert c.flops_tinynas == sum(r.flops_tinynas for r in backbone)
    assert (c.params, c.macs, c.flops_tinynas) == _reference(arch)
    n, ch = arch.num_classes, arch.out_channels
    assert (c.classifier_params, c.classifier_macs) == (ch*n + n, ch*n)


@FAST
@given(architectures(), st.data())
def test_one_more_block_adds_one_repeated_block(arch, data):
    j = data.draw(st.integers(0, len(arch.stages) - 1))
    stage = arch.stages[j]
    deeper = dataclasses.replace(
        arch, stages=arch.stages[:j] + (dataclasses.replace(stage, depth=stage.depth + 1),) + arch.stages[j + 1:]
    )
    before, after = deepmad.costs(arch), deepmad.costs(deeper)
    side = arch.resolution // (2 * math.prod(s.stride for s in arch.stages[: j + 1]))
    dp, dm, df = _repeated_block(stage.block, stage.channels, stage.inner, stage.kernel, side)
    assert after.params - before.params == dp
    assert after.macs - before.macs == dm
    assert after.flops_tinynas - before.flops_tinynas == df
    # and the same params read off the repeated block's layout
    c_in = ([arch.stem.channels] + [s.channels for s in arch.stages])[j]
    rest = dataclasses.replace(stage, depth=2).layouts(c_in)[1]
    convs = list(rest.convs) + (list(rest.se.convs) if rest.se else [])
    assert rest.shortcut == ("none" if stage.block == "plain" else "identity") and rest.stride == 1
    assert dp == sum(cv.c_in * cv.c_out * cv.kernel**2 // cv.groups + 2 * cv.c_out for cv in convs)


@FAST
@given(architectures())
def test_doubling_resolution(arch):
    big = dataclasses.replace(arch, resolution=2 * arch.resolution)
    a, b = deepmad.costs(arch), deepmad.costs(big)
    assert b.params == a.params
    assert b.flops_tinynas == 4 * a.flops_tinynas
    # every conv's macs scale with the map area; SE convs run on the pooled 1x1 map
    rows_a = {r.name: r for r in a.layers}
    for r in b.layers:
        if r.kind in ("se", "classifier"):
            assert r.macs == rows_a[r.name].macs
        else:
            assert r.macs == 4 * rows_a[r.name].macs
    se_macs = sum(r.macs for r in a.layers if r.kind == "se")
    assert b.macs - se_macs == 4 * (a.macs - se_macs)
    if arch.stages[0].block != "inverted_residual_se":
        assert b.macs == 4 * a.macs
    assert (b.classifier_params, b.classifier_macs) == (a.classifier_params, a.classifier_macs)
