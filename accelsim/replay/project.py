"""Trace replay: kernel trace records → simulator workloads → projected time and energy, against measured.

Each measured configuration (rows of one kernel, device, dtype, shape and sparsity, merged by
the median of their per-call medians as :mod:`accelsim.replay.traces` does) becomes one workload:

- ``gemm`` → :class:`~accelsim.model.workload.Gemm` (M, N, K as recorded; ``params["batch"]`` copies
  as one batched GEMM; on NumPy a batch that outgrows the caches adds its DRAM fetch, family :data:`BATCHED`);
- ``nm_spmm`` / ``cusparselt_2_4`` → a Gemm whose *weight* carries the N:M pattern. The kernel's
  sparse operand A (m × k) is compressed along k, so the trace's C = A·B is replayed as
  Cᵀ = Bᵀ·Aᵀ: M = trace n, N = trace m, K = trace k, the sparse A as the weight;
- ``tasd_spmm`` → the same transposed Gemm with a ``tasd:`` series on the weight; on an arch
  that lacks one of the series' patterns, one N:M Gemm per term (separate launches, as the
  kernel runs them on hardware without the TASD extension);
- ``kron_matmul_fused`` / ``kron_matmul_shuffle`` → :class:`~accelsim.model.workload.KronMatmul` with
  the factor shapes from ``params["factors"]``; a NumPy record as :mod:`kernels.kron` runs it (:func:`_kron_as_run`);
- ``project_*`` (bilevel / multilevel projections) → :class:`Streaming`: O(size) element-wise
  passes with no reuse, so their time is memory traffic over bandwidth. The pass counts in
  :data:`PROJECTION_PASSES` are read off the NumPy implementation (each ufunc call streams its
  operands once).

An N:M or TASD record is replayed as the run executed it (:func:`_as_run`, passes counted in
:mod:`accelsim.replay.numpy_passes`): a layer that compresses its activation at run time
(``params.runtime_compress``, family :data:`RUNTIME`) first streams that compression; the NumPy
``decompress_blas`` path (``params.cpu_path``) scatters each term to dense and runs one dense GEMM
per term. Such a record's workload is a list of parts whose projections add up. A NumPy GEMM with
its BLAS thread count recorded (``params.blas_threads``) runs on the threads OpenBLAS gives its size
(:func:`blas_threads_used`, an :class:`OnThreads` workload): small ones, and each matrix of a batch,
on one of the arch's units.

Caches are warm: a trace times repeated calls after warm-up ones, so operands that fit stay
resident. Each configuration is replayed on the arch with the levels outside its *resident level*
removed — the innermost level whose capacity holds the working set (the record's ``bytes_min``),
never the innermost level itself, which is per-launch scratch (:func:`resident_level`).

A trace must come from the device the arch describes (:func:`check_device`). Calibration and
error metrics live in :mod:`accelsim.replay.calibrate`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from accelsim.model.arch import ArchConfig, load_arch
from accelsim.errors import AccelsimError
from accelsim.model.simulate import simulate
from accelsim.model.sparsity import executed_pattern
from accelsim.replay.labels import row_label
from accelsim.replay.numpy_passes import decompose_traffic, gather_traffic, scatter_traffic
from accelsim.replay.traces import merge_runs
from accelsim.model.workload import Gemm, KronMatmul, Sparsity
from kernels.nm.format import VECTOR_WIDTH

__all__ = [
    "BATCHED",
    "BLAS_FAMILIES",
    "DENSE_TERMS",
    "FAMILIES",
    "GATHER",
    "PROJECTION_PASSES",
    "RUNTIME",
    "TASD_GATHER",
    "Item",
    "Measured",
    "OPENBLAS_THREAD_MNK",
    "OnThreads",
    "Projection",
    "ReplayError",
    "Streaming",
    "arch_for",
    "blas_threads_used",
    "check_device",
    "device_tokens",
    "executed",
    "items_from_table",
    "project",
    "record_workload",
    "resident_level",
    "warm_arch",
]

FAMILIES = {
    "gemm": "gemm",
    "nm_spmm": "nm_spmm",
    "cusparselt_2_4": "nm_spmm",
    "tasd_spmm": "tasd",
    "kron_matmul_fused": "kron",
    "kron_matmul_shuffle": "kron",
    "project_l1inf_bilevel": "projection",
    "project_l12_bilevel": "projection",
    "project_multilevel": "projection",
}
"""Trace kernel name → kernel family; any other kernel name is refused."""

PASS_RESIDENT = 0
"""Working set given to the counted NumPy passes of :func:`_as_run`: they run at the innermost resident level
whatever their size. Broadcasts over groups of M, ``nonzero`` and fancy indexing cost NumPy a few ns per
element, far below any level's bandwidth: on the 2-vCPU EPYC a 2:4+1:4 decomposition took 30-45 ns per
element from 128 x 384 to 8192 x 384 values (L2- to DRAM-sized), so where the operand lives does not set
their time; the fitted bandwidth fraction of their family says how far below the level they run."""

RUNTIME = "runtime_compress"
"""Family of N:M / TASD records that compress their activation operand inside the timed call."""

DENSE_TERMS = "dense_terms"
"""Family of N:M / TASD records NumPy runs as ``decompress_blas`` (scatter each term to dense, one dense BLAS GEMM
per term), their weight compressed ahead of the call."""

GATHER = "nm_gather"
"""Family of N:M records NumPy runs on its gather path (``params.gather``): row gathers of B, then 32-row BLAS
GEMMs. It takes the ``gemm`` compute scale: fitting its own let the two scales trade, as its gathers and GEMMs grow
together (five one-thread calibrations of the 2-vCPU EPYC gave efficiency 0.77 with fraction 1, or 1 with 0.30)."""

BATCHED = "batched_gemm"
"""Family of NumPy batched GEMMs whose batch outgrows the caches: BLAS's compute plus a DRAM fetch that no tile
hides (:func:`_batch_fetch`). Their own family, so the fetch's bandwidth fraction is not the one that scales every
GEMM's fill and drain."""

TASD_GATHER = "tasd_gather"
"""Family of vector-layout TASD records NumPy runs term by term on the gather path (``cpu_path`` ``gather_gemm``),
replayed as its N:M terms. It takes the ``gemm`` compute scale as :data:`GATHER` does: with its own, the fit put
its efficiency at 1 and its bandwidth fraction (a simulator stall, memory less overlapped compute) followed the
fp32 peak, 0.83-0.92 over five one-thread calibrations of the 2-vCPU EPYC; with the ``gemm`` scale, 0.86-0.94.
GPU records keep family ``tasd``."""

BLAS_FAMILIES = (RUNTIME, DENSE_TERMS, GATHER, BATCHED, TASD_GATHER)
"""Families whose multiplies are dense BLAS GEMMs: calibration gives them the ``gemm`` compute scale of their dtype
and fits only what they stream (:func:`accelsim.replay.calibrate.fit_groups`)."""

PROJECTION_PASSES = {
    # (full-size reads, full-size writes) per call, from kernels.projection's NumPy path:
    "project_l1inf_bilevel": (4, 2),  # max + min (2 reads); clip: minimum (r, w) then maximum (r, w)
    "project_l12_bilevel": (3, 2),    # abs (r, w), ℓ2 reduce (r), rescale multiply (r, w)
    # multilevel: abs (r, w), inner-norm reduce (r), innermost ball (r, w), astype (r, w), copysign (2 r, w)
    "project_multilevel": (6, 4),
}

_DTYPES = {"float16": "fp16", "bfloat16": "bf16", "tfloat32": "tf32", "float32": "fp32", "float64": "fp64",
           "int8": "int8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}
_GENERIC = {
    "nvidia", "amd", "intel", "corporation", "gpu", "cpu", "processor", "tensor", "core", "cores", "graphics",
    "with", "radeon", "genuine", "r", "tm", "hbm", "hbm2", "hbm2e", "hbm3", "hbm3e", "pcie", "sxm", "sxm4",
    "sxm5", "nvl", "gb", "mig",
}
_FORM_FACTORS = {"pcie", "sxm", "sxm4", "sxm5", "nvl"}
_CPU_WORDS = {"cpu", "numpy"}


class ReplayError(AccelsimError):
    """A trace record or trace set that cannot be replayed on the given arch."""


@dataclass(frozen=True)
class Streaming:
    """A bandwidth-bound kernel: ``bytes_read`` and ``bytes_written`` streamed, ``bytes_indexed`` moved by
    element-granular gathers and scatters (at the level's ``indexed_bandwidth``), ``working_set`` resident."""

    name: str
    bytes_read: int
    bytes_written: int
    working_set: int
    launches: int = 1
    bytes_indexed: int = 0


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


def blas_threads_used(mnk: int, threads: int) -> int:
    """Threads OpenBLAS runs an ``mnk``-MAC GEMM on when it has ``threads``: 1 up to 2 × 262144, then one per 262144."""
    return max(1, min(threads, mnk // OPENBLAS_THREAD_MNK))


def _blas_threads(row: dict, params: dict) -> int | None:
    """The BLAS thread count a NumPy record ran with (``params.blas_threads``); None if it does not say."""
    have = params.get("blas_threads")
    if row.get("backend") != "numpy" or not isinstance(have, int) or isinstance(have, bool) or have < 1:
        return None
    return have


def _on_threads(gemm: Gemm, row: dict, params: dict, arch: ArchConfig):
    """``gemm`` as a NumPy run executed it: on the threads OpenBLAS gives it (per matrix of a batch, which NumPy
    multiplies one after another), when the record says how many BLAS had (``params.blas_threads``)."""
    have = _blas_threads(row, params)
    if have is None:
        return gemm
    used = min(blas_threads_used(gemm.m * gemm.n * gemm.k, have), arch.compute.units)
    return gemm if used >= arch.compute.units else OnThreads(gemm, used)


@dataclass
class Measured:
    """One measured configuration (trace rows merged by :func:`~accelsim.replay.traces.merge_runs`): what a replay is compared with."""

    key: tuple
    family: str
    kernel: str
    label: str
    measured_s: float
    measured_j: float | None
    runs: int
    row: dict = field(repr=False, default_factory=dict)

    @property
    def group(self) -> str:
        """Family and dtype ('gemm bfloat16'): the unit calibration fits, since efficiency differs per dtype."""
        return f"{self.family} {self.row.get('dtype', '')}".strip()


@dataclass(kw_only=True)
class Item(Measured):
    """A :class:`Measured` configuration with its simulator workload."""

    workload: object
    launches: int
    working_set: int
    threaded_calls: int = 0
    """BLAS calls the record made on more than one thread (:func:`threaded_calls`)."""


@dataclass(frozen=True)
class Projection:
    """Engine output of one item, split so calibration can scale each part.

    ``compute_s`` is busy compute time, ``memory_s`` everything else (fill, bandwidth stalls,
    drain; all of a streaming kernel); ``dynamic_j`` energy without leakage, ``leakage_w`` the
    arch's static power, so energy at any time t is ``dynamic_j + leakage_w · t``.
    """

    compute_s: float
    memory_s: float
    dynamic_j: float
    leakage_w: float

    @property
    def seconds(self) -> float:
        return self.compute_s + self.memory_s


def _tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[^0-9a-z]+", (text or "").lower()) if t}


def device_tokens(device_name: str) -> set[str]:
    """Distinguishing words of a device name: 'NVIDIA H100 80GB HBM3' → {'h100'}."""
    return {t for t in _tokens(device_name) if t not in _GENERIC and not re.fullmatch(r"\d+(gb|g|mb)?", t)}


def check_device(arch: ArchConfig, table: pa.Table) -> list[str]:
    """Refuse traces from a device ``arch`` does not describe; return notes on looser matches.

    NumPy-backend traces need a CPU arch (its name or description says ``cpu`` or ``numpy``);
    CuPy traces need an arch whose name or description contains a distinguishing token of the
    trace's device name (``H100`` of 'NVIDIA H100 80GB HBM3') and, where both name a form factor
    (SXM, PCIe, NVL), the same one.
    """
    arch_tokens = _tokens(f"{arch.name} {arch.description}")
    devices = sorted({(r["backend"], r["device_name"] or "") for r in table.select(["backend", "device_name"]).to_pylist()})
    notes, bad = [], []
    for backend, device in devices:
        tokens = device_tokens(device)
        if backend == "numpy":
            if not arch_tokens & _CPU_WORDS:
                bad.append(f"{device!r} (NumPy backend: needs a CPU arch such as cpu_numpy)")
            elif tokens and not tokens & arch_tokens:
                notes.append(f"traces from CPU {device!r} replayed on {arch.name!r}, which describes another CPU")
            continue
        form_t, form_a = _tokens(device) & _FORM_FACTORS, arch_tokens & _FORM_FACTORS
        if arch_tokens & _CPU_WORDS or not tokens & arch_tokens or (form_t and form_a and not form_t & form_a):
            bad.append(repr(device))
    if bad:
        raise ReplayError(
            f"traces come from {', '.join(bad)} but arch {arch.name!r} describes {arch.description or arch.name!r}; "
            f"pass the arch config of the traced device"
        )
    return notes


def arch_for(table: pa.Table, names) -> str | None:
    """The first of the arch ``names`` (builtin names or files) that :func:`check_device` accepts for ``table``; None if none."""
    from accelsim.model.arch import load_arch

    for name in names:
        try:
            check_device(load_arch(name), table)
            return name
        except ReplayError:
            continue
    return None


def _json_field(row: dict, column: str) -> dict:
    try:
        value = json.loads(row[column] or "{}")
    except json.JSONDecodeError:
        raise ReplayError(f"trace record {row['kernel']!r}: column {column} is not JSON: {row[column]!r}") from None
    return value if isinstance(value, dict) else {}


def _need(row: dict, column: str):
    value = row.get(column)
    if value is None:
        raise ReplayError(f"trace record {row['kernel']!r}: column {column} is null; replay needs it")
    return value


def _arch_dtype(row: dict) -> str:
    dtype = _DTYPES.get(row["dtype"])
    if dtype is None:
        raise ReplayError(f"trace record {row['kernel']!r}: dtype {row['dtype']!r} has no arch dtype ({', '.join(_DTYPES)})")
    return dtype


def _tasd_workload(arch: ArchConfig, name: str, m: int, n: int, k: int, dtype: str, series: str):
    try:
        sp = Sparsity.parse(f"tasd:{series}")
    except AccelsimError as exc:
        raise ReplayError(f"trace record {name!r}: tasd_series {series!r}: {exc}") from None
    sup = arch.compute.sparsity
    native = "weight" in sup.operands and all(t in set(sup.nm_patterns()) for t in sp.series)
    if native:
        return Gemm(name, m, n, k, dtype, weight_sparsity=sp), len(sp.series)
    terms = [Gemm(f"{name}.t{i}", m, n, k, dtype, weight_sparsity=Sparsity("nm", pattern=p, density=p.density))
             for i, p in enumerate(sp.series)]
    return terms, len(terms)


def _as_run(row: dict, params: dict, family: str, m: int, n: int, k: int, dtype: str, sparse, launches: int,
            arch: ArchConfig):
    """``(family, parts, launches)`` of an N:M or TASD record as the run executes it (:mod:`accelsim.replay.numpy_passes`):

    - ``params.runtime_compress`` (an ``operand: input`` layer of ``accelsim run``): the compression of the
      ``m × k`` activation inside the timed call comes first, a :class:`Streaming` part; such records form the
      family :data:`RUNTIME`, calibrated on their own (NumPy's short-group ufunc passes reach another fraction of
      the copy bandwidth than BLAS does);
    - ``params.cpu_path == "decompress_blas"`` (the NumPy path for the element layout): per term the scatter to a
      dense buffer and one *dense* ``m × n × k`` GEMM, plus ``out +=`` for each later term, instead of the
      arch's sparse GEMM, which the NumPy path does not run; without run-time compression such records form
      the family :data:`DENSE_TERMS`: their GEMMs are BLAS's, not the gather path's small ones;
    - ``params.gather`` (one N:M term on NumPy's ``gather_gemm`` path, :func:`kernels.nm.cpu.gather_plan`): the
      copies and row gathers of B, then one ``32 × width × depth`` GEMM per vector and panel on the threads the
      call had (family :data:`GATHER`).
    """
    from kernels.tasd import parse_series

    kernel = row["kernel"]
    pats = [(p.n, p.m) for p in parse_series(row["tasd_series"] if family == "tasd" else row["pattern"])]
    item = np.dtype(row["dtype"]).itemsize
    parts: list = []
    if params.get("runtime_compress"):
        layout = params.get("compress_layout") or params.get("layout") or "element"
        tr = decompose_traffic(m, k, pats, item, layout, tasd=family == "tasd")
        parts.append(Streaming(f"{kernel}.compress", tr.read, tr.written, PASS_RESIDENT, tr.calls, tr.indexed))
        family = RUNTIME
    if params.get("cpu_path") == "gather_gemm" and isinstance(params.get("gather"), dict) and family == "nm_spmm":
        g = dict(zip(("vectors", "depth", "width", "panels", "workers"), _ints(row, "params", [
            params["gather"].get(f) for f in ("vectors", "depth", "width", "panels", "workers")], "'gather' counts")))
        g["held"] = bool(params["gather"].get("held"))
        tr = gather_traffic(g["vectors"], g["depth"], g["panels"], n, k, item)
        parts.append(Streaming(f"{kernel}.gather", tr.read, tr.written, PASS_RESIDENT, tr.calls))
        small = Gemm(f"{kernel}.vectors", VECTOR_WIDTH, g["width"], g["depth"], dtype, count=g["vectors"] * g["panels"])
        have = _blas_threads(row, params) or arch.compute.units
        threads = g["workers"] if g["held"] else blas_threads_used(VECTOR_WIDTH * g["width"] * g["depth"], have)
        parts.append(OnThreads(small, min(max(1, threads), arch.compute.units), pooled=g["held"]))
        launches = g["vectors"] * g["panels"]
        family = GATHER
    elif params.get("cpu_path") == "decompress_blas":
        for i, (nn, mm) in enumerate(pats):
            tr = scatter_traffic(m, k, n, nn, mm, item, first=i == 0)
            parts.append(Streaming(f"{kernel}.t{i}.scatter", tr.read, tr.written, PASS_RESIDENT, tr.calls, tr.indexed))
            parts.append(_on_threads(Gemm(f"{kernel}.t{i}", m, n, k, dtype), row, params, arch))
        launches = len(pats)
        family = family if family == RUNTIME else DENSE_TERMS
    else:
        parts += sparse if isinstance(sparse, list) else [sparse]
    calls = launches + sum(p.launches for p in parts if isinstance(p, Streaming))
    return family, parts, calls


def _batch_fetch(row: dict, m: int, n: int, k: int, count: int, arch: ArchConfig) -> Streaming | None:
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


def _ints(row: dict, column: str, value, what: str) -> list[int]:
    """``value`` as a non-empty list of positive integers, else a :class:`ReplayError` naming the record."""
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ReplayError(f"trace record {row['kernel']!r}: {column} {what} must be positive integers, got {value!r}")
    return value


def record_workload(row: dict, arch: ArchConfig) -> tuple[str, object, int]:
    """``(family, workload, launches)`` replaying one trace row on ``arch`` (see the module docstring).

    Raises
    ------
    ReplayError
        For a kernel outside :data:`FAMILIES` or a row lacking what its family needs.
    """
    kernel = row["kernel"]
    family = FAMILIES.get(kernel)
    if family is None:
        raise ReplayError(f"trace record kernel {kernel!r} is unknown to replay; known kernels: {', '.join(sorted(FAMILIES))}")
    dtype = _arch_dtype(row)
    params = _json_field(row, "params")
    if family == "projection":
        shapes = _json_field(row, "shapes")
        shape = _ints(row, "shapes", shapes.get("y") or shapes.get("t"), "'y' (the projected array's shape)")
        size = math.prod(shape) * np.dtype(row["dtype"]).itemsize
        reads, writes = PROJECTION_PASSES[kernel]
        return family, Streaming(kernel, reads * size, writes * size, 2 * size, reads + writes), reads + writes
    m, n, k = (int(_need(row, c)) for c in ("m", "n", "k"))
    if family == "gemm":
        count = _ints(row, "params", [params.get("batch", 1)], "'batch'")[0]
        gemm = _on_threads(Gemm(kernel, m, n, k, dtype, count=count), row, params, arch)
        fetch = _batch_fetch(row, m, n, k, count, arch)
        return (BATCHED, [gemm, fetch], 1) if fetch else (family, gemm, 1)
    if family in ("nm_spmm", "tasd"):
        if family == "nm_spmm":
            workload, launches = Gemm(kernel, n, m, k, dtype, weight_sparsity=Sparsity.parse(_need(row, "pattern"))), 1
        else:
            workload, launches = _tasd_workload(arch, kernel, n, m, k, dtype, _need(row, "tasd_series"))
        if params.get("runtime_compress") or params.get("cpu_path") == "decompress_blas" or (
                row.get("backend") == "numpy" and isinstance(params.get("gather"), dict)):
            return _as_run(row, params, family, m, n, k, dtype, workload, launches, arch)
        if family == "tasd" and row.get("backend") == "numpy" and params.get("cpu_path") == "gather_gemm":
            family = TASD_GATHER
        return family, workload, launches
    factors = params.get("factors")
    if not isinstance(factors, list) or not factors:
        raise ReplayError(f"trace record {kernel!r}: params has no 'factors' list (the Kron factor shapes)")
    factors = [_ints(row, "params", f, "'factors' entry") for f in factors]
    fused = kernel.endswith("fused")
    if row.get("backend") == "numpy":
        return (family, *_kron_as_run(row, params, kernel, fused, m, factors, dtype, arch))
    layer = KronMatmul(kernel, m, tuple(tuple(f) for f in factors), dtype, fused=fused)
    return family, layer, (len(factors) if not fused else 1)


def _kron_as_run(row: dict, params: dict, kernel: str, fused: bool, m: int, factors: list, dtype: str,
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
    rows, workers = _ints(row, "params", [params.get("block_rows", m), params.get("threads", 1)],
                          "'block_rows' and 'threads'")
    blocks, workers = -(-m // rows), min(workers, arch.compute.units)
    parts, launches = [], 0
    for i, (p, q) in reversed(list(enumerate(factors))):
        if fused:
            gemm = Gemm(f"{kernel}.f{i}", q, width // p, p, dtype, count=m)
            parts.append(OnThreads(gemm, workers, pooled=True) if blocks > 1 else _on_threads(gemm, row, params, arch))
            launches += blocks
        else:
            parts.append(_on_threads(Gemm(f"{kernel}.f{i}", m * (width // p), q, p, dtype), row, params, arch))
            copied = m * (width // p) * q * item
            parts.append(Streaming(f"{kernel}.f{i}.transpose", copied, copied, PASS_RESIDENT))
            launches += 2
        width = width // p * q
    return parts, launches


def threaded_calls(row: dict, workload, arch: ArchConfig) -> int:
    """How many BLAS calls a NumPy record made on more than one thread: one per matrix (NumPy calls BLAS once per
    matrix of a batch) of each GEMM that :func:`_on_threads` left on all of the arch's units, or that
    :class:`OnThreads` puts on two or more BLAS threads; 0 for other records. Each such call starts and joins
    its threads: on the 2-vCPU EPYC a 128³ two-thread GEMM took 3-4 µs beyond half its one-thread time, and
    ~22 µs while the VM was in its slow state."""
    if row.get("backend") != "numpy" or (_blas_threads(row, _json_field(row, "params")) or 1) < 2:
        return 0

    def calls(w) -> int:
        if isinstance(w, list):
            return sum(map(calls, w))
        if isinstance(w, OnThreads):
            return 0 if w.pooled or w.threads < 2 else w.workload.count
        if isinstance(w, Gemm) and w.weight_sparsity.kind == "dense" and arch.compute.units >= 2:
            return w.count
        return 0

    return calls(workload)


def items_from_table(table: pa.Table, arch: ArchConfig) -> list[Item]:
    """Merge repeated rows per configuration (:func:`~accelsim.replay.traces.merge_runs`: its key's
    ``shapes`` tells apart projections, whose m, n, k are null) and map each to a workload.

    Items come sorted by their key, so ids and splits do not depend on file order.
    """
    merged = merge_runs(table)
    items = []
    for key in sorted(merged, key=lambda k: tuple(str(v) for v in k)):
        row = merged[key]
        family, workload, launches = record_workload(row, arch)
        ws = row["bytes_min"] or (workload.working_set if isinstance(workload, Streaming) else 0)
        items.append(Item(
            key=key, family=family, kernel=row["kernel"], label=row_label(row),
            measured_s=float(row["time_s"]),
            measured_j=float(row["energy_j"]) if row["energy_j"] is not None else None,
            workload=workload, launches=launches, working_set=int(ws), runs=row["runs"], row=row,
            threaded_calls=threaded_calls(row, workload, arch),
        ))
    return items


def resident_level(arch: ArchConfig, working_set: int) -> int:
    """Index of the innermost level (never the innermost one) that holds ``working_set`` bytes; 0 if none."""
    keeping = [i for i, lvl in enumerate(arch.memory[:-1]) if lvl.capacity_bytes is None or lvl.capacity_bytes >= working_set]
    return keeping[-1] if keeping else 0


def warm_arch(arch: ArchConfig, level: int) -> ArchConfig:
    """``arch`` without the memory levels outside ``level``: operands start resident there."""
    if level == 0:
        return arch
    doc = arch.model_dump(mode="python")
    kept = {lvl.name for lvl in arch.memory[level:]}
    doc["memory"] = doc["memory"][level:]
    sp = doc["compute"]["sparsity"]
    sp["compressed_levels"] = tuple(n for n in sp["compressed_levels"] if n in kept)
    return load_arch(doc)


def project(arch: ArchConfig, workload, working_set: int = 0) -> Projection:
    """Uncalibrated, warm-cache projection of one replay workload on ``arch`` (seconds = cycles / clock)."""
    hz = arch.clock_ghz * 1e9
    leak_w = arch.energy.leakage_pj_per_cycle * 1e-12 * hz
    if isinstance(workload, OnThreads):
        compute = arch.compute.model_copy(update={"units": workload.threads})
        return project(arch.model_copy(update={"compute": compute}), workload.workload, working_set)
    if isinstance(workload, list) and any(isinstance(w, (Streaming, OnThreads)) for w in workload):
        parts = [project(arch, w, working_set) for w in workload]
        return Projection(sum(p.compute_s for p in parts), sum(p.memory_s for p in parts),
                          sum(p.dynamic_j for p in parts), leak_w)
    if isinstance(workload, Streaming):
        lvl = arch.memory[resident_level(arch, workload.working_set)]
        cycles = (workload.bytes_read / lvl.bandwidth + workload.bytes_written / (lvl.write_bandwidth or lvl.bandwidth)
                  + workload.bytes_indexed / (lvl.indexed_bandwidth or lvl.bandwidth))
        dyn = (workload.bytes_read + workload.bytes_indexed) * lvl.read_pj_per_byte + workload.bytes_written * lvl.write_pj_per_byte
        return Projection(0.0, cycles / hz, dyn * 1e-12, leak_w)
    report = simulate(warm_arch(arch, resident_level(arch, working_set)), workload)
    tot = report.total
    dyn = tot["energy_pj"] - tot["energy_breakdown"].get("leakage", 0.0)
    return Projection(tot["compute_cycles"] / hz, tot["stall_cycles"] / hz, dyn * 1e-12, leak_w)


def executed(arch: ArchConfig, item: Item) -> str:
    """How the arch runs an item's sparsity (for the report): 'dense', '2:4', 'tasd native', …"""
    w = item.workload.workload if isinstance(item.workload, OnThreads) else item.workload
    if item.family == BATCHED:
        return "dense, batch fetched from DRAM"
    if isinstance(w, list) and any(isinstance(p, Streaming) for p in w):
        path = _json_field(item.row, "params").get("cpu_path")
        how = "dense GEMM per term" if path == "decompress_blas" else "sparse"
        return ("compressed at run time, " if item.family == RUNTIME else "") + how
    if isinstance(w, list):
        return "tasd as separate N:M passes"
    if isinstance(w, Gemm) and w.weight_sparsity.kind == "nm":
        q = executed_pattern(arch, w.weight_sparsity.pattern, "weight")
        return str(q) if q else "dense"
    if isinstance(w, Gemm) and w.weight_sparsity.kind == "tasd":
        return "tasd native"
    if isinstance(w, Streaming):
        return "streaming"
    return "dense" if isinstance(w, Gemm) else ("fused" if getattr(w, "fused", False) else "shuffle")

