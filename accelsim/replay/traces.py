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
from accelsim.replay.labels import WORKLOAD_FIELDS, config_fields, params_of, row_label, workload_key
from kernels.errors import InputError
from kernels.trace import read_traces

__all__ = [
    "CPU_GBS_ESTIMATE",
    "CPU_TFLOPS_PER_CORE_ESTIMATE",
    "FRACTION_OF_ROOF",
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
    "H200": {"float32": 67.0, "tfloat32": 494.7, "float16": 989.0, "gbs": 4800.0},
    "H100 PCIe": {"float32": 51.0, "tfloat32": 378.0, "float16": 756.0, "gbs": 2000.0},
    "H100": {"float32": 67.0, "tfloat32": 494.7, "float16": 989.0, "gbs": 3350.0},
    "A100": {"float32": 19.5, "tfloat32": 156.0, "float16": 312.0, "gbs": 2039.0},
    "L4": {"float32": 30.3, "tfloat32": 60.0, "float16": 121.0, "gbs": 300.0},
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


def merge_runs(table: pa.Table, center=statistics.median) -> dict[tuple, dict]:
    """Rows grouped by configuration (:data:`KEY`), in first-seen order: the first row of each, with
    ``time_s`` and ``energy_j`` the ``center`` (median unless given) of its runs, ``runs`` their number and
    ``run_times_s`` each run's time."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in table.to_pylist():
        groups[tuple(row[c] for c in KEY)].append(row)
    merged = {}
    for key, rows in groups.items():
        first = dict(rows[0])
        first["run_times_s"] = [r["time_median_s"] for r in rows]
        first["time_s"] = center(first["run_times_s"])
        energies = [r["energy_j"] for r in rows if r["energy_j"] is not None]
        first["energy_j"] = center(energies) if energies else None
        first["runs"] = len(rows)
        merged[key] = first
    return merged


def _dense_key(row: dict) -> tuple:
    return ("gemm", row["backend"], row["device_name"], row["dtype"], row["m"], row["n"], row["k"], None, None)


def summarize(table: pa.Table) -> list[dict]:
    """One dict per configuration, named by :func:`~accelsim.replay.labels.row_label` (``config``): time,
    achieved TFLOP/s (dense-equivalent and effectual), GB/s, speedup.

    ``speedup_vs_dense`` is the dense ``gemm`` time at equal backend, device, dtype and shape over
    this row's time; null when no such dense row was recorded.
    """
    merged = merge_runs(table)
    dense = {_dense_key(r): r["time_s"] for r in merged.values() if r["kernel"] == "gemm"}
    out = []
    labelled = sorted(((row_label(r), r) for r in merged.values()),
                      key=lambda lr: (str(lr[1]["device_name"]), lr[1]["backend"], lr[0]))
    for label, r in labelled:
        t = r["time_s"]
        d = dense.get(_dense_key(r))
        out.append(
            {
                "config": label,
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


def _index(table: pa.Table) -> dict[str, list[dict]]:
    """Merged configurations of ``table`` by :func:`~accelsim.replay.labels.workload_key`."""
    out: dict[str, list[dict]] = defaultdict(list)
    for r in merge_runs(table).values():
        out[workload_key(r)].append(r)
    return out


def _why_unmatched(row: dict, other: dict[str, list[dict]], side: str) -> str:
    """Why ``row`` has no partner on ``side``: the kernel is absent there, or the nearest configuration
    of that kernel and which of its fields (and ``params`` keys) differ."""
    same_kernel = [r for rows in other.values() for r in rows if r["kernel"] == row["kernel"]]
    if not same_kernel:
        return f"{side} has no {row['kernel']} rows"
    mine = config_fields(row)

    def diff(r):
        theirs = config_fields(r)
        return [f for f in WORKLOAD_FIELDS if mine.get(f) != theirs.get(f)]

    near = min(same_kernel, key=lambda r: (len(diff(r)), row_label(r)))
    theirs = config_fields(near)
    what = ", ".join(f"{f}: {mine.get(f, 'absent')} here, {theirs.get(f, 'absent')} in {side}" for f in diff(near))
    keys_a, keys_b = set(params_of(row)), set(params_of(near))
    keys = "; ".join(f"params keys only {where}: {', '.join(sorted(ks))}" for where, ks in
                     (("here", keys_a - keys_b), (f"in {side}", keys_b - keys_a)) if ks)
    return f"nearest {side} row differs in {what}" + (f" ({keys})" if keys else "")


def compare(a: pa.Table, b: pa.Table) -> dict:
    """Configurations of ``a`` and ``b`` matched on what they computed (:func:`~accelsim.replay.labels.workload_key`).

    Device, backend and implementation are not part of the match, so two GPUs (or a GPU and a CPU)
    can be compared. Returns ``rows`` (times and ``speedup`` = time_a / time_b) and ``unmatched``:
    every configuration of either side without a partner, with the reason (the kernel is absent,
    or which fields and ``params`` keys of the nearest configuration differ); a configuration
    recorded more than once on one side (two devices or impls in one folder) is unmatched too.
    """
    ia, ib = _index(a), _index(b)
    rows, unmatched = [], []
    for key in sorted(set(ia) | set(ib)):
        ra, rb = ia.get(key, []), ib.get(key, [])
        if len(ra) == 1 and len(rb) == 1:
            x, y = ra[0], rb[0]
            rows.append({
                "config": key, "impl_a": config_fields(x).get("impl"), "impl_b": config_fields(y).get("impl"),
                "device_a": x["device_name"], "device_b": y["device_name"],
                "time_a_s": x["time_s"], "time_b_s": y["time_s"],
                "speedup": x["time_s"] / y["time_s"] if y["time_s"] > 0 else None,
                **{c: x[c] for c in ("kernel", "dtype", "m", "n", "k", "pattern", "tasd_series")},
            })
            continue
        for side, mine, other, name in (("a", ra, rb, "B"), ("b", rb, ra, "A")):
            for r in mine:
                if len(mine) > 1:
                    devices = ", ".join(sorted(f"{config_fields(x).get('impl')} on {x['device_name']}" for x in mine))
                    why = f"{len(mine)} rows of this side share it ({devices})"
                elif other:
                    why = f"{len(other)} rows of {name} share it"
                else:
                    why = _why_unmatched(r, ib if side == "a" else ia, name)
                unmatched.append({"side": side, "config": row_label(r), "device": r["device_name"], "reason": why})
    return {"rows": rows, "unmatched": unmatched}


def device_peaks(device_name: str | None, backend: str, dtype: str, cores: int | None = None) -> tuple[float, float, str]:
    """``(peak TFLOP/s, peak GB/s, source)`` for a device: datasheet table for known GPUs (any backend but
    numpy: CuPy, imported XLA tables), else the CPU estimate. TF32 rows (``tfloat32``) use the
    tensor-core TF32 peak; other 32-bit rows the CUDA-core rate."""
    if backend != "numpy":
        for name, peaks in _GPU_PEAKS.items():
            if name.lower() in (device_name or "").lower():
                cls = "float16" if dtype in ("float16", "bfloat16") else "tfloat32" if dtype == "tfloat32" else "float32"
                return peaks[cls], peaks["gbs"], f"datasheet {name} {cls}"
        raise InputError(
            f"traces roofline: no peak table for GPU {device_name!r}; pass --peak-tflops and --peak-gbs"
        )
    cores = cores or os.cpu_count() or 1
    return cores * CPU_TFLOPS_PER_CORE_ESTIMATE, CPU_GBS_ESTIMATE, f"CPU estimate ({cores} cores)"


FRACTION_OF_ROOF = ("fraction_of_roof = achieved effectual TFLOP/s / the roof at the point's intensity, "
                    "min(peak TFLOP/s, intensity x peak GB/s); 1 is on the roof")
"""What the roofline's ``fraction_of_roof`` column means (one line, for captions)."""


def _roof_name(device: str | None, backend: str, source: str) -> str:
    return f"{device} ({backend}): {source}"


def roofline(table: pa.Table, peak_tflops: float | None = None, peak_gbs: float | None = None) -> dict:
    """Place each configuration under its own device's roof: intensity = effectual FLOPs / minimum bytes.

    Each point's peaks are :func:`device_peaks` of its device, backend and dtype (a folder mixing a
    CPU and a GPU judges each against its own roof), or ``peak_tflops``/``peak_gbs`` when given,
    which fit one device only. ``roofs`` lists the roofs used; a point with ``fraction_of_roof``
    above 1 ran faster than its roof allows, so that roof's peak is too low for the device it
    ran on (``notes`` says so, per roof).
    """
    for name, v in (("--peak-tflops", peak_tflops), ("--peak-gbs", peak_gbs)):
        if v is not None and not MIN_RATE <= ensure_finite(v, f"traces roofline: {name}") <= MAX_RATE:
            raise InputError(f"traces roofline: {name} must be in {MIN_RATE:g}..{MAX_RATE:g} "
                             f"(accelsim.checks.MIN_RATE, MAX_RATE), got {v}")
    rows = summarize(table)
    if not rows:
        raise InputError("traces roofline: the traces hold no rows to place under a roof")
    devices = sorted({f"{r['device']} ({r['backend']})" for r in rows})
    user = peak_tflops is not None or peak_gbs is not None
    if user and len(devices) > 1:
        raise InputError(f"traces roofline: --peak-tflops/--peak-gbs give one roof, but the traces come from "
                         f"{len(devices)} devices ({', '.join(devices)}); pass one device's traces or drop them")
    roofs: dict[str, dict] = {}
    points = []
    for r in rows:
        tf = r["tflops_effectual"]
        gbs = r["gbs"]
        if tf is None or gbs is None or gbs == 0:
            continue
        if peak_tflops is not None and peak_gbs is not None:
            pt, pb, source = peak_tflops, peak_gbs, "user"
        else:
            pt, pb, source = device_peaks(r["device"], r["backend"], r["dtype"])
            pt, pb = peak_tflops or pt, peak_gbs or pb
        name = _roof_name(r["device"], r["backend"], source)
        roof_entry = roofs.setdefault(name, {"roof": name, "device": r["device"], "backend": r["backend"],
                                             "peak_tflops": pt, "peak_gbs": pb, "peak_source": source, "above": 0})
        intensity = tf * 1e3 / gbs  # FLOP per byte
        roof = min(pt, intensity * pb / 1e3)
        fraction = tf / roof
        roof_entry["above"] += fraction > 1
        points.append({**r, "intensity": intensity, "roof": name, "roof_tflops": roof, "fraction_of_roof": fraction})
    notes = [f"{e['above']} point(s) lie above the roof {e['roof']} (fraction_of_roof > 1): they ran faster than "
             f"{e['peak_tflops']:.3g} TFLOP/s, {e['peak_gbs']:.3g} GB/s allow, so that peak is too low for this "
             "device; pass --peak-tflops/--peak-gbs of the device's real peak" for e in roofs.values() if e["above"]]
    return {"roofs": list(roofs.values()), "points": points, "notes": notes}


def plot_roofline(result: dict, out) -> None:
    """Write a log-log roofline PNG (matplotlib Agg): one line per roof, one marker per configuration."""
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
    for i, roof in enumerate(result["roofs"]):
        ax.loglog(x, np.minimum(roof["peak_tflops"], x * roof["peak_gbs"] / 1e3), color="k",
                  ls=("-", "--", ":", "-.")[i % 4], label=f"roof {roof['roof']}")
    for kernel in sorted({p["kernel"] for p in pts}):
        sel = [p for p in pts if p["kernel"] == kernel]
        ax.loglog([p["intensity"] for p in sel], [p["tflops_effectual"] for p in sel], "o", label=kernel)
    ax.set_xlabel("arithmetic intensity (effectual FLOP / minimum byte)")
    ax.set_ylabel("achieved TFLOP/s (effectual)")
    ax.set_title("roofline: each point under its own device's roof")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:  # also when the write fails (a full disk)
        plt.close(fig)
