"""Calibrate the CPU at hand in one go (``accelsim calibrate``): measure, write its arch, record traces, fit.

A calibration directory (:mod:`accelsim.replay.calibration_dir`) holds three files:

- ``arch.yaml``: a ``tensor_core``-kind CPU arch of the schema of ``arch_configs/cpu_numpy.yaml``
  whose clock, units, caches and memory size come from the OS (:mod:`accelsim.replay.cpu_report`; cache sizes
  checked by copies, :mod:`accelsim.replay.cache_probe`) and whose rates come from microbenchmarks
  (:mod:`kernels.trace.microbench`): bandwidths are the fastest copies (other work on the box only ever slows a
  copy down, and the fastest stayed within 3-11 % over five calibrations), MAC rates the median of large square
  matmuls (:func:`~accelsim.replay.box_state.gemm_peak`: their fastest run is an extreme a second calibration
  does not meet again); the fit bounds every efficiency by 1 against them; every number carries a comment naming
  its source;
- ``traces/``: a small spanning set of kernel runs (:mod:`accelsim.replay.calibration_set`: dense GEMM from tiny
  to 1024³ at float32 and float64, some timed cold as a run's layers find their inputs, N:M SpMM and TASD at the
  shapes of a small transformer, layers compressing their activation at run time as ``accelsim run`` does), recorded as
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
(:func:`~accelsim.replay.calibration_dir.check_same_device`): the fitted efficiencies describe one machine running
one BLAS setup.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from accelsim.errors import AccelsimError
from accelsim.model.arch import load_arch
from accelsim.model.workload import Gemm
from accelsim.replay import calibration_set as cset
from accelsim.replay.box_state import (
    GEMM_SIZES, NEAR_MEDIAN, PeakSampler, gemm_peak, pass_buffers, pass_center, pass_spread, steady_passes,
)
from accelsim.replay.cache_probe import describe
from accelsim.replay.calibrate import Params, fit_groups, fitted_params, split, validate
from accelsim.replay.calibration_dir import ARCH_FILE, CALIBRATION_FILE, FORMAT, TRACES_DIR, VERSION
from accelsim.replay.cpu_report import l1_tile, near_copy_lines, os_report
from accelsim.replay.probe_power import fit_power, kept_rows
from accelsim.replay.project import project

__all__ = [
    "BENCH_REPEATS",
    "HELD_OUT_FRACTION",
    "arch_yaml",
    "calibrate_device",
    "copy_buffers",
    "fit_saved",
    "last_level_bytes",
    "measure",
    "net_peaks",
    "refit_saved",
    "spread_note",
]

HELD_OUT_FRACTION = 0.5
BENCH_REPEATS = 21
"""Timed runs per microbenchmark, at least (the median is kept): on a shared 2-vCPU box one 1024³ matmul
ranged 60..130 GFLOP/s within a second, so 5 samples gave medians 35 % apart."""
_KIB = 1024


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
    saying where it came from. Each MAC rate is the peak GEMM's net of its pack pass (:func:`net_peaks`)."""
    gross = _arch_text(report, meas, name, {})
    return _arch_text(report, meas, name, net_peaks(load_arch(yaml.safe_load(gross)), meas))


def net_peaks(arch, meas: dict) -> dict[str, tuple[float, float, float]]:
    """Per dtype ``(GFLOP/s, pack s, measured s)``: the rate of the peak size's multiply alone, its measured time
    (:func:`~accelsim.replay.box_state.gemm_peak`) less BLAS's pack pass over its operands as ``arch`` (whose MAC
    rates are the gross ones) prices it (:func:`~accelsim.replay.numpy_run.pack_pass`). The replay adds that pass to
    every dense GEMM, the peak's own included, so a gross peak counts it twice: on the 2-vCPU Xeon VM 1024³ came out
    +7-8 % with the ``gemm`` group's both scales at their bounds; net (its pass 0.86-0.91 ms of 7.0-15.0 ms), the
    largest cases came within -0.2..+2.4 % and the held-out MAPE 1-2 points lower (BENCHMARKS.md "Thirty-first" and
    "Thirty-second slice"). Where the pass as priced takes half the measured time or more, copies measured far slower
    than the GEMM ran, the gross rate is kept."""
    from accelsim.replay.numpy_run import PASS_RESIDENT, pack_pass

    out = {}
    for dtype, short in (("float32", "fp32"), ("float64", "fp64")):
        n, rate = meas["gemm_n"][dtype], gemm_peak(meas["gemm_gflops"][dtype])
        t = 2 * n**3 / (rate * 1e9)
        pack = project(arch, pack_pass(Gemm("peak", n, n, n, short), np.dtype(dtype).itemsize), PASS_RESIDENT).memory_s
        out[dtype] = (rate * t / (t - pack) if _taken_off(pack, t) else rate, pack, t)
    return out


def _taken_off(pack: float, took: float) -> bool:
    """Whether :func:`net_peaks` takes a pack pass of ``pack`` seconds off a peak GEMM that took ``took``."""
    return pack < took / 2


def _arch_text(report: dict, meas: dict, name: str, net: dict) -> str:
    """:func:`arch_yaml`'s text with the MAC rates of ``net`` (:func:`net_peaks`; empty: the gross peaks)."""
    ghz = report["clock_mhz"] / 1000.0
    units = report["blas_threads"]
    g = meas["gemm_gflops"]
    macs = {d: (net[d][0] if net else gemm_peak(g[d])) / 2 / ghz / units for d in ("float32", "float64")}
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
        "# median large square matmul net of its pack pass, bandwidths the fastest copy; a calibrated compute",
        "# efficiency near 1 means 'as fast as a large square matmul's multiply'.",
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
        pack, took = (f"{net[d][1] * 1e3:.3g}", f"{net[d][2] * 1e3:.3g} ms") if net else ("", "")
        less = "" if not net else (
            f" less its pack pass ({pack} of {took}, as the replay prices it beside every GEMM) = {net[d][0]:.4g} "
            f"GFLOP/s," if _taken_off(*net[d][1:]) else f" its pack pass as priced ({pack} of {took}) not taken off,")
        lines.append(f"    {short}: {macs[d]:.6g}  # measured {gemm_peak(g[d]):.4g} GFLOP/s "
                     f"({spread_note(g[d], kept='median')}) of a {meas['gemm_n'][d]}^2 matmul, the fastest median "
                     f"of sizes {'/'.join(map(str, GEMM_SIZES))},{less} / 2 / clock / units")
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
    sampler = None if "gemm_gflops" in meas else PeakSampler(meas["copy_bytes"], -(-BENCH_REPEATS // cset.PASSES))
    rec = Recorder(out / TRACES_DIR)
    with rec:
        last = last_level_bytes(meas.get("caches", report["caches"]))
        cases = cases if cases is not None else cset.calibration_cases(
            np, cold_side=pass_buffers(meas["copy_bytes"])["dram"], last_level=last,
            largest_batch=meas["copy_bytes"]["dram"])
        passes = cset.record(rec, cases, start + budget_s, report["blas_threads"], clock=clock,
                             before_pass=sampler and sampler.round, core=report.get("blas_core"))
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
