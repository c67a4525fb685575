"""Every bench/gpu suite, made to raise on its second case (fault injection), still writes the first case's
result and lists the error; a SIGTERM during a JSON write leaves no temporary file beside it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, load_script

FAULT = "RuntimeError: injected fault in the second case"


def _fail_second(monkeypatch, owner, name: str) -> list:
    """Wrap ``owner.name`` (a suite's per-case function) so its second call raises; returns the call log."""
    real, calls = getattr(owner, name), []

    def wrapped(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("injected fault in the second case")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)
    return calls


def _run(suite, tmp_path, *extra) -> dict:
    out = tmp_path / "r.json"
    assert suite.main(["--backend", "numpy", "--tiny", "--json", str(out), "--traces", str(tmp_path / "t"), *extra]) == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    return json.loads(out.read_text())


def _one_error(errors: list, label: str) -> None:
    assert len(errors) == 1 and errors[0]["error"] == FAULT and errors[0]["case"] == label, errors


def test_nm_keeps_the_first_configuration(monkeypatch, tmp_path):
    suite = load_script("bench/gpu/suite_nm.py")
    calls = _fail_second(monkeypatch, suite._Runner, "run")
    d = _run(suite, tmp_path, "--budget-s", "120", "--repeats", "2", "--warmup", "0")
    first, second = (suite._label(c) for _, c in calls[:2])
    _one_error(d["errors"], second)
    assert suite._label(d["results"][0]) == first and d["results"][0]["time_s"] > 0
    assert len(d["results"]) == len(suite.configs(True)) - 1  # the ones after the fault ran too


def test_kron_keeps_the_first_case(monkeypatch, tmp_path):
    suite = load_script("bench/gpu/suite_kron.py")
    _fail_second(monkeypatch, suite, "_case")
    d = _run(suite, tmp_path, "--budget-s", "60", "--repeats", "2")
    (p1, n1), (p2, n2) = suite.TINY_CASES[:2]
    _one_error(d["errors"], f"{p2}^{n2}")
    assert d["cases"][0]["case"] == f"{p1}^{n1}" and d["cases"][0]["err_fused"] < 1e-5
    assert [c["case"] for c in d["cases"]] == [f"{p}^{n}" for p, n in suite.TINY_CASES if (p, n) != (p2, n2)]


def test_projection_keeps_the_first_shape(monkeypatch, tmp_path):
    suite = load_script("bench/gpu/suite_projection.py")
    _fail_second(monkeypatch, suite, "_row")
    d = _run(suite, tmp_path, "--budget-s", "120")
    shapes = [(v, s) for v, ss in suite.TINY.items() for s in ss]
    _one_error(d["errors"], f"{shapes[1][0]} {'x'.join(map(str, shapes[1][1]))}")
    assert (d["rows"][0]["variant"], tuple(d["rows"][0]["shape"])) == shapes[0] and d["rows"][0]["device_ms"] > 0
    assert len(d["rows"]) == len(shapes) - 1


def test_replay_keeps_the_first_case(monkeypatch, tmp_path):
    suite = load_script("bench/gpu/suite_replay.py")
    calls = _fail_second(monkeypatch, suite, "_measure")
    d = _run(suite, tmp_path, "--budget-s", "300")
    first, second = calls[0][0], calls[1][0]
    _one_error(d["errors"], f"{second.suite} {second.label}")
    assert (d["rows"][0]["suite"], d["rows"][0]["label"]) == (first.suite, first.label) and d["rows"][0]["time_s"] > 0
    assert d["recorded"] == d["cases"] - 1 and d["failed"] == 1 and d["skipped"] == 0


def test_network_keeps_the_first_case(monkeypatch, tmp_path):
    suite = load_script("bench/gpu/suite_network.py")
    _fail_second(monkeypatch, suite, "_case")
    d = _run(suite, tmp_path, "--budget-s", "300")
    first, second = suite._cases(True)[:2]
    _one_error(d["errors"], second["name"])
    assert [c["name"] for c in d["cases"]] == [first["name"]] and d["cases"][0]["measured"]["dense_s"] > 0


def test_network_predicts_from_the_slowest_case_scaled_by_cost():
    suite = load_script("bench/gpu/suite_network.py")
    assert suite.predict([], 2.4) == 0.0
    # 10 s for a cost-1 case, 12 s for a cost-2 case: the slowest per unit of cost is 10 s, not the mean 11
    assert suite.predict([(10.0, 1.0), (12.0, 2.0)], 2.4) == pytest.approx(24.0)
    costs = {c["name"]: c["cost"] for c in suite._cases(False)}
    assert costs["llama4"] > costs["minilm"]


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path):
    """timeout's SIGTERM arriving mid-write: the old JSON stays whole and no '.tmp' file is left in $OUT."""
    dest = tmp_path / "ratios-x.json"
    dest.write_text('{"cases": [1]}\n')
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from bench.gpu.common import exit_on_term
from kernels.io import atomic_path
exit_on_term()
with atomic_path({str(dest)!r}) as tmp:
    tmp.write_text('{{"cases": [1, ')
    os.kill(os.getpid(), signal.SIGTERM)
    tmp.write_text('never')
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ratios-x.json"]
    assert json.loads(dest.read_text()) == {"cases": [1]}
