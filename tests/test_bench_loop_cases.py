"""bench/bench_loop_cases.py: per layer kind, the summed projected over the summed measured time of every pass, and
the kind's share of its variant's measured time; per calibration case, the median error over calibrations."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, load_script


def _report(layers_dense, layers_plan):
    def layers(rows):
        return [{"layer": f"encoder.0.{kind}", "kernel": kernel, "projected_s": p, "measured_s": m}
                for kind, kernel, p, m in rows]
    return {"variants": [{"plan": "dense", "layers": layers(layers_dense)},
                         {"plan": "tasd-1", "layers": layers(layers_plan)}]}


def test_layer_errors_sum_every_pass_before_dividing(tmp_path):
    cases = load_script("bench/bench_loop_cases.py")
    passes = [
        _report([("q", "gemm", 1.1, 1.0), ("ffn1", "gemm", 2.0, 4.0)], [("q", "nm_spmm", 0.5, 0.4)]),
        _report([("q", "gemm", 2.9, 3.0), ("ffn1", "gemm", 5.0, 4.0)], [("q", "nm_spmm", 0.7, 0.8)]),
    ]
    for i, doc in enumerate(passes, 1):
        (tmp_path / "t2" / f"p{i}").mkdir(parents=True)
        (tmp_path / "t2" / f"p{i}" / "bert.json").write_text(json.dumps(doc))
    got = cases.layer_errors(tmp_path, "2", "bert")
    assert got.keys() == {("dense", "q", "gemm"), ("dense", "ffn1", "gemm"), ("plan", "q", "nm_spmm")}
    assert got[("dense", "q", "gemm")] == pytest.approx((4.0 / 12.0, 4.0 / 4.0 - 1))
    assert got[("dense", "ffn1", "gemm")] == pytest.approx((8.0 / 12.0, 7.0 / 8.0 - 1))
    assert got[("plan", "q", "nm_spmm")] == pytest.approx((1.0, 1.2 / 1.2 - 1))
    assert cases.layer_errors(tmp_path, "1", "bert") == {}


def test_case_errors_cover_the_gemm_cases_of_a_stored_calibration():
    """Every GEMM-family case of a stored Xeon calibration, and only those, with its measured time from the traces."""
    from accelsim.replay.calibration_dir import TRACES_DIR, load_calibration_dir
    from accelsim.replay.project import items_from_table
    from accelsim.replay.traces import load

    cal = ROOT / "traces" / "loops-xeon-2vcpu" / "f2b7f70-a" / "t1" / "p1" / "cal"
    got = load_script("bench/bench_loop_cases.py").case_errors([cal])
    arch, _, _ = load_calibration_dir(cal)
    items = {(it.family, it.label): it.measured_s for it in items_from_table(load(cal / TRACES_DIR), arch)
             if it.family in ("gemm", "cold_gemm", "batched_gemm")}
    assert {k: m for k, (m, _) in got.items()} == items
    assert all(-1 < e < 10 for _, e in got.values())
