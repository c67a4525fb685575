"""TASD (Jeong et al., MLSys 2025): a tensor as a greedy series of N:M terms, and the series SpMM.

The TASD room: decomposition, series arithmetic and the series SpMM. A series is a sum of N:M
terms run by the N:M kernels (one launch for every term on the GPU), so besides the shared top
modules of :mod:`kernels` and itself it imports :mod:`kernels.nm`, and nothing else; the replay's
descriptions of the TASD launches are N:M's (:mod:`kernels.nm.impls`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from kernels.backend import array_module, dtype_kind, native_float
from kernels.errors import InputError
from kernels.nm import NMPattern, NMTensor, check_spmm, nm_compress, nm_decompress, nm_spmm
from kernels.nm.format import sum_decompressed

__all__ = [
    "candidate_series",
    "format_series",
    "parse_series",
    "series_density",
    "tasd_approximate",
    "tasd_decompose",
    "tasd_errors",
    "tasd_reconstruct",
    "tasd_spmm",
]


def parse_series(series) -> tuple[NMPattern, ...]:
    """Normalise a TASD series to a tuple of :class:`NMPattern`, one per term, in order.

    Accepts ``"2:4+1:4"``, ``["2:4", "1:4"]``, ``[(2, 4), (1, 4)]`` or ``NMPattern`` items, so
    that the CLI, configs and Python callers share one validator.

    Raises
    ------
    InputError
        For an empty series or any term that is not an N:M pattern; the message names it.

    Examples
    --------
    >>> [str(p) for p in parse_series("2:4 + 1:4")]
    ['2:4', '1:4']
    """
    if isinstance(series, NMPattern):
        return (series,)
    if isinstance(series, str):
        items = series.split("+")
        if not series.strip() or any(not s.strip() for s in items):
            raise InputError(f"TASD series {series!r}: expected N:M terms joined by '+', e.g. '2:4+1:4'")
    elif isinstance(series, (tuple, list)) and len(series) == 2 and all(_is_int(x) for x in series):
        items = [tuple(series)]  # a bare (N, M) is a one-term series
    elif isinstance(series, Iterable):
        items = list(series)
    else:
        raise InputError(f"TASD series: expected a string like '2:4+1:4' or a list of (N, M), got {series!r}")
    if not items:
        raise InputError("TASD series is empty: give at least one N:M term, e.g. '2:4'")
    return tuple(_pattern(item, series) for item in items)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _pattern(item, series) -> NMPattern:
    if isinstance(item, (NMPattern, str)):
        return NMPattern.parse(item)
    if isinstance(item, (tuple, list)) and len(item) == 2:
        n, m = item
        if _is_int(n) and _is_int(m):
            return NMPattern(int(n), int(m))
    raise InputError(f"TASD series {series!r}: term {item!r} is not an N:M pattern such as '2:4' or (2, 4)")


def format_series(series) -> str:
    """The canonical ``"2:4+1:4"`` spelling of a series."""
    return "+".join(str(p) for p in parse_series(series))


def series_density(series) -> float:
    """Fraction of dense MACs a series executes: the sum of its terms' N/M (1.0 for 2:4+2:4)."""
    return float(sum(p.density for p in parse_series(series)))


def candidate_series(patterns, max_terms: int) -> list[tuple[NMPattern, ...]]:
    """Every series of 1..``max_terms`` terms drawn from the hardware's ``patterns`` (TASDER's search space).

    Terms are ordered densest first (ties: smaller M first), because the greedy decomposition
    should spend its first, largest term on the largest magnitudes; each multiset of patterns
    therefore appears once. Equivalent-looking series such as ``1:4+1:4`` and ``2:4`` are both
    kept: they approximate alike but cost different hardware passes.

    Examples
    --------
    >>> [format_series(s) for s in candidate_series(["1:4", "2:4"], 2)]
    ['2:4', '1:4', '2:4+2:4', '2:4+1:4', '1:4+1:4']
    """
    if not isinstance(max_terms, (int, np.integer)) or isinstance(max_terms, bool) or max_terms < 1:
        raise InputError(f"candidate_series: max_terms must be a positive integer, got {max_terms!r}")
    if isinstance(patterns, (str, NMPattern)):
        patterns = [patterns]
    pats = sorted({_pattern(p, patterns) for p in patterns}, key=lambda p: (-p.density, p.m, p.n))
    if not pats:
        raise InputError("candidate_series: no patterns given; name the hardware's N:M patterns, e.g. ['2:4']")
    out = []
    for k in range(1, int(max_terms) + 1):
        out.extend(itertools.combinations_with_replacement(pats, k))
    return out


def _ensure_real(a, who: str):
    xp = array_module(a)
    a = xp.asarray(a)
    if a.ndim == 0 or a.size == 0:
        raise InputError(f"{who}: expected a non-empty array with at least one axis, got shape {a.shape}")
    kind = dtype_kind(a.dtype)
    if kind not in "biuf":
        raise InputError(f"{who}: expected a real numeric array, got dtype {a.dtype}")
    if kind == "f" and not bool(xp.isfinite(native_float(a)).all()):
        raise InputError(f"{who}: input contains NaN or infinity; magnitude selection is undefined")
    return xp, a


def tasd_decompose(a, series, axis: int = -1, layout: str = "element") -> list[NMTensor]:
    """Greedy TASD: one N:M term per pattern in ``series``, each taken from the residual so far.

    TASD lets structured-sparse hardware run unstructured-sparse and dense layers: with
    ``A ≈ A1 + A2 + …``, distributivity turns ``A @ B`` into a series of N:M SpMMs
    (:func:`tasd_spmm`) accumulating into one output.

    Term ``i`` keeps, in every group of M along ``axis`` (the reduction axis), the N largest
    magnitudes of ``a - (term_1 + … + term_{i-1})``. Selected positions leave an exact zero in
    the residual, so terms are disjoint and ``ceil(M/N)`` terms of one N:M pattern reproduce
    ``a`` exactly. Works on NumPy or CuPy arrays (the data picks the module); ties break as in
    :func:`kernels.nm.nm_compress`, so results are deterministic.

    Parameters
    ----------
    a : real array (NumPy or CuPy), finite.
    series : ``"2:4+1:4"``, ``[(2, 4), (1, 4)]``, … (see :func:`parse_series`).
    axis : the reduction axis the N:M groups run along.
    layout : ``"element"`` or ``"vector"`` (2-D only): how each term keeps its positions,
        see :func:`kernels.nm.nm_compress`.

    Returns
    -------
    list of NMTensor, one per term, same dtype and shape as ``a``.

    Examples
    --------
    >>> terms = tasd_decompose(np.array([[4.0, -3.0, 2.0, 1.0]]), "2:4+1:4")
    >>> [nm_decompress(t).tolist() for t in terms]
    [[[4.0, -3.0, 0.0, 0.0]], [[0.0, 0.0, 2.0, 0.0]]]
    """
    pats = parse_series(series)
    xp, a = _ensure_real(a, "tasd_decompose")
    residual = a
    terms = []
    for i, p in enumerate(pats):
        t = nm_compress(residual, p.n, p.m, axis, layout)
        terms.append(t)
        if i + 1 < len(pats):  # exact: each entry stays or becomes 0 (bfloat16 subtracts as float32)
            residual = (native_float(residual) - native_float(nm_decompress(t))).astype(a.dtype, copy=False)
    return terms


def _check_terms(terms, who: str) -> list[NMTensor]:
    terms = list(terms) if isinstance(terms, Iterable) else [terms]
    if not terms:
        raise InputError(f"{who}: no TASD terms given")
    for t in terms:
        if not isinstance(t, NMTensor):
            raise InputError(f"{who}: expected NMTensor terms from tasd_decompose, got {type(t).__name__}")
    first = terms[0]
    for t in terms[1:]:
        if t.shape != first.shape or t.axis != first.axis:
            raise InputError(
                f"{who}: terms disagree: shape {t.shape} along axis {t.axis} vs {first.shape} along axis {first.axis}"
            )
    return terms


def tasd_reconstruct(terms):
    """The dense approximation ``term_1 + term_2 + …`` (exact input when the series covers it)."""
    return sum_decompressed(_check_terms(terms, "tasd_reconstruct"))


def tasd_approximate(a, series, axis: int = -1):
    """``tasd_reconstruct(tasd_decompose(a, series, axis))``: the dense array the series computes with."""
    return tasd_reconstruct(tasd_decompose(a, series, axis))


def tasd_errors(a, terms) -> list[dict]:
    """How well each prefix of the series approximates ``a``: one record per term.

    Keys: ``term`` (1-based), ``pattern`` (``"2:4"``), ``series`` (the prefix, ``"2:4+1:4"``),
    ``density`` (sum of N/M so far: the fraction of dense MACs structured hardware executes),
    ``nnz_fraction`` (non-zeros captured so far / elements: what the data actually used), and
    ``rel_error`` (``||a - prefix||_F / ||a||_F``, 0 for an all-zero ``a``). The error never
    grows from one term to the next, because each term only moves residual entries to zero.
    """
    terms = _check_terms(terms, "tasd_errors")
    xp, a = _ensure_real(a, "tasd_errors")
    if tuple(a.shape) != tuple(terms[0].shape):
        raise InputError(f"tasd_errors: input shape {tuple(a.shape)} does not match the terms' {terms[0].shape}")
    a64 = a.astype(xp.float64)
    norm = float(xp.linalg.norm(a64.ravel()))
    approx = xp.zeros_like(a64)
    out, density, prefix = [], 0.0, []
    for i, t in enumerate(terms, 1):
        approx = approx + nm_decompress(t).astype(xp.float64)
        density += t.pattern.density
        prefix.append(str(t.pattern))
        err = float(xp.linalg.norm((a64 - approx).ravel()))
        out.append(
            {
                "term": i,
                "pattern": str(t.pattern),
                "series": "+".join(prefix),
                "density": density,
                "nnz_fraction": float(xp.count_nonzero(approx)) / a.size,
                "rel_error": err / norm if norm > 0 else 0.0,
            }
        )
    return out


def tasd_spmm(terms, b):
    """``tasd_reconstruct(terms) @ b``: every term's kept values against one B, one output.

    Each term is a 2-D ``(rows, K)`` :class:`NMTensor` compressed along axis 1 (the reduction
    axis), as :func:`tasd_decompose` gives for ``axis=-1``; all terms share one layout. On
    NumPy each term is one :func:`kernels.nm.nm_spmm`, accumulated in place. On CuPy
    :mod:`kernels.nm.dispatch` runs the tuned fastest of: the CUDA-core kernel in ONE launch
    (``kernels.nm.cuda.tasd_spmm_cupy``: B's tile and the output tile stay on chip while the
    terms stream through), the terms on sparse tensor cores into one output (beta = 1, no add
    pass), or dense cuBLAS on the summed operand.

    Raises
    ------
    InputError
        For no terms, terms of different shapes or layouts, or what :func:`kernels.nm.nm_spmm` refuses.
    """
    terms = _check_terms(terms, "tasd_spmm")
    if any(t.layout != terms[0].layout for t in terms):
        raise InputError("tasd_spmm: terms mix the element and vector layouts; decompose with one layout")
    xp, b = check_spmm(terms[0], b, "tasd_spmm")
    if xp is not np:
        from kernels.nm.dispatch import spmm_cupy

        return spmm_cupy(terms, b)
    out = nm_spmm(terms[0], b)
    for t in terms[1:]:
        out += nm_spmm(t, b)
    return out
