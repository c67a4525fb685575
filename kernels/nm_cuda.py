"""CuPy path of N:M SpMM: the CUDA kernels in ``cuda/nm_spmm.cu`` and a cuSPARSELt 2:4 baseline.

Imported only when an :func:`kernels.nm.nm_spmm` argument is a CuPy array, so NumPy-only
machines never need CuPy. The kernel is compiled by NVRTC on first use (``cupy.RawModule``)
and memoized per device; CuPy also caches the binary on disk.
"""

from __future__ import annotations

import functools
from pathlib import Path

from kernels.backend import cuda_function, require_cupy
from kernels.errors import InputError

__all__ = [
    "HIGH_SPARSITY_DENSITY",
    "cusparselt_2_4_available",
    "cusparselt_2_4_prepare",
    "nm_spmm_cupy",
]

_SOURCE = Path(__file__).parent / "cuda" / "nm_spmm.cu"
_BN = 64  # columns per block tile, must match NM_BN in the .cu
HIGH_SPARSITY_DENSITY = 0.25
"""At or below this N/M the high-sparsity kernel (A tile first, only referenced B rows) runs."""


def _cupy():
    return require_cupy("the CuPy path of nm_spmm")


def _kernel(name: str):
    return cuda_function(_SOURCE, name, "the CuPy path of nm_spmm")


def nm_spmm_cupy(a_nm, b):
    """``decompress(a_nm) @ b`` on the GPU; float16/float32 inputs, float32 result.

    Inputs are validated by :func:`kernels.nm.nm_spmm`; float64 or integer inputs have no CUDA
    kernel and are refused rather than silently computed at lower precision.
    """
    cupy = _cupy()
    vals, idx = a_nm.values, a_nm.indices
    dtype = cupy.result_type(vals.dtype, b.dtype)
    if dtype == cupy.float16:
        tag = "f16"
    elif dtype == cupy.float32:
        tag = "f32"
    else:
        raise InputError(f"nm_spmm on CuPy supports float16 and float32 inputs, got {vals.dtype} and {b.dtype}")
    vals = cupy.ascontiguousarray(vals.astype(dtype, copy=False))
    idx = cupy.ascontiguousarray(idx, dtype=cupy.uint8)
    b = cupy.ascontiguousarray(b.astype(dtype, copy=False))
    rows, k = a_nm.shape
    cols = int(b.shape[1])
    c = cupy.empty((rows, cols), dtype=cupy.float32)
    high = a_nm.n / a_nm.m <= HIGH_SPARSITY_DENSITY
    bm = 32 if high else 64
    kernel = _kernel(f"nm_spmm_{tag}_{'high' if high else 'low'}")
    # grid (ceil(cols/64), ceil(rows/BM)), block 128 threads: each block writes its BM x 64 tile of c.
    grid = ((cols + _BN - 1) // _BN, (rows + bm - 1) // bm)
    kernel(
        grid,
        (128,),
        (vals, idx, b, c, cupy.int32(rows), cupy.int32(k), cupy.int32(cols),
         cupy.int32(a_nm.groups), cupy.int32(a_nm.n), cupy.int32(a_nm.m)),
    )
    return c


@functools.cache
def cusparselt_2_4_available() -> bool:
    """True when CuPy's cuSPARSELt bindings load and a handle initialises on this device."""
    try:
        from cupy_backends.cuda.libs import cusparselt

        handle = cusparselt.Handle()
        cusparselt.init(handle)
        cusparselt.destroy(handle)
        return True
    except Exception:  # bindings absent, library missing, or an unsupported GPU
        return False


def cusparselt_2_4_prepare(a, b):
    """Prune ``a`` to 2:4 and compress it with cuSPARSELt; return ``(fn, args)`` computing ``a @ b``.

    float16 only (cuSPARSELt's common denominator across versions); the plan, workspace and
    compressed A are built here so timing covers only the matmul. Pruning is cuSPARSELt's own,
    not :func:`kernels.nm.nm_compress` (both keep 2 of every 4; the selection may differ).
    """
    import numpy

    cupy = _cupy()
    from cupy.cuda import runtime
    from cupy_backends.cuda.libs import cusparse, cusparselt

    if a.dtype != cupy.float16 or b.dtype != cupy.float16:
        raise InputError(f"cuSPARSELt 2:4 baseline supports float16 only, got {a.dtype} and {b.dtype}")
    a = cupy.ascontiguousarray(a)
    b = cupy.ascontiguousarray(b)
    m, k = a.shape
    n = b.shape[1]
    c = cupy.empty((m, n), dtype=cupy.float16)
    h = cusparselt.Handle()
    mat_a, mat_b, mat_c = cusparselt.MatDescriptor(), cusparselt.MatDescriptor(), cusparselt.MatDescriptor()
    mm, alg_sel, plan = cusparselt.MatmulDescriptor(), cusparselt.MatmulAlgSelection(), cusparselt.MatmulPlan()
    cusparselt.init(h)
    order, f16 = cusparse.CUSPARSE_ORDER_ROW, runtime.CUDA_R_16F
    cusparselt.structuredDescriptorInit(h, mat_a, m, k, k, 128, f16, order, cusparselt.CUSPARSELT_SPARSITY_50_PERCENT)
    cusparselt.denseDescriptorInit(h, mat_b, k, n, n, 128, f16, order)
    cusparselt.denseDescriptorInit(h, mat_c, m, n, n, 128, f16, order)
    op = cusparse.CUSPARSE_OPERATION_NON_TRANSPOSE
    compute = getattr(cusparselt, "CUSPARSE_COMPUTE_32F", None) or cusparselt.CUSPARSE_COMPUTE_16F
    cusparselt.matmulDescriptorInit(h, mm, op, op, mat_a, mat_b, mat_c, mat_c, compute)
    cusparselt.matmulAlgSelectionInit(h, alg_sel, mm, cusparselt.CUSPARSELT_MATMUL_ALG_DEFAULT)
    ws_size = cusparselt.matmulGetWorkspace(h, alg_sel)
    ws = cupy.empty(max(int(ws_size), 1), dtype=cupy.int8)
    cusparselt.matmulPlanInit(h, plan, mm, alg_sel, ws_size)
    cusparselt.spMMAPrune(h, mm, a.data.ptr, a.data.ptr, cusparselt.CUSPARSELT_PRUNE_SPMMA_TILE)
    size = cusparselt.spMMACompressedSize(h, plan)
    size = size[0] if isinstance(size, tuple) else size  # newer bindings also return a buffer size
    a_c = cupy.zeros(int(size), dtype=cupy.uint8)
    cusparselt.spMMACompress(h, plan, a.data.ptr, a_c.data.ptr)
    alpha = numpy.array(1.0, dtype=numpy.float32)
    beta = numpy.array(0.0, dtype=numpy.float32)
    keep = (h, mat_a, mat_b, mat_c, mm, alg_sel, plan, a, b, c, a_c, ws, alpha, beta)

    def run(_keep=keep):
        # C = A_c @ B on the current stream; writes all of c.
        cusparselt.matmul(h, plan, alpha.ctypes.data, a_c.data.ptr, b.data.ptr, beta.ctypes.data,
                          c.data.ptr, c.data.ptr, ws.data.ptr)
        return c

    return run, ()
