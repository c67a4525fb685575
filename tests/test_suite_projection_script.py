"""bench/gpu/suite_projection.py run on the CPU (--backend numpy --tiny): JSON ratios, trace records, budget."""

import json

import numpy as np

from conftest import load_script
from kernels.trace import read_traces


def _suite():
    return load_script("bench/gpu/suite_projection.py")


def test_tiny_numpy_run_writes_ratios_and_traces(tmp_path):
    suite = _suite()
    out, traces = tmp_path / "ratios.json", tmp_path / "traces"
    assert suite.main(["--backend", "numpy", "--tiny", "--json", str(out), "--traces", str(traces), "--budget-s", "120"]) == 0
    res = json.loads(out.read_text())
    assert [r["shape"] for r in res["rows"]] == [list(s) for v in suite.TINY.values() for s in v]
    for r in res["rows"]:
        assert r["impl"].endswith("_device") and r["device_ms"] > 0 and r["xp_ms"] > 0 and r["numpy_ms"] > 0
        assert r["speedup_vs_xp"] == r["xp_ms"] / r["device_ms"]
        assert r["max_abs_diff_vs_numpy"] < 1e-6 and r["roofline_fraction"] is None  # no roofline on a CPU
        assert r["pass_bytes"] == 3 * 4 * int(np.prod(r["shape"]))
    assert set(res["goals"]["target"]) == set(res["goals"]["measured"])
    params = [json.loads(p) for p in read_traces(traces).column("params").to_pylist()]
    assert {p["impl"].rsplit("_", 1)[1] for p in params} == {"device", "xp", "host"}
    assert len(params) == 3 * len(res["rows"])


def test_budget_stops_new_shapes(tmp_path):
    suite = _suite()
    out = tmp_path / "ratios.json"
    suite.main(["--backend", "numpy", "--tiny", "--json", str(out), "--traces", str(tmp_path / "t"), "--budget-s", "0"])
    res = json.loads(out.read_text())
    assert res["rows"] == [] and len(res["skipped"]) == sum(map(len, suite.TINY.values()))
    assert all(v is None for v in res["goals"]["met"].values())
