"""The `accelsim` command: a thin typer front end over the library; exit 2 on bad input."""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import threading

import typer
from typer._click import exceptions as click  # typer vendors its click; its usage errors are these
from typer.exceptions import Abort

from accelsim.cli import calibrate_cmd, kernels_cmd, prune_cmd, run_cmd, simulate_cmd, sweep_cmd, tasd_cmd, traces_cmd, validate_cmd
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
for _module in (simulate_cmd, calibrate_cmd, kernels_cmd, prune_cmd, run_cmd, sweep_cmd, tasd_cmd, traces_cmd, validate_cmd):
    _module.register(app)


def _fail(message: str, code: int = 2):
    print(f"accelsim: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(code)


def _usage(exc: click.UsageError) -> str:
    """A usage error as ``--format: 'xml' is not one of table, json`` (click's boxed text is several lines)."""
    if isinstance(exc, click.BadParameter) and exc.param is not None and not isinstance(exc, click.MissingParameter):
        name = exc.param_hint or (exc.param.opts[0] if exc.param.opts else exc.param.name)
        if isinstance(name, (list, tuple)):
            name = name[0]
        message = exc.message.removeprefix("Value error, ").rstrip(".")
        message = re.sub(r"is not one of (.*)$", lambda m: "is not one of " + m[1].replace("'", ""), message)
        return f"{str(name).strip(chr(39))}: {message}"
    hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
    return exc.format_message().rstrip(".") + hint


def _on_term(signum, frame):
    raise KeyboardInterrupt


def _stdout_text() -> None:
    """Never fail on a character the output encoding lacks (a POSIX locale without UTF-8: ``‖``, ``→``)."""
    for stream in (sys.stdout, sys.stderr):
        enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if enc != "utf8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def _stdout_lost(exc: OSError) -> None:
    """Standard output cannot take the result (``> /dev/full``, a closed pipe): one line, exit 2.
    Its descriptor is pointed at /dev/null so that the interpreter's final flush stays silent."""
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), sys.stdout.fileno())
    if exc.errno == errno.EPIPE:
        raise SystemExit(2)
    _fail(f"cannot write to standard output: {exc.strerror or exc}")


def main() -> None:
    """Run the CLI. Every failure a user can cause ends as one stderr line and an exit status:

    - an :class:`InputError` (bad file, field or value, a full disk) or a usage error: exit 2;
    - Ctrl-C or SIGTERM: exit 130, with the command's own line on what was kept, else "nothing written".

    typer runs outside standalone mode, so its multi-line usage boxes and silent interrupts are
    replaced here by the one-line forms.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _on_term) if main_thread else None
    _stdout_text()
    try:
        try:
            code = app(standalone_mode=False, prog_name="accelsim")
            sys.stdout.flush()
        except click.NoArgsIsHelpError as exc:  # `accelsim` or `accelsim kernels` alone: the help, as before
            exc.show()
            code = exc.exit_code
        except click.UsageError as exc:
            _fail(_usage(exc), exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except Abort:  # Ctrl-D at a prompt; interrupts arrive as Exit(130)
            code = 130
        except InputError as exc:
            _fail(str(exc))
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EDQUOT, errno.EFBIG) \
                or not _is_stdout_error(exc):
            raise
        _stdout_lost(exc)
    finally:
        if main_thread:  # in-process callers (tests) get their own handler back
            signal.signal(signal.SIGTERM, old_term)
    if code == 130:  # an interrupt no command reported (those exit through their own one line)
        print("accelsim: interrupted: nothing written", file=sys.stderr)
    raise SystemExit(code or 0)


def _is_stdout_error(exc: OSError) -> bool:
    """Whether ``exc`` came from writing standard output (not from an output file, which names itself)."""
    return exc.filename is None
