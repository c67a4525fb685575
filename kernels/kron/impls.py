"""Descriptions of the Kron-matmul implementations :func:`kernels.kron.kron_config` names (kernels.impls entries).

:data:`ENTRIES` is registered by :mod:`kernels.impls`. The
FastKron-style kernel is described launch by launch from :func:`kernels.kron.plan.plan` under the
tuned configuration in ``params`` (``variant``, ``depth``, ``nj``, ``tm``); :data:`LEGACY` describes
the kernels of older records (``kron_fused_cuda``, ``kron_shuffle_cupy``). The NumPy paths are described by the same device work
(their BLAS matmuls and copies) so a GPU model can place them; their records carry ``backend="numpy"``.
"""

from __future__ import annotations

import math

from kernels.errors import InputError
from kernels.impl_types import (_SECTOR, _WARP, Impl, Record, Step, _gemm_steps, _need, warp_bank_wavefronts,
                                warp_sectors)
from kernels.kron.plan import THREADS, plan

__all__ = ["ENTRIES", "LEGACY", "fastkron_launches", "group_macs"]

_SMEM_PER_SM, _RESERVED_PER_BLOCK, _MAX_THREADS_PER_SM = 228 * 1024, 1024, 2048
_CONFIG_KEYS = ("variant", "depth", "nj", "tm")


def _kron_factors(r: Record) -> list[tuple[int, int]]:
    factors = r.params.get("factors")
    if not factors:
        raise InputError(f"trace record {r.kernel!r}: params has no 'factors' (the Kron factor shapes)")
    return [(int(p), int(q)) for p, q in factors]


def _shuffle_factor_steps(r: Record, m: int, k_in: int, p: int, q: int) -> list[Step]:
    """One shuffle step: cuBLAS (m·K/p, p) @ (p, q), then the rotating transpose copy of the (m, K/p, q) result.

    The copy (CuPy's elementwise kernel over the C-ordered (m, q, K/p) output) writes whole sectors but
    reads the (m, K/p, q) input at a stride of q elements: a warp's 32 outputs touch up to 32 sectors, and
    each sector crosses the L2-SM interface once per warp that needs one of its elements
    (``l2_bytes``; HBM still sees the array once when it spills L2: the sector stays in L2 for the others).
    """
    item = r.item
    rows = m * k_in // p
    out = rows * q * item
    j = k_in // p
    warp = [(e // j) + (e % j) * q for e in range(_WARP)]  # input offsets of output elements 0..31 (qq, jj)
    sector_bytes = -(-out // (_WARP * item)) * warp_sectors(warp, item) * _SECTOR
    unit = "cuda_core" if r.dtype in ("float32", "float64") else "tensor_core"
    return [
        Step(f"shuffle gemm {p}x{q}", unit, r.unit_dtype, gemm=(rows, q, p, 1), macs=rows * q * p,
             bytes_read=rows * p * item + p * q * item, bytes_written=out, working_set=rows * p * item + out,
             b_mn_major=True),
        Step("shuffle transpose", "memory", r.unit_dtype, bytes_read=out, bytes_written=out, working_set=2 * out,
             l2_bytes=sector_bytes + out),
    ]


def _kron_shuffle_steps(r: Record) -> list[Step]:
    (m,) = _need(r, "m")
    k_in = math.prod(p for p, _ in _kron_factors(r))
    steps = []
    for p, q in reversed(_kron_factors(r)):
        steps += _shuffle_factor_steps(r, m, k_in, p, q)
        k_in = k_in // p * q
    return steps


def group_macs(shapes) -> int:
    """FMAs per (row, chunk) of one fused group: factor (p, q) turns L values into q·L/p outputs of p FMAs each."""
    length, total = math.prod(p for p, _ in shapes), 0
    for p, q in shapes:
        total += q * (length // p) * p
        length = length // p * q
    return total


def fastkron_launches(r: Record):
    """The launches :func:`kernels.kron.plan.plan` makes for ``r``'s rows, factors, dtype and tuned configuration."""
    missing = [key for key in _CONFIG_KEYS if key not in r.params]
    if missing:
        raise InputError(f"trace record {r.kernel!r} (impl kron_fastkron_cuda): params has no {', '.join(missing)}")
    (m,) = _need(r, "m")
    return plan(m, _kron_factors(r), r.dtype, {key: r.params[key] for key in _CONFIG_KEYS})


def _fastkron_steps(r: Record) -> list[Step]:
    """One launch per fused group: the block stages TM rows × NJ chunks in shared memory, runs the group's
    factors there (RK×RQ outputs per thread: RK+RQ shared words per FMA step) and writes its outputs."""
    item, words = r.item, r.item // 4
    steps = []
    for la in fastkron_launches(r):
        if la.impl == "shuffle":
            steps += _shuffle_factor_steps(r, la.m, la.k_in, *la.shapes[0])
            continue
        rows_chunks = la.tm * la.nj
        length, fma_wavefronts = math.prod(p for p, _ in la.shapes), 0.0
        for p, q in la.shapes:
            outputs = rows_chunks * (length // p) * q
            fma_wavefronts += -(-outputs // (la.rk * la.rq)) * p * (la.rk + la.rq) / 32 * words
            length = length // p * q
        staged = (rows_chunks * math.prod(p for p, _ in la.shapes) + la.f_elems + rows_chunks * length) / 32 * words
        row_tiles = -(-la.m // (la.tm * la.grid[1]))  # row tiles each block walks
        f_bytes = sum(p * q for p, q in la.shapes) * item
        read, written = la.m * la.k_in * item, la.m * la.k_out * item
        steps.append(Step(f"fastkron x{len(la.shapes)}", "cuda_core", r.unit_dtype, blocks=la.grid[0] * la.grid[1],
                          blocks_per_sm=max(1, min(_MAX_THREADS_PER_SM // THREADS,
                                                   _SMEM_PER_SM // (la.smem_bytes + _RESERVED_PER_BLOCK))),
                          smem_cycles_per_block=(fma_wavefronts + staged) * row_tiles,
                          loop_steps_per_block=row_tiles, macs=la.m * la.j_count * group_macs(la.shapes),
                          bytes_read=read + f_bytes, bytes_written=written, working_set=read + written + f_bytes))
    return steps


def _naive_steps(r: Record) -> list[Step]:
    """N-1 Kronecker products of the factors, then one GEMM against the (∏P × ∏Q) product."""
    (m,) = _need(r, "m")
    factors = _kron_factors(r)
    steps, p_acc, q_acc = [], factors[0][0], factors[0][1]
    for p, q in factors[1:]:
        p_acc, q_acc = p_acc * p, q_acc * q
        size = p_acc * q_acc * r.item
        steps.append(Step("kron product", "memory", r.unit_dtype, bytes_read=size // (p * q) + p * q * r.item,
                          bytes_written=size, working_set=size))
    gemm = Record(r.kernel, r.dtype, r.backend, m, q_acc, p_acc, params={})
    return steps + _gemm_steps(gemm)


ENTRIES = (
    Impl("kron_fastkron_cuda", "kron_matmul_fused", "cuda_core",
         "cuda/kron_fastkron.cu: one launch per fused factor group (kron_plan.plan), groups in shared memory",
         _fastkron_steps, lambda r: 2 + len(fastkron_launches(r))),
    Impl("kron_naive_cupy", "kron_matmul_naive", "tensor_core",
         "cupy.kron products of the factors, then one cuBLAS GEMM", _naive_steps,
         lambda r: len(_kron_factors(r))),
    Impl("kron_naive_numpy", "kron_matmul_naive", "tensor_core",
         "CPU: np.kron products, then one BLAS matmul (same work as kron_naive_cupy)", _naive_steps,
         lambda r: len(_kron_factors(r))),
    Impl("kron_shuffle_numpy", "kron_matmul_shuffle", "cuda_core",
         "CPU: per factor a BLAS matmul and a transpose copy (same work as kron_shuffle_cupy)",
         _kron_shuffle_steps, lambda r: 2 * len(_kron_factors(r))),
    Impl("kron_fused_numpy", "kron_matmul_fused", "cuda_core",
         "CPU: per row block the shuffle's matmuls with intermediates in cache (X read, Y written once)",
         _kron_shuffle_steps, lambda r: 2 * len(_kron_factors(r))),
)


# ---------------------------------------- records made through a1a550e (kernels since replaced)


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


LEGACY = (
    Impl("kron_fused_cuda", "kron_matmul_fused", "cuda_core", "kernels/cuda/kron_fused.cu: factor groups "
         "in shared memory", _kron_fused_steps, host_calls=lambda r: 3 * len(_kron_factors(r))),
    Impl("kron_shuffle_cupy", "kron_matmul_shuffle", "cuda_core", "per factor a cuBLAS GEMM and a transpose copy",
         _kron_shuffle_steps, host_calls=lambda r: 2 * len(_kron_factors(r))),
)
"""The implementations of older Kron records (:func:`kernels.impls.infer_impl` names them)."""
