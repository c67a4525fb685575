"""The N:M data: the one pattern type (shared by the kernels and the simulator), both layouts, compress/decompress."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels.backend import array_module, dtype_kind, native_float
from kernels.errors import InputError

__all__ = [
    "LAYOUTS",
    "MAX_M",
    "VECTOR_WIDTH",
    "NMPattern",
    "check_spmm",
    "NMTensor",
    "is_nm",
    "nm_compress",
    "nm_decompress",
    "row_indices",
    "scatter_groups",
    "sum_decompressed",
]

MAX_M = 32
VECTOR_WIDTH = 32
"""Rows (across the non-reduction axis) that share one index set in the vector layout."""
LAYOUTS = ("element", "vector")


@dataclass(frozen=True, order=True)
class NMPattern:
    """At most ``n`` non-zeros in every group of ``m`` consecutive elements along the reduction axis.

    ``n == m`` is the dense pattern (VEGETA's 4:4). Examples
    --------
    >>> NMPattern.parse("2:4").density
    0.5
    """

    n: int
    m: int

    def __post_init__(self):
        if not (isinstance(self.n, int) and isinstance(self.m, int)):
            raise InputError(f"N:M pattern: N and M must be integers, got {self.n!r}:{self.m!r}")
        if not 1 <= self.m <= MAX_M:
            raise InputError(f"N:M pattern {self.n}:{self.m}: M must be in 1..{MAX_M}")
        if not 1 <= self.n <= self.m:
            raise InputError(f"N:M pattern {self.n}:{self.m}: need 1 <= N <= M (N > M is not a pattern)")

    @classmethod
    def parse(cls, text: str | NMPattern) -> NMPattern:
        """Parse ``"N:M"`` (whitespace allowed); raise :class:`InputError` naming the text otherwise."""
        if isinstance(text, NMPattern):
            return text
        parts = str(text).strip().split(":")
        try:
            n, m = (int(p) for p in parts)
        except ValueError:
            raise InputError(f"N:M pattern {text!r}: expected two integers as 'N:M', e.g. '2:4'") from None
        return cls(n, m)

    @property
    def density(self) -> float:
        return self.n / self.m

    @property
    def dense(self) -> bool:
        return self.n == self.m

    @property
    def metadata_bits(self) -> int:
        """Bits of position metadata per kept value: ceil(log2 M) (0 for a dense pattern)."""
        return 0 if self.dense else math.ceil(math.log2(self.m))

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


@dataclass(frozen=True, eq=False)
class NMTensor:
    """A tensor compressed to N:M along one axis: kept values plus their in-group positions.

    Storage (stable: the CPU and GPU kernels read these arrays directly). The compressed
    axis is moved last and split into ``groups = ceil(shape[axis] / m)`` groups of ``m``;
    ``rest`` is ``shape`` without ``axis``.

    ``values``
        shape ``(*rest, groups, n)``, the input dtype: the kept values of every group, in
        ascending position order. Identical in both layouts.
    ``indices``
        uint8, the position 0..m-1 of each value inside its group (dense index along
        ``axis`` = ``g * m + position``), ascending within a group.

        * ``layout="element"``: shape ``(*rest, groups, n)``, one position per value.
        * ``layout="vector"`` (2-D only, ``rest = (r,)``): shape ``(ceil(r / 32), groups, n)``;
          ``indices[v, g]`` holds for the 32 rows ``32*v .. 32*v + 31`` of ``values``
          (the last vector may be shorter: ``r`` is not padded, and its missing rows count as
          zeros when the positions are chosen). :func:`row_indices` expands it to one set per row.

    When ``shape[axis] % m != 0`` the axis was zero-padded at its end to ``groups * m``;
    padded positions can be kept only when a group has fewer than ``n`` real positions, hold
    the value 0, and are cropped by :func:`nm_decompress`. Arrays are NumPy or CuPy,
    whichever the input was.
    """

    values: object
    indices: object
    n: int
    m: int
    axis: int
    shape: tuple
    layout: str = "element"

    @property
    def pattern(self) -> NMPattern:
        return NMPattern(self.n, self.m)

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def groups(self) -> int:
        return int(self.values.shape[-2])

    @property
    def nbytes(self) -> int:
        """Bytes of values plus metadata as stored (one uint8 per kept value, or per 32 in the vector layout)."""
        return int(self.values.nbytes + self.indices.nbytes)


def _check_nm(a, n, m, axis) -> tuple[NMPattern, int]:
    pat = NMPattern(n, m) if isinstance(n, int) and isinstance(m, int) else NMPattern.parse(f"{n}:{m}")
    ndim = getattr(a, "ndim", None)
    if ndim is None or ndim == 0:
        raise InputError(f"N:M: expected an array with at least one axis, got {type(a).__name__}")
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise InputError(f"N:M: axis {axis!r} out of range for an array with {ndim} axes")
    return pat, int(axis) % ndim


def _grouped(a, m, axis, xp):
    """Move ``axis`` last, zero-pad it to a multiple of ``m`` and split it into groups of ``m``."""
    x = xp.moveaxis(a, axis, -1)
    k = x.shape[-1]
    pad = (-k) % m
    if pad:
        x = xp.concatenate([x, xp.zeros((*x.shape[:-1], pad), dtype=x.dtype)], axis=-1)
    return x.reshape(*x.shape[:-1], (k + pad) // m, m)


def nm_compress(a, n: int, m: int, axis: int = -1, layout: str = "element") -> NMTensor:
    """Keep ``n`` of every ``m`` values along ``axis``, per element or per 32-row vector.

    ``layout="element"`` keeps the ``n`` largest magnitudes of every group independently.
    ``layout="vector"`` (2-D ``a`` only, NM-SpMM's vector-wise N:M) keeps, in every group,
    the same ``n`` positions for 32 consecutive rows across the other axis: those whose
    column over the 32 rows has the largest L2 norm (squares summed in float64, row by row,
    so NumPy and CuPy round alike). Sharing one index set across 32 rows is what lets a GPU
    kernel gather one B row per kept position for a whole warp of output rows.

    Ties break deterministically: the lower index wins, so equal inputs give bit-identical
    outputs on NumPy and CuPy. An axis whose length is not a multiple of ``m`` is zero-padded
    at its end (padding never beats a real element: it has magnitude 0 and a higher index).

    Parameters
    ----------
    a : NumPy or CuPy array of real numbers, no NaN (2-D for the vector layout).
    n, m : the pattern, 1 <= n <= m <= 32 (n == m keeps everything).
    axis : the reduction axis the groups run along.
    layout : ``"element"`` or ``"vector"`` (see :class:`NMTensor` for the storage).

    Raises
    ------
    InputError
        For a bad pattern, axis or layout, a non-numeric or complex array, or NaN values.

    Examples
    --------
    >>> t = nm_compress(np.array([[1.0, -4.0, 3.0, 2.0]]), 2, 4)
    >>> t.values.tolist(), t.indices.tolist()
    ([[[-4.0, 3.0]]], [[[1, 2]]])
    >>> v = nm_compress(np.array([[1.0, -4.0, 3.0, 2.0], [5.0, 0.0, 0.0, 1.0]]), 2, 4, layout="vector")
    >>> v.values.tolist(), v.indices.tolist()
    ([[[1.0, -4.0]], [[5.0, 0.0]]], [[[0, 1]]])
    """
    pat, axis = _check_nm(a, n, m, axis)
    if layout not in LAYOUTS:
        raise InputError(f"nm_compress: layout {layout!r} is unknown; choose 'element' or 'vector'")
    xp = array_module(a)
    a = xp.asarray(a)
    if layout == "vector" and a.ndim != 2:
        raise InputError(f"nm_compress: the vector layout needs a 2-D array, got shape {tuple(a.shape)}")
    kind = dtype_kind(a.dtype)
    if kind not in "biuf":
        raise InputError(f"nm_compress: expected a real numeric array, got dtype {a.dtype}")
    if kind == "f" and bool(xp.isnan(native_float(a)).any()):
        raise InputError("nm_compress: input contains NaN; N:M selection by magnitude is undefined")
    g = _grouped(a, pat.m, axis, xp)
    if layout == "element":
        mag = xp.abs(g.astype(xp.float64)) if kind in "biu" else xp.abs(native_float(g))
        idx = _top_positions(mag, pat.n, xp)
        vals = xp.take_along_axis(g, idx, axis=-1)
    else:
        idx = _top_positions(_vector_norms(g.astype(xp.float64), xp), pat.n, xp)
        vals = xp.take_along_axis(g, _expand(idx, g.shape[0], xp), axis=-1)
    return NMTensor(vals, idx.astype(xp.uint8), pat.n, pat.m, axis, tuple(int(s) for s in a.shape), layout)


def _top_positions(score, n, xp):
    """Ascending positions of the ``n`` largest scores along the last axis (lower index wins ties)."""
    m = score.shape[-1]
    # rank[i] = how many group members beat i (larger score, or equal with a lower index):
    # a strict total order, so ranks are a permutation of 0..m-1 and exactly n satisfy rank < n.
    # m <= 32 passes of elementwise work, identical on NumPy and CuPy (no sort-stability question).
    rank = xp.zeros(score.shape, dtype=xp.int8)
    pos = xp.arange(m)
    for j in range(m):
        sj = score[..., j : j + 1]
        rank += (sj > score) | ((sj == score) & (j < pos))
    keep = rank < n
    return xp.nonzero(keep.reshape(-1, m))[1].reshape(*score.shape[:-1], n)


def _vector_norms(g64, xp):
    """Squared L2 norm over each 32-row vector of ``(rows, groups, m)``: ``(ceil(rows/32), groups, m)``."""
    rows = g64.shape[0]
    nvec = -(-rows // VECTOR_WIDTH)
    pad = nvec * VECTOR_WIDTH - rows
    if pad:
        g64 = xp.concatenate([g64, xp.zeros((pad, *g64.shape[1:]), dtype=g64.dtype)], axis=0)
    v = g64.reshape(nvec, VECTOR_WIDTH, *g64.shape[1:])
    acc = v[:, 0] * v[:, 0]
    for r in range(1, VECTOR_WIDTH):  # a fixed summation order: same rounding on every backend
        acc = acc + v[:, r] * v[:, r]
    return acc


def _expand(vec_idx, rows, xp):
    """Per-vector index sets ``(nvec, ...)`` repeated to one per row ``(rows, ...)``."""
    return xp.repeat(vec_idx, VECTOR_WIDTH, axis=0)[:rows]


def row_indices(t: NMTensor):
    """Positions per row, shape ``values.shape``: ``t.indices`` itself, or expanded from the vectors."""
    if t.layout == "element":
        return t.indices
    return _expand(t.indices, t.values.shape[0], array_module(t.indices))


def scatter_groups(values, idx, groups) -> None:
    """Write each group's kept ``values`` at its positions ``idx`` into the zeroed ``groups`` ``(..., m)``.

    One flat-index assignment per kept slot: 2.5x faster than ``put_along_axis`` (which builds
    an index array per axis) at 2:4 on 1024x4096. ``groups`` may have another dtype (the
    assignment casts).
    """
    xp = array_module(groups)
    base = xp.arange(0, groups.size, groups.shape[-1], dtype=xp.intp).reshape(values.shape[:-1])
    flat = groups.reshape(-1)
    for j in range(values.shape[-1]):
        flat[base + idx[..., j]] = values[..., j]


def nm_decompress(t: NMTensor):
    """The dense array ``t`` was compressed from, with the dropped values as zeros."""
    if not isinstance(t, NMTensor):
        raise InputError(f"nm_decompress: expected an NMTensor, got {type(t).__name__}")
    xp = array_module(t.values)
    g = xp.zeros((*t.values.shape[:-1], t.m), dtype=t.values.dtype)
    scatter_groups(t.values, row_indices(t), g)
    x = g.reshape(*g.shape[:-2], -1)[..., : t.shape[t.axis]]
    return xp.ascontiguousarray(xp.moveaxis(x, -1, t.axis))


def sum_decompressed(terms):
    """``nm_decompress(t1) + nm_decompress(t2) + ...`` of disjoint terms (a TASD series), in the terms' dtype.

    Exact, since each position is non-zero in at most one term; bfloat16 adds as float32, whatever
    bfloat16 ufuncs the CuPy version has.
    """
    out = nm_decompress(terms[0])
    if len(terms) > 1:
        wide = native_float(out)
        for t in terms[1:]:
            wide = wide + native_float(nm_decompress(t))
        out = wide.astype(out.dtype, copy=False)
    return out


def is_nm(a, n: int, m: int, axis: int = -1) -> bool:
    """True when every group of ``m`` along ``axis`` (zero-padded at the end) has at most ``n`` non-zeros."""
    pat, axis = _check_nm(a, n, m, axis)
    xp = array_module(a)
    g = _grouped(xp.asarray(a), pat.m, axis, xp)
    return bool(((g != 0).sum(axis=-1) <= pat.n).all())


def check_spmm(a_nm, b, who: str):
    """Validate an SpMM operand pair; return ``(xp, b)`` with ``b`` as an array of the data's module."""
    if not isinstance(a_nm, NMTensor):
        raise InputError(f"{who}: expected an NMTensor as A, got {type(a_nm).__name__}")
    if len(a_nm.shape) != 2 or a_nm.axis != 1:
        raise InputError(
            f"{who}: A must be 2-D (rows, K) compressed along axis 1 (its last), got shape "
            f"{a_nm.shape} compressed along axis {a_nm.axis}"
        )
    xp = array_module(a_nm.values, b)
    b = xp.asarray(b)
    if b.ndim != 2 or b.shape[0] != a_nm.shape[1]:
        raise InputError(f"{who}: B must be 2-D with {a_nm.shape[1]} rows to match A {a_nm.shape}, got {b.shape}")
    if dtype_kind(b.dtype) not in "biuf":
        raise InputError(f"{who}: expected a real numeric B, got dtype {b.dtype}")
    return xp, b
