"""CPU microbenchmarks of what the simulator's CPU model needs: GEMM FLOP/s per dtype, copy, indexed (scatter) and
grouped (N:M rank step) bandwidth per buffer size, the per-call overhead of a tiny ``matmul``, and the thread count
BLAS really uses.

Shared by ``bench/bench_cpu_peak.py`` and ``accelsim calibrate``. Each rate is the median of
``repeats`` ≥ 1 timed runs (after one untimed), with the fastest and slowest next to it, so a
noisy machine shows its spread instead of one lucky sample.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from kernels.backend import page_aligned

__all__ = ["COPY_APART", "COPY_NEAR", "COPY_PAIRS", "NEAR_COPY_BYTES", "PROBE_N", "PROBE_REPEATS", "PROBE_WARM_S",
           "Rate", "alternating_copy_rates", "bandwidth_gbs", "blas_core", "blas_threads", "call_overhead_s",
           "copy_pair", "copy_rates", "gemm_gflop", "gemm_gflops", "gemm_probe_gflops", "gemm_times", "grouped_bytes",
           "grouped_rates", "indexed_rates", "keep_freed_memory", "near_copy_gbs", "probe_gemms", "probe_times",
           "samples", "spread", "timed_copy_rates"]

#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def blas_threads() -> int | None:
    """Threads the loaded BLAS libraries run with now (threadpoolctl), the largest if several; None if none found."""
    from threadpoolctl import threadpool_info

    counts = [int(p["num_threads"]) for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(counts) if counts else None


def blas_core() -> str | None:
    """The CPU core the loaded OpenBLAS dispatches its kernels for (threadpoolctl's ``architecture``, e.g.
    ``SkylakeX``, ``Zen``); None for another BLAS or none. It decides which GEMMs OpenBLAS runs on one thread."""
    from threadpoolctl import threadpool_info

    cores = [p.get("architecture") for p in threadpool_info()
             if p.get("user_api") == "blas" and p.get("internal_api") == "openblas"]
    return next((c for c in cores if c), None)


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for the next allocation, as CuPy's memory pool does on a GPU; True if
    it took. By default a freed block above the mmap threshold, or heap above the trim threshold, goes
    back to the OS, and the next call's temporaries fault their pages in again: a full-size TASD-A
    decomposition (hundreds of MB of temporaries per call) then took 1.5–2× its time on some calls,
    time no kernel model prices. Every block then comes from the heap (no mmap: glibc caps the mmap
    threshold at 32 MiB, and larger temporaries would still be mapped afresh), and the heap is not
    trimmed.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, TypeError, AttributeError):  # not glibc (macOS, musl without mallopt): nothing to do
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def spread(values) -> dict:
    """``{"median", "min", "max", "repeats"}`` of samples: a noisy machine shows its spread, not one lucky sample."""
    values = list(values)
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "repeats": len(values)}


class Rate(dict):
    """``{"median", "min", "max", "repeats"}`` of a rate (per second), from per-run times."""

    @classmethod
    def of(cls, work: float, times: list[float]) -> Rate:
        return cls(spread(work / t for t in times))


def samples(fn, repeats: int, clock=time.perf_counter) -> list[float]:
    """Seconds of ``repeats`` timed calls of ``fn()`` after one untimed call."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def gemm_times(n: int, dtype: str, repeats: int) -> list[float]:
    """Seconds of ``repeats`` ``n × n`` by ``n × n`` ``matmul`` calls on BLAS's own threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty_like(a)
    return samples(lambda: np.matmul(a, b, out=out), repeats)


PROBE_N = 256
"""Size of the square fp32 GEMM that probes the box's state (:func:`gemm_probe_gflops`). At two threads the
2-vCPU EPYC ran it at 176-219 or at 231-263 GFLOP/s for tens of seconds to minutes at a time; 1024³ moved by 5-11 %."""


def gemm_gflop(n: int) -> float:
    """GFLOP of an ``n × n`` by ``n × n`` GEMM (2n³ FLOPs)."""
    return 2 * n**3 / 1e9


PROBE_WARM_S = 0.01
"""Seconds of probe GEMMs run untimed before the probe is timed. Right after other work (a calibration pass, 50 ms
of Python) the first few 256³ calls ran slow: on the 2-vCPU EPYC (Zen 3) at two threads the median of two calls
after one untimed read 72-75 GFLOP/s there and 122 after 50 ms of GEMMs, so ``calibrate``'s rounds (taken after a
pass) and ``run``'s (after a pass of the network) read the box differently. After 10 ms of probe GEMMs the median
of five read 123-128 in all three places, and 104-109 in a second set half an hour later (12 rounds each,
``bench/bench_probe_context.py``, BENCHMARKS.md "Twenty-second slice")."""
PROBE_REPEATS = 5
"""Timed probe calls after the warm-up (:data:`PROBE_WARM_S`); about 1.5 ms more."""


def probe_gemms(seconds: float) -> None:
    """``PROBE_N``³ fp32 matmuls on BLAS's threads, untimed, for ``seconds``: the probe's warm-up."""
    a = np.random.default_rng(0).standard_normal((PROBE_N, PROBE_N)).astype(np.float32)
    out = np.empty_like(a)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        np.matmul(a, a, out=out)


def probe_times(repeats: int = PROBE_REPEATS, warm_s: float = PROBE_WARM_S) -> list[float]:
    """Seconds of ``repeats`` ``PROBE_N``³ fp32 matmuls on BLAS's threads, timed after ``warm_s`` of them untimed
    (:func:`probe_gemms`): the box's state, read the same after whatever ran before (:data:`PROBE_WARM_S`)."""
    probe_gemms(warm_s)
    return gemm_times(PROBE_N, "float32", repeats)


def gemm_probe_gflops(repeats: int = PROBE_REPEATS) -> float:
    """Median GFLOP/s of the box-state probe (:func:`probe_times`), taken by ``accelsim calibrate`` before each
    pass and by ``accelsim run`` before each timed pass (about 12 ms)."""
    return Rate.of(gemm_gflop(PROBE_N), probe_times(repeats))["median"]


def gemm_gflops(n: int, dtype: str, repeats: int) -> Rate:
    """GFLOP/s of an ``n × n`` by ``n × n`` ``matmul`` (2n³ FLOPs), on BLAS's own threads."""
    return Rate.of(gemm_gflop(n), gemm_times(n, dtype, repeats))


COPY_PAIRS = 4
"""Source/destination pairs a cache-sized copy is timed on, all held at once. On the 2-vCPU EPYC the same 256 KiB
copy into its 1 MiB L2 ran at 154-246 GB/s depending on the pair's pages (their cache sets), so with one pair per
process 269 calibrations put the L2 peak at 109-251 GB/s; with four, 13 calibrations put it at 249-251."""

COPY_APART = 2048
"""Bytes the destination of a timed copy starts past its source, modulo 4 KiB (:func:`copy_pair`): half a page, clear
of both the slow ``rep movsb`` offsets (:data:`COPY_NEAR`) and 4 KiB aliasing of loads on stores. On the 2-vCPU EPYC
(Zen 3), whose heap put NumPy's pairs 16 bytes apart, the L2-sized copies ran at 3-6 GB/s in median with the fastest
of a pass at 54-81: the L2 peak of 20 calibrations spread 47 %, and the size the cache probe found for it moved
between 32 and 128 KiB per side."""

COPY_NEAR = 16
"""The offset :func:`near_copy_gbs` times against :data:`COPY_APART`: where consecutive heap blocks of a multiple of
4 KiB start (a 16-byte header between them), and in the 1-31 bytes that ran 4-15x slower on the Zen 3 EPYC."""

NEAR_COPY_BYTES = 64 * 1024
"""Bytes per side of :func:`near_copy_gbs`: within the sizes glibc copies with ``rep movsb`` (from 2 KiB), and in L2."""


def copy_pair(nbytes: int, offset: int = COPY_APART) -> tuple[np.ndarray, np.ndarray]:
    """A source of ones and a destination, ``nbytes`` each (float64), the source at the start of a page and the
    destination ``offset`` bytes into one (:func:`kernels.backend.page_aligned`)."""
    n = max(1, nbytes // 8)
    src = page_aligned(n, np.float64)
    src.fill(1.0)
    return src, page_aligned(n, np.float64, offset)


def timed_copy_rates(pairs: list, repeats_each: list[int], inner: int) -> list[float]:
    """GB/s of timed runs of ``inner`` copies (read + write) on each pair, ``repeats_each[i]`` runs on pair ``i``."""
    def copies(src, dst):
        for _ in range(inner):
            np.copyto(dst, src)

    return [2 * src.nbytes * inner / 1e9 / t for (src, dst), k in zip(pairs, repeats_each) if k
            for t in samples(lambda: copies(src, dst), k)]


def alternating_copy_rates(pairs: dict, repeats: int, inner: int) -> dict:
    """GB/s of ``repeats`` timed runs of ``inner`` copies on each pair of ``pairs`` (name -> pair), the pairs taking
    turns run by run so that the box's drift falls on all of them alike."""
    runs = {name: [] for name in pairs}
    for _ in range(repeats):
        for name, pair in pairs.items():
            runs[name] += timed_copy_rates([pair], [1], inner)
    return runs


def copy_rates(nbytes: int, repeats: int, pairs: int | None = None) -> list[float]:
    """GB/s of ``repeats`` timed copies of ``nbytes`` (read ``nbytes`` + write ``nbytes``; ``np.copyto`` runs on one
    thread), spread over ``pairs`` buffer pairs (:data:`COPY_PAIRS` where four pairs fit in 64 MiB, else one), each
    :data:`COPY_APART` bytes apart within the page (:func:`copy_pair`)."""
    if pairs is None:
        pairs = COPY_PAIRS if 2 * nbytes * COPY_PAIRS <= 64 * 1024**2 else 1
    bufs = [copy_pair(nbytes) for _ in range(pairs)]
    inner = max(1, (64 * 1024**2) // nbytes)  # small buffers: many copies per timing, above timer noise
    return timed_copy_rates(bufs, [repeats // pairs + (i < repeats % pairs) for i in range(pairs)], inner)


def bandwidth_gbs(nbytes: int, repeats: int) -> Rate:
    """GB/s of copying ``nbytes`` (:func:`copy_rates`): median, fastest and slowest of ``repeats`` runs."""
    return Rate(spread(copy_rates(nbytes, repeats)))


def near_copy_gbs(repeats: int, nbytes: int = NEAR_COPY_BYTES) -> dict[str, Rate]:
    """GB/s of ``nbytes`` copies with the destination :data:`COPY_NEAR` bytes past the source within the page
    (``"near"``) and :data:`COPY_APART` bytes past it (``"apart"``), ``repeats`` runs each, alternating: how much
    slower the copies NumPy makes between consecutive heap arrays can run than the ones the bandwidths are timed
    on (:func:`kernels.backend.page_aligned`)."""
    pairs = {name: copy_pair(nbytes, off) for name, off in (("near", COPY_NEAR), ("apart", COPY_APART))}
    inner = max(1, (4 * 1024**2) // nbytes)  # ~1 ms a run where near copies are slow
    return {name: Rate(spread(r)) for name, r in alternating_copy_rates(pairs, repeats, inner).items()}


def indexed_rates(nbytes: int, repeats: int, m: int = 4, n: int = 2) -> list[float]:
    """GB/s of ``repeats`` timed runs of N:M scatters into an ``nbytes`` float32 buffer, counting per element its
    int64 position, the value read and the value written (16 B): the ``flat[base + idx[:, j]] = values[:, j]`` of
    :func:`kernels.nm.format.scatter_groups`, one call per kept slot of ``n`` in groups of ``m``, positions
    precomputed. NumPy runs such an assignment element by element, far below the copy bandwidth."""
    rng = np.random.default_rng(0)
    groups = max(1, nbytes // 4 // m)
    dst = np.zeros(groups * m, np.float32)
    kept = np.sort(rng.permuted(np.tile(np.arange(m), (groups, 1)), axis=1)[:, :n], axis=1)
    pos = [np.arange(0, groups * m, m, dtype=np.intp) + kept[:, j] for j in range(n)]
    values = rng.standard_normal((groups, n)).astype(np.float32)
    inner = max(1, (16 * 1024**2) // nbytes)  # small buffers: many scatters per timing, above timer noise

    def run():
        for _ in range(inner):
            for j in range(n):
                dst[pos[j]] = values[:, j]

    return [groups * n * 16 * inner / 1e9 / t for t in samples(run, repeats)]


def grouped_bytes(elems: int, m: int = 4, item: int = 4) -> int:
    """Bytes one rank step of :func:`kernels.nm.format._top_positions` moves over ``elems`` scores of ``item`` bytes
    in groups of ``m``, five calls: ``sj > score`` and ``sj == score`` (each the scores and one per group read, a
    one-byte mask written), ``& (j < pos)``, ``|`` and ``rank +=`` (two one-byte operands read, one written)."""
    groups = elems // m
    return 2 * (elems + groups) * item + 5 * elems + 5 * elems


def grouped_rates(nbytes: int, repeats: int, m: int = 4) -> list[float]:
    """GB/s (:func:`grouped_bytes`) of ``repeats`` timed rank steps over an ``nbytes`` float32 score array in
    groups of ``m``: ``rank += (sj > score) | ((sj == score) & (j < pos))``, ``sj`` one member of each group
    broadcast against it. NumPy runs an inner loop per group of ``m``, so the step runs far below the copy
    bandwidth, and slows once the step's arrays (the scores, the int8 rank, four one-byte temporaries) leave
    the caches: on the 2-vCPU Xeon VM 2.7 ns per score up to 7.5 MiB of scores, 4.1-4.3 from 15 MiB."""
    rng = np.random.default_rng(0)
    groups = max(1, nbytes // 4 // m)
    score = np.abs(rng.standard_normal((groups, m)).astype(np.float32))
    rank = np.zeros(score.shape, np.int8)
    pos, sj = np.arange(m), score[:, 1:2]
    inner = max(1, (16 * 1024**2) // nbytes)  # small buffers: many steps per timing, above timer noise

    def run():
        for _ in range(inner):
            rank.__iadd__((sj > score) | ((sj == score) & (1 < pos)))

    return [grouped_bytes(groups * m, m) * inner / 1e9 / t for t in samples(run, repeats)]


def call_overhead_s(repeats: int, calls: int = 2000) -> dict:
    """Seconds per call of a 4 × 4 float32 ``matmul`` (dispatch, no work): median, min, max over ``repeats`` batches."""
    a = np.ones((4, 4), np.float32)
    out = np.empty_like(a)

    def run():
        for _ in range(calls):
            np.matmul(a, a, out=out)

    return spread(t / calls for t in samples(run, repeats))
