"""Descriptions of the GPU N:M SpMM / one-pass TASD implementations the dispatcher records (kernels.impls entries).

:data:`ENTRIES` and :data:`LEGACY` (older records' kernels) are registered by :mod:`kernels.impls`, which
also reads the per-term cuSPARSELt and cast steps. The packed
CUDA-core kernel (``nm_spmm_packed.cu``, :mod:`kernels.nm.configs`) is described from the
tile configuration trace records carry in ``params`` (top level from :func:`kernels.nm.cuda.plan`,
or under ``params["cuda_core"]`` from :func:`kernels.nm.dispatch.plan`); the library paths
(cuSPARSELt 2:4 per term, dense cuBLAS on the cached dense A) from the record's shape and dtype.
Shared-memory figures are from the SASS in ``docs/results/nm_spmm_gpu.md``.
"""

from __future__ import annotations

import math

from kernels.errors import InputError
from kernels.impl_types import _WARP, Impl, Record, Step, _need, _pattern
from kernels.nm.configs import IMPL_NAMES, smem_bytes, threads

__all__ = ["ENTRIES", "LEGACY", "cast_steps", "cuda_config", "cusparselt_terms_calls", "cusparselt_terms_steps",
           "nm_terms", "packed_entries"]

_SMEM_PER_SM = 228 * 1024
_RESERVED_PER_BLOCK = 1024
_LDS128_WAVEFRONTS = 4  # a warp's distinct 16-byte words: 512 B = 4 x 128 B
# Per kept entry and warp: modes 0, 1 and 3's dense loop issue 2 LDS.128 of A (lanes of one warp share
# their rows: one broadcast wavefront each) and 2 LDS.128 of B (distinct columns); mode 0 adds an LDS.64
# of K rows per two entries; mode 2 issues 16 LDS.128 of B (one pair per row), 2 of A and an LDS.64 of
# the 8 index bytes.
_WAVEFRONTS_PER_ENTRY = {0: 2 + 2 * _LDS128_WAVEFRONTS + 0.5, 1: 2 + 2 * _LDS128_WAVEFRONTS,
                         2: 2 + 16 * _LDS128_WAVEFRONTS + 1, 3: 2 + 2 * _LDS128_WAVEFRONTS}
_CFG_KEYS = ("mode", "bm", "bn", "tm", "stages", "emax", "ks", "split")


def _tasd_terms(r: Record) -> list[tuple[int, int]]:
    if not r.tasd_series:
        raise InputError(f"trace record {r.kernel!r}: needs tasd_series")
    return [_pattern(t) for t in str(r.tasd_series).split("+")]


def nm_terms(r: Record) -> list[tuple[int, int]]:
    """(N, M) of each term: the TASD series, else the record's pattern."""
    return _tasd_terms(r) if r.tasd_series else [_pattern(r.pattern)]


def cuda_config(r: Record) -> dict:
    """The packed kernel's tile configuration in ``r.params`` (nested under ``cuda_core`` by the dispatcher)."""
    cfg = r.params.get("cuda_core") if isinstance(r.params.get("cuda_core"), dict) else r.params
    missing = [key for key in _CFG_KEYS if key not in cfg]
    if missing:
        raise InputError(f"trace record {r.kernel!r} (impl {r.params.get('impl')!r}): params has no "
                         f"{', '.join(missing)} (the packed kernel's tile configuration)")
    return {key: int(cfg[key]) for key in _CFG_KEYS}


def packed_entries(terms, k: int) -> tuple[int, int]:
    """(L, entries per row over all of K): L = lcm of the terms' M, ``sum(N * L / M)`` entries per L rows."""
    lblock = math.lcm(*(m for _, m in terms))
    return lblock, -(-k // lblock) * sum(n * lblock // m for n, m in terms)


def _blocks_per_sm(cfg: dict) -> int:
    """``__launch_bounds__(threads, 2)`` for 256-thread tiles, ``(threads, 3)`` below; then shared memory."""
    by_regs = 2 if threads(cfg["bm"], cfg["bn"], cfg["tm"]) >= 256 else 3
    smem = smem_bytes(cfg["mode"], cfg["bm"], cfg["bn"], cfg["stages"], cfg["emax"])
    return max(1, min(by_regs, _SMEM_PER_SM // (smem + _RESERVED_PER_BLOCK)))


def _packed_steps(r: Record) -> list[Step]:
    rows, cols, k = _need(r, "m", "n", "k")
    cfg = cuda_config(r)
    terms = nm_terms(r)
    mode, bm, bn = cfg["mode"], cfg["bm"], cfg["bn"]
    lblock, entries = packed_entries(terms, k)
    ks = cfg["ks"]
    stages = -(-k // ks)
    split = -(-stages // -(-stages // min(cfg["split"], stages)))  # nm_cuda._launch: no empty split
    stages_per_block = -(-stages // split)
    warps = threads(bm, bn, cfg["tm"]) // 32
    rows_pad, cols4 = -(-rows // 32) * 32, -(-cols // 4) * 4
    blocks = -(-cols4 // bn) * -(-rows_pad // bm) * split
    # mode 3 runs the dense FMA loop over the stage's ks rows; the others over its entries
    loop_items = stages_per_block * ks if mode == 3 else -(-entries // split)
    compute = warps * loop_items * _WAVEFRONTS_PER_ENTRY[mode]
    per_stage = ks // lblock * (entries // -(-k // lblock))  # entries of one stage, per row (vector)
    b_rows = per_stage * bm // 32 if mode == 1 else (per_stage if mode != 3 else ks)
    staged_bytes = stages_per_block * (per_stage * bm * 4 + b_rows * bn * 4 + per_stage * (bm if mode >= 2 else 4))
    expand = stages_per_block * per_stage * bm * 2 / 32 if mode == 3 else 0.0  # LDS.U8 + STS per (entry, row)
    macs = rows * cols * (k if mode == 3 else entries)
    index_bytes = rows_pad * entries if mode >= 2 else rows_pad // 32 * entries * 4
    a_bytes = rows_pad * entries * 4 + index_bytes
    b_bytes = k * cols4 * 4
    c_bytes = rows * cols4 * 4
    out = [Step(f"nm_packed mode {mode}", "cuda_core", "fp32", blocks=blocks, blocks_per_sm=_blocks_per_sm(cfg),
                smem_cycles_per_block=compute + staged_bytes / 128 + expand,
                loop_steps_per_block=stages_per_block + 1, macs=macs, bytes_read=a_bytes + b_bytes,
                bytes_written=c_bytes * split, working_set=a_bytes + b_bytes + c_bytes * split)]
    if split > 1:  # nm_splitk_reduce: the partials summed in z order
        out.append(Step("splitk_reduce", "memory", "fp32", bytes_read=c_bytes * split, bytes_written=c_bytes,
                        working_set=c_bytes * (split + 1)))
    return out


def _packed_calls(r: Record) -> int:
    """The launch, the split-K reduce, and the output (and partials) allocations."""
    split = cuda_config(r)["split"]
    return 2 if split == 1 else 4


def cast_steps(r: Record, rows: int, cols: int) -> list[Step]:
    """The result cast to float32 (nm_spmm's output dtype) after a 16-bit library GEMM."""
    if r.item == 4 or r.dtype == "float64":
        return []
    return [Step("cast to float32", "memory", r.unit_dtype, bytes_read=rows * cols * r.item,
                 bytes_written=rows * cols * 4, working_set=rows * cols * (r.item + 4))]


def cusparselt_terms_steps(r: Record) -> list[Step]:
    """One cuSPARSELt matmul per term into one C (``beta = 1`` after the first: C read back), then the cast."""
    rows, cols, k = _need(r, "m", "n", "k")
    count = len(nm_terms(r))
    read = (rows * k // 2 + k * cols) * r.item + rows * k // 8
    c = rows * cols * r.item
    return [Step("cusparselt_2of4", "sparse_tensor_core", r.unit_dtype, launches=count, gemm=(rows, cols, k, 1),
                 macs=rows * cols * k // 2 * count, bytes_read=read * count + c * (count - 1),
                 bytes_written=c * count, working_set=read + c)] + cast_steps(r, rows, cols)


def cusparselt_terms_calls(r: Record) -> int:
    return len(nm_terms(r)) + len(cast_steps(r, 1, 1))


_MODES = {0: "vector-wise N:M, slab of B rows per stage", 1: "vector-wise N:M, gathered B rows",
          2: "element-wise N:M, slab of B rows (bandwidth-bound on shared memory)",
          3: "element-wise N:M expanded to a dense tile on chip"}
ENTRIES = (
    *(Impl(name, "nm_spmm", "cuda_core", f"cuda/nm_spmm_packed.cu mode {mode}: {_MODES[mode]}", _packed_steps,
           _packed_calls) for mode, name in IMPL_NAMES.items()),
    Impl("tasd_onepass_cuda", "tasd_spmm", "cuda_core", "cuda/nm_spmm_packed.cu: every TASD term in one launch",
         _packed_steps, _packed_calls),
)


# ---------------------------------------- records made through a1a550e (kernels since replaced)


def _cusparselt_steps(r: Record) -> list[Step]:
    m, n, k = _need(r, "m", "n", "k")
    read = (m * k // 2 + k * n) * r.item + m * k // 8
    return [Step("cusparselt_2of4", "sparse_tensor_core", r.unit_dtype, gemm=(m, n, k, 1), macs=m * n * k // 2,
                 bytes_read=read, bytes_written=m * n * r.item, working_set=read + m * n * r.item)]


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


def _lt_steps(r: Record) -> list[Step]:
    """The old cusparselt_2_4 records (one GEMM); nm_spmm/tasd_spmm records one matmul per term and the cast."""
    return _cusparselt_steps(r) if r.kernel == "cusparselt_2_4" else cusparselt_terms_steps(r)


LEGACY = (
    Impl("nm_2of4_cusparselt", "cusparselt_2_4", "sparse_tensor_core", "cuSPARSELt 2:4 SpMM (per term, "
         "then the float32 cast, under nm_dispatch)", _lt_steps,
         host_calls=lambda r: 1 if r.kernel == "cusparselt_2_4" else cusparselt_terms_calls(r)),
    Impl("nm_scalar_cuda", "nm_spmm", "cuda_core", "kernels/cuda/nm_spmm.cu: scalar fp32 FMAs, shared-memory B",
         _nm_steps),
    Impl("tasd_multipass_cuda", "tasd_spmm", "cuda_core", "tasd_spmm: one nm_spmm launch per term plus adds",
         _tasd_steps, host_calls=lambda r: 2 * len(_tasd_terms(r)) - 1),
)
"""The implementations of older N:M and TASD records (:func:`kernels.impls.infer_impl` names them)."""
