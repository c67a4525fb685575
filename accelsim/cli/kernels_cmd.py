"""`accelsim kernels run`: time a benchmark suite of real kernels and write parquet traces."""

from __future__ import annotations

from pathlib import Path

import typer

from accelsim.checks import check_seed
from accelsim.cli._common import Format, FormatOpt, check_timing_opts, on_interrupt, print_json, print_table, progress_bar

# Library modules are imported inside the commands: start-up time (every command module loads for `--help`).
__all__ = ["kernels_app", "register", "run"]

kernels_app = typer.Typer(help="Run real kernels (NumPy or CuPy) and record traces.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the ``kernels`` group to the top-level app."""
    app.add_typer(kernels_app, name="kernels")


@kernels_app.command("run")
def run(
    suite: str = typer.Option(..., "--suite", help="suite name: gemm, nm_spmm, ... or all"),
    sizes: str = typer.Option("small", "--sizes", help="small (CI, seconds) or paper (LLaMA shapes)"),
    out: Path = typer.Option(Path("traces/local"), "--out", help="trace dataset directory to append to"),
    repeats: int = typer.Option(10, "--repeats", help="timed calls per case (median reported)"),
    warmup: int = typer.Option(3, "--warmup", help="untimed calls per case first"),
    backend: str = typer.Option(None, "--backend", help="numpy or cupy (default: cupy when a GPU is usable)"),
    seed: int = typer.Option(0, "--seed", help="seed of the random inputs"),
    fmt: Format = FormatOpt,
) -> None:
    """Time every case of a suite and append one trace row per case to OUT."""
    from accelsim.replay.labels import row_label
    from kernels.backend import get_xp
    from kernels.suites import get_cases, run_suite
    from kernels.trace import Recorder
    from kernels.trace.microbench import keep_freed_memory

    check_timing_opts(repeats, warmup, out)
    check_seed(seed)
    xp = get_xp(backend)
    if xp.__name__ == "numpy":
        keep_freed_memory()  # as `accelsim run` and `calibrate` do: no call pays for fresh pages
    total = len(get_cases(suite, sizes, xp, seed))
    rec = Recorder(out)
    done = {"cases": 0}

    def kept() -> str:
        return (f"{done['cases']} of {total} cases finished; their trace rows are kept in {out} (run {rec.run_id}), "
                "the case in progress was dropped")

    with on_interrupt(kept), rec, progress_bar("{task.description}", disable=fmt is Format.json) as progress:
        task = progress.add_task(suite, total=total)

        def on_case(case, i, n):
            rec.flush()  # cases 0..i-1 are finished: each lands in its own part file, so a kill loses one case
            done["cases"] = i
            progress.update(task, completed=i, description=case.label)

        rows = run_suite(suite, sizes, rec, repeats=repeats, warmup=warmup, xp=xp, seed=seed, on_case=on_case)
        progress.update(task, completed=total)
    summary = [
        {
            "config": row_label(r), "kernel": r["kernel"], "dtype": r["dtype"], "m": r["m"], "n": r["n"], "k": r["k"],
            "pattern": r["pattern"], "time_median_s": r["time_median_s"],
            "tflops_dense_equiv": r["flops_dense"] / r["time_median_s"] / 1e12 if r["flops_dense"] else None,
        }
        for r in rows
    ]
    if fmt is Format.json:
        print_json({"out": str(out), "run_id": rec.run_id, "rows": summary})
        return
    cols = ["config", "time_median_s", "tflops_dense_equiv"]
    print_table(
        f"kernels run --suite {suite} --sizes {sizes}",
        cols,
        [[s[c] for c in cols] for s in summary],
        caption=f"{len(rows)} rows appended to {out} (run {rec.run_id}); time_median_s: median of --repeats timed "
                "calls; tflops_dense_equiv: dense-GEMM FLOPs of the shape / time",
    )
