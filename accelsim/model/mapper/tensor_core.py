"""The tensor-core search: the CTA tile (``m × n × k``, staged twice in the per-SM share of the
innermost level), the split of K over idle SMs, the raster order of the output tiles and its grouping
(CUTLASS's swizzle: groups of rows across the columns, so both operands' panels can stay in L2), each
candidate mapped and costed as ``map_gemm`` maps a configured tile."""

from __future__ import annotations

import itertools
import math

from accelsim.model.arch import DTYPE_BYTES, ArchConfig
from accelsim.model.mapper.common import cost, rank
from accelsim.model.mapping import Exec, Mapping, grouped_raster, map_gemm_tile

_CTA_SIDES = (64, 128, 256)
_CTA_K = (32, 64, 128)
_GROUPS = (1, 2, 4, 8, 16)


def search(arch: ArchConfig, m, n, k, dtype, count, exe: Exec, objective: str) -> Mapping:
    c = arch.compute
    smem = arch.memory[-1]
    per_unit = smem.capacity_bytes / c.units if smem.capacity_bytes else math.inf
    eb = DTYPE_BYTES[dtype]
    tiles = {(c.tile_m, c.tile_n, c.tile_k), *map(tuple, c.tile_options)}
    for tm, tn, tk in itertools.product(_CTA_SIDES, _CTA_SIDES, _CTA_K):
        stage = (tm * tk * exe.stored.get("input", 1.0) + tk * tn * exe.stored.get("weight", 1.0)) * eb
        if 2 * stage <= per_unit:
            tiles.add((tm, tn, tk))
    best = None
    for tile in sorted(tiles):
        kt = math.ceil((exe.k_exec or k) / tile[2])
        ctas = math.ceil(m / tile[0]) * math.ceil(n / tile[1]) * count
        # The library heuristic's split (None) and the powers of two that keep every CTA on an SM.
        splits = [None, 1, *(s for s in (2, 4, 8, 16) if s <= kt and ctas * s <= c.units)]
        trips = {"m": math.ceil(m / tile[0]), "n": math.ceil(n / tile[1])}
        for split, order in itertools.product(splits, (("m", "n", "k"), ("n", "m", "k"))):
            for group in (g for g in _GROUPS if g == 1 or g < trips[order[0]]):
                mp = map_gemm_tile(arch, "", m, n, k, dtype, count, exe, tile, split, order, group)
                key = rank(objective, *cost(arch, mp))
                if best is None or key < best[0]:
                    best = (key, mp)
    mp = best[1]
    trips = grouped_raster([[d, math.ceil({"m": m, "n": n, "k": exe.k_exec or k}[d] / mp.tile[d])]
                            for d in mp.loop_order], mp.tile.get("group", 1))
    mp.nest = {"problem": {"kind": "gemm", "dims": {"m": m, "n": n, "k": k, "count": count}}, "nest": [
        {"level": "grid", "loops": trips, "split_k": mp.tile.get("split_k", 1)},
        {"level": "cta", "tile": {d: mp.tile[d] for d in ("m", "n", "k")}},
    ]}
    return mp
