"""Reading text files with one-line reasons, and writing files atomically (readers see the old
file or the whole new one, never a part)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


def read_text(path: str | Path, max_bytes: int) -> str:
    """The UTF-8 text of ``path``; ``ValueError(reason)`` when it is missing, a folder, larger
    than ``max_bytes``, not UTF-8 or unreadable (callers put the path and their error type on it)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValueError(f"is larger than {max_bytes:,} bytes")
        return data.decode("utf-8")
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except IsADirectoryError:
        raise ValueError("is a directory, not a file") from None
    except UnicodeDecodeError:
        raise ValueError("is not a UTF-8 text file") from None
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in ``path``'s folder, flush it to disk and rename it over
    ``path`` (keeping the replaced file's permissions); on any failure the temporary file is
    removed and the error (an ``OSError`` for file-system failures) propagates.

    Where Linux allows it the temporary file is unnamed (``O_TMPFILE``) while it is written and
    is given a name only for the rename, so a process killed while writing leaves nothing behind."""
    path = Path(path)
    folder = path.parent
    mode = _mode_for(path)
    fd = _unnamed(folder)
    if fd is not None:
        tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            _write_all(fd, data, mode)
            os.link(f"/proc/self/fd/{fd}", tmp, follow_symlinks=True)
            linked = True
        except OSError:  # /proc is not mounted, or the file system refuses: write a named file
            linked = False
        finally:
            os.close(fd)
        if linked:
            _rename(tmp, path)
            return
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        _write_all(fd, data, mode)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    os.close(fd)
    _rename(Path(name), path)


def _unnamed(folder: Path) -> int | None:
    """A file descriptor of a new unnamed file in ``folder``, or ``None`` where that is not possible."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o600)
    except OSError:
        return None


def _write_all(fd: int, data: bytes, mode: int) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fchmod(fd, mode)
    os.fsync(fd)


def _rename(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(path.parent)


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
