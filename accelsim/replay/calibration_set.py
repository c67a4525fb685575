"""The spanning set of kernel runs ``accelsim calibrate`` records, and how it times them.

Each case list says which replay family it fits and why its shapes were chosen; :func:`calibration_cases`
interleaves them by family and :func:`record` times them pass after pass until the budget ends, so a cut keeps every
family and each configuration meets the box in several states (the fit keeps the passes of one,
:func:`~accelsim.replay.box_state.steady_passes`).
"""

from __future__ import annotations

import math
import time

import numpy as np

__all__ = [
    "BATCH_CASES",
    "COLD_CASES",
    "MAX_CASE_REPEATS",
    "MIN_TIMED_S",
    "PASSES",
    "REPEATS",
    "RUNTIME_CASES",
    "SUITE",
    "batch_cases",
    "calibration_cases",
    "case_repeats",
    "cold_case",
    "cold_copies",
    "record",
    "runtime_case",
]

SUITE = "calibrate"
REPEATS = 5
"""Timed calls per trace case and pass, at least (the median is kept)."""
MIN_TIMED_S = 0.01
"""Seconds a trace case takes per pass, at least: a case that took less over :data:`REPEATS` timed calls is timed
more often (:func:`case_repeats`), from its seconds per timed call in the pass before (its preparation, and a cold
case's operand copies, included). On the 2-vCPU Xeon VM a pass's median of 5 calls of MiniLM's 768 attention products
at 8 tokens (54 µs a call) could take a call of twice that; with 35-130 calls their passes spread 6-12 % instead of
18-30 % at two threads (20 % either way at one)."""
MAX_CASE_REPEATS = 400
"""Timed calls per trace case and pass, at most (a 32³ GEMM takes 1-2 µs)."""
PASSES = 18
"""Passes over the trace cases at most, while the budget lasts (40-50 s on the 2-vCPU EPYC). With 5, five
back-to-back two-thread calibrations fitted a ``batched_gemm`` bandwidth fraction of 0.59-0.69 (17 %); with 9,
alternating with them, 0.60-0.64 (7 %). Ten calibrations of 9 refitted in consecutive pairs, as five of 18, kept
every parameter but ``threaded_call_s`` within 5.6 % (one thread) and 3.5 % (two; 10.3 % with 9). Of 16 made with
18 at one thread, the 13 made on a steady box kept every one within 10 % in 75 of their 78 pairs (BENCHMARKS.md
"Ninth slice")."""
_KIB = 1024


def calibration_cases(xp, seed: int = 0, cold_side: int | None = None, last_level: int | None = None,
                      largest_batch: int | None = None) -> list:
    """The spanning set, interleaved by family so a budget cut keeps every family: dense GEMM from 32³ to
    1024³ (float32; float64 at four sizes), stacked batches of small GEMMs (:data:`BATCH_CASES`), N:M SpMM and
    TASD at the shapes of a 384-wide transformer and of a 768-wide one at 128 tokens (each NumPy path, gather
    and ``decompress_blas``, and vector-layout TASD with six or more configurations, so each family's fit has
    three: a family with fewer fell back to the global fit, whose bandwidth fraction, fitted across every
    family, ranged 0.69-1 over five calibrations), and layers compressing their activation at run time
    (:data:`RUNTIME_CASES`). Four ``decompress_blas`` layers are 768 wide (one at 32 tokens), where its passes
    are a third to a half of the time: with its only such layer at 128 tokens and the rest near a tenth, its
    fitted fraction ranged 0.59-0.95 over five two-thread calibrations, and BERT's projected 2:4 layers 18 %.
    With ``cold_side`` (NumPy), the GEMMs of :data:`COLD_CASES` are timed cold too (:func:`cold_case`); with
    ``last_level``, the batches beyond the cache grow with it, each to ``largest_batch`` bytes at most
    (:func:`batch_cases`)."""
    from kernels.suites.gemm import dense_case
    from kernels.suites.nm_spmm import nm_case
    from kernels.suites.tasd import tasd_case

    f32 = [dense_case(SUITE, m, n, k, "float32", xp, seed) for m, n, k in (
        (32, 32, 32), (512, 384, 384), (64, 64, 64), (512, 1536, 384), (128, 128, 128), (512, 384, 1536),
        (256, 256, 256), (8, 384, 384), (1024, 1024, 1024), (128, 384, 384), (2048, 512, 512), (64, 384, 1536))]
    # early in the order: a short budget still times them
    for i, (c, m, n, k) in enumerate(batch_cases(last_level, largest_batch)):
        f32.insert(3 * i + 1, dense_case(SUITE, m, n, k, "float32", xp, seed, batch=c))
    f64 = [dense_case(SUITE, m, n, k, "float64", xp, seed) for m, n, k in (
        (64, 64, 64), (512, 512, 512), (256, 256, 256), (1024, 1024, 1024))]
    nm = [nm_case(SUITE, m, n, k, "float32", p, xp, seed, lay) for m, n, k, p, lay in (
        (384, 512, 384, "2:4", "element"), (1536, 512, 384, "1:8", "vector"), (384, 512, 1536, "2:8", "vector"),
        (384, 512, 384, "4:8", "element"), (1536, 512, 384, "2:4", "element"), (384, 512, 384, "1:8", "vector"),
        (768, 128, 768, "2:4", "element"), (3072, 128, 768, "1:8", "vector"), (768, 128, 3072, "1:8", "vector"),
        (768, 128, 768, "1:8", "vector"), (3072, 128, 768, "2:4", "element"),
        (768, 128, 3072, "4:8", "element"), (768, 32, 768, "2:4", "element"))]
    tasd = [tasd_case(SUITE, m, n, k, "float32", s, xp, seed, lay) for m, n, k, s, lay in (
        (384, 512, 384, "2:4+1:4", "element"), (1536, 512, 384, "2:8+1:8", "vector"),
        (384, 512, 1536, "4:8+2:8", "element"), (384, 512, 384, "2:8+1:8", "vector"),
        (768, 128, 768, "2:8+1:8", "vector"), (3072, 128, 768, "2:8+1:8", "vector"),
        (768, 128, 3072, "2:8+1:8", "vector"), (384, 512, 1536, "2:8+1:8", "vector"))]
    runtime = [runtime_case(m, n, k, kernel, spec, seed) for m, n, k, kernel, spec in RUNTIME_CASES]
    cold = [cold_case(m, n, k, cold_side, seed) for m, n, k in COLD_CASES] if cold_side else []
    out, lists = [], [f32, nm, runtime, f64, tasd, cold]
    while any(lists):
        for lst in lists:
            if lst:
                out.append(lst.pop(0))
    return out


BATCH_CASES = ((4096, 2, 2, 2), (64, 128, 128, 64), (512, 128, 128, 64), (1024, 64, 64, 64), (256, 256, 256, 32),
               (768, 96, 96, 48), (384, 128, 64, 128), (2048, 32, 64, 32), (768, 8, 8, 32), (768, 8, 32, 8))
"""``(batch, m, n, k)`` of the stacked fp32 GEMMs (attention's per-head products): four batches in cache (family
``gemm``), six beyond a 32 MB last level (family :data:`~accelsim.replay.project.BATCHED`, three on each side of
the held-out split; a larger last level grows them, :func:`batch_cases`), whose DRAM fetch the replay adds to their
compute. The two of 768 tiny products are MiniLM's
attention at 8 tokens, where NumPy's BLAS call per matrix (one launch each) outweighs the work: on the 2-vCPU
Xeon VM 0.07-0.15 µs a product, two to three times the model's compute. Those two alone left the launch overhead
a small remainder of their time (the 8x32x8 products' 65 ns less a modelled 58), so a 5 % change of their time
moved it 15-30 % between calibrations; the 4096 2x2x2 products (24-25 ns each, a third of it the model's padded
register tile) time the BLAS call itself and fix it."""

RUNTIME_CASES = (
    (512, 1536, 384, "tasd", "2:4+1:4"), (256, 384, 384, "nm", "2:4"), (256, 384, 1536, "tasd", "2:8+1:8"),
    (128, 1536, 384, "tasd", "2:4+1:4"), (512, 384, 384, "tasd", "4:8+2:8"), (1024, 384, 384, "tasd", "2:4+1:4"),
    (512, 1536, 384, "nm", "1:4"), (256, 384, 1536, "tasd", "2:4"))
"""``(tokens, out, in, kernel, pattern or series)`` of the layers that compress their activation at run time, as
``accelsim run`` times an ``operand: input`` plan layer; 384 wide as MiniLM, 128 to 2048 tokens."""


BATCH_LAST_LEVEL = 32 * _KIB**2
"""The last cache level :data:`BATCH_CASES`' counts were chosen for (the 2-vCPU EPYC's L3)."""


def batch_cases(last_level: int | None = None, largest: int | None = None) -> list[tuple[int, int, int, int]]:
    """:data:`BATCH_CASES`, each batch beyond :data:`BATCH_LAST_LEVEL` (fp32) grown by twice ``last_level`` over
    it where that is larger, so the same six outgrow twice the cache found. The level is found at the size its
    copies always held; the copy filling twice that is the one that spilled at times
    (:data:`~accelsim.replay.cache_probe.PLATEAU`), so a batch between the two is partly held, more or less as the
    VM's share of its host's cache goes. On the 2-vCPU Xeon VM, whose L3 was found holding 30 or 60 MiB, batches
    grown by the level itself (42-84 MB at 30 MiB, 79-158 MB at 60) fitted the ``batched_gemm`` bandwidth fraction
    at its bound of 1 in the six calibrations found at 30 and at 0.81-0.91 in the four at 60: each within 10 % of
    its own state's, 15-19 % across. Ungrown, only two outgrew 60 MiB and the group fell back to the global fit,
    which priced MiniLM's full-size attention products (75 MB a batch). On the 2-vCPU EPYC (16 MiB found of 32)
    nothing grows. No grown batch spans more than ``largest`` bytes (``calibrate`` gives the DRAM copy's side,
    which an eighth of memory bounds), so a VM reporting its host's cache as its own is not asked for gigabytes.

    Examples
    --------
    >>> batch_cases(60 * 2**20)[2], batch_cases(16 * 2**20)[2], batch_cases(30 * 2**20)[2], batch_cases()[1]
    ((1920, 128, 128, 64), (512, 128, 128, 64), (960, 128, 128, 64), (64, 128, 128, 64))
    >>> batch_cases(480 * 2**20, largest=2**30)[2]
    (8192, 128, 128, 64)
    """
    grow = max(1.0, 2 * (last_level or 0) / BATCH_LAST_LEVEL)
    out = []
    for c, m, n, k in BATCH_CASES:
        each = 4 * (m * k + k * n + m * n)
        if each * c > BATCH_LAST_LEVEL:
            c = max(c, min(math.ceil(c * grow), (largest or math.inf) // each))
        out.append((c, m, n, k))
    return out


COLD_CASES = ((128, 768, 768), (128, 3072, 768), (128, 768, 3072), (512, 384, 384), (64, 1536, 384),
              (256, 384, 1536))
"""``(m, n, k)`` of the fp32 GEMMs timed cold (family :data:`~accelsim.replay.project.COLD`): BERT's and
MiniLM's projections and FFNs, whose inputs (0.8-9.8 MB) a run's pass evicts between two calls of a layer."""


def cold_case(m: int, n: int, k: int, side: int, seed: int = 0):
    """A dense fp32 GEMM ``a @ b`` timed as a layer of ``accelsim run`` finds its operands once the rest of its
    pass has gone through: each call multiplies the next of :func:`cold_copies` copies of ``a`` and ``b`` (the
    oldest first), together at least ``2 × side`` bytes, so each copy was last touched that many bytes ago, as a run
    touches a layer's operands once a pass. ``params.cold_bytes`` records the bytes the copies span.

    A stream through the caches before each call (a copy of two ``side``-byte buffers, the design before) left them
    warmer than a run does: the last-level cache keeps lines that every call re-reads against lines touched once.
    On the 2-vCPU Xeon VM (the L3 found holding 60 MiB) a 128 × 3072 × 768 GEMM took 0.09 ms longer than warm after a
    copy of 2 × 120 MiB, 0.35-0.39 after the same through a ufunc, and 1.07-1.09 ms over copies spanning 240 MiB
    (``bench/bench_cold_fetch.py --stream``), as BERT's FFN1 layers took in a run (5.7-5.9 ms against 4.8 warm); the
    fraction the six gave moved 1.7 % between two processes, where after the copy it had moved 17-68 %."""
    from itertools import cycle

    from kernels.suites import Case, Prepared
    from kernels.suites.gemm import dense_case

    warm = dense_case(SUITE, m, n, k, "float32", np, seed)

    def prepare():
        p = warm.prepare()
        a, b = p.args
        copies = [(a.copy(), b.copy()) for _ in range(cold_copies(a.nbytes + b.nbytes, side))]
        out = np.empty((m, n), np.float32)
        turn = cycle(copies)

        def call():
            x, y = next(turn)
            return np.matmul(x, y, out=out)

        params = {**p.fields["params"], "cold_bytes": len(copies) * (a.nbytes + b.nbytes)}
        return Prepared(call, (), {**p.fields, "params": params})

    return Case(SUITE, ("cold", *warm.key), f"cold {warm.label}", prepare)


MIN_COLD_COPIES = 8
"""Fewest operand copies a cold GEMM turns over (:func:`cold_copies`), so the calls a pass times (its warm-up and
:data:`REPEATS`, or a few more) each find a copy several others were written after."""


def cold_copies(operand_bytes: int, side: int) -> int:
    """Copies of a cold GEMM's operands (``operand_bytes`` each) that span ``2 × side`` bytes, at least
    :data:`MIN_COLD_COPIES`.

    Examples
    --------
    >>> cold_copies(10 * 2**20, 60 * 2**20), cold_copies(2**20, 60 * 2**20), cold_copies(2**20, 2**20)
    (12, 120, 8)
    """
    return max(MIN_COLD_COPIES, -(-2 * side // operand_bytes))


def runtime_case(m: int, n: int, k: int, kernel: str, spec: str, seed: int = 0, dtype: str = "float32"):
    """A layer ``y = x @ w.T`` (x ``m × k``, w ``n × k``, seeded normal) whose plan compresses x inside the
    timed call: the very step :func:`accelsim.codesign.runplan.layer_step` builds for ``accelsim run``."""
    from types import SimpleNamespace

    from accelsim.codesign.operands import Operands
    from accelsim.codesign.plan import LayerPlan
    from accelsim.codesign.runplan import layer_step
    from kernels.suites import Case, Prepared

    name = f"runtime {kernel} {spec} {m}x{n}x{k}"
    key = ("runtime_compress", m, n, k, dtype, kernel, spec)
    lp = LayerPlan(name, kernel=kernel, operand="input", **({"series": spec} if kernel == "tasd" else {"pattern": spec}))

    def prepare():
        rng = np.random.default_rng([seed, m, n, k])
        ops = Operands(x=rng.standard_normal((m, k), dtype=np.float32), w=rng.standard_normal((n, k), dtype=np.float32))
        step = layer_step(0, SimpleNamespace(name=name), lp, ops, np, dtype)
        return Prepared(step.fn, (), {**step.fields, "dtype": dtype})

    return Case(SUITE, key, name, prepare)


def record(recorder, cases: list, deadline: float, threads: int, xp=np, clock=time.monotonic,
           passes: int | None = None, before_pass=None, core: str | None = None) -> list[list[dict]]:
    """Time ``cases`` in order, up to ``passes`` times over, until ``deadline`` (``clock()`` seconds): the rows of
    each pass begun (``passes`` defaults to :data:`PASSES`); each row's params get ``blas_threads`` and
    ``blas_core`` (``core``, the BLAS's kernel core, as ``accelsim run`` records it). The fit merges a
    configuration's passes by :func:`~accelsim.replay.box_state.pass_center`. ``before_pass()`` runs first in each
    pass (peak samples). A case is timed :func:`case_repeats` times, from its time in the pass before."""
    from kernels.suites import record_case

    out, last = [], {}
    for _ in range(passes or PASSES):
        if clock() >= deadline:
            return out
        if before_pass is not None:
            before_pass()
        out.append([])
        for i, case in enumerate(cases):
            if clock() >= deadline:
                return out
            n, t0 = case_repeats(last.get(i)), time.perf_counter()
            out[-1].append(record_case(case, xp, recorder, repeats=n, warmup=1, min_window_s=0,
                                       params={"blas_threads": threads, "blas_core": core})[0])
            last[i] = (time.perf_counter() - t0) / n  # a timed call's share of the case: a cold one's copies count
    return out


def case_repeats(seconds: float | None) -> int:
    """Timed calls for a case that took ``seconds`` a call (None: not timed yet): enough to fill :data:`MIN_TIMED_S`,
    within :data:`REPEATS` and :data:`MAX_CASE_REPEATS`.

    Examples
    --------
    >>> case_repeats(None), case_repeats(0.1), case_repeats(54e-6), case_repeats(1e-6)
    (5, 5, 186, 400)
    """
    if not seconds or seconds <= 0:
        return REPEATS
    return max(REPEATS, min(MAX_CASE_REPEATS, math.ceil(MIN_TIMED_S / seconds)))
