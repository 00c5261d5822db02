"""Reading input files with clear errors, and writing output files atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError


MAX_INPUT_BYTES = 16 << 20


def read_text(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of ``path`` (at most ``max_bytes``); an :class:`InputError` naming the path otherwise."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise InputError(str(path), f"is larger than {max_bytes:,} bytes; not an input file of deepmad")
        return data.decode("utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except IsADirectoryError:
        raise InputError(str(path), "is a directory, not a file") from None
    except UnicodeDecodeError:
        raise InputError(str(path), "is not a UTF-8 text file") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot be read ({exc.strerror})") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The text goes to a temporary file in the same folder, is flushed to disk
    and then renamed over ``path``; on any failure the temporary file is removed.
    """
    text_path = str(path)
    path = Path(path)
    if not text_path.strip() or text_path.endswith(os.sep) or path.name in ("", ".", ".."):
        raise InputError("output", f"{text_path!r} is not a file path; give one such as model.py")
    folder = path.parent
    if not folder.is_dir():
        raise InputError(str(path), f"folder {str(folder)!r} does not exist; create it first")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InputError(str(path), f"cannot be written ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
        _fsync_folder(folder)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, IsADirectoryError):
            raise InputError(str(path), "is a directory; give a file path") from None
        if isinstance(exc, OSError):
            raise InputError(str(path), f"cannot be written ({exc.strerror})") from None
        raise


def _mode_for(path: Path) -> int:
    """The replaced file's permissions, or the umask's default for a new file."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
