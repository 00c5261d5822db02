"""DeepMAD scoring checked by hand against the spec (sections 3-4).

Layer widths, scoring prefixes, S_i, H_i, rho_i, the weighted entropy, the
depth penalty and the objective are worked out below with explicit
``math.log`` terms from the spec's rules; the library is only called to get
what it computes.

Spec recap:
  widths: stem 3*k^2; bottleneck c_in, b*k^2, b; basic c_in*k^2, b*k^2;
          inverted residual c_in, k^2 (depthwise), b; head c_in.
  prefixes end right before every stride-2 stage (not the stem) and at the
  end (after the head); S_i = 1/2 * sum ln(w) from the input (cumulative);
  H_i = ln(c_i * r_i^2) * S_i; rho_i = D_i / exp(mean ln w) = D_i exp(-2 S_i / D_i);
  objective = sum alpha_i H_i - beta * exp(pstdev(L_j, j in P)),
  alpha = (1, ..., 1, 8), beta = 10, P = last three stages (bottleneck, basic)
  or all stages (inverted residuals).
"""

from __future__ import annotations

import math

import pytest

import deepmad
from deepmad import Architecture, Head, Scoring, Stage, Stem

ln = math.log
REL = 1e-12


def approx(x):
    return pytest.approx(x, rel=REL)


def _rho(widths):
    """rho = D / geometric-mean width (the first form in spec section 4)."""
    d = len(widths)
    return d / math.exp(sum(ln(w) for w in widths) / d)


def _check_prefixes(score, expected):
    """expected: list of (last_stage, widths covered, c_i, r_i)."""
    assert len(score.prefixes) == len(expected)
    for p, (last_stage, widths, c, r) in zip(score.prefixes, expected):
        s = 0.5 * sum(ln(w) for w in widths)
        assert p.last_stage == last_stage
        assert p.layers == len(widths)
        assert p.channels == c
        assert p.side == approx(r)
        assert p.log_width_sum == approx(s)
        assert p.entropy == approx(ln(c * r * r) * s)
        assert p.rho == approx(_rho(widths))
        assert p.rho == approx(len(widths) * math.exp(-2 * s / len(widths)))


# ---------------------------------------------------------------------------
# bottleneck: stride pattern (1, 2, 1, 2); stage 0 merges with the stem and
# stage 2 (stride 1) merges into the prefix of stage 1
# ---------------------------------------------------------------------------

BOTTLENECK = Architecture(
    stem=Stem(16),
    stages=(
        Stage("bottleneck", channels=16, inner=8, kernel=3, depth=2, stride=1),
        Stage("bottleneck", channels=32, inner=16, kernel=3, depth=1, stride=2),
        Stage("bottleneck", channels=32, inner=8, kernel=5, depth=3, stride=1),
        Stage("bottleneck", channels=64, inner=32, kernel=3, depth=2, stride=2),
    ),
    resolution=32,
)

B_STEM = [3*9]                                   # 27
B_S0 = [16, 8*9, 8] + [16, 8*9, 8]               # c_in, b*k^2, b; twice
B_S1 = [16, 16*9, 16]                            # first block, c_in = 16
B_S2 = [32, 8*25, 8] * 3                         # 32, 200, 8 three times
B_S3 = [32, 32*9, 32] + [64, 32*9, 32]           # first block c_in 32, then 64


def test_bottleneck_layer_widths():
    expected = ([(-1, 27)] + [(0, w) for w in B_S0] + [(1, w) for w in B_S1]
                + [(2, w) for w in B_S2] + [(3, w) for w in B_S3])
    assert deepmad.layer_widths(BOTTLENECK) == expected


def test_bottleneck_score():
    sc = deepmad.score(BOTTLENECK)
    p0 = B_STEM + B_S0                 # stem + stage 0, ends before stage 1 (stride 2): 16 ch, 32/2
    p1 = p0 + B_S1 + B_S2              # stages 1 and 2, ends before stage 3: 32 ch, 32/4
    p2 = p1 + B_S3                     # to the end: 64 ch, 32/8
    _check_prefixes(sc, [(0, p0, 16, 16), (2, p1, 32, 8), (3, p2, 64, 4)])
    assert [p.layers for p in sc.prefixes] == [1 + 6, 1 + 6 + 3 + 9, 1 + 6 + 3 + 9 + 6]

    s0 = 0.5 * (ln(27) + 2 * (ln(16) + ln(72) + ln(8)))
    s1 = s0 + 0.5 * (ln(16) + ln(144) + ln(16) + 3 * (ln(32) + ln(200) + ln(8)))
    s2 = s1 + 0.5 * (ln(32) + ln(288) + ln(32) + ln(64) + ln(288) + ln(32))
    h = [ln(16 * 16**2) * s0, ln(32 * 8**2) * s1, ln(64 * 4**2) * s2]
    assert sc.alpha == (1, 1, 8)
    assert sc.entropy == approx(1 * h[0] + 1 * h[1] + 8 * h[2])
    # penalty over the last three stages: depths (1, 3, 2), mean 2, pstdev sqrt(2/3)
    assert sc.penalty == approx(10 * math.exp(math.sqrt(2 / 3)))
    assert sc.objective == approx(h[0] + h[1] + 8 * h[2] - 10 * math.exp(math.sqrt(2 / 3)))
    rhos = [7 * math.exp(-2 * s0 / 7), 19 * math.exp(-2 * s1 / 19), 25 * math.exp(-2 * s2 / 25)]
    assert sc.rho == approx(max(rhos))
    assert [p.rho for p in sc.prefixes] == [approx(r) for r in rhos]
    assert sc.layers == 25
    assert sc.widths == tuple(p2)


def test_bottleneck_custom_scoring():
    s0 = 0.5 * (ln(27) + 2 * (ln(16) + ln(72) + ln(8)))
    s1 = s0 + 0.5 * (ln(16) + ln(144) + ln(16) + 3 * (ln(32) + ln(200) + ln(8)))
    s2 = s1 + 0.5 * (ln(32) + ln(288) + ln(32) + ln(64) + ln(288) + ln(32))
    h = [ln(16 * 16**2) * s0, ln(32 * 8**2) * s1, ln(64 * 4**2) * s2]
    # custom alpha, beta and penalty stages (0, 1): depths (2, 1) -> pstdev 0.5
    sc = deepmad.score(BOTTLENECK, Scoring(alpha=(2, 0.5, 3), beta=3.5, penalty_stages=(0, 1)))
    assert sc.alpha == (2, 0.5, 3)
    assert sc.entropy == approx(2 * h[0] + 0.5 * h[1] + 3 * h[2])
    assert sc.penalty == approx(3.5 * math.exp(0.5))
    assert sc.objective == approx(2 * h[0] + 0.5 * h[1] + 3 * h[2] - 3.5 * math.exp(0.5))
    # all four stages: depths (2, 1, 3, 2), mean 2, pstdev sqrt(2/4)
    sc = deepmad.score(BOTTLENECK, Scoring(penalty_stages=(0, 1, 2, 3)))
    assert sc.penalty == approx(10 * math.exp(math.sqrt(0.5)))
    # beta 0: no penalty, objective = entropy
    sc = deepmad.score(BOTTLENECK, Scoring(beta=0))
    assert sc.penalty == 0
    assert sc.objective == approx(h[0] + h[1] + 8 * h[2])
    # equal depths: pstdev 0, penalty = beta * exp(0)
    sc = deepmad.score(BOTTLENECK, Scoring(penalty_stages=(0, 3)))
    assert sc.penalty == approx(10.0)


def test_bottleneck_scoring_resolution_224():
    sc = deepmad.score(BOTTLENECK, Scoring(resolution=224))
    p0 = B_STEM + B_S0
    p1 = p0 + B_S1 + B_S2
    p2 = p1 + B_S3
    # r_i = 224 / 2, 224 / 4, 224 / 8; S_i and rho_i do not change
    _check_prefixes(sc, [(0, p0, 16, 112), (2, p1, 32, 56), (3, p2, 64, 28)])
    base = deepmad.score(BOTTLENECK)
    assert [p.rho for p in sc.prefixes] == [p.rho for p in base.prefixes]
    assert [p.log_width_sum for p in sc.prefixes] == [p.log_width_sum for p in base.prefixes]
    assert sc.penalty == base.penalty


# ---------------------------------------------------------------------------
# basic with a head: stride pattern (2, 2, 1, 2); prefix 1 is the stem alone,
# stage 2 merges into the prefix of stage 1, the last prefix takes the head
# ---------------------------------------------------------------------------

BASIC = Architecture(
    stem=Stem(8),
    stages=(
        Stage("basic", channels=8, inner=8, kernel=3, depth=1, stride=2),
        Stage("basic", channels=16, inner=16, kernel=3, depth=2, stride=2),
        Stage("basic", channels=16, inner=8, kernel=3, depth=1, stride=1),
        Stage("basic", channels=32, inner=16, kernel=5, depth=2, stride=2),
    ),
    head=Head(64),
    resolution=64,
)

K_S0 = [8*9, 8*9]                                # c_in*k^2, b*k^2
K_S1 = [8*9, 16*9] + [16*9, 16*9]
K_S2 = [16*9, 8*9]
K_S3 = [16*25, 16*25] + [32*25, 16*25]
K_HEAD = [32]                                    # head c_in


def test_basic_layer_widths():
    expected = ([(-1, 27)] + [(0, w) for w in K_S0] + [(1, w) for w in K_S1]
                + [(2, w) for w in K_S2] + [(3, w) for w in K_S3] + [(4, 32)])
    assert deepmad.layer_widths(BASIC) == expected


def test_basic_with_head_score():
    sc = deepmad.score(BASIC)
    p0 = [27]                            # stem alone: 8 ch at 64/2
    p1 = p0 + K_S0                       # stage 0: 8 ch at 64/4
    p2 = p1 + K_S1 + K_S2                # stages 1, 2: 16 ch at 64/8
    p3 = p2 + K_S3 + K_HEAD              # stage 3 and head: head width 64 at 64/16
    _check_prefixes(sc, [(-1, p0, 8, 32), (0, p1, 8, 16), (2, p2, 16, 8), (3, p3, 64, 4)])
    assert [p.layers for p in sc.prefixes] == [1, 3, 9, 14]

    s0 = 0.5 * ln(27)
    s1 = s0 + 0.5 * (ln(72) + ln(72))
    s2 = s1 + 0.5 * (ln(72) + ln(144) + ln(144) + ln(144) + ln(144) + ln(72))
    s3 = s2 + 0.5 * (ln(400) + ln(400) + ln(800) + ln(400) + ln(32))
    h = [ln(8 * 32**2) * s0, ln(8 * 16**2) * s1, ln(16 * 8**2) * s2, ln(64 * 4**2) * s3]
    assert sc.alpha == (1, 1, 1, 8)
    entropy = h[0] + h[1] + h[2] + 8 * h[3]
    # last three stages: depths (2, 1, 2), mean 5/3, pstdev sqrt(2/9)
    penalty = 10 * math.exp(math.sqrt(2 / 9))
    assert sc.entropy == approx(entropy)
    assert sc.penalty == approx(penalty)
    assert sc.objective == approx(entropy - penalty)
    rhos = [1 * math.exp(-2 * s0 / 1), 3 * math.exp(-2 * s1 / 3), 9 * math.exp(-2 * s2 / 9),
            14 * math.exp(-2 * s3 / 14)]
    assert sc.rho == approx(max(rhos))
    assert sc.layers == 14


def test_head_width_is_last_prefix_channels():
    sc = deepmad.score(BASIC)
    assert sc.prefixes[-1].channels == 64
    # the levels themselves report the last stage's width (before the head)
    assert BASIC.levels()[-1].channels == 32
    no_head = Architecture(stem=BASIC.stem, stages=BASIC.stages, resolution=64)
    assert deepmad.score(no_head).prefixes[-1].channels == 32


def test_basic_custom_alpha_and_resolution():
    s0 = 0.5 * ln(27)
    s1 = s0 + 0.5 * (ln(72) + ln(72))
    s2 = s1 + 0.5 * (ln(72) + 4 * ln(144) + ln(72))
    s3 = s2 + 0.5 * (3 * ln(400) + ln(800) + ln(32))
    # scoring at 224 on a network designed at 64: r = 112, 56, 28, 14
    h = [ln(8 * 112**2) * s0, ln(8 * 56**2) * s1, ln(16 * 28**2) * s2, ln(64 * 14**2) * s3]
    sc = deepmad.score(BASIC, Scoring(alpha=(0, 1, 2, 3), resolution=224))
    assert [p.side for p in sc.prefixes] == [approx(112), approx(56), approx(28), approx(14)]
    assert sc.entropy == approx(0 * h[0] + 1 * h[1] + 2 * h[2] + 3 * h[3])


# ---------------------------------------------------------------------------
# inverted residual: stride pattern (1, 2, 2, 2, 1), penalty over all stages
# ---------------------------------------------------------------------------

INVERTED = Architecture(
    stem=Stem(8),
    stages=(
        Stage("inverted_residual", channels=8, inner=16, kernel=3, depth=1, stride=1),
        Stage("inverted_residual", channels=16, inner=48, kernel=3, depth=2, stride=2),
        Stage("inverted_residual", channels=24, inner=72, kernel=5, depth=2, stride=2),
        Stage("inverted_residual", channels=32, inner=96, kernel=3, depth=3, stride=2),
        Stage("inverted_residual", channels=32, inner=128, kernel=3, depth=1, stride=1),
    ),
    resolution=32,
)

I_S0 = [8, 9, 16]                                # c_in, k^2 (depthwise), b
I_S1 = [8, 9, 48] + [16, 9, 48]
I_S2 = [16, 25, 72] + [24, 25, 72]
I_S3 = [24, 9, 96] + [32, 9, 96] * 2
I_S4 = [32, 9, 128]


def test_inverted_residual_layer_widths():
    expected = ([(-1, 27)] + [(0, w) for w in I_S0] + [(1, w) for w in I_S1] + [(2, w) for w in I_S2]
                + [(3, w) for w in I_S3] + [(4, w) for w in I_S4])
    assert deepmad.layer_widths(INVERTED) == expected


def test_inverted_residual_score():
    sc = deepmad.score(INVERTED)
    p0 = [27] + I_S0               # stem + stage 0 (stride 1): 8 ch at 16
    p1 = p0 + I_S1                 # 16 ch at 8
    p2 = p1 + I_S2                 # 24 ch at 4
    p3 = p2 + I_S3 + I_S4          # stages 3 and 4 (stride 1): 32 ch at 2
    _check_prefixes(sc, [(0, p0, 8, 16), (1, p1, 16, 8), (2, p2, 24, 4), (4, p3, 32, 2)])
    assert [p.layers for p in sc.prefixes] == [4, 10, 16, 28]

    s0 = 0.5 * (ln(27) + ln(8) + ln(9) + ln(16))
    s1 = s0 + 0.5 * (ln(8) + ln(9) + ln(48) + ln(16) + ln(9) + ln(48))
    s2 = s1 + 0.5 * (ln(16) + ln(25) + ln(72) + ln(24) + ln(25) + ln(72))
    s3 = s2 + 0.5 * (ln(24) + ln(9) + ln(96) + 2 * (ln(32) + ln(9) + ln(96)) + ln(32) + ln(9) + ln(128))
    h = [ln(8 * 16**2) * s0, ln(16 * 8**2) * s1, ln(24 * 4**2) * s2, ln(32 * 2**2) * s3]
    entropy = h[0] + h[1] + h[2] + 8 * h[3]
    # all five stages: depths (1, 2, 2, 3, 1), mean 1.8, variance 2.8 / 5 = 0.56
    penalty = 10 * math.exp(math.sqrt(0.56))
    assert sc.alpha == (1, 1, 1, 8)
    assert sc.entropy == approx(entropy)
    assert sc.penalty == approx(penalty)
    assert sc.objective == approx(entropy - penalty)
    rhos = [4 * math.exp(-2 * s0 / 4), 10 * math.exp(-2 * s1 / 10), 16 * math.exp(-2 * s2 / 16),
            28 * math.exp(-2 * s3 / 28)]
    assert sc.rho == approx(max(rhos))


def test_inverted_residual_scoring_resolution_224():
    sc = deepmad.score(INVERTED, Scoring(resolution=224))
    p0 = [27] + I_S0
    p1 = p0 + I_S1
    p2 = p1 + I_S2
    p3 = p2 + I_S3 + I_S4
    _check_prefixes(sc, [(0, p0, 8, 112), (1, p1, 16, 56), (2, p2, 24, 28), (4, p3, 32, 14)])


def test_inverted_residual_last3_penalty_override():
    # stages 2, 3, 4: depths (2, 3, 1), mean 2, pstdev sqrt(2/3)
    sc = deepmad.score(INVERTED, Scoring(penalty_stages=(2, 3, 4), beta=1.5))
    assert sc.penalty == approx(1.5 * math.exp(math.sqrt(2 / 3)))


# ---------------------------------------------------------------------------
# inverted residual with SE and a head: stride pattern (2, 1, 2)
# ---------------------------------------------------------------------------

INVERTED_SE = Architecture(
    stem=Stem(16),
    stages=(
        Stage("inverted_residual_se", channels=16, inner=64, kernel=3, depth=1, stride=2),
        Stage("inverted_residual_se", channels=24, inner=96, kernel=5, depth=2, stride=1),
        Stage("inverted_residual_se", channels=40, inner=160, kernel=3, depth=2, stride=2),
    ),
    head=Head(128),
    resolution=32,
)

E_S0 = [16, 9, 64]                               # SE convs are not layers
E_S1 = [16, 25, 96] + [24, 25, 96]
E_S2 = [24, 9, 160] + [40, 9, 160]
E_HEAD = [40]


def test_inverted_residual_se_layer_widths():
    expected = ([(-1, 27)] + [(0, w) for w in E_S0] + [(1, w) for w in E_S1]
                + [(2, w) for w in E_S2] + [(3, 40)])
    assert deepmad.layer_widths(INVERTED_SE) == expected


def test_inverted_residual_se_score():
    sc = deepmad.score(INVERTED_SE)
    p0 = [27]                          # stem alone: 16 ch at 16
    p1 = p0 + E_S0 + E_S1              # stages 0, 1: 24 ch at 8
    p2 = p1 + E_S2 + E_HEAD            # stage 2 and head: 128 ch at 4
    _check_prefixes(sc, [(-1, p0, 16, 16), (1, p1, 24, 8), (2, p2, 128, 4)])
    assert [p.layers for p in sc.prefixes] == [1, 10, 17]

    s0 = 0.5 * ln(27)
    s1 = s0 + 0.5 * (ln(16) + ln(9) + ln(64) + ln(16) + ln(25) + ln(96) + ln(24) + ln(25) + ln(96))
    s2 = s1 + 0.5 * (ln(24) + ln(9) + ln(160) + ln(40) + ln(9) + ln(160) + ln(40))
    h = [ln(16 * 16**2) * s0, ln(24 * 8**2) * s1, ln(128 * 4**2) * s2]
    entropy = h[0] + h[1] + 8 * h[2]
    # all three stages: depths (1, 2, 2), pstdev sqrt(2/9)
    penalty = 10 * math.exp(math.sqrt(2 / 9))
    assert sc.entropy == approx(entropy)
    assert sc.penalty == approx(penalty)
    assert sc.objective == approx(entropy - penalty)
    rhos = [1 * math.exp(-2 * s0), 10 * math.exp(-2 * s1 / 10), 17 * math.exp(-2 * s2 / 17)]
    assert sc.rho == approx(max(rhos))
    assert sc.layers == 17


def test_se_and_plain_inverted_residual_score_the_same():
    plain = Architecture(
        stem=INVERTED_SE.stem,
        stages=tuple(Stage("inverted_residual", s.channels, s.inner, s.kernel, s.depth, s.stride)
                     for s in INVERTED_SE.stages),
        head=INVERTED_SE.head,
        resolution=32,
    )
    a, b = deepmad.score(INVERTED_SE), deepmad.score(plain)
    assert a.objective == b.objective
    assert a.widths == b.widths


# ---------------------------------------------------------------------------
# errors and edge cases
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [(1, 8), (1, 1, 1, 8), ()])
def test_wrong_alpha_length(alpha):
    # BOTTLENECK has 3 prefixes
    with pytest.raises(deepmad.InputError) as exc:
        deepmad.score(BOTTLENECK, Scoring(alpha=alpha))
    assert exc.value.field == "alpha"


def test_penalty_stage_out_of_range():
    with pytest.raises(deepmad.InputError):
        deepmad.score(BOTTLENECK, Scoring(penalty_stages=(4,)))


@pytest.mark.parametrize(
    "kwargs",
    [dict(alpha=(1, float("nan"), 8)), dict(beta=float("inf")), dict(penalty_stages=(-1,)),
     dict(resolution=0), dict(resolution=True)],
)
def test_bad_scoring_options(kwargs):
    with pytest.raises(deepmad.InputError):
        Scoring(**kwargs)


def test_single_stage_network():
    # stride-2 single stage: prefix "stem alone", then the end; last3 on one stage covers it
    arch = Architecture(stem=Stem(8), stages=(Stage("basic", 16, 8, 3, 2, 2),), resolution=16)
    sc = deepmad.score(arch)
    p0 = [27]
    p1 = p0 + [8*9, 8*9] + [16*9, 8*9]
    _check_prefixes(sc, [(-1, p0, 8, 8), (0, p1, 16, 4)])
    assert sc.penalty == approx(10.0)  # one depth: pstdev 0
    assert sc.entropy == approx(ln(8 * 64) * 0.5 * ln(27) + 8 * ln(16 * 16) * 0.5 * sum(ln(w) for w in p1))
