"""The caches a CPU calibration counts on: the sizes the OS reports, checked by timed copies.

In a VM the OS may report the host's cache, not the share a guest gets of it. On a 2-vCPU Intel Xeon VM
(2026-12-05) ``/sys`` gave an L3 of 480 MiB shared by both CPUs; one-thread copies ran at 28 GB/s up to
16 MiB per side and at 13 GB/s from 32 MiB (the DRAM's rate), so the copy at a quarter of the reported size
(120 MiB per side) timed DRAM, and every layer under 480 MiB was priced as if it sat in a cache that slow:
every fitted efficiency came out at its bound of 1, held-out MAPE 49 %. :func:`effective_caches` keeps a
reported size where a copy filling half of it runs clearly faster than one filling all of it, and otherwise
halves the copy until such a step shows: the level then holds what that copy held.

The last level, shared with other cores (and in a VM with other guests), holds what its copies held even where the
step shows on the first try. On the 2-vCPU EPYC VM (32 MiB L3 reported, 2026-12-07) it did in every calibration
(16 MiB per side 25-40 GB/s, 8 MiB 48-66); the 8 MiB copies spilled at times in three of five back-to-back
calibrations and the level was found at 8 MiB, in the other two the OS's 32 MiB stood. With it the L3 copies moved
from 2 to 8 MiB per side (70-71 → 45-48 GB/s) and the DRAM ones from 64 to 256 MiB per side (20 → 28-34 GB/s; a
copy of 256 MiB ran at 30-31 GB/s against 18-20 at 64 and 128 MiB, with glibc's default memcpy and with the
tunable), and the ``batched_gemm`` bandwidth fraction fitted against them halved (0.51-0.57 → 0.25-0.28). Found at
the 16 MiB its 8 MiB copies held, the level's DRAM copies stay at 64-128 MiB per side whichever way its edge goes.
"""

from __future__ import annotations

STEP = 1.3
"""Ratio of two copy rates, a size and twice it, that marks the edge of a cache level. On the Xeon VM the L2 and
L3 edges were steps of 1.6 (83 → 53 GB/s) and 2.1 (28 → 13); within a level, sizes a factor 2 apart ran within
1.1 of each other."""
PLATEAU = 1.1
"""Ratio above which a copy runs faster than one twice its size within what looks like one level: the larger was
partly spilled. On the Xeon VM the copy at 30 MiB per side ran at 21.5-26.4 GB/s in some calibrations (a step over
60 MiB's 13.5-14) and at 13.8-15.3 in others, 15 MiB at 28-29 in all: the VM's share of its host's L3 changes, and
the level found flipped between 60 and 30 MiB with it. The larger copy is taken at its slowest repeat: within one
process its repeats ran anywhere from 14.8 to 29.5 GB/s seconds apart, so its fastest said 60 MiB in two of five
back-to-back calibrations and 30 in three, and every rate measured at the level's size (scatters, rank steps) and
every fraction fitted against them moved with the verdict (12-34 % on one thread), while the kernels' own times did
not. A VM that holds more for minutes on end is still found holding it: in 3 of 10 later calibrations the 30 MiB
copies did not spill once in 15. Only the last level, the one a VM shares with its host's other guests, is judged
by its slowest copy: the L2 judged so was found at a quarter or half of its size in 3 of 10 calibrations one
morning (one slow copy of 512 KiB per side in five), in none of the 60 stored ones judged by the fastest."""
FLOOR = 32 * 1024
"""Smallest copy side tried below the innermost reported level (an L1 data cache holds it)."""


def effective_caches(caches: list[dict], rate, slowest=None) -> list[dict]:
    """``caches`` (the OS's, outermost first: ``level``, ``size`` per instance, ``total``) with the size each
    holds in practice: ``rate(side_bytes)`` times one-thread copies of that many bytes per side (GB/s, the fastest
    repeat); ``slowest(side_bytes)`` gives their slowest repeat, asked of the outermost level only (default, and
    for the inner levels: ``rate``'s value).

    A level's copy starts at a quarter of its size per side (both sides fill half of it) and is set beside
    one twice as large. While no :data:`STEP` shows and the copy is still larger than the next inner level,
    it halves. At a step on the first try a private level keeps its reported size; at a step further down, or
    on the first try at the shared last level, the level holds the step's faster copy (two sides), and its
    ``total`` scales with it; with no step the reported size stands (nothing measured contradicts it). Past a
    step, a copy half the faster one's size is timed too: where its fastest runs :data:`PLATEAU` faster than the
    faster copy's slowest, that copy was spilled at times and the level holds what the half held, so a level whose
    edge moves with its neighbours' load is found at the size it always holds. Each entry gains ``effective_size``,
    ``effective_total`` and ``probe`` (the ``[side, GB/s]`` pairs timed, largest first), and ``edge_slowest``
    (``[side, GB/s]``) where ``slowest`` was asked."""
    out = []
    for i, c in enumerate(caches):
        inner = caches[i + 1]["size"] if i + 1 < len(caches) else FLOOR
        shared = slowest is not None and i == 0
        side = c["size"] // 4
        seen = [[2 * side, rate(2 * side)]]
        size, edge = c["size"], {}
        while side > inner:
            seen.append([side, rate(side)])
            if seen[-1][1] >= STEP * seen[-2][1]:
                size = c["size"] if len(seen) == 2 and not shared else 2 * side
                if side // 2 > inner:
                    seen.append([side // 2, rate(side // 2)])
                    edge = {"edge_slowest": [side, slowest(side)]} if shared else {}
                    if seen[-1][1] >= PLATEAU * (edge["edge_slowest"][1] if edge else seen[-2][1]):
                        size = side
                break
            side //= 2
        out.append({**c, "effective_size": size, "effective_total": c["total"] * size // c["size"], "probe": seen,
                    **edge})
    return out


def shrunk(c: dict) -> bool:
    """Whether :func:`effective_caches` found the level holding less than the OS reports."""
    return c.get("effective_size", c["size"]) < c["size"]


def describe(c: dict) -> str:
    """An arch comment's account of :func:`effective_caches`' verdict on one level."""
    steps = ", ".join(f"{s / 2**20:.3g} MiB {r:.3g}" for s, r in c.get("probe", []))
    if "edge_slowest" in c:
        side, r = c["edge_slowest"]
        steps += f"; slowest at {side / 2**20:.3g} MiB {r:.3g}"
    if not shrunk(c):
        return f"copies per side (GB/s): {steps}"
    return (f"copies held by the cache up to {c['effective_size'] // 2 // 1024} KiB per side, not beyond (per side, "
            f"GB/s: {steps}): of the OS's {c['size'] // 1024} KiB, {c['effective_size'] // 1024} KiB is what copies "
            "here count on")
