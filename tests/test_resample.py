"""A calibration's interval for each fitted parameter over its passes drawn again (`accelsim.replay.resample`): the
width a bootstrap of the mean gives in closed form when every pass moves every configuration alike, seeded, and what
`fit_saved`, `refit_saved` and `compare_dirs` make of it."""

from __future__ import annotations

import json
import math
import shutil
import statistics

import numpy as np
import pytest

from accelsim.replay import calibration_dir as cdir
from accelsim.replay import calibration_set as cset
from accelsim.replay import device_calibration as dc
from accelsim.replay.calibrate import fitted_params
from accelsim.replay.calibration_diff import compare_dirs
from accelsim.replay.project import Item, Projection
from accelsim.replay.resample import param_intervals
from accelsim.replay.traces import load as load_traces
from accelsim.model.arch import load_arch


def _items(passes: int, seed: int, scale: float = 1.7):
    """Six compute-only configurations whose pass ``j`` all run ``f[j]`` times their time (one box state per pass)."""
    rng = np.random.default_rng(seed)
    f = np.exp(rng.normal(0.0, 0.08, passes))
    compute = 10 ** rng.uniform(-5, -2, 6)
    items = [Item(key=(i,), family="gemm", kernel="gemm", label=f"c{i}", measured_s=0.0, measured_j=None,
                  runs=passes, row={"dtype": "float32", "run_times_s": [float(scale * c * x) for x in f]},
                  workload=None, launches=0, working_set=0) for i, c in enumerate(compute)]
    return items, [Projection(float(c), 0.0, 0.0, 0.0) for c in compute], f


def _scale(glob, groups):
    return {"scale": glob.compute_scale}


@pytest.mark.parametrize("passes, seed", [(18, 1), (12, 2), (30, 3)])
def test_common_pass_noise_gives_the_bootstraps_closed_form_width(passes, seed):
    """Every configuration's time is ``1.7 × compute × f[j]`` in pass ``j``: each refit's scale is exactly 1.7 times
    the mean of the drawn passes' ``f``, so the interval is that of a bootstrap of a mean, about ±1.645 σ/√n (σ over
    the passes, n passes). Drawn per configuration instead of per pass, the six means would average out to a width
    √6 smaller."""
    items, proj, f = _items(passes, seed)
    got = param_intervals(items, proj, statistics.fmean, _scale, rounds=4000, seed=seed)["scale"]
    want = 1.645 * 1.7 * float(np.std(f)) / math.sqrt(passes)
    assert (got["hi"] - got["lo"]) / 2 == pytest.approx(want, rel=0.12)
    assert got["lo"] < 1.7 * float(np.mean(f)) < got["hi"]
    assert got["half_width_pct"] == pytest.approx(100 * (got["hi"] - got["lo"]) / (got["hi"] + got["lo"]))


def test_same_seed_same_interval_and_one_pass_gives_none():
    items, proj, _ = _items(10, 4)
    a = param_intervals(items, proj, statistics.fmean, _scale, rounds=50, seed=0)
    assert a == param_intervals(items, proj, statistics.fmean, _scale, rounds=50, seed=0)
    assert a != param_intervals(items, proj, statistics.fmean, _scale, rounds=50, seed=1)
    one, proj1, _ = _items(1, 4)
    assert param_intervals(one, proj1, statistics.fmean, _scale) == {}


def test_steady_passes_give_a_point_interval():
    """Passes that repeat one time exactly leave nothing to draw: every refit is the fit, the width 0."""
    items, proj, _ = _items(8, 5)
    for it in items:
        it.row["run_times_s"] = [it.row["run_times_s"][0]] * 8
    got = param_intervals(items, proj, statistics.fmean, _scale, rounds=20)["scale"]
    assert got["lo"] == pytest.approx(got["hi"], rel=1e-12) and got["half_width_pct"] == pytest.approx(0.0, abs=1e-9)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from test_calibrate_device import FAKE, _cases

    out = tmp_path_factory.mktemp("resample") / "cal"
    dc.calibrate_device(out, 30.0, bench=lambda report: FAKE, cases=_cases())
    return out


def test_a_calibration_states_an_interval_for_each_fitted_parameter(saved):
    doc = json.loads((saved / cdir.CALIBRATION_FILE).read_text())
    spans = doc["param_intervals"]
    assert set(spans) == set(fitted_params(doc))
    assert all(v["lo"] <= v["hi"] for v in spans.values())
    assert doc["resample"]["rounds"] == 200 and doc["resample"]["percentiles"] == [5.0, 95.0]
    again = dc.refit_saved(doc, load_traces(saved / cdir.TRACES_DIR), load_arch(saved / cdir.ARCH_FILE))
    assert again["param_intervals"] == spans


def test_compare_dirs_says_whether_the_later_value_lies_in_the_earlier_interval(saved, tmp_path):
    doc = json.loads((saved / cdir.CALIBRATION_FILE).read_text())
    name = "gemm float32.compute_efficiency"
    lo, hi = doc["param_intervals"][name]["lo"], doc["param_intervals"][name]["hi"]
    value = doc["groups"]["gemm float32"]["compute_efficiency"]

    def later(eff, where):
        dst = tmp_path / where
        shutil.copytree(saved, dst)
        d = json.loads((dst / cdir.CALIBRATION_FILE).read_text())
        d["groups"]["gemm float32"]["compute_efficiency"] = eff
        d["groups"]["gemm float32"]["compute_scale"] = 1 / eff
        (dst / cdir.CALIBRATION_FILE).write_text(json.dumps(d))
        return {p["name"]: p for p in compare_dirs(saved, dst)["params"]}[name]

    same = later(value, "same")
    assert same["inside"] and same["a_interval"] == [min(lo, value), max(hi, value)]
    assert later(max(hi, value) * 1.01, "above")["inside"] is False
    assert later(min(lo, value) * 0.99, "below")["inside"] is False


def test_calibrate_prints_the_widest_intervals_and_against_says_what_moved_outside(saved, tmp_path, capsys,
                                                                                    monkeypatch):
    from conftest import run_in_process
    from test_calibrate_device import FAKE, _cases

    monkeypatch.setattr(dc, "measure", lambda report: FAKE)
    monkeypatch.setattr(cset, "calibration_cases", lambda xp, **_: _cases())
    out = tmp_path / "now"
    code, stdout, err = run_in_process(capsys, monkeypatch, "calibrate", "--out", str(out), "--against", str(saved))
    assert code in (0, None), err
    doc = json.loads((out / cdir.CALIBRATION_FILE).read_text())
    widths = sorted(((v["half_width_pct"], k) for k, v in doc["param_intervals"].items()
                     if v["half_width_pct"] is not None), reverse=True)
    text = " ".join(stdout.split())
    assert f"passes drawn again ({len(widths)} parameters, 90 % of 200 refits): widest {widths[0][1]} " \
           f"+-{widths[0][0]:.1f} %" in text
    diff = compare_dirs(saved, out)
    outside = [p["name"] for p in diff["params"] if p["inside"] is False]
    assert (f"outside the earlier one's interval over its passes drawn again (the box moved between the two): "
            f"{', '.join(outside)}" if outside else "every parameter inside the earlier one's interval") in text
