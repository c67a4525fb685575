"""`accelsim simulate`, `compare` and `demo`: run workloads on arch configs and print results."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from accelsim.cli._common import Format, FormatOpt, print_json, print_table, progress_bar
from accelsim.cli.validate_cmd import print_validation
from accelsim.errors import ConfigError

if TYPE_CHECKING:
    from accelsim.model.simulate import Report

__all__ = ["compare", "demo", "register", "run_simulation", "simulate_cmd"]

SetOpt = typer.Option(None, "--set", help="override a config field: key.path=value (repeatable)")
ParamOpt = typer.Option(None, "--param", help="built-in network parameter: name=value, e.g. seq_len=512")


def run_simulation(arch: str, workload: str, sets: list[str] | None, params: list[str] | None, show: bool) -> Report:
    """Load, validate, simulate; a progress bar on the terminal for multi-layer networks."""
    # Imported here, as in every command module: the model (pydantic, numpy, networkx, simpy) is most
    # of start-up, and `accelsim --help` or another command should not pay for it.
    from accelsim.model.arch import load_arch, parse_overrides
    from accelsim.model.simulate import simulate

    cfg = load_arch(arch, parse_overrides(sets))
    kw = parse_overrides(params, source="--param")
    if not show:
        return simulate(cfg, workload, **kw)
    with progress_bar() as bar:
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
        from accelsim.model.report_io import write_report  # start-up: pyarrow only when writing

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
    from accelsim.explore.compare import compare_reports  # start-up (see run_simulation)

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
    from accelsim.explore import demo as runs  # start-up (see run_simulation)

    report = run_simulation(*runs.headline(), None, None, show=fmt is Format.table)
    if fmt is Format.json:
        print_json(report.to_dict())
        return
    _table(report)
    cmp = runs.sparse_comparison()
    if cmp is not None:
        rows = [[a["arch"], a["cycles"], a["speedup"], a["energy_ratio"], a["edp_ratio"]] for a in cmp["archs"]]
        print_table("BERT-base (seq 128), weights pruned 2:4: dense vs sparse tensor core",
                    ["arch", "cycles", "speedup", "energy ×", "EDP ×"], rows)
    for name, validation in runs.trace_replays():
        print_validation(validation, f"committed traces {name}")


def register(app: typer.Typer) -> None:
    """Attach ``simulate``, ``compare`` and ``demo`` to the top-level app."""
    app.command("simulate")(simulate_cmd)
    app.command("compare")(compare)
    app.command("demo")(demo)

