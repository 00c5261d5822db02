"""Reading amounts typed by people: ``1.8G``, ``11.7M``, ``250k``, ``1.82e9``."""

from __future__ import annotations

import math
import re

from .errors import InputError, shown

_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_AMOUNT = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)([kKMGT]?)")


def _positive(text: str, field: str, pattern: re.Pattern, scale: dict, forms: str) -> float:
    """A positive finite number with an optional unit (``pattern`` groups: number, unit)."""
    match = pattern.fullmatch(text.strip())
    value = float(match.group(1)) * scale[match.group(2)] if match else math.nan
    if not match or not math.isfinite(value) or value <= 0:
        raise InputError(field, f"expected a positive {forms}, got {shown(text)}")
    return value


def parse_amount(text: str, field: str) -> float:
    """A positive finite amount; suffixes k, M, G, T multiply by 1e3, 1e6, 1e9, 1e12."""
    return _positive(text, field, _AMOUNT, _SUFFIX, "amount such as 1.8G, 11.7M, 250k or 1.82e9")


def parse_range(text: str, field: str) -> tuple[int, int]:
    """``LO:HI`` (or a single ``N`` for ``N:N``) of positive integers, LO <= HI."""
    parts = text.split(":")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (0, 0)
    except ValueError:
        lo = hi = 0
    if not 0 < lo <= hi:
        raise InputError(field, f"expected LO:HI with 0 < LO <= HI (e.g. 1:16), got {shown(text)}")
    return lo, hi


_DURATION = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|us)?")
_TO_MS = {"ms": 1.0, None: 1.0, "s": 1e3, "us": 1e-3}


def parse_duration_ms(text: str, field: str) -> float:
    """A positive finite duration in milliseconds: ``12ms``, ``12`` (ms), ``0.012s``, ``800us``."""
    return _positive(text, field, _DURATION, _TO_MS, "duration such as 12ms, 12 (ms), 0.012s or 800us")
