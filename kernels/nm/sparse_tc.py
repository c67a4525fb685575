"""2:4 sparse tensor cores for float16/bfloat16 N:M operands, through cuSPARSELt (nvmath-python's binding).

Any N:M operand whose every aligned group of 4 along K holds at most 2 non-zeros (2:4, 1:4,
1:8, 2:8, and 3:8 or other patterns when the data happens to fit) is stored by cuSPARSELt as
2:4 and multiplied on the sparse tensor cores. Costs are paid once and cached:

* compression: per operand and dtype (``sp_mma_compress2``, descriptor-based, so one
  compressed buffer serves every B width), held while the :class:`~kernels.nm.NMTensor` lives;
* plan and algorithm search: per (device, rows, K, cols, dtype) (``matmul_search``, then the
  plan is kept for the process; the chosen config id goes into the trace ``params``);
* a TASD series of such terms runs as one matmul per term into the same output, the first
  with ``beta = 0`` and the rest with ``beta = 1``: no separate add pass.

Results are 16-bit (cuSPARSELt's D type equals the input type; accumulation is float32).
The pure parts (:func:`fits_2of4`, :func:`eligible`) take NumPy or CuPy arrays.
"""

from __future__ import annotations

import functools
import threading
import weakref

import numpy as np

from kernels.backend import array_module
from kernels.errors import InputError
from kernels.nm.format import NMTensor, nm_decompress, row_indices

__all__ = ["IMPL", "available", "eligible", "fits_2of4", "matmul_terms", "pattern_fits_2of4", "plan_info",
           "unavailable_reason"]

IMPL = "nm_2of4_cusparselt"
_ALIGN_ROWS_K = 32  # structured operand: rows and K in multiples of 32 (16-bit types)
_ALIGN_COLS = 16
_DTYPES = {"float16": 2, "bfloat16": 14}  # cudaDataType_t: CUDA_R_16F, CUDA_R_16BF
_LOCK = threading.Lock()
_COMPRESSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # NMTensor -> {dtype: buffer}
_PLANS: dict = {}
_FITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # NMTensor -> fits_2of4 result


def pattern_fits_2of4(n: int, m: int) -> bool:
    """True when EVERY placement of an n:m pattern leaves at most 2 non-zeros per aligned 4 along K."""
    if m % 4 == 0:
        return n <= 2  # a group of 4 lies inside one window
    if 4 % m == 0:
        return n * (4 // m) <= 2  # a group of 4 spans 4/m whole windows
    return False  # windows straddle groups of 4: only the data can tell


def fits_2of4(t: NMTensor) -> bool:
    """True when every aligned group of 4 along K of ``decompress(t)`` holds at most 2 kept values.

    Data-independent for patterns :func:`pattern_fits_2of4` accepts; otherwise counts the kept
    positions per group of 4 (one pass over the indices and a device sync on CuPy, cached per tensor).
    """
    if pattern_fits_2of4(t.n, t.m):
        return True
    with _LOCK:
        hit = _FITS.get(t)
    if hit is None:
        hit = _count_fits(t)
        with _LOCK:
            _FITS[t] = hit
    return hit


def _count_fits(t: NMTensor) -> bool:
    xp = array_module(t.indices)
    rows = t.shape[0]
    pos = xp.arange(t.groups, dtype=xp.int64)[:, None] * t.m + row_indices(t).astype(xp.int64)
    quad = (pos // 4).reshape(rows, -1)  # ascending within a row: positions ascend group by group
    # Three kept values in one quad <=> some value and the one two places later share it.
    return not bool((quad[:, 2:] == quad[:, :-2]).any()) if quad.shape[1] > 2 else True


def eligible(terms, b) -> str | None:
    """None when the terms can run on sparse tensor cores with ``b``, else the reason they cannot."""
    t0 = terms[0]
    dt = str(t0.values.dtype)
    if dt not in _DTYPES or str(b.dtype) != dt:
        return f"dtype {dt} x {b.dtype}: cuSPARSELt path takes float16 or bfloat16 on both sides"
    rows, k = t0.shape
    if rows % _ALIGN_ROWS_K or k % _ALIGN_ROWS_K or int(b.shape[1]) % _ALIGN_COLS:
        return f"shape {rows}x{k} @ {k}x{b.shape[1]}: needs rows, K multiples of 32 and cols of 16"
    for t in terms:
        if not fits_2of4(t):
            return f"pattern {t.pattern}: some group of 4 along K holds more than 2 kept values"
    return None


@functools.cache
def _binding():
    try:
        from nvmath.bindings import cusparse, cusparseLt
    except ImportError:
        raise ImportError("sparse tensor cores need nvmath-python: pip install 'accelsim[gpu]'") from None
    return cusparseLt, cusparse


def available() -> bool:
    """True when nvmath-python's cuSPARSELt binding loads and a handle initialises on this GPU."""
    return unavailable_reason() is None


@functools.cache
def unavailable_reason() -> str | None:
    """None when cuSPARSELt is usable here, else why not (the exception's type and text), e.g.
    ``"ImportError: sparse tensor cores need nvmath-python ..."`` or a library or version mismatch
    (nvmath-python needs matching cuda-core, cuda-pathfinder and cuda-bindings). The GPU job's
    preflight prints it, and the dispatcher puts it in the trace ``params`` when it falls back."""
    try:
        _handle(_device_id())
        return None
    except Exception as e:  # noqa: BLE001 - anything here means no sparse tensor cores; the reason is kept
        return f"{type(e).__name__}: {e}".strip()[:500]


def _device_id() -> int:
    import cupy

    return int(cupy.cuda.Device().id)


@functools.cache
def _handle(device: int) -> int:
    lt, _ = _binding()
    return lt.init()  # one handle per device, kept for the process (a handle is tied to its device)


def _stream() -> int:
    import cupy

    return int(cupy.cuda.get_current_stream().ptr)


@functools.cache
def _a_desc(h: int, rows: int, k: int, vt: int) -> int:
    """The structured descriptor of a (rows, K) row-major operand; the compressed format depends only on it."""
    lt, sp = _binding()
    return lt.structured_descriptor_init(h, rows, k, k, 16, vt, sp.Order.ROW, lt.Sparsity.SPARSITY_50_PERCENT)


def _compressed(t: NMTensor, dtype: str, h: int):
    """cuSPARSELt's compressed form of ``t`` as ``dtype``: built once, kept while ``t`` lives."""
    import cupy

    lt, sp = _binding()
    with _LOCK:
        hit = _COMPRESSED.get(t, {}).get(dtype)
    if hit is not None:
        return hit
    a_desc = _a_desc(h, t.shape[0], t.shape[1], _DTYPES[dtype])
    dense = cupy.ascontiguousarray(nm_decompress(t))  # at most 2 non-zeros per 4: valid 2:4 input
    size, buf_size = lt.sp_mma_compressed_size2(h, a_desc)
    out = cupy.empty(int(size), dtype=cupy.uint8)
    scratch = cupy.empty(max(int(buf_size), 1), dtype=cupy.uint8)
    lt.sp_mma_compress2(h, a_desc, 1, sp.Operation.NON_TRANSPOSE, dense.data.ptr, out.data.ptr,
                        scratch.data.ptr, _stream())
    with _LOCK:
        _COMPRESSED.setdefault(t, {})[dtype] = out
    return out


class _Plan:
    """Descriptors, searched plan and workspace of one (device, rows, K, cols, dtype)."""

    def __init__(self, h, rows, k, cols, dtype, a_c, b):
        import cupy

        lt, sp = _binding()
        self.h = h
        vt, row, op = _DTYPES[dtype], sp.Order.ROW, sp.Operation.NON_TRANSPOSE
        self.a = _a_desc(h, rows, k, vt)
        self.b = lt.dense_descriptor_init(h, k, cols, cols, 16, vt, row)
        self.c = lt.dense_descriptor_init(h, rows, cols, cols, 16, vt, row)
        self.mm = lt.matmul_descriptor_init(h, op, op, self.a, self.b, self.c, self.c, lt.ComputeType.COMPUTE_32F)
        self.alg = lt.matmul_alg_selection_init(h, self.mm, lt.MatmulAlg.DEFAULT)
        self.plan = lt.matmul_plan_init(h, self.mm, self.alg)
        self.alpha = np.ones(1, dtype=np.float32)  # host scalars of the float32 compute type
        self.zero = np.zeros(1, dtype=np.float32)
        self.ws = cupy.empty(max(int(lt.matmul_get_workspace(h, self.plan)), 1), dtype=cupy.uint8)
        scratch = cupy.empty((rows, cols), dtype=b.dtype)
        streams = np.array([_stream()], dtype=np.intp)
        # Search times every kernel config with beta = 0 into scratch and keeps the fastest in the plan.
        lt.matmul_search(h, self.plan, self.alpha.ctypes.data, a_c.data.ptr, b.data.ptr, self.zero.ctypes.data,
                         scratch.data.ptr, scratch.data.ptr, self.ws.data.ptr, streams.ctypes.data, 1)
        need = int(lt.matmul_get_workspace(h, self.plan))
        if need > self.ws.nbytes:
            self.ws = cupy.empty(need, dtype=cupy.uint8)
        self.config_id = self._config_id()

    def _config_id(self):
        lt, _ = _binding()
        try:
            v = np.zeros(1, dtype=np.int32)
            lt.matmul_alg_get_attribute(self.h, self.alg, lt.MatmulAlgAttribute.CONFIG_ID, v.ctypes.data, 4)
            return int(v[0])
        except Exception:  # an attribute this library version does not report: the id is informative only
            return None


def _plan(dev, rows, k, cols, dtype, t0, b) -> _Plan:
    """The cached plan of this shape; on first use, searched with ``t0``'s compressed form and ``b``."""
    key = (dev, rows, k, cols, dtype)
    with _LOCK:
        p = _PLANS.get(key)
    if p is None:
        h = _handle(dev)
        p = _Plan(h, rows, k, cols, dtype, _compressed(t0, dtype, h), b)
        with _LOCK:
            _PLANS[key] = p
    return p


def plan_info(terms, b) -> dict:
    """``params`` for the trace record: impl, unit, matmuls per call, and cuSPARSELt's searched config id."""
    dev = _device_id()
    rows, k = terms[0].shape
    p = _PLANS.get((dev, rows, k, int(b.shape[1]), str(b.dtype)))
    return {"impl": IMPL, "unit": "sparse tensor core", "matmuls": len(terms),
            "cusparselt_config_id": None if p is None else p.config_id}


def matmul_terms(terms, b, out=None):
    """``sum(decompress(t) for t in terms) @ b`` on sparse tensor cores, 16-bit result like ``b``.

    One cuSPARSELt matmul per term into the same output (``beta = 1`` after the first). ``out``
    (C-contiguous, ``b``'s dtype) may be given to write into.

    Raises
    ------
    InputError
        When :func:`eligible` refuses the terms and ``b``.
    """
    import cupy

    terms = list(terms)
    why = eligible(terms, b)
    if why is not None:
        raise InputError(f"{IMPL}: {why}")
    lt, _ = _binding()
    dtype = str(b.dtype)
    b = cupy.ascontiguousarray(b)
    rows, k = terms[0].shape
    cols = int(b.shape[1])
    dev = _device_id()
    h = _handle(dev)
    p = _plan(dev, rows, k, cols, dtype, terms[0], b)
    if out is None:
        out = cupy.empty((rows, cols), dtype=b.dtype)
    streams = np.array([_stream()], dtype=np.intp)
    for i, t in enumerate(terms):
        a_c = _compressed(t, dtype, h)
        beta = p.zero if i == 0 else p.alpha
        lt.matmul(h, p.plan, p.alpha.ctypes.data, a_c.data.ptr, b.data.ptr, beta.ctypes.data,
                  out.data.ptr, out.data.ptr, p.ws.data.ptr, streams.ctypes.data, 1)
    return out
