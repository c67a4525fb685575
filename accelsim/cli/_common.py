"""Shared CLI pieces: the --format option, JSON/table output, atomic --out files."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from kernels.io import atomic_path

__all__ = ["Format", "FormatOpt", "console", "print_json", "print_table", "write_json"]

console = Console()


class Format(str, enum.Enum):
    table = "table"
    json = "json"


FormatOpt = typer.Option(Format.table, "--format", help="table (default) or json for scripts")


def _dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)


def print_json(obj) -> None:
    sys.stdout.write(_dumps(obj) + "\n")


def write_json(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(_dumps(obj) + "\n")


def print_table(title: str, columns: list[str], rows: list[list], caption: str | None = None) -> None:
    table = Table(title=title, caption=caption)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[_fmt(v) for v in row])
    console.print(table)


def _fmt(v) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1e6 or abs(v) < 1e-3:
            return f"{v:.3e}"
        return f"{v:,.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
