"""NumPy N:M SpMM at size: panel-gathered small GEMMs, or a blocked decompress + one BLAS call.

Two ways to compute ``nm_decompress(t) @ b`` on a CPU, chosen by a fixed rule so the same
inputs always take the same path (bit-identical results):

* ``gather_gemm`` (vector layout, density <= :data:`GATHER_DENSITY`): for each 32-row vector the
  kept positions are shared, so its product is ``vals (32, G*n) @ b[cols]``. ``b`` is cut into
  column panels (copied contiguous: a gather from a strided panel runs ~4x slower), each panel's
  gathered rows are reused by the vector's small GEMM; only ``n/m`` of the dense FLOPs run.
* ``decompress_blas`` (element layout, or denser patterns): 64-row blocks are zeroed and scattered
  to dense while in cache (16 ms at 2:4 on 1024x4096, against 26 ms for :func:`nm_decompress`),
  then one BLAS call on BLAS's own threads. The blocks run in one thread: NumPy's fancy assignment
  holds the GIL (2 workers took 16.5 ms, 1 took 15.8 ms). Element-wise positions differ row by
  row, so a gather costs as much as the FLOPs it saves; splitting the GEMM itself by rows ran
  8-60 % slower than one BLAS call.

The gather path splits its work into fixed column panels (independent of the thread count) run
on a thread pool with BLAS held to one thread per worker (small problems, and a single panel, run in
the calling thread): every output element is computed by the same sequence of operations whatever
the number of workers.
"""

from __future__ import annotations

import contextlib
import queue
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kernels.backend import cpu_workers, one_blas_thread, page_aligned
from kernels.nm.format import VECTOR_WIDTH, NMTensor, scatter_groups

__all__ = ["GATHER_DENSITY", "choose_impl", "gather_plan", "nm_spmm_numpy"]

GATHER_DENSITY = 0.25
"""Vector layout at or below this N/M runs ``gather_gemm``. At 1024x4096x4096 on the 2-core EPYC
(medians of 5, interleaved, BENCHMARKS.md): gathered 1:8 ~90-110 ms, 2:8 170 ms, 3:8 380 ms,
2:4 312 ms, against 250-260 ms dense: 2:8 still gains 1.5x, 3:8 and 2:4 lose."""
_PANEL_BYTES = 1 << 21  # gathered rows of one panel (G*n x width): 2 MB, between the 1 and 4 MB that ran fastest
_BLOCK_ROWS = 64  # rows per decompress block: 1 MB of float32 dense at K = 4096, in L2
_SERIAL_FLOPS = 2e7  # below this a pool costs more than it saves (~1 ms to start workers and limit BLAS)


def choose_impl(t: NMTensor) -> str:
    """``"gather_gemm"`` or ``"decompress_blas"``: the fixed, data-independent choice for ``t``."""
    if t.layout == "vector" and t.pattern.density <= GATHER_DENSITY:
        return "gather_gemm"
    return "decompress_blas"


def _schedule(flops: float, tasks: int) -> tuple[bool, int]:
    """``(held, workers)`` for ``tasks`` of ``flops`` in all: big work holds BLAS to one thread and runs on up to
    one worker per task; small work runs in the calling thread on BLAS's own threads."""
    held = flops >= _SERIAL_FLOPS
    return held, cpu_workers(tasks) if held else 1


def _run(fn, tasks: list, flops: float, scratch) -> None:
    """Run ``fn(task, buffers)`` for every task; big work with BLAS held to one thread, on a pool if it has
    more than one task and the machine more than one thread.

    BLAS is held to one thread for big work even with one worker: OpenBLAS's own threading
    changes the rounding, so this keeps results independent of the worker count.
    One worker runs in the calling thread: a pool thread then only competes with OpenBLAS's workers,
    which spin for a while after each multi-threaded GEMM. In a BERT-base pass on the 2-vCPU EPYC
    (128 tokens: one panel per 1:8 layer) the one-worker pool put 3-8 ms stalls into one call in four.
    ``scratch()`` makes one worker's buffers; they are allocated here, in the calling thread,
    one set per worker and reused by its tasks: buffers allocated inside worker threads come
    from glibc's per-thread arenas, and their growing and trimming made the gather path drift
    from ~100 ms to ~200 ms per call over 30 calls at 1024x4096x4096.
    """
    held, workers = _schedule(flops, len(tasks))
    limit = one_blas_thread() if held else contextlib.nullcontext()
    if workers == 1:
        buffers = scratch()
        with limit:
            for task in tasks:
                fn(task, buffers)
        return
    free = queue.SimpleQueue()
    for _ in range(workers):
        free.put(scratch())

    def one(task):
        buffers = free.get()
        try:
            fn(task, buffers)
        finally:
            free.put(buffers)

    with limit, ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(one, task) for task in tasks]:
            f.result()


def _dense_cols(t: NMTensor, idx: np.ndarray) -> np.ndarray:
    """Dense K index of each kept value, ``(len(idx), G*n)``; padding positions (value 0) clip to K-1."""
    col = np.arange(t.groups, dtype=np.intp)[:, None] * t.m + idx.astype(np.intp)
    return np.minimum(col.reshape(idx.shape[0], -1), t.shape[1] - 1)


def nm_spmm_numpy(t: NMTensor, b: np.ndarray, impl: str | None = None) -> np.ndarray:
    """``nm_decompress(t) @ b`` for a validated 2-D ``t`` (axis 1) and ``b``; at least float32.

    ``impl`` forces ``"gather_gemm"`` (vector layout only) or ``"decompress_blas"``; the
    default is :func:`choose_impl`.
    """
    impl = impl or choose_impl(t)
    out_dtype = np.result_type(t.values.dtype, b.dtype, np.float32)
    rows, cols = t.shape[0], int(b.shape[1])
    vals = t.values.reshape(rows, -1).astype(out_dtype, copy=False)
    bb = np.ascontiguousarray(b, dtype=out_dtype)
    out = np.empty((rows, cols), dtype=out_dtype)
    if rows == 0 or cols == 0:
        return out
    if impl == "gather_gemm":
        if t.layout != "vector":
            raise ValueError("gather_gemm needs the vector layout")
        _gather_gemm(t, vals, bb, out)
    else:
        _decompress_blas(t, bb, out)
    return out


def gather_plan(t: NMTensor, cols: int, itemsize: int) -> dict:
    """How ``gather_gemm`` cuts ``nm_spmm(t, b)`` for a ``b`` of ``cols`` columns of ``itemsize`` bytes: ``vectors``
    of 32 rows, each gathering ``depth`` (G·n) rows of B per panel of ``width`` columns, ``panels`` of them, on
    ``workers`` threads (BLAS held to one thread each when ``held``). Trace records carry it so replay prices the
    gathers and the small GEMMs the call makes."""
    depth = t.groups * t.pattern.n
    width = min(cols, max(16, (_PANEL_BYTES // (depth * itemsize)) // 16 * 16))
    panels = -(-cols // width)
    held, workers = _schedule(2.0 * t.shape[0] * depth * cols, panels)
    return {"vectors": -(-t.shape[0] // VECTOR_WIDTH), "depth": depth, "width": width, "panels": panels,
            "workers": workers, "held": held}


def _gather_gemm(t: NMTensor, vals, bb, out) -> None:
    col = _dense_cols(t, t.indices)  # (vectors, G*n)
    depth = col.shape[1]
    width = gather_plan(t, bb.shape[1], bb.itemsize)["width"]
    panels = [(c0, min(bb.shape[1], c0 + width)) for c0 in range(0, bb.shape[1], width)]

    def panel(span, buffers):
        c0, c1 = span
        copy, gathered = buffers
        bp = bb
        if c1 - c0 < bb.shape[1]:
            bp = copy[:, : c1 - c0]
            np.copyto(bp, bb[:, c0:c1])
        buf = gathered[:, : c1 - c0]
        for v in range(col.shape[0]):
            r0, r1 = v * VECTOR_WIDTH, min(vals.shape[0], (v + 1) * VECTOR_WIDTH)
            # mode="clip": with out=, "raise" stages the gather through a temporary (~4x slower);
            # the indices are in range (_dense_cols clips the padding)
            np.take(bp, col[v], axis=0, out=buf, mode="clip")
            np.matmul(vals[r0:r1], buf, out=out[r0:r1, c0:c1])

    # page-aligned scratch: with the gather's source and destination at arbitrary heap offsets, the same call
    # ranged 90-170 ms (1:8, 1024x4096x4096); page-aligned, ~88 ms (see page_aligned)
    _run(panel, panels, 2.0 * vals.size * bb.shape[1],
         lambda: (page_aligned((bb.shape[0], width if len(panels) > 1 else 0), bb.dtype),
                  page_aligned((depth, width), bb.dtype)))


def _decompress_blas(t: NMTensor, bb, out) -> None:
    rows, k = t.shape
    dense = np.empty((rows, t.groups * t.m), dtype=bb.dtype)
    vals = t.values.reshape(rows, t.groups, t.pattern.n)

    for r0 in range(0, rows, _BLOCK_ROWS):
        r1 = min(rows, r0 + _BLOCK_ROWS)
        if t.layout == "vector":  # _BLOCK_ROWS is a multiple of VECTOR_WIDTH
            idx = np.repeat(t.indices[r0 // VECTOR_WIDTH: -(-r1 // VECTOR_WIDTH)], VECTOR_WIDTH, axis=0)[: r1 - r0]
        else:
            idx = t.indices[r0:r1]
        groups = dense[r0:r1].reshape(r1 - r0, t.groups, t.m)
        groups.fill(0)
        scatter_groups(vals[r0:r1], idx, groups)
    np.matmul(dense[:, :k], bb, out=out)
