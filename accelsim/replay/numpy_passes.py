"""Bytes the NumPy N:M and TASD paths stream, read off their code, so replay prices what a CPU run does.

The CPU N:M kernels are NumPy ufunc chains, not one fused kernel: each ufunc call reads its operands
and writes its result once. Counting those passes (bytes read, bytes written, calls) turns the
run-time work into :class:`~accelsim.replay.project.Streaming` workloads the arch prices by the
bandwidth of the level holding them, as :data:`~accelsim.replay.project.PROJECTION_PASSES` does for
the projections. Four pieces are priced here:

- :func:`compress_traffic`: one :func:`kernels.nm.nm_compress` (magnitudes, the ``m``-pass rank of
  :func:`kernels.nm.format._top_positions`, ``nonzero``, the gather of the kept values), and for a
  TASD term that is not the last the residual update (:func:`kernels.nm.nm_decompress` and a subtract);
- :func:`decompose_traffic`: :func:`kernels.tasd.tasd_decompose` or one ``nm_compress`` of a whole
  operand, as ``accelsim run`` calls them inside the timed call for an ``operand: input`` layer, and
  :func:`decompose_live`, the bytes it holds while it ranks;
- :func:`scatter_traffic`: the zero fill and scatter of :mod:`kernels.nm.cpu`'s ``decompress_blas``
  path, which then runs one *dense* BLAS GEMM per term, and the ``out +=`` of each later TASD term;
- :func:`gather_traffic`: the ``gather_gemm`` path's copies of B's column panels and its ``np.take`` of
  each 32-row vector's kept rows of B, besides one small GEMM per vector and panel.

The fancy-index calls (``take_along_axis``, the scatter's ``flat[pos] = values``) are counted apart
(:attr:`Traffic.indexed`): NumPy runs them element by element at ~0.6-1 ns each on the 2-vCPU EPYC, an eighth of the
copy bandwidth, and a model pricing them as streams put 2:4 ``decompress_blas`` layers 35 % fast. So are the rank
steps of :func:`kernels.nm.format._top_positions` (:attr:`Traffic.grouped`): a broadcast compare of one member of
each group against the group, an inner loop per group of four or eight. Index arrays are int64 (``nonzero``,
``arange``), masks and ranks one byte per element. A broadcast operand of a few elements per group (``score[...,
j:j+1]``) is counted at its size. The run makes its operands contiguous before timing, so the only copies inside a
call are ``decompress_blas``'s casts of a float16 operand to float32 (:func:`scatter_traffic`) and ``gather_gemm``'s
column panels (:func:`gather_traffic`).
"""

from __future__ import annotations

import math

from kernels.nm.format import VECTOR_WIDTH
from kernels.trace.microbench import grouped_bytes

__all__ = ["Traffic", "compress_traffic", "decompose_live", "decompose_traffic", "gather_traffic", "scatter_traffic"]

_IDX = 8  # int64 index arrays (nonzero, arange, base + idx)


class Traffic(tuple):
    """``(read, written, calls, indexed, grouped)``: bytes read, bytes written and ufunc/BLAS calls of a piece of
    NumPy work, the bytes of its fancy-index element accesses (index, value read, value written per element),
    which a CPU moves far below streaming bandwidth and the arch prices at a level's ``indexed_bandwidth``, and
    the bytes of its rank steps over short groups (:func:`kernels.trace.microbench.grouped_bytes`), priced at a
    level's ``grouped_bandwidth``; ``read`` and ``written`` leave both out."""

    def __new__(cls, read: float = 0, written: float = 0, calls: int = 0, indexed: float = 0, grouped: float = 0):
        return super().__new__(cls, (int(read), int(written), int(calls), int(indexed), int(grouped)))

    read = property(lambda self: self[0])
    written = property(lambda self: self[1])
    calls = property(lambda self: self[2])
    indexed = property(lambda self: self[3])
    grouped = property(lambda self: self[4])

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(*(a + b for a, b in zip(self, other)))


def _indexed(elems: int, item: int) -> Traffic:
    """One fancy-index call moving ``elems`` values of ``item`` bytes through int64 positions."""
    return Traffic(0, 0, 1, elems * (_IDX + 2 * item))


def _rank(elems: int, groups: int, m: int, n: int, item: int) -> Traffic:
    """``_top_positions(score, n)`` on ``elems`` scores of ``item`` bytes in ``groups`` groups of ``m``:
    the int8 rank (zeros), per position j a rank step of five calls; then ``rank < n`` and ``nonzero`` (two
    scans, two int64 arrays of the kept positions). A step's grouped bytes are those of a step over as many
    groups of four float32 scores, the rate's microbenchmark, whatever ``m`` and ``item``: NumPy's inner loop per
    group, not the bytes, sets its time (on the 2-vCPU Xeon VM a step over groups of 8 took 1.24x as long per
    group as over groups of 4, 0.62x per score; counted per score, runtime 2:8 and 4:8 layers came out 40-48 %
    slow)."""
    per_j = Traffic(0, 0, 5, 0, grouped_bytes(4 * groups))
    t = Traffic(0, elems, 1)
    for _ in range(m):
        t = t + per_j
    return t + Traffic(elems, elems, 1) + Traffic(2 * elems, 2 * _IDX * groups * n, 1)


def compress_traffic(rows: int, k: int, n: int, m: int, item: int, layout: str = "element",
                     residual: bool = False) -> Traffic:
    """One ``nm_compress`` of a ``rows × k`` array of ``item``-byte values along k, plus, with ``residual``,
    TASD's update ``residual - nm_decompress(term)`` that feeds the next term."""
    kp = -(-k // m) * m
    elems, padded = rows * k, rows * kp
    groups = padded // m
    t = Traffic(elems * item, elems, 1) + Traffic(elems, 0, 1)  # isnan(a), .any()
    if kp > k:  # _grouped: zeros + concatenate
        t = t + Traffic(0, rows * (kp - k) * item, 1) + Traffic(padded * item, padded * item, 1)
    kept = groups * n
    if layout == "element":
        t = t + Traffic(padded * item, padded * item, 1)  # abs
        t = t + _rank(padded, groups, m, n, item)
        idx_elems = kept
    else:
        rv = -(-rows // VECTOR_WIDTH) * VECTOR_WIDTH
        t = t + Traffic(padded * item, padded * 8, 1)  # astype(float64)
        if rv > rows:
            t = t + Traffic(0, (rv - rows) * kp * 8, 1) + Traffic(padded * 8 + (rv - rows) * kp * 8, rv * kp * 8, 1)
        v = rv // VECTOR_WIDTH * kp  # one squared norm per vector, group and position
        t = t + Traffic(2 * 8 * v, 8 * v, 1)  # acc = v0 * v0
        for _ in range(VECTOR_WIDTH - 1):
            t = t + Traffic(2 * 8 * v, 8 * v, 1) + Traffic(2 * 8 * v, 8 * v, 1)  # v_r * v_r, acc + ...
        t = t + _rank(v, v // m, m, n, 8)
        vkept = v // m * n
        t = t + Traffic(_IDX * vkept, _IDX * rv * (kp // m) * n, 1)  # _expand: repeat to one set per row
        idx_elems = vkept
    t = t + _indexed(kept, item)  # take_along_axis
    t = t + Traffic(_IDX * idx_elems, idx_elems, 1)  # indices.astype(uint8)
    if residual:
        t = t + Traffic(0, padded * item, 1) + _scatter(groups, n, item)  # nm_decompress: zeros + scatter
        if kp > k:  # the cropped view copied contiguous
            t = t + Traffic(elems * item, elems * item, 1)
        t = t + Traffic(2 * elems * item, elems * item, 1)  # residual - decompressed
    return t


def _scatter(groups: int, n: int, item: int) -> Traffic:
    """``scatter_groups``: the int64 base (arange), per kept slot ``base + idx[..., j]`` and the assignment."""
    t = Traffic(0, _IDX * groups, 1)
    for _ in range(n):
        t = t + Traffic(_IDX * groups + groups, _IDX * groups, 1) + _indexed(groups, item)  # base + idx, assign
    return t


def decompose_traffic(rows: int, k: int, patterns, item: int, layout: str = "element", tasd: bool = True) -> Traffic:
    """The run-time compression of a ``rows × k`` operand: ``tasd_decompose`` over ``patterns`` ((N, M) pairs:
    the finiteness check, then each term from the residual of the ones before) or, with ``tasd=False``,
    one ``nm_compress`` of the single pattern."""
    pats = list(patterns)
    t = Traffic(rows * k * item, rows * k, 1) + Traffic(rows * k, 0, 1) if tasd else Traffic()  # isfinite, .all()
    for i, (n, m) in enumerate(pats):
        t = t + compress_traffic(rows, k, n, m, item, layout, residual=tasd and i + 1 < len(pats))
    return t


def decompose_live(rows: int, k: int, patterns, item: int, tasd: bool = True) -> int:
    """Bytes held while the rank steps of :func:`decompose_traffic` run, which sets the level they stream from:
    the operand, its magnitudes, the int8 rank and the step's four one-byte temporaries, and for a TASD series
    the residual. On the 2-vCPU Xeon VM a 2:4+1:4 decomposition of 8192 x 384 float32 values (53 MB held, past
    the 30 MiB that its L3 holds) took 61-67 ns per value, against 42-49 from 128 to 1024 rows."""
    kp = max(-(-k // m) * m for _, m in patterns)
    return rows * kp * ((3 if tasd else 2) * item + 5)


def scatter_traffic(rows: int, k: int, cols: int, n: int, m: int, item: int, first: bool = True) -> Traffic:
    """One term of ``decompress_blas`` besides its dense GEMM, on operands of ``item`` bytes: the casts to float32
    of a narrower operand (the kept values and B, once per term), the zeroed ``rows × ceil(k/m)·m`` buffer, the
    scatter of the kept values (in blocks of 64 rows: one set of calls per block), and for a term after the
    first ``out += term_out`` (``rows × cols``, float32 or wider)."""
    kp = -(-k // m) * m
    out = max(item, 4)
    kept = rows * kp // m * n
    blocks = max(1, math.ceil(rows / 64))
    t = Traffic()
    if item < out:  # vals.astype(float32), ascontiguousarray(b, dtype=float32)
        t = Traffic(kept * item, kept * out, 1) + Traffic(k * cols * item, k * cols * out, 1)
    s = _scatter(rows * kp // m, n, out)
    t = t + Traffic(0, rows * kp * out, blocks) + Traffic(s.read, s.written, s.calls * blocks, s.indexed, s.grouped)
    if not first:
        t = t + Traffic(2 * rows * cols * out, rows * cols * out, 1)
    return t


def gather_traffic(vectors: int, depth: int, panels: int, cols: int, k: int, item: int) -> Traffic:
    """``gather_gemm`` on a ``k × cols`` B of ``item`` bytes cut into ``panels`` column panels
    (:func:`kernels.nm.cpu.gather_plan`): with more than one panel each is first copied contiguous; then per
    vector and panel ``np.take`` of its ``depth`` kept rows (an int64 index each), whole rows, so streamed."""
    t = Traffic(k * cols * item, k * cols * item, panels) if panels > 1 else Traffic()
    return t + Traffic(vectors * (panels * depth * _IDX + depth * cols * item), vectors * depth * cols * item,
                       vectors * panels)
