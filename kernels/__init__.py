"""Kernel backend (NumPy reference, CuPy on GPU): N:M SpMM, TASD, Kron-matmul, projections, traces.

Names are imported lazily so that ``import kernels`` stays cheap and optional parts
(CuPy, Dask) are loaded only when used. ``kernels`` never imports ``accelsim``.

One room per technique, each with its format, NumPy and CUDA paths, dispatcher, autotune configs
and replay descriptions: :mod:`kernels.nm` (with 2:4 sparse tensor cores), :mod:`kernels.tasd`,
:mod:`kernels.kron` (with Dask), :mod:`kernels.projection`; the trace schema, recorder and importers
in :mod:`kernels.trace`; the benchmark suites in :mod:`kernels.suites`. What they share sits at the
top: :mod:`~kernels.backend`, :mod:`~kernels.autotune` (the tuning cache), :mod:`~kernels.timing`,
:mod:`~kernels.io` (atomic writes), :mod:`~kernels.errors` and :mod:`~kernels.impl_types` (the
description types); a room imports only these and itself (TASD also N:M). :mod:`kernels.impls` is the
one registry of the rooms' descriptions and the suites run every room; nothing else crosses rooms
(``tests/test_import_graph.py``).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "InputError": "kernels.errors",
    "get_xp": "kernels.backend",
    "array_module": "kernels.backend",
    "device_info": "kernels.backend",
    "gpu_available": "kernels.backend",
    "to_numpy": "kernels.backend",
    "NMPattern": "kernels.nm",
    "NMTensor": "kernels.nm",
    "nm_compress": "kernels.nm",
    "nm_decompress": "kernels.nm",
    "nm_spmm": "kernels.nm",
    "is_nm": "kernels.nm",
    "Recorder": "kernels.trace",
    "TraceError": "kernels.trace",
    "read_traces": "kernels.trace",
    "time_call": "kernels.timing",
    "tasd_decompose": "kernels.tasd",
    "tasd_spmm": "kernels.tasd",
    "kron_matmul": "kernels.kron",
    "kron_flops": "kernels.kron",
    "project_l1inf_bilevel": "kernels.projection",
    "project_l11_bilevel": "kernels.projection",
    "project_l12_bilevel": "kernels.projection",
    "project_l1inf_exact": "kernels.projection",
    "project_multilevel": "kernels.projection",
    "project_l1_ball": "kernels.projection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'kernels' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)


def __dir__():
    return __all__
