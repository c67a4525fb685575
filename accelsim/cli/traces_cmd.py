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

_COLS = ["config", "time_s", "tflops_dense_equiv", "gbs", "speedup_vs_dense"]
_SUMMARY_NOTE = ("config: kernel dtype shape and what tells it apart (pattern/series, layout, Kron factors, impl); "
                 "time_s: median over runs of the per-call median; tflops_dense_equiv: dense-GEMM FLOPs / time; "
                 "gbs: minimum bytes / time; speedup_vs_dense: dense gemm time at equal shape / this time")


def _with_device(cols: list[str], rows: list[dict], key: str = "device") -> list[str]:
    """``cols`` with a device column after the first when ``rows`` come from more than one device."""
    return cols[:1] + [key] + cols[1:] if len({r[key] for r in rows}) > 1 else cols


@traces_app.command("summarize")
def summarize(path: Path = typer.Argument(..., help="trace file or directory"), fmt: Format = FormatOpt) -> None:
    """Per-configuration table: time, achieved TFLOP/s and GB/s, speedup over dense at equal shape."""
    from accelsim.replay import traces
    rows = traces.summarize(traces.load(path))
    if fmt is Format.json:
        print_json(rows)
        return
    devices = sorted({f"{r['device']} ({r['backend']})" for r in rows})
    cols = _with_device(_COLS, rows)
    print_table(f"traces: {path}", cols, [[r[c] for c in cols] for r in rows],
                caption="; ".join(devices) + "\n" + _SUMMARY_NOTE)


@traces_app.command("compare")
def compare(
    a: Path = typer.Argument(..., help="baseline trace file or directory"),
    b: Path = typer.Argument(..., help="trace to compare against the baseline"),
    fmt: Format = FormatOpt,
) -> None:
    """Configurations present in both (matched on what they computed, not on device or impl): times and
    speedup of B over A (time_a / time_b); then every configuration left unmatched, and why."""
    from accelsim.replay import traces
    result = traces.compare(traces.load(a), traces.load(b))
    if fmt is Format.json:
        print_json(result)
        return
    rows, unmatched = result["rows"], result["unmatched"]
    cols = ["config", "impl_a", "impl_b", "time_a_s", "time_b_s", "speedup"]
    n_a = sum(u["side"] == "a" for u in unmatched)
    caption = (f"{len(rows)} configurations matched; {n_a} of A and {len(unmatched) - n_a} of B unmatched"
               + (" (listed below)" if unmatched else "") + "; speedup = time_a / time_b (> 1: B is faster)")
    print_table(f"compare: A={a} vs B={b}", cols, [[r[c] for c in cols] for r in rows], caption=caption)
    if unmatched:
        ucols = ["config", "side", "reason"]
        print_table("not matched", ucols, [[u["config"], u["side"].upper(), u["reason"]] for u in unmatched])


@traces_app.command("roofline")
def roofline(
    path: Path = typer.Argument(..., help="trace file or directory"),
    plot: Path = typer.Option(None, "--plot", help="write a PNG roofline here"),
    peak_tflops: float = typer.Option(None, "--peak-tflops", help="override the peak compute rate (one device's traces)"),
    peak_gbs: float = typer.Option(None, "--peak-gbs", help="override the peak memory bandwidth (one device's traces)"),
    fmt: Format = FormatOpt,
) -> None:
    """Each configuration against its own device's roof (datasheet for known GPUs, documented CPU estimate).

    fraction_of_roof is achieved / roof at the point's intensity; above 1 (marked *) the roof's peak
    is too low for the device the point ran on.
    """
    from accelsim.replay import traces
    if plot is not None:
        ensure_writable(plot, "--plot", suffixes=(".png",))
    result = traces.roofline(traces.load(path), peak_tflops, peak_gbs)
    if plot is not None:
        traces.plot_roofline(result, plot)
    if fmt is Format.json:
        print_json(result)
        return
    roofs = {r["roof"]: i + 1 for i, r in enumerate(result["roofs"])}
    cols = ["config", "roof", "intensity", "tflops_effectual", "roof_tflops", "fraction_of_roof"]
    rows = [[p["config"], roofs[p["roof"]], p["intensity"], p["tflops_effectual"], p["roof_tflops"],
             f"{p['fraction_of_roof']:.3f} *" if p["fraction_of_roof"] > 1 else p["fraction_of_roof"]]
            for p in result["points"]]
    caption = [f"roof {i}: {r['roof']}, peak {r['peak_tflops']:.3g} TFLOP/s, {r['peak_gbs']:.3g} GB/s"
               for r, i in zip(result["roofs"], roofs.values())]
    caption += ["intensity: effectual FLOP per minimum byte; " + traces.FRACTION_OF_ROOF]
    caption += [f"* {n}" for n in result["notes"]] + ([f"plot: {plot}"] if plot else [])
    print_table(f"roofline: {path}", cols, rows, caption="\n".join(caption))


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
