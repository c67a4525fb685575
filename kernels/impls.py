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
  ``b_mn_major`` says B is stored N-major (a C-ordered k x n array), which the device model
  charges where the arch's tensor-core MMA cannot read that layout from shared memory;
- ``cuda_core`` with ``blocks``: a hand-written kernel, given by what its code does per block:
  shared-memory pipe cycles (wavefronts, bank conflicts included), main-loop steps whose global
  round trip is exposed, and the blocks resident per SM (registers/shared memory, from
  ``nvcc -Xptxas -v`` for sm_90);
- ``memory``: element-wise passes (adds, copies, reductions) that only stream bytes.

Every step carries the bytes it reads and writes in device memory and its working set (which
cache level holds it warm); a strided step also carries ``l2_bytes``, the whole 32-byte sectors its
warps move between L2 and the SMs (:func:`kernels.impl_types.warp_sectors`).

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
beside their kernels (:mod:`kernels.nm.impls`, :mod:`kernels.kron.impls`, :mod:`kernels.projection.impls`, each
an ``ENTRIES`` tuple built from :mod:`kernels.impl_types`): this module registers them, so :data:`IMPLS` is the one
registry.
"""

from __future__ import annotations

import math

from kernels.kron import impls as impls_kron
from kernels.nm import impls as impls_nm
from kernels.projection import impls as projection_impls
from kernels.kron.impls import group_macs
from kernels.errors import InputError
from kernels.impl_types import (_SECTOR, _SMEM_BANKS, _WARP, UNITS, Impl, Record, Step, _gemm_steps,
                                _kron_factors, _kron_shuffle_steps, _need, _pattern, _projection_size,
                                _shuffle_factor_steps, _tasd_terms)

__all__ = [
    "IMPLS",
    "UNITS",
    "Impl",
    "Record",
    "Step",
    "describe",
    "infer_impl",
    "passes",
    "register",
    "warp_bank_wavefronts",
]









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






# --------------------------------------------------------------------------- library GEMMs


def _xla_gemm_steps(r: Record) -> list[Step]:
    """OpenXLA's GEMMs (imported tables): tensor cores at the record's dtype, TF32 included.

    The perf table's dots take ``rhs = [b, k, n]`` contracted on dimension 1 (``GetModule`` in
    ``xla/tools/matmul_perf_table_gen.cc``): B is N-major (``Step.b_mn_major``).
    """
    (step,) = _gemm_steps(r)
    return [Step(step.name, "tensor_core", r.unit_dtype, gemm=step.gemm, macs=step.macs, bytes_read=step.bytes_read,
                 bytes_written=step.bytes_written, working_set=step.working_set, b_mn_major=step.b_mn_major)]


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


def _kf_block_wavefronts(group, nj: int, stride: int, j: int, j0: int, s_in: int, item: int) -> tuple[float, int]:
    """(shared-memory pipe wavefronts, L2 sectors written) of one block of kron_fused.cu for one row, warp by warp.

    Every warp's accesses are laid out from the kernel's index math (not the first warp's only: with
    ``nj`` not a multiple of 32 a warp spans two ``o`` and its ``jj`` wrap, so slices 32 apart share a bank):
    the load (LDG of ``nj*s_in`` contiguous values, one wavefront per 128-B line, and its STS into the
    odd-stride slices), per factor and per FMA the LDS of ``a[pi]`` (bank conflicts counted) and the
    ``__ldg`` of the factor (one wavefront per 128-B line of ``f``), the STS of each output, and the
    store (LDS of the slice, STG of ``y[row, t*J + j0 + jj]``: one wavefront per 128-B line, one L2 sector
    per distinct 32-B sector).
    """
    from kernels.impl_types import warp_sectors

    def warps(count):
        return (range(w * _WARP, min(count, (w + 1) * _WARP)) for w in range(-(-count // _WARP)))

    line = 128 // item
    n_load = nj * s_in
    wf = 0.0
    for es in warps(n_load):
        wf += len({(j0 * s_in + e) // line for e in es})  # LDG
        wf += warp_bank_wavefronts([(e // s_in) * stride + e % s_in for e in es])  # STS into the slices
    length = s_in
    for p, q in group:
        r_count = length // p
        out_len = q * r_count
        for es in warps(nj * out_len):
            o = [e // nj for e in es]
            a = [(e % nj) * stride + (oo % r_count) * p for e, oo in zip(es, o)]
            f_lines = len({(oo // r_count) // line for oo in o})
            wf += p * (warp_bank_wavefronts(a) + f_lines)  # per FMA: LDS a[pi], LDG f[pi*q + qi]
            wf += warp_bank_wavefronts([(e % nj) * stride + oo for e, oo in zip(es, o)])  # STS out
        length = out_len
    sectors = 0
    for es in warps(nj * length):
        dst = [(e // nj) * j + j0 + e % nj for e in es]
        wf += warp_bank_wavefronts([(e % nj) * stride + e // nj for e in es])  # LDS of the slice
        wf += len({d // line for d in dst})  # STG
        sectors += warp_sectors(dst, item)
    return wf, sectors


def _kron_fused_steps(r: Record) -> list[Step]:
    """kernels/cuda/kron_fused.cu (a1a550e): one launch per factor group (:func:`_kf_groups`), 256 threads,
    grid (ceil(J/tile), min(M, 65535)); per row a block loads ``tile`` chunks to shared memory, runs the
    group's factors there (per output one dependent p-long FMA chain reading a[pi] from shared memory
    and F through the read-only cache), and writes its outputs. Shared-memory pipe wavefronts are counted
    warp by warp (:func:`_kf_block_wavefronts`) for a full block and for the last, partial one; each row's
    load is one exposed global round trip (it completes before the block's barrier)."""
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
        grid_x = -(-j // tile)
        blocks = grid_x * grid_y
        rows_per_block = -(-m // grid_y)
        full, full_sectors = _kf_block_wavefronts(group, tile, stride, j, 0, s_in, item)
        last_nj = j - (grid_x - 1) * tile
        last, last_sectors = ((full, full_sectors) if last_nj == tile else
                              _kf_block_wavefronts(group, last_nj, stride, j, (grid_x - 1) * tile, s_in, item))
        cycles = ((grid_x - 1) * full + last) / grid_x
        written = m * j * t_out * item
        sectors = m * ((grid_x - 1) * full_sectors + last_sectors)
        steps.append(Step(f"kron_fused x{len(group)}", "cuda_core", r.unit_dtype, blocks=blocks,
                          blocks_per_sm=per_sm, smem_cycles_per_block=cycles * rows_per_block,
                          loop_steps_per_block=float(rows_per_block), macs=m * j * group_macs(group),
                          bytes_read=m * k_in * item, bytes_written=written,
                          working_set=m * (k_in + j * t_out) * item,
                          l2_bytes=m * k_in * item + sectors * _SECTOR))
        k_in = j * t_out
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




def _projection_steps(r: Record) -> list[Step]:
    _, launches, reads, writes = _PROJECTION_CALLS[r.kernel]
    size = _projection_size(r)
    return [Step("projection passes", "memory", r.unit_dtype, launches=launches, bytes_read=reads * size,
                 bytes_written=writes * size, working_set=2 * size)]


def _projection_calls(r: Record) -> int:
    return _PROJECTION_CALLS[r.kernel][0]


def _dense_steps(r: Record) -> list[Step]:
    """gemm records; under nm_dispatch, the GEMM on the cached dense A of the terms, then the float32 cast."""
    return _gemm_steps(r) + ([] if r.kernel == "gemm" else impls_nm.cast_steps(r, *_need(r, "m", "n")))


def _lt_steps(r: Record) -> list[Step]:
    """The old cusparselt_2_4 records (one GEMM); nm_spmm/tasd_spmm records one matmul per term and the cast."""
    return _cusparselt_steps(r) if r.kernel == "cusparselt_2_4" else impls_nm.cusparselt_terms_steps(r)


register(Impl("dense_cublas", "gemm", "tensor_core", "cupy.matmul: cuBLAS GEMM (fp32 on CUDA cores, TF32 off); "
              "under nm_dispatch on the cached dense A, then the float32 cast", _dense_steps,
              host_calls=lambda r: 1 + (0 if r.kernel == "gemm" else len(impls_nm.cast_steps(r, 1, 1)))))
register(Impl("gemm_xla", "gemm", "tensor_core", "OpenXLA GEMM (imported perf table), tensor cores", _xla_gemm_steps,
              host_calls=lambda r: 0))
register(Impl("nm_2of4_cusparselt", "cusparselt_2_4", "sparse_tensor_core", "cuSPARSELt 2:4 SpMM (per term, "
              "then the float32 cast, under nm_dispatch)", _lt_steps,
              host_calls=lambda r: 1 if r.kernel == "cusparselt_2_4" else impls_nm.cusparselt_terms_calls(r)))
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

# the descriptions kept beside the current kernels
for _impl in (*impls_nm.ENTRIES, *impls_kron.ENTRIES, *projection_impls.ENTRIES):
    register(_impl)
for _name in projection_impls.LEVELWISE:
    if _name not in IMPLS:  # multilevel_l1_inf_inf_xp: the H200 records' own entry above
        register(Impl(_name, "project_multilevel", "memory", "level-by-level array calls (sort, scan per level)",
                      _projection_steps, _projection_calls if _name.endswith("_xp") else (lambda r: 0)))


def passes(name: str, shape, dtype: str = "float32") -> tuple[int, int]:
    """(whole-array reads, writes) of one call of projection implementation ``name``, from its steps."""
    impl = describe(name)
    r = Record(impl.kernel, dtype, shapes={"y": list(shape)}, params={"impl": name})
    steps = impl.steps(r)
    size = _projection_size(r)
    return sum(s.bytes_read for s in steps) // size, sum(s.bytes_written for s in steps) // size


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

