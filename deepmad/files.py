"""Reading input files with clear errors, and writing output files atomically."""

from __future__ import annotations

import os
from pathlib import Path

from hwmodels import files

from .errors import InputError


MAX_INPUT_BYTES = 16 << 20


def read_text(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of ``path`` (at most ``max_bytes``); an :class:`InputError` naming the path otherwise."""
    try:
        return files.read_text(path, max_bytes)
    except ValueError as exc:
        too_big = "; not an input file of deepmad" if str(exc).startswith("is larger") else ""
        raise InputError(str(path), f"{exc}{too_big}") from None


def atomic_write_text(path: str | Path, text: str, *, force: bool = True) -> bool:
    """Write ``text`` to ``path`` (UTF-8, ``\n`` line ends) as :func:`atomic_write_bytes` does."""
    return atomic_write_bytes(path, text.encode("utf-8"), force=force)


def atomic_write_bytes(path: str | Path, data: bytes, *, force: bool = True) -> bool:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part
    (:func:`hwmodels.files.write_bytes`); a bad path is an :class:`InputError` naming it.

    Without ``force`` an existing file is replaced only by the same bytes: then it is left as it
    is and the result is ``False``; other content is an :class:`InputError` (exit status 2) that
    asks for ``--force``. Returns ``True`` when the file was written."""
    path = _file_path(path)
    if holds(path, data, force=force):
        return False
    try:
        files.write_bytes(path, data)
    except IsADirectoryError:
        raise InputError(str(path), "is a directory; give a file path") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot be written ({exc.strerror})") from None
    return True


def holds(path: str | Path, data: bytes, *, force: bool) -> bool:
    """Whether ``path`` already holds ``data`` (then a write can be skipped). Without ``force``, an
    existing file with other content is an :class:`InputError` asking for ``--force``."""
    path = Path(path)
    try:
        if force or not path.is_file():
            return False
        with open(path, "rb") as fh:
            if fh.read(len(data) + 1) == data:
                return True
    except OSError as exc:  # a name too long, a folder not searchable
        raise InputError(str(path), f"cannot be written ({exc.strerror})") from None
    raise InputError(str(path), "exists with other content; pass --force to replace it")


def check_output(path: str | Path | None, *, force: bool) -> None:
    """Check, before a long run (a solve, a measurement) whose output is known only at its end,
    that ``path`` can take that output: a file path in an existing folder, not a folder, and not
    an existing file unless ``force``. An :class:`InputError` naming the path otherwise."""
    if path is None:
        return
    path = _file_path(path)
    try:
        path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:  # a name too long, a folder not searchable
        raise InputError(str(path), f"cannot be written ({exc.strerror})") from None
    if path.is_dir():
        raise InputError(str(path), "is a directory; give a file path")
    if not force:
        raise InputError(str(path), "exists; pass --force to replace it")


def _file_path(path: str | Path) -> Path:
    """``path`` as a :class:`Path`, when it names a file in an existing folder."""
    text_path = str(path)
    path = Path(path)
    if not text_path.strip() or text_path.endswith(os.sep) or path.name in ("", ".", ".."):
        raise InputError("output", f"{text_path!r} is not a file path; give one such as model.py")
    if not path.parent.is_dir():
        raise InputError(str(path), f"folder {str(path.parent)!r} does not exist; create it first")
    return path
