"""The trace recorder and reader keep every column as given: each numeric value written comes back equal.

The values are chosen so that no two columns agree (a swapped pair, a column filled from its
neighbour or a default used in place of a given value changes a number), and the times are
scripted, so median, minimum and maximum are known exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

import kernels.timing as timing
import kernels.trace as trace
from kernels.trace import SCHEMA, Recorder, Timing, read_traces, time_call

# Four calls: the median of an even count is the mean of the middle two, (2.5 + 3) / 2 ms.
TIMES = (3.0e-3, 1.0e-3, 7.0e-3, 2.5e-3)
TIMING = Timing(TIMES, warmup=5, energy_j=0.125, sm_clock_mhz=1755.0, mem_clock_mhz=2619.0, energy_window_s=1.375,
                energy_calls=411, idle_power_w=71.5)
GIVEN = dict(kernel="nm_spmm", dtype="float32", m=96, n=160, k=224, shapes={"a": (96, 224), "b": (224, 160)},
             flops_dense=2 * 96 * 160 * 224, flops_effectual=96 * 160 * 224, bytes_min=4 * (96 * 112 + 224 * 160 + 96 * 160),
             pattern="2:4", density=0.5, tasd_series="2:4+1:8", params={"layout": "vector", "path": "low"},
             suite="small")


def _head() -> str | None:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(trace.__file__).parent, capture_output=True, text=True)
    return out.stdout.strip() or None if out.returncode == 0 else None


def test_every_column_round_trips(tmp_path):
    before = dt.datetime.now(dt.timezone.utc)
    with Recorder(tmp_path, run_id="run-7") as rec:
        rec.add(timing=TIMING, **GIVEN)
    after = dt.datetime.now(dt.timezone.utc)
    table = read_traces(tmp_path)
    assert table.schema.equals(SCHEMA) and table.num_rows == 1
    row = table.to_pylist()[0]
    want = {
        "run_id": "run-7", "suite": "small", "kernel": "nm_spmm", "backend": "numpy", "dtype": "float32",
        "m": 96, "n": 160, "k": 224,
        "shapes": {"a": [96, 224], "b": [224, 160]}, "pattern": "2:4", "density": 0.5, "tasd_series": "2:4+1:8",
        "params": {"layout": "vector", "path": "low"},
        "flops_dense": 6881280, "flops_effectual": 3440640, "bytes_min": 4 * (10752 + 35840 + 15360),
        "time_median_s": 2.75e-3, "time_min_s": 1.0e-3, "time_max_s": 7.0e-3, "repeats": 4, "warmup": 5,
        "energy_j": 0.125, "energy_window_s": 1.375, "energy_calls": 411, "idle_power_w": 71.5,
        "sm_clock_mhz": 1755.0, "mem_clock_mhz": 2619.0,
        "numpy_version": np.__version__, "cupy_version": None, "cuda_version": None, "git_commit": _head(),
        "compute_capability": None,
    }
    row["shapes"], row["params"] = json.loads(row["shapes"]), json.loads(row["params"])
    for col, value in want.items():
        assert row[col] == value, col
    assert before <= row["timestamp"] <= after
    assert isinstance(row["device_name"], str) and row["device_name"]
    assert set(row) == set(want) | {"timestamp", "device_name"}


def test_effectual_flops_default_to_dense_only_when_not_given():
    rec = Recorder()
    given = rec.add(timing=TIMING, kernel="gemm", dtype=np.float64, shapes={"a": (2, 3)}, flops_dense=12,
                    flops_effectual=5)
    missing = rec.add(timing=TIMING, kernel="gemm", dtype=np.float64, shapes={"a": (2, 3)}, flops_dense=12)
    assert (given["flops_effectual"], missing["flops_effectual"]) == (5, 12)
    assert given["dtype"] == "float64"
    table = rec.table()
    assert table.column("flops_effectual").to_pylist() == [5, 12]
    assert table.column("flops_dense").to_pylist() == [12, 12]


def test_timing_statistics_of_an_odd_count():
    t = Timing((4.0, 9.0, 1.0), warmup=0)
    assert (t.median_s, t.min_s, t.max_s, t.repeats) == (4.0, 1.0, 9.0, 3)


def test_time_call_times_each_call_on_a_scripted_clock(monkeypatch):
    """NumPy path: warm-up calls are not timed; each timed call is the clock's advance over that call."""
    clock = iter([10.0, 10.5, 20.0, 20.25, 30.0, 31.0])
    calls = []
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    t = time_call(lambda x: calls.append(x), 1, xp=np, warmup=2, repeats=3)
    assert len(calls) == 5
    assert t.times_s == (0.5, 0.25, 1.0) and t.warmup == 2 and t.energy_j is None
    assert (t.median_s, t.min_s, t.max_s) == (0.5, 0.25, 1.0)


def test_time_call_on_device_events_and_energy_window(monkeypatch):
    """CuPy path with scripted events and an NVML counter: times are the events' elapsed ms / 1e3; energy per
    call is the counter's rise (mJ) over every call of the window, here 3 timed + 2 more."""
    elapsed = iter([2.0, 6.0, 4.0])
    counter = iter([1000, 1000 + 5 * 250])  # before the timed calls, at the window's end

    class Event:
        def record(self, stream):
            pass

    cuda = types.SimpleNamespace(Event=Event, get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None),
                                 get_elapsed_time=lambda s, e: next(elapsed))
    xp = types.SimpleNamespace(__name__="cupy", cuda=cuda)
    monkeypatch.setattr(timing, "_nvml_handle", lambda: "gpu0")
    monkeypatch.setattr(timing, "_energy_mj", lambda h: next(counter))
    monkeypatch.setattr(timing, "_power_w", lambda h: 64.0)
    monkeypatch.setattr(timing, "_clocks", lambda h: (1410.0, 1215.0))
    windows = []

    def window(call, h, sync, done, started, min_window_s):
        windows.append(min_window_s)
        return done + 2, 1.5, next(counter)

    monkeypatch.setattr(timing, "energy_window", window)
    t = time_call(lambda: None, xp=xp, warmup=1, repeats=3)
    assert windows == [1.0]  # the default window: NVML's counter needs at least a second
    assert t.times_s == (2e-3, 6e-3, 4e-3) and (t.median_s, t.min_s, t.max_s) == (4e-3, 2e-3, 6e-3)
    assert t.energy_j == pytest.approx(0.25, rel=1e-12) and t.energy_calls == 5 and t.energy_window_s == 1.5
    assert (t.sm_clock_mhz, t.mem_clock_mhz, t.idle_power_w) == (1410.0, 1215.0, 64.0)


def test_version_1_file_reads_with_the_three_new_columns_null(tmp_path):
    """A version-1 trace (no energy window, calls or idle power) reads with those columns null, the rest kept."""
    import pyarrow.parquet as pq

    rec = Recorder()
    rec.add(timing=TIMING, **GIVEN)
    old = rec.table().drop_columns(["energy_window_s", "energy_calls", "idle_power_w"])
    old = old.replace_schema_metadata({b"accelsim.trace.schema_version": b"1"})
    pq.write_table(old, tmp_path / "v1.parquet")
    row = read_traces(tmp_path).to_pylist()[0]
    assert (row["energy_window_s"], row["energy_calls"], row["idle_power_w"]) == (None, None, None)
    assert (row["energy_j"], row["time_min_s"], row["flops_effectual"]) == (0.125, 1.0e-3, 3440640)


def test_idle_power_is_the_median_of_five_readings_20_ms_apart(monkeypatch):
    readings = iter([90.0, 10.0, 30.0, 20.0, 95.0, 200.0, 300.0])
    sleeps = []
    monkeypatch.setattr(timing, "_power_w", lambda h: next(readings))
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(sleep=sleeps.append))
    assert timing.idle_power("gpu0") == 30.0
    assert sleeps == [0.02] * 4


def test_time_call_defaults_to_three_warmup_and_ten_timed_calls(monkeypatch):
    ticks = iter(float(i) for i in range(100))
    calls = []
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    t = time_call(lambda: calls.append(1), xp=np)
    assert len(calls) == 13 and t.warmup == 3 and t.repeats == 10 and t.times_s == (1.0,) * 10


def _write(table, path):
    import pyarrow.parquet as pq

    pq.write_table(table, path)
    return path


def _good_table():
    rec = Recorder()
    rec.add(timing=TIMING, **GIVEN)
    return rec.table()


POSITIVE, NON_NEGATIVE = "must be a positive finite number", "must be finite and >= 0"


@pytest.mark.parametrize("col,value,why", [
    *[(c, 0, POSITIVE) for c in ("time_median_s", "time_min_s", "time_max_s", "repeats", "m", "n", "k")],
    *[(c, -1, NON_NEGATIVE) for c in ("warmup", "flops_dense", "flops_effectual", "bytes_min", "energy_j",
                                      "energy_window_s", "energy_calls", "idle_power_w", "sm_clock_mhz",
                                      "mem_clock_mhz")],
    ("idle_power_w", float("nan"), NON_NEGATIVE),
    ("density", 1.5, "must be in (0, 1]"), ("time_min_s", float("nan"), POSITIVE), ("energy_j", float("inf"), NON_NEGATIVE),
])
def test_reader_refuses_a_value_no_measurement_makes(tmp_path, col, value, why):
    """Each positive column refuses 0, each non-negative one -1, naming the file, row, column and value."""
    import pyarrow as pa

    t = _good_table()
    i = t.schema.get_field_index(col)
    t = t.set_column(i, t.schema.field(col), pa.array([value], t.schema.field(col).type))
    f = _write(t, tmp_path / "bad.parquet")
    with pytest.raises(trace.TraceError) as exc:
        read_traces(f)
    msg = str(exc.value)
    assert f"bad.parquet: row 0 (nm_spmm): {col} = " in msg and msg.endswith(why)


def test_reader_accepts_zero_where_non_negative_and_refuses_year_10000(tmp_path):
    import pyarrow as pa

    t = _good_table()
    for col in ("warmup", "flops_effectual", "energy_j"):
        i = t.schema.get_field_index(col)
        t = t.set_column(i, t.schema.field(col), pa.array([0], t.schema.field(col).type))
    assert read_traces(_write(t, tmp_path / "zero.parquet")).to_pylist()[0]["flops_effectual"] == 0
    year_10000 = 253_402_300_800 * 10**6  # µs since 1970
    i = t.schema.get_field_index("timestamp")
    for stamp, ok in ((year_10000 - 1, True), (year_10000, False), (0, True), (-1, False)):
        col = pa.array([stamp], pa.int64()).cast(t.schema.field("timestamp").type)
        f = _write(t.set_column(i, t.schema.field("timestamp"), col), tmp_path / f"t{stamp}.parquet")
        if ok:
            assert trace._read_one(f).num_rows == 1
        else:
            with pytest.raises(trace.TraceError, match="timestamp"):
                trace._read_one(f)


def test_flush_names_parts_in_order_and_reads_a_single_file(tmp_path):
    rec = Recorder(tmp_path, run_id="run-9")
    assert rec.flush() is None  # nothing pending
    rec.add(timing=TIMING, **GIVEN)
    first = rec.flush()
    rec.add(timing=TIMING, **GIVEN)
    second = rec.flush()
    assert (first.name, second.name) == ("part-run-9-0000.parquet", "part-run-9-0001.parquet")
    assert read_traces(first).num_rows == 1 and trace.trace_files(first) == [first]


def test_provisional_rows_are_the_next_part_until_flush_replaces_them(tmp_path):
    """A result growing pass by pass: each provisional write is the part the next flush writes (so a kill
    keeps the latest), the flush replaces it, and the part after is numbered on."""
    rec = Recorder(tmp_path, run_id="run-7")
    scratch = Recorder(run_id="run-7")
    assert rec.provisional([]) is None and Recorder(run_id="x").provisional([{"kernel": "k"}]) is None
    one = [scratch.add(timing=TIMING, **GIVEN)]
    p1 = rec.provisional(one)
    assert p1.name == "part-run-7-0000.parquet" and read_traces(tmp_path).num_rows == 1
    two = [*one, scratch.add(timing=TIMING, **{**GIVEN, "m": 7})]
    assert rec.provisional(two) == p1 and [r["m"] for r in read_traces(tmp_path).to_pylist()] == [GIVEN["m"], 7]
    rec.add(timing=TIMING, **{**GIVEN, "m": 9})
    assert rec.flush() == p1 and [r["m"] for r in read_traces(tmp_path).to_pylist()] == [9]
    rec.add(timing=TIMING, **GIVEN)
    assert rec.flush().name == "part-run-7-0001.parquet" and len(trace.trace_files(tmp_path)) == 2


def test_energy_window_counts_each_call_until_the_window_closes(monkeypatch):
    ticks = iter([0.3, 0.6, 0.9, 1.2, 1.25])
    calls = []
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    monkeypatch.setattr(timing, "_energy_mj", lambda h: 4321)
    got = timing.energy_window(lambda: calls.append(1), "gpu0", lambda: None, 10, 0.0, 1.0)
    assert got == (13, 1.25, 4321) and len(calls) == 3


def test_energy_per_call_needs_the_counter_to_advance(monkeypatch):
    xp = types.SimpleNamespace(__name__="cupy", cuda=types.SimpleNamespace(
        get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None)))
    monkeypatch.setattr(timing, "_nvml_handle", lambda: "gpu0")
    monkeypatch.setattr(timing, "_power_w", lambda h: 50.0)
    monkeypatch.setattr(timing, "_energy_mj", lambda h: 1000)
    monkeypatch.setattr(timing, "energy_window", lambda call, h, sync, done, started, w: (4, 1.0, 1000))
    assert timing.energy_per_call(lambda: None, xp=xp) is None  # no rise: no energy, not zero
    monkeypatch.setattr(timing, "energy_window", lambda call, h, sync, done, started, w: (done + 4, 1.0, 1800))
    e = timing.energy_per_call(lambda: None, xp=xp)
    assert (e.energy_j, e.energy_calls, e.energy_window_s, e.idle_power_w) == (0.2, 4, 1.0, 50.0)


def test_time_call_without_a_counter_rise_records_no_energy(monkeypatch):
    cuda = types.SimpleNamespace(Event=lambda: types.SimpleNamespace(record=lambda s: None),
                                 get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None),
                                 get_elapsed_time=lambda s, e: 1.0)
    xp = types.SimpleNamespace(__name__="cupy", cuda=cuda)
    monkeypatch.setattr(timing, "_nvml_handle", lambda: "gpu0")
    monkeypatch.setattr(timing, "_energy_mj", lambda h: 500)
    monkeypatch.setattr(timing, "_power_w", lambda h: 60.0)
    monkeypatch.setattr(timing, "_clocks", lambda h: (1.0, 2.0))
    monkeypatch.setattr(timing, "energy_window", lambda call, h, sync, done, started, w: (done + 1, 1.1, 500))
    t = time_call(lambda: None, xp=xp, warmup=0, repeats=2)
    assert (t.energy_j, t.energy_window_s, t.energy_calls) == (None, None, None) and t.times_s == (1e-3, 1e-3)


def test_reader_refuses_text_in_a_number_column(tmp_path):
    """"128" would cast to a number; the reader refuses it by kind, naming the column and both types."""
    import pyarrow as pa

    t = _good_table()
    i = t.schema.get_field_index("m")
    t = t.set_column(i, pa.field("m", pa.string()), pa.array(["128"]))
    f = _write(t, tmp_path / "text.parquet")
    with pytest.raises(trace.TraceError, match="column 'm' holds string values, the trace schema has int64"):
        read_traces(f)


def test_a_row_without_xp_describes_the_numpy_device(monkeypatch):
    """Rows recorded without ``xp`` are NumPy runs: the device is NumPy's even when another backend is the default."""
    seen = []
    monkeypatch.setattr(trace, "device_info", lambda xp: seen.append(xp) or {"device_name": "cpu0"})
    row = Recorder().add(timing=TIMING, **GIVEN)
    assert seen == [np] and row["backend"] == "numpy" and row["device_name"] == "cpu0"


def test_trace_files_skip_hidden_and_underscored_names(tmp_path):
    """The atomic writer's temporaries (``.x``) and ``_x`` names are not trace files, nor is a folder named .parquet."""
    rec = Recorder(tmp_path, run_id="r")
    rec.add(timing=TIMING, **GIVEN)
    real = rec.flush()
    (tmp_path / ".part-tmp.parquet").write_bytes(b"partial")
    (tmp_path / "_meta.parquet").write_bytes(b"x")
    (tmp_path / "_hidden").mkdir()
    (tmp_path / "_hidden" / "x.parquet").write_bytes(b"x")
    (tmp_path / "dir.parquet").mkdir()
    assert trace.trace_files(tmp_path) == [real]
    assert read_traces(tmp_path).num_rows == 1
