"""Tile configurations of the packed CUDA-core N:M kernels, their resources, and the candidates per call.

A configuration is a plain dict (it goes into the trace record's ``params`` as is):
``mode`` (0 vector slab, 1 vector gather, 2 element slab, 3 element expanded to a dense tile on
chip; see ``nm_spmm_packed.cu``),
``bm``/``bn`` (block tile), ``tm`` (rows per thread; 8 columns each), ``stages`` (cp.async
ring depth), ``emax`` (entry slots per stage; the slab height for modes 0 and 2), plus, per
call, ``ks`` (dense K rows per stage) and ``split`` (split-K factor). Tile shapes are
template arguments, so :data:`TILES` is also the list the compile test instantiates.
"""

from __future__ import annotations

__all__ = [
    "IMPL_NAMES",
    "MAX_ENTRY_SLOTS",
    "SM_COUNT_H200",
    "TILES",
    "candidates",
    "impl_name",
    "EXPAND_DENSITY",
    "GATHER_DENSITY",
    "smem_bytes",
    "template_name",
    "threads",
]

# (mode, bm, bn, tm, stages, emax). Order = heuristic preference within a mode.
TILES = [
    (0, 128, 128, 8, 3, 32),
    (0, 64, 128, 8, 4, 32),
    (0, 128, 64, 8, 4, 32),
    (0, 64, 256, 8, 3, 32),
    (1, 32, 256, 8, 4, 16),
    (1, 32, 128, 8, 4, 32),
    (1, 64, 128, 8, 4, 16),
    (1, 32, 256, 8, 3, 32),
    (2, 64, 128, 8, 3, 32),
    (2, 32, 256, 8, 4, 32),
    (2, 64, 64, 8, 4, 32),
    (2, 128, 64, 8, 3, 32),
    (3, 128, 128, 8, 3, 32),
    (3, 64, 128, 8, 4, 32),
    (3, 128, 64, 8, 4, 32),
]
MAX_ENTRY_SLOTS = max(t[5] for t in TILES)
"""Entries one L-block may hold for any tile to take it (denser series are split by the caller)."""
IMPL_NAMES = {0: "nm_vector_cuda", 1: "nm_vector_gather_cuda", 2: "nm_element_cuda", 3: "nm_element_expand_cuda"}
"""Stable implementation name per mode, recorded as ``params['impl']`` (TASD: ``tasd_onepass_cuda``)."""
SM_COUNT_H200 = 132
GATHER_DENSITY = 0.25
"""At or below this density (sum of N/M) the vector gather variant is tried first."""
EXPAND_DENSITY = 0.4
"""At or above this density the element-wise expand variant is tried first (mode 2 is
bandwidth-bound near a quarter of the FMA peak: it needs density < ~0.3 to beat dense work)."""


def impl_name(mode: int, terms: int) -> str:
    return "tasd_onepass_cuda" if terms > 1 else IMPL_NAMES[mode]


def threads(bm: int, bn: int, tm: int) -> int:
    return (bm // (4 * tm)) * (bn // 64) * 32


def smem_bytes(mode: int, bm: int, bn: int, stages: int, emax: int) -> int:
    """Dynamic shared memory of one block: ``STAGES * NmTile::STAGE_BYTES`` in the .cu."""
    a = emax * bm
    b = ((bm // 32) * emax if mode == 1 else emax) * bn
    kb = (bm // 32) * emax * 4 if mode == 0 else (emax * bm if mode >= 2 else 0)
    dense = emax * bm * 4 if mode == 3 else 0
    return stages * ((a + b) * 4 + -(-kb // 16) * 16) + dense


def template_name(cfg: dict) -> str:
    return "nm_packed<{mode},{bm},{bn},{tm},{stages},{emax}>".format(**cfg)


def candidates(layout: str, lblock: int, e_per_block: int, density: float, rows: int, cols: int,
               smem_limit: int, sm_count: int = SM_COUNT_H200) -> list[dict]:
    """Launchable configurations for one packed A and B width, heuristic default first.

    A tile is kept when a stage holds at least one whole L-block (``ks`` a multiple of
    ``lblock``) within its ``emax`` entry slots (and, slab modes, ``emax`` slab rows) and its
    shared memory fits ``smem_limit``; empty when one L-block alone has more than 32 entries. Split-K variants
    (2, 4) are added when the grid would leave SMs idle.
    """
    if layout == "vector":
        modes = (1, 0) if density <= GATHER_DENSITY else (0, 1)
    else:
        modes = (3, 2) if density >= EXPAND_DENSITY else (2, 3)
    out = []
    for mode in modes:
        for tile in TILES:
            if tile[0] != mode:
                continue
            cfg = dict(zip(("mode", "bm", "bn", "tm", "stages", "emax"), tile))
            emax = cfg["emax"]
            per = emax // e_per_block  # whole L-blocks whose entries fit the slots
            if mode != 1:
                per = min(per, emax // lblock)  # ... and whose dense rows fit the slab
            ks = per * lblock
            if ks <= 0 or smem_bytes(mode, cfg["bm"], cfg["bn"], cfg["stages"], emax) > smem_limit:
                continue
            blocks = -(-rows // cfg["bm"]) * -(-cols // cfg["bn"])
            for split in (1, 2, 4):
                if split > 1 and blocks * split > 2 * sm_count:
                    break
                out.append({**cfg, "ks": ks, "split": split})
    return out
