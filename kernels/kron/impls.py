"""Descriptions of the Kron-matmul implementations :func:`kernels.kron.kron_config` names (kernels.impls entries).

:data:`ENTRIES` is registered by :mod:`kernels.impls`. The
FastKron-style kernel is described launch by launch from :func:`kernels.kron.plan.plan` under the
tuned configuration in ``params`` (``variant``, ``depth``, ``nj``, ``tm``); ``kron_shuffle_cupy``
stays the entry in :mod:`kernels.impls`. The NumPy paths are described by the same device work
(their BLAS matmuls and copies) so a GPU model can place them; their records carry ``backend="numpy"``.
"""

from __future__ import annotations

import math

from kernels.errors import InputError
from kernels.impl_types import (Impl, Record, Step, _gemm_steps, _kron_factors, _kron_shuffle_steps, _need,
                                _shuffle_factor_steps)
from kernels.kron.plan import THREADS, plan

__all__ = ["ENTRIES", "fastkron_launches", "group_macs"]

_SMEM_PER_SM, _RESERVED_PER_BLOCK, _MAX_THREADS_PER_SM = 228 * 1024, 1024, 2048
_CONFIG_KEYS = ("variant", "depth", "nj", "tm")


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
