"""The sweep result store: a parquet dataset directory of atomically written part files.

Each flush writes one ``part-*.parquet`` through :func:`kernels.io.write_part`, so a sweep
killed at any moment leaves only complete parts (plus, at worst, a hidden temporary file that
readers skip). Rows are keyed by ``key`` (the hash of a resolved config and workload); the
store never holds two rows with the same key written by one sweep, and readers keep the first
row per key should two sweeps have raced. A part that cannot be read (damaged by something other than
this writer) stops both reading and resuming with one line naming it, rather than being skipped: the
user moves or deletes it, and a resumed sweep computes its points again.
"""

from __future__ import annotations

import time
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from accelsim.errors import ConfigError
from kernels.io import write_part

__all__ = ["ResultStore", "read_results"]


def _parts(path: Path) -> list[Path]:
    """Complete part files in name order; temporaries start with '.' and are never listed."""
    return sorted(p for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))


def _ensure_dataset(path: str | Path, *, must_exist: bool) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        if must_exist and path.is_file():
            return path
        raise ConfigError(f"{path}: exists and is not a sweep dataset directory; pass a new or existing directory")
    if must_exist and not path.exists():
        raise ConfigError(f"{path}: no such sweep results (run `accelsim sweep ... --out {path}` first)")
    return path


def _read_part(f: Path, columns: list[str] | None = None) -> pa.Table:
    """One part file; an unreadable one (truncated, not parquet, no ``key`` column) stops the caller
    with a line that names it: its rows cannot be trusted, and moving it away makes a resumed sweep
    compute them again."""
    try:
        table = pq.read_table(f, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{f}: unreadable sweep part file ({' '.join(str(exc).split())[:160]}); move or "
                          f"delete it and re-run: the points it held are computed again") from None
    if "key" not in table.column_names:
        raise ConfigError(f"{f}: not a sweep part file (no 'key' column); move it out of the results folder")
    for name in table.column_names:  # metrics and arch parameters are finite numbers when a sweep writes them
        if pa.types.is_floating(table.schema.field(name).type):
            values = table.column(name).to_pylist()
            bad = next((i for i, v in enumerate(values) if v is not None and not math.isfinite(v)), None)
            if bad is not None:
                raise ConfigError(f"{f}: row {bad}: {name} = {values[bad]!r}; a sweep writes finite numbers only, "
                                  "so this part was altered: move or delete it and re-run")
    return table


def _concat(tables: list[pa.Table]) -> pa.Table:
    """Concatenate parts; a column typed differently across parts (e.g. numbers in one, text in
    another, from two sweeps over different grids) is read as text rather than failing."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowTypeError:
        types: dict[str, set] = {}
        for t in tables:
            for f in t.schema:
                types.setdefault(f.name, set()).add(f.type)
        numeric = (pa.types.is_integer, pa.types.is_floating)
        clash = {n for n, ts in types.items()
                 if len(ts - {pa.null()}) > 1 and not all(any(f(t) for f in numeric) for t in ts - {pa.null()})}
        tables = [t.cast(pa.schema([pa.field(f.name, pa.string()) if f.name in clash else f for f in t.schema]))
                  for t in tables]
        return pa.concat_tables(tables, promote_options="permissive")


def read_results(path: str | Path) -> pa.Table:
    """All rows of a dataset directory (or one parquet file), first row per key, sorted by key.

    Parts from sweeps over different grids may have different parameter columns; missing
    columns read as null and numeric types widen (``promote_options="permissive"``).
    """
    path = _ensure_dataset(path, must_exist=True)
    files = [path] if path.is_file() else _parts(path)
    if not files:
        raise ConfigError(f"{path}: sweep dataset has no part files")
    table = _concat([_read_part(f) for f in files])
    keys = table.column("key").to_pylist()
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    order = [first[k] for k in sorted(first)]
    return table.take(pa.array(order, type=pa.int64()))


class ResultStore:
    """Append-only writer: buffer finished rows, flush a part every ``flush_rows`` rows or
    ``flush_seconds`` seconds (small batches, so an interrupted sweep loses little or nothing).

    Use as a context manager: leaving it, normally or by an exception, flushes what is buffered.
    """

    def __init__(self, path: str | Path, *, flush_rows: int = 64, flush_seconds: float = 5.0):
        self.path = _ensure_dataset(path, must_exist=False)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._buf: list[dict] = []
        self._last = time.monotonic()

    def keys(self) -> set[str]:
        """Keys already stored (reads only the ``key`` column of each part)."""
        if not self.path.is_dir():
            return set()
        out: set[str] = set()
        for f in _parts(self.path):
            out.update(_read_part(f, columns=["key"]).column("key").to_pylist())
        return out

    def add(self, rows: list[dict]) -> None:
        self._buf.extend(rows)
        if len(self._buf) >= self.flush_rows or time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if not self._buf:
            return
        write_part(pa.Table.from_pylist(self._buf), self.path)
        self._buf = []

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
