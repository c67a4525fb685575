"""Boundary checks shared by every reader and every output option: documented size limits, finite
numbers, input files (regular, bounded, UTF-8 where text, JSON without duplicate keys or deep nesting,
.npy headers that match the file), and destinations that must be writable before work starts.

Library readers call these on user input so that everything past them can trust its data; each
raises an :class:`~accelsim.errors.AccelsimError` subclass whose one-line message names the
origin (file, field or option), the value received, and the limit or fix.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from pathlib import Path

from accelsim.errors import AccelsimError, WorkloadError

__all__ = [
    "MAX_ARRAY_DIM",
    "MAX_BLOCKS",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_DIM",
    "MAX_GRID_POINTS",
    "MAX_LAYERS",
    "MAX_LAYER_MACS",
    "MAX_PJ",
    "MAX_ENERGY_J",
    "MAX_POWER_W",
    "MAX_RATE",
    "MAX_REPEATS",
    "MAX_SEED",
    "MAX_TEXT_BYTES",
    "MAX_TIME_S",
    "MAX_UNITS",
    "MAX_WEIGHT",
    "MAX_WORKERS_PER_CPU",
    "MIN_RATE",
    "MIN_TIME_S",
    "check_depth",
    "check_dim",
    "check_layer_count",
    "check_input_file",
    "check_npy",
    "check_seed",
    "ensure_finite",
    "ensure_writable",
    "read_json",
    "read_text",
    "same_file",
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

MAX_TEXT_BYTES = 64 * 2**20
"""Largest text input (arch or workload YAML, topology CSV, plan or calibration JSON): 64 MiB is
thousands of times any real one, and the parsed document must fit in memory several times over."""

MAX_DEPTH = 64
"""Deepest nesting of a YAML or JSON document (mappings and lists): the deepest real config is 4."""

MAX_LAYERS = 100_000
"""Most layers in one workload (after expansion): above the largest built-in (``layers`` at
:data:`MAX_BLOCKS`) needs, and every layer is simulated and reported one by one."""

MAX_GRID_POINTS = 100_000
"""Most points in one sweep grid (the product of its value counts): each is validated, then simulated."""

MAX_WEIGHT = 3.4028234663852886e38
"""Largest magnitude of a weight value (float32's largest): a larger one fits no accelerator dtype, and
float64 norms of such values overflow to inf."""

MIN_TIME_S, MAX_TIME_S = 1e-12, 86_400.0
"""Range of a trace row's measured times (median, min, max of one call): below a picosecond or above a
day is not a kernel timing, and such values overflow the rates and fits derived from them."""

MAX_POWER_W = 1e5
"""Largest power a trace row may report (``idle_power_w``): 100 kW, a rack, not one device."""

MAX_ENERGY_J = MAX_TIME_S * MAX_POWER_W
"""Largest energy of one call in a trace row (``energy_j``): the longest call at the largest power.
``energy_j = 1e308`` squared in a fit, or over a time, is inf."""

MAX_SEED = 2**32 - 1
"""Largest ``--seed`` (NumPy seeds are unsigned 32-bit words; the smallest is 0)."""


def ensure_finite(value: float, what: str) -> float:
    """``value`` if it is a finite number, else an :class:`AccelsimError` naming ``what``.

    NaN and ±inf have no physical meaning in energies, clocks or bandwidths, and they cannot be
    written as JSON, so they stop here rather than in an output writer.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AccelsimError(f"{what}: must be a finite number, got {value!r}")
    return value


def check_layer_count(name: str, count: int) -> None:
    """Refuse a workload of more than :data:`MAX_LAYERS` layers, before it is simulated layer by layer."""
    if count > MAX_LAYERS:
        raise WorkloadError(f"network {name!r}: {count:,} layers, more than {MAX_LAYERS:,} (accelsim.checks.MAX_LAYERS)")


def check_dim(name: str, value, where: str, limit: int = MAX_DIM, limit_name: str = "MAX_DIM") -> int:
    """A positive integer no larger than ``limit`` (the constant ``limit_name`` here); else a
    :class:`WorkloadError` naming ``where``, ``name`` and the limit."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise WorkloadError(f"{where}: field {name} must be a positive integer, got {value!r}")
    if value > limit:
        raise WorkloadError(f"{where}: field {name} = {value} exceeds the limit {limit:,} (accelsim.checks.{limit_name})")
    return value


def check_seed(seed: int, option: str = "--seed") -> int:
    """A seed in 0..:data:`MAX_SEED`, else an :class:`AccelsimError` naming ``option``."""
    if not 0 <= seed <= MAX_SEED:
        raise AccelsimError(f"{option} {seed}: must be in 0..{MAX_SEED:,} (accelsim.checks.MAX_SEED)")
    return seed


def check_input_file(path: str | Path, what: str, error: type[AccelsimError] = AccelsimError,
                     limit: int | None = None) -> int:
    """The size of the regular file at ``path``; else an ``error`` naming it: missing, a directory, a
    FIFO, device or socket (whose reads never end or never start), or larger than ``limit`` bytes."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a directory, not a file ({what} expected)")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(
            st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file"
        raise error(f"{path}: is {kind}, not a regular file ({what} expected)")
    if limit is not None and st.st_size > limit:
        raise error(f"{path}: {st.st_size:,} bytes, more than the {limit:,} a {what} may hold "
                    f"(accelsim.checks.MAX_TEXT_BYTES)")
    return st.st_size


def _read_bytes(path: Path, what: str, error: type[AccelsimError]) -> bytes:
    check_input_file(path, what, error, MAX_TEXT_BYTES)
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_TEXT_BYTES + 1)  # bounded even if the file grows after the check
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None


def read_text(path: str | Path, what: str, error: type[AccelsimError] = AccelsimError) -> str:
    """The UTF-8 text of the file at ``path``; missing, not a regular file, over
    :data:`MAX_TEXT_BYTES`, unreadable or not UTF-8 is an ``error`` naming the file and ``what`` it
    should have been."""
    path = Path(path)
    data = _read_bytes(path, what, error)
    if len(data) > MAX_TEXT_BYTES:
        raise error(f"{path}: more than the {MAX_TEXT_BYTES:,} bytes a {what} may hold (accelsim.checks.MAX_TEXT_BYTES)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}; {what} expected)") from None
    if "\x00" in text:
        raise error(f"{path}: holds NUL bytes, so it is binary data ({what} expected)")
    return text.removeprefix("\ufeff")


def check_depth(doc, origin: str, error: type[AccelsimError] = AccelsimError) -> None:
    """Refuse a parsed YAML/JSON document nested deeper than :data:`MAX_DEPTH` (iteratively, so the
    check itself cannot overflow the stack)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_DEPTH:
                    raise error(f"{origin}: nested more than {MAX_DEPTH} levels deep (accelsim.checks.MAX_DEPTH)")
                stack.append((child, depth + 1))


def _no_duplicates(origin: str, error: type[AccelsimError]):
    def hook(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise error(f"{origin}: duplicate key {key!r} (a later value would silently win)")
            seen.add(key)
        return dict(pairs)

    return hook


def read_json(path: str | Path, what: str, error: type[AccelsimError] = AccelsimError):
    """The JSON document in the file at ``path``, read with :func:`read_text`'s checks; malformed
    JSON, NaN/Infinity, a duplicate key, an integer beyond Python's digit limit or nesting deeper than
    :data:`MAX_DEPTH` is one ``error`` line naming the file."""
    text = read_text(path, what, error)

    def constant(name):
        raise error(f"{path}: {name} is not a JSON number ({what} values must be finite)")

    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates(str(path), error), parse_constant=constant)
    except AccelsimError:
        raise
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not a {what}: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise error(f"{path}: nested more than {MAX_DEPTH} levels deep (accelsim.checks.MAX_DEPTH)") from None
    except ValueError as exc:  # int() beyond sys.get_int_max_str_digits()
        raise error(f"{path}: {str(exc).split(':')[0]} ({what} expected)") from None
    check_depth(doc, str(path), error)
    return doc


def check_npy(path: str | Path, error: type[AccelsimError] = AccelsimError) -> tuple[tuple[int, ...], object]:
    """The (shape, dtype) an ``.npy`` header declares, checked against the file size before any data
    is allocated: a header claiming more data than the file holds is refused (a 35 PiB shape in a
    1 kB file would otherwise be allocated first)."""
    import numpy as np

    path = Path(path)
    size = check_input_file(path, ".npy tensor", error)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh, max_header_size=10_000)
            offset = fh.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise error(f"{path}: not a .npy file ({' '.join(str(exc).split())[:200]})") from None
    if dtype.hasobject:
        raise error(f"{path}: holds Python objects ({dtype}); expected real numbers")
    need = math.prod(shape) * dtype.itemsize
    if offset + need != size:
        raise error(f"{path}: header declares shape {'×'.join(map(str, shape)) or 'scalar'} of {dtype} "
                    f"({need:,} bytes of data) but the file holds {size - offset:,} bytes after its header")
    return shape, dtype


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (through links too); False when either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        return folder.is_dir() and path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


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
                    suffixes: tuple[str, ...] = (), inputs: tuple = ()) -> Path:
    """Check before any work that ``path`` can be written; return it as a :class:`Path`.

    A file destination must not be an existing directory and must end in one of ``suffixes``
    (when given); a ``directory`` destination must not be an existing file. A file destination must
    not be one of ``inputs`` (the files and folders the same command reads: writing it would destroy
    the input, or hand a folder reader a foreign file) nor lie inside an input folder. Each name in
    the path must fit the file system (``NAME_MAX``), leaving room for the writer's temporary name.
    Missing parent folders are fine (the atomic writer creates them), but the nearest existing one
    must be a folder in which a file can actually be created.
    """
    path = Path(path)
    shown = f"{option} {_short(path)!r}"
    _check_name_lengths(path, shown)  # first: a name too long makes every later stat fail
    if not directory:
        for given in inputs:
            if given is None:
                continue
            src = Path(given)
            if same_file(path, src) or path.absolute() == src.absolute():
                raise AccelsimError(f"{shown}: is an input of this command; refusing to overwrite it, pick another path")
            if _inside(path, src):
                raise AccelsimError(f"{shown}: lies inside the input folder {str(src)!r}, which this command reads; "
                                    "pick a path outside it")
    if suffixes and path.suffix.lower() not in suffixes:
        raise AccelsimError(f"{shown}: unknown file type {path.suffix or '(none)'!r}; use {' or '.join(suffixes)}")
    if directory and path.exists() and not path.is_dir():
        raise AccelsimError(f"{shown}: exists and is a file; pass a directory")
    if not directory and path.is_dir():
        raise AccelsimError(f"{shown}: is a directory; pass a file name")
    folder = path if directory else path.parent
    folder = folder if str(folder) else Path(".")
    while not folder.exists() and not folder.is_symlink():
        folder = folder.parent
    if not folder.is_dir():
        raise AccelsimError(f"{shown}: {str(folder)!r} is not a directory")
    why = _probe(folder)
    if why is not None:
        raise AccelsimError(f"{shown}: cannot write in {str(folder)!r}: {why}")
    return path


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}…{text[-40:]}"


def _check_name_lengths(path: Path, shown: str) -> None:
    """Each component within ``NAME_MAX`` and the whole within ``PATH_MAX`` of the nearest existing
    folder's file system, so the write cannot fail with "File name too long" after the work."""
    probe = path.absolute()
    while not os.path.isdir(probe):  # isdir is False (never raises) for a missing or too long name
        probe = probe.parent
    try:
        name_max = os.pathconf(probe, "PC_NAME_MAX")
        path_max = os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise AccelsimError(f"{shown}: the name {part[:20]!r}… is {len(os.fsencode(part))} bytes long, more than "
                                f"the {name_max} this file system allows")
    if len(os.fsencode(str(path.absolute()))) > path_max:
        raise AccelsimError(f"{shown}: the path is longer than the {path_max} bytes this file system allows")
