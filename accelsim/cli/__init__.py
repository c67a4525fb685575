"""The `accelsim` command: a thin typer front end over the library; exit 2 on bad input."""

from __future__ import annotations

import sys

import typer

from kernels.errors import InputError

__all__ = ["app", "main"]

app = typer.Typer(
    name="accelsim",
    help="Simulate sparse-DNN accelerators, run kernels, analyse traces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    """Attach each command module once (``main`` may run many times in one process, as in the tests);
    kept in one place so the command set is visible here."""
    if any(g.name == "sweep" for g in app.registered_groups):
        return
    from accelsim.cli import simulate_cmd  # noqa: F401  (registers simulate, compare, demo)
    from accelsim.cli import kernels_cmd, prune_cmd, sweep_cmd, tasd_cmd, traces_cmd, validate_cmd  # noqa: F401

    sweep_cmd.register(app)
    tasd_cmd.register(app)
    validate_cmd.register(app)


def main() -> None:
    """Run the CLI; an :class:`InputError` becomes one line on stderr and exit status 2.

    typer runs in standalone mode, so usage errors, ``--help`` and exit codes are its own; only
    our input errors, which it lets through, are turned into the one-line form here.
    """
    _register()
    try:
        app()
    except InputError as exc:
        print(f"accelsim: error: {exc}", file=sys.stderr)
        sys.exit(2)
