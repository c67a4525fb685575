"""`accelsim run` and `validate` of its traces give every measured gain the range of its passes, and warn below 3."""

from __future__ import annotations

import json

import pytest

from conftest import run_in_process
from kernels.trace import read_traces

NET = ("workload:\n  name: net\n  layers:\n"
       "    - {type: gemm, name: fc1, m: 48, n: 40, k: 64}\n"
       "    - {type: gemm, name: fc2, m: 48, n: 24, k: 40}\n")


@pytest.fixture
def plan(tmp_path):
    from accelsim.codesign.plan import FORMAT, PLAN_VERSION

    (tmp_path / "net.yaml").write_text(NET)
    doc = {"format": FORMAT, "version": PLAN_VERSION, "network": {"workload": str(tmp_path / "net.yaml"), "params": {}},
           "arch": "tasd_ttc", "layers": [{"name": "fc1", "kernel": "nm", "pattern": "2:4"}]}
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    return tmp_path / "plan.json"


def _run(capsys, monkeypatch, plan, out, repeats, fmt="json"):
    code, text, err = run_in_process(capsys, monkeypatch, "run", "--plan", str(plan), "--out", str(out), "--repeats",
                                     str(repeats), "--warmup", "0", "--backend", "numpy", "--format", fmt)
    assert code in (0, None), err
    return text


def _by(rows, kernel, plan_id, layer=None):
    return next(r for r in rows if r["kernel"] == kernel and json.loads(r["params"])["plan"] == plan_id
                and (layer is None or json.loads(r["params"]).get("layer") == layer))


def test_run_gain_range_from_the_records_fastest_and_slowest_passes(plan, tmp_path, capsys, monkeypatch):
    summary = json.loads(_run(capsys, monkeypatch, plan, tmp_path / "out", 3))
    rows = read_traces(tmp_path / "out").to_pylist()
    dense, mine = _by(rows, "network", "dense"), _by(rows, "network", summary["plan"])
    lo, hi = summary["measured_gain_range"]
    assert lo == pytest.approx(dense["time_min_s"] / mine["time_max_s"])
    assert hi == pytest.approx(dense["time_max_s"] / mine["time_min_s"])
    assert lo <= summary["measured_gain"] <= hi and summary["warnings"] == []


def test_one_pass_warns_in_run_and_in_validate(plan, tmp_path, capsys, monkeypatch):
    text = _run(capsys, monkeypatch, plan, tmp_path / "out", 1, fmt="table")
    flat = " ".join(text.split())
    assert "warning: 1 timed pass" in flat and "--repeats 3" in flat and "range over 1 pass n/a" in flat
    code, out, err = run_in_process(capsys, monkeypatch, "validate", "--traces", str(tmp_path / "out"), "--arch",
                                    "cpu_numpy", "--format", "json")
    assert code in (0, None), err
    rep = json.loads(out)
    assert any(n.startswith("warning: 1 timed pass") for n in rep["notes"])
    rows = read_traces(tmp_path / "out").to_pylist()
    plan_variant = next(v for v in rep["variants"] if v["plan"] != "dense")
    fc1 = next(l for l in plan_variant["layers"] if l["layer"] == "fc1")
    d, p = _by(rows, "gemm", "dense", "fc1"), _by(rows, "nm_spmm", plan_variant["plan"], "fc1")
    assert fc1["measured_gain"] == pytest.approx(d["time_median_s"] / p["time_median_s"])
    assert fc1["measured_gain_range"] is None  # one pass: no spread to show


def test_validate_layer_gain_range(plan, tmp_path, capsys, monkeypatch):
    _run(capsys, monkeypatch, plan, tmp_path / "out", 3)
    code, out, err = run_in_process(capsys, monkeypatch, "validate", "--traces", str(tmp_path / "out"), "--arch",
                                    "cpu_numpy", "--format", "json")
    assert code in (0, None), err
    rep = json.loads(out)
    assert not any(n.startswith("warning") for n in rep["notes"])
    rows = read_traces(tmp_path / "out").to_pylist()
    plan_variant = next(v for v in rep["variants"] if v["plan"] != "dense")
    fc1 = next(l for l in plan_variant["layers"] if l["layer"] == "fc1")
    d, p = _by(rows, "gemm", "dense", "fc1"), _by(rows, "nm_spmm", plan_variant["plan"], "fc1")
    assert fc1["measured_gain_range"] == pytest.approx([d["time_min_s"] / p["time_max_s"], d["time_max_s"] / p["time_min_s"]])
