"""The shuffle baseline of Kron-matmul on any array module: per factor a GEMM, then a transpose copy."""

from __future__ import annotations

__all__ = ["shuffle"]


def shuffle(xp, x, factors):
    """Baseline: per factor (last first) a matmul on the last axis, then a rotating transpose copy."""
    m = x.shape[0]
    y = x
    for f in reversed(factors):
        p, q = f.shape
        y = (y.reshape(-1, p) @ f).reshape(m, -1, q).transpose(0, 2, 1).reshape(m, -1)
    return xp.ascontiguousarray(y)
