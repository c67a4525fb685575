"""Trace replay: kernel trace records → simulator workloads → projected time and energy, against measured.

Each measured configuration (rows of one kernel, device, dtype, shape and sparsity, merged by the median of their
per-call medians as :mod:`accelsim.replay.traces` does; a calibration's passes by their mean near the median) becomes
one workload:

- ``gemm`` → :class:`~accelsim.model.workload.Gemm` (M, N, K as recorded; ``params["batch"]`` copies
  as one batched GEMM); on NumPy with BLAS's passes over its operands
  (:func:`~accelsim.replay.numpy_run.pack_pass`), and a batch that outgrows the caches adds its DRAM fetch, family
  :data:`BATCHED`;
- ``nm_spmm`` / ``cusparselt_2_4`` → a Gemm whose *weight* carries the N:M pattern. The kernel's
  sparse operand A (m × k) is compressed along k, so the trace's C = A·B is replayed as
  Cᵀ = Bᵀ·Aᵀ: M = trace n, N = trace m, K = trace k, the sparse A as the weight;
- ``tasd_spmm`` → the same transposed Gemm with a ``tasd:`` series on the weight; on an arch
  that lacks one of the series' patterns, one N:M Gemm per term (separate launches, as the
  kernel runs them on hardware without the TASD extension);
- ``kron_matmul_fused`` / ``kron_matmul_shuffle`` → :class:`~accelsim.model.workload.KronMatmul` with
  the factor shapes from ``params["factors"]``; a NumPy record as :mod:`kernels.kron` runs it;
- ``project_*`` (bilevel / multilevel projections) → :class:`Streaming`: O(size) element-wise
  passes with no reuse, so their time is memory traffic over bandwidth. The pass counts in
  :data:`PROJECTION_PASSES` are read off the NumPy implementation (each ufunc call streams its
  operands once).

A NumPy record is replayed as the run executed it (:mod:`accelsim.replay.numpy_run`): a layer that
compresses its activation at run time (``params.runtime_compress``) first streams that compression; the
``decompress_blas`` path (``params.cpu_path``) scatters each term to dense and runs one dense GEMM per term;
each GEMM runs on the threads OpenBLAS gives its size. Such a record's workload is a list of parts whose
projections add up.

Caches are warm: a trace times repeated calls after warm-up ones, so operands that fit stay
resident. Each configuration is replayed on the arch with the levels outside its *resident level*
removed — the innermost level whose capacity holds the working set (the record's ``bytes_min``),
never the innermost level itself, which is per-launch scratch (:func:`resident_level`).

A trace must come from the device the arch describes (:func:`check_device`). Calibration and
error metrics live in :mod:`accelsim.replay.calibrate`.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from accelsim.model.arch import ArchConfig, load_arch
from accelsim.model.simulate import simulate
from accelsim.model.sparsity import executed_pattern
from accelsim.model.workload import Gemm, KronMatmul, Sparsity
from accelsim.errors import AccelsimError
from accelsim.replay.labels import row_label
from accelsim.replay.numpy_run import (
    BATCHED, BLAS_FAMILIES, COLD, DENSE_TERMS, GATHER, OPENBLAS_THREAD_MNK, RUNTIME, TASD_GATHER, OnThreads, as_run,
    batch_fetch, blas_threads_used, gather_plans, input_bytes, kron_as_run, on_threads, operand_fetch,
    pack_pass, threaded_calls,
)
from accelsim.replay.records import (ReplayError, Streaming, arch_dtype, json_field, need, positive_ints, resident_level,
                                     streaming_levels)
from accelsim.replay.traces import merge_runs

__all__ = [
    "BATCHED",
    "BLAS_FAMILIES",
    "COLD",
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
    "group_name",
    "items_from_table",
    "project",
    "record_workload",
    "replay_table",
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

PROJECTION_PASSES = {
    # (full-size reads, full-size writes) per call, from kernels.projection's NumPy path:
    "project_l1inf_bilevel": (4, 2),  # max + min (2 reads); clip: minimum (r, w) then maximum (r, w)
    "project_l12_bilevel": (3, 2),    # abs (r, w), ℓ2 reduce (r), rescale multiply (r, w)
    # multilevel: abs (r, w), inner-norm reduce (r), innermost ball (r, w), astype (r, w), copysign (2 r, w)
    "project_multilevel": (6, 4),
}

_GENERIC = {
    "nvidia", "amd", "intel", "corporation", "gpu", "cpu", "processor", "tensor", "core", "cores", "graphics",
    "with", "radeon", "genuine", "r", "tm", "hbm", "hbm2", "hbm2e", "hbm3", "hbm3e", "pcie", "sxm", "sxm4",
    "sxm5", "nvl", "gb", "mig",
}
_FORM_FACTORS = {"pcie", "sxm", "sxm4", "sxm5", "nvl"}
_CPU_WORDS = {"cpu", "numpy"}


def group_name(family: str, dtype: str) -> str:
    """A calibration group's name: family and dtype ('gemm bfloat16'); the family alone without a dtype."""
    return f"{family} {dtype}".strip()


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
        return group_name(self.family, self.row.get("dtype", ""))


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
    dtype = arch_dtype(row)
    params = json_field(row, "params")
    if family == "projection":
        shapes = json_field(row, "shapes")
        shape = positive_ints(row, "shapes", shapes.get("y") or shapes.get("t"), "'y' (the projected array's shape)")
        size = math.prod(shape) * np.dtype(row["dtype"]).itemsize
        reads, writes = PROJECTION_PASSES[kernel]
        return family, Streaming(kernel, reads * size, writes * size, 2 * size, reads + writes), reads + writes
    m, n, k = (int(need(row, c)) for c in ("m", "n", "k"))
    if family == "gemm":
        count = positive_ints(row, "params", [params.get("batch", 1)], "'batch'")[0]
        dense = Gemm(kernel, m, n, k, dtype, count=count)
        gemm = on_threads(dense, row, params, arch)
        if row.get("backend") != "numpy":
            return family, gemm, 1
        pack = [p for p in [pack_pass(dense, np.dtype(row["dtype"]).itemsize, params.get("blas_core"))] if p]
        if params.get("cold_bytes") is not None:
            cold = positive_ints(row, "params", [params["cold_bytes"]], "'cold_bytes'")[0]
            return COLD, [gemm, operand_fetch(kernel, input_bytes(row, arch), cold), *pack], count
        fetch = batch_fetch(row, m, n, k, count, arch)  # NumPy calls BLAS once per matrix of a batch
        if fetch:
            return BATCHED, [gemm, fetch, *pack], count
        return family, ([gemm, *pack] if pack else gemm), count
    if family in ("nm_spmm", "tasd"):
        if family == "nm_spmm":
            workload, launches = Gemm(kernel, n, m, k, dtype, weight_sparsity=Sparsity.parse(need(row, "pattern"))), 1
        else:
            workload, launches = _tasd_workload(arch, kernel, n, m, k, dtype, need(row, "tasd_series"))
        if params.get("runtime_compress") or params.get("cpu_path") == "decompress_blas" or (
                row.get("backend") == "numpy" and gather_plans(params, family)):
            return as_run(row, params, family, m, n, k, dtype, workload, launches, arch)
        if family == "tasd" and row.get("backend") == "numpy" and params.get("cpu_path") == "gather_gemm":
            family = TASD_GATHER
        return family, workload, launches
    factors = params.get("factors")
    if not isinstance(factors, list) or not factors:
        raise ReplayError(f"trace record {kernel!r}: params has no 'factors' list (the Kron factor shapes)")
    factors = [positive_ints(row, "params", f, "'factors' entry") for f in factors]
    fused = kernel.endswith("fused")
    if row.get("backend") == "numpy":
        return (family, *kron_as_run(row, params, kernel, fused, m, factors, dtype, arch))
    layer = KronMatmul(kernel, m, tuple(tuple(f) for f in factors), dtype, fused=fused)
    return family, layer, (len(factors) if not fused else 1)


def replay_table(table: pa.Table, arch: ArchConfig, center=statistics.median) -> tuple[list[Item], list[Projection]]:
    """Each configuration of ``table`` (:func:`items_from_table`) and its projection on ``arch``, index for index."""
    items = items_from_table(table, arch, center)
    return items, [project(arch, it.workload, it.working_set) for it in items]


def items_from_table(table: pa.Table, arch: ArchConfig, center=statistics.median) -> list[Item]:
    """Merge repeated rows per configuration by ``center`` (:func:`~accelsim.replay.traces.merge_runs`: its key's
    ``shapes`` tells apart projections, whose m, n, k are null) and map each to a workload.

    Items come sorted by their key, so ids and splits do not depend on file order.
    """
    merged = merge_runs(table, center)
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
        cycles = dyn = 0.0
        for lvl, share in streaming_levels(arch, workload.working_set):
            cycles += share * (workload.bytes_read / lvl.bandwidth
                               + workload.bytes_written / (lvl.write_bandwidth or lvl.bandwidth)
                               + workload.bytes_indexed / (lvl.indexed_bandwidth or lvl.bandwidth)
                               + workload.bytes_grouped / (lvl.grouped_bandwidth or lvl.bandwidth))
            dyn += share * ((workload.bytes_read + workload.bytes_indexed + workload.bytes_grouped) * lvl.read_pj_per_byte
                            + workload.bytes_written * lvl.write_pj_per_byte)
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
    if item.family == COLD:
        return "dense, operands read cold"
    if item.family == "gemm":
        return "dense"
    if isinstance(w, list) and any(isinstance(p, Streaming) for p in w):
        path = json_field(item.row, "params").get("cpu_path")
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

