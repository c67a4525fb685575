"""Boundary checks shared by every reader and every output option: documented size limits, finite
numbers, text files that must be UTF-8, and destinations that must be writable before work starts.

Library readers call these on user input so that everything past them can trust its data; each
raises an :class:`~accelsim.errors.AccelsimError` subclass whose one-line message names the
origin (file, field or option), the value received, and the limit or fix.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

from accelsim.errors import AccelsimError, WorkloadError

__all__ = [
    "MAX_ARRAY_DIM",
    "MAX_BLOCKS",
    "MAX_BYTES",
    "MAX_DIM",
    "MAX_LAYER_MACS",
    "MAX_PJ",
    "MAX_RATE",
    "MAX_REPEATS",
    "MAX_UNITS",
    "MAX_WORKERS_PER_CPU",
    "MIN_RATE",
    "check_dim",
    "ensure_finite",
    "ensure_writable",
    "read_text",
]

MAX_DIM = 2**31 - 1
"""Largest GEMM/conv dimension, count or batch (the int32 index range of CUDA kernels and of
SCALE-Sim's address generators): ``m = 1e24`` is a typo, not a workload."""

MAX_BLOCKS = 10_000
"""Largest ``layers`` parameter of a built-in network (repeated blocks): the layer list is built in memory."""

MAX_LAYER_MACS = 2**53
"""Largest MAC count of one layer (m·n·k·count): float64 counts MACs and cycles exactly up to
2**53, and the reports hold both as float64."""

MAX_ARRAY_DIM = 2**16
"""Largest systolic array side (rows, cols) and tensor-core CTA tile side: 65,536 is 16× the
largest published array (TPU v1: 256×256) and keeps per-PE buffers in memory."""

MAX_UNITS = 2**20
"""Largest count of tensor-core units (SMs) or TASD units: 1,048,576, far above any chip (H100: 132)."""

MIN_RATE, MAX_RATE = 1e-6, 1e12
"""Range of every rate in an arch config: clock_ghz, bandwidths (bytes/cycle), MACs per cycle. Both
ends are far outside real hardware; they keep cycles, energy and EDP finite in float64 for any
layer within :data:`MAX_LAYER_MACS`."""

MAX_PJ = 1e6
"""Largest energy per action in pJ (per MAC, per byte, per cycle of leakage): a microjoule."""

MAX_BYTES = 2**60
"""Largest memory capacity or partition in bytes (an exbibyte)."""

MAX_REPEATS = 10_000
"""Largest ``--repeats``/``--warmup`` of ``kernels run``: a median of 10,000 calls is as good as it gets."""

MAX_WORKERS_PER_CPU = 4
"""Largest ``sweep --workers`` per CPU core: local Dask workers are processes, one per point in flight."""


def ensure_finite(value: float, what: str) -> float:
    """``value`` if it is a finite number, else an :class:`AccelsimError` naming ``what``.

    NaN and ±inf have no physical meaning in energies, clocks or bandwidths, and they cannot be
    written as JSON, so they stop here rather than in an output writer.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AccelsimError(f"{what}: must be a finite number, got {value!r}")
    return value


def check_dim(name: str, value, where: str, limit: int = MAX_DIM, limit_name: str = "MAX_DIM") -> int:
    """A positive integer no larger than ``limit`` (the constant ``limit_name`` here); else a
    :class:`WorkloadError` naming ``where``, ``name`` and the limit."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise WorkloadError(f"{where}: field {name} must be a positive integer, got {value!r}")
    if value > limit:
        raise WorkloadError(f"{where}: field {name} = {value} exceeds the limit {limit:,} (accelsim.checks.{limit_name})")
    return value


def read_text(path: str | Path, what: str, error: type[AccelsimError] = AccelsimError) -> str:
    """The UTF-8 text of the file at ``path``; missing, a directory, unreadable or not UTF-8 is an
    ``error`` naming the file and ``what`` it should have been."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a file ({what} expected)") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}; {what} expected)") from None
    if "\x00" in text:
        raise error(f"{path}: holds NUL bytes, so it is binary data ({what} expected)")
    return text.removeprefix("\ufeff")


def _probe(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (None when it can): try it, since permission bits
    say nothing for root or on a read-only mount."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".accelsim-probe.", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return None


def ensure_writable(path: str | Path, option: str = "--out", *, directory: bool = False,
                    suffixes: tuple[str, ...] = ()) -> Path:
    """Check before any work that ``path`` can be written; return it as a :class:`Path`.

    A file destination must not be an existing directory and must end in one of ``suffixes``
    (when given); a ``directory`` destination must not be an existing file. Missing parent folders
    are fine (the atomic writer creates them), but the nearest existing one must be a folder in which
    a file can actually be created.
    """
    path = Path(path)
    shown = f"{option} {str(path)!r}"
    if suffixes and path.suffix.lower() not in suffixes:
        raise AccelsimError(f"{shown}: unknown file type {path.suffix or '(none)'!r}; use {' or '.join(suffixes)}")
    if directory and path.exists() and not path.is_dir():
        raise AccelsimError(f"{shown}: exists and is a file; pass a directory")
    if not directory and path.is_dir():
        raise AccelsimError(f"{shown}: is a directory; pass a file name")
    folder = path if directory else path.parent
    folder = folder if str(folder) else Path(".")
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise AccelsimError(f"{shown}: {str(folder)!r} is not a directory")
    why = _probe(folder)
    if why is not None:
        raise AccelsimError(f"{shown}: cannot write in {str(folder)!r}: {why}")
    return path
