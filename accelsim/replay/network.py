"""Projected vs measured for a network run (``accelsim run``): per layer, whole run, and the plan's gain.

A run's trace holds, per variant (the dense baseline ``dense`` and the plan's id), one record per
layer and one for the whole run (:mod:`accelsim.codesign.runplan`). Every layer record is replayed
like any kernel record (:mod:`accelsim.replay.project`), scaled by a calibration fitted on another
trace set of the same device (``calibrate_with``; the run itself is never fitted on), and summed
into a projected whole run. Kernel traces time repeated calls on warm caches; a run calls each layer
once a pass, so a NumPy layer whose pass outgrows the caches first fetches its operands
(:func:`cold_fetch`). The comparison gives, per variant, time, energy and EDP projected and
measured (energy only where the run measured it: NVML on a GPU), and the plan's gain over the
dense run — dense time / plan time, likewise EDP — projected against measured.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from accelsim.model.arch import ArchConfig
from accelsim.replay.calibrate import Params, fit_groups
from accelsim.replay.noise import few_repeats_warning, gain_range
from accelsim.replay.project import (
    COLD, GATHER, ReplayError, check_device, group_name, input_bytes, items_from_table, operand_fetch, project,
    replay_table, resident_level,
)

__all__ = ["DENSE", "calibration_from", "cold_fetch", "cold_fit", "compare_run", "is_network_run", "layer_params",
           "params_for", "plot_run", "simulator_predictor"]

DENSE = "dense"


def is_network_run(table: pa.Table) -> bool:
    """True when ``table`` holds records of ``accelsim run`` (suite ``network``)."""
    return bool(pc.any(pc.equal(table.column("suite"), "network")).as_py())


def calibration_from(table: pa.Table, arch: ArchConfig) -> dict:
    """``{"global", "families", "groups"}`` :class:`Params` fitted on every configuration of ``table``."""
    check_device(arch, table)
    items, projections = replay_table(table, arch)
    glob, fams, groups = fit_groups(items, projections, list(range(len(items))))
    return {"global": glob, "families": fams, "groups": groups, "configs": len(items)}


def params_for(cal: dict | None, item) -> Params:
    """The parameters a calibration (:func:`calibration_from`) prices ``item`` with: its group's, else its family's,
    else the global fit; uncalibrated without one."""
    if cal is None:
        return Params()
    return _fitted(cal, item.family, item.row.get("dtype", "")) or cal["global"]


def _fitted(cal: dict, family: str, dtype: str) -> Params | None:
    """A calibration's own fit for ``family`` at ``dtype``: its group's, else its family's; None where it has neither."""
    return cal["groups"].get(group_name(family, dtype)) or cal["families"].get(family)


def cold_fit(cal: dict, item) -> Params | None:
    """The calibration's fit of its cold GEMMs (family :data:`COLD`) at ``item``'s dtype: what a layer that fetches
    is priced with (:func:`layer_params`, :func:`fetch_scale`); None where the calibration timed none."""
    return _fitted(cal, COLD, item.row.get("dtype", ""))


def _ratio(a, b):
    return a / b if a is not None and b else None


def _edp(j, s):
    return None if j is None else j * s


def cold_fetch(arch: ArchConfig, item, footprint: int):
    """The uncalibrated :class:`~accelsim.replay.project.Projection` of a NumPy layer reading its inputs
    (:func:`~accelsim.replay.project.input_bytes`) from the level that holds the whole pass (``footprint`` bytes,
    every layer's operands), where that level is outside the one its own working set would stay in, or where a
    dense GEMM's own working set outgrows the caches (below); None where the operands stay.

    Between two calls of a layer the rest of the pass streams through the caches, and OpenBLAS packs
    its operands before it computes, so the fetch adds to the warm time. On the 2-vCPU EPYC a call after
    a 96 MB stream took 23–242 µs longer (0.6–11 MB of operands, 27–72 GB/s; from 12 × 128 × 64 × 128 to
    128 × 3072 × 768), against ~42 GB/s for a DRAM copy. GPU kernels overlap their loads: they are left warm.
    :func:`simulator_predictor` prices a layer's fetch at the fraction fitted on the calibration's cold GEMMs
    (family :data:`~accelsim.replay.project.COLD`), and a gather-path layer's at its own family's
    (:data:`~accelsim.replay.numpy_run.GATHER`, fitted on the same shapes timed warm), which is lower on both boxes
    measured (0.14-0.25 on the 2-vCPU EPYC and 0.40-0.45 on the 2-vCPU Xeon VM at one thread, the cold GEMMs'
    0.58-0.69 there). At the cold GEMMs' fraction the plan's 1:8 vector FFN layers of ``bert_base`` came out 5-21 %
    fast in four one-thread loops on the EPYC, and 11-19 % at two threads on the Xeon VM, while the dense FFNs, the
    same shapes, came within -2..+8 %; at their own, 6-10 % fast on the Xeon VM (BENCHMARKS.md "Thirtieth slice").

    A pass's dense GEMM whose own working set outgrows the caches fetches too (its warm projection streams from
    DRAM behind its tiles): BLAS packs B whole before it multiplies, as in the cold GEMMs the fraction is fitted on.
    On a 2-vCPU EPYC (Zen 3) whose L3 held 8 of its 32 MiB, BERT's 128 × 3072 × 768 and 128 × 768 × 3072 FFNs
    (11.4 MB) were left warm and came out 19-20 % fast per layer at two threads (median over five loops), where the
    same shapes timed cold in the calibration had the fetch priced; with it, 8-9 % fast.
    """
    own = resident_level(arch, item.working_set)
    evicted = resident_level(arch, footprint) < own
    beyond = own == 0 and footprint > 0 and item.family == "gemm"
    if item.row.get("backend") != "numpy" or not (evicted or beyond):
        return None
    return project(arch, operand_fetch(item.kernel, input_bytes(item.row, arch), footprint))


def fetch_scale(calibration: dict | None, item) -> float:
    """What a NumPy layer's :func:`cold_fetch` is multiplied by: for a gather-path layer (family
    :data:`~accelsim.replay.numpy_run.GATHER`) the memory scale its group (else its family) fitted, else, or where
    that is undetermined, the memory scale of the calibration's cold GEMMs of its dtype (family :data:`COLD`); 1 (the
    copy rate) where the calibration has neither."""
    if calibration is None:
        return 1.0
    dtype = item.row.get("dtype", "")
    own = _fitted(calibration, GATHER, dtype) if item.family == GATHER else None
    if own is None or own.memory_scale is None:
        own = cold_fit(calibration, item)
    return (own.memory_scale if own is not None else None) or 1.0


def layer_params(calibration: dict | None, item, cold: bool) -> Params:
    """What a layer of a run is priced with: :func:`params_for`, but a dense NumPy GEMM that fetches (``cold``: its
    :func:`cold_fetch` is not None) takes the cold GEMMs' fit of its dtype (family :data:`COLD`) whole, its compute,
    tiles and pack pass with its fetch. It is then the calibration's cold case of its shape, which times that very
    layer (:func:`~accelsim.replay.calibration_set.cold_case`) and is priced so. Priced at the ``gemm`` group's
    parameters with only its fetch at the cold GEMMs' fraction, one-thread ``bert_base``'s dense layers on the 2-vCPU
    Xeon VM came out 12-15 % under (a 128 x 768 x 768 layer projected 1.49 ms where the calibration's cold case of the
    shape, measured 1.60, was projected 1.63), the run 13.9-14.7 % under in four loops (BENCHMARKS.md "Thirty-second
    slice")."""
    if cold and calibration is not None and item.family == "gemm":
        own = cold_fit(calibration, item)
        if own is not None:
            return own
    return params_for(calibration, item)


def simulator_predictor(arch: ArchConfig, calibration: dict | None = None, *, params_of=layer_params,
                        scale_of=fetch_scale, extra=None):
    """``predict(item, footprint) -> (seconds, joules)``: the simulator's warm-cache projection scaled by
    ``calibration`` (``params_of(calibration, item, cold)``, :func:`layer_params`), plus the :func:`cold_fetch` of a
    pass of ``footprint`` bytes at ``scale_of(calibration, item)`` (:func:`fetch_scale`) and, for a layer that
    fetches, ``extra(item, params)`` seconds (none). Other pricings are judged offline by passing their own
    (``bench/loop_variants.py``)."""

    def predict(item, footprint: int = 0):
        p = project(arch, item.workload, item.working_set)
        fetch = cold_fetch(arch, item, footprint)
        params = params_of(calibration, item, fetch is not None)
        t = params.predict(p, item.launches, item.threaded_calls)
        e = p.dynamic_j + p.leakage_w * t
        if fetch is not None:
            s = scale_of(calibration, item) * fetch.seconds + (extra(item, params) if extra else 0.0)
            t, e = t + s, e + fetch.dynamic_j + fetch.leakage_w * s
        return t, e

    return predict


def compare_run(table: pa.Table, arch: ArchConfig, calibration: dict | None = None, predict=None) -> dict:
    """Compare a network run with its projection on ``arch``; a JSON-ready report.

    ``predict(item, footprint) -> (seconds, joules)`` projects one layer record (an
    :class:`~accelsim.replay.project.Item`) in a pass touching ``footprint`` bytes (its variant's layers'
    ``bytes_min``); the default is :func:`simulator_predictor` with ``calibration``. Another device
    model plugs in here.

    Keys: ``variants`` (per plan id: layers with projected/measured seconds, joules and EDP, the
    whole run likewise), ``gain`` (per non-dense variant: projected and measured dense/plan ratios
    of time and EDP, and ``measured_time_range``, the range of the measured time ratio over the
    passes, :func:`~accelsim.replay.noise.gain_range`; each layer has its ``measured_gain_range``),
    ``calibration`` and ``notes`` (a warning when the run had fewer than 3 timed passes).

    Raises
    ------
    ReplayError
        No network-run records, a run record without its layers, or traces from another device.
    """
    notes = check_device(arch, table)
    rows = table.to_pylist()
    net_rows = [r for r in rows if r["suite"] == "network"]
    if not net_rows:
        raise ReplayError("no network-run records (suite 'network'); write them with `accelsim run`")
    runs = [r for r in net_rows if r["kernel"] == "network"]
    layer_rows = [r for r in net_rows if r["kernel"] != "network"]
    items = items_from_table(pa.Table.from_pylist(layer_rows, schema=table.schema), arch)
    variants: dict[str, dict] = {}
    predict = predict or simulator_predictor(arch, calibration)
    prms = [json.loads(it.row["params"]) for it in items]
    footprint: dict[str, int] = {}
    for it, prm in zip(items, prms):
        footprint[prm["plan"]] = footprint.get(prm["plan"], 0) + int(it.row["bytes_min"] or 0)
    for it, prm in zip(items, prms):
        t, e = predict(it, footprint[prm["plan"]])
        v = variants.setdefault(prm["plan"], {"plan": prm["plan"], "network": prm["network"], "layers": []})
        v["layers"].append({
            "index": prm["layer_index"], "layer": prm["layer"], "kernel": it.kernel, "plan_kernel": prm["plan_kernel"],
            "impl": prm.get("impl"), "output_rel_error": prm.get("output_rel_error"),
            "projected_s": t, "measured_s": it.measured_s, "projected_j": e, "measured_j": it.measured_j,
            "projected_edp": e * t, "measured_edp": _edp(it.measured_j, it.measured_s),
            "time_min_s": it.row["time_min_s"], "time_max_s": it.row["time_max_s"], "passes": it.row["repeats"],
        })
    for r in runs:
        prm = json.loads(r["params"])
        v = variants.get(prm["plan"])
        if v is None:
            raise ReplayError(f"run record of plan {prm['plan']!r} has no layer records in these traces")
        v["layers"].sort(key=lambda l: l["index"])
        have = [l["layer"] for l in v["layers"]]
        if have != prm["layers"]:
            raise ReplayError(f"plan {prm['plan']!r}: the run lists {len(prm['layers'])} layers, the traces hold "
                              f"records for {len(have)}; pass one run's trace directory")
        ps = sum(l["projected_s"] for l in v["layers"])
        pj = sum(l["projected_j"] for l in v["layers"])
        v["run"] = {"projected_s": ps, "measured_s": r["time_median_s"], "projected_j": pj,
                    "measured_j": r["energy_j"], "projected_edp": ps * pj,
                    "measured_edp": _edp(r["energy_j"], r["time_median_s"]),
                    "measured_layer_sum_s": sum(l["measured_s"] for l in v["layers"]), "passes": r["repeats"],
                    "time_min_s": r["time_min_s"], "time_max_s": r["time_max_s"]}
        v["run"]["time_error"] = v["run"]["projected_s"] / v["run"]["measured_s"] - 1.0
        me = v["run"]["measured_edp"]
        v["run"]["edp_error"] = v["run"]["projected_edp"] / me - 1.0 if me else None
    missing = [k for k, v in variants.items() if "run" not in v]
    if missing:
        raise ReplayError(f"plan {missing[0]!r}: layer records without a whole-run record (an interrupted run?)")
    gain = {}
    if DENSE in variants:
        d = variants[DENSE]["run"]
        for k, v in variants.items():
            if k == DENSE:
                continue
            r = v["run"]
            gain[k] = {"projected_time": d["projected_s"] / r["projected_s"], "measured_time": d["measured_s"] / r["measured_s"],
                       "projected_edp": d["projected_edp"] / r["projected_edp"],
                       "measured_edp": _ratio(d["measured_edp"], r["measured_edp"]),
                       "measured_time_range": gain_range(d, r, min(d["passes"], r["passes"]))}
            for l, dl in zip(v["layers"], variants[DENSE]["layers"]):
                l["projected_gain"] = dl["projected_s"] / l["projected_s"]
                l["measured_gain"] = dl["measured_s"] / l["measured_s"]
                l["measured_gain_range"] = gain_range(dl, l, min(dl["passes"], l["passes"]))
        warning = few_repeats_warning(min(v["run"]["passes"] for v in variants.values()))
        if warning:
            notes.append(warning)
    else:
        notes.append("no dense baseline in these traces (run without --no-dense to compare gains)")
    if not any(v["run"]["measured_j"] is not None for v in variants.values()):
        notes.append("energy and EDP not measured (NumPy backend: no energy counter); projected values only")
    cal = None
    if calibration is not None:
        cal = {"configs": calibration["configs"], "global": calibration["global"].to_dict(),
               "groups": {g: p.to_dict() for g, p in calibration["groups"].items()}}
    devices = sorted({f"{r['device_name']} ({r['backend']})" for r in net_rows})
    return {"arch": arch.name, "devices": devices, "calibration": cal,
            "variants": [variants[k] for k in sorted(variants, key=lambda k: (k != DENSE, k))], "gain": gain,
            "notes": notes}


def plot_run(report: dict, path) -> None:
    """Left: projected vs measured time per layer (log-log, y = x). Right: per-layer and whole-run gain,
    projected next to measured."""
    from accelsim.plots import plt, save_figure

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1, 1.6]})
    vals = []
    for v in report["variants"]:
        xs = [l["measured_s"] for l in v["layers"]]
        ys = [l["projected_s"] for l in v["layers"]]
        vals += xs + ys
        ax.loglog(xs, ys, "o", alpha=0.6, label=f"{v['plan']} layers")
        ax.loglog([v["run"]["measured_s"]], [v["run"]["projected_s"]], "*", ms=14, label=f"{v['plan']} whole run")
        vals += [v["run"]["measured_s"], v["run"]["projected_s"]]
    lo, hi = min(x for x in vals if x > 0) / 1.5, max(vals) * 1.5
    ax.loglog([lo, hi], [lo, hi], "k-", lw=0.8, label="y = x")
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("projected time (s)")
    ax.set_title(f"{report['variants'][0]['network']} on {report['arch']}", fontsize=10)
    ax.legend(fontsize=7)
    plans = [v for v in report["variants"] if v["plan"] in report["gain"]]
    if plans:
        v = plans[0]
        names = [str(l["index"]) for l in v["layers"]] + ["run"]
        g = report["gain"][v["plan"]]
        proj = [l["projected_gain"] for l in v["layers"]] + [g["projected_time"]]
        meas = [l["measured_gain"] for l in v["layers"]] + [g["measured_time"]]
        xs = range(len(names))
        bx.bar([x - 0.2 for x in xs], proj, 0.4, label="projected")
        bx.bar([x + 0.2 for x in xs], meas, 0.4, label="measured")
        bx.axhline(1.0, color="k", lw=0.8)
        bx.set_yscale("log")
        bx.set_xticks(list(xs), names, fontsize=6, rotation=90)
        bx.set_xlabel("layer index (network order); run = whole run")
        bx.set_ylabel("gain over dense (dense time / plan time)")
        bx.set_title(f"{v['plan']}: projected {g['projected_time']:.2f}x, measured {g['measured_time']:.2f}x", fontsize=10)
        bx.legend(fontsize=8)
    save_figure(fig, path)
