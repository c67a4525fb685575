"""Error bounds of a K-term dot product from the dtypes' unit roundoff, for tests that compare a kernel with float64.

Not a test module: ``from roundoff import ...`` (pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

__all__ = ["assert_within_bound", "dot_bound", "unit_roundoff"]


def unit_roundoff(dtype) -> float:
    """u = 2^-p of ``dtype`` (half its machine epsilon): 2^-24 for float32, 2^-11 for float16, 2^-8 for bfloat16."""
    return float(ml_dtypes.finfo(np.dtype(dtype)).eps) / 2


def dot_bound(k: int, acc, out, directed: bool = False) -> float:
    """Bound on ``|computed - exact| / (|A| @ |B|)`` elementwise for products of K terms.

    gamma_K = K u / (1 - K u) of the accumulation dtype covers the products' and the sums' roundings
    in any summation order (Higham, Accuracy and Stability, 3.1; 16-bit products are even exact in
    float32), plus one rounding of the result to ``out`` where it is narrower. ``directed`` doubles
    the accumulation's u: tensor cores may truncate rather than round to nearest while adding.
    """
    u = unit_roundoff(acc) * (2 if directed else 1)
    k = max(int(k), 1)
    return k * u / (1 - k * u) + (unit_roundoff(out) if np.dtype(out) != np.dtype(acc) else 0.0)


def assert_within_bound(got, a_dense, b, bound: float) -> None:
    """Every element of ``got`` within ``bound * (|A| @ |B|)`` of ``A @ B`` in float64 (plus float64's own error)."""
    a64, b64 = np.asarray(a_dense, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ref = a64 @ b64
    scale = np.abs(a64) @ np.abs(b64)
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape and np.isfinite(got).all()
    slack = (bound + dot_bound(a64.shape[-1], np.float64, np.float64)) * scale
    err = np.abs(got - ref)
    worst = np.unravel_index(np.argmax(err - slack), err.shape)
    assert (err <= slack).all(), f"error {err[worst]:.3g} over the bound {slack[worst]:.3g} at {worst}"
