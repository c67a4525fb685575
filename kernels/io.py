"""Atomic file output: write to a temporary name beside the target, then rename; parquet part files."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["atomic_path", "write_part"]


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike):
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` only on success.

    A writer killed or failing midway leaves ``dest`` untouched (absent or as it was)
    and removes its temporary file, so readers never see a half-written file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file an ordinary mode
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
