"""Kron-matmul on the simulator: per-factor GEMMs with transposes, or FastKron-style fused on chip."""

from __future__ import annotations

from accelsim.model.arch import DTYPE_BYTES, ArchConfig
from accelsim.model.mapper import FIXED, Mapper, plan_gemm
from accelsim.model.mapping import Exec, Mapping
from accelsim.model.workload import KronMatmul

__all__ = ["FUSED_BLOCK_ROWS", "fused_groups", "lower_kron"]


#: Rows of X a fused block carries through its factors (FastKron's small TM); with the slice
#: width it sets the on-chip footprint of one block.
FUSED_BLOCK_ROWS = 16


def fused_groups(arch: ArchConfig, layer: KronMatmul, dtype: str) -> list[int]:
    """Number of consecutive factor steps each fused launch runs, in execution order.

    FastKron multiplies f consecutive factors in one launch when a row slice of ∏ max(Pi, Qi)
    elements of those factors, for a block of rows, fits in one unit's share of the innermost
    level (an SM's shared memory); the slice is independent of the other factors.
    """
    inner = arch.memory[-1]
    units = getattr(arch.compute, "units", 1)
    budget = inner.capacity_for("output") / units / (FUSED_BLOCK_ROWS * DTYPE_BYTES[dtype])
    groups, slice_ = [], None
    for p, q in reversed(layer.factors):
        width = max(p, q)
        if slice_ is not None and slice_ * width <= budget:
            slice_ *= width
            groups[-1] += 1
        else:
            slice_ = width
            groups.append(1)
    return groups


def lower_kron(arch: ArchConfig, layer: KronMatmul, dtype: str, mapper: Mapper = FIXED) -> tuple[list[Mapping], dict]:
    """The factor GEMMs of ``layer``, last factor first (as FastKron and the shuffle algorithm run),
    and the layer's report detail.

    Unfused (shuffle): every step reads its input from and writes its output to the outermost
    level, and a transpose (one more read and write of the intermediate there) reorders it for the
    next factor. Fused: steps grouped by :func:`fused_groups` pass intermediates on chip; between
    groups the intermediate goes off chip once, already in order (no transpose).
    """
    steps = layer.steps()
    eb = DTYPE_BYTES[dtype]
    outer = arch.memory[0].name
    sizes = fused_groups(arch, layer, dtype) if layer.fused else [1] * len(steps)
    ends = {sum(sizes[: i + 1]) - 1 for i in range(len(sizes))}
    mappings = []
    for j, g in enumerate(steps):
        keep_in = j > 0 and (j - 1) not in ends
        keep_out = j not in ends
        stationary = tuple(op for op, keep in (("input", keep_in), ("output", keep_out)) if keep)
        mp = plan_gemm(arch, g.name, g.m, g.n, g.k, dtype, g.count, Exec(stationary=stationary), mapper)
        if not layer.fused and j < len(steps) - 1:
            moved = g.m * g.n * eb * g.count
            mp.reads[outer]["output"] += moved
            mp.writes[outer]["output"] += moved
        mappings.append(mp)
    flops = 2 * sum(g.macs for g in steps)
    return mappings, {"m": layer.m, "factors": [list(f) for f in layer.factors], "dtype": dtype,
                      "fused": layer.fused, "launches": len(sizes), "steps": len(steps), "flops": flops,
                      "tiles": sum(mp.tiles for mp in mappings)}
