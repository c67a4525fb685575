"""Analysis of kernel traces: per-kernel summaries, run-to-run comparison, roofline placement.

Reads the parquet traces written by :mod:`kernels.trace` (and validated there). Rows measuring
the same thing (kernel, backend, device, dtype, shape, pattern) are merged by the median of
their per-call medians, so re-running a suite into the same directory sharpens, not skews.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict

import pyarrow as pa

from accelsim.checks import MAX_ENERGY_J, MAX_POWER_W, MAX_RATE, MAX_TIME_S, MIN_RATE, MIN_TIME_S, ensure_finite
from kernels.errors import InputError
from kernels.trace import read_traces

__all__ = [
    "CPU_GBS_ESTIMATE",
    "CPU_TFLOPS_PER_CORE_ESTIMATE",
    "KEY",
    "merge_runs",
    "compare",
    "device_peaks",
    "load",
    "plot_roofline",
    "roofline",
    "summarize",
]

KEY = ("kernel", "backend", "device_name", "dtype", "m", "n", "k", "shapes", "pattern", "tasd_series", "params")
"""Columns identifying one measured configuration."""

CPU_TFLOPS_PER_CORE_ESTIMATE = 2.5e9 * 32 / 1e12
"""fp32 peak per x86 core: 2.5 GHz x 2 AVX2 FMA units x 8 lanes x 2 FLOP. A rough default; pass --peak-tflops."""
CPU_GBS_ESTIMATE = 20.0
"""Sustained DRAM bandwidth of a small server slice or laptop, GB/s. A rough default; pass --peak-gbs."""

# Datasheet peaks (dense, no sparsity), TFLOP/s by dtype class and GB/s. fp32 is the CUDA-core
# rate: CuPy's matmul does not enable TF32 by default. Keys are matched as substrings of the name.
_GPU_PEAKS = {
    "H200": {"float32": 67.0, "float16": 989.0, "gbs": 4800.0},
    "H100 PCIe": {"float32": 51.0, "float16": 756.0, "gbs": 2000.0},
    "H100": {"float32": 67.0, "float16": 989.0, "gbs": 3350.0},
    "A100": {"float32": 19.5, "float16": 312.0, "gbs": 2039.0},
    "L4": {"float32": 30.3, "float16": 121.0, "gbs": 300.0},
}


#: Range of each physical trace column the replay reads: column -> (low, high, unit, the constants' names).
#: A value outside is no measurement and overflows the rates, fits and sums derived from it.
_BOUNDS = {
    **{c: (MIN_TIME_S, MAX_TIME_S, "s", "MIN_TIME_S, MAX_TIME_S") for c in ("time_median_s", "time_min_s", "time_max_s")},
    "energy_j": (0.0, MAX_ENERGY_J, "J", "MAX_ENERGY_J"),
    "energy_window_s": (0.0, MAX_TIME_S, "s", "MAX_TIME_S"),
    "idle_power_w": (0.0, MAX_POWER_W, "W", "MAX_POWER_W"),
}


def load(path: str | os.PathLike) -> pa.Table:
    """Read and validate every trace under ``path`` (see :func:`kernels.trace.read_traces`); times,
    energies and powers outside :data:`_BOUNDS` (:mod:`accelsim.checks`) are refused."""
    table = read_traces(path)
    for column, (lo, hi, unit, names) in _BOUNDS.items():
        values = table.column(column).to_pylist()
        bad = next((i for i, v in enumerate(values) if v is not None and not lo <= v <= hi), None)
        if bad is not None:
            raise InputError(f"{path}: row {bad} ({table.column('kernel')[bad]}): {column} = {values[bad]!r} {unit} is "
                             f"outside {lo:g}..{hi:g} {unit} (accelsim.checks.{names})")
    return table


def merge_runs(table: pa.Table) -> dict[tuple, dict]:
    """Rows grouped by configuration (:data:`KEY`), in first-seen order: the first row of each, with
    ``time_s`` and ``energy_j`` the medians over its runs and ``runs`` their number."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in table.to_pylist():
        groups[tuple(row[c] for c in KEY)].append(row)
    merged = {}
    for key, rows in groups.items():
        first = dict(rows[0])
        first["time_s"] = statistics.median(r["time_median_s"] for r in rows)
        energies = [r["energy_j"] for r in rows if r["energy_j"] is not None]
        first["energy_j"] = statistics.median(energies) if energies else None
        first["runs"] = len(rows)
        merged[key] = first
    return merged


def _dense_key(row: dict) -> tuple:
    return ("gemm", row["backend"], row["device_name"], row["dtype"], row["m"], row["n"], row["k"], None, None)


def summarize(table: pa.Table) -> list[dict]:
    """One dict per configuration: time, achieved TFLOP/s (dense-equivalent and effectual), GB/s, speedup.

    ``speedup_vs_dense`` is the dense ``gemm`` time at equal backend, device, dtype and shape over
    this row's time; null when no such dense row was recorded.
    """
    merged = merge_runs(table)
    dense = {_dense_key(r): r["time_s"] for r in merged.values() if r["kernel"] == "gemm"}
    out = []
    for r in sorted(merged.values(), key=lambda r: tuple(str(r[c]) for c in KEY)):
        t = r["time_s"]
        d = dense.get(_dense_key(r))
        out.append(
            {
                "kernel": r["kernel"],
                "backend": r["backend"],
                "device": r["device_name"],
                "dtype": r["dtype"],
                "m": r["m"],
                "n": r["n"],
                "k": r["k"],
                "pattern": r["pattern"],
                "tasd_series": r["tasd_series"],
                "time_s": t,
                "tflops_dense_equiv": r["flops_dense"] / t / 1e12 if r["flops_dense"] and t > 0 else None,
                "tflops_effectual": r["flops_effectual"] / t / 1e12 if r["flops_effectual"] and t > 0 else None,
                "gbs": r["bytes_min"] / t / 1e9 if r["bytes_min"] and t > 0 else None,
                "speedup_vs_dense": d / t if d is not None and t > 0 else None,
                "energy_j": r["energy_j"],
                "runs": r["runs"],
            }
        )
    return out


def compare(a: pa.Table, b: pa.Table) -> list[dict]:
    """Configurations present in both ``a`` and ``b``: times and ``speedup`` = time_a / time_b.

    Device name is not part of the match, so two GPUs (or a GPU and a CPU) can be compared.
    """
    key = tuple(c for c in KEY if c not in ("device_name", "backend"))

    def index(t):
        return {tuple(r[c] for c in key): r for r in merge_runs(t).values()}

    ia, ib = index(a), index(b)
    common = sorted(set(ia) & set(ib), key=lambda k: tuple(str(x) for x in k))
    if not common:
        raise InputError("traces compare: the two traces share no (kernel, dtype, shape, pattern) configuration")
    return [
        {
            "kernel": ia[k]["kernel"],
            "dtype": ia[k]["dtype"],
            "m": ia[k]["m"],
            "n": ia[k]["n"],
            "k": ia[k]["k"],
            "pattern": ia[k]["pattern"],
            "device_a": ia[k]["device_name"],
            "device_b": ib[k]["device_name"],
            "time_a_s": ia[k]["time_s"],
            "time_b_s": ib[k]["time_s"],
            "speedup": ia[k]["time_s"] / ib[k]["time_s"] if ib[k]["time_s"] > 0 else None,
        }
        for k in common
    ]


def device_peaks(device_name: str | None, backend: str, dtype: str, cores: int | None = None) -> tuple[float, float, str]:
    """``(peak TFLOP/s, peak GB/s, source)`` for a device: datasheet table for known GPUs, else the CPU estimate."""
    if backend == "cupy":
        for name, peaks in _GPU_PEAKS.items():
            if name.lower() in (device_name or "").lower():
                cls = "float16" if dtype in ("float16", "bfloat16") else "float32"
                return peaks[cls], peaks["gbs"], f"datasheet {name} {cls}"
        raise InputError(
            f"traces roofline: no peak table for GPU {device_name!r}; pass --peak-tflops and --peak-gbs"
        )
    cores = cores or os.cpu_count() or 1
    return cores * CPU_TFLOPS_PER_CORE_ESTIMATE, CPU_GBS_ESTIMATE, f"CPU estimate ({cores} cores)"


def roofline(table: pa.Table, peak_tflops: float | None = None, peak_gbs: float | None = None) -> dict:
    """Place each configuration under its roof: intensity = effectual FLOPs / minimum bytes.

    Peaks come from ``peak_tflops``/``peak_gbs`` when given, else :func:`device_peaks` of the
    first row's device and dtype. ``fraction_of_roof`` = achieved / min(peak, intensity x bandwidth).
    """
    for name, v in (("--peak-tflops", peak_tflops), ("--peak-gbs", peak_gbs)):
        if v is not None and not MIN_RATE <= ensure_finite(v, f"traces roofline: {name}") <= MAX_RATE:
            raise InputError(f"traces roofline: {name} must be in {MIN_RATE:g}..{MAX_RATE:g} "
                             f"(accelsim.checks.MIN_RATE, MAX_RATE), got {v}")
    rows = summarize(table)
    if not rows:
        raise InputError("traces roofline: the traces hold no rows to place under a roof")
    devices = sorted({f"{r['device']} ({r['backend']})" for r in rows})
    if len(devices) > 1:
        raise InputError(f"traces roofline: the traces come from {len(devices)} devices ({', '.join(devices)}); "
                         "one roof fits one device, so pass one device's traces")
    first = rows[0]
    if peak_tflops is None or peak_gbs is None:
        pt, pb, source = device_peaks(first["device"], first["backend"], first["dtype"])
        peak_tflops = peak_tflops or pt
        peak_gbs = peak_gbs or pb
    else:
        source = "user"
    points = []
    for r in rows:
        tf = r["tflops_effectual"]
        gbs = r["gbs"]
        if tf is None or gbs is None or gbs == 0:
            continue
        intensity = tf * 1e3 / gbs  # FLOP per byte
        roof = min(peak_tflops, intensity * peak_gbs / 1e3)
        points.append({**r, "intensity": intensity, "roof_tflops": roof, "fraction_of_roof": tf / roof})
    return {"peak_tflops": peak_tflops, "peak_gbs": peak_gbs, "peak_source": source, "points": points}


def plot_roofline(result: dict, out) -> None:
    """Write a log-log roofline PNG (matplotlib Agg): the roof and one marker per configuration."""
    # Imported here: matplotlib is slow to import and only plots need it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from kernels.io import atomic_path

    pts = result["points"]
    if not pts:
        raise InputError("traces roofline: no rows with FLOPs and bytes to plot")
    ai = np.array([p["intensity"] for p in pts])
    lo, hi = max(ai.min() / 4, 1e-3), ai.max() * 4
    x = np.geomspace(lo, hi, 200)
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.loglog(x, np.minimum(result["peak_tflops"], x * result["peak_gbs"] / 1e3), "k-", label="roof")
    for kernel in sorted({p["kernel"] for p in pts}):
        sel = [p for p in pts if p["kernel"] == kernel]
        ax.loglog([p["intensity"] for p in sel], [p["tflops_effectual"] for p in sel], "o", label=kernel)
    ax.set_xlabel("arithmetic intensity (effectual FLOP / minimum byte)")
    ax.set_ylabel("achieved TFLOP/s (effectual)")
    ax.set_title(f"roofline: {result['peak_tflops']:.3g} TFLOP/s, {result['peak_gbs']:.3g} GB/s ({result['peak_source']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:  # also when the write fails (a full disk)
        plt.close(fig)
