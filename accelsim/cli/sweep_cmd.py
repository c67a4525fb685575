"""`accelsim sweep` (run a design-space grid) and `accelsim sweep pareto` (the front of stored results).

``sweep`` is a typer group whose callback runs the sweep when no subcommand follows
(``invoke_without_command``), so ``accelsim sweep --arch ...`` and ``accelsim sweep pareto ...``
both work; the callback's options are therefore optional and checked by hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from accelsim.checks import MAX_WORKERS_PER_CPU, ensure_writable
from accelsim.cli._mapping import MapperKind, MapperOpt, Objective, ObjectiveOpt, mapper_of
from accelsim.cli._common import Format, FormatOpt, console, on_interrupt, print_json, print_table, progress_bar
from accelsim.errors import ConfigError

# Library modules are imported inside the commands: start-up time (every command module loads for `--help`).
__all__ = ["pareto_cmd", "register", "sweep", "sweep_app"]

sweep_app = typer.Typer(
    name="sweep",
    help="Design-space sweeps (Dask when available) and their Pareto fronts.",
    invoke_without_command=True,
)

_GRID_HELP = ("key.path=v1,v2,... (repeatable; the cartesian product is swept). Values are YAML as in --set; "
              "commas inside [...] do not split, or use ';' between values: compute.sparsity.patterns=[2:4];[1:4,2:4]")
_FIXED = {"key", "config_key", "arch", "workload"}


def register(app: typer.Typer) -> None:
    """Attach the ``sweep`` group to the top-level app."""
    app.add_typer(sweep_app, name="sweep")


def _param_columns(rows: list[dict]) -> list[str]:
    from accelsim.explore.sweep import METRICS

    cols: list[str] = []
    for r in rows:
        cols.extend(c for c in r if c not in _FIXED and c not in METRICS and c not in cols)
    return cols


def _print_fronts(fronts: dict, x: str, y: str, caption: str | None = None, max_x=False, max_y=False) -> None:
    sense = f"{'max' if max_x else 'min'} {x}, {'max' if max_y else 'min'} {y}"
    for n, (w, (rows, front)) in enumerate(fronts.items()):
        params = _param_columns(rows)
        extra = [c for c in ("cycles", "energy_pj", "edp", "area_mm2") if c not in (x, y)]
        print_table(f"Pareto front, {w}: {len(front)} of {len(rows)} points ({sense})",
                    [*params, x, y, *extra], [[rows[i][c] for c in (*params, x, y, *extra)] for i in front],
                    caption=caption if n == len(fronts) - 1 else None)


def _run_with_progress(show: bool, out: Path | None, **kw):
    """Run the sweep; on Ctrl-C or SIGTERM the finished points are flushed and one line says how many."""
    from accelsim.explore.sweep import run_sweep

    count = {"done": 0, "total": None}

    def progress(done, total):
        count.update(done=done, total=total)
        if bar is not None:
            bar.update(task, completed=done, total=total)

    def kept() -> str:
        done = f"{count['done']} of {count['total']} new points finished"
        if out is None:
            return f"{done}; nothing kept (no --out)"
        return f"{done}; all of them are stored in {out}, re-run the same command to resume"

    bar = task = None
    with on_interrupt(kept):
        if not show:
            return run_sweep(out=out, progress=progress, **kw)
        with progress_bar("[bold]sweep", rate="points") as bar:
            task = bar.add_task("sweep", total=None)
            return run_sweep(out=out, progress=progress, **kw)


@sweep_app.callback()
def sweep(
    ctx: typer.Context,
    arch: Optional[str] = typer.Option(None, "--arch", help="base arch config YAML or built-in name"),
    grid: Optional[list[str]] = typer.Option(None, "--grid", help=_GRID_HELP),
    workload: Optional[list[str]] = typer.Option(None, "--workload", help="built-in network, CSV, YAML or .onnx (repeatable)"),
    params: Optional[list[str]] = typer.Option(None, "--param", help="network parameter name=value for every --workload, "
                                               "e.g. batch=8 (an ONNX model's symbolic dimension)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="address of a running Dask scheduler"),
    workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                          help="local Dask worker processes (default: CPU count; 0 = in-process)"),
    no_dask: bool = typer.Option(False, "--no-dask", help="run in-process, sequentially, without Dask"),
    out: Optional[Path] = typer.Option(None, "--out", help="parquet dataset directory; re-runs skip stored points. "
                                       "A damaged part file in it stops the sweep with a line naming it: move or "
                                       "delete it and re-run (its points are computed again)"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG of EDP vs area with the Pareto front"),
    mapper: MapperKind = MapperOpt,
    objective: Objective = ObjectiveOpt,
    fmt: Format = FormatOpt,
):
    """Sweep a grid of config overrides over workloads; every point is validated before any runs.

    Subcommand: `accelsim sweep pareto RESULTS --x area_mm2 --y edp`.
    """
    if ctx.invoked_subcommand is not None:
        return
    if arch is None and not grid and not workload:
        console.print(ctx.get_help())
        return
    if arch is None:
        raise ConfigError("--arch: required, the base config every --grid point overrides")
    if not workload:
        raise ConfigError("--workload: required (repeatable), e.g. --workload resnet50")
    if not grid:
        raise ConfigError("--grid: give at least one key.path=v1,v2,... to sweep")
    if scheduler is not None and no_dask:
        raise ConfigError(f"--scheduler {scheduler} --no-dask: a scheduler runs on Dask; drop one of the two")
    if workers is not None and workers > MAX_WORKERS_PER_CPU * (os.cpu_count() or 1):
        raise ConfigError(f"--workers {workers}: more than {MAX_WORKERS_PER_CPU} local processes per CPU "
                          f"({MAX_WORKERS_PER_CPU * (os.cpu_count() or 1)} here); use --scheduler for a cluster")
    if out is not None:
        ensure_writable(out, directory=True)
    if plot is not None:
        ensure_writable(plot, "--plot", suffixes=(".png",), inputs=(arch, *workload, out))
    from accelsim.model.arch import parse_overrides

    res = _run_with_progress(fmt is Format.table, arch=arch, grid=list(grid), workloads=list(workload),
                             params=parse_overrides(params, source="--param"),
                             out=out, scheduler=scheduler, workers=workers, dask=not no_dask,
                             mapper=mapper_of(mapper, objective))
    summary = {"points": len(res.rows), "computed": res.computed, "reused": res.reused, "mode": res.mode,
               "wall_s": res.wall_s, "points_per_s": res.points_per_s if res.computed else None,
               "out": str(res.out) if res.out else None}
    fronts = None
    if plot is not None or fmt is Format.table:
        import pyarrow as pa

        from accelsim.explore.pareto import plot_pareto, sweep_fronts

        x, y, fronts = sweep_fronts(pa.Table.from_pylist(res.rows), "area_mm2", "edp")
        if plot is not None:
            plot_pareto(fronts, x, y, plot)
    if fmt is Format.json:
        print_json({**summary, "rows": res.rows})
        return
    rate = f", {res.points_per_s:,.1f} points/s" if res.computed else ""
    _print_fronts(fronts, "area_mm2", "edp",
                  caption=f"{res.computed} computed, {res.reused} reused ({res.mode}) in {res.wall_s:.2f} s{rate}"
                  + (f" · {res.out}" if res.out else ""))


@sweep_app.command("pareto")
def pareto_cmd(
    results: Path = typer.Argument(..., help="sweep results: dataset directory or parquet file"),
    x: str = typer.Option("area_mm2", "--x", help="column on the x axis (area = area_mm2)"),
    y: str = typer.Option("edp", "--y", help="column on the y axis"),
    workload: Optional[list[str]] = typer.Option(None, "--workload", help="only these workloads (repeatable)"),
    max_x: bool = typer.Option(False, "--max-x", help="maximise x instead of minimising it"),
    max_y: bool = typer.Option(False, "--max-y", help="maximise y instead of minimising it"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG of all points with the front highlighted"),
    fmt: Format = FormatOpt,
):
    """Pareto front of stored sweep results, one per workload (both axes minimised by default)."""
    from accelsim.explore.pareto import plot_pareto, sweep_fronts
    from accelsim.explore.store import read_results

    if plot is not None:
        ensure_writable(plot, "--plot", suffixes=(".png",), inputs=(results,))
    table = read_results(results)
    x, y, fronts = sweep_fronts(table, x, y, workloads=workload, maximize_x=max_x, maximize_y=max_y)
    if plot is not None:
        plot_pareto(fronts, x, y, plot)
    if fmt is Format.json:
        print_json({"x": x, "y": y, "fronts": {w: [rows[i] for i in front] for w, (rows, front) in fronts.items()},
                    "points": {w: len(rows) for w, (rows, _) in fronts.items()}})
        return
    _print_fronts(fronts, x, y, max_x=max_x, max_y=max_y)
