"""N:M SpMM, the entry point: the data types of :mod:`kernels.nm.format` and ``nm_spmm`` on either backend.

The N:M room: the format (:mod:`.format`), the NumPy path (:mod:`.cpu`), the packed CUDA-core
kernel (``nm_spmm_packed.cu``; its packing :mod:`.pack`, launch :mod:`.cuda`, autotune tiles
:mod:`.configs`, block-by-block NumPy model :mod:`.model`), 2:4 sparse tensor cores through
cuSPARSELt (:mod:`.sparse_tc`), the dispatcher choosing among them per device (:mod:`.dispatch`)
and the replay's descriptions of each implementation (:mod:`.impls`). Imports only the shared top
modules of :mod:`kernels` and itself.
"""

from __future__ import annotations

import numpy as np

from kernels.nm.cpu import nm_spmm_numpy
from kernels.nm.dispatch import spmm_cupy
from kernels.nm.format import (
    LAYOUTS,
    MAX_M,
    NMPattern,
    NMTensor,
    VECTOR_WIDTH,
    check_spmm,
    is_nm,
    nm_compress,
    nm_decompress,
    row_indices,
)

__all__ = [
    "LAYOUTS",
    "MAX_M",
    "NMPattern",
    "NMTensor",
    "VECTOR_WIDTH",
    "check_spmm",
    "is_nm",
    "nm_compress",
    "nm_decompress",
    "nm_spmm",
    "row_indices",
]


def nm_spmm(a_nm: NMTensor, b):
    """``nm_decompress(a_nm) @ b`` computed from the compressed form (dense A is never built whole).

    ``a_nm`` is a 2-D ``(rows, K)`` matrix compressed along its reduction axis (``axis=1``,
    i.e. the last); ``b`` is ``(K, cols)``. Only the ``n`` kept values per group are multiplied:
    ``n/m`` of the dense FLOPs. Accumulation is at least float32 (float16 inputs give a
    float32 result, like the CUDA kernel); otherwise the result dtype is NumPy's promotion.

    The NumPy path (:mod:`kernels.nm.cpu`) multiplies gathered rows of ``b`` per 32-row vector
    (vector layout, high sparsity) or scatters blocks of rows to dense for BLAS, whichever is
    cheaper for the layout and pattern, on worker threads.
    On CuPy arrays :mod:`kernels.nm.dispatch` runs the fastest of sparse tensor cores
    (cuSPARSELt), the CUDA-core kernels (``kernels/nm/nm_spmm_packed.cu``) and dense cuBLAS.

    Raises
    ------
    InputError
        When ``a_nm`` is not a 2-D NMTensor compressed along axis 1, or shapes do not match.
    """
    xp, b = check_spmm(a_nm, b, "nm_spmm")
    if xp is not np:
        return spmm_cupy([a_nm], b)
    return nm_spmm_numpy(a_nm, b)
