"""Where deepmad keeps what it can always rebuild: solver engines and fitted latency models.

The folder is ``$DEEPMAD_CACHE`` or ``$XDG_CACHE_HOME/deepmad/engines``
(``~/.cache/deepmad/engines``): engines as ``.npz`` files in it
(:mod:`deepmad.solvers.cache`), latency models as text in its ``models``
subfolder (:mod:`hwmodels.learned`). It holds at most ``$DEEPMAD_CACHE_MB``
megabytes (default :data:`LIMIT_MB`); ``deepmad cache --clear`` empties it.
"""

from __future__ import annotations

import os
from pathlib import Path

LIMIT_MB = 2048
"""Default size limit of the folder on disk."""


def folder() -> Path:
    if os.environ.get("DEEPMAD_CACHE"):
        return Path(os.environ["DEEPMAD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deepmad" / "engines"


def models() -> Path:
    """The subfolder of fitted latency models."""
    return folder() / "models"


def limit_bytes() -> int:
    try:
        return int(float(os.environ.get("DEEPMAD_CACHE_MB", LIMIT_MB)) * (1 << 20))
    except ValueError:
        return LIMIT_MB << 20
