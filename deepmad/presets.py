"""Presets: the published DeepMAD design problems (budgets in the tinynas convention).

Each preset states the problem DeepMAD solved by evolutionary search: block
type, stride pattern, resolution, head width, FLOPs and parameter budgets
(classifier excluded), rho0, alpha = (1, 1, 1, 1, 8) and beta = 10 (the
scoring defaults). Its space contains the published structure of the same
name (``../shared/data/tinynas/published/``) once that structure's widths are
rounded up to the space's grids and the guidelines are switched off.

Space choices, per family:

* bottleneck (ResNet-class): channels 8..2048, stem 16..64, kernels 3/5/7,
  1..16 blocks per stage, inner width ``c/10..c`` (TinyNAS rounding); the
  first stage may widen the stem freely (the published R34 widens it 5.3x).
* inverted residual with SE: channels 8..2048, stem 16..64, kernels 3/5/7,
  1..12 blocks per stage, inner width ``1.5c..6c``, every stage at most 4x
  its input.
"""

from __future__ import annotations

import difflib

from .errors import InputError
from .problem import Problem
from .space import DesignSpace

_RESNET_STRIDES = (2, 2, 2, 1, 2)


def _bottleneck(strides: tuple[int, ...] = _RESNET_STRIDES) -> DesignSpace:
    return DesignSpace(block="bottleneck", resolution=224, strides=strides, depths=((1, 16),) * len(strides), stem_growth=None)


def _mbconv(resolution: int, strides: tuple[int, ...], head: int) -> DesignSpace:
    return DesignSpace(
        block="inverted_residual_se", resolution=resolution, strides=strides, depths=((1, 12),) * len(strides), head=head
    )


PRESETS: dict[str, Problem] = {
    "deepmad-r18": Problem(_bottleneck(), flops=1.82e9, params=11.69e6, rho=0.3, name="deepmad-r18"),
    "deepmad-r34": Problem(_bottleneck(), flops=3.68e9, params=21.80e6, rho=0.3, name="deepmad-r34"),
    "deepmad-r50": Problem(_bottleneck(), flops=4.13e9, params=25.55e6, rho=0.3, name="deepmad-r50"),
    "deepmad-29m-224": Problem(_mbconv(224, (1, 2, 2, 2, 2), 1792), flops=4.5e9, params=29e6, rho=0.5, name="deepmad-29m-224"),
    "deepmad-29m-288": Problem(_mbconv(288, (2, 2, 2, 1, 2), 1792), flops=4.5e9, params=29e6, rho=0.5, name="deepmad-29m-288"),
    "deepmad-50m": Problem(_mbconv(224, (2, 2, 2, 2, 1), 2048), flops=8.7e9, params=50e6, rho=0.5, name="deepmad-50m"),
    "deepmad-89m": Problem(_mbconv(224, (2, 2, 2, 2, 1), 2560), flops=15.4e9, params=89e6, rho=0.5, name="deepmad-89m"),
}

PUBLISHED_FILES = {
    "deepmad-r18": "deepmad-R18.txt",
    "deepmad-r34": "deepmad-R34.txt",
    "deepmad-r50": "deepmad-R50.txt",
    "deepmad-29m-224": "deepmad-29M-224.txt",
    "deepmad-29m-288": "deepmad-29M-288.txt",
    "deepmad-50m": "deepmad-50M.txt",
    "deepmad-89m": "deepmad-89M.txt",
}
"""The published structure file of each preset, in ``shared/data/tinynas/published/``."""


def preset(name: str) -> Problem:
    """The preset ``name``; an :class:`InputError` suggesting close names when unknown."""
    key = name.lower()
    if key not in PRESETS:
        close = difflib.get_close_matches(key, PRESETS, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise InputError("--preset", f"unknown preset {name!r}; {hint}the presets are {', '.join(PRESETS)}")
    return PRESETS[key]
