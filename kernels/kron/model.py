"""NumPy model of ``kron_fastkron.cu``: every block's loads, factor steps and stores, index by index.

The model replays a :class:`kernels.kron.plan.Launch` block by block with the kernel's own
index formulas (work item → slices and factor columns, shared-memory word of each value,
global address of each store), vectorised over the block's threads. Shared memory starts
as NaN, so a value the kernel would read before writing shows up in the result. It also
reports the shared-memory bank conflicts of each warp's accesses. Tests run it against a
float64 ``np.kron`` reference; it is how the kernel's layout is checked without a GPU.
"""

from __future__ import annotations

import math

import numpy as np

from kernels.kron.plan import Launch, pad_log, phys, plan

__all__ = ["emulate", "emulate_launch", "step_accesses", "worst_conflict"]


def _step_items(launch: Launch, g: int):
    """Per work item of step ``g``: (qg, sk, slices (RK, items), R, NS, lengths) as the kernel computes them."""
    p, q = launch.shapes[g]
    length = math.prod(pp for pp, _ in launch.shapes)
    for pp, qq in launch.shapes[:g]:
        length = length // pp * qq
    r = length // p
    ns = launch.tm * launch.nj * r
    nsk = -(-ns // launch.rk)
    nq = -(-q // launch.rq)
    w = np.arange(nsk * nq)
    qg, sk = w // nsk, w % nsk
    slices = sk[None, :] + np.arange(launch.rk)[:, None] * nsk
    return qg, sk, slices, r, ns, length


def step_accesses(launch: Launch, g: int, itemsize: int, p: int = 0):
    """Shared-memory words of step ``g``'s slice reads at inner index ``p``: (RK, work items)."""
    pg = launch.shapes[g][0]
    _, _, slices, _, _, _ = _step_items(launch, g)
    return phys(slices * pg, pad_log(pg, itemsize)) + p


def worst_conflict(words: np.ndarray, itemsize: int) -> int:
    """Largest number of distinct words one bank serves for one warp-wide access.

    ``words`` has one column per thread (rows: separate accesses). 4-byte banks; 8-byte
    accesses are served per half warp, as on NVIDIA GPUs since Kepler.
    """
    words = np.atleast_2d(words)
    lanes = 32 if itemsize == 4 else 16
    worst = 1
    for row in words:
        for start in range(0, row.size, lanes):
            group = np.unique(row[start : start + lanes])
            banks = (group * (itemsize // 4)) % 32
            worst = max(worst, int(np.bincount(banks).max()))
    return worst


def emulate_launch(x: np.ndarray, group_factors, launch: Launch) -> np.ndarray:
    """What one fastkron launch writes: Y (M, J·T) from X (M, J·S), block by block."""
    m, j_count, nj, tm = launch.m, launch.j_count, launch.nj, launch.tm
    s = math.prod(p for p, _ in launch.shapes)
    t = math.prod(q for _, q in launch.shapes)
    y = np.full((m, j_count * t), np.nan, dtype=x.dtype)
    gx, gy = launch.grid
    item = x.dtype.itemsize
    lg0, lg_t = pad_log(launch.shapes[0][0], item), pad_log(t, item)
    steps = []
    for g, f in enumerate(group_factors):
        p, q = f.shape
        qp = -(-q // launch.rq) * launch.rq
        fpad = np.zeros((p, qp), dtype=x.dtype)
        fpad[:, :q] = f
        lg_out = pad_log(launch.shapes[g + 1][0], item) if g + 1 < len(launch.shapes) else lg_t
        steps.append((fpad, _step_items(launch, g), pad_log(p, item), lg_out))
    for bx in range(gx):
        j0 = bx * nj
        njv = min(nj, j_count - j0)
        for by in range(gy):
            for m0 in range(by * tm, m, gy * tm):
                rows = min(tm, m - m0)
                bufs = [np.full(launch.buf_elems, np.nan, dtype=x.dtype) for _ in range(2)]
                for row in range(rows):
                    e = np.arange(njv * s)
                    bufs[0][phys(row * nj * s + e, lg0)] = x[m0 + row, j0 * s + e]
                cur = 0
                for (fpad, (qg, sk, slices, r, ns, length), lg_in, lg_out), (p, q) in zip(steps, launch.shapes):
                    src, dst = bufs[cur], bufs[1 - cur]
                    base = phys(slices * p, lg_in)  # (RK, items)
                    vals = src[base[..., None] + np.arange(p)]  # (RK, items, P)
                    cols = qg[:, None] * launch.rq + np.arange(launch.rq)  # (items, RQ)
                    acc = np.einsum("kip,pij->kij", vals, fpad[:, cols])
                    b = slices // r
                    ob = b * (length // p * q) + (slices - b * r)
                    idx = ob[..., None] + cols[None] * r
                    keep = (slices < ns)[..., None] & (cols < q)[None]
                    dst[phys(idx[keep], lg_out)] = acc[keep]
                    cur = 1 - cur
                out = bufs[cur]
                c, tt, row = np.meshgrid(np.arange(njv), np.arange(t), np.arange(rows), indexing="ij")
                y[m0 + row, tt * j_count + j0 + c] = out[phys((row * nj + c) * t + tt, lg_t)]
    return y


def emulate(x: np.ndarray, factors, config: dict, sm_count: int = 132, smem_limit: int = 227 * 1024) -> np.ndarray:
    """X·(F1⊗…⊗FN) through every launch of ``plan(config)``; shuffle steps use NumPy matmul."""
    dtype = str(x.dtype)
    launches = plan(x.shape[0], [f.shape for f in factors], dtype, config, sm_count, smem_limit)
    order = list(reversed(factors))
    cur = x
    for la in launches:
        fs = order[la.first : la.first + len(la.shapes)]
        if la.impl == "shuffle":
            (f,) = fs
            p, q = f.shape
            cur = (cur.reshape(-1, p) @ f).reshape(la.m, -1, q).transpose(0, 2, 1).reshape(la.m, -1)
        else:
            cur = emulate_launch(cur, fs, la)
    return cur


