"""Shared fixtures: run the CLI as a user would (a subprocess), locate test data, load scripts by path."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent


def load_script(relpath: str):
    """The module of a script that is not a package (``bench/gpu/suite_nm.py``, ``examples/...``), by path."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_cli(*args: str, cwd: str | Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m accelsim ARGS`` and capture its output (text)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "accelsim", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=full_env, timeout=300)


@pytest.fixture
def cli():
    return run_cli


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2, a single non-empty stderr line mentioning each needle, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def run_in_process(capsys, monkeypatch, *args: str) -> tuple:
    """Run `accelsim ARGS` through :func:`accelsim.cli.main` in this process: (exit status, stdout, stderr)."""
    from accelsim import cli

    monkeypatch.setattr(sys, "argv", ["accelsim", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def assert_exit_2(result: tuple, *needles: str) -> None:
    """An in-process result (see :func:`run_in_process`) that exited 2 with one stderr line naming each needle."""
    code, _, err = result
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture
def private_autotune_cache(tmp_path, monkeypatch):
    """A fresh autotune cache in a temporary folder, cleared before and after the test."""
    from kernels import autotune

    monkeypatch.setenv("ACCELSIM_CACHE_DIR", str(tmp_path))
    autotune.clear()
    yield tmp_path
    autotune.clear()
