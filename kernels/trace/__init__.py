"""THE kernel trace schema (one parquet row per kernel launch), recorder, atomic writer, reader.

The trace room: the schema, the recorder and reader (here) and the importers of timings measured
elsewhere (:mod:`.importers`). A row's timing and energy come from :mod:`kernels.timing` (re-exported
here). Imports only the shared top modules of :mod:`kernels` and itself; the techniques never import it.

Every kernel family records through this module so that ``accelsim traces`` and
``accelsim.replay.project`` read one format. A trace is a parquet *dataset directory*: each
:meth:`Recorder.flush` adds one new part file, written under a temporary name and renamed
into place (:func:`kernels.io.write_part`), so a killed writer never leaves a partial file.
The schema version lives in each file's metadata under ``accelsim.trace.schema_version``;
:func:`read_traces` refuses other versions rather than guessing.

Usage
-----
>>> rec = Recorder("traces/my-gpu")                                     # doctest: +SKIP
>>> timing = time_call(kernels.nm_spmm, a_nm, b, warmup=3, repeats=10)  # doctest: +SKIP
>>> rec.add(kernel="nm_spmm", dtype="float32", m=256, n=4096, k=4096,   # doctest: +SKIP
...         shapes={"a": (256, 4096), "b": (4096, 4096)}, pattern="2:4", density=0.5,
...         flops_dense=2 * 256 * 4096 * 4096, flops_effectual=256 * 4096 * 4096,
...         bytes_min=..., timing=timing, params={"path": "low_sparsity"})
>>> rec.flush()                                                         # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kernels.backend import backend_name, device_info
from kernels.errors import InputError
from kernels.io import write_part
from kernels.timing import (MIN_ENERGY_WINDOW_S, EnergyWindow, Timing, energy_per_call, energy_window,
                            idle_power, time_call)  # re-exported: measuring and recording come from one module

__all__ = [
    "MIN_ENERGY_WINDOW_S",
    "SCHEMA",
    "SCHEMA_VERSION",
    "EnergyWindow",
    "Recorder",
    "Timing",
    "TraceError",
    "energy_per_call",
    "energy_window",
    "idle_power",
    "read_traces",
    "time_call",
    "trace_files",
]

SCHEMA_VERSION = "2"
_READABLE = ("1", "2")
_VERSION_KEY = b"accelsim.trace.schema_version"
_ADDED_IN_2 = ("energy_window_s", "energy_calls", "idle_power_w")

SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("suite", pa.string()),
        pa.field("kernel", pa.string(), nullable=False),
        pa.field("backend", pa.string(), nullable=False),
        pa.field("device_name", pa.string()),
        pa.field("compute_capability", pa.string()),
        pa.field("dtype", pa.string(), nullable=False),
        pa.field("m", pa.int64()),
        pa.field("n", pa.int64()),
        pa.field("k", pa.int64()),
        pa.field("shapes", pa.string(), nullable=False),
        pa.field("pattern", pa.string()),
        pa.field("density", pa.float64()),
        pa.field("tasd_series", pa.string()),
        pa.field("params", pa.string(), nullable=False),
        pa.field("flops_dense", pa.int64()),
        pa.field("flops_effectual", pa.int64()),
        pa.field("bytes_min", pa.int64()),
        pa.field("time_median_s", pa.float64(), nullable=False),
        pa.field("time_min_s", pa.float64(), nullable=False),
        pa.field("time_max_s", pa.float64(), nullable=False),
        pa.field("repeats", pa.int32(), nullable=False),
        pa.field("warmup", pa.int32(), nullable=False),
        pa.field("energy_j", pa.float64()),
        pa.field("energy_window_s", pa.float64()),
        pa.field("energy_calls", pa.int32()),
        pa.field("idle_power_w", pa.float64()),
        pa.field("sm_clock_mhz", pa.float64()),
        pa.field("mem_clock_mhz", pa.float64()),
        pa.field("numpy_version", pa.string()),
        pa.field("cupy_version", pa.string()),
        pa.field("cuda_version", pa.string()),
        pa.field("git_commit", pa.string()),
    ],
    metadata={_VERSION_KEY: SCHEMA_VERSION.encode()},
)
"""Column meanings: ``shapes`` is a JSON object of operand shapes; ``params`` a JSON object of
kernel-specific extras (Kron factor shapes, projection radius, kernel path); ``flops_dense`` the
dense-equivalent FLOPs (2·m·n·k for a GEMM), ``flops_effectual`` those on kept values;
``bytes_min`` each operand read once and the output written once; times are per call;
``energy_j`` per call from NVML's energy counter, null when not measured, over a window of
``energy_window_s`` seconds and ``energy_calls`` calls (version 2; the recorder extends the window
to :data:`MIN_ENERGY_WINDOW_S`); ``idle_power_w`` the device's power before the run (version 2).
Version-1 files read with those three columns null."""


class TraceError(InputError):
    """A trace path that cannot be read: missing, empty, corrupt, or another schema version."""


@functools.cache
def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions(backend: str) -> dict:
    v = {"numpy_version": np.__version__, "cupy_version": None, "cuda_version": None}
    if backend == "cupy":
        import cupy

        v["cupy_version"] = cupy.__version__
        r = cupy.cuda.runtime.runtimeGetVersion()
        v["cuda_version"] = f"{r // 1000}.{(r % 1000) // 10}"
    return v


def _json(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


@dataclass
class Recorder:
    """Collects trace rows and appends them to the dataset directory ``out_dir``.

    Call :meth:`add` once per measured launch and :meth:`flush` to write (or use it as a
    context manager, which flushes on exit — also after an exception, since every row
    already added is a complete measurement). ``out_dir=None`` keeps rows in memory only.
    """

    out_dir: str | os.PathLike | None = None
    run_id: str = field(
        default_factory=lambda: f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    )
    rows: list = field(default_factory=list)
    _parts: int = 0

    def add(
        self,
        *,
        kernel: str,
        dtype,
        timing: Timing,
        shapes: dict,
        m: int | None = None,
        n: int | None = None,
        k: int | None = None,
        flops_dense: int | None = None,
        flops_effectual: int | None = None,
        bytes_min: int | None = None,
        pattern: str | None = None,
        density: float | None = None,
        tasd_series: str | None = None,
        params: dict | None = None,
        suite: str | None = None,
        xp=None,
    ) -> dict:
        """Append one row; device, versions, clocks and timestamp are filled in here. Returns the row."""
        backend = backend_name(xp) if xp is not None else "numpy"
        dev = device_info(xp or np)
        row = {
            "run_id": self.run_id,
            "timestamp": _dt.datetime.now(_dt.timezone.utc),
            "suite": suite,
            "kernel": str(kernel),
            "backend": backend,
            "device_name": dev.get("device_name"),
            "compute_capability": dev.get("compute_capability"),
            "dtype": str(np.dtype(dtype)) if not isinstance(dtype, str) else dtype,
            "m": m,
            "n": n,
            "k": k,
            "shapes": _json({name: list(map(int, s)) for name, s in shapes.items()}),
            "pattern": None if pattern is None else str(pattern),
            "density": None if density is None else float(density),
            "tasd_series": tasd_series,
            "params": _json(params or {}),
            "flops_dense": flops_dense,
            "flops_effectual": flops_effectual if flops_effectual is not None else flops_dense,
            "bytes_min": bytes_min,
            "time_median_s": timing.median_s,
            "time_min_s": timing.min_s,
            "time_max_s": timing.max_s,
            "repeats": timing.repeats,
            "warmup": timing.warmup,
            "energy_j": timing.energy_j,
            "energy_window_s": timing.energy_window_s,
            "energy_calls": timing.energy_calls,
            "idle_power_w": timing.idle_power_w,
            "sm_clock_mhz": timing.sm_clock_mhz,
            "mem_clock_mhz": timing.mem_clock_mhz,
            "git_commit": _git_commit(),
            **_versions(backend),
        }
        self.rows.append(row)
        return row

    def table(self) -> pa.Table:
        """The rows added so far, as a table of :data:`SCHEMA`."""
        return pa.Table.from_pylist(self.rows, schema=SCHEMA)

    def flush(self) -> Path | None:
        """Write pending rows as one new part file; return its path (None when nothing was pending)."""
        if not self.rows or self.out_dir is None:
            return None
        dest = write_part(self.table(), self.out_dir, self._next_part())
        self._parts += 1
        self.rows.clear()
        return dest

    def provisional(self, rows: list[dict]) -> Path | None:
        """Write ``rows`` (made by :meth:`add` on a recorder with this ``run_id``) as the part the next
        :meth:`flush` will write, which replaces it: a result that grows pass by pass is then on disk
        after each pass, and a kill loses only the pass in flight."""
        if not rows or self.out_dir is None:
            return None
        return write_part(pa.Table.from_pylist(rows, schema=SCHEMA), self.out_dir, self._next_part())

    def _next_part(self) -> str:
        return f"{self.run_id}-{self._parts:04d}"

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


def trace_files(path: str | os.PathLike) -> list[Path]:
    """The parquet files under ``path`` (a file or a directory, searched recursively), sorted.

    Hidden names (``.x``, the atomic writer's temporaries) and ``_x`` are skipped, as pyarrow does.
    """
    p = Path(path)
    if not p.exists():
        raise TraceError(f"trace path {str(p)!r} does not exist; pass a parquet file or a directory of them")
    if p.is_file():
        return [p]
    files = sorted(
        f
        for f in p.rglob("*.parquet")
        if f.is_file() and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)
    )
    if not files:
        raise TraceError(f"trace directory {str(p)!r} holds no .parquet files; run `accelsim kernels run` first")
    return files


def _read_one(f: Path) -> pa.Table:
    try:
        pf = pq.ParquetFile(f)
        meta = pf.schema_arrow.metadata or {}
        version = meta.get(_VERSION_KEY)
        if version is None:
            raise TraceError(f"{f}: not an accelsim trace (no {_VERSION_KEY.decode()} in its metadata)")
        if version.decode() not in _READABLE:
            raise TraceError(
                f"{f}: trace schema version {version.decode()!r}, this accelsim reads versions "
                f"{', '.join(map(repr, _READABLE))}; re-record it or use a matching accelsim"
            )
        table = pf.read()
    except TraceError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        msg = " ".join(str(exc).split())
        raise TraceError(f"{f}: unreadable parquet file (corrupt or truncated): {msg}") from None
    if version.decode() == "1":  # version 2 added the energy-window columns: null in older files
        for name in _ADDED_IN_2:
            if name not in table.column_names:
                table = table.append_column(SCHEMA.field(name), pa.nulls(table.num_rows, SCHEMA.field(name).type))
    missing = [name for name in SCHEMA.names if name not in table.column_names]
    if missing:
        raise TraceError(f"{f}: trace is missing columns {missing}")
    table = table.select(SCHEMA.names)
    for fld in SCHEMA:
        got = table.schema.field(fld.name).type
        try:
            if _kind(got) not in (_kind(fld.type), "null"):
                raise ValueError
            table = table.set_column(table.schema.get_field_index(fld.name), fld, table.column(fld.name).cast(fld.type))
        except (pa.ArrowException, ValueError):
            raise TraceError(f"{f}: column {fld.name!r} holds {got} values, the trace schema has {fld.type}") from None
    _check_rows(table.replace_schema_metadata(SCHEMA.metadata), f)
    return table.replace_schema_metadata(SCHEMA.metadata)


def _kind(t: pa.DataType) -> str:
    """Coarse type class: a number column holding text is refused, though "128" would cast."""
    for kind, test in (("null", pa.types.is_null), ("number", pa.types.is_integer), ("number", pa.types.is_floating),
                       ("text", pa.types.is_string), ("text", pa.types.is_large_string),
                       ("time", pa.types.is_timestamp)):
        if test(t):
            return kind
    return str(t)


_YEAR_10000_US = 253_402_300_800 * 10**6  # 10000-01-01 in µs since 1970: Python's datetime ends before it

#: Columns whose values must be positive and finite (null allowed where the schema allows it).
_POSITIVE = ("time_median_s", "time_min_s", "time_max_s", "repeats", "m", "n", "k")
#: Columns whose values must be finite and >= 0 (null allowed).
_NON_NEGATIVE = ("warmup", "flops_dense", "flops_effectual", "bytes_min", "energy_j", "energy_window_s", "energy_calls",
                 "idle_power_w", "sm_clock_mhz", "mem_clock_mhz")


def _check_rows(table: pa.Table, f: Path) -> None:
    """Refuse rows no measurement can produce: a time that is zero, negative, NaN or infinite, a
    non-positive shape, a density outside (0, 1], a null where the schema forbids one, or
    ``shapes``/``params`` that are not JSON objects.
    The error names the file, the row, the column and the value."""
    import pyarrow.compute as pc

    def bad_row(mask) -> int | None:
        return pc.index(mask, True).as_py() if pc.any(mask).as_py() else None

    def fail(i: int, col: str, why: str):
        row = table.slice(i, 1).to_pylist()[0]
        raise TraceError(f"{f}: row {i} ({row['kernel']}): {col} = {row[col]!r}; {why}")

    for fld in SCHEMA:
        if not fld.nullable and table.column(fld.name).null_count:
            fail(bad_row(pc.is_null(table.column(fld.name))), fld.name, "must not be null")
    for col in (*_POSITIVE, *_NON_NEGATIVE, "density"):
        v = table.column(col)
        ok = pc.greater(v, 0) if col in _POSITIVE else pc.greater_equal(v, 0)
        if pa.types.is_floating(v.type):
            ok = pc.and_(ok, pc.is_finite(v))
        if col == "density":
            ok = pc.and_(ok, pc.less_equal(v, 1))
        i = bad_row(pc.invert(pc.fill_null(ok, SCHEMA.field(col).nullable)))
        if i is not None:
            why = ("must be in (0, 1]" if col == "density" else
                   "must be a positive finite number" if col in _POSITIVE else "must be finite and >= 0")
            fail(i, col, why)
    stamp = pc.cast(table.column("timestamp"), pa.int64())  # µs since 1970 (the schema's unit)
    i = bad_row(pc.invert(pc.and_(pc.greater_equal(stamp, 0), pc.less(stamp, _YEAR_10000_US))))
    if i is not None:
        raise TraceError(f"{f}: row {i}: timestamp = {stamp[i].as_py()} µs since 1970; must be in 1970..9999")
    for col in ("shapes", "params"):
        for i, text in enumerate(table.column(col).to_pylist()):
            try:
                ok = isinstance(json.loads(text), dict)
            except ValueError:
                ok = False
            if not ok:
                fail(i, col, "must be a JSON object")


def read_traces(path: str | os.PathLike) -> pa.Table:
    """Read and validate every trace file under ``path`` into one table of :data:`SCHEMA`.

    Raises
    ------
    TraceError
        Naming the file: missing path, directory without parquet files, corrupt or
        truncated file, a file without the version key or of another schema version.
    """
    return pa.concat_tables([_read_one(f) for f in trace_files(path)])
