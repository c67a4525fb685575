"""Atomic file output: write to a temporary name beside the target, then rename; parquet part files.

A full disk (or quota, or file-size limit) while writing becomes one :class:`WriteError` line naming
the destination, and nothing is left behind: neither the temporary file nor a partial target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import time
import uuid
from pathlib import Path

from kernels.errors import InputError

__all__ = ["WriteError", "atomic_path", "is_full", "write_part"]

#: errno values that mean "no room for this output" rather than a bug: disk full, quota, file-size limit.
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "File too large")


class WriteError(InputError):
    """An output that could not be written for want of room (disk full, quota, file-size limit)."""


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an OSError, or a library's error wrapping one, as pyarrow's; numpy's short
    write "4096 requested and 496 written") means no room."""
    return isinstance(exc, OSError) and (exc.errno in _FULL or any(t in str(exc) for t in _FULL_TEXT)
                                         or re.search(r"\d+ requested and \d+ written", str(exc)) is not None)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike):
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` only on success.

    A writer killed or failing midway leaves ``dest`` untouched (absent or as it was)
    and removes its temporary file, so readers never see a half-written file. The data is
    flushed to disk (fsync) before the rename, so a renamed file survives a crash whole.
    """
    dest = Path(dest)
    made = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]  # removed again on failure
    dest.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name keeps at most 64 characters of dest's, so it fits wherever dest's name fits
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:64]}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file an ordinary mode
        _fsync(tmp)
        os.replace(tmp, dest)
        _fsync(dest.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        for folder in made:  # deepest first; a folder someone else has filled meanwhile stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        if is_full(exc):
            raise WriteError(f"{dest}: cannot write: {_why(exc)}; nothing was written there") from None
        raise


def write_part(table, directory: str | os.PathLike, name: str | None = None) -> Path:
    """Write the pyarrow ``table`` as ``directory/part-NAME.parquet`` through :func:`atomic_path`, the
    one writer of every parquet dataset here (traces, sweep results): readers list only complete
    ``part-*`` files. ``NAME`` defaults to a time-ordered unique id."""
    import pyarrow.parquet as pq  # here: atomic_path's other users (.npy, .json) need no pyarrow

    dest = Path(directory) / f"part-{name or f'{time.time_ns():020d}-{uuid.uuid4().hex[:8]}'}.parquet"
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp)
    return dest


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return os.strerror(exc.errno)
    return next((t for t in _FULL_TEXT if t in str(exc)), "a short write, no room left")


def _fsync(path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk; file systems that cannot are skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno in _FULL:
            raise
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
