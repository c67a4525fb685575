"""`accelsim traces summarize|compare|roofline`: thin front end over :mod:`accelsim.replay.traces`."""

from __future__ import annotations

from pathlib import Path

import typer

from accelsim.checks import ensure_writable
from accelsim.cli._common import Format, FormatOpt, print_json, print_table

# Library modules are imported inside the commands: start-up time (every command module loads for `--help`).
__all__ = ["compare", "import_xla", "register", "roofline", "summarize", "traces_app"]

traces_app = typer.Typer(help="Analyse kernel traces (parquet).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the ``traces`` group to the top-level app."""
    app.add_typer(traces_app, name="traces")

_COLS = ["kernel", "dtype", "m", "n", "k", "pattern", "time_s", "tflops_dense_equiv", "gbs", "speedup_vs_dense"]


@traces_app.command("summarize")
def summarize(path: Path = typer.Argument(..., help="trace file or directory"), fmt: Format = FormatOpt) -> None:
    """Per-kernel table: time, achieved TFLOP/s and GB/s, speedup over dense at equal shape."""
    from accelsim.replay import traces
    rows = traces.summarize(traces.load(path))
    if fmt is Format.json:
        print_json(rows)
        return
    devices = sorted({f"{r['device']} ({r['backend']})" for r in rows})
    print_table(f"traces: {path}", _COLS, [[r[c] for c in _COLS] for r in rows], caption="; ".join(devices))


@traces_app.command("compare")
def compare(
    a: Path = typer.Argument(..., help="baseline trace file or directory"),
    b: Path = typer.Argument(..., help="trace to compare against the baseline"),
    fmt: Format = FormatOpt,
) -> None:
    """Configurations present in both: times and speedup of B over A (time_a / time_b)."""
    from accelsim.replay import traces
    rows = traces.compare(traces.load(a), traces.load(b))
    if fmt is Format.json:
        print_json(rows)
        return
    cols = ["kernel", "dtype", "m", "n", "k", "pattern", "time_a_s", "time_b_s", "speedup"]
    print_table(f"compare: {a} vs {b}", cols, [[r[c] for c in cols] for r in rows])


@traces_app.command("roofline")
def roofline(
    path: Path = typer.Argument(..., help="trace file or directory"),
    plot: Path = typer.Option(None, "--plot", help="write a PNG roofline here"),
    peak_tflops: float = typer.Option(None, "--peak-tflops", help="override the peak compute rate"),
    peak_gbs: float = typer.Option(None, "--peak-gbs", help="override the peak memory bandwidth"),
    fmt: Format = FormatOpt,
) -> None:
    """Each configuration against the device roof (datasheet for known GPUs, documented CPU estimate)."""
    from accelsim.replay import traces
    if plot is not None:
        ensure_writable(plot, "--plot", suffixes=(".png",))
    result = traces.roofline(traces.load(path), peak_tflops, peak_gbs)
    if plot is not None:
        traces.plot_roofline(result, plot)
    if fmt is Format.json:
        print_json(result)
        return
    cols = ["kernel", "dtype", "m", "n", "k", "pattern", "intensity", "tflops_effectual", "roof_tflops", "fraction_of_roof"]
    print_table(
        f"roofline: {path}",
        cols,
        [[p[c] for c in cols] for p in result["points"]],
        caption=f"peak {result['peak_tflops']:.3g} TFLOP/s, {result['peak_gbs']:.3g} GB/s ({result['peak_source']})"
        + (f"; plot: {plot}" if plot else ""),
    )


@traces_app.command("import-xla")
def import_xla(
    table: Path = typer.Argument(..., help="OpenXLA GemmPerfTable: .txtpb text, a shared library holding it, "
                                 "or a wheel holding that library (pip download --no-deps jax-cuda12-pjrt)"),
    device: str = typer.Option(..., "--device", help="the table's device key, e.g. sm_90"),
    device_name: str = typer.Option(..., "--device-name", help="device_name to record, e.g. 'NVIDIA H100 SXM (sm_90)'"),
    out: Path = typer.Option(..., "--out", help="trace directory to write the part file into"),
    dtypes: list[str] = typer.Option(None, "--dtype", help="keep only this XLA dtype triple, e.g. "
                                     "bf16xbf16->bf16 (repeatable; default: every same-type triple)"),
) -> None:
    """GEMM timings that OpenXLA measured on a GPU, as trace records that `accelsim validate` replays."""
    from kernels.trace.importers import read_gemm_perf_table, write_xla_gemm_traces

    ensure_writable(out, directory=True)
    text = read_gemm_perf_table(table)
    source = f"OpenXLA GemmPerfTable from {table.name}, device {device}"
    dest, n = write_xla_gemm_traces(text, device, device_name, out, source, set(dtypes) if dtypes else None)
    print(f"wrote {n} records of {device} to {dest}")
