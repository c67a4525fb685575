"""A NumPy record priced as the run executed it, not as the accelerator would run its layer.

NumPy's BLAS gives each GEMM the threads its size earns (:func:`blas_threads_used`, an :class:`OnThreads`
workload) and each matrix of a batch a call of its own; a batch that outgrows the caches waits for its DRAM
fetch (:func:`batch_fetch`, family :data:`BATCHED`); an N:M or TASD layer runs its compression, gathers or
scatters as counted NumPy passes (:func:`as_run`, passes from :mod:`accelsim.replay.numpy_passes`); a Kron
record runs factor by factor as :mod:`kernels.kron` does (:func:`kron_as_run`). Each builder returns the parts
:func:`accelsim.replay.project.project` adds up; :func:`threaded_calls` counts the calls that start BLAS threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accelsim.model.arch import DTYPE_BYTES, ArchConfig
from accelsim.model.workload import Gemm
from accelsim.replay.numpy_passes import decompose_live, decompose_traffic, gather_traffic, scatter_traffic
from accelsim.replay.records import Streaming, json_field, need, positive_ints, resident_level
from kernels.nm.format import VECTOR_WIDTH

__all__ = [
    "BATCHED",
    "BLAS_FAMILIES",
    "COLD",
    "DENSE_TERMS",
    "GATHER",
    "OPENBLAS_THREAD_MNK",
    "PASS_RESIDENT",
    "RUNTIME",
    "SHARED_PANEL_CALLS",
    "SMALL_MATRIX_CORES",
    "SMALL_MATRIX_MNK",
    "SWITCH_RATIO",
    "TASD_GATHER",
    "OnThreads",
    "as_run",
    "batch_fetch",
    "blas_threads_used",
    "gather_plans",
    "input_bytes",
    "kron_as_run",
    "on_threads",
    "operand_fetch",
    "pack_pass",
    "shares_panels",
    "small_matrix_kernel",
    "threaded_calls",
]

PASS_RESIDENT = 0
"""Working set given to the counted NumPy passes of :func:`as_run` but a run-time compression's: they run at the
innermost resident level whatever their size; the fitted bandwidth fraction of their family says how far below
the level they run. A run-time compression streams from the level that holds what it keeps live
(:func:`~accelsim.replay.numpy_passes.decompose_live`; past the last cache, that cache for the share it holds,
:func:`~accelsim.replay.records.streaming_levels`), each kind of pass at the rate a calibration measured
there: copies, scatters (``indexed_bandwidth``) and rank steps (``grouped_bandwidth``). A 2:4+1:4 decomposition
took 30-45 ns per element from 128 x 384 to 8192 x 384 values on the 2-vCPU EPYC, and 42-49 up to 1024 x 384,
61-67 at 8192 x 384 on the 2-vCPU Xeon VM (its rank steps 1.3x, its gathers 2x slower per element); priced all
in cache, MiniLM's full-size TASD-A layers came out 18 % fast there, all from DRAM 14 % slow."""

RUNTIME = "runtime_compress"
"""Family of N:M / TASD records that compress their activation operand inside the timed call."""

DENSE_TERMS = "dense_terms"
"""Family of N:M / TASD records NumPy runs as ``decompress_blas`` (scatter each term to dense, one dense BLAS GEMM
per term), their weight compressed ahead of the call."""

GATHER = "nm_gather"
"""Family of N:M and TASD records NumPy runs on its gather path (``params.gather``, ``params.gathers`` per TASD
term): row gathers of B, then 32-row BLAS GEMMs. It takes the ``gemm`` compute scale: fitting its own let the two
scales trade, as its gathers and GEMMs grow together (five one-thread calibrations of the 2-vCPU EPYC gave
efficiency 0.77 with fraction 1, or 1 with 0.30)."""

BATCHED = "batched_gemm"
"""Family of NumPy batched GEMMs whose batch outgrows the caches: BLAS's compute plus a DRAM fetch that no tile
hides (:func:`batch_fetch`). Their own family, so the fetch's bandwidth fraction is not the one that scales every
GEMM's fill and drain."""

TASD_GATHER = "tasd_gather"
"""Family of vector-layout TASD records NumPy runs term by term on the gather path (``cpu_path`` ``gather_gemm``)
that carry no per-term cut (``params.gathers``, recorded since 2026-12), replayed as its N:M terms; those that do
are priced as their gathers and small GEMMs, family :data:`GATHER`, as N:M records are (on the 2-vCPU Xeon VM five
calibrations fitted this family a bandwidth fraction of 0.053-0.077, pricing 79 % of its time: 46 % apart). It takes
the ``gemm`` compute scale as :data:`GATHER` does: with its own, the fit put its efficiency at 1 and its bandwidth
fraction (a simulator stall, memory less overlapped compute) followed the fp32 peak, 0.83-0.92 over five one-thread
calibrations of the 2-vCPU EPYC; with the ``gemm`` scale, 0.86-0.94. GPU records keep family ``tasd``."""

COLD = "cold_gemm"
"""Family of NumPy GEMMs timed cold (``params.cold_bytes``: the bytes the operand copies it turns over span,
:func:`~accelsim.replay.calibration_set.cold_case`; records made before, what a copy streamed through the
caches before each call), as a layer of ``accelsim run`` finds its operands once the rest of the pass has gone
through: BLAS's
compute plus the read of its inputs from where the stream left them (:func:`operand_fetch`,
:func:`input_bytes`). Its fitted bandwidth fraction prices every cold layer of a run
(:func:`accelsim.replay.network.simulator_predictor`). On the
2-vCPU Intel Xeon VM a 128 × 768 × 768 fp32 GEMM took 0.17-0.46 ms longer cold (3.1 MB: 7-18 GB/s, against 23
for a DRAM copy); on the 2-vCPU EPYC such reads ran at 27-72 GB/s, against 42. The stream is what a run's pass
leaves, not a full flush: on the Xeon VM (480 MiB of host L3, a changing share of it this VM's) a 2 × 240 MiB
stream gave a fraction of 0.16-0.18 where 2 × 60 MiB gave 0.39-0.46 (one thread, warm and cold in turn,
``bench/bench_cold_fetch.py``), and calibrations with it over-projected the README's loops by 13-32 %. Either way
the fraction moved 17-68 % between processes run one after another: the L3 kept the operands every call re-read
against the stream's once-touched lines, as much as the VM's share of it allowed. Turned over copies instead
(:func:`~accelsim.replay.calibration_set.cold_case`), the operands come back as cold as a run's layers' do,
and the fraction moved 1.7 % between two processes."""

BLAS_FAMILIES = (RUNTIME, DENSE_TERMS, GATHER, BATCHED, TASD_GATHER, COLD)
"""Families whose multiplies are dense BLAS GEMMs: calibration gives them the ``gemm`` compute scale of their dtype
and fits only what they stream (:func:`accelsim.replay.calibrate.fit_groups`)."""


@dataclass(frozen=True)
class OnThreads:
    """A GEMM that runs on ``threads`` of the arch's units (:func:`blas_threads_used`); ``pooled``: on the
    caller's own pool of ``threads`` workers, BLAS held to one thread each, so no call starts BLAS threads."""

    workload: Gemm
    threads: int
    pooled: bool = False


OPENBLAS_THREAD_MNK = 65536 * 4
"""OpenBLAS (interface/gemm.c) gives a GEMM one thread per ``SMP_THRESHOLD_MIN × GEMM_MULTITHREAD_THRESHOLD``
= 262144 multiply-adds of m·n·k, at most all of its threads. Measured on the 2-vCPU EPYC (OpenBLAS 0.3.31):
32³ to 80³ take the same time with 1 and 2 threads, 512×384×384 half the time on 2."""


SMALL_MATRIX_MNK = 100**3
"""At most this many multiply-adds, OpenBLAS's small-matrix kernels take a GEMM whole, on the calling thread and
without packing its operands (:func:`pack_pass`), before its threading (interface/gemm.c; the permit in
kernel/x86_64/sgemm_small_kernel_permit_skylakex.c allows any untransposed pair up to 100³). On the 2-vCPU Intel Xeon
VM (OpenBLAS 0.3.31, core SkylakeX) fp32 and fp64 batches of 128 × 128 × 32, 64 × 64 × 128, 64 × 128 × 96 and 512 ×
16 × 64 products ran 1.00-1.09x as fast on 2 threads as on 1, and 64 × 64 × 256 and 128 × 128 × 64 (just over 100³) 1.02-1.49x: MiniLM's attention at 128 tokens (128 × 128 ×
32, 768 products a layer) had been priced on 2 threads with 768 threaded calls, 1.8x its measured time."""

SMALL_MATRIX_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")
"""OpenBLAS cores with the small-matrix kernels (``KERNEL.COOPERLAKE`` and ``KERNEL.SAPPHIRERAPIDS`` include
``KERNEL.SKYLAKEX``'s), as threadpoolctl names them (:func:`kernels.trace.microbench.blas_core`)."""


SWITCH_RATIO = {"SkylakeX": (16, 8), "Cooperlake": (16, 8), "SapphireRapids": (16, 8), "Haswell": (8, 4), "Zen": (8, 4)}
"""OpenBLAS's ``SWITCH_RATIO`` per core, (fp32, fp64) (param.h of 0.3.2x): the fewest rows of C, in its column-major
view, its level-3 driver gives one thread (:func:`shares_panels`)."""


SHARED_PANEL_CALLS = 4
"""A call whose BLAS threads share packed panels (:func:`shares_panels`) counts as this many threaded calls: on the
2-vCPU Xeon VM (``bench/bench_blas_split.py``, three runs) such calls cost 6.7-8.3 µs beyond 0.62-0.66x the
one-thread time, calls whose threads take their own rows 1.8-2.0 µs beyond 0.53x. Refitted on three loop sets,
3, 4 and 5 gave the same two-thread errors within half a point."""


def shares_panels(m: int, n: int, threads: int, core: str | None, itemsize: int = 4) -> bool | None:
    """Whether OpenBLAS runs NumPy's ``m × n`` product on ``threads`` with the threads sharing their packed panels of
    NumPy's A (OpenBLAS's B: each thread waits for the others' before it multiplies), not each on its own rows of C
    with its own panels.

    Its level-3 driver sees NumPy's row-major product column-major, ``n × m``, and splits those ``n`` rows over
    threads in steps of at least ``SWITCH_RATIO`` (:data:`SWITCH_RATIO`) and the ``m`` columns over the rest, then
    trades the two splits so each thread's block is closest to square: splitting the rows makes the threads share
    those panels. On two threads that leaves the rows split unless ``n < m``. What each split costs a call:
    :data:`SHARED_PANEL_CALLS`. On the 2-vCPU Xeon VM (OpenBLAS 0.3.31, SkylakeX) ``bert_base``'s attention scores
    (128 × 128 × 64) ran 1.08x as long on two threads as on one, its 128 × 64 × 128 products 0.66x. None for a core
    not in the table."""
    if threads < 2:
        return False
    ratios = SWITCH_RATIO.get(core)
    if ratios is None:
        return None
    ratio = ratios[0] if itemsize <= 4 else ratios[1]
    rows, cols = n, m
    split_rows = 1
    if rows >= 2 * ratio:
        split_rows = threads
        while split_rows > 1 and rows < split_rows * ratio:
            split_rows //= 2
    if cols < ratio * split_rows:
        return split_rows > 1
    split_cols = min(-(-cols // (ratio * split_rows)), threads // split_rows)
    best, div = None, 1
    for i in range(1, math.isqrt(split_rows) + 1):
        if split_rows % i:
            continue
        for d in (i, split_rows // i):
            cost = cols * (split_rows // d) + rows * split_cols * d
            if best is None or cost < best:
                best, div = cost, d
    return split_rows // div > 1


def small_matrix_kernel(mnk: int, core: str | None) -> bool:
    """Whether OpenBLAS on ``core`` hands an ``mnk``-MAC GEMM to its small-matrix kernel (:data:`SMALL_MATRIX_MNK`)."""
    return core in SMALL_MATRIX_CORES and mnk <= SMALL_MATRIX_MNK


def blas_threads_used(mnk: int, threads: int, core: str | None = None) -> int:
    """Threads OpenBLAS runs an ``mnk``-MAC GEMM (untransposed operands, as NumPy's contiguous arrays give it) on
    when it has ``threads``: 1 up to 2 × 262144, then one per 262144; on a core of :data:`SMALL_MATRIX_CORES`, 1 up
    to :data:`SMALL_MATRIX_MNK`."""
    if small_matrix_kernel(mnk, core):
        return 1
    return max(1, min(threads, mnk // OPENBLAS_THREAD_MNK))


def _blas_threads(row: dict, params: dict) -> int | None:
    """The BLAS thread count a NumPy record ran with (``params.blas_threads``); None if it does not say."""
    have = params.get("blas_threads")
    if row.get("backend") != "numpy" or not isinstance(have, int) or isinstance(have, bool) or have < 1:
        return None
    return have


def on_threads(gemm: Gemm, row: dict, params: dict, arch: ArchConfig):
    """``gemm`` as a NumPy run executed it: on the threads OpenBLAS gives it (per matrix of a batch, which NumPy
    multiplies one after another), when the record says how many BLAS had (``params.blas_threads``), on the core
    it says (``params.blas_core``; records made before it get the rule without small matrices)."""
    have = _blas_threads(row, params)
    if have is None:
        return gemm
    used = min(blas_threads_used(gemm.m * gemm.n * gemm.k, have, params.get("blas_core")), arch.compute.units)
    return gemm if used >= arch.compute.units else OnThreads(gemm, used)


def as_run(row: dict, params: dict, family: str, m: int, n: int, k: int, dtype: str, sparse, launches: int,
            arch: ArchConfig):
    """``(family, parts, launches)`` of an N:M or TASD record as the run executes it (:mod:`accelsim.replay.numpy_passes`):

    - ``params.runtime_compress`` (an ``operand: input`` layer of ``accelsim run``): the compression of the ``m ×
      k`` activation inside the timed call comes first, a :class:`Streaming` part from the level its live set needs;
      such records form the family :data:`RUNTIME`, calibrated on their own (NumPy's short-group ufunc passes reach
      another fraction of the copy bandwidth than BLAS does);
    - ``params.cpu_path == "decompress_blas"`` (the NumPy path for the element layout): per term the scatter to a
      dense buffer and one *dense* ``m × n × k`` GEMM with its :func:`pack_pass`, plus ``out +=`` for each later
      term, instead of the arch's sparse GEMM, which the NumPy path does not run; without run-time compression such
      records form the family :data:`DENSE_TERMS`: their GEMMs are BLAS's, not the gather path's small ones;
    - ``params.gather`` (one N:M term on NumPy's ``gather_gemm`` path, :func:`kernels.nm.cpu.gather_plan`), or
      ``params.gathers`` (one per TASD term): the copies and row gathers of B, then one ``32 × width × depth`` GEMM
      per vector and panel on the threads the call had, and after the first TASD term an ``out +=`` (family
      :data:`GATHER`).
    """
    from kernels.tasd import parse_series

    kernel = row["kernel"]
    pats = [(p.n, p.m) for p in parse_series(row["tasd_series"] if family == "tasd" else row["pattern"])]
    item = np.dtype(row["dtype"]).itemsize
    parts: list = []
    if params.get("runtime_compress"):
        layout = params.get("compress_layout") or params.get("layout") or "element"
        tr = decompose_traffic(m, k, pats, item, layout, tasd=family == "tasd")
        live = decompose_live(m, k, pats, item, tasd=family == "tasd")
        parts.append(Streaming(f"{kernel}.compress", tr.read, tr.written, live, tr.calls, tr.indexed, tr.grouped))
        family = RUNTIME
    plans = gather_plans(params, family)
    if plans:
        launches = 0
        have = _blas_threads(row, params) or arch.compute.units
        for i, plan in enumerate(plans):
            g = dict(zip(("vectors", "depth", "width", "panels", "workers"), positive_ints(row, "params", [
                plan.get(f) for f in ("vectors", "depth", "width", "panels", "workers")], "'gather' counts")))
            tr = gather_traffic(g["vectors"], g["depth"], g["panels"], n, k, item)
            parts.append(Streaming(f"{kernel}.t{i}.gather", tr.read, tr.written, PASS_RESIDENT, tr.calls))
            small = Gemm(f"{kernel}.t{i}.vectors", VECTOR_WIDTH, g["width"], g["depth"], dtype,
                         count=g["vectors"] * g["panels"])
            held = bool(plan.get("held"))
            threads = g["workers"] if held else blas_threads_used(VECTOR_WIDTH * g["width"] * g["depth"], have,
                                                                  params.get("blas_core"))
            parts.append(OnThreads(small, min(max(1, threads), arch.compute.units), pooled=held))
            launches += g["vectors"] * g["panels"]
            if i:  # tasd_spmm's out += term_out
                out = m * n * max(item, 4)
                parts.append(Streaming(f"{kernel}.t{i}.add", 2 * out, out, PASS_RESIDENT))
        family = GATHER
    elif params.get("cpu_path") == "decompress_blas":
        for i, (nn, mm) in enumerate(pats):
            tr = scatter_traffic(m, k, n, nn, mm, item, first=i == 0)
            parts.append(Streaming(f"{kernel}.t{i}.scatter", tr.read, tr.written, PASS_RESIDENT, tr.calls, tr.indexed))
            term = Gemm(f"{kernel}.t{i}", m, n, k, dtype)
            pack = pack_pass(term, max(item, 4), params.get("blas_core"))
            parts += [on_threads(term, row, params, arch), *([pack] if pack else [])]
        launches = len(pats)
        family = family if family == RUNTIME else DENSE_TERMS
    else:
        parts += sparse if isinstance(sparse, list) else [sparse]
    calls = launches + sum(p.launches for p in parts if isinstance(p, Streaming))
    return family, parts, calls


def gather_plans(params: dict, family: str) -> list[dict]:
    """The ``gather_gemm`` cut of each term a NumPy N:M (``params.gather``) or TASD (``params.gathers``, one per term)
    record ran on the gather path (:func:`kernels.nm.cpu.gather_plan`); empty otherwise, and for a run-time
    compression, whose terms are priced as the arch's sparse GEMM."""
    if params.get("cpu_path") != "gather_gemm":
        return []
    if family == "nm_spmm" and isinstance(params.get("gather"), dict):
        return [params["gather"]]
    plans = params.get("gathers") if family == "tasd" else None
    return plans if isinstance(plans, list) and plans and all(isinstance(p, dict) for p in plans) else []


def pack_pass(gemm: Gemm, item: int, core: str | None = None) -> Streaming | None:
    """BLAS's passes over a dense GEMM's operands besides its multiply, each matrix of a batch alike: it copies A's and
    B's blocks into packed panels and reads and writes C, counted as one read and one write of ``m·k + k·n + m·n``
    values of ``item`` bytes at :data:`PASS_RESIDENT` (the family's fitted bandwidth fraction says how far below that
    level's copy rate they run).

    Their cost grows with the operands, the multiply's with ``m·n·k``; without them one compute efficiency priced
    every size alike. Fitting flops and a cost per call to the median time of each fp32 case over 20 calibrations of
    the 2-vCPU EPYC (four loops) left 64×384×1536 −8 % and 8×384×384 −36 % at one thread, and at two 1024³ and
    2048×512×512 +13 and +17 % against 128³ −21 % and 64×384×1536 −13 %; with a cost per operand value besides,
    every case from 32³ to 1024³ came within 6 % at one thread, and within 7 % at two but 64³ and 128³ (−18, −11 %).

    None where BLAS does not pack: on a ``core`` of :data:`SMALL_MATRIX_CORES` a product of at most
    :data:`SMALL_MATRIX_MNK` multiply-adds goes to the small-matrix kernel, which reads A and B where they lie. On the
    2-vCPU Xeon VM (``SkylakeX``) every such calibration case came out over with the pass priced, the furthest
    most (each case's median error over five one-thread calibrations: 32³ +41 %, 64³ +76 %, 768 products of 8 × 32 ×
    8 +161 %, batches of 32 × 64 × 32 +85..+137 %), while the batched cases just above the bound (128 × 128 × 64, 128 ×
    64 × 128, 256 × 256 × 32) came within −4..+2 %.
    """
    if small_matrix_kernel(gemm.m * gemm.n * gemm.k, core):
        return None
    e = gemm.count * (gemm.m * gemm.k + gemm.k * gemm.n + gemm.m * gemm.n) * item
    return Streaming(f"{gemm.name}.pack", e, e, PASS_RESIDENT, launches=0)  # inside the BLAS call


def operand_fetch(kernel: str, nbytes: int, footprint: int) -> Streaming:
    """A call's read of ``nbytes`` of operands from the level that holds ``footprint`` bytes: what went through
    the caches since its last call (a run's pass, a calibration's stream)."""
    return Streaming(f"{kernel}.fetch", nbytes, 0, footprint)


def input_bytes(row: dict, arch: ArchConfig) -> int:
    """Bytes a NumPy layer record reads cold, the operands a run's pass evicts between two calls of the layer:
    ``bytes_min`` less the output (``m × n`` per matrix), which goes to memory the allocator just freed.
    ``accelsim run`` holds every layer's operands apart (its activations are recorded, not chained), so they
    come back cold alike. On the 2-vCPU Xeon VM MiniLM's attention products at 8 tokens (1.6 MB in) took 0.25 ms
    longer in a run than warm, its 512 × 384 × 384 projections (1.4 MB) 0.1-0.26, BERT's 128 × 768 × 768 (2.75 MB)
    0.27.

    Of a dense GEMM's A only the first block waits: BLAS packs B whole before it multiplies, then A a block at a
    time (:data:`A_BLOCK`, half the L2 of one of the arch's units), the next block's read running while the last
    one computes. Timed warm and after a 240 MiB copy on the Xeon VM (median of 9), 8192 × 384 × 384 took -0.18 to
    +0.37 ms longer cold (13.2 MB of inputs, a full read at the cold GEMMs' fitted rate: 1.5 ms), 8192 × 1536 × 384
    +0.09 to +0.21; BERT's 128-row FFNs, whose 9.4 MB weight is B, +0.65."""
    params = json_field(row, "params")
    m, n = (int(need(row, c)) for c in ("m", "n"))
    count = params.get("batch") or 1
    item = np.dtype(row["dtype"]).itemsize
    read = max(0, int(row.get("bytes_min") or 0) - count * m * n * item)
    if row.get("kernel") != "gemm" or row.get("k") is None:
        return read
    a = m * int(row["k"]) * item
    block = (arch.memory[-1].capacity_bytes or 0) // max(1, arch.compute.units) // A_BLOCK
    return max(0, read - count * max(0, a - block)) if block else read


A_BLOCK = 2
"""A dense GEMM's A is read cold up to ``1 / A_BLOCK`` of one unit's innermost level (:func:`input_bytes`)."""


def batch_fetch(row: dict, m: int, n: int, k: int, count: int, arch: ArchConfig) -> Streaming | None:
    """The DRAM traffic of a NumPy batched GEMM whose matrices outgrow the caches, priced *on top of* its compute.

    NumPy calls BLAS once per matrix of the batch, and BLAS packs a call's operands before multiplying them, so
    a matrix fetched from DRAM waits for its fetch; one large GEMM hides the same traffic behind its many
    tiles. Measured on the 2-vCPU EPYC (fp32, 1 and 2 threads): 128×32×128 matrices took 9.1 µs each in a
    batch of 48 (4.7 MB) and 13.4 µs in a batch of 768 (75 MB, beyond the 32 MB L3); 64³ ones 4.6 and 6.7 µs.
    None when the batch fits a cache or the record is not NumPy's."""
    if count < 2 or row.get("backend") != "numpy":
        return None
    item = np.dtype(row["dtype"]).itemsize
    total = count * (m * k + k * n + m * n) * item
    if resident_level(arch, total) != 0:
        return None
    return Streaming(f"{row['kernel']}.fetch", count * (m * k + k * n) * item, count * m * n * item, total)


def kron_as_run(row: dict, params: dict, kernel: str, fused: bool, m: int, factors: list, dtype: str,
                 arch: ArchConfig):
    """``(parts, launches)`` of a NumPy Kron record as :mod:`kernels.kron` runs it, factor by factor (last first):

    - ``kron_matmul_shuffle``: one BLAS GEMM ``(m·w/P) × Q × P`` on the current width ``w``, then the transposing
      reshape, a copy of the ``m × (w/P)·Q`` result (a :class:`Streaming` pass);
    - ``kron_matmul_fused``: one ``np.matmul`` per row block (``params.block_rows``), which multiplies each row of
      the block, ``Q × (w/P) × P``, with the rotation folded into the operand; with several blocks BLAS is held to
      one thread and the blocks run on ``params.threads`` workers (the caller's pool), no pass over memory.

    Each of the eight `small` Kron configurations of ``traces/cpu-amd-epyc-2vcpu``, projected by the family's fit on the
    other seven, was 28 % off in mean priced as the accelerator's Kron; priced so, 17 % (2-25 % fused, 4-28 % shuffle).
    """
    item = np.dtype(row["dtype"]).itemsize
    width = math.prod(p for p, _ in factors)
    rows, workers = positive_ints(row, "params", [params.get("block_rows", m), params.get("threads", 1)],
                          "'block_rows' and 'threads'")
    blocks, workers = -(-m // rows), min(workers, arch.compute.units)
    parts, launches = [], 0
    for i, (p, q) in reversed(list(enumerate(factors))):
        if fused:
            gemm = Gemm(f"{kernel}.f{i}", q, width // p, p, dtype, count=m)
            parts.append(OnThreads(gemm, workers, pooled=True) if blocks > 1 else on_threads(gemm, row, params, arch))
            launches += blocks
        else:
            parts.append(on_threads(Gemm(f"{kernel}.f{i}", m * (width // p), q, p, dtype), row, params, arch))
            copied = m * (width // p) * q * item
            parts.append(Streaming(f"{kernel}.f{i}.transpose", copied, copied, PASS_RESIDENT))
            launches += 2
        width = width // p * q
    return parts, launches


def threaded_calls(row: dict, workload, arch: ArchConfig) -> int:
    """How many BLAS calls a NumPy record made on more than one thread, each call whose threads share packed panels
    (:func:`shares_panels`) counted :data:`SHARED_PANEL_CALLS` times: one per matrix (NumPy calls BLAS once per
    matrix of a batch) of each GEMM that :func:`on_threads` left on all of the arch's units, or that
    :class:`OnThreads` puts on two or more BLAS threads; 0 for other records. Each such call starts and joins its
    threads, and where they share panels waits on them: on the 2-vCPU EPYC a 128³ two-thread GEMM took 3-4 µs
    beyond half its one-thread time, and ~22 µs while the VM was in its slow state. Counted alike, the two kinds
    drew one cost per call between theirs: ``bert_base``'s 128 × 64 × 128 products on two threads were projected
    +25 % per layer, its 128 × 128 × 64 ones −24 %."""
    params = json_field(row, "params")
    if row.get("backend") != "numpy" or (_blas_threads(row, params) or 1) < 2:
        return 0
    core = params.get("blas_core")

    def weighted(g: Gemm, threads: int) -> int:
        if threads < 2:
            return 0
        shares = shares_panels(g.m, g.n, threads, core, int(DTYPE_BYTES.get(g.dtype, 4)))
        return g.count * (SHARED_PANEL_CALLS if shares else 1)

    def calls(w) -> int:
        if isinstance(w, list):
            return sum(map(calls, w))
        if isinstance(w, OnThreads):
            return 0 if w.pooled else weighted(w.workload, w.threads)
        if isinstance(w, Gemm) and w.weight_sparsity.kind == "dense":
            return weighted(w, arch.compute.units)
        return 0

    return calls(workload)
