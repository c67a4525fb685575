"""`accelsim calibrate --backend cupy` on the CPU: NumPy stands in for CuPy, a fake driver report and fixed
microbenchmark numbers for the GPU's, and dense GEMMs recorded as cuBLAS calls for the paper cases. Checked:
the arch holds the reported and measured numbers (closed forms), the saved calibration is the fit on every
configuration and round-trips, the held-out MAPE is scored on configurations outside its fit, `validate
--calibration DIR` reproduces `validate_gpu` with the saved file and refuses another device, bad input exits 2
writing nothing, and the GPU job's replay check carries the directory into validate.json."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from accelsim.model.arch import load_arch
from accelsim.model.gpu import gpu_archs, record_time
from accelsim.replay import gpu_calibration as gc
from accelsim.replay.calibrate import split
from accelsim.replay.device import fit_device, gpu_items, load_calibration, validate_gpu
from accelsim.replay.calibration_dir import ARCH_FILE, CALIBRATION_FILE, TRACES_DIR
from accelsim.replay.traces import load as load_traces
from conftest import assert_exit_2, load_script, run_in_process
from kernels.backend import device_info
from kernels.nm.dispatch import DENSE
from kernels.suites import Case, Prepared
from kernels.suites.gemm import dense_case
from kernels.trace.gpu_microbench import driver_report

HERE = device_info(np)["device_name"]  # the device NumPy's records name
INFO = {"device_name": HERE, "compute_capability": "9.0", "sm_count": 114, "clock_mhz": 1500.0,
        "memory_clock_mhz": 2600.0, "memory_bytes": 80 * 2**30}
PROPS = {"memoryBusWidth": 5120, "l2CacheSize": 50 * 2**20, "sharedMemPerMultiprocessor": 233472}
NVML = {"idle_power_w": 70.0, "power_limit_w": 350.0}


def _rate(median, lo, hi, repeats=10):
    return {"median": median, "min": lo, "max": hi, "repeats": repeats}


def fake_bench(xp, report):
    return {"matmul_n": {"float32": 8192, "float16": 4096},
            "matmul_tflops": {"float32": _rate(45.0, 40.0, 48.0), "float16": _rate(600.0, 550.0, 700.0)},
            "unsupported": {"bfloat16": "ModuleNotFoundError: No module named 'ml_dtypes'"},
            "copy_bytes": gc.copy_buffers(report),
            "copy_gbs": {"hbm": _rate(1800.0, 1700.0, 2000.0), "l2": _rate(5000.0, 4000.0, 6000.0)},
            "launch_s": _rate(2.5e-6, 2e-6, 4e-6, 50), "host_call_s": _rate(8e-6, 7e-6, 9e-6, 5)}


def _as_cublas(case: Case) -> Case:
    """A NumPy dense GEMM recorded as the cuBLAS call the GPU model describes (NumPy's own impl has no description)."""
    def prepare():
        p = case.prepare()
        return Prepared(p.fn, p.args, {**p.fields, "params": {"impl": DENSE}})

    return Case(case.suite, case.key, case.label, prepare)


SHAPES = ((32, 32, 32), (64, 48, 32), (96, 64, 64), (128, 64, 32), (48, 128, 96), (128, 128, 64), (64, 96, 128),
          (160, 64, 96))


def _cases():
    return [_as_cublas(dense_case("gemm", m, n, k, d, np, 0)) for m, n, k in SHAPES for d in ("float32", "float16")]


def _report():
    return driver_report(INFO, PROPS, NVML)


def test_driver_report_maps_properties_and_names_sources():
    r = _report()
    assert (r["sms"], r["clock_mhz"], r["l2_bytes"], r["smem_per_sm_bytes"]) == (114, 1500.0, 50 * 2**20, 233472)
    assert r["hbm_peak_gbs"] == pytest.approx(2 * 2.6e9 * 640 / 1e9)  # two transfers per clock, 640 B bus
    assert r["idle_power_w"] == 70.0 and r["sources"]["clock_mhz"] == "driver clockRate"
    # no clockRate from the driver: NVML's max SM clock, said so; no bus width anywhere: no peak
    r2 = driver_report({**INFO, "clock_mhz": None}, {}, {"max_sm_clock_mhz": 1980.0})
    assert r2["clock_mhz"] == 1980.0 and r2["sources"]["clock_mhz"] == "NVML max SM clock"
    assert "hbm_peak_gbs" not in r2 and "l2_bytes" not in r2


def test_measure_runs_every_benchmark_on_the_stand_in():
    rep = {**_report(), "l2_bytes": 2**20, "memory_bytes": 2**26}
    m = gc.measure(np, rep, sizes=(32, 48), repeats=2)
    assert m["copy_bytes"] == {"hbm": 2**23, "l2": 2**18, "l2_inner": 2**10}  # HBM capped at memory / 8
    assert set(m["matmul_tflops"]) | set(m["unsupported"]) == {"float32", "float16", "bfloat16"}
    assert {m["matmul_n"][d] for d in m["matmul_tflops"]} <= {32, 48}
    for r in (*m["matmul_tflops"].values(), *m["copy_gbs"].values(), m["launch_s"], m["host_call_s"]):
        assert 0 < r["min"] <= r["median"] <= r["max"]


@pytest.fixture(scope="module")
def cal_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gcal") / "dev"
    doc = gc.calibrate_gpu(out, 60.0, xp=np, report=_report(), bench=fake_bench, cases=_cases())
    return out, doc


def _base():
    archs = [load_arch(n) for n in gpu_archs()]
    return min(archs, key=lambda a: (abs(a.gpu.sms - 114), a.name))


def test_arch_holds_the_reported_and_measured_numbers(cal_dir):
    out, doc = cal_dir
    a = load_arch(out / ARCH_FILE)
    base = _base()
    hz = 1.5e9
    assert a.name == "gpu_calibrated" and a.clock_ghz == 1.5 and a.gpu.sms == a.compute.units == 114
    assert a.gpu.tensor_core_macs_per_cycle["fp16"] == pytest.approx(700e12 / 2 / hz / 114, rel=1e-5)
    assert a.gpu.cuda_core_macs_per_cycle["fp32"] == pytest.approx(48e12 / 2 / hz / 114, rel=1e-5)
    assert a.compute.macs_per_cycle["fp16"] == a.gpu.tensor_core_macs_per_cycle["fp16"]
    # bf16 was not measured: the closest builtin's rate, and the line says why
    assert a.gpu.tensor_core_macs_per_cycle["bf16"] == base.gpu.tensor_core_macs_per_cycle["bf16"]
    mem = {m.name: m for m in a.memory}
    assert mem["hbm"].bandwidth == pytest.approx(2000 / 1.5, rel=1e-5)
    assert mem["l2"].bandwidth == pytest.approx(6000 / 1.5, rel=1e-5)
    assert (mem["hbm"].capacity_bytes, mem["l2"].capacity_bytes, mem["smem"].capacity_bytes) == \
        (80 * 2**30, 50 * 2**20, 233472 * 114)
    assert mem["smem"].bandwidth == base.gpu.smem_bytes_per_cycle * 114
    assert (a.gpu.launch_s, a.gpu.host_call_s, a.gpu.loop_step_s) == (2.5e-6, 8e-6, base.gpu.loop_step_s)
    assert a.gpu.energy.static_w == 70.0 and a.energy.leakage_pj_per_cycle == pytest.approx(70 / hz * 1e12)
    assert a.gpu.tensor_core_tiles == base.gpu.tensor_core_tiles and a.gpu.split_k == base.gpu.split_k
    text = (out / ARCH_FILE).read_text()
    body = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    unsaid = [line for line in body if ":" in line and line.split(":", 1)[1].strip() and "#" not in line]
    assert unsaid == ["version: 1", "name: gpu_calibrated", f"description: {json.dumps(a.description)}",
                      "  kind: tensor_core", "  - name: hbm", "  - name: l2", "  - name: smem"]  # every number: its source
    assert "bf16: 2048  # from " + base.name + ", not measured (ModuleNotFoundError" in text
    assert doc["base_arch"] == base.name


def test_calibration_is_the_fit_on_every_configuration_and_round_trips(cal_dir):
    out, doc = cal_dir
    arch = load_arch(out / ARCH_FILE)
    table = load_traces(out / TRACES_DIR)
    items = gpu_items(table)
    assert table.num_rows == doc["records"] == len(_cases()) and doc["configs"] == len(items) == len(_cases())
    assert set(table.column("suite").to_pylist()) == {"calibrate"}
    p, e, fitted_on = load_calibration(out / CALIBRATION_FILE, arch, HERE)
    assert p == fit_device(arch, items) and e is None  # NumPy records carry no energy window
    assert fitted_on["configurations"] == len(items)
    assert doc["format"] == gc.FORMAT and doc["device"] == HERE and doc["arch"] == arch.name
    assert gc.is_gpu_calibration_dir(out)


def test_held_out_mape_is_scored_outside_the_fit(cal_dir):
    out, doc = cal_dir
    arch = load_arch(out / ARCH_FILE)
    items = gpu_items(load_traces(out / TRACES_DIR))
    train, held = split(items, 0.5, 0)
    assert sorted(doc["split"]["train_labels"]) == sorted(items[i].label for i in train)
    assert not set(doc["split"]["train_labels"]) & {items[i].label for i in held}
    assert doc["split"]["held_out"] == len(held) >= 1
    p = fit_device(arch, [items[i] for i in train])
    ape = [abs(record_time(arch, p, items[i].steps, items[i].host_calls)[0] / items[i].measured_s - 1) for i in held]
    assert doc["held_out_mape_pct"] == pytest.approx(100 * statistics.fmean(ape), rel=1e-9)


def test_cli_cupy_path_prints_held_out_mape(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gc, "device_xp", lambda: np)
    monkeypatch.setattr(gc, "report_of", lambda xp: _report())
    monkeypatch.setattr(gc, "measure", fake_bench)
    monkeypatch.setattr(gc, "calibration_cases", lambda xp: _cases()[:8])
    out = tmp_path / "c"
    code, stdout, err = run_in_process(capsys, monkeypatch, "calibrate", "--backend", "cupy", "--out", str(out),
                                       "--name", "my_gpu", "--budget-s", "30")
    assert code in (0, None), err
    saved = json.loads((out / CALIBRATION_FILE).read_text())
    assert saved["arch"] == "my_gpu" and saved["configs"] == 8
    assert f"held-out MAPE {saved['held_out_mape_pct']:.1f} %" in stdout
    code, stdout, err = run_in_process(capsys, monkeypatch, "calibrate", "--backend", "cupy", "--out",
                                       str(tmp_path / "j"), "--format", "json")
    assert code in (0, None), err
    summary = json.loads(stdout)
    assert summary["held_out_mape_pct"] == json.loads((tmp_path / "j" / CALIBRATION_FILE).read_text())[
        "held_out_mape_pct"] and summary["params"]["launch_s"] >= 0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Another trace set of the same device: configurations the calibration never saw."""
    from kernels.suites import record_case
    from kernels.trace import Recorder

    run = tmp_path_factory.mktemp("run")
    with Recorder(run) as rec:
        for c in [_as_cublas(dense_case("gemm", m, n, k, "float32", np, 3)) for m, n, k in ((80, 40, 72), (40, 80, 24))]:
            record_case(c, np, rec, repeats=3, warmup=1)
    return run


def test_validate_with_the_directory_reproduces_validate_gpu(cal_dir, run, capsys, monkeypatch):
    out, _ = cal_dir
    code, stdout, err = run_in_process(capsys, monkeypatch, "validate", "--traces", str(run), "--calibration",
                                       str(out), "--format", "json")
    assert code in (0, None), err
    got = json.loads(stdout)
    want = validate_gpu(load_traces(run), load_arch(out / ARCH_FILE), calibration=out / CALIBRATION_FILE)
    assert [k["projected_s"] for k in got["kernels"]] == pytest.approx([k["projected_s"] for k in want["kernels"]])
    assert got["overall"]["mape_pct"] == pytest.approx(want["overall"]["mape_pct"]) and len(got["kernels"]) == 2
    assert got["calibration"]["source"].startswith(f"file {out / CALIBRATION_FILE}")


def test_validate_refuses_another_devices_directory(cal_dir, tmp_path, capsys, monkeypatch):
    import shutil

    out, doc = cal_dir
    other = tmp_path / "other"
    shutil.copytree(out, other)
    (other / CALIBRATION_FILE).write_text(json.dumps({**doc, "device": "NVIDIA H200"}))
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", str(out / TRACES_DIR),
                                 "--calibration", str(other)), "'NVIDIA H200'", repr(HERE))
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", str(out / TRACES_DIR),
                                 "--calibration", str(out), "--calibrate-on", "0.5"), "drop --calibrate-on")


@pytest.mark.parametrize("args, needle", [
    (["--budget-s", "0"], "--budget-s 0"),
    (["--name", "9gpu"], "--name '9gpu'"),
    (["--backend", "rocm"], "--backend 'rocm'"),
    ([], "--backend cupy: no usable CUDA device"),
])
def test_bad_input_exits_2_writing_nothing(tmp_path, capsys, monkeypatch, args, needle):
    import kernels.backend

    monkeypatch.setattr(kernels.backend, "gpu_available", lambda: False)
    out = tmp_path / "c"
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--backend", "cupy", "--out", str(out), *args),
                  needle)
    assert not out.exists()


def test_tf32_is_refused(tmp_path, capsys, monkeypatch):
    import kernels.backend

    monkeypatch.setattr(kernels.backend, "gpu_available", lambda: True)
    monkeypatch.setenv("CUPY_TF32", "1")
    out = tmp_path / "c"
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--backend", "cupy", "--out", str(out)),
                  "CUPY_TF32=1")
    assert not out.exists()


def test_too_small_a_budget_stops_before_the_fit(tmp_path):
    from accelsim.errors import AccelsimError

    ticks = iter(range(1000))  # a clock that moves 1 s per reading: the 3 s budget starts 1 case, under the 4 a fit needs
    with pytest.raises(AccelsimError, match=r"--budget-s 3: left time for 1 kernel configurations .* raise it"):
        gc.calibrate_gpu(tmp_path / "c", 3.0, xp=np, report=_report(), bench=fake_bench, cases=_cases(),
                         clock=lambda: float(next(ticks)))
    assert not (tmp_path / "c" / CALIBRATION_FILE).exists()


def test_replay_check_carries_the_directory(cal_dir, tmp_path):
    out, doc = cal_dir
    rc = load_script("bench/gpu/replay_check.py")
    dest = tmp_path / "validate.json"
    assert rc.main(["--traces", str(out / TRACES_DIR), "--json", str(dest), "--calibration", str(out)]) == 0
    got = json.loads(dest.read_text())["calibrate"]
    assert got["arch_yaml"] == (out / ARCH_FILE).read_text()
    assert got["calibration"] == json.loads((out / CALIBRATION_FILE).read_text())
    assert got["held_out_mape_pct"] == doc["held_out_mape_pct"]
    assert "applied" not in got and any("NumPy" in n for n in got["notes"])  # the stand-in's records are CPU ones


def test_replay_check_applies_a_gpu_calibration_to_the_other_records(cal_dir, run):
    import pyarrow as pa

    from kernels.trace import read_traces

    out, _ = cal_dir
    rc = load_script("bench/gpu/replay_check.py")
    both = pa.concat_tables([read_traces(out / TRACES_DIR), read_traces(run)])
    got = rc.carry(out, both)  # what check() passes on a GPU, where kernel_records keeps these (CuPy) records
    want = validate_gpu(read_traces(run), load_arch(out / ARCH_FILE), calibration=out / CALIBRATION_FILE)
    assert got["applied"] == json.loads(json.dumps(rc.summary(want))) and got["applied"]["overall"]["n"] == 2
