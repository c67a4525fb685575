"""The probe power: which pass a calibration's row was timed in, each pass's probe rate, the power of the probe rate
a calibration's times follow (recovered from times generated with a known one), and a calibration priced for a
run's state by it."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from accelsim.replay import calibration_dir as cdir
from accelsim.replay import device_calibration as dc
from accelsim.replay import probe_power as pp
from accelsim.replay.calibrate import Params
from accelsim.replay.traces import KEY

T0 = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)


def _table(times: dict[str, list[float]], order=None) -> pa.Table:
    """Rows of a calibration's traces: configuration ``name``'s pass ``j`` took ``times[name][j]``, every
    configuration once per pass in turn (one second apart); ``order`` shuffles the rows as written."""
    rows = []
    for j in range(max(len(t) for t in times.values())):
        for name, ts in times.items():
            if j < len(ts):
                rows.append({**{c: None for c in KEY}, "kernel": "gemm", "backend": "numpy", "dtype": "float32",
                             "shapes": "{}", "params": json.dumps({"name": name}),
                             "timestamp": T0 + dt.timedelta(seconds=len(rows)), "time_median_s": ts[j]})
    if order is not None:
        rows = [rows[i] for i in order(len(rows))]
    return pa.Table.from_pylist(rows)


def _key(name: str) -> tuple:
    return tuple({"kernel": "gemm", "backend": "numpy", "dtype": "float32", "shapes": "{}",
                  "params": json.dumps({"name": name})}.get(c) for c in KEY)


def test_a_rows_pass_is_its_place_among_its_configurations_rows_by_time():
    times = {"a": [1.0, 2.0, 3.0, 4.0], "b": [5.0, 6.0, 7.0]}  # b's last pass cut by the budget
    rev = _table(times, order=lambda n: list(range(n))[::-1])  # written in reverse: the timestamps order them
    got = dict(zip(zip([json.loads(p)["name"] for p in rev.column("params").to_pylist()],
                       rev.column("time_median_s").to_pylist()), pp.row_passes(rev, {"recorded": 4, "kept": [1, 2, 3]})))
    assert got == {("a", 1.0): 0, ("a", 2.0): 1, ("a", 3.0): 2, ("a", 4.0): 3, ("b", 5.0): 0, ("b", 6.0): 1,
                   ("b", 7.0): 2}
    # Traces holding only the kept passes (written before every pass was): the j-th row is the j-th kept pass.
    only = _table({"a": [1.0, 2.0, 3.0], "b": [5.0, 6.0, 7.0]})
    assert pp.row_passes(only, {"recorded": 9, "kept": [0, 5, 8]}) == [0, 0, 5, 5, 8, 8]
    assert pp.row_passes(only, {"recorded": 5, "kept": [0, 1]}) is None  # neither: traces of another origin
    assert pp.row_passes(only, None) is None


def test_kept_rows_are_those_of_the_kept_passes():
    t = _table({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [6.0, 7.0, 8.0, 9.0, 10.0]})
    kept = pp.kept_rows(t, {"recorded": 5, "kept": [1, 3, 4]})
    assert sorted(kept.column("time_median_s").to_pylist()) == [2.0, 4.0, 5.0, 7.0, 9.0, 10.0]
    assert pp.kept_rows(t, None).num_rows == 10 == pp.kept_rows(t, {"recorded": 5, "kept": [0, 1, 2, 3, 4]}).num_rows


def test_a_pass_probe_is_the_geometric_mean_of_the_rounds_around_it():
    assert pp.pass_probes([100.0, 144.0, 81.0], 3) == pytest.approx([120.0, 108.0, 81.0])
    assert pp.pass_probes([100.0], 2) is None and pp.pass_probes([], 0) is None


def _generated(power, probes, seed, outlier=False):
    """Nine configurations, each pass's time ``base × probe ** -power`` with 0.5 % noise; ``outlier``: one pass of
    one configuration 4× as long (the scheduler took its thread)."""
    rng = np.random.default_rng(seed)
    bases = rng.uniform(1e-5, 1e-2, 9)
    times = {f"c{c}": [float(b * q ** -power * np.exp(rng.normal(0, 0.005))) for q in probes]
             for c, b in enumerate(bases)}
    if outlier:
        times["c0"][1] *= 4.0
    return _table(times)


@settings(max_examples=40, deadline=None)
@given(power=st.floats(0.0, 1.4), rounds=st.lists(st.floats(80.0, 250.0), min_size=4, max_size=12),
       seed=st.integers(0, 2**31), outlier=st.booleans())
def test_the_fitted_power_is_the_one_the_times_were_made_with(power, rounds, seed, outlier):
    q = pp.pass_probes(rounds, len(rounds))
    assume(max(q) / min(q) > 1.3)
    got = pp.fit_power(_generated(power, q, seed, outlier), {"recorded": len(rounds), "kept": [0]}, rounds)
    assert got["power"] == pytest.approx(power, abs=0.05)
    assert got["configs"] == 9 and got["passes"] == len(rounds) and got["span"] == pytest.approx(max(q) / min(q))


def test_no_power_from_one_state_and_the_bounds_on_one():
    rounds = [100.0, 104.0, 101.0, 103.0, 102.0]  # 4 % apart: one state
    passes = {"recorded": 5, "kept": [0, 1, 2, 3, 4]}
    assert pp.fit_power(_generated(0.5, pp.pass_probes(rounds, 5), 0), passes, rounds) is None
    rounds = [100.0, 150.0, 100.0, 150.0, 100.0]
    q = pp.pass_probes(rounds, 5)
    assert pp.fit_power(_generated(3.0, q, 1), passes, rounds)["power"] == pp.MAX_POWER  # far steeper than the probe
    assert pp.fit_power(_generated(-0.5, q, 1), passes, rounds)["power"] == 0.0  # faster as the box slows
    two = _table({"a": [1.0, 2.0, 1.0, 2.0, 1.0], "b": [1.0, 2.0]})  # no configuration timed in three passes...
    assert pp.fit_power(two.filter(pa.array([n == "b" for n in (json.loads(p)["name"] for p in
                                                                two.column("params").to_pylist())])),
                        {"recorded": 2, "kept": [0, 1]}, rounds[:2]) is None  # ...nothing to fit


def test_a_calibration_is_priced_for_the_runs_state():
    cal = {"global": Params(1e-6, 1.2, 1.5, "global", 2e-6), "configs": 9,
           "families": {"gemm": Params(1e-6, 1.1, 2.0, "gemm", 2e-6), "nm_gather": Params(1e-6, 1.3, 4.0, "g", 2e-6)},
           "groups": {"gemm float32": Params(1e-6, 1.05, 1.0, "gf", 2e-6),
                      "nm_gather float32": Params(1e-6, 1.3, 5.0, "ng", 2e-6)}}
    doc = {"probe_power": {"power": 0.5}}

    class P:  # a projection's parts
        compute_s, memory_s = 2e-4, 3e-5

    priced, notes = pp.for_state(cal, doc, {"ratio": 0.64})
    for before, after in ((cal["global"], priced["global"]), *((cal[w][n], priced[w][n]) for w in ("families", "groups")
                                                               for n in cal[w])):
        assert after.predict(P, 3, 2) == pytest.approx(before.predict(P, 3, 2) * 1.25)  # 0.64 ** -0.5
    assert len(notes) == 1 and "(0.64 x the calibration's)" in notes[0] and "1.25 x its time" in notes[0]
    assert pp.for_state(cal, doc, None) == (cal, []) and pp.for_state(cal, {}, {"ratio": 0.64}) == (cal, [])
    assert pp.for_state(cal, doc, {"ratio": 0.95}) == (cal, [])  # within one state's own spread
    assert pp.state_scale({"power": 0.5}, 1.09) == 1.0 and pp.state_scale({"power": 0.5}, 1.21) == pytest.approx(1 / 1.1)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A calibration directory (injected peaks, real GEMM cases) and a probed network run."""
    from test_calibrate_device import FAKE, _cases

    d = tmp_path_factory.mktemp("power")
    dc.calibrate_device(d / "cal", 30.0, bench=lambda report: FAKE, cases=_cases())
    _probed_run(d, d / "run")
    return d / "cal", d / "run"


def test_validate_prices_a_run_in_another_state_by_the_calibrations_power(made, tmp_path, capsys, monkeypatch):
    """A calibration (probe 160 GFLOP/s) whose saved power is 0.5; the run's probes 200: every layer is projected at
    (200 / 160) ** -0.5 of what the same calibration without a power projects."""
    from conftest import run_in_process
    from kernels.trace.microbench import PROBE_WARM_S

    out, run = made
    doc = json.loads((out / cdir.CALIBRATION_FILE).read_text())
    reports = {}
    for name, power in (("plain", None), ("powered", {"power": 0.5, "span": 1.3, "passes": 9, "configs": 6})):
        d = tmp_path / name
        shutil.copytree(out, d)
        (d / cdir.CALIBRATION_FILE).write_text(json.dumps({**doc, "gemm_probe_gflops": 160.0,
                                                         "gemm_probe_warm_s": PROBE_WARM_S, "probe_power": power}))
        code, stdout, err = run_in_process(capsys, monkeypatch, "validate", "--traces", str(run), "--calibration",
                                           str(d), "--format", "json")
        assert code in (0, None), err
        reports[name] = json.loads(stdout)
    for plain, powered in zip(reports["plain"]["variants"], reports["powered"]["variants"]):
        for a, b in zip(plain["layers"], powered["layers"]):
            assert b["projected_s"] == pytest.approx(a["projected_s"] * 1.25 ** -0.5)
    for plan, g in reports["plain"]["gain"].items():  # one power for every layer: the projected gain as it was
        assert reports["powered"]["gain"][plan]["projected_time"] == pytest.approx(g["projected_time"])
    assert any("priced for the run's probe rate (1.25 x" in n for n in reports["powered"]["notes"])
    assert not any("priced for" in n for n in reports["plain"]["notes"])


def _probed_run(tmp_path, dst):
    """A two-layer network run whose run records carry probes of 195 and 205 GFLOP/s (median 200)."""
    import pyarrow.parquet as pq

    from accelsim.replay.traces import load as load_traces
    from test_calibrate_device import record_network_run

    table = load_traces(record_network_run(tmp_path) / "traces")
    rows = [r if r["kernel"] != "network" else {**r, "params": json.dumps(
        {**json.loads(r["params"]), "gemm_probe_gflops": [195.0, 205.0]})} for r in table.to_pylist()]
    dst.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), dst / "part-0.parquet")


@pytest.mark.parametrize("power, needle", [
    ({"power": 2.5}, "probe_power.power = 2.5"),
    ({"power": -0.1}, "probe_power.power = -0.1"),
    ({"power": "x"}, "probe_power.power = 'x'"),
    ({"global": 0.5}, "probe_power.power = None"),
    ([0.5], "probe_power = [0.5]"),
])
def test_a_bad_probe_power_is_refused_naming_file_field_and_value(made, tmp_path, capsys, monkeypatch, power,
                                                                  needle):
    from conftest import assert_exit_2, run_in_process

    cal, run = made
    out = tmp_path / "cal"
    shutil.copytree(cal, out)
    doc = json.loads((out / cdir.CALIBRATION_FILE).read_text())
    (out / cdir.CALIBRATION_FILE).write_text(json.dumps({**doc, "probe_power": power}))
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", str(run), "--calibration", str(out)),
                  str(out / cdir.CALIBRATION_FILE), needle)
