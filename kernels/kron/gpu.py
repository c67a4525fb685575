"""CuPy path of kron_matmul: the FastKron-style kernel (``kron_fastkron.cu``) under an autotuned plan.

Imported only when a :func:`kernels.kron_matmul` argument is a CuPy array. The kernel source
is compiled by NVRTC once per device (``cupy.memoize``); the plan of each (device, M, factor
shapes, dtype, algorithm) is tuned once (:func:`kernels.autotune.tune`, CUDA-event timing) and
kept in memory, so a call does no host work beyond building the launch arguments: no
synchronisation, no host-device copy, two allocations (the output and one ping-pong buffer).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from kernels import autotune
from kernels.backend import cuda_function, require_cupy
from kernels.kron.plan import MAX_FACTORS, THREADS, candidates, kernel_name, plan
from kernels.kron.shuffle import shuffle
from kernels.timing import time_call

__all__ = ["SHUFFLE", "kron_config_gpu", "kron_fastkron_gpu", "kron_gpu"]

_SOURCE = Path(__file__).parent / "kron_fastkron.cu"
SHUFFLE = {"impl": "kron_shuffle_cupy"}
"""The autotuner's fallback candidate: per-factor cuBLAS GEMM and transpose copy."""
_PLANS: dict = {}  # (device, M, shapes, dtype, config items) -> launches, functions, buffer sizes
_TUNED: dict = {}  # (device, M, shapes, dtype, algorithm) -> tuned configuration


_FEATURE = "the CuPy path of kron_matmul"


def _cupy():
    return require_cupy(_FEATURE)


@functools.cache
def _device(device_id: int) -> tuple[str, int, int]:
    """(name, SM count, opt-in shared memory per block in bytes) of a device."""
    cupy = _cupy()
    props = cupy.cuda.runtime.getDeviceProperties(device_id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return name, int(props["multiProcessorCount"]), int(props.get("sharedMemPerBlockOptin", 48 * 1024))


def _function(name: str, smem: int):
    fn = cuda_function(_SOURCE, name, _FEATURE)
    if smem > 48 * 1024 and fn.max_dynamic_shared_size_bytes < smem:
        fn.max_dynamic_shared_size_bytes = smem  # opt in past 48 KB (Hopper: up to 227 KB)
    return fn


def _prepared(cp, m, shapes, dtype, config):
    """Launches of ``config`` with their compiled functions and buffer sizes, built once per key."""
    dev = cp.cuda.Device().id
    key = (dev, m, shapes, dtype, tuple(sorted(config.items())))
    hit = _PLANS.get(key)
    if hit is not None:
        return hit
    _, sms, smem_limit = _device(dev)
    launches = plan(m, shapes, dtype, config, sms, smem_limit)
    fns = [
        _function(kernel_name(dtype, la.rk, la.rq), la.smem_bytes) if la.impl == "fastkron" else None
        for la in launches
    ]
    # The last launch writes the output; earlier ones alternate backwards between a scratch
    # buffer and the output's storage, so one scratch buffer serves any number of launches.
    into_out = [(len(launches) - 1 - i) % 2 == 0 for i in range(len(launches))]
    out_elems = max(m * la.k_out for la, o in zip(launches, into_out) if o)
    tmp_elems = max([m * la.k_out for la, o in zip(launches, into_out) if not o], default=0)
    hit = (launches, fns, into_out, out_elems, tmp_elems)
    _PLANS[key] = hit
    return hit


def kron_fastkron_gpu(cp, x, factors, config: dict):
    """X·(F1⊗…⊗FN) by the launches of ``config`` (see :func:`kernels.kron.plan.plan`)."""
    m = x.shape[0]
    shapes = tuple(tuple(int(d) for d in f.shape) for f in factors)
    launches, fns, into_out, out_elems, tmp_elems = _prepared(cp, m, shapes, x.dtype.name, config)
    out = cp.empty(out_elems, dtype=x.dtype)
    tmp = cp.empty(tmp_elems, dtype=x.dtype) if tmp_elems else None
    order = factors[::-1]
    cur = x
    for la, fn, o in zip(launches, fns, into_out):
        dst = (out if o else tmp)[: m * la.k_out].reshape(m, la.k_out)
        fs = order[la.first : la.first + len(la.shapes)]
        if fn is None:
            dst[...] = shuffle(cp, cur, fs)
        else:
            ptrs = fs + [fs[0]] * (MAX_FACTORS - len(fs))
            pq = [np.int32(p | q << 16) for p, q in la.shapes] + [np.int32(0)] * (MAX_FACTORS - len(fs))
            # grid (ceil(J/NJ), rows): block (bx, by) writes Y[row, t*J + j] for its NJ chunks j
            # and every row tile by, by + gridDim.y, ...; nothing else.
            fn(la.grid, (THREADS,),
               (cur, dst, *ptrs, *pq, np.int32(len(fs)), np.int32(m), np.int32(la.j_count),
                np.int32(la.nj.bit_length() - 1), np.int32(la.tm), np.int32(la.buf_elems)),
               shared_mem=la.smem_bytes)
        cur = dst
    return cur


def kron_config_gpu(cp, x, factors, algorithm: str) -> dict:
    """The tuned configuration for these operands: ``{"impl": ..., tile fields}``.

    ``fused`` chooses among FastKron tilings only; ``auto`` also times the cuBLAS shuffle, so
    it is never slower than the shuffle on the tuning device.
    """
    m = x.shape[0]
    shapes = tuple(tuple(int(d) for d in f.shape) for f in factors)
    dev = cp.cuda.Device().id
    memo = (dev, m, shapes, x.dtype.name, algorithm)
    if memo in _TUNED:
        return dict(_TUNED[memo])
    name, sms, smem_limit = _device(dev)
    if x.dtype.name in ("float32", "float64") and all(p <= 0xFFFF and q <= 0xFFFF for p, q in shapes):
        cands = candidates(m, shapes, x.dtype.name, sms, smem_limit)
    else:
        cands = []
    if algorithm == "auto" or not cands:
        cands = cands + [SHUFFLE]

    def time_fn(cfg):
        run = (lambda: shuffle(cp, x, factors)) if cfg["impl"] == SHUFFLE["impl"] else \
            (lambda: kron_fastkron_gpu(cp, x, factors, cfg))
        return time_call(run, warmup=1, repeats=3, xp=cp, min_window_s=0).median_s  # tuning: no energy window

    key = {"m": m, "shapes": [list(s) for s in shapes], "dtype": x.dtype.name, "algorithm": algorithm}
    cfg = autotune.tune("kron_matmul", name, key, cands, time_fn)
    _TUNED[memo] = cfg
    return dict(cfg)


def kron_gpu(cp, x, factors, algorithm: str):
    """Dispatch ``fused``/``auto`` on CuPy arrays to the tuned implementation."""
    cfg = kron_config_gpu(cp, x, factors, algorithm)
    if cfg["impl"] == SHUFFLE["impl"]:
        return shuffle(cp, x, factors)
    return kron_fastkron_gpu(cp, x, factors, cfg)

