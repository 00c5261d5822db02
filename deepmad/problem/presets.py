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

Each preset also has its **reference space** (``preset(name, space="reference")``):
the space TinyNAS searched for that model, as its mutators enforce it
(alibaba/lightweight-neural-architecture-search, ``tinynas/spaces/space_k1kxk1.py``
and ``space_k1dwsek1.py`` with their mutators, at their defaults, which every
``configs/classification/deepmad_*.py`` uses), so that a comparison with the
published design is like for like. See :data:`REFERENCE_RULES`.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from ..errors import InputError
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

SPACES = ("wide", "reference")
"""The spaces of a preset: ``wide`` (this project's, the default) and ``reference`` (TinyNAS's)."""

REFERENCE_RULES = {
    "bottleneck": (
        "kernels 3, 5; at most 3 blocks in the first stage; inner width c/10..c; every stage (the first "
        "from the stem) at most 4x its input; channels up to 2048, stem up to 32, in steps of 8"
    ),
    "inverted_residual_se": (
        "kernels 3, 5, 7; at most 3 blocks in the first stage; expansion 1.5..6; channels up to 1280, "
        "stem 16..32, in steps of 8; no widening limit"
    ),
}
"""The reference space's rules per block family, as TinyNAS's mutators enforce them (the k1kxk1
mutator caps ``out`` at ``4 * in`` and sets ``btn`` to at least ``out / 10`` and at most ``out``,
the first searched block's ``L`` at 3, the stem at 32; the k1dwk1 mutator draws the expansion
ratio from 1.5..6.0 and caps ``out`` at 1280 and the stem at 16..32). Two things the released
code does are not taken: its mutators never pick the last block (``randint(0, len - 1)``
excludes it), which would freeze the last stage at the config's starting structure, and which no
published DeepMAD structure obeys; and it sets no depth cap beside the first stage's, where these
spaces keep the wide spaces' (16 bottleneck blocks, 12 inverted residual blocks per stage). No
DeepMAD config sets a layer budget, so these spaces have none either."""


def _reference(space: DesignSpace) -> DesignSpace:
    """The reference space of a preset's wide ``space`` (:data:`REFERENCE_RULES`)."""
    depths = ((space.depths[0][0], 3), *space.depths[1:])
    if space.block == "bottleneck":
        return dataclasses.replace(space, kernels=(3, 5), depths=depths, channels=(8, 2048), stem_channels=(8, 32),
                                   inner_ratio=(0.1, 1.0), max_growth=4.0, stem_growth=4.0)
    return dataclasses.replace(space, kernels=(3, 5, 7), depths=depths, channels=(8, 1280), stem_channels=(16, 32),
                               inner_ratio=(1.5, 6.0), max_growth=None, stem_growth=None)


REFERENCE: dict[str, Problem] = {
    name: dataclasses.replace(p, space=_reference(p.space), name=f"{name}-reference") for name, p in PRESETS.items()
}
"""Each preset's problem in its reference space (named ``NAME-reference``)."""

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


def preset(name: str, *, space: str = "wide") -> Problem:
    """The preset ``name`` in ``space`` (one of :data:`SPACES`); an :class:`InputError` suggesting
    close names when unknown."""
    key = name.lower()
    if key not in PRESETS:
        close = difflib.get_close_matches(key, PRESETS, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise InputError("--preset", f"unknown preset {name!r}; {hint}the presets are {', '.join(PRESETS)}")
    if space not in SPACES:
        raise InputError("--space", f"must be one of {', '.join(SPACES)}, got {space!r}")
    return (PRESETS if space == "wide" else REFERENCE)[key]


PUBLISHED_DIR = "../shared/data/tinynas/published"
"""Where ``deepmad presets`` looks for the published structures by default (beside a checkout)."""


def published_outside(name: str, folder: str | Path = PUBLISHED_DIR) -> list[str] | None:
    """Why the published structure of preset ``name`` (read from ``folder``) lies outside its
    reference space: the rules it breaks once its widths are rounded up to the space's grid of 8
    (and that they are off it, where they are); empty when it lies inside; ``None`` where the file
    is not in ``folder``."""
    from ..model import tinynas
    from .space import snap

    path = Path(folder) / PUBLISHED_FILES[name]
    if not path.is_file():
        return None
    space = REFERENCE[name].space
    arch = tinynas.load(path, resolution=space.resolution)
    snapped = snap(arch, space)
    out = [] if snapped == arch else [f"widths off the grid of {space.channel_step}"]
    return out + [v for v in space.violations(snapped)]
