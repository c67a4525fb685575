"""`accelsim simulate`, `compare` and `demo`: run workloads on arch configs and print results."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from accelsim.model.arch import load_arch, parse_overrides
from accelsim.cli._common import Format, FormatOpt, console, print_json, print_table
from accelsim.explore.compare import compare_reports
from accelsim.model.report_io import write_report
from accelsim.model.simulate import Report, simulate

__all__ = ["compare", "demo", "register", "run_simulation", "simulate_cmd"]

SetOpt = typer.Option(None, "--set", help="override a config field: key.path=value (repeatable)")
ParamOpt = typer.Option(None, "--param", help="built-in network parameter: name=value, e.g. seq_len=512")


def run_simulation(arch: str, workload: str, sets: list[str] | None, params: list[str] | None, show: bool) -> Report:
    """Load, validate, simulate; a progress bar on the terminal for multi-layer networks."""
    cfg = load_arch(arch, parse_overrides(sets))
    kw = parse_overrides(params, source="--param")
    if not show:
        return simulate(cfg, workload, **kw)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(f"{cfg.name}", total=None)

        def tick(i, n, name):
            bar.update(task, completed=i, total=n, description=f"{cfg.name}: {name}")

        return simulate(cfg, workload, progress=tick, **kw)


def _table(report: Report) -> None:
    rows = [[l.name, l.cycles, l.compute_cycles, l.stall_cycles, l.utilization, l.macs, l.energy_pj, l.edp]
            for l in report.layers]
    t = report.total
    rows.append(["TOTAL", t["cycles"], t["compute_cycles"], t["stall_cycles"], t["utilization"], t["macs"],
                 t["energy_pj"], t["edp"]])
    traffic = ", ".join(f"{lvl} {b / 1e6:,.2f} MB" for lvl, b in t["traffic_bytes"].items())
    print_table(f"{report.workload} on {report.arch}",
                ["layer", "cycles", "compute", "stall", "util", "MACs", "energy pJ", "EDP pJ·cyc"], rows,
                caption=f"{report.seconds * 1e3:,.3f} ms at the arch clock · traffic: {traffic}")


def simulate_cmd(
    arch: str = typer.Option(..., "--arch", help="arch config YAML or built-in name"),
    workload: str = typer.Option(..., "--workload", help="built-in network, SCALE-Sim topology CSV or workload YAML"),
    sets: Optional[list[str]] = SetOpt,
    params: Optional[list[str]] = ParamOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="write the report to .json or .parquet"),
    fmt: Format = FormatOpt,
):
    """Simulate a workload on an architecture: cycles, traffic, energy and EDP per layer and in total."""
    report = run_simulation(arch, workload, sets, params, show=fmt is Format.table)
    if out is not None:
        write_report(report, out)
    if fmt is Format.json:
        print_json(report.to_dict())
    else:
        _table(report)


def compare(
    arch: list[str] = typer.Option(..., "--arch", help="two or more arch configs; the first is the baseline"),
    workload: str = typer.Option(..., "--workload"),
    sets: Optional[list[str]] = SetOpt,
    params: Optional[list[str]] = ParamOpt,
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG of the energy breakdown and EDP per arch"),
    fmt: Format = FormatOpt,
):
    """Compare architectures on one workload: speedup, energy and EDP ratios against the first."""
    from accelsim.errors import ConfigError

    if len(arch) < 2:
        raise ConfigError(f"--arch: compare needs at least two configs, got {len(arch)}")
    reports = [run_simulation(a, workload, sets, params, show=False) for a in arch]
    cmp = compare_reports(reports)
    if plot is not None:
        from accelsim.plots import plot_comparison

        plot_comparison(reports, plot)
    if fmt is Format.json:
        print_json(cmp)
        return
    base = cmp["baseline"]
    rows = [[a["arch"], a["cycles"], a["speedup"], a["energy_pj"], a["energy_ratio"], a["edp_ratio"]] for a in cmp["archs"]]
    print_table(f"{cmp['workload']}: against {base}", ["arch", "cycles", "speedup", "energy pJ", "energy ×", "EDP ×"], rows,
                caption="ratios are arch / baseline (speedup = baseline cycles / arch cycles)")
    layer_rows = [[l["name"], *[f"{s:.2f}x" for s in l["speedup"]], *[f"{e:.2f}" for e in l["edp_ratio"]]]
                  for l in cmp["layers"]]
    names = [a["arch"] for a in cmp["archs"]]
    if len(layer_rows) <= 80:
        print_table("per layer", ["layer", *[f"speedup {n}" for n in names], *[f"EDP× {n}" for n in names]], layer_rows)


def demo(fmt: Format = FormatOpt):
    """Built-in demo: ResNet-50 on a 32x32 WS systolic array, dense vs 2:4 sparse tensor cores on
    BERT-base, and the committed kernel traces replayed through the simulator."""
    report = run_simulation("systolic_ws_32x32", "resnet50", None, None, show=fmt is Format.table)
    if fmt is Format.json:
        print_json(report.to_dict())
        return
    _table(report)
    from accelsim.model.arch import builtin_archs

    if {"dense_tc", "stc_2of4"} <= set(builtin_archs()):
        from accelsim.model.workloads import bert_base
        from accelsim.model.workload import Sparsity

        net = bert_base(128).with_sparsity(weight=Sparsity.parse("2:4"))
        reports = [simulate(load_arch(a), net) for a in ("dense_tc", "stc_2of4")]
        cmp = compare_reports(reports)
        rows = [[a["arch"], a["cycles"], a["speedup"], a["energy_ratio"], a["edp_ratio"]] for a in cmp["archs"]]
        print_table("BERT-base (seq 128), weights pruned 2:4: dense vs sparse tensor core",
                    ["arch", "cycles", "speedup", "energy ×", "EDP ×"], rows)
    _demo_replay()


def register(app: typer.Typer) -> None:
    """Attach ``simulate``, ``compare`` and ``demo`` to the top-level app."""
    app.command("simulate")(simulate_cmd)
    app.command("compare")(compare)
    app.command("demo")(demo)


#: Committed trace sets the demo replays, each on the arch config of its device.
DEMO_TRACES = (("cpu-amd-epyc-2vcpu", "cpu_numpy"), ("nvidia-h100-sxm-xla", "h100_sxm"))


def _demo_replay() -> None:
    """Replay the committed traces on their devices' archs: the measure → project → compare loop."""
    from accelsim.model.arch import ARCH_DIR
    from accelsim.replay.calibrate import validate as run_validate
    from accelsim.cli.validate_cmd import print_validation
    from kernels.trace import read_traces

    for name, arch in DEMO_TRACES:
        traces = ARCH_DIR.parent / "traces" / name
        if traces.is_dir():
            report = run_validate(read_traces(traces), load_arch(arch), 0.5, 0)
            print_validation(report, f"committed traces {traces.name}")
