"""Launch plans of the FastKron-style CUDA kernel: factor groups, tiles, shared-memory layout, candidates.

Pure Python (no CuPy): the launcher (:mod:`kernels.kron.gpu`), the NumPy model of the kernel
(:mod:`kernels.kron.model`) and the tests all size shared memory and grids with these
functions, so the rules in ``kron_fastkron.cu`` have exactly one Python mirror.
How each Kron implementation runs is described in :mod:`kernels.kron.impls` (one registry, :mod:`kernels.impls`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "MAX_FACTORS",
    "META_BYTES",
    "THREADS",
    "VARIANTS",
    "Launch",
    "candidates",
    "kernel_name",
    "launch_for",
    "pad_log",
    "phys",
    "plan",
]

THREADS = 256  # KFK_THREADS
MAX_FACTORS = 8  # KFK_MAX_FACTORS
META_BYTES = 64  # KFK_META_BYTES
MAX_DIM = 0xFFFF  # P and Q travel packed as P | Q << 16
VARIANTS = {
    "float32": ((4, 8), (4, 4), (4, 2), (8, 1)),
    "float64": ((4, 4), (2, 4), (4, 2), (4, 1)),
}
"""Register tiles (RK slices × RQ factor columns per thread) compiled for each dtype."""


def kernel_name(dtype: str, rk: int, rq: int) -> str:
    """The ``extern "C"`` entry of ``kron_fastkron.cu`` for this dtype and register tile."""
    return f"kron_fk_{'f32' if dtype == 'float32' else 'f64'}_{rk}x{rq}"


def pad_log(n: int, itemsize: int) -> int:
    """kfk_pad_log: one spare element every max(n, 128 B / itemsize) when n is a power of two >= 2."""
    if n < 2 or n & (n - 1):
        return 30
    return max(n, 128 // itemsize).bit_length() - 1


def phys(i, lg):
    """kfk_phys: the shared-memory word of logical element ``i`` (int or NumPy array)."""
    return i + (i >> lg)


def _end(n: int, lg: int) -> int:
    """Words a buffer needs to hold logical elements 0 … n-1."""
    return phys(n - 1, lg) + 1 if n > 0 else 0


@dataclass(frozen=True)
class Launch:
    """One kernel launch (or, with ``impl == "shuffle"``, one cuBLAS shuffle step).

    ``shapes`` are the group's factors in processing order; ``first`` is the position of the
    first of them in processing order (0 = the last Kronecker factor).
    """

    impl: str
    shapes: tuple[tuple[int, int], ...]
    first: int
    m: int
    k_in: int
    k_out: int
    rk: int = 1
    rq: int = 1
    nj: int = 1
    tm: int = 1
    buf_elems: int = 0
    f_elems: int = 0
    smem_bytes: int = 0
    grid: tuple[int, int] = (1, 1)

    @property
    def j_count(self) -> int:
        return self.k_in // math.prod(p for p, _ in self.shapes)


def _round_up(a: int, b: int) -> int:
    return -(-a // b) * b


def _min_items(shapes, rk, rq, rows_chunks) -> int:
    """Fewest work items (RK slices × RQ columns) of any step of the group: threads with work."""
    length, least = math.prod(p for p, _ in shapes), None
    for p, q in shapes:
        items = -(-rows_chunks * (length // p) // rk) * -(-q // rq)
        least = items if least is None else min(least, items)
        length = length // p * q
    return least


def launch_for(shapes, first, m, k_in, rk, rq, nj, tm, itemsize, sm_count=132, smem_limit=227 * 1024, grow=True):
    """The launch of one fused group, or None when its tile does not fit ``smem_limit`` bytes.

    ``nj`` is capped at the next power of two of J (the group's chunk count). With ``grow``,
    ``tm`` doubles (up to 32 rows, while shared memory allows) until every step has a work
    item for each thread: a single 64×64 factor over 16 chunks has only 32 per row.
    """
    shapes = tuple((int(p), int(q)) for p, q in shapes)
    if len(shapes) > MAX_FACTORS or any(p > MAX_DIM or q > MAX_DIM for p, q in shapes):
        return None
    s = math.prod(p for p, _ in shapes)
    t = math.prod(q for _, q in shapes)
    j = k_in // s
    nj = min(nj, 1 << max(j - 1, 0).bit_length())
    rows_chunks = tm * nj
    need = _end(rows_chunks * s, pad_log(shapes[0][0], itemsize))
    length = s
    for g, (p, q) in enumerate(shapes):
        need = max(need, _end(rows_chunks * length + rk * p, pad_log(p, itemsize)))
        length = length // p * q
        lg_out = pad_log(shapes[g + 1][0], itemsize) if g + 1 < len(shapes) else pad_log(t, itemsize)
        need = max(need, _end(rows_chunks * length, lg_out))
    buf = _round_up(need, 4)
    f_elems = sum(_round_up(p * _round_up(q, rq), 4) for p, q in shapes)
    smem = META_BYTES + (f_elems + 2 * buf) * itemsize
    if smem > smem_limit or rows_chunks * max(s, t) >= 2**30:
        return None
    gx = -(-j // nj)
    if grow and tm < min(32, m) and _min_items(shapes, rk, rq, rows_chunks) < THREADS:
        wider = launch_for(shapes, first, m, k_in, rk, rq, nj, 2 * tm, itemsize, sm_count, smem_limit)
        if wider is not None:
            return wider
    row_tiles = -(-m // tm)
    gy = max(1, min(row_tiles, 65535, -(-8 * sm_count // gx)))
    return Launch("fastkron", shapes, first, m, k_in, j * t, rk, rq, nj, tm, buf, f_elems, smem, (gx, gy))


def _halvings(n: int, floor: int) -> list[int]:
    out = [n]
    while out[-1] > floor:
        out.append(max(out[-1] // 2, floor))
    return out


def plan(m: int, shapes, dtype: str, config: dict, sm_count: int = 132, smem_limit: int = 227 * 1024) -> list[Launch]:
    """Split the factors (processing order: last first) into launches under ``config``.

    ``config`` holds ``variant`` ("RKxRQ"), ``depth`` (most factors fused per launch), ``nj``
    and ``tm``. Groups grow greedily while they fit (narrowing ``nj`` if need be); a factor that
    does not fit alone even with one chunk of one row becomes a cuBLAS shuffle step.
    """
    itemsize = 4 if dtype == "float32" else 8
    rk, rq = (int(v) for v in config["variant"].split("x"))
    depth = min(int(config["depth"]), MAX_FACTORS)
    order = [tuple(s) for s in reversed(list(shapes))]
    k = math.prod(p for p, _ in order)
    out, i = [], 0
    while i < len(order):
        best = None
        for n in range(1, min(depth, len(order) - i) + 1):
            grp = order[i : i + n]
            # Narrower chunk tiles let more factors fuse; a fused group keeps runs of at least
            # one 32-byte sector per store, a lone factor may go down to one chunk.
            floor = 1 if n == 1 else 32 // itemsize
            tiles = [(nj, tm) for nj in _halvings(config["nj"], floor) for tm in dict.fromkeys((config["tm"], 1))]
            la = next(
                (la for nj, tm in tiles
                 if (la := launch_for(grp, i, m, k, rk, rq, nj, tm, itemsize, sm_count, smem_limit)) is not None),
                None,
            )
            if la is None:
                break
            best = la
        if best is None:
            p, q = order[i]
            best = Launch("shuffle", (order[i],), i, m, k, k // p * q)
        out.append(best)
        i += len(best.shapes)
        k = best.k_out
    return out


def candidates(m: int, shapes, dtype: str, sm_count: int = 132, smem_limit: int = 227 * 1024) -> list[dict]:
    """Tile and fusion configurations worth timing, the heuristic favourite first; distinct plans only.

    The two widest register tiles whose RQ does not exceed the largest Q (wider ones would
    mostly multiply zero padding); fusion depths N, 3, 2, 1; three chunk/row tilings.
    """
    max_q = max(q for _, q in shapes)
    fitting = [f"{rk}x{rq}" for rk, rq in VARIANTS[dtype] if rq <= max_q]
    variants = fitting[:2] or [f"{rk}x{rq}" for rk, rq in VARIANTS[dtype] if rq == 1]
    depths = sorted({len(shapes), 3, 2, 1} & set(range(1, len(shapes) + 1)), reverse=True)
    out, seen = [], set()
    for variant in variants:
        for depth in depths:
            for nj, tm in ((16, 1), (32, 2), (8, 4)):
                cfg = {"impl": "kron_fastkron_cuda", "variant": variant, "depth": depth, "nj": nj, "tm": tm}
                key = tuple(plan(m, shapes, dtype, cfg, sm_count, smem_limit))
                if key not in seen:
                    seen.add(key)
                    out.append(cfg)
    return out
