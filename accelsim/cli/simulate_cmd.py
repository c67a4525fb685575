"""`accelsim simulate`, `compare` and `demo`: run workloads on arch configs and print results."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from accelsim.checks import ensure_writable
from accelsim.cli._common import Format, FormatOpt, console, print_json, print_table, progress_bar
from accelsim.cli._mapping import MapperKind, MapperOpt, Objective, ObjectiveOpt, mapper_of
from accelsim.cli.validate_cmd import print_validation
from accelsim.errors import ConfigError

if TYPE_CHECKING:
    from accelsim.model.simulate import Report

__all__ = ["DEMO_GUIDE", "compare", "demo", "overridden_name", "register", "run_simulation", "simulate_cmd"]

SetOpt = typer.Option(None, "--set", help="override a config field: key.path=value (repeatable)")
ParamOpt = typer.Option(None, "--param", help="built-in network parameter: name=value, e.g. seq_len=512")
WeightSparsityOpt = typer.Option(
    None, "--weight-sparsity", help="set every layer's weight sparsity (not the attention scores, which have no "
    "static weight): 2:4, u0.3, tasd:2:4+1:4 or dense; the workload name gets ' (weights SPEC)'")


def run_simulation(arch: str, workload: str, sets: list[str] | None, params: list[str] | None, show: bool,
                   weight_sparsity: str | None = None, mapper=None) -> Report:
    """Load, validate, simulate; a progress bar on the terminal for multi-layer networks. With ``--set``
    overrides the report's arch is named after them (``systolic_ws_32x32 (compute.rows=64)``): it no
    longer describes the built-in config, and tables, JSON and plots should say so."""
    # Imported here, as in every command module: the model (pydantic, numpy, networkx, simpy) is most
    # of start-up, and `accelsim --help` or another command should not pay for it.
    from accelsim.model.arch import load_arch, parse_overrides
    from accelsim.model.simulate import simulate
    from accelsim.model.workloads import as_network

    if weight_sparsity is not None and not weight_sparsity.strip():
        raise ConfigError("--weight-sparsity: empty; give 2:4, u0.3, tasd:2:4+1:4 or dense")
    cfg = load_arch(arch, parse_overrides(sets))
    net = as_network(workload, weight_sparsity=weight_sparsity, **parse_overrides(params, source="--param"))
    how = {} if mapper is None else {"mapper": mapper}
    if show:
        with progress_bar() as bar:
            task = bar.add_task(f"{cfg.name}", total=None)

            def tick(i, n, name):
                bar.update(task, completed=i, total=n, description=f"{cfg.name}: {name}")

            report = simulate(cfg, net, progress=tick, **how)
    else:
        report = simulate(cfg, net, **how)
    return dataclasses.replace(report, arch=overridden_name(report.arch, sets)) if sets else report


def overridden_name(name: str, sets: list[str]) -> str:
    """``name (key=value, ...)``: a config named after the ``--set`` overrides applied to it, as typed."""
    return f"{name} ({', '.join(s.strip() for s in sets)})"


def _loops(loops) -> str:
    return " ".join(f"{d}{n}" for d, n in loops) or "-"


def _mapping_table(report: Report) -> None:
    """Each searched layer's loop nest: backing-store loops, the on-chip tile and its folds, the array."""
    rows = []
    for l in report.layers:
        m = l.detail.get("mapping")
        if m is None:
            continue
        for i, part in enumerate(m.get("passes", [m])):
            levels = part["nest"]
            tile = levels[1].get("tile", {})
            rows.append([l.name + (f".t{i}" if "passes" in m else ""), f"{levels[0]['level']}: {_loops(levels[0].get('loops', []))}"
                         + (f" ({levels[0]['walk']})" if "walk" in levels[0] else ""),
                         " ".join(f"{d}={t}" for d, t in tile.items()), _loops(levels[1].get("loops", [])),
                         _loops(levels[2].get("spatial", [])) + " / " + _loops(levels[2].get("loops", []))
                         if len(levels) > 2 else f"split_k {levels[0].get('split_k', 1)}"])
    if rows:
        print_table("mapping per layer (loops outer → inner as dimension and trip count; a serpentine walk runs "
                    "each loop back when the loop outside it steps)",
                    ["layer", "backing store loops", "on-chip tile", "folds over the tile", "array spatial / streamed"],
                    rows)
    else:
        console.print("no searched mappings to show: --show-mapping goes with --mapper search", highlight=False)


def _table(report: Report) -> None:
    rows = [[l.name, l.cycles, l.compute_cycles, l.stall_cycles, l.utilization, l.macs, l.energy_pj, l.edp]
            for l in report.layers]
    t = report.total
    rows.append(["TOTAL", t["cycles"], t["compute_cycles"], t["stall_cycles"], t["utilization"], t["macs"],
                 t["energy_pj"], t["edp"]])
    traffic = ", ".join(f"{lvl} {b / 1e6:,.2f} MB" for lvl, b in t["traffic_bytes"].items())
    skipped = ", ".join(f"{op} {n}" for op, n in report.not_modelled.items())
    print_table(f"{report.workload} on {report.arch}",
                ["layer", "cycles", "compute", "stall", "util", "MACs", "energy pJ", "EDP pJ·cyc"], rows,
                caption=f"{report.seconds * 1e3:,.3f} ms at the arch clock · traffic: {traffic}"
                + (f" · not modelled (no MACs): {skipped}" if skipped else ""))


def simulate_cmd(
    arch: str = typer.Option(..., "--arch", help="arch config YAML or built-in name"),
    workload: str = typer.Option(..., "--workload", help="built-in network, SCALE-Sim topology CSV, workload YAML or .onnx model"),
    sets: Optional[list[str]] = SetOpt,
    params: Optional[list[str]] = ParamOpt,
    weight_sparsity: Optional[str] = WeightSparsityOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="write the report to .json or .parquet"),
    mapper: MapperKind = MapperOpt,
    objective: Objective = ObjectiveOpt,
    show_mapping: bool = typer.Option(False, "--show-mapping", help="print each layer's searched loop nest"),
    fmt: Format = FormatOpt,
):
    """Simulate a workload on an architecture: cycles, traffic, energy and EDP per layer and in total."""
    if out is not None:
        ensure_writable(out, suffixes=(".json", ".parquet"), inputs=(arch, workload))
    report = run_simulation(arch, workload, sets, params, show=fmt is Format.table, weight_sparsity=weight_sparsity,
                            mapper=mapper_of(mapper, objective))
    if out is not None:
        from accelsim.model.report_io import write_report  # start-up: pyarrow only when writing

        write_report(report, out)
    if fmt is Format.json:
        print_json(report.to_dict())
    else:
        _table(report)
        if show_mapping:
            _mapping_table(report)


def compare(
    arch: list[str] = typer.Option(..., "--arch", help="two or more arch configs; the first is the baseline"),
    workload: str = typer.Option(..., "--workload"),
    sets: Optional[list[str]] = SetOpt,
    params: Optional[list[str]] = ParamOpt,
    weight_sparsity: Optional[str] = WeightSparsityOpt,
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG of the energy breakdown and EDP per arch"),
    mapper: MapperKind = MapperOpt,
    objective: Objective = ObjectiveOpt,
    fmt: Format = FormatOpt,
):
    """Compare architectures on one workload: speedup, energy and EDP ratios against the first."""
    from accelsim.explore.compare import compare_reports  # start-up (see run_simulation)

    if len(arch) < 2:
        raise ConfigError(f"--arch: compare needs at least two configs, got {len(arch)}")
    if plot is not None:
        ensure_writable(plot, "--plot", suffixes=(".png",), inputs=(*arch, workload))
    how = mapper_of(mapper, objective)
    reports = [run_simulation(a, workload, sets, params, show=False, weight_sparsity=weight_sparsity, mapper=how)
               for a in arch]
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
    layer_rows = [[l["name"], *[_x(s, "x") for s in l["speedup"]], *[_x(e) for e in l["edp_ratio"]]]
                  for l in cmp["layers"]]
    names = [a["arch"] for a in cmp["archs"]]
    if len(layer_rows) <= 80:
        print_table("per layer", ["layer", *[f"speedup {n}" for n in names], *[f"EDP× {n}" for n in names]], layer_rows)


def _x(v, unit: str = "") -> str:
    return "n/a" if v is None else f"{v:.2f}{unit}"


#: What each demo section shows and how to read it, printed before the section.
DEMO_GUIDE = {
    "systolic": (
        "1/3  ResNet-50 (224x224, batch 1) on a 32x32 weight-stationary systolic array, one row per layer. "
        "cycles = compute + stall (cycles spent waiting for memory); util = useful MACs per cycle over the "
        "array's 1,024; energy prices every counted action (MACs, buffer and DRAM bytes) from the arch's "
        "energy table; EDP = energy x cycles. Lower cycles, energy and EDP are better."),
    "sparse": (
        "2/3  BERT-base (128 tokens) with every weight pruned 2:4, on a dense tensor core and on a 2:4 sparse "
        "tensor core that skips the zeros (as `accelsim compare --weight-sparsity 2:4` runs it). "
        "speedup = dense cycles / sparse cycles; energy x and EDP x below 1 mean the sparse core saves that much."),
    "replay": (
        "3/3  Kernel timings measured on real devices (committed in traces/) replayed through the simulator. "
        "Half of the configurations fit, per kernel family, launch_overhead_s (seconds added per launch) and "
        "two scales: compute_efficiency and bandwidth_fraction, the measured speed as a fraction of the arch "
        "config's peak compute and memory rates. A fitted value above 1 does not mean hardware beat its peak: "
        "it means the model over-counts that part's cost for the family (for example traffic a cache absorbed) "
        "and the fit scales it down, so it flags where the model needs work. The other half is held out: "
        "mape_pct is the mean of |projected - measured| / measured (10 means projections are typically within "
        "10 % of the measurement), pearson_r is 1 when the model ranks configurations exactly as measured. "
        "Trust a family for design decisions when its MAPE is low, its r close to 1 and its n large enough "
        "to mean something. The H200 set (this project's own kernels) runs on the GPU unit model instead: "
        "each record is described by its implementation (which unit, launches, memory passes, host calls) "
        "and one calibration of six bounded device parameters (costs in seconds, efficiencies in (0, 1]) "
        "serves every family."),
}


def _say(key: str) -> None:
    console.print(DEMO_GUIDE[key], markup=False, highlight=False)


def demo(fmt: Format = FormatOpt):
    """Built-in demo: ResNet-50 on a 32x32 WS systolic array, dense vs 2:4 sparse tensor cores on
    BERT-base, and the committed kernel traces replayed through the simulator. Each section opens
    with a sentence on what it shows and how to read it."""
    from accelsim.explore import demo as runs  # start-up (see run_simulation)

    show = fmt is Format.table
    if show:
        _say("systolic")
    report = run_simulation(*runs.headline(), None, None, show=show)
    if fmt is Format.json:
        print_json(report.to_dict())
        return
    _table(report)
    cmp = runs.sparse_comparison()
    if cmp is not None:
        _say("sparse")
        rows = [[a["arch"], a["cycles"], a["speedup"], a["energy_ratio"], a["edp_ratio"]] for a in cmp["archs"]]
        print_table("BERT-base (seq 128), weights pruned 2:4: dense vs sparse tensor core",
                    ["arch", "cycles", "speedup", "energy ×", "EDP ×"], rows)
    replays = list(runs.trace_replays())
    if replays:
        _say("replay")
    for name, validation in replays:
        print_validation(validation, f"committed traces {name}")
    console.print("\nNext, try (outputs go to out/):", highlight=False)
    for command, what in runs.next_commands():
        console.print(f"  {command}   # {what}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Attach ``simulate``, ``compare`` and ``demo`` to the top-level app."""
    app.command("simulate")(simulate_cmd)
    app.command("compare")(compare)
    app.command("demo")(demo)

