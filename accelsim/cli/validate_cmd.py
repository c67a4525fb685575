"""`accelsim validate`: replay kernel traces on an arch and compare projected with measured time/energy."""

from __future__ import annotations

from pathlib import Path

import typer

from accelsim.checks import check_seed, ensure_writable
from accelsim.cli._common import Format, FormatOpt, print_json, print_table

# Library modules are imported inside the commands: start-up time (every command module loads for `--help`).
__all__ = ["print_run", "print_validation", "register", "show_run", "validate"]


def _r(v):
    return "n/a" if v is None else v


def _g(v):
    return "n/a" if v is None else f"{v:.3g}"


def validate(
    traces: Path = typer.Option(..., "--traces", help="trace parquet file or directory (accelsim kernels run --out)"),
    arch: str = typer.Option(None, "--arch", help="arch config file or built-in name of the traced device "
                             "(default with --calibration DIR: DIR/arch.yaml)"),
    calibrate_on: float = typer.Option(None, "--calibrate-on", help="fit on this fraction of configurations, "
                                       "report errors on the rest only (e.g. 0.5)"),
    seed: int = typer.Option(0, "--seed", help="seed of the calibration split"),
    plot: Path = typer.Option(None, "--plot", help="write a projected-vs-measured PNG here"),
    set_: list[str] = typer.Option(None, "--set", help="arch override key.path=value (repeatable)"),
    save_calibration: Path = typer.Option(None, "--save-calibration", help="GPU arch: write the fitted device "
                                          "calibration here (fitted on the --calibrate-on split, else on everything)"),
    calibration: list[Path] = typer.Option(None, "--calibration", help="a directory of `accelsim calibrate` "
                                           "(network runs: its arch and fitted parameters; repeatable, one per state "
                                           "of the box: the run takes the one whose probe rate is nearest its own), "
                                           "or, GPU arch, a calibration file saved with --save-calibration for the "
                                           "same device, applied instead of fitting"),
    calibrate_with: Path = typer.Option(None, "--calibrate-with", help="network runs: fit the calibration on this "
                                        "trace set of the same device (e.g. traces/cpu-amd-epyc-2vcpu)"),
    fmt: Format = FormatOpt,
) -> None:
    """Per kernel family: MAPE and Pearson r of projected vs measured time (and energy, EDP where measured).

    An arch with a ``gpu:`` section (h200_sxm) is replayed on the GPU unit model with one device
    calibration; other archs on the simulator with per-group calibration. On the traces of
    `accelsim run` (a network run): per layer and for the whole run, projected vs measured time,
    energy and EDP, and the plan's projected gain over the dense run against the measured one.
    """
    from accelsim.errors import ConfigError
    from accelsim.model.arch import load_arch, parse_overrides
    from accelsim.replay.calibrate import validate as run_validate
    from accelsim.replay.calibration_dir import is_calibration_dir
    from accelsim.replay.network import is_network_run
    from accelsim.replay.traces import load as load_traces
    from kernels.errors import InputError

    cals = list(calibration or [])
    inputs = (traces, *cals, calibrate_with)
    check_seed(seed)
    if plot is not None:
        ensure_writable(plot, "--plot", suffixes=(".png",), inputs=inputs)
    if save_calibration is not None:
        ensure_writable(save_calibration, "--save-calibration", suffixes=(".json",), inputs=inputs)
    if cals and is_calibration_dir(cals[0]):
        _validate_with_dir(traces, cals, arch, set_, calibrate_on, calibrate_with, save_calibration, plot, fmt)
        return
    if len(cals) > 1:
        raise InputError(f"--calibration {cals[1]}: a calibration file is given once; several --calibration are "
                         "`accelsim calibrate` directories, one per state of the box")
    calibration = cals[0] if cals else None
    if arch is None:
        raise InputError("--arch: missing; pass the traced device's arch, or --calibration DIR written by "
                         "`accelsim calibrate`")
    cfg = load_arch(arch, parse_overrides(set_))
    table = load_traces(traces)
    if table.num_rows == 0:
        raise InputError(f"--traces {traces}: holds no trace rows; record some with `accelsim kernels run`")
    if is_network_run(table):
        if calibrate_on is not None:
            raise InputError("--calibrate-on: a network run is never fitted on; use --calibrate-with TRACES")
        _validate_run(table, cfg, calibrate_with, plot, fmt, str(traces))
        return
    if calibrate_with is not None:
        raise InputError(f"--calibrate-with: only for network-run traces (`accelsim run`); {traces} holds kernel traces")
    if cfg.gpu is not None:
        from accelsim.replay.device import validate_gpu

        report = validate_gpu(table, cfg, calibrate_on, seed, calibration, save_calibration)
    elif save_calibration is not None or calibration is not None:
        raise ConfigError(f"--save-calibration/--calibration: arch {cfg.name!r} has no gpu: section; "
                          f"device calibrations are for GPU unit-model archs such as h200_sxm")
    else:
        report = run_validate(table, cfg, calibrate_on, seed)
    _show_kernels(report, traces, plot, fmt)


def _show_kernels(report: dict, traces, plot, fmt) -> None:
    from accelsim.replay.calibrate import plot_validation

    if plot is not None:
        plot_validation(report, plot)
    if fmt is Format.json:
        print_json(report)
        return
    print_validation(report, str(traces), plot)


def _validate_with_dir(traces, cal_dirs, arch, set_, calibrate_on, calibrate_with, save_calibration, plot, fmt):
    """A network run (CPU) or kernel traces (GPU) projected with the arch and parameters `accelsim calibrate`
    wrote to a directory: of several (CPU), the one whose probe rate is nearest the run's."""
    from accelsim.replay.calibration_dir import check_same_device, load_calibration_dir
    from accelsim.replay.gpu_calibration import is_gpu_calibration_dir
    from accelsim.replay.network import is_network_run
    from accelsim.replay.probe_power import priced_choice
    from accelsim.replay.traces import load as load_traces
    from kernels.errors import InputError

    cal_dir = cal_dirs[0]
    given = [o for o, v in (("--arch", arch), ("--set", set_), ("--calibrate-on", calibrate_on),
                            ("--calibrate-with", calibrate_with), ("--save-calibration", save_calibration)) if v]
    if given:
        raise InputError(f"--calibration {cal_dir}: a calibration directory brings its own arch and parameters; "
                         f"drop {', '.join(given)}")
    if is_gpu_calibration_dir(cal_dir):
        if len(cal_dirs) > 1:
            raise InputError(f"--calibration {cal_dirs[1]}: a GPU calibration directory is given once")
        _validate_with_gpu_dir(traces, cal_dir, plot, fmt)
        return
    loaded = [load_calibration_dir(d) for d in cal_dirs]
    table = load_traces(traces)
    if table.num_rows == 0 or not is_network_run(table):
        raise InputError(f"--calibration {cal_dir}: a calibration directory projects network runs (`accelsim run`); "
                         f"{traces} holds {'no trace rows' if table.num_rows == 0 else 'kernel traces'}")
    notes = [n for d, (_, _, doc) in zip(cal_dirs, loaded) for n in check_same_device(doc, table, str(d))]
    pick, cfg, cal, chosen, state = priced_choice(cal_dirs, loaded, table)
    notes = list(dict.fromkeys(notes + chosen))
    show_run(table, cfg, cal, f"{cal_dirs[pick]} (accelsim calibrate)", plot, fmt, str(traces), notes, state)


def _validate_with_gpu_dir(traces, cal_dir, plot, fmt) -> None:
    """Kernel traces of the calibrated GPU replayed on its arch with its saved device parameters."""
    from accelsim.replay.device import validate_gpu
    from accelsim.replay.calibration_dir import check_same_device
    from accelsim.replay.gpu_calibration import load_gpu_calibration_dir
    from accelsim.replay.network import is_network_run
    from accelsim.replay.traces import load as load_traces
    from kernels.errors import InputError

    cfg, cal_file, doc = load_gpu_calibration_dir(cal_dir)
    table = load_traces(traces)
    if table.num_rows == 0 or is_network_run(table):
        raise InputError(f"--calibration {cal_dir}: a GPU calibration directory replays kernel traces; {traces} holds "
                         f"{'no trace rows' if table.num_rows == 0 else 'a network run'}")
    notes = check_same_device({"device_name": doc.get("device")}, table, str(cal_dir))
    report = validate_gpu(table, cfg, calibration=cal_file)
    report["notes"] += notes
    _show_kernels(report, traces, plot, fmt)


def show_run(table, cfg, cal, cal_label, plot, fmt, traces: str, notes=(), box_state: dict | None = None) -> dict:
    """Compare a network run with its projection and print it (table or JSON); return the report. With a
    calibration directory, ``box_state`` is the run's state against it (``box_state.compared_state``)."""
    from accelsim.replay.network import compare_run, plot_run

    report = compare_run(table, cfg, cal)
    report["notes"] += list(notes)
    if box_state is not None:
        report["box_state"] = box_state
    if plot is not None:
        plot_run(report, plot)
    if fmt is Format.json:
        print_json(report)
    else:
        print_run(report, traces, cal_label, plot)
    return report


def _validate_run(table, cfg, calibrate_with, plot, fmt, traces: str) -> None:
    from accelsim.replay.network import calibration_from
    from accelsim.replay.traces import load as load_traces

    cal = calibration_from(load_traces(calibrate_with), cfg) if calibrate_with is not None else None
    show_run(table, cfg, cal, calibrate_with, plot, fmt, traces)


def _x(v):
    return "n/a" if v is None else f"{v:.3g}x"


def _pct(v):
    return "n/a" if v is None else f"{v:+.1%}"


def print_run(report: dict, traces: str, calibrate_with=None, plot: Path | None = None) -> None:
    """Per-layer table (dense and plan, projected vs measured) and a whole-run table with the gains."""
    from accelsim.replay.noise import format_range

    vs = report["variants"]
    dense = next((v for v in vs if v["plan"] == "dense"), None)
    plan = next((v for v in vs if v["plan"] != "dense"), None)
    cols = ["#", "layer", "plan kernel"]
    rows = []
    for v in (dense, plan):
        if v is not None:
            cols += [f"{'dense' if v is dense else 'plan'} meas s", f"{'dense' if v is dense else 'plan'} proj s"]
    if dense and plan:
        cols += ["gain meas", "meas range", "gain proj"]
    ref = plan or dense
    for i, l in enumerate(ref["layers"]):
        row = [l["index"], l["layer"], l["plan_kernel"]]
        for v in (dense, plan):
            if v is not None:
                row += [v["layers"][i]["measured_s"], v["layers"][i]["projected_s"]]
        if dense and plan:
            row += [l["measured_gain"], format_range(l["measured_gain_range"]), l["projected_gain"]]
        rows.append(row)
    cal = f"calibrated on {calibrate_with} ({report['calibration']['configs']} configs)" if report["calibration"] else "uncalibrated"
    print_table(f"validate run: {traces} on {report['arch']} ({cal})", cols, rows)
    wcols = ["variant", "meas s", "proj s", "time err", "meas J", "proj J", "meas EDP", "proj EDP", "EDP err"]
    wrows = [[v["plan"], v["run"]["measured_s"], v["run"]["projected_s"], _pct(v["run"]["time_error"]),
              _r(v["run"]["measured_j"]), v["run"]["projected_j"], _r(v["run"]["measured_edp"]),
              v["run"]["projected_edp"], _pct(v["run"]["edp_error"])] for v in vs]
    caption = [f"{k}: gain over dense, time measured {g['measured_time']:.3f}x (range over the passes "
               f"{format_range(g['measured_time_range'])}) vs projected {g['projected_time']:.3f}x; "
               f"EDP measured {_x(g['measured_edp'])} vs projected {_x(g['projected_edp'])}"
               for k, g in report["gain"].items()]
    if report["gain"]:
        caption.append("gain = dense time / plan time; meas range: dense fastest pass / plan slowest .. "
                       "dense slowest / plan fastest")
    caption += report["notes"] + ([f"plot: {plot}"] if plot is not None else [])
    print_table("whole run", wcols, wrows, caption="\n".join(caption))


def _split_groups(report: dict) -> list[dict]:
    """Group rows ('gemm bfloat16') of the families measured at more than one dtype."""
    groups = report.get("groups", [])
    fams = [g["family"].split()[0] for g in groups]
    return [g for g, f in zip(groups, fams) if fams.count(f) > 1]


_COLUMN_NOTE = ("mape_pct: mean |projected − measured| / measured, in %; pearson_r: correlation of projected with "
                "measured times (1: same ordering and proportions), pearson_r_log10: the same on log10 times, "
                "so small kernels weigh as much as large ones; worst: the configuration of largest error")


def print_validation(report: dict, traces: str, plot: Path | None = None) -> None:
    """The per-family table of a validation report, calibration and notes in the caption."""
    energy = report["energy_compared"]
    cols = ["family", "n", "mape_pct", "pearson_r", "pearson_r_log10", "worst kernel", "worst_ape_pct"]
    if energy:
        cols += ["energy_mape_pct", "edp_mape_pct"]
    rows = []
    for f in [*_split_groups(report), *report["families"], report["overall"]]:
        worst = f["worst"][0] if f["worst"] else {"label": "", "ape_pct": None}
        row = [f["family"], f["n"], f["mape_pct"], _r(f["pearson_r"]), _r(f["pearson_r_log10"]),
               worst["label"] if f["family"] != "all" else "", _r(worst["ape_pct"])]
        if energy:
            row += [f.get("energy", {}).get("mape_pct", "n/a"), f.get("edp", {}).get("mape_pct", "n/a")]
        rows.append(row)
    cal = report["calibration"]
    caption = list(report["notes"]) + [_COLUMN_NOTE]
    if cal and cal.get("model") == "gpu-units":
        caption.append(f"device calibration: {cal['source']}")
        for name, p in cal["params"].items():
            caption.append(f"  {name} = {p['value']:.4g} in [{p['lower']:g}, {p['upper']:g}]: {p['meaning']}")
        caption.append("largest errors: " + "; ".join(
            f"{d['label']} {d['ape_pct']:.0f} % ({100 * d['share_of_squared_error']:.0f} % of squared error)"
            for d in cal["dominant"][:3]))
    elif cal:
        from accelsim.replay.calibrate import MIN_FAMILY_FIT

        for fam, p in cal["params"].items():
            caption.append(f"{fam}: launch_overhead_s={_g(p['launch_overhead_s'])}, threaded_call_s="
                           f"{_g(p.get('threaded_call_s', 0.0))}, compute_efficiency="
                           f"{_g(p['compute_efficiency'])}, bandwidth_fraction={_g(p['bandwidth_fraction'])} "
                           f"({p['source']})")
        if any(p["source"] == "global" for p in cal["params"].values()):
            caption.append(f"(global): under {MIN_FAMILY_FIT} training configurations, so this family uses the fit "
                           "over all")
    if plot is not None:
        caption.append(f"plot: {plot}")
    title = f"validate: {traces} on {report['arch']}" + (
        f" (calibrated on {cal['train']}, held out {cal['held_out']}, seed {cal['seed']})" if cal and cal.get("held_out")
        else f" ({cal['source']})" if cal and cal.get("model") else " (uncalibrated)")
    print_table(title, cols, rows, caption="\n".join(caption))


def register(app: typer.Typer) -> None:
    """Attach ``validate`` to ``app`` (idempotent, so tests may register it before the CLI does)."""
    if not any(c.name == "validate" for c in app.registered_commands):
        app.command("validate")(validate)
