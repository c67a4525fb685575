"""GEMM timings measured elsewhere, as trace records: OpenXLA's GEMM performance tables.

OpenXLA measures batched dots on each GPU generation it supports (its ``matmul_perf_table_gen``
tool: one warm-up, then the median of 5 profiled kernel times, alternating two argument sets)
and ships the results as a ``GemmPerfTable`` text proto inside its GPU runtime — for JAX, the
``xla_cuda_plugin.so`` of the ``jax-cuda12-pjrt`` wheel. Each entry gives ``b, m, n, k`` and the
achieved FLOP/s per dtype triple (``bf16xbf16->bf16``), so time = 2·b·m·n·k / FLOP/s.

Replaying those records checks a GPU arch config against real hardware without one being lent:
they become ``gemm`` trace rows of backend ``xla`` that say where they came from in ``params``.
The table gives only the median, so ``time_min_s`` and ``time_max_s`` equal it, and no date,
so ``timestamp`` is the epoch.
"""

from __future__ import annotations

import datetime as _dt
import re
import zipfile
from pathlib import Path

import pyarrow as pa

from kernels.io import write_part
from kernels.trace import SCHEMA, TraceError, _json

__all__ = ["MARKER", "XLA_DTYPES", "parse_gemm_perf_table", "read_gemm_perf_table", "write_xla_gemm_traces"]

MARKER = b"proto-message: xla.GemmPerfTable"
"""The header line of the table's text; how it is found inside a shared library."""

XLA_DTYPES = {
    # XLA element type → (trace dtype, bytes). f32 dots run on TF32 tensor cores under XLA's
    # default precision on NVIDIA sm_80+ (the H100 table's f32 4096³ reaches 402 TFLOP/s, six
    # times the 67 TFLOP/s FP32 CUDA-core peak), so f32 is recorded as tfloat32 by default.
    "bf16": ("bfloat16", 2),
    "f16": ("float16", 2),
    "f32": ("tfloat32", 4),
    "f8e4m3fn": ("float8_e4m3fn", 1),
    "f8e5m2": ("float8_e5m2", 1),
}

_SECTION = re.compile(r'^  key: "([^"]+)"', re.MULTILINE)
_ENTRY = re.compile(r"entries \{((?:[^{}]|\{[^{}]*\})*)\}")
_DIM = re.compile(r"\b([bmnk]): (\d+)")
_FLOPS = re.compile(r'flops \{ key: "([^"]+)" value: (\d+) \}')
_KEY = re.compile(r"^(\w+)x(\w+)->(\w+)$")


def parse_gemm_perf_table(text: str) -> dict[str, list[dict]]:
    """``{device key: [{"b", "m", "n", "k", "flops": {dtype triple: FLOP/s}}, …]}`` from the text proto.

    Raises
    ------
    TraceError
        When the text holds no device section or a section holds no entry with b, m, n, k.
    """
    heads = list(_SECTION.finditer(text))
    if not heads:
        raise TraceError("GEMM perf table: no device section (a line '  key: \"sm_90\"') found")
    out = {}
    for i, head in enumerate(heads):
        body = text[head.end(): heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        entries = []
        for e in _ENTRY.finditer(body):
            dims = {d: int(v) for d, v in _DIM.findall(e.group(1))}
            flops = {key: int(v) for key, v in _FLOPS.findall(e.group(1))}
            if set(dims) != set("bmnk") or not flops:
                raise TraceError(f"GEMM perf table, device {head.group(1)!r}: entry without b, m, n, k and flops: "
                                 f"{' '.join(e.group(1).split())[:120]!r}")
            entries.append({**dims, "flops": flops})
        if not entries:
            raise TraceError(f"GEMM perf table: device {head.group(1)!r} has no entries")
        out[head.group(1)] = entries
    return out


def _text_in_binary(blob: bytes, where: str) -> str:
    at = blob.find(MARKER)
    if at < 0:
        raise TraceError(f"{where}: no GemmPerfTable text ({MARKER.decode()!r}) inside")
    start = blob.rfind(b"\0", 0, at) + 1
    end = blob.find(b"\0", at)
    return blob[start: end if end >= 0 else len(blob)].decode("utf-8", errors="strict")


def read_gemm_perf_table(path: str | Path) -> str:
    """The table's text from a ``.txtpb`` file, a shared library holding it, or a wheel holding that library."""
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"GEMM perf table {str(p)!r} does not exist")
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            for name in z.namelist():
                if name.endswith(".so"):
                    blob = z.read(name)
                    if MARKER in blob:
                        return _text_in_binary(blob, f"{p}:{name}")
        raise TraceError(f"{p}: no shared library inside holds a GemmPerfTable")
    blob = p.read_bytes()
    if blob.startswith(b"\x7fELF"):
        return _text_in_binary(blob, str(p))
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        raise TraceError(f"{p}: neither GemmPerfTable text, a shared library nor a wheel") from None


def _rows(entries: list[dict], device_key: str, device_name: str, dtypes: set[str] | None, source: str) -> list[dict]:
    cc = device_key.removeprefix("sm_")
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    rows = []
    for e in entries:
        b, m, n, k = e["b"], e["m"], e["n"], e["k"]
        for key, flops in sorted(e["flops"].items()):
            parts = _KEY.match(key)
            if parts is None or (dtypes is not None and key not in dtypes):
                continue
            lhs, rhs, out = parts.groups()
            if lhs != rhs or lhs not in XLA_DTYPES or out not in XLA_DTYPES:
                continue
            (dtype, eb), ob = XLA_DTYPES[lhs], XLA_DTYPES[out][1]
            t = 2 * b * m * n * k / flops
            rows.append({
                "run_id": f"xla-gemm-perf-table-{device_key}", "timestamp": epoch, "suite": "xla_gemm_perf_table",
                "kernel": "gemm", "backend": "xla", "device_name": device_name,
                "compute_capability": f"{cc[:-1]}.{cc[-1]}" if cc.isdigit() else None, "dtype": dtype,
                "m": m, "n": n, "k": k, "shapes": _json({"a": [b, m, k], "b": [b, k, n]}),
                "pattern": None, "density": None, "tasd_series": None,
                "params": _json({"batch": b, "xla_dtypes": key, "source": source, "device_key": device_key,
                                 "timing": "median of 5 profiled kernel times (only the median is published)"}),
                "flops_dense": 2 * b * m * n * k, "flops_effectual": 2 * b * m * n * k,
                "bytes_min": b * ((m * k + k * n) * eb + m * n * ob),
                "time_median_s": t, "time_min_s": t, "time_max_s": t, "repeats": 5, "warmup": 1,
                "energy_j": None, "sm_clock_mhz": None, "mem_clock_mhz": None,
                "numpy_version": None, "cupy_version": None, "cuda_version": None, "git_commit": None,
            })
    return rows


def write_xla_gemm_traces(text: str, device_key: str, device_name: str, out_dir: str | Path,
                          source: str, dtypes: set[str] | None = None) -> tuple[Path, int]:
    """Write ``device_key``'s entries as one trace part file under ``out_dir``; ``(path, rows)``.

    ``dtypes`` keeps only those triples (``{"bf16xbf16->bf16"}``); triples of mixed operand
    types or of element types outside :data:`XLA_DTYPES` are skipped.
    """
    table = parse_gemm_perf_table(text)
    if device_key not in table:
        raise TraceError(f"GEMM perf table has no device {device_key!r}; it has {', '.join(sorted(table))}")
    rows = _rows(table[device_key], device_key, device_name, dtypes, source)
    if not rows:
        raise TraceError(f"GEMM perf table, device {device_key!r}: no entry of the dtypes asked for")
    dest = write_part(pa.Table.from_pylist(rows, schema=SCHEMA), out_dir, f"xla-gemm-perf-table-{device_key}")
    return dest, len(rows)
