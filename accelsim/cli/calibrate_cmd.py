"""`accelsim calibrate`: measure the device at hand and write its arch, a trace set and a fitted calibration."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import typer

from accelsim.cli._common import Format, FormatOpt, on_interrupt, print_json, print_table

__all__ = ["DEFAULT_BUDGET_S", "calibrate", "register"]

DEFAULT_BUDGET_S = 80.0
"""``accelsim calibrate``'s budget by default: within issue #26's 90 s on a CPU (81.2-81.6 s of wall time each, eight
calibrations of the 2-vCPU Xeon VM). Its passes make the fit steady: with 60 s a calibration in the VM's 60 MiB
state made 9-10 passes, and 6 of 15 one-state pairs over four sets kept every parameter within 10 % (10 of 10 in a
set made before its stacked batches grew with the cache); with 80 s, 12-18 passes and 16 of 22 over four sets
(BENCHMARKS.md "Sixteenth slice")."""


def calibrate(
    out: Path = typer.Option(..., "--out", help="new (or empty) directory for arch.yaml, traces/ and calibration.json"),
    backend: str = typer.Option("numpy", "--backend", help="numpy (this CPU) or cupy (the current CUDA device)"),
    budget_s: float = typer.Option(DEFAULT_BUDGET_S, "--budget-s",
                                   help="seconds for microbenchmarks and kernel runs together"),
    name: str = typer.Option(None, "--name", help="the arch's name in arch.yaml (default cpu_calibrated or "
                             "gpu_calibrated; arch_configs/cpu_numpy.yaml is this command's output with --name cpu_numpy)"),
    against: Path = typer.Option(None, "--against", help="an earlier calibration directory of this device: print "
                                 "how far each parameter, peak and group's projected time moved"),
    fmt: Format = FormatOpt,
) -> None:
    """Microbenchmark this CPU (or, --backend cupy, the GPU), write its arch config, record a small spanning trace
    set, fit and save the calibration (on every configuration), and print its held-out MAPE (the same fit on half
    of the configurations, scored on the rest).

    Use the directory with `accelsim validate --traces RUN --calibration DIR` or (CPU) `accelsim run ... --calibration DIR`.
    With --against EARLIER (CPU), it also prints each fitted parameter beside EARLIER's and whether all are within 10 %.
    """
    from accelsim.checks import ensure_writable
    from accelsim.replay.calibration_dir import ARCH_FILE, CALIBRATION_FILE, TRACES_DIR
    from accelsim.replay.device_calibration import calibrate_device
    from kernels.errors import InputError

    if backend not in ("numpy", "cupy"):
        raise InputError(f"--backend {backend!r}: use numpy or cupy")
    if not (math.isfinite(budget_s) and 0 < budget_s <= 3600):
        raise InputError(f"--budget-s {budget_s:g}: must be a number of seconds in (0, 3600], e.g. 60")
    name = name if name is not None else f"{'gpu' if backend == 'cupy' else 'cpu'}_calibrated"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", name):
        raise InputError(f"--name {name!r}: use a letter, then letters, digits, '_' or '-' (64 at most), e.g. cpu_numpy")
    ensure_writable(out, directory=True)
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"--out {str(out)!r}: is not empty; pass a new or empty directory (its traces would mix)")
    if against is not None:
        _check_against(against, backend)
    if backend == "cupy":
        from accelsim.replay import gpu_calibration

        xp = gpu_calibration.device_xp()  # refuses before anything is written
    t0 = time.monotonic()
    with on_interrupt(lambda: f"partial calibration in {out} (no {CALIBRATION_FILE} unless finished); delete it"):
        doc = (gpu_calibration.calibrate_gpu(out, budget_s, name=name, xp=xp) if backend == "cupy"
               else calibrate_device(out, budget_s, name=name))
    wall = time.monotonic() - t0
    files = {"out": str(out), "arch": str(out / ARCH_FILE), "traces": str(out / TRACES_DIR),
             "calibration": str(out / CALIBRATION_FILE)}
    score = (f"saved fit: all {doc['configs']} configurations; the same fit on {doc['split']['train']} of them, "
             f"scored on the other {doc['split']['held_out']}: held-out MAPE {doc['held_out_mape_pct']:.1f} %")
    wrote = f"wrote {out / ARCH_FILE}, {out / TRACES_DIR}/, {out / CALIBRATION_FILE} in {wall:.0f} s"
    if backend == "cupy":
        _print_gpu(doc, files, score, wrote, wall, fmt)
        return
    summary = {**files, "device_name": doc["device_name"],
               "blas_threads": doc["blas_threads"], "configs": doc["configs"], "split": doc["split"],
               "held_out_mape_pct": doc["held_out_mape_pct"], "global": doc["global"], "groups": doc["groups"],
               "gemm_probe_gflops": doc.get("gemm_probe_gflops"), "passes": doc.get("passes"),
               "pass_spread": doc.get("pass_spread"), "param_intervals": doc.get("param_intervals"),
               "probe_power": doc.get("probe_power"),
               "near_copy_gbs": doc["measured"].get("near_copy_gbs"), "glibc_tunables": doc.get("glibc_tunables"),
               "wall_s": wall}
    diff = None
    if against is not None:
        from accelsim.replay.calibration_diff import compare_dirs

        diff = summary["against"] = compare_dirs(against, out)
    if fmt is Format.json:
        print_json(summary)
        return
    from accelsim.replay.box_state import gemm_peak
    from accelsim.replay.cpu_report import near_copy_note

    m = doc["measured"]
    rows = [[g, p["launch_overhead_s"], p.get("threaded_call_s"), p.get("compute_efficiency"),
             p.get("bandwidth_fraction"), p["source"], doc["held_out_by_group"].get(g)]
            for g, p in {"global": doc["global"], **doc["groups"]}.items()]
    caption = [
        f"{doc['device_name']}, BLAS on {doc['blas_threads']} threads; GEMM peak (median) "
        f"{gemm_peak(m['gemm_gflops']['float32']):.3g} GFLOP/s fp32, {gemm_peak(m['gemm_gflops']['float64']):.3g} fp64; "
        "copy " + ", ".join(f"{k} {v['max']:.3g} GB/s" for k, v in m["copy_gbs"].items())
        + f"; tiny matmul {m['call_overhead_s']['median'] * 1e6:.3g} us (load average {m['load_average_1min']:.2f})",
        *_cache_lines(m.get("caches") or []), *near_copy_note(m, doc.get("glibc_tunables")), *_state_line(doc),
        *_power_line(doc), *_interval_line(doc), score, wrote,
    ]
    print_table(f"calibrate: {out}", ["group", "launch_overhead_s", "threaded_call_s", "compute_efficiency",
                                      "bandwidth_fraction", "fit", "held_out_mape_pct"], rows, caption="\n".join(caption))
    if diff is not None:
        _print_diff(diff)


def _check_against(against: Path, backend: str) -> None:
    """Refuse ``--against`` before anything is measured: a GPU run, or a calibration of another CPU or thread count."""
    from accelsim.replay.calibration_diff import check_against
    from accelsim.replay.calibration_dir import TRACES_DIR, load_calibration_dir
    from accelsim.replay.cpu_report import os_report
    from kernels.errors import InputError

    if backend != "numpy":
        raise InputError(f"--against {against}: compares NumPy calibrations; leave it out with --backend {backend}")
    doc = load_calibration_dir(against, "--against")[2]
    if not (against / TRACES_DIR).is_dir():
        raise InputError(f"--against {against}: has no {TRACES_DIR}/, which the comparison prices; pass a whole "
                         "`accelsim calibrate` directory")
    report = os_report()
    check_against(doc, against, report["device_name"], report["blas_threads"])


def _print_diff(diff: dict) -> None:
    """This calibration beside ``--against``'s: parameters, peaks, the box's state and each group's projected time."""
    from accelsim.replay.calibration_diff import DRIFT

    def pct(v):
        return None if v is None else round(100 * v, 1)

    def span(p):
        return None if not p.get("a_interval") else "{:.4g}..{:.4g}".format(*p["a_interval"])

    rows = [[p["name"], p["a"], span(p), p["b"], pct(p["change"]), pct(p["share"]), pct(p["share_max"])]
            for p in diff["params"]]
    rows += [[f"peak: {p['name']}", p["a"], None, p["b"], pct(p["change"]), None, None] for p in diff["peaks"]]
    st, worst = diff["state"], diff["worst"]
    caption = []
    if st["change"] is not None:
        caption.append(f"box state: probe {st['a_probe_gflops']:.4g} then {st['b_probe_gflops']:.4g} GFLOP/s "
                       f"({st['change']:+.0%}): " + ("the same state" if st["same"] else
                                                     "another state, so the parameters differ with it"))
    if st.get("same_caches") is False:
        held = ", ".join(f"{lvl} {st['a_caches'][lvl] // 2**20} then {st['b_caches'].get(lvl, 0) // 2**20} MiB"
                         for lvl in st["a_caches"] if st["a_caches"][lvl] != st["b_caches"].get(lvl))
        caption.append(f"the caches held another size ({held}): another state, so the parameters differ with it")
    caption.append("projected time of the earlier calibration's configurations, median (largest) change per group: "
                   + ", ".join(f"{g['group']} {g['median_change']:+.1%} ({g['max_change']:+.1%})"
                               for g in diff["projection"]))
    own = [g for g in diff["projection"] if g.get("measured_median_change") is not None]
    if own:
        caption.append("their own times as each calibration measured them, median (furthest) change per group (the "
                       "box's own move): " + ", ".join(f"{g['group']} {g['measured_median_change']:+.1%} "
                                                      f"({g['measured_max_change']:+.1%})" for g in own))
    if worst is not None:
        caption.append(("every fitted parameter within" if diff["within"] else "not every fitted parameter within")
                       + f" {DRIFT:.0%} of the earlier one; the furthest: {worst['name']} {worst['change']:+.1%}")
    outside = [p["name"] for p in diff["params"] if p.get("inside") is False]
    if any(p.get("inside") is not None for p in diff["params"]):
        caption.append("outside the earlier one's interval over its passes drawn again (the box moved between the "
                       f"two): {', '.join(outside)}" if outside else
                       "every parameter inside the earlier one's interval over its passes drawn again")
    print_table(f"against {diff['a']}", ["parameter", "earlier", "earlier_90pct", "now", "change_pct",
                                         "share_of_time_pct", "largest_share_pct"], rows, caption="\n".join(caption))


def _cache_lines(caches: list[dict]) -> list[str]:
    """One line per cache level the copies found smaller than the OS reports
    (:func:`~accelsim.replay.cache_probe.effective_caches`): the arch sizes it from what the copies held."""
    from accelsim.replay.cache_probe import shrunk

    return [f"l{c['level']}: copies held {c['effective_size'] / 2**20:.3g} MiB of the {c['size'] / 2**20:.3g} MiB the "
            "OS reports (shared with other cores or guests); arch.yaml sizes it from what they held"
            for c in caches if shrunk(c)]


def _state_line(doc: dict) -> list[str]:
    """The box's state while calibrating: the probe GEMM's median rate per round (``accelsim run`` probes the same)."""
    from accelsim.replay.box_state import mixed_state_note
    from kernels.trace.microbench import PROBE_N

    rounds = doc.get("gemm_probe_rounds") or []
    if not rounds:
        return []
    mixed = mixed_state_note(doc)
    return [f"box state: {PROBE_N}^3 fp32 GEMM {doc['gemm_probe_gflops']:.4g} GFLOP/s (per round "
            + ", ".join(f"{r:.4g}" for r in rounds) + "); `validate` compares the run's", *([mixed] if mixed else []),
            *_spread_line(doc)]


def _power_line(doc: dict) -> list[str]:
    """How the calibration's times followed the probe over its passes (:mod:`accelsim.replay.probe_power`), or why
    nothing was fitted."""
    power = doc.get("probe_power")
    if not doc.get("gemm_probe_rounds"):
        return []
    if not power:
        return ["probe power: not fitted (the passes' probe rates lie within one state); a run in another state is "
                "priced at the calibration's"]
    return [f"probe power {power['power']:.2f} (time ~ probe rate ^ -power over {power['configs']} configurations in "
            f"{power['passes']} passes, probe rates {power['span']:.2f}x apart): prices a run in another state"]


def _spread_line(doc: dict) -> list[str]:
    """How far a configuration's passes spread (:func:`accelsim.replay.box_state.pass_spread`), and
    whether that makes the box unsteady (:func:`accelsim.replay.box_state.unsteady_note`)."""
    from accelsim.replay.box_state import unsteady_note

    spread = doc.get("pass_spread")
    if not spread or not spread.get("configs"):
        return []
    worst = ", ".join(f"{w['label']} {w['spread_pct']:.0f} %" for w in spread["worst"])
    note = unsteady_note(doc)
    return [f"passes: slowest / fastest - 1 of a configuration's passes, {spread['median_pct']:.1f} % in median over "
            f"{spread['configs']} configurations; most: {worst}", *([note] if note else [])]


INTERVALS_SHOWN = 3
"""Parameters the calibrate table's caption names, the widest interval first."""


def _interval_line(doc: dict) -> list[str]:
    """The parameters whose fit moved furthest when the calibration's passes were drawn again
    (:func:`accelsim.replay.resample.param_intervals`): what a second calibration on an unchanged box may move."""
    widths = sorted(((v["half_width_pct"], k) for k, v in (doc.get("param_intervals") or {}).items()
                     if v.get("half_width_pct") is not None), reverse=True)
    if not widths:
        return []
    shown = ", ".join(f"{k} +-{w:.1f} %" for w, k in widths[:INTERVALS_SHOWN])
    rest = max((w for w, _ in widths[INTERVALS_SHOWN:]), default=None)
    return [f"passes drawn again ({len(widths)} parameters, 90 % of {doc['resample']['rounds']} refits): widest {shown}"
            + (f"; every other within +-{rest:.1f} %" if rest is not None else "")]


def _print_gpu(doc: dict, files: dict, score: str, wrote: str, wall: float, fmt: Format) -> None:
    """The GPU calibration: its six device parameters with their bounds, what was measured, the held-out score."""
    from accelsim.model.gpu import BOUNDS

    if fmt is Format.json:
        print_json({**files, "device_name": doc["device"], "arch_name": doc["arch"], "base_arch": doc["base_arch"],
                    "configs": doc["configs"], "split": doc["split"], "held_out_mape_pct": doc["held_out_mape_pct"],
                    "held_out_by_family": doc["held_out_by_family"], "params": doc["params"],
                    "energy": doc["energy"], "errors": doc["errors"], "wall_s": wall})
        return
    m = doc["measured"]
    rows = [[k, v, BOUNDS[k][0], BOUNDS[k][1], BOUNDS[k][2]] for k, v in doc["params"].items()]
    caption = [
        f"{doc['device']}: matmul " + ", ".join(f"{d} {r['max']:.4g} TFLOP/s" for d, r in m["matmul_tflops"].items())
        + "; copy " + ", ".join(f"{k} {v['max']:.4g} GB/s" for k, v in m["copy_gbs"].items())
        + f"; launch {m['launch_s']['median'] * 1e6:.3g} us, host call {m['host_call_s']['median'] * 1e6:.3g} us"
        + (f"; not measured: {', '.join(m['unsupported'])}" if m["unsupported"] else ""),
        f"unmeasured structure (tiles, split-K, energies) from {doc['base_arch']}",
        score + " (" + ", ".join(f"{f} {v:.1f}" for f, v in doc["held_out_by_family"].items()) + ")",
        *([f"{len(doc['errors'])} cases failed, first: {doc['errors'][0]}"] if doc["errors"] else []), wrote,
    ]
    print_table(f"calibrate: {files['out']}", ["parameter", "value", "lower", "upper", "meaning"], rows,
                caption="\n".join(caption))


def register(app: typer.Typer) -> None:
    """Attach ``calibrate`` to the root app."""
    if not any(c.name == "calibrate" for c in app.registered_commands):
        app.command("calibrate")(calibrate)
