"""How each kernel implementation runs: units, launches, tiles, memory passes and host calls, per trace record.

A replay (``accelsim validate``) reads these descriptions to turn one trace record into the
work a GPU model can time; nothing here imports ``accelsim``. Each implementation is an
:class:`Impl` keyed by the name trace records carry in ``params["impl"]`` (the suites write it;
records made before that get it from :func:`infer_impl`). ``Impl.steps(record)`` lists the
device work of one call as :class:`Step` s, and ``Impl.host_calls(record)`` counts the host-side
operations that dispatch it (CuPy/cuBLAS calls, each host synchronisation counts as one too).

A :class:`Step` is one kind of launch, ``launches`` times, on one unit:

- ``tensor_core`` / ``sparse_tensor_core`` / ``cuda_core`` with ``gemm=(m, n, k, batch)``: a
  library GEMM (cuBLAS, cuSPARSELt); the device model picks its CTA tile and counts waves;
- ``cuda_core`` with ``blocks``: a hand-written kernel, given by what its code does per block:
  shared-memory pipe cycles (wavefronts, bank conflicts included), main-loop steps whose global
  round trip is exposed, and the blocks resident per SM (registers/shared memory, from
  ``nvcc -Xptxas -v`` for sm_90);
- ``memory``: element-wise passes (adds, copies, reductions) that only stream bytes.

Every step carries the bytes it reads and writes in device memory and its working set (which
cache level holds it warm).

Adding an implementation (e.g. a new CUDA kernel recorded as ``impl="nm_vector_cuda"``)::

    def _nm_vector_steps(r: Record) -> list[Step]:
        ...  # read off the kernel: grid, per-block shared-memory cycles, loop steps, bytes
        return [Step("nm_vector", "cuda_core", "fp32", blocks=..., blocks_per_sm=...,
                     smem_cycles_per_block=..., loop_steps_per_block=..., macs=...,
                     bytes_read=..., bytes_written=..., working_set=...)]

    register(Impl("nm_vector_cuda", "nm_spmm", "cuda_core", "vector-wise N:M, CUDA cores",
                  _nm_vector_steps, host_calls=lambda r: 1))

A library call is shorter: ``Step("lt", "sparse_tensor_core", "fp16", gemm=(m, n, k, 1), ...)``.
The recorder's suite then passes ``params={"impl": "nm_vector_cuda", ...}``. Descriptions may live
beside their kernels (:mod:`kernels.impls_nm`, :mod:`kernels.impls_kron`, :mod:`kernels.projection_impls`):
they register here when this module is imported, so :data:`IMPLS` is the one registry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable

from kernels.errors import InputError

__all__ = [
    "IMPLS",
    "UNITS",
    "Impl",
    "Record",
    "Step",
    "describe",
    "infer_impl",
    "register",
    "warp_bank_wavefronts",
]

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


IMPLS: dict[str, Impl] = {}


def register(impl: Impl) -> Impl:
    """Add ``impl`` to :data:`IMPLS` (a later registration of a name replaces it)."""
    IMPLS[impl.name] = impl
    return impl


def describe(name: str) -> Impl:
    """The :class:`Impl` called ``name``; :class:`InputError` naming the known ones otherwise."""
    try:
        return IMPLS[name]
    except KeyError:
        raise InputError(f"implementation {name!r} has no description in kernels.impls; "
                         f"known: {', '.join(sorted(IMPLS))}") from None


def warp_bank_wavefronts(word_addresses) -> int:
    """Shared-memory wavefronts one warp-wide 4-byte access takes: the most distinct words in one bank.

    >>> warp_bank_wavefronts(range(32)), warp_bank_wavefronts(range(0, 32 * 64, 64))
    (1, 32)
    """
    banks: dict[int, set] = {}
    for a in word_addresses:
        banks.setdefault(a % _SMEM_BANKS, set()).add(a)
    return max(len(s) for s in banks.values()) if banks else 0


def _pattern(text: str) -> tuple[int, int]:
    n, m = (int(x) for x in str(text).split(":"))
    return n, m


def _need(r: Record, *names):
    vals = [getattr(r, n) for n in names]
    if any(v is None for v in vals):
        raise InputError(f"trace record {r.kernel!r}: needs {', '.join(names)} (got {vals})")
    return [int(v) for v in vals]


# --------------------------------------------------------------------------- library GEMMs
def _gemm_steps(r: Record) -> list[Step]:
    m, n, k = _need(r, "m", "n", "k")
    batch = int(r.params.get("batch", 1))
    unit = "cuda_core" if r.dtype in ("float32", "float64") else "tensor_core"  # CuPy leaves TF32 off
    size = (m * k + k * n + m * n) * r.item * batch
    return [Step("cublas_gemm", unit, r.unit_dtype, gemm=(m, n, k, batch), macs=m * n * k * batch,
                 bytes_read=(m * k + k * n) * r.item * batch, bytes_written=m * n * r.item * batch, working_set=size)]


def _xla_gemm_steps(r: Record) -> list[Step]:
    """OpenXLA's GEMMs (imported tables): tensor cores at the record's dtype, TF32 included."""
    (step,) = _gemm_steps(r)
    return [Step(step.name, "tensor_core", r.unit_dtype, gemm=step.gemm, macs=step.macs, bytes_read=step.bytes_read,
                 bytes_written=step.bytes_written, working_set=step.working_set)]


def _cusparselt_steps(r: Record) -> list[Step]:
    m, n, k = _need(r, "m", "n", "k")
    read = (m * k // 2 + k * n) * r.item + m * k // 8
    return [Step("cusparselt_2of4", "sparse_tensor_core", r.unit_dtype, gemm=(m, n, k, 1), macs=m * n * k // 2,
                 bytes_read=read, bytes_written=m * n * r.item, working_set=read + m * n * r.item)]


# --------------------------------------------------------------------------- N:M CUDA kernel
# kernels/cuda/nm_spmm.cu at a1a550e: block 128 threads (4 warps), BM x 64 outputs; BM = 32 on the
# high-sparsity path (n/m <= 0.25), else 64; TM = BM/16 rows per thread. ptxas (sm_90): 225
# registers on the low path (2 blocks/SM by registers), 128 on the high path (4 blocks/SM).
_NM_THREADS, _NM_BN, _NM_KC = 128, 64, 32
_NM_LDS_PER_VALUE = 4 + 4 + 1 + 1  # wavefronts per warp, kept value, row: 2 LDS.128 of B, LDS of A, LDS.U8 of index


def _nm_kernel_step(name: str, rows: int, cols: int, kk: int, n: int, m: int, dtype: str, item: int) -> Step:
    high = n / m <= 0.25
    bm = 32 if high else 64
    per_sm = 4 if high else 2
    tm = bm // 16
    groups = -(-kk // m)
    bkg = max(1, _NM_KC // m)
    chunks = -(-groups // bkg)
    warps = _NM_THREADS // _WARP
    compute = warps * groups * n * tm * _NM_LDS_PER_VALUE
    b_loads, a_loads = _NM_KC * _NM_BN // _NM_THREADS, bm * _NM_KC // _NM_THREADS
    staging = chunks * warps * (b_loads + 2 * a_loads)  # STS of the prefetched B and A (+ index) slots
    # fp32 loads land in registers and are stored after the chunk's FMAs (one exposed round trip
    # per chunk: the barrier); fp16 values are widened to fp32 as they load (nm_to_f), so the
    # prefetch completes before the FMAs and resident blocks' round trips add up -- on the H200
    # set (docs/results/validate.md) two blocks' trips overlap, hence 1 + per_sm/2.
    exposed = 1.0 if item == 4 else 1.0 + per_sm / 2
    blocks = -(-cols // _NM_BN) * -(-rows // bm)
    kept = groups * n
    read = rows * kept * (item + 1) + kk * cols * item
    return Step(name, "cuda_core", "fp32", blocks=blocks, blocks_per_sm=per_sm,
                smem_cycles_per_block=compute + staging, loop_steps_per_block=(chunks + 1) * exposed,
                macs=rows * cols * kept, bytes_read=read, bytes_written=rows * cols * 4,
                working_set=read + rows * cols * 4)


def _nm_steps(r: Record) -> list[Step]:
    m, n, k = _need(r, "m", "n", "k")
    pn, pm = _pattern(r.pattern)
    return [_nm_kernel_step("nm_spmm", m, n, k, pn, pm, r.unit_dtype, r.item)]


def _tasd_terms(r: Record) -> list[tuple[int, int]]:
    if not r.tasd_series:
        raise InputError(f"trace record {r.kernel!r}: needs tasd_series")
    return [_pattern(t) for t in str(r.tasd_series).split("+")]


def _add_step(rows: int, cols: int, count: int) -> Step:
    size = rows * cols * 4
    return Step("add", "memory", "fp32", launches=count, bytes_read=2 * size * count, bytes_written=size * count,
                working_set=3 * size)


def _tasd_steps(r: Record) -> list[Step]:
    """tasd_spmm: one nm_spmm launch per term, then ``out += term`` (an fp32 add) for every term after the first."""
    m, n, k = _need(r, "m", "n", "k")
    terms = _tasd_terms(r)
    steps = [_nm_kernel_step(f"term {tn}:{tm}", m, n, k, tn, tm, r.unit_dtype, r.item) for tn, tm in terms]
    if len(terms) > 1:
        steps.append(_add_step(m, n, len(terms) - 1))
    return steps


# --------------------------------------------------------------------------- Kron
def _kron_factors(r: Record) -> list[tuple[int, int]]:
    factors = r.params.get("factors")
    if not factors:
        raise InputError(f"trace record {r.kernel!r}: params has no 'factors' (the Kron factor shapes)")
    return [(int(p), int(q)) for p, q in factors]


# kernels/kron.py at a1a550e: the launch grouping of kernels/cuda/kron_fused.cu (that kernel has since been
# replaced by kron_fastkron.cu, described by its own impl name; these rules stay for its records).
_KF_MAX_FUSED, _KF_SMEM_BYTES = 8, 48 * 1024


def _kf_slice_max(group) -> int:
    size = best = math.prod(p for p, _ in group)
    for p, q in group:
        size = size // p * q
        best = max(best, size)
    return best


def _kf_groups(shapes, itemsize) -> list:
    """Factors (last first) split into launches whose two ping-pong slices fit shared memory; ``None``
    marks a factor too large alone (it ran as a shuffle step)."""
    cap = _KF_SMEM_BYTES // (2 * itemsize) - 1
    groups, cur = [], []
    for p, q in reversed(shapes):
        trial = cur + [(p, q)]
        if len(trial) <= _KF_MAX_FUSED and _kf_slice_max(trial) <= cap:
            cur = trial
            continue
        if cur:
            groups.append(cur)
        cur = [(p, q)] if _kf_slice_max([(p, q)]) <= cap else []
        if not cur:
            groups.append(None)
    if cur:
        groups.append(cur)
    return groups


def _kron_fused_steps(r: Record) -> list[Step]:
    """kernels/cuda/kron_fused.cu (a1a550e): one launch per factor group (:func:`_kf_groups`), 256 threads,
    grid (ceil(J/tile), min(M, 65535)); per row a block loads ``tile`` chunks to shared memory, runs the
    group's factors there (per output one dependent p-long FMA chain reading a[pi] from shared memory
    and F through the read-only cache), and writes its outputs."""
    (m,) = _need(r, "m")
    factors = _kron_factors(r)
    item = r.item
    rev = list(reversed(factors))
    steps, pos, k_in = [], 0, math.prod(p for p, _ in factors)
    for group in _kf_groups(factors, item):
        if group is None:
            steps += _shuffle_factor_steps(r, m, k_in, *rev[pos])
            k_in = k_in // rev[pos][0] * rev[pos][1]
            pos += 1
            continue
        pos += len(group)
        s_in = math.prod(p for p, _ in group)
        t_out = math.prod(q for _, q in group)
        j = k_in // s_in
        stride = _kf_slice_max(group) | 1
        tile = max(1, min(j, 64, _KF_SMEM_BYTES // (2 * stride * item)))
        smem = 2 * tile * stride * item
        per_sm = max(1, min(2048 // 256, 233472 // (smem + 1024)))
        grid_y = min(m, 65535)
        blocks = -(-j // tile) * grid_y
        rows_per_block = -(-m // grid_y)
        cycles, chain, length, macs = 0.0, 0.0, s_in, 0
        nj = min(tile, j)
        loads = -(-nj * s_in // _WARP)
        for p, q in group:
            r_count = length // p
            out_len = q * r_count
            elems = nj * out_len
            warp0 = [(e % nj) * stride + ((e // nj) % r_count) * p for e in range(min(_WARP, elems))]
            lds = warp_bank_wavefronts(warp0)
            cycles += -(-elems // _WARP) * p * (lds + 1)  # LDS of a[pi] + the F read, per FMA
            chain += -(-elems // 256) * p  # dependent FMA steps per thread
            macs += elems * p
            length = out_len
        cycles += 2 * loads + -(-nj * length // _WARP)
        # the store y[row, t*J + j0 + jj] writes runs of nj elements: a 32-byte sector per run when shorter
        written = m * j * t_out * item * max(1, _SECTOR // (nj * item))
        steps.append(Step(f"kron_fused x{len(group)}", "cuda_core", r.unit_dtype, blocks=blocks,
                          blocks_per_sm=per_sm, smem_cycles_per_block=cycles * rows_per_block,
                          loop_steps_per_block=0.0, macs=macs * -(-j // nj) * m,
                          bytes_read=m * k_in * item, bytes_written=written,
                          working_set=m * (k_in + j * t_out) * item))
        k_in = j * t_out
    return steps


def _shuffle_factor_steps(r: Record, m: int, k_in: int, p: int, q: int) -> list[Step]:
    """One shuffle step: cuBLAS (m·K/p, p) @ (p, q), then the rotating transpose copy of the (m, K/p, q) result."""
    item = r.item
    rows = m * k_in // p
    out = rows * q * item
    unit = "cuda_core" if r.dtype in ("float32", "float64") else "tensor_core"
    return [
        Step(f"shuffle gemm {p}x{q}", unit, r.unit_dtype, gemm=(rows, q, p, 1), macs=rows * q * p,
             bytes_read=rows * p * item + p * q * item, bytes_written=out, working_set=rows * p * item + out),
        Step("shuffle transpose", "memory", r.unit_dtype, bytes_read=out, bytes_written=out, working_set=2 * out),
    ]


def _kron_shuffle_steps(r: Record) -> list[Step]:
    (m,) = _need(r, "m")
    k_in = math.prod(p for p, _ in _kron_factors(r))
    steps = []
    for p, q in reversed(_kron_factors(r)):
        steps += _shuffle_factor_steps(r, m, k_in, p, q)
        k_in = k_in // p * q
    return steps


# --------------------------------------------------------------------------- projections
# kernels/projection.py on CuPy, counted call by call: each CuPy call is one host dispatch and (most) one
# kernel launch; an allocation or a synchronisation (float() of a device scalar, thrust's sort) is a host
# call without a launch. (host calls, launches) per step:
_L1_BALL_ROWS = (
    (1, 1),  # xp.asarray(radii): a scalar copied to the device
    (1, 1),  # -a
    (7, 5),  # xp.sort: a copy, then thrust: temp allocation, 4 radix passes, a sync
    (1, 1),  # -(sorted)
    (3, 2),  # xp.cumsum: CUB scan: temp allocation, 2 launches
    (4, 4),  # arange, s * k, csum - rr, >=
    (3, 3),  # count_nonzero, rho - 1, maximum
    (4, 4),  # take_along_axis: index arrays, gather
    (3, 3),  # - radii, maximum(rho, 1), /
    (4, 4),  # sum(a), <= radii, maximum(tau, 0), where
    (2, 2),  # a - tau, maximum(., 0)
)
_PROJECTION_CALLS = {
    # (host calls, launches, full-size reads, full-size writes)
    "project_l1inf_bilevel": (
        6 + 2 + sum(h for h, _ in _L1_BALL_ROWS) + 4,  # norms (max, min, -, maximum, copy, empty); sum + sync; clip
        5 + 1 + sum(n for _, n in _L1_BALL_ROWS) + 3, 3, 1),
    "project_multilevel": (
        1 + 2 + 2 + 1 + sum(h for h, _ in _L1_BALL_ROWS) + 2 + 2,  # abs; 2 max; sum + sync; asarray; l1 ball; 2 min
        1 + 2 + 1 + 1 + sum(n for _, n in _L1_BALL_ROWS) + 2 + 2, 3, 2),    # ...; copysign, astype
}


def _projection_size(r: Record) -> int:
    shape = r.shapes.get("y") or r.shapes.get("t")
    if not shape:
        raise InputError(f"trace record {r.kernel!r}: shapes has no 'y' (the projected array)")
    return math.prod(int(s) for s in shape) * r.item


def _projection_steps(r: Record) -> list[Step]:
    _, launches, reads, writes = _PROJECTION_CALLS[r.kernel]
    size = _projection_size(r)
    return [Step("projection passes", "memory", r.unit_dtype, launches=launches, bytes_read=reads * size,
                 bytes_written=writes * size, working_set=2 * size)]


def _projection_calls(r: Record) -> int:
    return _PROJECTION_CALLS[r.kernel][0]


register(Impl("dense_cublas", "gemm", "tensor_core", "cupy.matmul: cuBLAS GEMM (fp32 on CUDA cores, TF32 off)",
              _gemm_steps))
register(Impl("gemm_xla", "gemm", "tensor_core", "OpenXLA GEMM (imported perf table), tensor cores", _xla_gemm_steps,
              host_calls=lambda r: 0))
register(Impl("nm_2of4_cusparselt", "cusparselt_2_4", "sparse_tensor_core", "cuSPARSELt 2:4 SpMM", _cusparselt_steps))
register(Impl("nm_scalar_cuda", "nm_spmm", "cuda_core", "kernels/cuda/nm_spmm.cu: scalar fp32 FMAs, shared-memory B",
              _nm_steps))
register(Impl("tasd_multipass_cuda", "tasd_spmm", "cuda_core", "tasd_spmm: one nm_spmm launch per term plus adds",
              _tasd_steps, host_calls=lambda r: 2 * len(_tasd_terms(r)) - 1))
register(Impl("kron_fused_cuda", "kron_matmul_fused", "cuda_core", "kernels/cuda/kron_fused.cu: factor groups "
              "in shared memory", _kron_fused_steps, host_calls=lambda r: 3 * len(_kron_factors(r))))
register(Impl("kron_shuffle_cupy", "kron_matmul_shuffle", "cuda_core", "per factor a cuBLAS GEMM and a transpose copy",
              _kron_shuffle_steps, host_calls=lambda r: 2 * len(_kron_factors(r))))
register(Impl("bilevel_l1inf_xp", "project_l1inf_bilevel", "memory", "~45 CuPy calls (sort, scan) and their syncs",
              _projection_steps, _projection_calls))
register(Impl("multilevel_l1_inf_inf_xp", "project_multilevel", "memory", "~45 CuPy calls (sort, scan) and their syncs",
              _projection_steps, _projection_calls))

_BY_KERNEL = {
    ("gemm", "cupy"): "dense_cublas",
    ("gemm", "xla"): "gemm_xla",
    ("cusparselt_2_4", "cupy"): "nm_2of4_cusparselt",
    ("nm_spmm", "cupy"): "nm_scalar_cuda",
    ("tasd_spmm", "cupy"): "tasd_multipass_cuda",
    ("kron_matmul_fused", "cupy"): "kron_fused_cuda",
    ("kron_matmul_shuffle", "cupy"): "kron_shuffle_cupy",
    ("project_l1inf_bilevel", "cupy"): "bilevel_l1inf_xp",
    ("project_multilevel", "cupy"): "multilevel_l1_inf_inf_xp",
}
"""Implementation of records made before ``params["impl"]`` named one (through commit a1a550e and
its successors up to this module): the trace kernel and backend decide it, since each kernel had
exactly one implementation per backend then (gemm's old ``"matmul"`` and cuSPARSELt's ``"cusparselt"``
tags included)."""


_LEGACY_TAGS = (None, "matmul", "cusparselt")
"""``params["impl"]`` values of records made before the descriptions: they say nothing about the implementation."""


def infer_impl(r: Record) -> str:
    """The implementation name of record ``r``: ``params["impl"]`` when it names a described one; for
    older records (no impl, or a legacy tag) inferred from its kernel and backend (:data:`_BY_KERNEL`).
    :class:`InputError` for an impl without a description (never replayed as another implementation)."""
    name = r.params.get("impl")
    if isinstance(name, str) and name in IMPLS:
        return name
    found = _BY_KERNEL.get((r.kernel, r.backend)) if name in _LEGACY_TAGS else None
    if found is None:
        raise InputError(f"trace record {r.kernel!r} (backend {r.backend!r}, impl {name!r}): no implementation "
                         f"description; add one to kernels.impls (known: {', '.join(sorted(IMPLS))})")
    return found


# The descriptions kept beside their kernels register into IMPLS here (they import this module's types).
from kernels import impls_kron, impls_nm, projection_impls  # noqa: E402,F401
