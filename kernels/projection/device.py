"""Bilevel ℓ1,p projections with every step on the device: group norms, ℓ1 threshold search, apply.

The algorithm works on the (n, G) group view (n elements per group, G groups) in three stages:

1. **norms** — one read of y: v_g = ‖y_g‖_p (sums in float64, the max in the input dtype);
2. **threshold** — u = P_ℓ1(v, C) by :func:`l1_threshold`: Michelot sweeps from Condat's lower
   bounds, bisection if they have not converged after ``max_sweeps``; one thread block;
3. **apply** — one read of y and one write: clip to [−u_g, u_g] (∞), rescale by u_g/v_g (ℓ2), or
   each group's own ℓ1-ball projection with its threshold found the same way (ℓ1).

So the matrix is crossed three times (two reads, one write) and nothing waits for the host: on
CuPy each stage is one launch of ``projection.cu`` (three kernels, plus one memset when the
norms are split over row blocks), queued without a synchronisation or a data-dependent host branch.
On NumPy the same stages run as NumPy code following the kernels step by step: that model is what
the CPU tests hold against the exact projections, and what the GPU tests hold the kernels to.

Exactness. τ is the exact ℓ1-ball threshold up to float64 rounding of the sums, so u (in the
input dtype) equals the NumPy path's except where the two sums round τ to different sides of
a representable value (one ulp of u), or where Σv lies within rounding of C (the inside test).
Non-finite input cannot raise without a synchronisation: on the device it gives an all-NaN result.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kernels import autotune
from kernels.backend import array_module, backend_name, cuda_function, device_info, require_cupy
from kernels.errors import InputError

__all__ = [
    "DEVICE_DTYPES",
    "MAX_SWEEPS",
    "bilevel_device",
    "device_supported",
    "group_layout",
    "l1_threshold",
    "launch_config",
    "launch_plan",
    "tune",
]

MAX_SWEEPS = 64
"""Michelot sweeps before bisection takes over (the host path's cap too)."""
_MAX_BISECT = 200  # MAX_BISECT in the .cu
_SMEM_BYTES = 48 * 1024  # static + dynamic shared memory without an opt-in attribute
_THRESHOLD_THREADS = 1024
DEVICE_DTYPES = ("float32", "float64")
_SOURCE = Path(__file__).parent / "projection.cu"
_TAGS = {"float32": "f32", "float64": "f64"}


def group_layout(g) -> str:
    """``"cols"`` when groups are the columns of a row-major (n, G) view, ``"rows"`` when each group is contiguous."""
    if g.flags.f_contiguous and (g.shape[1] == 1 or not g.flags.c_contiguous):
        return "rows"
    return "cols"


def device_supported(g, inner: str) -> bool:
    """Whether the fused kernels take this (n, G) view: float32/64, and for ℓ1 groups that fit in shared memory."""
    if str(g.dtype) not in DEVICE_DTYPES:
        return False
    return inner != "l1" or g.shape[0] * g.dtype.itemsize <= _SMEM_BYTES - 1024


# ----------------------------------------------------------------------------- the model (any xp)


def l1_threshold(v, r: float, max_sweeps: int = MAX_SWEEPS):
    """u = P_ℓ1(v, r) for v ≥ 0 by the kernel's steps; returns ``(u, (tau, sweeps, bisections))``.

    The ``l1_tau_block`` steps of ``projection.cu`` on any array module, sums in float64:
    Condat's bounds τ ≥ max − r and τ ≥ (Σv − r)/len start Michelot's sweeps (drop entries
    below τ, τ ← (Σ kept − r)/#kept: a lower bound that only rises), and the sweep that drops
    nothing has found τ. If ``max_sweeps`` sweeps do not converge (Michelot's worst case is
    quadratic), bisection on f(t) = Σ(kept − t)₊ − r narrows τ to one double ulp and
    τ = (Σ_{w > lo} w − r)/#{w > lo} finishes exactly. u = max(v − τ, 0) in v's dtype, v itself
    when Σv ≤ r, 0 when r = 0, NaN everywhere when v is not finite.
    """
    xp = array_module(v)
    w = v.astype(np.float64)
    s = float(w.sum())
    m = float(w.max()) if w.size else 0.0
    if not math.isfinite(s):
        return xp.full_like(v, np.nan), (math.nan, 0, 0)
    if s <= r:
        return v.copy(), (0.0, 0, 0)
    if r == 0.0:
        return xp.zeros_like(v), (0.0, 0, 0)
    tau = min(max(m - r, (s - r) / w.size), m)
    keep = w >= tau
    total, count = float(w[keep].sum()), int(keep.sum())
    sweeps, done = 0, False
    while not done and sweeps < max_sweeps:
        sweeps += 1
        tau = min((total - r) / count, m)
        keep &= w >= tau
        total, count, done = float(w[keep].sum()), int(keep.sum()), int(keep.sum()) == count
    bisections = 0
    if not done:
        lo, hi = min((total - r) / count, m), m
        while bisections < _MAX_BISECT:
            mid = 0.5 * (lo + hi)
            if not lo < mid < hi:
                break
            kept = w[keep]
            lo, hi = (mid, hi) if float((kept[kept > mid] - mid).sum()) >= r else (lo, mid)
            bisections += 1
        sel = keep & (w > lo)
        tau = (float(w[sel].sum()) - r) / int(sel.sum()) if sel.any() else lo
    return xp.maximum(v - v.dtype.type(tau), 0), (tau, sweeps, bisections)


def _norms_model(g, inner: str, xp):
    if inner == "inf":
        return xp.abs(g).max(axis=0)
    if inner == "l1":
        return xp.abs(g).sum(axis=0, dtype=np.float64).astype(g.dtype)
    g64 = g.astype(np.float64)
    with np.errstate(over="ignore"):  # an overflowing norm is reported as an all-NaN result
        return xp.sqrt((g64 * g64).sum(axis=0)).astype(g.dtype)


def _apply_model(g, u, v, inner: str, max_sweeps: int, xp):
    if inner == "inf":
        return xp.maximum(xp.minimum(g, u), -u)
    if inner == "l2":
        return g * xp.where(v > u, u / xp.where(v > 0, v, 1), 1).astype(g.dtype)
    out = g.copy()
    for j in range(g.shape[1]):
        if not u[j] >= v[j]:
            shrunk = l1_threshold(xp.abs(g[:, j]), float(u[j]), max_sweeps)[0]
            out[:, j] = xp.copysign(shrunk, g[:, j])
    return out


# ----------------------------------------------------------------------------- CuPy launches


def _cupy():
    return require_cupy("the device projections")


def _kernel(name: str):
    return cuda_function(_SOURCE, name, "the device projections")


def _heuristic(n: int, G: int, layout: str, sms: int) -> dict:
    """Launch shape from the problem shape alone: about 8 resident 256-thread blocks per SM."""
    want = 8 * sms
    if layout == "cols":
        tiles = -(-G // 32)
        splits = max(1, min(-(-want // tiles), n // 64 or 1, 65535))
        return {"by": 8, "splits": splits, "apply_threads": 256, "apply_rows": 32}
    splits = max(1, min(-(-want // G), n // 2048 or 1, 65535))
    return {"threads": 256, "splits": splits, "apply_threads": 256, "apply_elems": 2048}


def _candidates(n: int, G: int, layout: str, sms: int) -> list[dict]:
    base = _heuristic(n, G, layout, sms)
    out = [base]
    for s in (max(1, base["splits"] // 4), base["splits"] * 4):
        out.append({**base, "splits": s})
    if layout == "cols":
        out += [{**base, "by": 16}, {**base, "apply_rows": 128}, {**base, "apply_threads": 128}]
    else:
        out += [{**base, "threads": 512}, {**base, "apply_elems": 8192}, {**base, "threads": 128}]
    return out


def _tune_key(g, inner: str) -> dict:
    n, G = (int(s) for s in g.shape)
    return {"n": n, "G": G, "layout": group_layout(g), "inner": inner, "dtype": str(g.dtype)}


_CONFIGS: dict[str, dict] = {}  # (device, key) -> launch shape: no cache-file read per call


def launch_config(g, inner: str) -> dict:
    """The tuned launch shape for this (n, G) view if :func:`tune` has cached one, else the shape heuristic."""
    info = device_info(array_module(g))
    key = _tune_key(g, inner)
    memo = repr((info["device_name"], sorted(key.items())))
    if memo not in _CONFIGS:
        found = autotune.lookup("bilevel_device", info["device_name"], key)
        _CONFIGS[memo] = found or _heuristic(key["n"], key["G"], key["layout"], info["sm_count"])
    return dict(_CONFIGS[memo])


def tune(g, radius: float, inner: str) -> dict:
    """Time the candidate launch shapes once on this device (CUDA events) and cache the fastest."""
    cupy = _cupy()
    info = device_info(cupy)
    key = _tune_key(g, inner)

    def time_fn(cfg):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        _bilevel_cupy(g, radius, inner, cfg, MAX_SWEEPS)
        start.record()
        for _ in range(5):
            _bilevel_cupy(g, radius, inner, cfg, MAX_SWEEPS)
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end)

    cands = _candidates(key["n"], key["G"], key["layout"], info["sm_count"])
    best = autotune.tune("bilevel_device", info["device_name"], key, cands, time_fn)
    _CONFIGS[repr((info["device_name"], sorted(key.items())))] = best
    return dict(best)


def launch_plan(n: int, G: int, layout: str, inner: str, cfg: dict, itemsize: int) -> dict:
    """Grid, block, size arguments and dynamic shared memory of each launch: stage -> (grid, block, sizes, smem).

    Pure index arithmetic, shared by the launches and the CPU tests of coverage and limits.
    """
    part = -(-n // max(1, min(int(cfg["splits"]), n, 65535)))  # rows (cols) or elements (rows) per split
    splits = -(-n // part)  # no empty split
    if layout == "cols":
        plan = {"norms": ((-(-G // 32), splits), (32, int(cfg["by"])), (n, G, part), 0)}
    else:
        plan = {"norms": ((G, splits), (int(cfg["threads"]),), (n, G, part), 0)}
    in_smem = G * itemsize <= _SMEM_BYTES - 1024
    plan["threshold"] = ((1,), (_THRESHOLD_THREADS,), (G,), G * itemsize if in_smem else 0)
    if inner == "l1":
        strides = (1, G) if layout == "cols" else (n, 1)
        plan["apply"] = ((G,), (256,), (n, *strides), n * itemsize)
    elif layout == "cols":
        bx, rpb = int(cfg["apply_threads"]), max(int(cfg["apply_rows"]), -(-n // 65535))
        plan["apply"] = ((-(-G // bx), -(-n // rpb)), (bx,), (n, G, rpb), 0)
    else:
        epb = max(int(cfg["apply_elems"]), -(-n // 65535))
        plan["apply"] = ((G, -(-n // epb)), (int(cfg["apply_threads"]),), (n, epb), 0)
    return plan


def _bilevel_cupy(g, r: float, inner: str, cfg: dict, max_sweeps: int, info=None):
    cupy = _cupy()
    n, G = (int(s) for s in g.shape)
    layout = group_layout(g)
    if layout == "cols" and not g.flags.c_contiguous:
        g = cupy.ascontiguousarray(g)  # neither layout: one extra copy pass
    tag = _TAGS[str(g.dtype)]
    plan = launch_plan(n, G, layout, inner, cfg, g.dtype.itemsize)
    i64, null = np.int64, np.uint64(0)
    splits = plan["norms"][0][1]
    v = cupy.empty(G, dtype=g.dtype)
    if splits > 1:
        partial = cupy.empty(splits * G, dtype=g.dtype if inner == "inf" else np.float64)
        count = cupy.zeros(plan["norms"][0][0], dtype=np.uint32)  # one arrival ticket per block column
    else:
        partial, count = null, null
    grid, block, sizes, _ = plan["norms"]
    # cols: grid (column tiles of 32, splits), block (32, by); rows: grid (groups, splits). Writes v
    # (and partial, count when split).
    _kernel(f"norms_{layout}_{inner}_{tag}")(grid, block, (g, partial, v, count, *map(i64, sizes)))
    u = cupy.empty_like(v)
    grid, block, _, smem = plan["threshold"]
    work = null if smem else cupy.empty_like(v)
    # one block: writes u = P_l1(v, r) (and info = tau, sweeps, bisections when given)
    _kernel(f"l1_threshold_{tag}")(
        grid, block, (v, u, work, i64(G), np.float64(r), np.int32(max_sweeps), null if info is None else info),
        shared_mem=smem)
    out = cupy.empty_like(g)
    grid, block, sizes, smem = plan["apply"]
    if inner == "l1":
        # grid (groups), block 256: writes out group by group, |y_g| staged in shared memory
        _kernel(f"apply_l1_{tag}")(grid, block, (g, u, v, out, *map(i64, sizes), np.int32(max_sweeps)), shared_mem=smem)
    else:
        # cols: grid (column chunks, row chunks), one column per thread; rows: grid (groups, element chunks). Writes out.
        _kernel(f"apply_{layout}_{inner}_{tag}")(grid, block, (g, u, v, out, *map(i64, sizes)))
    return out


# ----------------------------------------------------------------------------- entry point


def bilevel_device(g, radius: float, inner: str, *, max_sweeps: int = MAX_SWEEPS, config: dict | None = None):
    """Bilevel ℓ1,``inner`` projection of the (n, G) group view ``g`` (groups are its columns), all on the device.

    The array module follows ``g``: CuPy runs the fused kernels (``config`` overrides the tuned
    launch shape), NumPy the step-by-step model. Inputs are trusted (validated by
    :mod:`kernels.projection`); the result has ``g``'s shape, dtype and module.
    """
    xp = array_module(g)
    if backend_name(xp) == "cupy":
        if not device_supported(g, inner):
            raise InputError(f"bilevel_device: no fused kernel for dtype {g.dtype} with inner {inner} and n={g.shape[0]}")
        return _bilevel_cupy(g, radius, inner, config or launch_config(g, inner), max_sweeps)
    v = _norms_model(g, inner, xp)
    u, (tau, _, _) = l1_threshold(v, radius, max_sweeps)
    if math.isnan(tau):
        return xp.full_like(g, np.nan)
    return _apply_model(g, u, v, inner, max_sweeps, xp)
