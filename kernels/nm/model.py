"""NumPy model of the packed CUDA kernels' index math: which block and thread touch which A, B and C.

``kernels/nm/nm_spmm_packed.cu`` cannot run here, so this module replays its loops
(grid, split-K ranges, per-stage copies with their zero-fill, the thread -> rows/columns map,
the per-entry B row each thread reads, the split-K reduction) on NumPy arrays, in float64.
Tests check that the model equals ``nm_decompress(t) @ b`` for random shapes; a change to the
kernel's index math must be mirrored here (the names follow the .cu).
"""

from __future__ import annotations

import numpy as np

from kernels.nm.pack import Packed

__all__ = ["model_packed", "thread_map"]


def thread_map(bm: int, bn: int, tm: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile rows ``(threads, tm)`` and columns ``(threads, 8)`` each thread accumulates (see ``rl``/``cl``)."""
    threads = (bm // (4 * tm)) * (bn // 64) * 32
    tid = np.arange(threads)
    lane, warp = tid % 32, tid // 32
    wx, wy = warp % (bn // 64), warp // (bn // 64)
    rl = wy * 4 * tm + (lane // 8) * tm
    cl = wx * 64 + (lane % 8) * 4
    rows = rl[:, None] + np.arange(tm)[None, :]
    cols = cl[:, None] + np.array([0, 1, 2, 3, 32, 33, 34, 35])[None, :]
    return rows, cols


def model_packed(p: Packed, b: np.ndarray, cfg: dict) -> np.ndarray:
    """What the kernel with config ``cfg`` (mode, bm, bn, tm, emax, ks, split) writes to C, in float64."""
    mode, bm, bn, tm, emax, split = (cfg[x] for x in ("mode", "bm", "bn", "tm", "emax", "split"))
    ks = cfg["ks"]
    e_stage, stages, ks = p.stage_shape(ks)
    assert e_stage <= emax and (mode == 1 or ks <= emax), "launch contract: e_stage <= EMAX, slab ks <= EMAX"
    rows, k, cols = p.rows, p.k, b.shape[1]
    at = np.asarray(p.at, dtype=np.float64)
    bb = np.asarray(b, dtype=np.float64)
    e_tot, vb = p.e_tot, bm // 32
    per_split = -(-stages // split)
    t_rows, t_cols = thread_map(bm, bn, tm)
    vl = t_rows[:, 0] // 32
    w = np.zeros((split, rows, cols))
    for bz in range(split):
        for by in range(p.rows_pad // bm):
            for bx in range(-(-cols // bn)):
                row0, col0 = by * bm, bx * bn
                acc = np.zeros((len(t_rows), tm, 8))
                for s in range(bz * per_split, min(stages, (bz + 1) * per_split)):
                    e0, k0 = s * e_stage, s * ks
                    es = min(e_stage, e_tot - e0)
                    a_s = np.zeros((emax, bm))
                    a_s[:es] = at[e0 : e0 + es, row0 : row0 + bm]
                    b_s = np.zeros((vb * emax if mode == 1 else emax, bn))
                    if mode == 1:  # gather: slot row v*EMAX+e <- B[Kv[vector][entry]]
                        for v in range(vb):
                            for e in range(es):
                                kk = int(p.kv[row0 // 32 + v, e0 + e])
                                _copy_row(b_s, v * emax + e, bb, kk, k, col0, bn, cols)
                    else:  # slab: rows k0 .. k0+ks-1, zero past K
                        for r in range(ks):
                            _copy_row(b_s, r, bb, k0 + r, k, col0, bn, cols)
                    if mode == 3:  # expand into a dense ks x bm tile, then the dense loop
                        ad = np.zeros((emax, bm))
                        for e in range(es):
                            np.add.at(ad, (p.ke[e0 + e, row0 : row0 + bm].astype(np.intp), np.arange(bm)), a_s[e])
                        for kk in range(ks):
                            acc += ad[kk, t_rows][:, :, None] * b_s[kk, t_cols][:, None, :]
                        es = 0
                    for e in range(es):
                        a = a_s[e, t_rows]  # (threads, tm)
                        if mode == 2:
                            br = p.ke[e0 + e, row0 + t_rows].astype(np.intp)  # (threads, tm)
                            acc += a[:, :, None] * b_s[br[:, :, None], t_cols[:, None, :]]
                        else:
                            br = p.kv[row0 // 32 + vl, e0 + e] - k0 if mode == 0 else vl * emax + e
                            acc += a[:, :, None] * b_s[br[:, None], t_cols][:, None, :]
                gr, gc = row0 + t_rows[:, :, None], col0 + t_cols[:, None, :]
                gr, gc = np.broadcast_to(gr, acc.shape), np.broadcast_to(gc, acc.shape)
                ok = (gr < rows) & (gc < cols)
                w[bz, gr[ok], gc[ok]] = acc[ok]
    out = w[0].copy()
    for z in range(1, split):  # nm_splitk_reduce: z ascending
        out += w[z]
    return out


def _copy_row(dst, r, b, kk, k, col0, bn, cols):
    """One B row into a shared-memory slot, 16-byte chunks zero-filled past K or past cols."""
    if kk < k:
        width = max(0, min(bn, cols - col0))
        dst[r, :width] = b[kk, col0 : col0 + width]
