"""Mapping: a GEMM on an architecture → tile groups (cycles, bytes per level) and loop order.

This module owns tile sizes, loop order and data reuse. It assumes a validated ArchConfig and
layer; sparsity is applied to the dense mapping by :mod:`accelsim.model.sparsity`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from accelsim.model.arch import DTYPE_BYTES, ArchConfig, SystolicCompute
from accelsim.model.staging import SystolicStaging

__all__ = [
    "PARTIAL_BYTES", "Exec", "Mapping", "TileBlock", "TileGroup", "grouped_raster", "map_gemm", "map_gemm_tile",
    "operand_traffic",
    "roofline_cycles", "systolic_fill_cycles", "systolic_fold_cycles", "systolic_layer_fill",
]

#: Which GEMM dimensions index each operand: input A[M,K], weight B[K,N], output C[M,N].
OPERAND_DIMS = {"input": ("m", "k"), "weight": ("k", "n"), "output": ("m", "n")}


@dataclass(frozen=True)
class Exec:
    """How the hardware runs one pass of a GEMM: the dense case is ``Exec()``.

    ``k_exec`` is the reduction length the array iterates over (``None``: the dense K; an N:M
    operand compressed along K runs ⌈K/M⌉·N); ``stored`` maps an operand to the fraction of its
    dense bytes held at ``compressed_levels`` (values plus metadata); ``effectual`` is the fraction
    of dense MACs that do useful work; ``stationary`` names operands a previous pass left on chip;
    ``actions`` adds per-pass counts (metadata decode …).
    """

    k_exec: int | None = None
    stored: dict[str, float] = field(default_factory=dict)
    compressed_levels: tuple[str, ...] = ()
    effectual: float = 1.0
    stationary: tuple[str, ...] = ()
    actions: dict[str, float] = field(default_factory=dict)


DENSE_EXEC = Exec()


@dataclass(frozen=True)
class TileGroup:
    """``count`` consecutive identical tiles: cycles of compute and MACs per tile.

    Bytes are not per group: the engine spreads each level's traffic over tiles in
    proportion to their MACs (a tile at the array edge moves less data).
    """

    count: int
    compute_cycles: float
    macs: float

    @property
    def tiles(self) -> int:
        """Tiles of work: a group without MACs (the array's one fill and drain) holds none."""
        return self.count if self.macs else 0

    @property
    def total_cycles(self) -> float:
        return self.count * self.compute_cycles

    @property
    def total_macs(self) -> float:
        return self.count * self.macs

    def scaled(self, count: int = 1, cycles=None, macs=None) -> TileGroup:
        """Count times ``count``; cycles and MACs mapped by the functions ``cycles`` and ``macs`` when given."""
        return TileGroup(self.count * count, cycles(self.compute_cycles) if cycles else self.compute_cycles,
                         macs(self.macs) if macs else self.macs)


@dataclass(frozen=True)
class TileBlock:
    """``groups`` in order, repeated ``times``: a periodic tile sequence kept O(1) in size.

    A systolic array with ragged row folds runs, per column fold, its full row folds then one
    edge fold; a layer with a million column folds is one block, not two million groups.
    """

    groups: tuple[TileGroup, ...]
    times: int

    @property
    def tiles(self) -> int:
        return self.times * sum(g.count for g in self.groups)

    @property
    def total_cycles(self) -> float:
        return self.times * sum(g.total_cycles for g in self.groups)

    @property
    def total_macs(self) -> float:
        return self.times * sum(g.total_macs for g in self.groups)

    def scaled(self, count: int = 1, cycles=None, macs=None) -> TileBlock:
        return TileBlock(tuple(g.scaled(count, cycles, macs) for g in self.groups), self.times)


@dataclass
class Mapping:
    """How one GEMM runs: tile groups in execution order plus per-level, per-operand traffic.

    ``reads[level][operand]`` are bytes read out of ``level`` towards compute;
    ``writes[level][operand]`` bytes written into it (fills from outside, results from inside).
    ``issued_macs`` are the MACs the hardware performs (and pays energy for): the dense count
    unless it skips work; ``effectual_macs`` those whose operands are both non-zero.
    ``staging``, set by the fixed systolic mapping, makes the engine time the layer as SCALE-Sim
    stages its data (:mod:`accelsim.model.staging`); None keeps the tile pipeline.
    """

    layer: str
    m: int
    n: int
    k: int
    dtype: str
    tile: dict[str, int]
    loop_order: tuple[str, ...]
    groups: list[TileGroup]
    mapping_efficiency: float
    macs: float
    effectual_macs: float
    reads: dict[str, dict[str, float]]
    writes: dict[str, dict[str, float]]
    issued_macs: float
    actions: dict[str, float] = field(default_factory=dict)
    nest: dict | None = None
    staging: SystolicStaging | None = None

    @property
    def compute_cycles(self) -> float:
        return sum(g.total_cycles for g in self.groups)

    @property
    def tiles(self) -> int:
        return sum(g.tiles for g in self.groups)

    def level_bytes(self, level: str) -> tuple[float, float]:
        return sum(self.reads[level].values()), sum(self.writes[level].values())


def systolic_fold_cycles(c: SystolicCompute, stream: int) -> int:
    """Cycles of one fold on the rows × cols array ``c`` streaming ``stream`` vectors, as SCALE-Sim counts them.

    WS/IS preload the stationary tile (``rows`` cycles), then stream ``stream`` vectors that enter
    skewed one row per cycle (``rows − 1``) and whose last partial sum crosses the array
    (``cols − 1``). OS preloads nothing: both operands stream with ``rows − 1`` and ``cols − 1`` of
    skew and the finished outputs leave over the same skew. Edge folds cost the same as full ones
    (the skew is set by the physical array); their idle PEs show in mapping efficiency. Folds do
    not overlap. See docs/scalesim_timing.md.

    With ``stationary_buffers = 2`` (double-buffered stationary registers) folds run back to back: one
    costs ``max(stream, rows)`` (the next preload or drain hides under the stream), and the fill and
    drain of a single-buffered fold, :func:`systolic_fill_cycles`, is paid once per layer.
    """
    if c.stationary_buffers == 2:
        return max(stream, c.rows)
    return systolic_fill_cycles(c) + stream


def systolic_fill_cycles(c: SystolicCompute) -> int:
    """A single-buffered fold's cycles beyond its stream: preload (WS/IS) and the skew in and out."""
    if c.dataflow == "os":
        return c.rows + c.cols - 2
    return 2 * c.rows + c.cols - 2


def systolic_layer_fill(c: SystolicCompute) -> list[TileGroup]:
    """The group a layer adds after its folds on an array ``c``: with double-buffered stationary
    registers, the one fill and drain (no MACs, no bytes); with single ones, nothing (each fold pays)."""
    if c.stationary_buffers == 2:
        return [TileGroup(1, float(systolic_fill_cycles(c)), 0.0)]
    return []


def operand_traffic(
    dims: tuple[str, ...], sizes: dict[str, int], loops: list[tuple[str, int]], capacity: float, elem_bytes: float
) -> float:
    """Bytes of one operand crossing into a buffer of ``capacity`` bytes, by loop-nest reuse analysis.

    ``loops`` are the tile loops outermost first; a dimension may be split over several (a grouped
    raster: groups of rows, the columns, the rows of a group). Walking inner to outer, a loop over a
    dimension that does not index the operand re-fetches it unless everything the operand touches
    inside that loop still fits in the buffer (then the data stays and is reused).
    """
    extent = {d: math.ceil(sizes[d] / math.prod(c for dd, c in loops if dd == d)) for d in dims}
    footprint = math.prod(extent.values()) * elem_bytes
    fits = footprint <= capacity
    refetch = 1
    for d, count in reversed(loops):
        if d in dims:
            extent[d] = min(sizes[d], extent[d] * count)
            footprint = math.prod(extent.values()) * elem_bytes
            fits = fits and footprint <= capacity
        elif not fits:
            refetch *= count
    return math.prod(sizes[d] for d in dims) * elem_bytes * refetch


def _systolic_plan(c: SystolicCompute, m: int, n: int, k: int):
    """Tile, fold loops (outer first), stream length and the two array-mapped dimensions per dataflow.

    WS keeps weights (K×N) in the array and streams the M input rows; OS keeps outputs (M×N) and
    streams K; IS keeps inputs (K×M) and streams the N filters — SCALE-Sim's Sr/Sc/T roles.
    """
    if c.dataflow == "ws":
        row_dim, col_dim, stream = ("k", k), ("n", n), m
    elif c.dataflow == "os":
        row_dim, col_dim, stream = ("m", m), ("n", n), k
    else:
        row_dim, col_dim, stream = ("k", k), ("m", m), n
    row_folds = math.ceil(row_dim[1] / c.rows)
    col_folds = math.ceil(col_dim[1] / c.cols)
    loops = [(col_dim[0], col_folds), (row_dim[0], row_folds)]
    tile = {"m": m, "n": n, "k": k}
    tile[row_dim[0]] = min(c.rows, row_dim[1])
    tile[col_dim[0]] = min(c.cols, col_dim[1])
    return tile, loops, stream, row_dim[1], col_dim[1]


def _systolic_groups(c: SystolicCompute, m, n, k):
    tile, loops, stream, srows, scols = _systolic_plan(c, m, n, k)
    return (tile, loops, *_systolic_folds(c, stream, srows, scols))


def _systolic_folds(c: SystolicCompute, stream: int, srows: int, scols: int):
    """Tile groups of the folds in execution order (column folds outer, row folds inner) and mapping efficiency.

    Each column fold runs its full row folds then the edge row fold; all column folds but the
    last are alike, so they are one :class:`TileBlock` whatever their number.
    """
    fold = systolic_fold_cycles(c, stream)
    rf, cf = math.ceil(srows / c.rows), math.ceil(scols / c.cols)
    r_edge, c_edge = srows - (rf - 1) * c.rows, scols - (cf - 1) * c.cols

    def column(cols_used: int) -> list[TileGroup]:
        full = [TileGroup(rf - 1, fold, float(c.rows * cols_used * stream))] if rf > 1 else []
        return _merge([*full, TileGroup(1, fold, float(r_edge * cols_used * stream))])

    groups: list = []
    if cf > 1:
        body = column(c.cols)
        groups = [body[0].scaled(cf - 1)] if len(body) == 1 else [TileBlock(tuple(body), cf - 1)]
    groups = _merge([*groups, *column(c_edge)])
    used = ((rf - 1) * c.rows + r_edge) * ((cf - 1) * c.cols + c_edge)
    eff = used / (rf * cf * c.rows * c.cols)
    return groups, eff


def _merge(groups: list) -> list:
    """Adjacent tile groups of equal cycles and MACs become one."""
    out: list = []
    for g in groups:
        prev = out[-1] if out else None
        if (isinstance(g, TileGroup) and isinstance(prev, TileGroup)
                and prev.compute_cycles == g.compute_cycles and prev.macs == g.macs):
            out[-1] = TileGroup(prev.count + g.count, g.compute_cycles, g.macs)
        else:
            out.append(g)
    return out


#: Bytes per partial-sum element when split-K reduces through memory (fp32 accumulators).
PARTIAL_BYTES = 4


def _reduction_level(arch: ArchConfig):
    """Where split-K partial sums meet: the level just outside the innermost (L2 on a GPU)."""
    return arch.memory[-2] if len(arch.memory) > 1 else arch.memory[0]


def _tensor_core_groups(arch: ArchConfig, m, n, k, dtype, count: int, tile: tuple[int, int, int] | None,
                        split: int | None):
    """CTAs of tile_m × tile_n run in waves over the SMs, each stepping K by tile_k.

    One step = one wave advancing one K-chunk; a step takes as long as one CTA's chunk
    (tile_m·tile_n·tile_k MACs at the SM's tensor-core rate, edge tiles padded as the hardware does; with the
    arch's ``k_multiple``, K is padded only to a multiple of it, each chunk taking its share).
    When there are fewer output tiles than SMs, K may be split over the idle SMs (split-K, as
    cuBLAS and CUTLASS do for such shapes): ``split`` CTAs per tile each take ⌈kt/split⌉ K-chunks
    and their fp32 partial sums are reduced through the second-innermost level (see ``map_gemm``).
    The split minimises estimated compute plus reduction time, ties going to the smaller split.
    ``count`` identical GEMMs (attention heads × sequences) run as one batched GEMM: their tiles
    share the waves, as a batched cuBLAS call does. ``tile`` overrides the config's CTA tile and
    ``split`` the heuristic's split (the mapper searches both).
    """
    c = arch.compute
    tm, tn, tk = tile or (c.tile_m, c.tile_n, c.tile_k)
    mt, nt, kt = math.ceil(m / tm), math.ceil(n / tn), math.ceil(k / tk)
    ctas = mt * nt * count
    rate = c.macs_per_cycle[dtype]
    pad = math.ceil(k / c.k_multiple) * c.k_multiple / (kt * tk) if c.k_multiple else 1.0
    step = tm * tn * tk * pad / rate
    red = _reduction_level(arch)

    def estimate(split: int) -> float:
        """Compute time plus the time to write and read back the fp32 partials (like a library heuristic)."""
        compute = math.ceil(ctas * split / c.units) * math.ceil(kt / split) * step
        return compute + (2 * split * m * n * count * PARTIAL_BYTES / red.bandwidth if split > 1 else 0.0)

    if split is None:
        split = min(range(1, max(1, min(c.units // ctas, kt)) + 1), key=lambda s: (estimate(s), s))
    k_steps = math.ceil(kt / split)
    work = ctas * split
    full_waves, last = divmod(work, c.units)
    # A step's MACs in proportion to the SMs busy in it; map_gemm scales them to the layer's MACs.
    groups = []
    if full_waves:
        groups.append(TileGroup(full_waves * k_steps, step, float(c.units)))
    if last:
        groups.append(TileGroup(k_steps, step, float(last)))
    waves = full_waves + (1 if last else 0)
    eff = (m * n * k * count) / (waves * c.units * tm * tn * k_steps * tk * pad)
    loops = [("m", mt), ("n", nt), ("k", kt)]
    return {"m": tm, "n": tn, "k": tk, "split_k": split}, loops, groups, eff


def roofline_cycles(arch: ArchConfig, mp: Mapping) -> float:
    """Lower bound on a mapping's cycles: its compute, or its busiest level's traffic over bandwidth."""
    traffic = (sum(mp.level_bytes(lvl.name)) / lvl.bandwidth for lvl in arch.memory)
    return max(mp.compute_cycles, *traffic)


def grouped_raster(loops: list, group: int) -> list:
    """Raster ``loops`` (outer, inner, k; ``[dimension, trips]`` each) with the outer dimension in groups of
    ``group`` tiles (CUTLASS's swizzle): the groups, the inner dimension, a group's tiles, k."""
    if group == 1:
        return loops
    (outer, trips), inner, *rest = loops
    return [[outer, math.ceil(trips / group)], inner, [outer, group], *rest]


def map_gemm(
    arch: ArchConfig, name: str, m: int, n: int, k: int, dtype: str, count: int, exe: Exec = DENSE_EXEC
) -> Mapping:
    """Mapping of ``count`` identical GEMMs onto ``arch``, executed as ``exe``: one after another on a
    systolic array, as one batched GEMM on tensor cores.

    Cycles come from the executed reduction length ``exe.k_exec`` (K for dense); traffic from
    loop-nest reuse over the dense problem, scaled for operands stored compressed. Operands in
    ``exe.stationary`` were left on chip by a previous pass (TASD series) and are not re-read
    from outside the innermost level. On tensor cores with ``tile_options`` every CTA tile is
    mapped and the one of fewest :func:`roofline_cycles` kept (ties to the earlier-listed tile).
    """
    c = arch.compute
    if isinstance(c, SystolicCompute) or not c.tile_options:
        return _map_gemm(arch, name, m, n, k, dtype, count, exe, None)
    tiles = [(c.tile_m, c.tile_n, c.tile_k), *c.tile_options]
    maps = [_map_gemm(arch, name, m, n, k, dtype, count, exe, t) for t in tiles]
    return min(maps, key=lambda mp: roofline_cycles(arch, mp))


def map_gemm_tile(arch: ArchConfig, name: str, m: int, n: int, k: int, dtype: str, count: int, exe: Exec,
                  tile: tuple[int, int, int], split: int, order: tuple[str, ...], group: int = 1) -> Mapping:
    """A tensor-core mapping with the CTA ``tile``, K ``split`` over SMs and output-tile ``order`` given
    (outer first; the mapper's candidates, costed like the configured one). ``group`` > 1 rasterises
    in groups (CUTLASS's swizzle): ``group`` tiles of the outer dimension, then the next, across the
    inner one, so a group's panels of both operands can stay in the level above."""
    return _map_gemm(arch, name, m, n, k, dtype, count, exe, tile, split, order, group)


def _map_gemm(arch: ArchConfig, name: str, m: int, n: int, k: int, dtype: str, count: int, exe: Exec,
              cta_tile: tuple[int, int, int] | None, split: int | None = None,
              order: tuple[str, ...] = ("m", "n", "k"), group: int = 1) -> Mapping:
    k_run = exe.k_exec or k
    staging = None
    if isinstance(arch.compute, SystolicCompute):
        # One array: the copies run one after another.
        c = arch.compute
        tile, loops, groups, eff = _systolic_groups(c, m, n, k_run)
        groups = [g.scaled(count) for g in groups] + systolic_layer_fill(c)
        order = tuple(d for d, _ in loops)
        if c.staging == "scalesim":
            staging = SystolicStaging(c.rows, c.cols, c.dataflow, m, n, k_run, count)
    else:
        tile, loops, groups, eff = _tensor_core_groups(arch, m, n, k_run, dtype, count, cta_tile, split)
        trips = dict(loops)
        loops = grouped_raster([(d, trips[d]) for d in order], group)
        if group > 1:
            tile["group"] = group
    dense_macs = float(m * n * k * count)
    run_macs = sum(g.total_macs for g in groups) or 1.0
    groups = [g.scaled(macs=lambda x: x * dense_macs / run_macs) for g in groups]
    eb = DTYPE_BYTES[dtype]
    sizes = {"m": m, "n": n, "k": k}
    levels = arch.memory
    reads = {lvl.name: dict.fromkeys(OPERAND_DIMS, 0.0) for lvl in levels}
    writes = {lvl.name: dict.fromkeys(OPERAND_DIMS, 0.0) for lvl in levels}
    for i, lvl in enumerate(levels):
        inner = levels[i + 1] if i + 1 < len(levels) else None
        for op, dims in OPERAND_DIMS.items():
            if op in exe.stationary and inner is not None:
                continue
            scale = exe.stored.get(op, 1.0) if lvl.name in exe.compressed_levels else 1.0
            cap = inner.capacity_for(op) / scale if inner is not None else 0.0
            moved = operand_traffic(dims, sizes, loops, cap, eb) * count
            if op == "output":
                size = m * n * eb * count
                writes[lvl.name][op] += moved
                reads[lvl.name][op] += moved - size
                if inner is not None:
                    reads[inner.name][op] += moved
                    writes[inner.name][op] += moved - size
            else:
                reads[lvl.name][op] += moved * scale
                if inner is not None:
                    inner_scale = exe.stored.get(op, 1.0) if inner.name in exe.compressed_levels else 1.0
                    writes[inner.name][op] += moved * inner_scale
    split = tile.get("split_k", 1)
    if split > 1:
        # split-K: every partial tile is written to and read back from the reduction level.
        red = _reduction_level(arch)
        partials = split * m * n * PARTIAL_BYTES * count
        writes[red.name]["output"] += partials
        reads[red.name]["output"] += partials
    return Mapping(
        layer=name, m=m, n=n, k=k, dtype=dtype, tile=tile, loop_order=order, groups=groups,
        mapping_efficiency=eff, macs=dense_macs, effectual_macs=dense_macs * exe.effectual,
        reads=reads, writes=writes, issued_macs=float(m * n * k_run * count), actions=dict(exe.actions),
        staging=staging,
    )
