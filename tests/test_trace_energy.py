"""The recorder's energy window (>= 1 s of calls) and idle power, on the CPU with a fake NVML counter and fake CUDA events."""

from __future__ import annotations

import time
import types

import numpy as np
import pytest

import kernels.timing as timing_module
from kernels.trace import Recorder, energy_window, idle_power, read_traces, time_call

WATTS = 300.0


@pytest.fixture
def fake_nvml(monkeypatch):
    """NVML as a 300 W device: the energy counter (mJ) grows with wall time, 90 W idle power; returns the
    list of counter readings, in order."""
    t0 = time.perf_counter()
    reads = []

    def counter(h):
        reads.append(int((time.perf_counter() - t0) * WATTS * 1e3))
        return reads[-1]

    monkeypatch.setattr(timing_module, "_nvml_handle", lambda: "gpu0")
    monkeypatch.setattr(timing_module, "_energy_mj", counter)
    monkeypatch.setattr(timing_module, "_power_w", lambda h: 90.0)
    monkeypatch.setattr(timing_module, "_clocks", lambda h: (1980.0, 3201.0))
    return reads


def _fake_cupy():
    """A module that looks like CuPy to time_call: events are wall-clock stamps, the stream syncs nothing."""

    class Event:
        def record(self, stream):
            self.t = time.perf_counter()

    cuda = types.SimpleNamespace(Event=Event, get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None),
                                 get_elapsed_time=lambda s, e: (e.t - s.t) * 1e3)
    return types.SimpleNamespace(__name__="cupy", cuda=cuda)


def _work():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((96, 96)), rng.standard_normal((96, 96))
    return lambda: a @ b


def test_energy_window_calls_on_until_the_window_is_long_enough(fake_nvml):
    call = _work()
    started = time.perf_counter()
    e0 = timing_module._energy_mj("gpu0")
    calls, window, e1 = energy_window(call, "gpu0", lambda: None, 10, started, min_window_s=0.2)
    assert window >= 0.2 and calls > 10
    assert e1 == fake_nvml[-1] and e1 - e0 >= 0.2 * WATTS * 1e3  # the counter read at the window's end


def test_time_call_records_median_of_timed_calls_and_the_long_window(fake_nvml):
    xp = _fake_cupy()
    # a 2 ms call: the 5 timed calls fill a fraction of the window, so the recorder must call on
    timing = time_call(lambda: time.sleep(0.002), xp=xp, warmup=1, repeats=5, min_window_s=0.3)
    assert timing.repeats == 5 and timing.median_s == pytest.approx(float(np.median(timing.times_s)))
    assert timing.energy_window_s >= 0.3 and timing.energy_calls > 5
    assert timing.idle_power_w == 90.0
    # energy per call: the counter's rise from before the first timed call to the window's end, over every call
    e0, e1 = fake_nvml[0], fake_nvml[-1]
    assert timing.energy_j == pytest.approx((e1 - e0) / 1e3 / timing.energy_calls, rel=1e-12)
    assert e1 - e0 >= 0.3 * WATTS * 1e3


def test_no_energy_window_asked_means_no_idle_power_sleep(fake_nvml, monkeypatch):
    """Autotuning times candidates with ``min_window_s=0``: no ~80 ms of idle-power readings per call."""
    monkeypatch.setattr(timing_module, "idle_power", lambda *a, **k: pytest.fail("idle power read for a timing-only call"))
    t0 = time.perf_counter()
    timing = time_call(lambda: None, xp=_fake_cupy(), warmup=1, repeats=3, min_window_s=0)
    assert time.perf_counter() - t0 < 0.05
    assert timing.idle_power_w is None and timing.repeats == 3


def test_recorder_writes_window_and_idle_power(fake_nvml, tmp_path):
    timing = time_call(lambda: _work()(), xp=_fake_cupy(), warmup=0, repeats=3, min_window_s=0.05)
    with Recorder(tmp_path) as rec:
        rec.add(kernel="gemm", dtype="float32", timing=timing, shapes={"a": (96, 96)}, m=96, n=96, k=96)
    row = read_traces(tmp_path).to_pylist()[0]
    assert row["energy_window_s"] == timing.energy_window_s and row["energy_calls"] == timing.energy_calls
    assert row["idle_power_w"] == 90.0 and row["energy_j"] == timing.energy_j


def test_no_nvml_means_no_energy(monkeypatch):
    monkeypatch.setattr(timing_module, "_nvml_handle", lambda: None)
    timing = time_call(lambda: _work()(), xp=_fake_cupy(), warmup=0, repeats=2)
    assert timing.energy_j is None and timing.energy_window_s is None and timing.idle_power_w is None
    monkeypatch.setattr(timing_module, "_power_w", lambda h: None)
    assert idle_power("gpu0", interval_s=0.0) is None


def test_energy_per_call_returns_the_window_with_its_energy(fake_nvml):
    """What the network loop records per layer: energy per call, the window's length and calls, idle power."""
    from dataclasses import asdict

    from kernels.trace import Timing, energy_per_call

    e = energy_per_call(lambda: time.sleep(0.002), xp=_fake_cupy(), min_window_s=0.2)
    assert e.energy_window_s >= 0.2 and e.energy_calls >= 0.2 / 0.01  # 2 ms calls (sleep overshoots a little)
    assert e.idle_power_w == 90.0
    # the counter's rise over the window (from after the one untimed call to the end) over its calls
    assert e.energy_j == pytest.approx((fake_nvml[-1] - fake_nvml[-2]) / 1e3 / e.energy_calls, rel=1e-12)
    assert e.energy_j * e.energy_calls == pytest.approx(WATTS * e.energy_window_s, rel=0.05)
    t = Timing((0.002,), 0, **asdict(e))
    assert (t.energy_j, t.energy_window_s, t.energy_calls, t.idle_power_w) == tuple(asdict(e).values())


def test_energy_per_call_is_none_on_numpy_and_without_nvml(monkeypatch):
    from kernels.trace import energy_per_call

    assert energy_per_call(_work(), xp=np) is None
    monkeypatch.setattr(timing_module, "_nvml_handle", lambda: None)
    assert energy_per_call(_work(), xp=_fake_cupy()) is None
