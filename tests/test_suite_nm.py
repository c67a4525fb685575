"""bench/gpu/suite_nm.py on the CPU: ratio math, budget handling, and a tiny end-to-end run with NumPy."""

import json
import math

import pytest

from conftest import load_script
from kernels.trace import read_traces


@pytest.fixture(scope="module")
def suite():
    return load_script("bench/gpu/suite_nm.py")


def test_geomean_closed_form(suite):
    assert suite.geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert suite.geomean([1.8, 2.4, 3.5, 6.3]) == pytest.approx((1.8 * 2.4 * 3.5 * 6.3) ** 0.25)
    assert suite.geomean([]) is None
    with pytest.raises(ValueError):
        suite.geomean([1.0, 0.0])


def test_budget_stops_before_a_config_that_would_overrun(suite):
    now = [0.0]
    b = suite.Budget(10.0, clock=lambda: now[0])
    assert b.allows_next()
    now[0] = 2.0
    b.spent(2.0)  # 8 s left, the slowest config took 2 s: 1.5 x 2 <= 8, go on
    assert b.allows_next()
    now[0] = 6.0
    b.spent(3.0)  # 4 s left, the slowest took 3 s: 1.5 x 3 > 4, so stop
    assert not b.allows_next() and b.left() == pytest.approx(4.0)
    b.spent(1.0)  # a cheap config since: the slowest one still decides
    assert not b.allows_next()


def test_summary_figures(suite):
    rows = [
        dict(group="vector_fp32", sparsity="50%", m=256, ratio=2.0, rate_vs_dense=1.0, series="2:4", dtype="float32"),
        dict(group="vector_fp32", sparsity="50%", m=1024, ratio=8.0, rate_vs_dense=4.0, series="2:4", dtype="float32"),
        dict(group="tc_2of4", dtype="float16", m=8192, n=8192, k=8192, ratio=1.3, impl="nm_2of4_cusparselt", series="2:4"),
        dict(group="tc_2of4", dtype="float16", m=256, n=4096, k=4096, ratio=0.97, impl="dense_cublas", series="2:4"),
        dict(group="tasd_fp32", series="2:4+1:4", m=256, ratio=1.5, dtype="float32"),
    ]
    s = suite.summarize(rows)
    assert s["vector_fp32"]["50%"]["geomean"] == pytest.approx(4.0)
    assert s["vector_fp32"]["50%"]["rate_vs_dense_m>=1024"] == pytest.approx(4.0)
    assert s["tc_2of4"]["float16"]["min_all"] == pytest.approx(0.97)
    assert s["tc_2of4"]["float16"]["big"] == {"8192x8192x8192": 1.3}
    assert s["tc_2of4"]["float16"]["impls"] == ["dense_cublas", "nm_2of4_cusparselt"]
    assert s["tasd_fp32"]["2:4+1:4"]["min"] == 1.5


def test_tiny_numpy_run_end_to_end(suite, tmp_path):
    out, traces = tmp_path / "r.json", tmp_path / "t"
    assert suite.main(["--backend", "numpy", "--tiny", "--json", str(out), "--traces", str(traces),
                       "--budget-s", "120", "--repeats", "3", "--warmup", "1"]) == 0
    d = json.loads(out.read_text())
    assert not d["budget_exhausted"] and d["skipped"] == []
    assert d["errors"] == []  # bfloat16 too (ml_dtypes on NumPy)
    assert {r["dtype"] for r in d["results"] if r["group"] == "tc_2of4"} == {"float16", "bfloat16"}
    groups = {r["group"] for r in d["results"]}
    assert groups == {"tc_2of4", "vector_fp32", "element_fp32", "tasd_fp32"}
    for r in d["results"]:
        assert r["ratio"] == pytest.approx(r["dense_s"] / r["time_s"])
        assert r["rate_vs_dense"] == pytest.approx(r["ratio"] * r["density"])
    assert set(d["summary"]["vector_fp32"]) == {"50%", "62.5%", "75%", "87.5%"}
    t = read_traces(traces).to_pylist()
    kernels = {row["kernel"] for row in t}
    assert kernels == {"gemm", "nm_spmm", "tasd_spmm"}
    impls = {json.loads(row["params"])["impl"] for row in t}
    assert {"dense_blas", "nm_vector_numpy", "nm_element_numpy"} <= impls
    assert all(math.isfinite(row["time_median_s"]) and row["time_median_s"] > 0 for row in t)


def test_zero_budget_skips_everything_and_says_so(suite, tmp_path):
    out = tmp_path / "r.json"
    suite.main(["--backend", "numpy", "--tiny", "--json", str(out), "--traces", str(tmp_path / "t"),
                "--budget-s", "0"])
    d = json.loads(out.read_text())
    assert d["budget_exhausted"] and d["results"] == [] and len(d["skipped"]) == len(suite.configs(True))
