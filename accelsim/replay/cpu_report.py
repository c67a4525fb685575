"""What the OS says about the CPU at hand (``/proc/cpuinfo``, ``/proc/meminfo``,
``/sys/devices/system/cpu/cpu0/cache``, the BLAS threads, ``GLIBC_TUNABLES``): the facts a CPU calibration's arch
starts from, before :mod:`accelsim.replay.cache_probe` checks the cache sizes by copies; and what its near copies
(:func:`kernels.trace.microbench.near_copy_gbs`) say of how glibc copies here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accelsim.errors import AccelsimError
from kernels.trace.microbench import COPY_APART, COPY_NEAR, NEAR_COPY_BYTES, blas_core, blas_threads

__all__ = ["NEAR_COPY_SLOWDOWN", "TUNABLE_FIX", "Cache", "l1_tile", "near_copy_lines", "near_copy_note",
           "near_copy_slowdown", "os_report", "read_caches", "read_l1d"]

_KIB = 1024
SYS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")


@dataclass(frozen=True)
class Cache:
    """One data cache level the OS reports: ``size`` per instance, ``total`` over all CPUs."""

    level: int
    size: int
    total: int
    shared_cpus: str


def _cpu_list_len(text: str) -> int:
    n = 0
    for part in text.strip().split(","):
        if "-" in part:
            a, b = part.split("-")
            n += int(b) - int(a) + 1
        elif part:
            n += 1
    return max(n, 1)


def _size(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": _KIB, "M": _KIB**2, "G": _KIB**3}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * mult


def _sysfs_caches(root: Path):
    """``(level, type, size, shared_cpu_list)`` of each cache ``root`` lists that reads cleanly."""
    for d in sorted(root.glob("index*")) if root.is_dir() else []:
        try:
            yield (int((d / "level").read_text()), (d / "type").read_text().strip(), _size((d / "size").read_text()),
                   (d / "shared_cpu_list").read_text().strip())
        except (OSError, ValueError):
            continue


def read_caches(root: Path = SYS_CACHE, cpus: int | None = None) -> list[Cache]:
    """Data and unified caches of level ≥ 2 (L1 holds the register tiles' operands: :func:`l1_tile`), outermost
    first."""
    cpus = cpus or os.cpu_count() or 1
    out = [Cache(level, size, size * max(1, cpus // _cpu_list_len(shared)), shared)
           for level, kind, size, shared in _sysfs_caches(root) if level >= 2 and kind in ("Data", "Unified")]
    return sorted(out, key=lambda c: -c.level)


def read_l1d(root: Path = SYS_CACHE) -> int | None:
    """Bytes of the level-1 data cache of one CPU, None where the OS does not say."""
    return next((size for level, kind, size, _ in _sysfs_caches(root) if level == 1 and kind in ("Data", "Unified")),
                None)


def l1_tile(l1d: int | None, itemsize: int = 4) -> int | None:
    """Side of the largest power-of-two cube tile whose A and B slices and C block fit in half the L1 data
    cache: the BLAS keeps its packed panels there and feeds its register tiles from them, so a tile of
    that side is what the next level out really serves. Offered to the mapper as a ``tile_options`` entry
    beside the register tile; on the 2-vCPU Intel Xeon VM, whose single-thread L2 copy (84 GB/s, 32 B per
    cycle) cannot feed a 16 × 4 register tile per MAC, pricing every register tile from L2 put half of a
    1024³ GEMM's time in stalls and every fitted efficiency at its bound."""
    if not l1d:
        return None
    side = 1
    while 3 * (2 * side) ** 2 * itemsize <= l1d // 2:
        side *= 2
    return side if side >= 8 else None


def _cpuinfo_mhz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def _mem_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * _KIB
    except (OSError, ValueError):
        pass
    return None


def os_report() -> dict:
    """What the OS says about this CPU: name, CPUs, clock, caches of level ≥ 2, memory, BLAS threads and core, and the
    ``GLIBC_TUNABLES`` the process runs under (how glibc copies: :func:`kernels.trace.microbench.near_copy_gbs`)."""
    from kernels.backend import device_info

    mhz = _cpuinfo_mhz()
    if mhz is None:
        raise AccelsimError("calibrate: /proc/cpuinfo gives no 'cpu MHz' on this machine; cannot derive cycles")
    return {"device_name": device_info(np)["device_name"], "cpus": os.cpu_count() or 1, "clock_mhz": mhz,
            "caches": [c.__dict__ for c in read_caches()], "l1d_bytes": read_l1d(), "memory_bytes": _mem_bytes(),
            "blas_threads": blas_threads() or 1, "blas_core": blas_core(),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES")}


NEAR_COPY_SLOWDOWN = 3.0
"""How many times slower than :data:`~kernels.trace.microbench.COPY_APART` copies the near ones
(:func:`~kernels.trace.microbench.near_copy_gbs`) may run before ``calibrate`` says so: beyond it, a NumPy copy's time
depends on where the heap put its arrays, which nothing the model is given says."""

TUNABLE_FIX = "glibc.cpu.x86_rep_movsb_threshold=4294967295"
"""The ``GLIBC_TUNABLES`` setting that keeps glibc's copies off ``rep movsb``: on the 2-vCPU EPYC (Zen 3) 64 KiB
copies 16 bytes past their source within the page ran at 3.3 GB/s without it and 75 with it
(``bench/bench_near_copies.py``)."""


def near_copy_slowdown(meas: dict) -> float | None:
    """Median GB/s of the apart copies over that of the near ones (:func:`~kernels.trace.microbench.near_copy_gbs`);
    None where they were not timed (a calibration made before they were)."""
    r = meas.get("near_copy_gbs")
    return r["apart"]["median"] / r["near"]["median"] if r else None


def near_copy_lines(meas: dict) -> list[str]:
    """The arch comment on near copies: both rates, and at which offset the bandwidths were timed."""
    if (x := near_copy_slowdown(meas)) is None:
        return []
    r = meas["near_copy_gbs"]
    near, apart = r["near"], r["apart"]
    return [f"# Copies of {NEAR_COPY_BYTES // _KIB} KiB with the destination {COPY_NEAR} B past the source within the "
            f"page (as consecutive heap blocks lie): {near['median']:.3g} GB/s (median of {near['repeats']}), "
            f"against {apart['median']:.3g} at {COPY_APART} B ({x:.3g}x); the bandwidths below are timed at "
            f"{COPY_APART} B."]


def near_copy_note(meas: dict, tunables: str | None) -> list[str]:
    """A warning where near copies ran :data:`NEAR_COPY_SLOWDOWN` times slower or more, naming the setting that
    avoids it (:data:`TUNABLE_FIX`) unless it is set."""
    x = near_copy_slowdown(meas)
    if x is None or x < NEAR_COPY_SLOWDOWN:
        return []
    near, apart = (meas["near_copy_gbs"][k]["median"] for k in ("near", "apart"))
    note = (f"copies: with the destination {COPY_NEAR} B past the source within the page, as NumPy's arrays from "
            f"consecutive heap blocks lie, {near:.3g} GB/s against {apart:.3g} ({x:.3g}x slower), so a run's copies "
            "take a time that depends on where its arrays landed")
    if TUNABLE_FIX in (tunables or ""):
        return [note + f", even with GLIBC_TUNABLES={tunables}"]
    return [note + ": glibc's rep movsb on this CPU (glibc bug 30994); run `calibrate` and `run` alike with "
            f"GLIBC_TUNABLES={TUNABLE_FIX}"]
