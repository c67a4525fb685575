"""Shared CLI pieces: the --format option, JSON and table output, progress bars, Ctrl-C reports."""

from __future__ import annotations

import contextlib
import enum
import json
import signal
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["Format", "FormatOpt", "check_timing_opts", "console", "on_interrupt", "print_json", "print_table",
           "progress_bar"]

console = Console(width=None if sys.stdout.isatty() else 150)


class Format(str, enum.Enum):
    table = "table"
    json = "json"


FormatOpt = typer.Option(Format.table, "--format", help="table (default) or json for scripts")


def check_timing_opts(repeats: int, warmup: int, out: Path) -> None:
    """Refuse bad --repeats/--warmup and an --out that cannot take a trace dataset, before any work."""
    from accelsim.checks import MAX_REPEATS, ensure_writable
    from kernels.errors import InputError

    if not (1 <= repeats <= MAX_REPEATS and 0 <= warmup <= MAX_REPEATS):
        raise InputError(f"--repeats must be in 1..{MAX_REPEATS:,} and --warmup in 0..{MAX_REPEATS:,} "
                         f"(accelsim.checks.MAX_REPEATS), got {repeats} and {warmup}")
    ensure_writable(out, directory=True)


def _dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)


def print_json(obj) -> None:
    sys.stdout.write(_dumps(obj) + "\n")


@contextlib.contextmanager
def on_interrupt(kept):
    """Turn Ctrl-C (and SIGTERM) inside the block into one stderr line saying what was kept, exit 130.

    ``kept()`` is called after the interrupt has unwound the block (so writers have flushed) and
    returns that sentence, e.g. "12 trace rows written to traces/local".
    """

    def on_term(signum, frame):
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, on_term) if main else None
    try:
        yield
    except KeyboardInterrupt:
        console.file.flush()
        print(f"accelsim: interrupted: {kept()}", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, old)


def print_table(title: str, columns: list[str], rows: list[list], caption: str | None = None) -> None:
    """A table of plain text: brackets in a title, a caption or a cell (``--set 'memory.sram.bypass=[weight]'``,
    a layer named ``conv[1]``) are shown as typed, not read as rich markup."""
    table = Table(title=escape(title), caption=escape(caption) if caption else None)
    for i, col in enumerate(columns):
        table.add_column(escape(col), justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*[escape(_fmt(v)) for v in row])
    console.print(table)


def progress_bar(label: str = "[bold]{task.description}", rate: str | None = None, disable: bool = False):
    """A transient progress bar on :data:`console`: label, bar, done/total, ``rate`` items per second
    if given, elapsed time."""
    # Imported here: rich.progress is a large share of start-up, which `--help` should not pay.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items finished per second (rich's speed columns are for bytes)."""

        def render(self, task) -> Text:
            return Text(f"{task.speed:,.1f} {rate}/s" if task.speed else f"… {rate}/s", style="cyan")

    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), *([RateColumn()] if rate else []),
               TimeElapsedColumn()]
    return Progress(*columns, console=console, transient=True, disable=disable)


def _fmt(v) -> str:
    """Compact numbers for tables (JSON keeps full precision): 16.78M, 0.238, 1,024; None is n/a."""
    if v is None:
        return "n/a"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    a = abs(v)
    for div, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if a >= div:
            return f"{v / div:.2f}{suffix}"
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    if a and a < 1e-3:
        return f"{v:.2e}"
    return f"{v:,.3f}"
