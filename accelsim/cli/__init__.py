"""The `accelsim` command: a thin typer front end over the library; exit 2 on bad input."""

from __future__ import annotations

import sys

import typer

from accelsim.cli import kernels_cmd, prune_cmd, run_cmd, simulate_cmd, sweep_cmd, tasd_cmd, traces_cmd, validate_cmd
from kernels.errors import InputError

__all__ = ["app", "main"]

app = typer.Typer(
    name="accelsim",
    help="Simulate sparse-DNN accelerators, run kernels, analyse traces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Every command module attaches its commands through ``register(app)``; the command set is this list.
for _module in (simulate_cmd, kernels_cmd, prune_cmd, run_cmd, sweep_cmd, tasd_cmd, traces_cmd, validate_cmd):
    _module.register(app)


def main() -> None:
    """Run the CLI; an :class:`InputError` becomes one line on stderr and exit status 2.

    typer runs in standalone mode, so usage errors, ``--help`` and exit codes are its own; only
    our input errors, which it lets through, are turned into the one-line form here.
    """
    try:
        app()
    except InputError as exc:
        print(f"accelsim: error: {exc}", file=sys.stderr)
        sys.exit(2)
