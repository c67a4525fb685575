"""N:M structured sparsity: the one pattern type, shared by the kernels and the simulator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels.backend import array_module
from kernels.errors import InputError

__all__ = ["MAX_M", "NMPattern", "NMTensor", "is_nm", "nm_compress", "nm_decompress", "nm_spmm"]

MAX_M = 32


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

    The compressed axis is moved last and split into ``groups`` of ``m``; ``values`` and
    ``indices`` have shape ``(*rest, groups, n)`` where ``rest`` is ``shape`` without ``axis``.
    ``indices`` (uint8, ascending within a group) give each value's position 0..m-1 in its
    group, i.e. dense index ``g * m + indices[..., g, j]``. When ``shape[axis] % m != 0`` the
    axis was zero-padded to ``groups * m``; padded positions hold zeros and are cropped again
    by :func:`nm_decompress`. Arrays are NumPy or CuPy, whichever the input was.
    """

    values: object
    indices: object
    n: int
    m: int
    axis: int
    shape: tuple

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
        """Bytes of values plus metadata as stored (one uint8 per kept value)."""
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


def nm_compress(a, n: int, m: int, axis: int = -1) -> NMTensor:
    """Keep the ``n`` largest-magnitude values in every group of ``m`` along ``axis``.

    Ties break deterministically: the lower index wins, so equal inputs give bit-identical
    outputs on NumPy and CuPy. An axis whose length is not a multiple of ``m`` is zero-padded
    at its end (padding never beats a real element: it has magnitude 0 and a higher index).

    Parameters
    ----------
    a : NumPy or CuPy array of real numbers, no NaN.
    n, m : the pattern, 1 <= n <= m <= 32 (n == m keeps everything).
    axis : the reduction axis the groups run along.

    Raises
    ------
    InputError
        For a bad pattern or axis, a non-numeric or complex array, or NaN values.

    Examples
    --------
    >>> t = nm_compress(np.array([[1.0, -4.0, 3.0, 2.0]]), 2, 4)
    >>> t.values.tolist(), t.indices.tolist()
    ([[[-4.0, 3.0]]], [[[1, 2]]])
    """
    pat, axis = _check_nm(a, n, m, axis)
    xp = array_module(a)
    a = xp.asarray(a)
    if a.dtype.kind not in "biuf":
        raise InputError(f"nm_compress: expected a real numeric array, got dtype {a.dtype}")
    if a.dtype.kind == "f" and bool(xp.isnan(a).any()):
        raise InputError("nm_compress: input contains NaN; N:M selection by magnitude is undefined")
    g = _grouped(a, pat.m, axis, xp)
    mag = xp.abs(g.astype(xp.float64)) if a.dtype.kind in "biu" else xp.abs(g)
    # rank[i] = how many group members beat i (larger magnitude, or equal with a lower index):
    # a strict total order, so ranks are a permutation of 0..m-1 and exactly n satisfy rank < n.
    # m <= 32 passes of elementwise work, identical on NumPy and CuPy (no sort-stability question).
    rank = xp.zeros(g.shape, dtype=xp.int8)
    pos = xp.arange(pat.m)
    for j in range(pat.m):
        mj = mag[..., j : j + 1]
        rank += (mj > mag) | ((mj == mag) & (j < pos))
    keep = rank < pat.n
    idx = xp.nonzero(keep.reshape(-1, pat.m))[1].reshape(*g.shape[:-1], pat.n)
    vals = xp.take_along_axis(g, idx, axis=-1)
    return NMTensor(vals, idx.astype(xp.uint8), pat.n, pat.m, axis, tuple(int(s) for s in a.shape))


def nm_decompress(t: NMTensor):
    """The dense array ``t`` was compressed from, with the dropped values as zeros."""
    if not isinstance(t, NMTensor):
        raise InputError(f"nm_decompress: expected an NMTensor, got {type(t).__name__}")
    xp = array_module(t.values)
    g = xp.zeros((*t.values.shape[:-1], t.m), dtype=t.values.dtype)
    xp.put_along_axis(g, t.indices.astype(xp.intp), t.values, axis=-1)
    x = g.reshape(*g.shape[:-2], -1)[..., : t.shape[t.axis]]
    return xp.ascontiguousarray(xp.moveaxis(x, -1, t.axis))


def is_nm(a, n: int, m: int, axis: int = -1) -> bool:
    """True when every group of ``m`` along ``axis`` (zero-padded at the end) has at most ``n`` non-zeros."""
    pat, axis = _check_nm(a, n, m, axis)
    xp = array_module(a)
    g = _grouped(xp.asarray(a), pat.m, axis, xp)
    return bool(((g != 0).sum(axis=-1) <= pat.n).all())


_GATHER_BUDGET = 1 << 18  # gathered B elements per block (~1 MB fp32): stays in cache; 64 MB measured 3x slower


def nm_spmm(a_nm: NMTensor, b):
    """``nm_decompress(a_nm) @ b`` computed from the compressed form, never building dense A.

    ``a_nm`` is a 2-D ``(rows, K)`` matrix compressed along its reduction axis (``axis=1``,
    i.e. the last); ``b`` is ``(K, cols)``. Only the ``n`` kept values per group are multiplied:
    ``n/m`` of the dense FLOPs. Accumulation is at least float32 (float16 inputs give a
    float32 result, like the CUDA kernel); otherwise the result dtype is NumPy's promotion.

    The NumPy path gathers the referenced rows of ``b`` (``b[g*m + idx]``) for a block of
    output rows and contracts them with the kept values; blocks bound the gathered memory.
    On CuPy arrays it launches the CUDA kernel in ``kernels/cuda/nm_spmm.cu``.

    Raises
    ------
    InputError
        When ``a_nm`` is not a 2-D NMTensor compressed along axis 1, or shapes do not match.
    """
    if not isinstance(a_nm, NMTensor):
        raise InputError(f"nm_spmm: expected an NMTensor as A, got {type(a_nm).__name__}")
    if len(a_nm.shape) != 2 or a_nm.axis != 1:
        raise InputError(
            f"nm_spmm: A must be 2-D (rows, K) compressed along axis 1 (its last), got shape "
            f"{a_nm.shape} compressed along axis {a_nm.axis}"
        )
    xp = array_module(a_nm.values, b)
    b = xp.asarray(b)
    if b.ndim != 2 or b.shape[0] != a_nm.shape[1]:
        raise InputError(f"nm_spmm: B must be 2-D with {a_nm.shape[1]} rows to match A {a_nm.shape}, got {b.shape}")
    if b.dtype.kind not in "biuf":
        raise InputError(f"nm_spmm: expected a real numeric B, got dtype {b.dtype}")
    if xp is not np:
        from kernels.nm_cuda import nm_spmm_cupy

        return nm_spmm_cupy(a_nm, b)
    return _nm_spmm_numpy(a_nm, b)


def _nm_spmm_numpy(a_nm: NMTensor, b: np.ndarray) -> np.ndarray:
    rows, k = a_nm.shape
    out_dtype = np.result_type(a_nm.values.dtype, b.dtype, np.float32)
    vals = a_nm.values.reshape(rows, -1).astype(out_dtype, copy=False)
    # Dense column of every kept value; positions in the zero padding (K % m != 0) hold value 0,
    # so clipping them onto the last real row of B adds 0 * b[K-1] exactly as dense A @ B does.
    col = (np.arange(a_nm.groups, dtype=np.intp)[:, None] * a_nm.m + a_nm.indices.astype(np.intp))
    col = np.minimum(col.reshape(rows, -1), k - 1)
    bb = b.astype(out_dtype, copy=False)
    out = np.empty((rows, b.shape[1]), dtype=out_dtype)
    step = max(1, _GATHER_BUDGET // max(1, vals.shape[1] * b.shape[1]))
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        # (r, j) x (r, j, c) -> (r, c): batched row-vector times gathered-rows matrix (BLAS via matmul).
        out[r0:r1] = np.matmul(vals[r0:r1, None, :], bb[col[r0:r1]])[:, 0, :]
    return out
