"""bench/gpu/suite_kron.py on the CPU (--backend numpy --tiny): ratios JSON, trace rows, budget."""

import json

import numpy as np

from conftest import load_script
from kernels.trace import read_traces


def _suite():
    return load_script("bench/gpu/suite_kron.py")


def test_tiny_numpy_run_writes_ratios_and_traces(tmp_path):
    out, traces = tmp_path / "ratios.json", tmp_path / "traces"
    assert _suite().main(["--backend", "numpy", "--tiny", "--json", str(out), "--traces", str(traces),
                          "--budget-s", "60", "--repeats", "2"]) == 0
    data = json.loads(out.read_text())
    assert [c["case"] for c in data["cases"]] == ["8^3", "4^4", "16^2"] and not data["skipped"]
    for c in data["cases"]:
        assert c["err_fused"] < 1e-5
        assert c["fused_impl"] == "kron_fused_numpy" and c["shuffle_impl"] == "kron_shuffle_numpy"
        assert np.isclose(c["speedup_vs_shuffle"], c["shuffle_s"] / c["fused_s"])
        assert np.isclose(c["frac_dense"], c["tflops_fused"] / data["dense_f32_tflops"])
    table = read_traces(traces).to_pylist()
    kinds = sorted(r["kernel"] for r in table)
    assert kinds.count("gemm") == 1 and len(kinds) == 1 + 3 * 3
    from accelsim.replay.project import FAMILIES

    assert all(r["kernel"] in FAMILIES for r in table)  # accelsim validate can replay every row
    impls = {json.loads(r["params"]).get("impl") for r in table}
    assert {"kron_fused_numpy", "kron_shuffle_numpy", "matmul"} <= impls


def test_zero_budget_starts_no_case(tmp_path):
    out = tmp_path / "r.json"
    _suite().main(["--backend", "numpy", "--tiny", "--json", str(out), "--traces", str(tmp_path / "t"),
                   "--budget-s", "0", "--repeats", "2"])
    data = json.loads(out.read_text())
    assert data["cases"] == [] and data["skipped"] == ["8^3", "4^4", "16^2"]
