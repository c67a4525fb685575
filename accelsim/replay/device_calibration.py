"""Calibrate the CPU at hand in one go (``accelsim calibrate``): measure, write its arch, record traces, fit.

A calibration directory holds three files:

- ``arch.yaml``: a ``tensor_core``-kind CPU arch of the schema of ``arch_configs/cpu_numpy.yaml``
  whose clock, units, caches and memory size come from the OS (:mod:`accelsim.replay.cpu_report`; cache sizes
  checked by copies, :mod:`accelsim.replay.cache_probe`) and whose rates come from microbenchmarks
  (:mod:`kernels.trace.microbench`): bandwidths are the fastest copies (other work on the box only ever slows a
  copy down, and the fastest stayed within 3-11 % over five calibrations), MAC rates the median of large square
  matmuls (:func:`~accelsim.replay.box_state.gemm_peak`: their fastest run is an extreme a second calibration
  does not meet again); the fit bounds every efficiency by 1 against them; every number carries a comment naming
  its source;
- ``traces/``: a small spanning set of kernel runs (dense GEMM from tiny to 1024³ at float32 and
  float64, some timed cold as a run's layers find their inputs, N:M SpMM and TASD at the shapes of a small
  transformer, layers compressing their activation at run time as ``accelsim run`` does), recorded as
  ``accelsim kernels run`` records them, each with the BLAS thread count in ``params.blas_threads``; every pass
  timed, of whatever state of the box;
- ``calibration.json``: the :class:`~accelsim.replay.calibrate.Params` fitted on those configurations
  against ``arch.yaml`` (global, per family, per family and dtype) on the passes of one state
  (:func:`~accelsim.replay.box_state.steady_passes`, ``passes.kept``), the held-out split and its MAPE, the
  device name, the thread count, the box's state (``gemm_probe_gflops``), which ``validate`` compares
  with the run's (:func:`accelsim.replay.box_state.state_notes`), and how its times followed the probe over every
  pass (``probe_power``, :mod:`accelsim.replay.probe_power`), by which ``validate`` and ``run --calibration``
  price a run made in another state.

A calibration applies only to traces of the same device name and thread count
(:func:`check_same_device`): the fitted efficiencies describe one machine running one BLAS setup.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from accelsim.errors import AccelsimError
from accelsim.replay.cache_probe import describe
from accelsim.replay.cpu_report import l1_tile, near_copy_lines, os_report
from accelsim.replay.calibrate import Params, fit_groups, fitted_params, split, validate
from accelsim.replay.box_state import (
    GEMM_SIZES, NEAR_MEDIAN, PeakSampler, gemm_peak, pass_buffers, pass_center, pass_spread, steady_passes,
)
from accelsim.replay.labels import params_of
from accelsim.replay.probe_power import MAX_POWER, fit_power, kept_rows

__all__ = [
    "ARCH_FILE",
    "CALIBRATION_FILE",
    "FORMAT",
    "TRACES_DIR",
    "CalibrationDirError",
    "arch_yaml",
    "calibrate_device",
    "calibration_cases",
    "case_repeats",
    "check_same_device",
    "is_calibration_dir",
    "load_calibration_dir",
    "measure",
    "os_report",
    "refit_saved",
    "spread_note",
]

ARCH_FILE = "arch.yaml"
CALIBRATION_FILE = "calibration.json"
TRACES_DIR = "traces"
FORMAT = "accelsim.cpu_calibration"
VERSION = 1
SUITE = "calibrate"
HELD_OUT_FRACTION = 0.5
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
BENCH_REPEATS = 21
"""Timed runs per microbenchmark, at least (the median is kept): on a shared 2-vCPU box one 1024³ matmul
ranged 60..130 GFLOP/s within a second, so 5 samples gave medians 35 % apart."""
PASSES = 18
"""Passes over the trace cases at most, while the budget lasts (40-50 s on the 2-vCPU EPYC). With 5, five
back-to-back two-thread calibrations fitted a ``batched_gemm`` bandwidth fraction of 0.59-0.69 (17 %); with 9,
alternating with them, 0.60-0.64 (7 %). Ten calibrations of 9 refitted in consecutive pairs, as five of 18, kept
every parameter but ``threaded_call_s`` within 5.6 % (one thread) and 3.5 % (two; 10.3 % with 9). Of 16 made with
18 at one thread, the 13 made on a steady box kept every one within 10 % in 75 of their 78 pairs (BENCHMARKS.md
"Ninth slice")."""
_KIB = 1024


class CalibrationDirError(AccelsimError):
    """A calibration directory that cannot be used: missing files, another format, another device."""


def copy_buffers(report: dict) -> dict[str, int]:
    """Bytes per copy side per level: a quarter of what one cache instance holds (both sides fit in it; the
    size :func:`~accelsim.replay.cache_probe.effective_caches` found, else the OS's), and DRAM at 8 × the last
    level's total (at least 64 MiB, at most an eighth of memory)."""
    out = {}
    for c in report["caches"]:
        out[f"l{c['level']}"] = c.get("effective_size", c["size"]) // 4
    last = last_level_bytes(report["caches"])
    cap = (report["memory_bytes"] or 8 * _KIB**3) // 8
    out["dram"] = int(min(max(8 * last, 64 * _KIB**2), cap))
    return out


def last_level_bytes(caches: list[dict]) -> int:
    """Bytes the last cache level holds over all its instances (what the copies found, else the OS's; 8 MiB
    where the OS reports no cache)."""
    return max([c.get("effective_total", c["total"]) for c in caches], default=8 * _KIB**2)


PROBE_REPEATS = 5
"""Copies timed per size while :func:`measure` checks the caches (the fastest is kept; at the last level's edge, the
slowest decides whether the level held it: :data:`~accelsim.replay.cache_probe.PLATEAU`). On the Xeon VM 15 found the L3
holding 60 MiB in 3 of 10 calibrations, as 5 did: in those minutes the 30 MiB copies did not spill once in 15."""


def measure(report: dict, repeats: int = BENCH_REPEATS) -> dict:
    """What one calibration measures before its passes: the caches it can count on (the OS's sizes checked by
    copies, :func:`~accelsim.replay.cache_probe.effective_caches`), bytes per copy side per level and seconds per
    tiny call (median and spread); the peaks come from a :class:`PeakSampler` spread over the calibration."""
    from accelsim.replay.cache_probe import effective_caches
    from kernels.trace.microbench import bandwidth_gbs, call_overhead_s, near_copy_gbs

    copies = functools.cache(lambda side: bandwidth_gbs(side, PROBE_REPEATS))  # each size timed once
    caches = effective_caches(report["caches"], lambda side: copies(side)["max"], lambda side: copies(side)["min"])
    return {"caches": caches, "copy_bytes": copy_buffers({**report, "caches": caches}),
            "call_overhead_s": call_overhead_s(repeats), "near_copy_gbs": near_copy_gbs(PROBE_REPEATS),
            "load_average_1min": os.getloadavg()[0]}


def spread_note(r: dict, fmt: str = ".3g", kept: str = "max") -> str:
    """An arch comment's account of a measured rate (:func:`kernels.trace.microbench.spread`): how many runs,
    and the others beside the one the value is taken from (``kept``: ``max``, the fastest, or ``median``)."""
    if kept == "median":
        return f"median of {r['repeats']}, fastest {r['max']:{fmt}}, slowest {r['min']:{fmt}}"
    return f"fastest of {r['repeats']}, median {r['median']:{fmt}}, slowest {r['min']:{fmt}}"


# Values not measured here, each written with its source (the first, hand-written cpu_numpy.yaml's).
_SPARSITY = ("  sparsity:  # kernels.nm_spmm's NumPy path multiplies only kept values: any N:M pattern, in software\n"
             "    patterns: ['1:4', '2:4', '3:4', '1:8', '2:8', '3:8', '4:8', '5:8', '6:8', '7:8']\n"
             "    operands: [weight]\n")
_PJ = {"dram": (120.0, "DDR ~15 pJ/bit with I/O"),
       3: (2.5, "Horowitz ISSCC 2014, 1 MB SRAM 100 pJ/64 bit x 0.2 (45 -> 5 nm)"),
       2: (0.5, "Horowitz ISSCC 2014, 32 KiB SRAM 20 pJ/64 bit x 0.2")}


def arch_yaml(report: dict, meas: dict, name: str = "cpu_calibrated") -> str:
    """The arch config text: OS-reported sizes (as the copies found them), measured rates, each with a comment
    saying where it came from."""
    ghz = report["clock_mhz"] / 1000.0
    units = report["blas_threads"]
    g = meas["gemm_gflops"]
    macs = {d: gemm_peak(g[d]) / 2 / ghz / units for d in ("float32", "float64")}
    levels = [("dram", report["memory_bytes"], "/proc/meminfo MemTotal", _PJ["dram"])]
    levels += [(f"l{c['level']}", c.get("effective_size", c["size"]) * (n := min(units, c["total"] // c["size"])),
                f"/sys/devices/system/cpu/cpu0/cache: {c['size'] // _KIB} KiB shared by CPUs {c['shared_cpus']}, "
                f"{c['total'] // c['size']} over {report['cpus']} CPUs, x{n} for {units} BLAS threads"
                + ("; " + describe(c) if "probe" in c else ""),
                _PJ.get(c["level"], _PJ[2])) for c in meas.get("caches", report["caches"])]
    lines = [
        f"# Written by `accelsim calibrate` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC for the NumPy backend",
        f"# on {report['device_name']} ({report['cpus']} CPUs, BLAS on {units} threads), load average "
        f"{meas['load_average_1min']:.2f} while measuring.",
        "# Peaks are what NumPy's BLAS reaches here (kernels.trace.microbench), not datasheet numbers: MAC rates the",
        "# median large square matmul, bandwidths the fastest copy; a calibrated compute efficiency near 1 means",
        "# 'as fast as a large square matmul'.",
        f"# Per-call overhead of a 4x4 matmul: {meas['call_overhead_s']['median'] * 1e6:.3g} us (median of "
        f"{meas['call_overhead_s']['repeats']}, fastest {meas['call_overhead_s']['min'] * 1e6:.3g}, slowest "
        f"{meas['call_overhead_s']['max'] * 1e6:.3g}); the fit's launch_overhead_s is its counterpart.",
        *near_copy_lines(meas),
        "# Energies are literature estimates, each naming its source: no CPU energy is measured.",
        "version: 1",
        f"name: {name}",
        f"description: {json.dumps('CPU ' + report['device_name'] + ' running the NumPy backend, calibrated')}",
        f"clock_ghz: {ghz:.6g}  # /proc/cpuinfo 'cpu MHz' {report['clock_mhz']:g}",
        "compute:",
        "  kind: tensor_core",
        f"  units: {units}  # threads BLAS runs with (threadpoolctl); the OS reports {report['cpus']} CPUs",
        "  macs_per_cycle:",
    ]
    for d, short in (("float32", "fp32"), ("float64", "fp64")):
        lines.append(f"    {short}: {macs[d]:.6g}  # measured {gemm_peak(g[d]):.4g} GFLOP/s "
                     f"({spread_note(g[d], kept='median')}) of a {meas['gemm_n'][d]}^2 matmul, the fastest median "
                     f"of sizes {'/'.join(map(str, GEMM_SIZES))}, / 2 / clock / units")
    lines += [
        "  tile_m: 4  # not measured: OpenBLAS's SGEMM register tile, 16 (BLAS M) x 4 (BLAS N); NumPy's row-major",
        "  tile_n: 16  # product is BLAS's transposed one, so BLAS M is NumPy's n: 768 8x8x32 products take 2x 8x32x8",
        "  tile_k: 8",
        *([f"  tile_options: [[{t}, {t}, {t}]]  # the BLAS's L1 blocking: A, B slices and C of this cube fit in "
           f"half the {report['l1d_bytes'] // _KIB} KiB L1d (/sys/devices/system/cpu/cpu0/cache), fed from L2"]
          if (t := l1_tile(report.get("l1d_bytes"))) else []),
        "  k_multiple: 1  # not measured: the BLAS micro-kernel runs any K (an unrolled loop and its remainder), so a",
        "  # K-chunk computes only what it holds; padded to the cube, the 1:8 gather path's 32-row GEMMs of depth 48",
        "  # (at 384 wide) were priced a third over, and those calibration cases projected 15-23 % over",
        "  default_dtype: fp32",
        _SPARSITY + f"    compressed_levels: [{', '.join(n for n, *_ in levels)}]",
        "memory:",
    ]
    for lvl, cap, src, pj in levels:
        c = meas["copy_gbs"][lvl]
        lines += [
            f"  - name: {lvl}",
            f"    capacity_bytes: {cap}  # {src}",
            f"    bandwidth: {c['max'] / ghz:.6g}  # measured {c['max']:.4g} GB/s copy (read + write; {spread_note(c)}), "
            f"{meas['copy_bytes'][lvl]} B per side, one thread / clock",
        ]
        where = f"{pass_buffers(meas['copy_bytes'])[lvl]} B, one thread / clock"
        if x := meas["indexed_gbs"].get(lvl):
            lines.append(f"    indexed_bandwidth: {x['max'] / ghz:.6g}  # measured {x['max']:.4g} GB/s of 2:4 scatters "
                         f"({spread_note(x)}; 16 B per element), {where}")
        if x := (meas.get("grouped_gbs") or {}).get(lvl):
            lines.append(f"    grouped_bandwidth: {x['max'] / ghz:.6g}  # measured {x['max']:.4g} GB/s of N:M rank steps "
                         f"({spread_note(x)}; 20 B per fp32 score in groups of 4), {where}")
        lines += [
            f"    read_pj_per_byte: {pj[0]}  # estimate: {pj[1]}",
            f"    write_pj_per_byte: {pj[0]}",
        ]
    lines += [
        "energy:",
        "  mac_pj: {fp32: 0.9, fp64: 2.0}  # estimate: Horowitz ISSCC 2014 fp32 FMA 4.6 pJ x 0.2 (45 -> 5 nm), fp64 ~2x;"
        " excludes instruction overhead",
        f"  leakage_pj_per_cycle: {575.0 * report['cpus']:g}  # estimate: ~1.5 W static per CPU at 2.6 GHz",
        "  technology_nm: 5  # estimate: a Zen 4 EPYC's process",
    ]
    return "\n".join(lines) + "\n"


def calibration_cases(xp, seed: int = 0, cold_side: int | None = None, last_level: int | None = None) -> list:
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
    ``last_level``, the batches beyond the cache grow with it (:func:`batch_cases`)."""
    from kernels.suites.gemm import dense_case
    from kernels.suites.nm_spmm import nm_case
    from kernels.suites.tasd import tasd_case

    f32 = [dense_case(SUITE, m, n, k, "float32", xp, seed) for m, n, k in (
        (32, 32, 32), (512, 384, 384), (64, 64, 64), (512, 1536, 384), (128, 128, 128), (512, 384, 1536),
        (256, 256, 256), (8, 384, 384), (1024, 1024, 1024), (128, 384, 384), (2048, 512, 512), (64, 384, 1536))]
    for i, (c, m, n, k) in enumerate(batch_cases(last_level)):  # early in the order: a short budget still times them
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


def batch_cases(last_level: int | None = None) -> list[tuple[int, int, int, int]]:
    """:data:`BATCH_CASES`, each batch beyond :data:`BATCH_LAST_LEVEL` (fp32) grown by ``last_level`` over it
    where ``last_level`` is larger, so the same six outgrow the cache found. On the 2-vCPU Xeon VM, whose L3 was
    found holding 30 or 60 MiB, only two outgrew 60: the ``batched_gemm`` group then fell back to the global fit
    (bandwidth fraction 0.64-0.67 against its own 1 in the 30 MiB calibrations, 54-56 % apart), which priced
    MiniLM's full-size attention products (75 MB a batch). Grown, the group is fitted in both states: 0.85-1 over
    18 one-thread calibrations, as far apart within one state as across the two, and 1 in all 22 two-thread ones.

    Examples
    --------
    >>> batch_cases(60 * 2**20)[2], batch_cases(16 * 2**20)[2], batch_cases(60 * 2**20)[1]
    ((960, 128, 128, 64), (512, 128, 128, 64), (64, 128, 128, 64))
    """
    grow = max(1.0, (last_level or 0) / BATCH_LAST_LEVEL)
    return [(math.ceil(c * grow) if 4 * c * (m * k + k * n + m * n) > BATCH_LAST_LEVEL else c, m, n, k)
            for c, m, n, k in BATCH_CASES]


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


def _params_dict(p: Params) -> dict:
    return {"launch_overhead_s": p.launch_overhead_s, "threaded_call_s": p.threaded_call_s,
            "compute_scale": p.compute_scale, "memory_scale": p.memory_scale, "source": p.source,
            **{k: v for k, v in p.to_dict().items() if k in ("compute_efficiency", "bandwidth_fraction")}}


def _named(glob: Params, groups: dict) -> dict[str, float]:
    """The fitted values of one fit, named as a calibration document names them."""
    return fitted_params({"global": _params_dict(glob), "groups": {g: _params_dict(p) for g, p in groups.items()}})


def fit_saved(table: pa.Table, arch, report: dict, meas: dict, seed: int = 0) -> dict:
    """The calibration document: Params fitted on every configuration of ``table`` on ``arch``, over the passes
    ``meas["passes"]`` kept (:func:`~accelsim.replay.probe_power.kept_rows`), and the probe power over every pass
    (:func:`~accelsim.replay.probe_power.fit_power`); the held-out MAPE scores the same fit made on half of them
    against the other half; ``param_intervals`` gives each fitted parameter's range over refits on the passes drawn
    again (:func:`~accelsim.replay.resample.param_intervals`).

    The saved fit uses them all: fitted on half, a family's scales rest on three or four configurations, and
    five calibrations of the 2-vCPU EPYC gave an N:M bandwidth fraction of 0.17-0.63."""
    from accelsim.replay.project import replay_table
    from accelsim.replay.resample import INTERVAL, ROUNDS, param_intervals

    every, rounds = table, meas.get("probe_rounds")
    table = kept_rows(table, meas.get("passes"))
    items, projections = replay_table(table, arch, pass_center)
    train, held = split(items, HELD_OUT_FRACTION, seed)
    glob, fams, groups = fit_groups(items, projections, list(range(len(items))))
    scored = validate(table, arch, HELD_OUT_FRACTION, seed, pass_center, (items, projections))
    intervals = param_intervals(items, projections, pass_center, _named, seed=seed)
    return {
        "format": FORMAT, "version": VERSION, "backend": "numpy", "device_name": report["device_name"],
        "blas_threads": report["blas_threads"], "blas_core": report.get("blas_core"), "cpus": report["cpus"],
        "glibc_tunables": report.get("glibc_tunables"), "arch": ARCH_FILE,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "configs": len(items), "split": {"fraction": HELD_OUT_FRACTION, "seed": seed, "train": len(train),
                                         "held_out": len(held), "train_labels": [items[i].label for i in train]},
        "held_out_mape_pct": scored["overall"]["mape_pct"],
        "gemm_probe_gflops": meas.get("probe_gflops"), "gemm_probe_warm_s": meas.get("probe_warm_s"),
        "gemm_probe_rounds": meas.get("probe_rounds"), "passes": meas.get("passes"),
        "pass_merge": f"mean within {NEAR_MEDIAN:g}x of the median",
        "held_out_by_group": {g["family"]: g["mape_pct"] for g in scored["groups"]},
        "pass_spread": pass_spread(items),
        "param_intervals": intervals,
        "probe_power": fit_power(every, meas.get("passes"), rounds),
        "resample": {"rounds": ROUNDS, "percentiles": list(INTERVAL), "draws": "whole passes, with replacement",
                     "seed": seed},
        "global": _params_dict(glob), "families": {f: _params_dict(p) for f, p in fams.items()},
        "groups": {g: _params_dict(p) for g, p in groups.items()},
        "measured": {"call_overhead_s": meas["call_overhead_s"], "gemm_gflops": meas["gemm_gflops"],
                     "gemm_gflops_by_size": meas.get("gemm_gflops_by_size"),
                     "copy_gbs": meas["copy_gbs"], "near_copy_gbs": meas.get("near_copy_gbs"),
                     "load_average_1min": meas["load_average_1min"], "caches": meas.get("caches")},
    }


def refit_saved(doc: dict, table: pa.Table, arch, seed: int = 0) -> dict:
    """A saved calibration ``doc`` fitted again on ``table`` (its traces) with the replay as it is now: what it
    measured kept, the fit and its held-out score made again, ``refitted`` dated. A change to the replay can then be
    judged on calibrations and runs already recorded (``bench/bench_loop_refit.py``)."""
    report = {**{k: doc[k] for k in ("device_name", "blas_threads", "cpus")},
              **{k: doc.get(k) for k in ("blas_core", "glibc_tunables")}}
    meas = {**doc["measured"], **{k: doc.get(f"gemm_{k}") for k in ("probe_gflops", "probe_warm_s", "probe_rounds")},
            "passes": doc.get("passes")}
    return {**fit_saved(table, arch, report, meas, seed), "created": doc["created"],
            "refitted": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def calibrate_device(out: Path, budget_s: float, *, name: str = "cpu_calibrated", bench=None, cases=None,
                     clock=time.monotonic) -> dict:
    """Measure, write ``out/arch.yaml`` (arch ``name``), record ``out/traces`` (every pass) within what is left of
    ``budget_s``, fit and write ``out/calibration.json``. Returns the calibration document. ``bench``/``cases``
    are injectable (tests)."""
    from accelsim.model.arch import load_arch
    from accelsim.replay.traces import load as load_traces
    from kernels.io import atomic_path
    from kernels.trace import Recorder
    from kernels.trace.microbench import keep_freed_memory

    start = clock()
    keep_freed_memory()  # as `accelsim run` does, so both see the same allocator
    report = os_report()
    meas = (bench or measure)(report)
    sampler = None if "gemm_gflops" in meas else PeakSampler(meas["copy_bytes"], -(-BENCH_REPEATS // PASSES))
    rec = Recorder(out / TRACES_DIR)
    with rec:
        last = last_level_bytes(meas.get("caches", report["caches"]))
        cases = cases if cases is not None else calibration_cases(
            np, cold_side=pass_buffers(meas["copy_bytes"])["dram"], last_level=last)
        passes = record(rec, cases, start + budget_s,
                        report["blas_threads"], clock=clock, before_pass=sampler and sampler.round,
                        core=report.get("blas_core"))
        kept = list(range(len(passes)))
        if sampler is not None:
            if not sampler.rounds:
                sampler.round()
            kept = steady_passes(sampler.probe_rounds(), len(passes))
            meas = {**meas, **sampler.summary(kept or None)}
        fitted = sum(len(passes[p]) for p in kept)
        if fitted < 4:
            rec.rows.clear()  # nothing written: the directory stays as it was
            raise AccelsimError(f"--budget-s {budget_s:g}: left time for {fitted} kernel runs after the "
                                "microbenchmarks, too few to fit; raise it (60 s records the whole set)")
    meas["passes"] = {"recorded": len(passes), "kept": kept}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / ARCH_FILE) as tmp:
        tmp.write_text(arch_yaml(report, meas, name))
    arch = load_arch(out / ARCH_FILE)
    doc = fit_saved(load_traces(out / TRACES_DIR), arch, report, meas)
    doc["budget_s"] = budget_s
    doc["arch_name"] = arch.name
    with atomic_path(out / CALIBRATION_FILE) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def is_calibration_dir(path) -> bool:
    return path is not None and Path(path).is_dir()


def load_calibration_dir(path, flag: str = "--calibration") -> tuple:
    """``(arch, calibration, doc)`` of a directory written by :func:`calibrate_device`; ``calibration`` is what
    :func:`~accelsim.replay.network.compare_run` takes. Errors name the option ``flag``."""
    from accelsim.checks import ensure_finite, read_json
    from accelsim.model.arch import load_arch

    path = Path(path)
    cal_file, arch_file = path / CALIBRATION_FILE, path / ARCH_FILE
    for f in (cal_file, arch_file):
        if not f.is_file():
            raise CalibrationDirError(f"{flag} {path}: has no {f.name}; write the directory with "
                                      "`accelsim calibrate --out DIR`")
    doc = read_json(cal_file, f"calibration JSON ({flag})", CalibrationDirError)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise CalibrationDirError(f"{flag} {cal_file}: not a version-{VERSION} {FORMAT} file")

    def params(d, where):
        if not isinstance(d, dict):
            raise CalibrationDirError(f"{flag} {cal_file}: field {where}: expected a mapping")
        vals = {}
        for key in ("launch_overhead_s", "threaded_call_s", "compute_scale", "memory_scale"):
            v = d.get(key)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)
                                  or ensure_finite(v, f"{flag} {cal_file}: field {where}.{key}") < 0):
                raise CalibrationDirError(f"{flag} {cal_file}: field {where}.{key} = {v!r}: expected a "
                                          "non-negative number")
            vals[key] = v
        return Params(vals["launch_overhead_s"] or 0.0, vals["compute_scale"], vals["memory_scale"],
                      f"{d.get('source', where)} ({path})", vals["threaded_call_s"] or 0.0)

    _check_power(doc.get("probe_power"), f"{flag} {cal_file}")
    cal = {"global": params(doc.get("global"), "global"),
           "families": {k: params(v, f"families.{k}") for k, v in (doc.get("families") or {}).items()},
           "groups": {k: params(v, f"groups.{k}") for k, v in (doc.get("groups") or {}).items()},
           "configs": doc.get("configs")}
    return load_arch(arch_file), cal, doc


def _check_power(power, where: str) -> None:
    """Refuse a ``probe_power`` (:func:`~accelsim.replay.probe_power.fit_power`) that is not null or a mapping whose
    ``power`` is a number in [0, :data:`~accelsim.replay.probe_power.MAX_POWER`]."""
    if power is None:
        return
    v = power.get("power") if isinstance(power, dict) else power
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= MAX_POWER:
        raise CalibrationDirError(f"{where}: field probe_power{'.power' if isinstance(power, dict) else ''} = "
                                  f"{v!r}: expected a number in [0, {MAX_POWER:g}]")


def _threads_of(row: dict) -> int | None:
    v = params_of(row).get("blas_threads")
    return int(v) if isinstance(v, int) else None


def check_same_device(doc: dict, table: pa.Table, where: str) -> list[str]:
    """Refuse traces of another device name, or (a CPU calibration: ``doc`` has ``blas_threads``) BLAS thread
    count, than the calibration's; notes otherwise."""
    rows = table.select(["device_name", "params"]).to_pylist()
    names = sorted({r["device_name"] or "" for r in rows})
    cpu = doc.get("blas_threads") is not None
    threads = sorted({t for t in map(_threads_of, rows) if t is not None}) if cpu else []
    mine = repr(doc.get("device_name")) + (f" with {doc.get('blas_threads')} BLAS threads" if cpu else "")
    if names != [doc.get("device_name")] or (threads and threads != [doc.get("blas_threads")]):
        theirs = ", ".join(repr(n) for n in names) + (f" with {'/'.join(map(str, threads))} BLAS threads"
                                                      if threads else "")
        raise CalibrationDirError(f"--calibration {where}: recorded on {mine}, but the traces come from {theirs}; "
                                  "run `accelsim calibrate` on the device that recorded them")
    return [] if threads or not cpu else [f"the traces do not record their BLAS thread count; the calibration's "
                                          f"is {doc.get('blas_threads')}"]
