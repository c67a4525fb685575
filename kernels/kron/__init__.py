"""Kron-matmul Y = X·(F1⊗…⊗FN) without forming the Kronecker product: naive, shuffle and fused.

The Kron room: the NumPy paths (here; the shuffle step in :mod:`.shuffle`), the FastKron-style CUDA
kernel (``kron_fastkron.cu``; launch and autotuning :mod:`.gpu`, its plan :mod:`.plan`, block-by-block
NumPy model :mod:`.model`), row-sharding over Dask (:mod:`.dist`) and the replay's descriptions
(:mod:`.impls`). Imports only the shared top modules of :mod:`kernels` and itself.
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kernels.backend import array_module, cpu_workers, one_blas_thread
from kernels.errors import InputError
from kernels.kron.shuffle import shuffle

__all__ = ["ALGORITHMS", "NAIVE_MAX_BYTES", "POOL_FLOPS", "kron_config", "kron_flops", "kron_matmul"]

ALGORITHMS = ("auto", "naive", "shuffle", "fused")

#: Largest Kronecker product ``naive`` will materialise (bytes); it exists to check the others.
NAIVE_MAX_BYTES = 64 * 2**20

# Row blocks of the CPU fused path aim at this many bytes per intermediate, so the two
# ping-pong buffers of one block can stay in a core's L2 between factor steps. (Against
# 2 MiB blocks the geometric mean over FastKron's shapes was equal within noise on the
# loaded 2-core EPYC box; BENCHMARKS.md.)
_BLOCK_BYTES = 256 * 2**10

POOL_FLOPS = 2e8
"""Below this much work (:func:`kron_flops`) the CPU fused path runs its row blocks in the calling thread: its
per-row matmuls are small, and two workers paid off only from ~3 ms of work on the 2-vCPU EPYC (12:31-12:33 UTC
2026-12-05, calling thread / two workers, medians of 15 or more: 64 x 8^4 17 MFLOP 0.34 / 0.57 ms, 256 x 8^4
67 MFLOP 1.29 / 1.64, 256 x 64^2 268 MFLOP 2.42 / 2.65, 1024 x 8^4 268 MFLOP 5.71 / 3.67, 1024 x 16^3 403 MFLOP
5.83 / 4.05)."""


def kron_flops(m: int, factor_shapes) -> int:
    """Floating-point operations of Y = X·(F1⊗…⊗FN) done factor by factor (FastKron's count).

    Start with k = ∏Pi; for each factor from the last to the first, k ← (k/Pi)·Qi and the
    step costs one multiply and one add for each of m·k outputs over Pi terms.

    Parameters
    ----------
    m : int
        Rows of X.
    factor_shapes : sequence of (P, Q)
        Shapes of F1 … FN.

    Returns
    -------
    int
        ``2·m·Σ k_after·Pi``.

    Examples
    --------
    >>> kron_flops(1, [(2, 2), (2, 2)])
    32
    """
    shapes = _check_shapes(factor_shapes)
    k = math.prod(p for p, _ in shapes)
    total = 0
    for p, q in reversed(shapes):
        k = (k // p) * q
        total += k * p
    return 2 * int(m) * total


def kron_matmul(x, factors, algorithm: str = "auto"):
    """Compute X·(F1⊗F2⊗…⊗FN) for X of shape (M, ∏Pi) and factors Fi of shape (Pi, Qi).

    Parameters
    ----------
    x : array, shape (M, ∏Pi)
        NumPy or CuPy; the arrays decide where the work runs.
    factors : sequence of 2-D arrays
        One or more factors; shapes may differ. Mixed float32/float64 promote to float64.
    algorithm : {"auto", "naive", "shuffle", "fused"}
        ``naive`` forms the Kronecker product (refused past :data:`NAIVE_MAX_BYTES`);
        ``shuffle`` is one reshape–matmul–transpose pass per factor; ``fused`` folds the
        transpose into the matmul and, on the CPU, walks X in cache-sized row blocks, or
        on a GPU runs the FastKron-style kernel (several factors per launch, the slice in
        shared memory) with autotuned tiles. ``auto`` is ``fused`` on the CPU; on a GPU
        the autotuner also times ``shuffle`` and keeps whichever is faster.

    Returns
    -------
    array, shape (M, ∏Qi)

    Raises
    ------
    InputError
        Bad shapes, dtypes, algorithm, or a ``naive`` product too large to build.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(2, 4)
    >>> f = [np.eye(2), np.array([[1.0, 2.0], [3.0, 4.0]])]
    >>> bool(np.allclose(kron_matmul(x, f), x @ np.kron(*f)))
    True
    """
    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm: unknown value {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    xp, x, factors = _prepare(x, factors)
    if algorithm == "naive":
        return _naive(xp, x, factors)
    if algorithm == "shuffle":
        return shuffle(xp, x, factors)
    if xp is not np:
        from kernels.kron.gpu import kron_gpu

        return kron_gpu(xp, x, factors, algorithm)
    return _fused_cpu(x, factors)


def kron_config(x, factors, algorithm: str = "auto") -> dict:
    """How :func:`kron_matmul` runs these operands: ``{"impl": name, ...tile fields}``.

    The trace suites copy it into ``params``; ``impl`` is a key of
    :data:`kernels.impls.IMPLS` (described in :mod:`kernels.kron.impls`). On a GPU this tunes (once) what the call would tune.
    """
    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm: unknown value {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    xp, x, factors = _prepare(x, factors)
    gpu = xp is not np
    if algorithm == "naive":
        return {"impl": "kron_naive_" + ("cupy" if gpu else "numpy")}
    if algorithm == "shuffle":
        return {"impl": "kron_shuffle_" + ("cupy" if gpu else "numpy")}
    if gpu:
        from kernels.kron.gpu import kron_config_gpu

        return kron_config_gpu(xp, x, factors, algorithm)
    rows, workers = _cpu_tiling(x, factors)
    return {"impl": "kron_fused_numpy", "block_rows": rows, "threads": workers}


def _check_shapes(factor_shapes) -> list[tuple[int, int]]:
    shapes = [tuple(int(d) for d in s) for s in factor_shapes]
    if not shapes:
        raise InputError("factors: got an empty list; pass at least one 2-D factor")
    for i, s in enumerate(shapes):
        if len(s) != 2 or min(s) < 1:
            raise InputError(f"factors[{i}]: shape {s} is not a non-empty 2-D matrix (P, Q)")
    return shapes


def _prepare(x, factors):
    """Check shapes and dtypes at the boundary; everything after trusts the result."""
    if not isinstance(factors, (list, tuple)):
        raise InputError(f"factors: expected a list of 2-D arrays, got {type(factors).__name__}")
    xp = array_module(x, *factors)
    x = xp.asarray(x)
    factors = [xp.asarray(f) for f in factors]
    for i, f in enumerate(factors):
        if f.ndim != 2:
            raise InputError(f"factors[{i}]: expected a 2-D array, got shape {tuple(f.shape)}")
    shapes = _check_shapes(f.shape for f in factors)
    if x.ndim != 2:
        raise InputError(f"x: expected a 2-D array (M, K), got shape {tuple(x.shape)}")
    k = math.prod(p for p, _ in shapes)
    if x.shape[1] != k:
        raise InputError(
            f"x: has {x.shape[1]} columns but the factors' row counts {[p for p, _ in shapes]} "
            f"multiply to {k}"
        )
    dtype = np.result_type(x.dtype, *(f.dtype for f in factors))
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype: {dtype} is not supported; pass float32 or float64 arrays")
    x = xp.ascontiguousarray(x, dtype=dtype)
    factors = [xp.ascontiguousarray(f, dtype=dtype) for f in factors]
    return xp, x, factors


def _naive(xp, x, factors):
    rows = math.prod(f.shape[0] for f in factors)
    cols = math.prod(f.shape[1] for f in factors)
    need = rows * cols * x.dtype.itemsize
    if need > NAIVE_MAX_BYTES:
        raise InputError(
            f"algorithm: 'naive' would build a {rows}x{cols} Kronecker product ({need} bytes > "
            f"NAIVE_MAX_BYTES={NAIVE_MAX_BYTES}); use 'shuffle' or 'fused'"
        )
    return x @ functools.reduce(xp.kron, factors)


def _rotate_step(f, cur, dst):
    """dst[r, q, j] = Σp cur[r, j, p]·f[p, q]: one factor's matmul with the rotation folded in.

    Passing cur as a transposed view lets BLAS pack it as an operand, so no separate
    transpose pass over memory is needed (the shuffle baseline spends one per factor).
    """
    p, q = f.shape
    r, k = cur.shape
    np.matmul(f.T, cur.reshape(r, k // p, p).transpose(0, 2, 1), out=dst.reshape(r, q, k // p))


def _widths(x, factors) -> list[int]:
    """Columns of X and of each intermediate, factors taken last first."""
    widths = [x.shape[1]]
    for f in reversed(factors):
        widths.append(widths[-1] // f.shape[0] * f.shape[1])
    return widths


def _cpu_tiling(x, factors) -> tuple[int, int]:
    """(rows per block, worker threads) of the CPU fused path: one worker below :data:`POOL_FLOPS` of work, else
    :func:`kernels.backend.cpu_workers` (``ACCELSIM_CPU_THREADS`` or the CPUs) up to one per block."""
    widest = max(_widths(x, factors)[1:-1], default=1)
    m = x.shape[0]
    rows = max(1, min(m, _BLOCK_BYTES // (widest * x.dtype.itemsize)))
    small = kron_flops(m, [f.shape for f in factors]) < POOL_FLOPS
    return rows, 1 if small else cpu_workers(-(-m // rows))


def _fused_cpu(x, factors):
    """Row blocks sized for the cache, each run through every factor before the next block.

    With several blocks, BLAS is held to one thread for the call (:func:`kernels.backend.one_blas_thread`)
    and, with enough work, each core takes every n-th block: the per-row matmuls are small, and a
    multi-threaded BLAS joins its threads after each one, which on a busy machine stalls
    for a scheduler slice per call (measured here: 8^6 ran 7x slower). Results do not
    depend on the thread count: every block is computed the same way.
    """
    m = x.shape[0]
    widths = _widths(x, factors)
    out = np.empty((m, widths[-1]), dtype=x.dtype)
    widest = max(widths[1:-1], default=1)
    rows, workers = _cpu_tiling(x, factors)
    starts = list(range(0, m, rows))
    n = len(factors)

    def run(mine):
        bufs = [np.empty(rows * widest, dtype=x.dtype) for _ in range(2 if n > 1 else 0)]
        for r0 in mine:
            r1 = min(m, r0 + rows)
            cur = x[r0:r1]
            for i, f in enumerate(reversed(factors)):
                last = i == n - 1
                dst = out[r0:r1] if last else bufs[i % 2][: (r1 - r0) * widths[i + 1]].reshape(r1 - r0, -1)
                _rotate_step(f, cur, dst)
                cur = dst

    if len(starts) == 1:
        run(starts)
        return out
    with one_blas_thread():
        if workers == 1:
            run(starts)
            return out
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, [starts[w::workers] for w in range(workers)]))
    return out
