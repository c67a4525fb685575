"""`accelsim run`: run a sparsity plan's network on real kernels, layer by layer, and write its traces."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from accelsim.cli._common import Format, FormatOpt, check_timing_opts, on_interrupt, print_json, print_table, progress_bar

__all__ = ["register", "run_command"]


def run_command(
    plan: Path = typer.Option(..., "--plan", help="plan JSON from `accelsim tasd search --out plan.json`"),
    out: Path = typer.Option(..., "--out", help="trace dataset directory to append the run's records to"),
    params: Optional[list[str]] = typer.Option(None, "--param", help="override a network parameter, e.g. seq_len=32"),
    layers: Optional[str] = typer.Option(None, "--layers", help="run only layers START:STOP (network order)"),
    weights: Optional[str] = typer.Option(None, "--weights", help="'minilm' (default for minilm), 'synthetic' "
                                          "(seeded; default elsewhere) or a .safetensors file"),
    prune: float = typer.Option(0.0, "--prune", help="magnitude-prune synthetic weights to this sparsity (as searched)"),
    repeats: int = typer.Option(3, "--repeats", help="timed passes over the network (medians reported)"),
    warmup: int = typer.Option(1, "--warmup", help="untimed passes first"),
    backend: Optional[str] = typer.Option(None, "--backend", help="numpy or cupy (default: cupy when a GPU is usable)"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float16"),
    dense: bool = typer.Option(True, "--dense/--no-dense", help="also run the all-dense baseline (for the gain)"),
    calibration: Optional[list[Path]] = typer.Option(None, "--calibration", help="directory of `accelsim "
                                                     "calibrate` on this device: after the run, project it and "
                                                     "compare (repeatable, one per state of the box: the run takes "
                                                     "the one whose probe rate is nearest its own)"),
    fmt: Format = FormatOpt,
) -> None:
    """Run every GEMM layer of the plan's network in order with its planned kernel; one record per layer and run."""
    from accelsim.codesign.plan import load_plan
    from accelsim.codesign.runplan import DENSE, prepare_run, run_passes
    from accelsim.model.arch import parse_overrides
    from accelsim.replay.noise import few_repeats_warning, format_range, gain_range
    from kernels.trace import Recorder

    check_timing_opts(repeats, warmup, out)
    cals = [_calibration_here(c, backend) for c in calibration or []]
    with on_interrupt(lambda: f"nothing written to {out} (the run was still being prepared)"):
        p = load_plan(plan)
        prep = prepare_run(p, params=parse_overrides(params, source="--param"), layers=layers, weights=weights,
                           backend=backend, dtype=dtype, dense=dense, plan_file=str(plan), prune=prune)
    per_pass = sum(len(s) for s in prep.steps.values())
    rec = Recorder(out)
    with progress_bar(disable=fmt is Format.json) as progress:
        task = progress.add_task("run", total=per_pass * (warmup + repeats))

        def on_step(variant, step, p_no):
            kind = "warm-up" if p_no < warmup else f"pass {p_no - warmup + 1}/{repeats}"
            progress.update(task, advance=1, description=f"{kind} {variant} {step.name} [{step.plan.label}]")

        res = run_passes(prep.steps, xp=prep.xp, repeats=repeats, warmup=warmup, meta=prep.meta, recorder=rec,
                         on_step=on_step, probe=prep.probe)
    rec.flush()
    runs = {json.loads(r["params"])["plan"]: r for r in res.rows if r["kernel"] == "network"}
    by_plan = {k: r["time_median_s"] for k, r in runs.items()}
    both = DENSE in runs and p.id in runs
    spread = gain_range(runs[DENSE], runs[p.id], res.passes) if both else None
    warning = few_repeats_warning(res.passes) if both else None
    summary = {"out": str(out), "run_id": rec.run_id, "network": prep.network.name, "plan": p.id,
               "layers": len(prep.layers), "passes": res.passes, "records": len(res.rows),
               "interrupted": res.interrupted, "run_s": by_plan,
               "measured_gain": by_plan[DENSE] / by_plan[p.id] if both else None,
               "measured_gain_range": list(spread) if spread else None, "warnings": [warning] if warning else []}
    if res.interrupted:
        print(f"accelsim: interrupted after {res.passes} of {repeats} timed passes; kept {len(res.rows)} finished "
              f"records in {out} (run {rec.run_id}), the pass in progress was dropped", file=sys.stderr)
    if cals and not res.interrupted:
        from accelsim.cli.validate_cmd import print_run

        summary["validation"], used = _report(res.rows, calibration, cals)
        if fmt is not Format.json:
            print_run(summary["validation"], str(out), f"{used} (accelsim calibrate)")
    if fmt is Format.json:
        print_json(summary)
    else:
        rows = [[name, r["time_median_s"], r["time_min_s"], r["time_max_s"]] for name, r in runs.items()]
        gain = summary["measured_gain"]
        caption = [f"{len(res.rows)} records appended to {out} (run {rec.run_id})",
                   f"measured gain over dense {gain:.3f}x (dense median / plan median), range over "
                   f"{res.passes} pass{'es' if res.passes != 1 else ''} {format_range(spread)} (dense fastest / plan "
                   "slowest .. dense slowest / plan fastest)" if gain else "no dense baseline", *summary["warnings"]]
        print_table(f"run {p.id} on {prep.network.name} ({len(prep.layers)} layers, {prep.xp.__name__})",
                    ["variant", "run time s (median)", "fastest pass s", "slowest pass s"], rows,
                    caption="\n".join(caption))
    if res.interrupted:
        raise SystemExit(130)


def _calibration_here(path: Path, backend: str | None):
    """``(arch, calibration, doc)`` of a calibration directory, refused unless it was made on this device with the
    BLAS thread count this process runs with; checked before the run."""
    from accelsim.replay.calibration_dir import CalibrationDirError, load_calibration_dir
    from kernels.backend import backend_name, device_info, get_xp
    from kernels.trace.microbench import blas_threads

    cfg, params, doc = load_calibration_dir(path)
    xp = get_xp(backend)
    here = device_info(xp)["device_name"]
    threads = blas_threads() if backend_name(xp) == "numpy" else None
    if backend_name(xp) != doc.get("backend") or here != doc.get("device_name") or threads != doc.get("blas_threads"):
        raise CalibrationDirError(f"--calibration {path}: recorded on {doc.get('device_name')!r} with "
                                  f"{doc.get('blas_threads')} BLAS threads, but this run is on {here!r} "
                                  f"({backend_name(xp)}, {threads} BLAS threads); run `accelsim calibrate` here")
    return cfg, params, doc


def _report(rows, paths: list, cals: list) -> tuple[dict, Path]:
    """The run's records projected with the calibration (of ``cals``, loaded from ``paths``) whose probe rate is
    nearest the run's, priced for the run's state (:func:`~accelsim.replay.probe_power.priced_choice`), and that
    calibration's path."""
    from accelsim.replay.network import compare_run
    from accelsim.replay.probe_power import priced_choice
    from kernels.trace import SCHEMA

    import pyarrow as pa

    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    pick, cfg, params, notes, state = priced_choice(paths, cals, table)
    report = compare_run(table, cfg, params)
    report["notes"] += notes
    if state is not None:
        report["box_state"] = state
    return report, paths[pick]


def register(app: typer.Typer) -> None:
    """Attach ``run`` to the root app."""
    if not any(c.name == "run" for c in app.registered_commands):
        app.command("run")(run_command)
