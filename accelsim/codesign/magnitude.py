"""Unstructured magnitude pruning, per layer: the sparse baselines TASD is evaluated on."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from kernels.errors import InputError

__all__ = ["magnitude_prune", "prune_weights", "sparsity"]


def magnitude_prune(w: np.ndarray, fraction: float) -> np.ndarray:
    """A copy of ``w`` with its ``round(fraction * size)`` smallest-magnitude entries set to zero.

    Per tensor (i.e. per layer), unstructured: the usual one-shot magnitude baseline. Ties go
    to the lower flat index (stable sort), so the result is deterministic.

    Examples
    --------
    >>> magnitude_prune(np.array([3.0, -1.0, 2.0, 0.5]), 0.5).tolist()
    [3.0, 0.0, 2.0, 0.0]
    """
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0.0 <= fraction <= 1.0:
        raise InputError(f"magnitude_prune: fraction must be in [0, 1], got {fraction!r}")
    w = np.asarray(w)
    k = int(round(fraction * w.size))
    out = w.copy()
    if k:
        # O(size) selection instead of a full sort: everything below the k-th smallest
        # magnitude goes, then the lowest-index entries equal to it until k are gone.
        mag = np.abs(w).ravel()
        thr = np.partition(mag, k - 1)[k - 1]
        drop = mag < thr
        ties = np.flatnonzero(mag == thr)[: k - int(drop.sum())]
        drop[ties] = True
        out.reshape(-1)[drop] = 0
    return out


def prune_weights(weights: Mapping[str, np.ndarray], fraction: float) -> dict[str, np.ndarray]:
    """:func:`magnitude_prune` applied to every tensor in ``weights`` (each layer to the same sparsity)."""
    return {name: magnitude_prune(w, fraction) for name, w in weights.items()}


def sparsity(weights: Mapping[str, np.ndarray] | np.ndarray) -> float:
    """Fraction of zero entries over all given tensors."""
    arrays = [weights] if isinstance(weights, np.ndarray) else list(weights.values())
    total = sum(a.size for a in arrays)
    return float(sum(a.size - np.count_nonzero(a) for a in arrays) / total) if total else 0.0
