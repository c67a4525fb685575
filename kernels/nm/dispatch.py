"""GPU dispatcher for N:M SpMM and TASD: sparse tensor cores, CUDA cores or dense cuBLAS, whichever tunes fastest.

For CuPy inputs :func:`kernels.nm.nm_spmm` and :func:`kernels.tasd.tasd_spmm` come here. The
candidates for (device, shape, pattern series, dtype, layout) are timed once by
:func:`kernels.autotune.tune` and the winner is cached on disk:

* ``nm_2of4_cusparselt`` (:mod:`kernels.nm.sparse_tc`): float16/bfloat16 terms with at most 2 kept
  values per aligned 4 along K;
* the CUDA-core kernel of :mod:`kernels.nm.cuda` (its own ``impl`` name; one launch for a series);
* ``dense_cublas``: ``cupy.matmul`` of the decompressed operand (built once, kept while the terms
  live). Dense is always a candidate, so the choice is never slower than dense beyond timing noise.

:func:`plan` returns the chosen candidate and its details for the trace record's ``params``.
The candidate list and the timing are plain Python, testable with NumPy stand-ins.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from kernels import autotune
from kernels.backend import array_module
from kernels.errors import InputError

__all__ = ["CUDA_CORE", "DENSE", "TUNE_REPEATS", "candidates", "forced", "plan", "spmm_cupy", "tune_key"]

DENSE = "dense_cublas"
CUDA_CORE = "cuda_core"
TUNE_REPEATS = 5
_CUDA_CORE_DTYPES = ("float32", "float16")  # what kernels.nm.cuda takes (float32 accumulation)
_LOCK = threading.Lock()
_DENSE_A: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # first term -> (ids of terms, dense A)
_CHOICE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # first term -> {call key: impl}


def tune_key(terms, b, out_dtype) -> dict:
    """The autotune key: shape, pattern series, dtypes, layout and whether sparse tensor cores may run."""
    from kernels.nm.sparse_tc import eligible

    t0 = terms[0]
    return {
        "rows": int(t0.shape[0]), "k": int(t0.shape[1]), "cols": int(b.shape[1]),
        "series": "+".join(str(t.pattern) for t in terms), "dtype": str(t0.values.dtype),
        "b_dtype": str(b.dtype), "out_dtype": str(out_dtype), "layout": t0.layout,
        "sparse_tc": eligible(terms, b) is None,
    }


def candidates(key: dict, tc_available: bool) -> list[dict]:
    """Candidate configurations in heuristic order (ties keep the earlier): dense last, always present."""
    out = []
    if key["sparse_tc"] and tc_available:
        out.append({"impl": "nm_2of4_cusparselt"})
    if key["dtype"] in _CUDA_CORE_DTYPES and key["b_dtype"] == key["dtype"]:
        out.append({"impl": CUDA_CORE})
    out.append({"impl": DENSE})
    return out


def _dense_a(terms):
    """``sum(decompress(t))`` on the device, cached on the first term while it lives."""
    from kernels.nm.format import sum_decompressed

    ids = tuple(id(t) for t in terms)
    with _LOCK:
        hit = _DENSE_A.get(terms[0])
    if hit is not None and hit[0] == ids:
        return hit[1]
    a = sum_decompressed(terms)
    with _LOCK:
        _DENSE_A[terms[0]] = (ids, a)
    return a


def _cuda_core(terms, b):
    from kernels.nm.cuda import run_packed

    return run_packed(terms, b)  # one launch for the whole series


def _runner(impl: str, terms, b, out_dtype) -> Callable[[], object]:
    """A no-argument call computing the product with ``impl`` (dense runs on NumPy data too)."""
    xp = array_module(b)

    def cast(c):
        return c if c.dtype == out_dtype else c.astype(out_dtype)

    if impl == "nm_2of4_cusparselt":
        from kernels.nm.sparse_tc import matmul_terms

        return lambda: cast(matmul_terms(terms, b))
    if impl == DENSE:
        a = _dense_a(terms)
        return lambda: cast(xp.matmul(a, b))
    if impl == CUDA_CORE:
        return lambda: cast(_cuda_core(terms, b))
    raise InputError(f"nm dispatch: unknown impl {impl!r}")


def _time_gpu(fn, repeats: int = TUNE_REPEATS) -> float:
    """Median seconds of ``repeats`` calls after one warm-up (CUDA events, :func:`kernels.timing.time_call`)."""
    import cupy

    from kernels.timing import time_call

    return time_call(fn, warmup=1, repeats=repeats, xp=cupy, min_window_s=0).median_s  # tuning: no 1 s energy window


def _device_name() -> str:
    import cupy

    from kernels.backend import device_info

    return device_info(cupy)["device_name"]


def plan(terms, b, out_dtype=None) -> dict:
    """The tuned choice for these terms and ``b``: ``{"impl": ..., "tuned": {...}, ...}`` for ``params``.

    ``impl`` is the implementation's stable name (``nm_2of4_cusparselt``, ``dense_cublas`` or the
    CUDA-core kernel's, e.g. ``nm_vector_cuda``); ``tuned`` is the autotune entry.
    """
    import numpy as np

    from kernels.nm import sparse_tc

    out_dtype = np.dtype(out_dtype) if out_dtype is not None else _default_out(terms, b)
    key = tune_key(terms, b, out_dtype)
    cands = candidates(key, sparse_tc.available())
    chosen = autotune.tune("nm_dispatch", _device_name(), key, cands,
                           lambda cfg: _time_gpu(_runner(cfg["impl"], terms, b, out_dtype)))
    info = {"impl": chosen["impl"], "tuned": dict(chosen), "candidates": [c["impl"] for c in cands]}
    if key["sparse_tc"] and not sparse_tc.available():  # eligible, yet cuSPARSELt did not load: say why
        info["sparse_tc_unavailable"] = sparse_tc.unavailable_reason()
    if chosen["impl"] == "nm_2of4_cusparselt":
        info.update(sparse_tc.plan_info(terms, b))
    elif chosen["impl"] == CUDA_CORE:
        from kernels.nm.cuda import plan as cuda_plan

        sub = cuda_plan(terms, b)
        info["impl"] = sub.get("impl", CUDA_CORE)
        info["cuda_core"] = sub
    else:
        info["unit"] = "tensor core" if key["dtype"] in ("float16", "bfloat16") else "CUDA cores (FFMA)"
    return info


def _default_out(terms, b):
    """nm_spmm's contract on the GPU: float32 (16-bit inputs too), float64 when an input is float64."""
    import numpy as np

    wide = "float64" in (str(terms[0].values.dtype), str(b.dtype))
    return np.dtype(np.float64 if wide else np.float32)


def forced(terms, b, impl: str, out_dtype) -> str:
    """``impl`` when it is a candidate for these terms and ``b``, else :class:`InputError` saying why not."""
    from kernels.nm import sparse_tc

    key = tune_key(terms, b, out_dtype)
    names = [c["impl"] for c in candidates(key, sparse_tc.available())]
    if impl in names:
        return impl
    why = ""
    if impl == sparse_tc.IMPL:
        why = sparse_tc.eligible(terms, b) or sparse_tc.unavailable_reason() or ""
    elif impl == CUDA_CORE:
        why = f"the CUDA-core kernels take {' or '.join(_CUDA_CORE_DTYPES)} on both sides, got {key['dtype']} x {key['b_dtype']}"
    raise InputError(f"nm dispatch: impl {impl!r} cannot run here ({why or 'unknown impl'}); candidates: {names}")


def spmm_cupy(terms, b, out_dtype=None, impl: str | None = None):
    """``sum(decompress(t) for t in terms) @ b`` on the GPU through the tuned implementation.

    ``out_dtype`` defaults to float32 (nm_spmm's contract); pass the input dtype to keep a 16-bit
    result and skip the cast pass after a tensor-core path. ``impl`` (``nm_2of4_cusparselt``,
    ``cuda_core`` or ``dense_cublas``) runs that implementation instead of the tuned one, so a
    test checks the kernel it names; one that cannot run these operands raises :class:`InputError`.
    """
    import numpy as np

    terms = list(terms)
    out_dtype = np.dtype(out_dtype) if out_dtype is not None else _default_out(terms, b)
    if impl is not None:
        return _runner(forced(terms, b, impl, out_dtype), terms, b, out_dtype)()
    memo_key = (tuple(id(t) for t in terms), tuple(b.shape), str(b.dtype), str(out_dtype))
    with _LOCK:
        chosen = _CHOICE.get(terms[0], {}).get(memo_key)
    if chosen is None:  # first call for these terms and this B shape: autotune lookup (or timing)
        chosen = plan(terms, b, out_dtype)["tuned"]["impl"]
        with _LOCK:
            _CHOICE.setdefault(terms[0], {})[memo_key] = chosen
    return _runner(chosen, terms, b, out_dtype)()
