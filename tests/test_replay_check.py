"""bench/gpu/replay_check.py: the GPU job's replay check, run here on committed trace sets."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conftest import ROOT, load_script
from kernels.trace import read_traces

H200 = ROOT / "traces" / "nvidia-h200-cupy"
CPU = ROOT / "traces" / "cpu-amd-epyc-2vcpu"


@pytest.fixture(scope="module")
def rc():
    return load_script("bench/gpu/replay_check.py")


@pytest.fixture(scope="module")
def h200_report(rc, tmp_path_factory):
    out = tmp_path_factory.mktemp("rc") / "validate.json"
    assert rc.main(["--traces", str(H200), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def _configurations(table: pa.Table) -> int:
    """Distinct measured configurations, counted here with pyarrow (not the replay's merge)."""
    cols = ["kernel", "backend", "device_name", "dtype", "m", "n", "k", "shapes", "pattern", "tasd_series", "params"]
    return table.select(cols).group_by(cols).aggregate([]).num_rows


def test_saved_calibration_is_applied_not_refitted(h200_report):
    saved = h200_report["saved"]
    stored = json.loads((ROOT / "docs/results/h200_calibration.json").read_text())["params"]
    assert h200_report["arch"] == "h200_sxm"
    assert saved["calibration"]["params"] == pytest.approx(stored, rel=0, abs=0)
    assert saved["overall"]["n"] == _configurations(read_traces(H200))
    assert saved["calibration"]["source"].startswith("file ")
    rows = saved["kernels"]
    assert len(rows) == saved["overall"]["n"]
    assert saved["overall"]["mape_pct"] == pytest.approx(
        sum(abs(r["projected_s"] / r["measured_s"] - 1) for r in rows) / len(rows) * 100, rel=1e-9)


def test_split_fits_hold_out_about_half_for_each_seed(h200_report):
    total = _configurations(read_traces(H200))
    assert sorted(h200_report["split"]) == ["0", "1", "2"]
    held = [rep["overall"]["n"] for rep in h200_report["split"].values()]
    assert all(0.35 * total <= n <= 0.65 * total for n in held)
    # a different split per seed: the fitted parameters differ
    params = [tuple(rep["calibration"]["params"].values()) for rep in h200_report["split"].values()]
    assert len(set(params)) == 3


def test_meets_follows_the_goals(rc, h200_report):
    for rep in [h200_report["saved"], *h200_report["split"].values()]:
        m = rep["meets"]
        assert m["overall_mape"] == (rep["overall"]["mape_pct"] <= 10.0)
        assert m["every_family_mape"] == all(f["mape_pct"] <= 15.0 for f in rep["families"])
        assert m["energy_mape"] is None  # the committed records have no >= 1 s NVML window
    fake = {"overall": {"mape_pct": 9.0, "pearson_r": 0.99, "energy": {"mape_pct": 16.0}},
            "families": [{"mape_pct": 9.0}, {"mape_pct": 15.5}],
            "calibration": {"params": {"a": {"inside_bound": True}, "b": {"inside_bound": False}}}}
    assert rc.meets(fake) == {"overall_mape": True, "every_family_mape": False, "pearson_r": True,
                              "params_inside_bounds": False, "energy_mape": False}


def _with(table: pa.Table, name: str, head: list) -> pa.Table:
    """``table`` with the first ``len(head)`` values of column ``name`` replaced by ``head``."""
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, pa.array(head + table[name].to_pylist()[len(head):], table.schema.field(i).type))


def test_network_runs_and_numpy_baselines_are_left_out(rc):
    table = read_traces(H200)
    marked = _with(table, "kernel", ["network"] * 3)
    marked = _with(marked, "backend", marked["backend"].to_pylist()[:3] + ["numpy"] * 2)
    marked = _with(marked, "suite", ["network"] * 7)
    kept = rc.kernel_records(marked)
    # the 3 whole-run records and 2 NumPy ones go; the network suite's 2 other (layer) records stay
    assert kept.num_rows == table.num_rows - 5
    assert pc.sum(pc.equal(kept["suite"], "network")).as_py() == 2


def test_records_no_gpu_arch_describes_are_named_not_replayed(rc, tmp_path):
    out = tmp_path / "v.json"
    assert rc.main(["--traces", str(CPU), "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["arch"] is None and "saved" not in rep and "split" not in rep
    assert any("nothing replayed" in n for n in rep["notes"])
    assert [p.name for p in tmp_path.iterdir()] == ["v.json"]  # no temporary left behind


def test_replay_floor_starts_from_validates_own_group_error():
    """bench/replay_floor.py: its 'model' column is validate's held-out error of that group, and the
    corrections are finite (bf16 on the OpenXLA H100 set, one seed)."""
    from accelsim.model.arch import load_arch
    from accelsim.replay.device import validate_gpu

    floor = load_script("bench/replay_floor.py")
    traces = ROOT / "traces" / "nvidia-h100-sxm-xla"
    r = floor.floor(traces, "h100_sxm_units", "gemm bfloat16", 1)
    rep = validate_gpu(read_traces(traces), load_arch("h100_sxm_units"), calibrate_on=0.5, seed=1)
    (group,) = [g for g in rep["groups"] if g["family"] == "gemm bfloat16"]
    assert r["held_out"] == group["n"]
    assert r["model"] == pytest.approx(group["mape_pct"], rel=1e-9)
    assert all(0.0 < r[k] < 100.0 for k in ("model x knn3", "model x boosted trees"))
