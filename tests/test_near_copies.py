"""Copies timed where their buffers sit in the page, and the slow near copies the calibration looks for.

On the 2-vCPU EPYC (Zen 3, glibc 2.36) a 64 KiB ``np.copyto`` ran at 3-6 GB/s whenever the destination started
1-31 bytes past the source modulo 4 KiB, and at 46-75 GB/s otherwise (glibc bug 30994: ``rep movsb``). Which of the
two a copy got depended on where the heap put the pair, so the calibrations' L2 peak spread 47 %."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels.trace.microbench as mb
from accelsim.replay import box_state as bs
from accelsim.replay import cpu_report as cpu
from accelsim.replay import calibration_dir as cdir
from accelsim.replay import device_calibration as dc
from kernels.backend import PAGE_BYTES, page_aligned
from test_calibrate_device import FAKE, REPORT


def _offset(a: np.ndarray) -> int:
    return a.ctypes.data % PAGE_BYTES


@settings(max_examples=40, deadline=None)
@given(offset=st.integers(0, PAGE_BYTES - 1), rows=st.integers(1, 70), cols=st.integers(1, 300),
       dtype=st.sampled_from(["float32", "float64", "uint8"]), seed=st.integers(0, 2**31))
def test_page_aligned_buffers_start_where_asked_and_hold_what_is_written(offset, rows, cols, dtype, seed):
    a = page_aligned((rows, cols), dtype, offset)
    assert _offset(a) == offset and a.shape == (rows, cols) and a.dtype == np.dtype(dtype)
    values = np.random.default_rng(seed).integers(1, 200, (rows, cols)).astype(dtype)
    a[...] = values
    b = page_aligned((rows, cols), dtype, offset)  # a second buffer shares nothing with the first
    b[...] = values[::-1]
    assert np.array_equal(a, values) and np.array_equal(b, values[::-1])


def test_page_aligned_refuses_an_offset_outside_the_page():
    with pytest.raises(ValueError, match="offset 4096"):
        page_aligned(8, np.float32, PAGE_BYTES)


def _spy_pairs(monkeypatch):
    seen = []
    real = mb.timed_copy_rates

    def spy(pairs, repeats_each, inner):
        seen.append((pairs, list(repeats_each), inner))
        return real(pairs, repeats_each, inner)

    monkeypatch.setattr(mb, "timed_copy_rates", spy)
    return seen


def test_bandwidth_copies_put_the_destination_half_a_page_past_the_source(monkeypatch):
    seen = _spy_pairs(monkeypatch)
    rates = mb.copy_rates(96 * 1024, 6)
    ((pairs, each, inner),) = seen
    assert len(pairs) == mb.COPY_PAIRS and each == [2, 2, 1, 1] and inner == 64 * 1024 // 96
    for src, dst in pairs:
        assert _offset(src) == 0 and _offset(dst) == mb.COPY_APART == 2048
        assert src.nbytes == dst.nbytes == 96 * 1024 and np.all(src == 1.0)
        assert np.array_equal(dst, src)  # they were copied
    assert len(rates) == 6 and all(r > 0.1 for r in rates)


def test_near_copies_are_timed_16_bytes_past_the_source_alternating_with_apart_ones(monkeypatch):
    seen = _spy_pairs(monkeypatch)
    r = mb.near_copy_gbs(3)
    assert [(_offset(p[0][0]), _offset(p[0][1])) for p, _, _ in seen] == [(0, 16), (0, 2048)] * 3
    assert all(p[0][0].nbytes == mb.NEAR_COPY_BYTES == 64 * 1024 and each == [1] for p, each, _ in seen)
    assert set(r) == {"near", "apart"} and all(x["repeats"] == 3 and 0 < x["min"] <= x["median"] <= x["max"]
                                               for x in r.values())


def _near(near: float, apart: float) -> dict:
    def rate(x):
        return {"median": x, "min": 0.9 * x, "max": 1.1 * x, "repeats": 5}

    return {"near_copy_gbs": {"near": rate(near), "apart": rate(apart)}}


def test_calibrate_warns_of_slow_near_copies_and_names_the_setting_that_avoids_them():
    assert cpu.near_copy_slowdown(_near(4.0, 60.0)) == pytest.approx(15.0)
    (note,) = cpu.near_copy_note(_near(4.0, 60.0), None)
    assert "4 GB/s against 60 (15x slower)" in note and "bug 30994" in note
    assert note.endswith(f"GLIBC_TUNABLES={cpu.TUNABLE_FIX}")
    (note,) = cpu.near_copy_note(_near(4.0, 60.0), cpu.TUNABLE_FIX)  # already set: said, no advice
    assert note.endswith(f"even with GLIBC_TUNABLES={cpu.TUNABLE_FIX}")
    assert cpu.near_copy_note(_near(58.0, 60.0), None) == []  # 1.03x: no warning
    assert cpu.near_copy_note(_near(25.0, 60.0), None) == []  # 2.4x: below the bound, no warning
    assert len(cpu.near_copy_note(_near(20.0, 60.0), None)) == 1  # 3x: at the bound, a warning
    assert cpu.near_copy_note({}, None) == [] and cpu.near_copy_slowdown({}) is None  # a calibration made before


def test_arch_says_how_fast_near_copies_ran_and_where_the_bandwidths_were_timed(tmp_path):
    from accelsim.model.arch import load_arch

    path = tmp_path / "arch.yaml"
    path.write_text(dc.arch_yaml(REPORT, {**FAKE, **_near(4.0, 60.0)}))
    (line,) = [x for x in path.read_text().splitlines() if x.startswith("# Copies of 64 KiB")]
    assert "16 B past the source" in line and "4 GB/s (median of 5)" in line and "against 60 at 2048 B (15x)" in line
    assert load_arch(path).name == "cpu_calibrated"
    assert not any(x.startswith("# Copies of") for x in dc.arch_yaml(REPORT, FAKE).splitlines())


def _run_table(params: dict) -> pa.Table:
    return pa.Table.from_pylist([{"run_id": "r", "params": json.dumps({"role": "run", "plan": p, **params})}
                                 for p in ("dense", "plan")])


def test_validate_says_when_the_run_and_the_calibration_copied_under_different_tunables():
    run_unset = _run_table({"glibc_tunables": None})
    (note,) = bs.state_notes({"glibc_tunables": cpu.TUNABLE_FIX}, run_unset)
    assert note.startswith("copies: the run had GLIBC_TUNABLES=(unset), the calibration " + cpu.TUNABLE_FIX)
    assert bs.state_notes({"glibc_tunables": None}, run_unset) == []  # alike
    assert bs.state_notes({}, run_unset) == []  # a calibration made before it was recorded
    assert bs.state_notes({"glibc_tunables": "x"}, _run_table({})) == []  # a run recorded before
    pick, notes, _ = bs.choose_state(["A"], [{"glibc_tunables": "x"}], _run_table({"glibc_tunables": "x"}))
    assert pick == 0 and notes == []


def test_a_calibration_keeps_its_near_copies_and_tunables_through_a_refit(tmp_path, monkeypatch):
    from accelsim.model.arch import load_arch
    from accelsim.replay.traces import load as load_traces
    from test_calibrate_device import _cases

    monkeypatch.setenv("GLIBC_TUNABLES", cpu.TUNABLE_FIX)
    meas = {**FAKE, **_near(4.0, 60.0)}
    doc = dc.calibrate_device(tmp_path / "c", 30.0, bench=lambda report: meas, cases=_cases())
    assert doc["measured"]["near_copy_gbs"] == meas["near_copy_gbs"] and doc["glibc_tunables"] == cpu.TUNABLE_FIX
    again = dc.refit_saved(doc, load_traces(tmp_path / "c" / cdir.TRACES_DIR), load_arch(tmp_path / "c" / cdir.ARCH_FILE))
    assert again["measured"]["near_copy_gbs"] == meas["near_copy_gbs"] and again["glibc_tunables"] == cpu.TUNABLE_FIX


def test_measure_times_the_near_copies_once(monkeypatch):
    calls = []

    def near(repeats):
        calls.append(repeats)
        return _near(4.0, 60.0)["near_copy_gbs"]

    monkeypatch.setattr(mb, "call_overhead_s", lambda r: {"median": 1e-6, "min": 1e-6, "max": 1e-6, "repeats": r})
    monkeypatch.setattr(mb, "copy_rates", lambda b, r: [40.0] * r)
    monkeypatch.setattr(mb, "near_copy_gbs", near)
    assert dc.measure(REPORT)["near_copy_gbs"] == _near(4.0, 60.0)["near_copy_gbs"] and calls == [dc.PROBE_REPEATS]
