"""The types of implementation descriptions (Record, Step, Impl), the record readers and warp memory counts rooms share.

:mod:`kernels.impls` holds the one registry and its docstring says how to add an implementation;
the description modules beside the kernels (:mod:`kernels.nm.impls`, :mod:`kernels.kron.impls`,
:mod:`kernels.projection.impls`) build their entries from these types, so none of them imports
the registry (it imports them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from kernels.errors import InputError

__all__ = ["UNITS", "Impl", "Record", "Step"]

UNITS = ("tensor_core", "sparse_tensor_core", "cuda_core", "memory")


_DTYPE = {"float16": "fp16", "bfloat16": "bf16", "tfloat32": "tf32", "float32": "fp32", "float64": "fp64",
          "int8": "int8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}


_ITEM = {"float16": 2, "bfloat16": 2, "tfloat32": 4, "float32": 4, "float64": 8, "int8": 1,
         "float8_e4m3fn": 1, "float8_e5m2": 1}


_SMEM_BANKS, _WARP, _SECTOR = 32, 32, 32


@dataclass(frozen=True)
class Record:
    """The trace-record fields a description reads (``from_row`` takes a trace row dict)."""

    kernel: str
    dtype: str
    backend: str = "cupy"
    m: int | None = None
    n: int | None = None
    k: int | None = None
    pattern: str | None = None
    tasd_series: str | None = None
    shapes: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    git_commit: str | None = None

    @classmethod
    def from_row(cls, row: dict) -> Record:
        def js(v):
            try:
                out = json.loads(v or "{}") if isinstance(v, str) else (v or {})
            except json.JSONDecodeError:
                raise InputError(f"trace record {row.get('kernel')!r}: not JSON: {v!r}") from None
            return out if isinstance(out, dict) else {}

        return cls(row["kernel"], row["dtype"], row.get("backend") or "cupy", row.get("m"), row.get("n"),
                   row.get("k"), row.get("pattern"), row.get("tasd_series"), js(row.get("shapes")),
                   js(row.get("params")), row.get("git_commit"))

    @property
    def item(self) -> int:
        return _ITEM.get(self.dtype, 4)

    @property
    def unit_dtype(self) -> str:
        return _DTYPE.get(self.dtype, self.dtype)


@dataclass(frozen=True)
class Step:
    """One kind of device launch of an implementation (see the module docstring)."""

    name: str
    unit: str
    dtype: str
    launches: int = 1
    gemm: tuple[int, int, int, int] | None = None
    macs: int = 0
    blocks: int = 0
    blocks_per_sm: int = 1
    smem_cycles_per_block: float = 0.0
    loop_steps_per_block: float = 0.0
    bytes_read: int = 0
    bytes_written: int = 0
    working_set: int = 0
    l2_bytes: int = 0
    b_mn_major: bool = False

    def __post_init__(self):
        if self.unit not in UNITS:
            raise InputError(f"Step {self.name!r}: unit {self.unit!r} is not one of {', '.join(UNITS)}")


@dataclass(frozen=True)
class Impl:
    """An implementation: its name (``params["impl"]``), trace kernel, main unit and how one call runs."""

    name: str
    kernel: str
    unit: str
    summary: str
    steps: Callable[[Record], list[Step]]
    host_calls: Callable[[Record], int] = lambda r: 1


def _pattern(text: str) -> tuple[int, int]:
    n, m = (int(x) for x in str(text).split(":"))
    return n, m


def _need(r: Record, *names):
    vals = [getattr(r, n) for n in names]
    if any(v is None for v in vals):
        raise InputError(f"trace record {r.kernel!r}: needs {', '.join(names)} (got {vals})")
    return [int(v) for v in vals]


def _gemm_steps(r: Record) -> list[Step]:
    m, n, k = _need(r, "m", "n", "k")
    batch = int(r.params.get("batch", 1))
    unit = "cuda_core" if r.dtype in ("float32", "float64") else "tensor_core"  # CuPy leaves TF32 off
    size = (m * k + k * n + m * n) * r.item * batch
    # B is a C-ordered [batch,] k x n array (CuPy's matmul operands, XLA's perf-table rhs [b, k, n]): N-major
    return [Step("cublas_gemm", unit, r.unit_dtype, gemm=(m, n, k, batch), macs=m * n * k * batch,
                 bytes_read=(m * k + k * n) * r.item * batch, bytes_written=m * n * r.item * batch, working_set=size,
                 b_mn_major=True)]


def warp_sectors(offsets, item: int) -> int:
    """Distinct 32-byte sectors one warp-wide access of ``item``-byte elements at element ``offsets`` touches.

    >>> warp_sectors(range(32), 4), warp_sectors(range(0, 32 * 8, 8), 4)
    (4, 32)
    """
    return len({o * item // _SECTOR for o in offsets})


def warp_bank_wavefronts(word_addresses) -> int:
    """Shared-memory wavefronts one warp-wide 4-byte access takes: the most distinct words in one bank.

    >>> warp_bank_wavefronts(range(32)), warp_bank_wavefronts(range(0, 32 * 64, 64))
    (1, 32)
    """
    banks: dict[int, set] = {}
    for a in word_addresses:
        banks.setdefault(a % _SMEM_BANKS, set()).add(a)
    return max(len(s) for s in banks.values()) if banks else 0
