"""`accelsim tasd ...`: TASD decomposition reports (and, later, the TASDER search)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from accelsim.cli._common import Format, FormatOpt, print_json, print_table
from accelsim.prune import load_tensor
from accelsim.tasd_eval import DEFAULT_WEIGHT_SERIES, decompose_report

__all__ = ["decompose_command", "register", "tasd_app"]

tasd_app = typer.Typer(
    name="tasd",
    help="TASD: approximate tensors by series of N:M-structured terms.",
    no_args_is_help=True,
)


@tasd_app.command("decompose")
def decompose_command(
    input: Path = typer.Argument(..., help="tensor: .npy or .safetensors", show_default=False),
    tensor: Optional[str] = typer.Option(None, "--tensor", help="tensor name inside a .safetensors file"),
    series: Optional[list[str]] = typer.Option(
        None, "--series", help="TASD series such as 2:4+1:4; repeat for several (default: a standard set)"
    ),
    axis: int = typer.Option(-1, "--axis", help="reduction axis the N:M groups run along"),
    fmt: Format = FormatOpt,
) -> None:
    """Relative Frobenius error and executed density of each series, term by term."""
    a = load_tensor(input, tensor)
    reports = decompose_report(a, series or list(DEFAULT_WEIGHT_SERIES), axis=axis)
    if fmt == Format.json:
        print_json({"input": str(input), "tensor": tensor, "shape": list(a.shape), "axis": axis, "series": reports})
        return
    rows = [
        [r["series"], r["density"], r["nnz_fraction"], r["rel_error"],
         " → ".join(f"{t['rel_error']:.4f}" for t in r["terms"])]
        for r in reports
    ]
    print_table(
        f"TASD of {input.name}{f' tensor {tensor}' if tensor else ''} {tuple(a.shape)}, axis {axis}",
        ["series", "density", "nnz fraction", "rel. error", "error after each term"],
        rows,
        caption="density: fraction of dense MACs executed (sum of N/M); error: ‖A − Â‖F / ‖A‖F",
    )


def register(app: typer.Typer) -> None:
    """Attach the ``tasd`` group to the root app (called from ``accelsim.cli._register``)."""
    app.add_typer(tasd_app, name="tasd")
