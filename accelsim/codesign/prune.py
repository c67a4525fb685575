"""Structured pruning by ℓ1,∞-type projection, and the zero-row/column structure the simulator skips."""

from __future__ import annotations

import dataclasses

import numpy as np

from accelsim.explore.compare import compare_reports
from accelsim.model.arch import ArchConfig
from accelsim.model.simulate import simulate
from accelsim.model.workload import Gemm, Sparsity
from kernels.errors import InputError
from kernels.projection import (
    mixed_norm,
    project_l11_bilevel,
    project_l12_bilevel,
    project_l1inf_bilevel,
    project_l1inf_exact,
)

__all__ = [
    "METHODS",
    "PruneResult",
    "PruneStructure",
    "group_l1_norm",
    "prune",
    "prune_structure",
    "simulate_pruned",
    "structured_gemm",
]

# method name → (projection, inner norm it bounds)
METHODS = {
    "bilevel-l1inf": (project_l1inf_bilevel, "inf"),
    "bilevel-l11": (project_l11_bilevel, "l1"),
    "bilevel-l12": (project_l12_bilevel, "l2"),
    "exact-l1inf": (project_l1inf_exact, "inf"),
}


@dataclasses.dataclass(frozen=True)
class PruneStructure:
    """Which whole rows and columns of a weight matrix are zero, and its density.

    A zero column (row) lets a systolic or tensor-core mapping skip every tile that
    only touches it, so the simulator consumes these index lists directly. Tensors
    with more than two dimensions are viewed as (shape[0], prod(shape[1:])).

    Attributes
    ----------
    shape : tuple of int
        Shape of the tensor as given.
    zero_rows, zero_cols : tuple of int
        Sorted indices of all-zero rows / columns of the 2-D view.
    density : float
        Fraction of non-zero entries (1.0 for an empty tensor).
    """

    shape: tuple[int, ...]
    zero_rows: tuple[int, ...]
    zero_cols: tuple[int, ...]
    density: float

    @property
    def n_rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def n_cols(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) if len(self.shape) > 1 else 1

    @property
    def zero_row_fraction(self) -> float:
        return len(self.zero_rows) / self.n_rows if self.n_rows else 0.0

    @property
    def zero_col_fraction(self) -> float:
        return len(self.zero_cols) / self.n_cols if self.n_cols else 0.0

    def to_dict(self) -> dict:
        """Plain JSON-ready dict: shape, index lists, their fractions and the density."""
        return {
            "shape": list(self.shape),
            "zero_rows": list(self.zero_rows),
            "zero_cols": list(self.zero_cols),
            "zero_row_fraction": self.zero_row_fraction,
            "zero_col_fraction": self.zero_col_fraction,
            "density": self.density,
        }


@dataclasses.dataclass(frozen=True)
class PruneResult:
    """A pruned tensor with its structure and the norm it was projected in, before and after."""

    weights: np.ndarray
    structure: PruneStructure
    method: str
    radius: float
    axis: int
    norm_before: float
    norm_after: float

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "radius": self.radius,
            "axis": self.axis,
            "norm": f"l1,{self.norm_name}",
            "norm_before": self.norm_before,
            "norm_after": self.norm_after,
            "structure": self.structure.to_dict(),
        }

    @property
    def norm_name(self) -> str:
        return {"inf": "inf", "l1": "1", "l2": "2"}[METHODS[self.method][1]]


def prune_structure(w) -> PruneStructure:
    """Zero rows, zero columns and density of ``w`` (N-d viewed as (shape[0], -1)).

    Examples
    --------
    >>> prune_structure(np.array([[0.0, 1.0], [0.0, 0.0]])).to_dict()["zero_cols"]
    [0]
    """
    w = np.asarray(w)
    shape = tuple(int(s) for s in w.shape)
    if w.size == 0:
        return PruneStructure(shape, (), (), 1.0)
    nz = (w != 0).reshape(w.shape[0], -1) if w.ndim else (w != 0).reshape(1, 1)
    zero_rows = tuple(int(i) for i in np.flatnonzero(~nz.any(axis=1)))
    zero_cols = tuple(int(j) for j in np.flatnonzero(~nz.any(axis=0)))
    return PruneStructure(shape, zero_rows, zero_cols, float(nz.mean()))


def _ensure_method(method: str) -> str:
    if method not in METHODS:
        raise InputError(f"method: unknown {method!r}; use one of {', '.join(METHODS)}")
    return method


def prune(w, radius: float, method: str = "bilevel-l1inf", axis: int = 0, *, workers: int = 1) -> PruneResult:
    """Project ``w`` into the ℓ1,p ball of ``radius`` with ``method`` and describe what was zeroed.

    Groups are slices along ``axis`` (columns for ``axis=0``; see
    :mod:`kernels.projection`), so shrinking the radius zeroes whole columns (or
    rows for ``axis=1``), the structure accelerators can skip.

    Raises
    ------
    InputError
        Unknown method or any input the projection rejects.
    """
    fn, inner = METHODS[_ensure_method(method)]
    w = np.asarray(w)
    out = fn(w, radius, axis, workers=workers)
    ax = int(axis) % w.ndim  # valid: the projection accepted it
    return PruneResult(
        weights=out,
        structure=prune_structure(out),
        method=method,
        radius=float(radius),
        axis=ax,
        norm_before=group_l1_norm(w, inner, ax),
        norm_after=group_l1_norm(out, inner, ax),
    )


def group_l1_norm(w, inner: str, axis: int) -> float:
    """Σ over groups (slices along ``axis``) of their ``inner`` norm: the norm the methods bound."""
    w = np.asarray(w)
    groups = np.moveaxis(w, axis, -1).reshape(-1, w.shape[axis])
    return mixed_norm(groups, ("l1", inner))


def structured_gemm(structure: PruneStructure, tokens: int, name: str = "pruned", residual=None, dtype=None):
    """The GEMM a pruned Linear weight leaves: zero columns drop from K, zero rows from N.

    The weight is laid out as (out_features, in_features), as PyTorch stores a Linear, so the
    GEMM is X[tokens, in] · Wᵀ: a zero column removes an input feature (K), a zero row an output
    (N). What remains may still be sparse: ``residual`` ("2:4", "tasd:2:4+1:4", "u0.4") is the
    weight sparsity of the kept block, so projection → N:M/TASD → EDP is one pipeline.
    """
    if len(structure.shape) < 2:
        raise InputError(f"structured_gemm: needs a 2-D weight, got shape {structure.shape}")
    n = structure.n_rows - len(structure.zero_rows)
    k = structure.n_cols - len(structure.zero_cols)
    if n == 0 or k == 0:
        raise InputError(f"structured_gemm: every {'row' if n == 0 else 'column'} of the weight is zero")
    return Gemm(name, tokens, n, k, dtype, weight_sparsity=Sparsity.parse(residual))


def simulate_pruned(arch: ArchConfig, structure: PruneStructure, tokens: int, residual: str | None = None) -> dict:
    """The dense layer vs the structurally pruned one (and with ``residual`` sparsity on the kept
    block) on ``arch``: ``{"baseline": arch name, "variants": [compare_reports row + variant, k, n,
    compute and stall cycles, what the hardware executed]}``."""
    dense = PruneStructure(structure.shape, (), (), 1.0)
    variants = [("dense", structured_gemm(dense, tokens, "layer")),
                ("pruned", structured_gemm(structure, tokens, "layer"))]
    if residual:
        variants.append((f"pruned+{residual}", structured_gemm(structure, tokens, "layer", residual)))
    reports = [simulate(arch, g) for _, g in variants]
    cmp = compare_reports(reports)
    for (label, g), a, r in zip(variants, cmp["archs"], reports):
        (layer,) = r.layers
        a.update(variant=label, k=g.k, n=g.n, compute_cycles=layer.compute_cycles, stall_cycles=layer.stall_cycles,
                 executed=layer.detail.get("executed", "dense"))
    return {"baseline": arch.name, "variants": cmp["archs"]}

