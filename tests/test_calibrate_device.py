"""`accelsim calibrate` and the calibration directory: the arch holds the measured numbers, the files parse,
the saved parameters reproduce the held-out MAPE, `validate`/`run --calibration DIR` use it, another device
or thread count is refused, and bad input exits 2 writing nothing. Microbenchmarks are replaced by fixed
numbers (``FAKE``) and the trace set by tiny GEMMs, so the whole file runs in seconds."""

from __future__ import annotations

import json
import shutil
import statistics
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.errors import AccelsimError
from accelsim.model.arch import load_arch
from accelsim.model.workload import Gemm
from accelsim.replay import box_state as bs
from accelsim.replay import cpu_report as cpu
from accelsim.replay import calibration_dir as cdir
from accelsim.replay import calibration_set as cset
from accelsim.replay import device_calibration as dc
from accelsim.replay import probe_power as pp
from accelsim.replay.calibrate import Params, fit
from accelsim.replay.project import items_from_table, project, resident_level
from accelsim.replay.traces import load as load_traces
from kernels.backend import device_info
from kernels.trace.microbench import PROBE_WARM_S, Rate, blas_core, blas_threads, samples
from kernels.suites.gemm import dense_case
from conftest import assert_exit_2, run_in_process

REPORT = {"device_name": "Test CPU 1234", "cpus": 4, "clock_mhz": 2000.0, "memory_bytes": 16 * 2**30,
          "blas_threads": 2, "caches": [{"level": 3, "size": 8 * 2**20, "total": 8 * 2**20, "shared_cpus": "0-3"},
                                        {"level": 2, "size": 2**20, "total": 4 * 2**20, "shared_cpus": "0"}]}


def _rate(median, lo, hi):
    return {"median": median, "min": lo, "max": hi, "repeats": 5}


FAKE = {"gemm_n": {"float32": 512, "float64": 1024}, "gemm_gflops": {"float32": _rate(100.0, 90.0, 110.0), "float64": _rate(40.0, 35.0, 41.0)},
        "copy_bytes": {"l3": 2**21, "l2": 2**18, "dram": 2**26},
        "copy_gbs": {"l3": _rate(60.0, 50.0, 61.0), "l2": _rate(120.0, 100.0, 125.0), "dram": _rate(20.0, 18.0, 21.0)},
        "indexed_gbs": {"l3": _rate(9.0, 8.0, 9.5), "l2": _rate(10.0, 9.0, 11.0)},
        "grouped_gbs": {"dram": _rate(4.0, 3.8, 4.2), "l3": _rate(6.0, 5.5, 6.4), "l2": _rate(7.0, 6.6, 7.2)},
        "call_overhead_s": _rate(1e-6, 9e-7, 2e-6), "load_average_1min": 1.5}


def test_arch_holds_the_measured_numbers(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text(dc.arch_yaml(REPORT, FAKE))
    a = load_arch(path)
    assert a.clock_ghz == pytest.approx(2.0) and a.compute.units == 2
    # The MAC rate is the median run (the fastest is an extreme of the box's moments) less the pack pass the replay
    # prices beside every GEMM, its own too: one read and one write of A, B and C at the L3's copy rate (61 GB/s).
    # fp32: 512³ at 100 GFLOP/s takes 2.68 ms, its pass 0.103 ms: 104.0 GFLOP/s = 52.0 GMAC/s over 2 GHz and 2 units.
    for dtype, short, n, gflops, item in (("float32", "fp32", 512, 100.0, 4), ("float64", "fp64", 1024, 40.0, 8)):
        t, pack = 2 * n**3 / (gflops * 1e9), 2 * 3 * n * n * item / 61e9
        assert a.compute.macs_per_cycle[short] == pytest.approx(gflops * t / (t - pack) / 2 / 2 / 2, rel=1e-5)
    levels = {m.name: m for m in a.memory}
    assert [m.name for m in a.memory] == ["dram", "l3", "l2"]
    assert levels["dram"].capacity_bytes == 16 * 2**30 and levels["l3"].capacity_bytes == 8 * 2**20
    # Four 1 MiB L2 instances over 4 CPUs, of which BLAS's 2 threads use two.
    assert levels["l2"].capacity_bytes == 2 * 2**20
    # The fastest copy's GB/s over GHz = bytes per cycle.
    assert [levels[n].bandwidth for n in ("dram", "l3", "l2")] == pytest.approx([10.5, 30.5, 62.5])
    # Scatters and rank steps likewise, where measured (here no DRAM scatter: DRAM falls back to its copy bandwidth).
    assert [levels[n].indexed_bandwidth for n in ("dram", "l3", "l2")] == [None, pytest.approx(4.75), pytest.approx(5.5)]
    assert [levels[n].grouped_bandwidth for n in ("dram", "l3", "l2")] == pytest.approx([2.1, 3.2, 3.6])
    assert "Test CPU 1234" in a.description
    text = path.read_text()
    for key in ("clock_ghz:", "units:", "fp32:", "fp64:", "capacity_bytes:", "bandwidth:", "indexed_bandwidth:",
                "grouped_bandwidth:"):
        for line in (l for l in text.splitlines() if l.strip().startswith(key)):
            assert "#" in line, line  # every measured or reported number says where it came from
    assert "measured 100 GFLOP/s (median of 5, fastest 110, slowest 90) of a 512^2 matmul" in text
    assert "less its pack pass (0.103 of 2.68 ms, as the replay prices it beside every GEMM) = 104 GFLOP/s" in text
    assert "measured 20 GB/s copy" not in text and "measured 21 GB/s copy (read + write; fastest of 5, median 20" in text


def test_a_pack_pass_priced_at_half_the_peaks_time_or_more_is_not_taken_off(tmp_path):
    """Copies measured far slower than the GEMM ran (an L3 of 3 GB/s): the pass as priced would take 2.1 of the 512³
    fp32 peak's 2.68 ms, so the arch keeps the measured rate and says why; fp64's pass, 16.8 of 53.7 ms, comes off."""
    slow = {**FAKE, "copy_gbs": {**FAKE["copy_gbs"], "l3": _rate(2.8, 2.5, 3.0)}}
    path = tmp_path / "arch.yaml"
    path.write_text(dc.arch_yaml(REPORT, slow))
    a, text = load_arch(path), path.read_text()
    assert a.compute.macs_per_cycle["fp32"] == pytest.approx(12.5)
    t, pack = 2 * 1024**3 / 40e9, 2 * 3 * 1024**2 * 8 / 3e9
    assert pack < t / 2 and a.compute.macs_per_cycle["fp64"] == pytest.approx(40 * t / (t - pack) / 8, rel=1e-5)
    assert "its pack pass as priced (2.1 of 2.68 ms) not taken off" in text


def test_arch_takes_the_given_name(tmp_path):
    path = tmp_path / "cpu_numpy.yaml"
    path.write_text(dc.arch_yaml(REPORT, FAKE, "cpu_numpy"))
    a = load_arch(path)
    assert a.name == "cpu_numpy" and "CPU Test CPU 1234" in a.description


def test_caches_from_sysfs(tmp_path):
    for name, level, kind, size, shared in (("index0", 1, "Data", "48K", "0"), ("index1", 1, "Instruction", "32K", "0"),
                                            ("index2", 2, "Unified", "1024K", "0"),
                                            ("index3", 3, "Unified", "32768K", "0-1")):
        d = tmp_path / name
        d.mkdir()
        for f, v in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
            (d / f).write_text(f"{v}\n")
    caches = cpu.read_caches(tmp_path, cpus=2)
    assert [(c.level, c.size, c.total) for c in caches] == [(3, 32 * 2**20, 32 * 2**20), (2, 2**20, 2 * 2**20)]
    bufs = dc.copy_buffers({"caches": [c.__dict__ for c in caches], "memory_bytes": 2**34})
    assert bufs == {"l3": 8 * 2**20, "l2": 2**18, "dram": 256 * 2**20}
    assert cpu.read_l1d(tmp_path) == 48 * 1024  # the instruction cache is not counted
    # A probe that found only 4 MiB of the L3: its buffer is a quarter of that, DRAM's 8x its total.
    probed = [{**caches[0].__dict__, "effective_size": 4 * 2**20, "effective_total": 4 * 2**20}, caches[1].__dict__]
    assert dc.copy_buffers({"caches": probed, "memory_bytes": 2**34}) == {"l3": 2**20, "l2": 2**18,
                                                                            "dram": 64 * 2**20}


@pytest.mark.parametrize("l1d, side", [(48 * 1024, 32), (32 * 1024, 32), (128 * 1024, 64), (4 * 1024, 8),
                                       (1024, None), (None, None)])
def test_l1_tile_fills_half_the_l1d(l1d, side):
    """Three float32 side² blocks (A and B slices, C) fit in half the L1d; the next power of two would not."""
    assert cpu.l1_tile(l1d) == side
    if side:
        assert 3 * side**2 * 4 <= l1d // 2 < 3 * (2 * side) ** 2 * 4


def test_arch_offers_the_l1_tile_to_the_mapper(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text(dc.arch_yaml({**REPORT, "l1d_bytes": 48 * 1024}, FAKE))
    a = load_arch(path)
    assert (a.compute.tile_m, a.compute.tile_n, a.compute.tile_k) == (4, 16, 8)
    assert [tuple(t) for t in a.compute.tile_options] == [(32, 32, 32)]
    path.write_text(dc.arch_yaml(REPORT, FAKE))  # the OS gave no L1d: the register tile alone
    assert load_arch(path).compute.tile_options == []


def test_a_cpu_arch_prices_any_depth_at_its_mac_rate(tmp_path):
    """BLAS runs any K: the gather path's 32-row GEMMs of depth 48 (1:8 at 384 wide) and the 96 x 96 x 48 products
    take m·n·k MACs at the arch's rate, not K padded to the 32-cube (64, a third more), as 32³ and 64³ do."""
    from accelsim.model.mapping import map_gemm
    from accelsim.replay.project import project

    path = tmp_path / "arch.yaml"
    path.write_text(dc.arch_yaml({**REPORT, "blas_threads": 1, "l1d_bytes": 48 * 1024}, FAKE))
    assert load_arch(path).compute.k_multiple == 1
    a = load_arch(path, {"memory.l2.bandwidth": 16.0})  # an L2 that cannot feed the register tile: the cube's
    assert map_gemm(a, "g", 32, 512, 48, "fp32", 1).tile["k"] == 32
    rate = a.clock_ghz * 1e9 * a.compute.macs_per_cycle["fp32"]
    for m, n, k in ((32, 512, 48), (96, 96, 48), (32, 128, 96), (32, 32, 32), (64, 64, 64), (512, 384, 384)):
        assert project(a, Gemm("g", m, n, k, "fp32")).compute_s == pytest.approx(m * n * k / rate, rel=1e-9)


def test_register_tile_runs_along_numpy_n(tmp_path):
    """NumPy's row-major product is OpenBLAS's transposed column-major one, so the register tile's 16-wide side
    (BLAS M) pads NumPy's n and its 4-wide side NumPy's m: MiniLM's 768 attention products at 8 tokens,
    8x8x32 (q k^T) and 8x32x8 (p v), cost 16x8x32 and 32x8x8 padded MACs each, 2 : 1 (measured on the Xeon VM:
    131 and 67 ns a product; with m padded to 16 instead both would cost the same)."""
    path = tmp_path / "arch.yaml"
    path.write_text(dc.arch_yaml({**REPORT, "l1d_bytes": 48 * 1024}, FAKE))
    a = load_arch(path)

    def padded(m, n, k):
        return -(-m // 4) * 4 * -(-n // 16) * 16 * k

    qk, pv = (project(a, Gemm("g", m, n, k, "fp32", count=768)).compute_s for m, n, k in ((8, 8, 32), (8, 32, 8)))
    assert qk / pv == pytest.approx(padded(8, 8, 32) / padded(8, 32, 8)) == pytest.approx(2.0)


def test_samples_and_rate_with_a_fake_clock():
    ticks = iter([0.0, 1.0, 1.0, 3.0, 3.0, 6.0, 6.0, 10.0, 10.0, 15.0])  # runs of 1, 2, 3, 4, 5 s
    calls = []
    times = samples(lambda: calls.append(1), 5, clock=lambda: next(ticks))
    assert times == [1.0, 2.0, 3.0, 4.0, 5.0] and len(calls) == 6  # one untimed call first
    r = Rate.of(60.0, times)
    assert r == {"median": 20.0, "min": 12.0, "max": 60.0, "repeats": 5}


def _cases():
    return [dense_case(cset.SUITE, m, n, k, "float32", np, 0)
            for m, n, k in ((16, 16, 16), (32, 48, 64), (64, 64, 64), (96, 64, 32), (128, 128, 64), (48, 96, 128))]


def test_blas_core_is_openblas_own(monkeypatch):
    """The core OpenBLAS dispatches for, from threadpoolctl's report; another BLAS (MKL) has none, nor does a
    process without a BLAS."""
    import threadpoolctl

    from kernels.trace import microbench as mb

    mkl = {"user_api": "blas", "internal_api": "mkl", "num_threads": 2}
    omp = {"user_api": "openmp", "internal_api": "openmp", "num_threads": 2}
    obl = {"user_api": "blas", "internal_api": "openblas", "num_threads": 2, "architecture": "SkylakeX"}
    for libs, want in (([omp, mkl, obl], "SkylakeX"), ([mkl, omp], None), ([], None)):
        monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda libs=libs: libs)
        assert mb.blas_core() == want


@pytest.fixture(scope="module")
def cal_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "dev"
    doc = dc.calibrate_device(out, 30.0, bench=lambda report: FAKE, cases=_cases())
    return out, doc


def test_directory_files_parse_and_reproduce_the_held_out_mape(cal_dir):
    out, doc = cal_dir
    saved = json.loads((out / cdir.CALIBRATION_FILE).read_text())
    assert saved == json.loads(json.dumps(doc))
    assert saved["device_name"] == device_info(np)["device_name"] and saved["blas_threads"] == (blas_threads() or 1)
    assert saved["blas_core"] == blas_core()
    arch = load_arch(out / cdir.ARCH_FILE)
    table = load_traces(out / cdir.TRACES_DIR)
    assert table.num_rows == 6 * cset.PASSES  # the budget left room for every pass
    items = items_from_table(table, arch, bs.pass_center)
    assert saved["configs"] == len(items) == 6 and saved["pass_merge"] == "mean within 1.5x of the median"
    assert saved["split"]["train"] + saved["split"]["held_out"] == 6 and saved["split"]["held_out"] >= 1
    rows = {it.label: (project(arch, it.workload, it.working_set), it.launches, it.measured_s, it.threaded_calls)
            for it in items}
    # The saved scales are the fit on all six; the held-out MAPE is the same fit on the train labels, scored on the rest.
    g = saved["groups"]["gemm float32"]
    every = fit(list(rows.values()), "all")
    assert (g["launch_overhead_s"], g["threaded_call_s"], g["compute_scale"], g["memory_scale"]) == pytest.approx(
        (every.launch_overhead_s, every.threaded_call_s, every.compute_scale, every.memory_scale))
    half = fit([rows[lbl] for lbl in saved["split"]["train_labels"]], "train")
    held = [r for lbl, r in rows.items() if lbl not in saved["split"]["train_labels"]]
    ape = [abs(half.predict(pr, n, c) - t) / t for pr, n, t, c in held]
    assert len(held) == saved["split"]["held_out"]
    assert saved["held_out_mape_pct"] == pytest.approx(100 * statistics.fmean(ape))
    # Each configuration's merged time is the mean over its passes near their median (the median elsewhere), and
    # the fit saved is not the one on medians.
    one = [r["time_median_s"] for r in table.to_pylist() if (r["m"], r["n"], r["k"]) == (64, 64, 64)]
    mid = statistics.median(one)
    near = [t for t in one if mid / 1.5 <= t <= 1.5 * mid]
    assert len(set(near)) > 2 and statistics.fmean(near) != mid
    assert next(it for it in items if it.row["m"] == 64 and it.row["n"] == 64).measured_s == statistics.fmean(near)
    by_median = next(it for it in items_from_table(table, arch) if it.row["m"] == 64 and it.row["n"] == 64)
    assert by_median.measured_s == mid and by_median.row["run_times_s"] == one


def test_pass_center_is_the_mean_of_the_passes_near_the_median():
    """A pass the scheduler interrupted (here 22x) is left out; a second speed within 1.5x is averaged in."""
    fast, slow = [1.00, 1.02, 0.98, 1.01], [1.17, 1.19, 1.18]
    assert bs.pass_center(fast + slow + [22.0]) == pytest.approx(statistics.fmean(fast + slow))
    assert bs.pass_center(fast + [0.5]) == pytest.approx(statistics.fmean(fast))  # 2x faster: out too
    assert bs.pass_center([3.0]) == 3.0
    assert bs.pass_center([1.0, 10.0]) == 5.5  # two passes far apart: none near their median, which is taken
    # the bound is inclusive either way: 1.5x and 1/1.5x of the median stay in
    assert bs.pass_center([2.0, 2.0, 2.0, 3.0, 2.0 / 1.5]) == pytest.approx(statistics.fmean([2, 2, 2, 3, 2 / 1.5]))


def test_pass_spread_names_the_configurations_whose_passes_spread_most():
    from types import SimpleNamespace as NS

    items = [NS(label="a", row={"run_times_s": [1.0, 1.1, 1.05]}), NS(label="b", row={"run_times_s": [2.0, 5.0]}),
             NS(label="c", row={"run_times_s": [3.0]}), NS(label="d", row={"run_times_s": [4.0, 4.2]})]
    got = bs.pass_spread(items)
    assert got["configs"] == 3  # c has one pass
    assert got["median_pct"] == pytest.approx(10.0)  # spreads 10 %, 150 %, 5 %
    assert [(w["label"], w["passes"]) for w in got["worst"]] == [("b", 2), ("a", 3), ("d", 2)]
    assert got["worst"][0]["spread_pct"] == pytest.approx(150.0)
    assert bs.pass_spread([items[2]]) == {"configs": 0, "median_pct": None, "worst": []}


def test_calibrate_cli_prints_held_out_mape(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dc, "measure", lambda report: FAKE)
    monkeypatch.setattr(cset, "calibration_cases", lambda xp, **_: _cases())
    code, out, err = run_in_process(capsys, monkeypatch, "calibrate", "--out", str(tmp_path / "c"), "--format", "json")
    assert code in (0, None), err
    summary = json.loads(out)
    saved = json.loads((tmp_path / "c" / cdir.CALIBRATION_FILE).read_text())
    assert summary["held_out_mape_pct"] == saved["held_out_mape_pct"] and summary["configs"] == 6
    assert summary["pass_spread"] == saved["pass_spread"] and saved["pass_spread"]["configs"] == 6


def test_calibrate_cli_says_which_caches_the_copies_found_smaller(tmp_path, capsys, monkeypatch):
    """A level the probe shrank (480 MiB reported, 30 MiB held) gets a line; one it kept does not."""
    l3, l2 = REPORT["caches"]
    caches = [{**l3, "size": 480 * 2**20, "total": 480 * 2**20, "effective_size": 30 * 2**20,
               "effective_total": 30 * 2**20, "probe": [[15 * 2**20, 27.4]]},
              {**l2, "effective_size": l2["size"], "effective_total": l2["total"], "probe": [[2**18, 80.0]]}]
    monkeypatch.setattr(dc, "measure", lambda report: {**FAKE, "caches": caches})
    monkeypatch.setattr(cset, "calibration_cases", lambda xp, **_: _cases())
    code, out, err = run_in_process(capsys, monkeypatch, "calibrate", "--out", str(tmp_path / "c"))
    assert code in (0, None), err
    text = " ".join(out.split())
    assert "l3: copies held 30 MiB of the 480 MiB the OS reports" in text and "l2: copies held" not in text
    saved = json.loads((tmp_path / "c" / cdir.CALIBRATION_FILE).read_text())
    assert saved["measured"]["caches"][0]["effective_size"] == 30 * 2**20
    arch = load_arch(tmp_path / "c" / cdir.ARCH_FILE)
    assert {m.name: m.capacity_bytes for m in arch.memory}["l3"] == 30 * 2**20


@pytest.mark.parametrize("args, needle", [
    (["--budget-s", "0"], "--budget-s 0"),
    (["--budget-s", "-5"], "--budget-s -5"),
    (["--budget-s", "nan"], "--budget-s nan"),
    (["--name", "cpu numpy"], "--name 'cpu numpy'"),
    (["--name", "9cpu"], "--name '9cpu'"),
])
def test_bad_options_exit_2_writing_nothing(tmp_path, capsys, monkeypatch, args, needle):
    out = tmp_path / "c"
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--out", str(out), *args), needle)
    assert not out.exists()


def test_bad_out_exit_2(tmp_path, capsys, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--out", str(f)), "--out", "exists and is a file")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("x")
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--out", str(full)), "--out", "not empty")
    assert sorted(p.name for p in full.iterdir()) == ["keep"]
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--out", str(f / "c")), "--out",
                  f"{str(f)!r} is not a directory")
    # An --out no file can be created in (as root too): test_robustness.py, test_unwritable_destination.


def saved_params(doc: dict, it) -> Params:
    """The saved calibration's parameters for an item, read from the document as written: group, family, global."""
    g = doc["groups"].get(it.group) or doc["families"].get(it.family) or doc["global"]
    return Params(g["launch_overhead_s"], g["compute_scale"], g["memory_scale"])


@pytest.fixture(scope="module")
def network_run(tmp_path_factory, cal_dir):
    return record_network_run(tmp_path_factory.mktemp("run"))


def record_network_run(d):
    """A two-layer network's run (dense and a 2:4 plan, 3 passes) recorded into ``d / "traces"``; ``d``."""
    from accelsim.codesign.plan import FORMAT, PLAN_VERSION
    from accelsim.codesign.plan import parse_plan
    from accelsim.codesign.runplan import prepare_run, run_passes
    from kernels.trace import Recorder

    net = d / "net.yaml"
    net.write_text("workload:\n  name: net\n  layers:\n"
                   "    - {type: gemm, name: fc1, m: 48, n: 40, k: 64}\n"
                   "    - {type: gemm, name: fc2, m: 48, n: 24, k: 40}\n")
    plan = parse_plan({"format": FORMAT, "version": PLAN_VERSION, "network": {"workload": str(net), "params": {}},
                       "arch": "tasd_ttc", "layers": [{"name": "fc1", "kernel": "nm", "pattern": "2:4"}]})
    prep = prepare_run(plan, backend="numpy")
    rec = Recorder(d / "traces")
    run_passes(prep.steps, xp=prep.xp, repeats=3, warmup=1, meta=prep.meta, recorder=rec)
    rec.flush()
    (d / "plan.json").write_text(json.dumps({"format": FORMAT, "version": PLAN_VERSION,
                                             "network": {"workload": str(net), "params": {}}, "arch": "tasd_ttc",
                                             "layers": [{"name": "fc1", "kernel": "nm", "pattern": "2:4"}]}))
    return d


def test_a_run_records_its_blas_core(network_run):
    """`accelsim run` on NumPy records the BLAS core beside the thread count in every record (the replay's
    small-matrix rule needs it), as threadpoolctl reports it for the loaded OpenBLAS."""
    from threadpoolctl import threadpool_info

    want = next((p.get("architecture") for p in threadpool_info() if p.get("internal_api") == "openblas"), None)
    params = [json.loads(p) for p in load_traces(network_run / "traces").column("params").to_pylist()]
    assert params and all(p["blas_core"] == want and "blas_threads" in p for p in params)


def test_validate_with_calibration_dir(cal_dir, network_run, capsys, monkeypatch):
    out, doc = cal_dir
    code, stdout, err = run_in_process(capsys, monkeypatch, "validate", "--traces", str(network_run / "traces"),
                                       "--calibration", str(out), "--format", "json")
    assert code in (0, None), err
    rep = json.loads(stdout)
    arch = load_arch(out / cdir.ARCH_FILE)
    assert rep["arch"] == arch.name == "cpu_calibrated"
    import pyarrow.compute as pc

    table = load_traces(network_run / "traces")
    layers = items_from_table(table.filter(pc.not_equal(table.column("kernel"), "network")), arch)
    assert len(layers) == 4  # fc1, fc2 in each of dense and the plan

    want = {(json.loads(it.row["params"])["plan"], json.loads(it.row["params"])["layer"]):
            saved_params(doc, it).predict(project(arch, it.workload, it.working_set), it.launches) for it in layers}
    got = {(v["plan"], l["layer"]): l["projected_s"] for v in rep["variants"] for l in v["layers"]}
    assert got == pytest.approx(want)
    assert rep["calibration"]["global"]["compute_efficiency"] == pytest.approx(doc["global"]["compute_efficiency"])


def test_nearest_state_picks_the_calibration_whose_probe_is_nearest_the_runs():
    table = _probe_table([[150.0, 160.0], [170.0, 165.0, 155.0]])  # median 160
    docs = [{"gemm_probe_gflops": 250.0}, {"gemm_probe_gflops": 171.0}, {}, {"gemm_probe_gflops": 148.0}]
    assert bs.nearest_state(docs, table) == 1
    assert bs.nearest_state(docs[2:], table) == 1  # a calibration without a probe is never picked over one with
    assert bs.nearest_state(docs, _probe_table([])) == 0 and bs.nearest_state([{}, {}], table) == 0


def test_of_several_calibration_dirs_validate_takes_the_runs_state(cal_dir, network_run, tmp_path, capsys,
                                                                   monkeypatch):
    """Three copies of one calibration, one claiming a probe near the run's (200 GFLOP/s), one far below and one far
    above it, whose launch overheads differ: the projection is the near one's, whichever order they come in."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    out, doc = cal_dir
    table = load_traces(network_run / "traces")
    rows = [r if r["kernel"] != "network" else {**r, "params": json.dumps(
        {**json.loads(r["params"]), "gemm_probe_gflops": [195.0, 205.0]})} for r in table.to_pylist()]
    (tmp_path / "run").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), tmp_path / "run" / "part-0.parquet")
    dirs = {}
    for name, probe, launch in (("near", 190.0, 1e-3), ("low", 120.0, 0.0), ("high", 320.0, 0.0)):
        d = dirs[name] = tmp_path / name
        shutil.copytree(out, d)
        g = {**doc["global"], "launch_overhead_s": launch}
        (d / cdir.CALIBRATION_FILE).write_text(json.dumps({**doc, "gemm_probe_gflops": probe, "global": g,
                                                         "gemm_probe_warm_s": PROBE_WARM_S,  # as the run's
                                                         "families": {}, "groups": {}}))
    reports = []
    for order in (("low", "near", "high"), ("high", "low", "near"), ("near",)):
        args = [a for n in order for a in ("--calibration", str(dirs[n]))]
        code, stdout, err = run_in_process(capsys, monkeypatch, "validate", "--traces", str(tmp_path / "run"),
                                           *args, "--format", "json")
        assert code in (0, None), err
        reports.append(json.loads(stdout))
    layers = [[l["projected_s"] for v in r["variants"] for l in v["layers"]] for r in reports]
    assert layers[0] == layers[1] == layers[2] and min(layers[0]) > 1e-3  # every layer pays the near one's launch
    assert any(f"{dirs['near']}'s probe rate is the nearest" in n for n in reports[0]["notes"])
    # The run's probes (195, 205 per run record: median 200) against the near one's 190, as numbers.
    assert reports[0]["box_state"] == {"run_probe_gflops": 200.0, "run_passes": 2, "calibration_probe_gflops": 190.0,
                                       "ratio": pytest.approx(200 / 190), "differs": False}


def test_several_calibrations_of_another_device_or_a_file_are_refused(cal_dir, network_run, tmp_path, capsys,
                                                                      monkeypatch):
    out, _ = cal_dir
    other = _copy_with(cal_dir, tmp_path, device_name="Other CPU 9000")
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", str(network_run / "traces"),
                                 "--calibration", str(out), "--calibration", str(other)), str(other), "Other CPU 9000")
    f = tmp_path / "cal.json"
    f.write_text("{}")
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", str(network_run / "traces"),
                                 "--calibration", str(f), "--calibration", str(out)), "--calibration", "given once")


def _inputs(row: dict) -> int:
    """Bytes of a layer's input operands, from its recorded shapes: ``a`` and ``b`` of a GEMM (per matrix of a
    batch); an N:M weight stored compressed, so there ``bytes_min`` less the output ``c``."""
    shapes = json.loads(row["shapes"])
    if row["kernel"] == "gemm":
        return 4 * (np.prod(shapes["a"]) + np.prod(shapes["b"]))
    return row["bytes_min"] - 4 * np.prod(shapes["c"])


def test_a_pass_outgrowing_the_caches_fetches_each_layer_from_dram(cal_dir, network_run):
    """With the L3 holding any one layer but not the pass, each NumPy layer first reads its inputs (the calibration
    has no cold GEMMs to scale it), on top of its calibrated warm time: the share of the pass the L3 holds at its
    copy rate, the rest at DRAM's; with the real caches, nothing. Its output goes to memory just freed, which is
    not fetched."""
    import pyarrow.compute as pc

    from accelsim.replay.network import compare_run

    out, doc = cal_dir
    arch, cal, _ = cdir.load_calibration_dir(out)
    table = load_traces(network_run / "traces")
    layers = items_from_table(table.filter(pc.not_equal(table.column("kernel"), "network")), arch)
    biggest = max(it.row["bytes_min"] for it in layers)
    passes = {}
    for it in layers:
        plan = json.loads(it.row["params"])["plan"]
        passes[plan] = passes.get(plan, 0) + it.row["bytes_min"]
    assert min(passes.values()) > biggest + 1
    doc_arch = arch.model_dump(mode="python")
    doc_arch["memory"][1]["capacity_bytes"] = biggest + 1  # l3: one layer fits, the pass does not
    small = load_arch(doc_arch)
    dram, l3 = small.memory[0], small.memory[1]

    for a, cold in ((arch, False), (small, True)):
        rep = compare_run(table, a, cal)
        got = {(v["plan"], l["layer"]): l["projected_s"] for v in rep["variants"] for l in v["layers"]}
        for it in layers:
            prm = json.loads(it.row["params"])
            warm = saved_params(doc, it).predict(project(a, it.workload, it.working_set), it.launches)
            held = (biggest + 1) / passes[prm["plan"]]
            per_byte = held / l3.bandwidth + (1 - held) / dram.bandwidth
            fetch = _inputs(it.row) * per_byte / (a.clock_ghz * 1e9) if cold else 0.0
            assert got[(prm["plan"], prm["layer"])] == pytest.approx(warm + fetch, rel=1e-9)


def _copy_with(cal_dir, tmp_path, **changes):
    import shutil

    out, doc = cal_dir
    dst = tmp_path / "other"
    shutil.copytree(out, dst)
    (dst / cdir.CALIBRATION_FILE).write_text(json.dumps({**doc, **changes}))
    return dst


def test_calibration_of_another_device_is_refused(cal_dir, network_run, tmp_path, capsys, monkeypatch):
    here = device_info(np)["device_name"]
    other = _copy_with(cal_dir, tmp_path, device_name="Other CPU 9000")
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", str(network_run / "traces"),
                                 "--calibration", str(other)), "'Other CPU 9000'", repr(here))


def test_calibration_of_another_thread_count_is_refused(cal_dir, network_run, tmp_path, capsys, monkeypatch):
    other = _copy_with(cal_dir, tmp_path, blas_threads=97)
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", str(network_run / "traces"),
                                 "--calibration", str(other)), "97 BLAS threads", f"{blas_threads()} BLAS threads")
    out = tmp_path / "out"
    assert_exit_2(run_in_process(capsys, monkeypatch, "run", "--plan", str(network_run / "plan.json"), "--out",
                                 str(out), "--backend", "numpy", "--calibration", str(other)), "97 BLAS threads")
    assert not out.exists()


def test_run_with_calibration_projects_the_run(cal_dir, network_run, tmp_path, capsys, monkeypatch):
    out, _ = cal_dir
    code, stdout, err = run_in_process(capsys, monkeypatch, "run", "--plan", str(network_run / "plan.json"), "--out",
                                       str(tmp_path / "r"), "--backend", "numpy", "--repeats", "1",
                                       "--calibration", str(out), "--format", "json")
    assert code in (0, None), err
    summary = json.loads(stdout)
    runs = {v["plan"]: v["run"] for v in summary["validation"]["variants"]}
    assert runs.keys() == summary["run_s"].keys()
    assert {k: r["measured_s"] for k, r in runs.items()} == summary["run_s"]


def test_run_with_several_calibrations_projects_with_the_nearest_state(cal_dir, network_run, tmp_path, capsys,
                                                                        monkeypatch):
    """Any probe rate this box measures lies nearer 1e-3 GFLOP/s than 1e6: the run takes the first copy, whose launch
    overhead (1 ms) shows in every projected layer, whichever order they are given in."""
    import shutil

    out, doc = cal_dir
    dirs = []
    for probe, launch in ((1e-3, 1e-3), (1e6, 0.0)):
        d = tmp_path / f"cal-{probe:g}"
        shutil.copytree(out, d)
        g = {**doc["global"], "launch_overhead_s": launch}
        (d / cdir.CALIBRATION_FILE).write_text(json.dumps({**doc, "gemm_probe_gflops": probe, "global": g,
                                                         "gemm_probe_warm_s": PROBE_WARM_S,  # as the run's
                                                         "families": {}, "groups": {}}))
        dirs.append(d)
    for i, order in enumerate((dirs, dirs[::-1])):
        code, stdout, err = run_in_process(capsys, monkeypatch, "run", "--plan", str(network_run / "plan.json"),
                                           "--out", str(tmp_path / f"r{i}"), "--backend", "numpy", "--repeats", "1",
                                           *[a for d in order for a in ("--calibration", str(d))], "--format", "json")
        assert code in (0, None), err
        val = json.loads(stdout)["validation"]
        assert min(l["projected_s"] for v in val["variants"] for l in v["layers"]) > 1e-3
        assert any(f"{dirs[0]}'s probe rate is the nearest" in n for n in val["notes"])
        state = val["box_state"]
        assert state["calibration_probe_gflops"] == 1e-3 and state["differs"] and state["run_passes"] == 1
        assert state["ratio"] == pytest.approx(state["run_probe_gflops"] / 1e-3)


def test_dir_and_fit_options_do_not_mix(cal_dir, network_run, capsys, monkeypatch):
    out, _ = cal_dir
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", str(network_run / "traces"),
                                 "--calibration", str(out), "--arch", "cpu_numpy"), "drop --arch")
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", str(out / cdir.TRACES_DIR),
                                 "--calibration", str(out)), "kernel traces")
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", str(network_run / "traces")),
                  "--arch: missing")


def test_gemm_peak_is_the_size_with_the_fastest_median_over_rounds(monkeypatch):
    import kernels.trace.microbench as mb

    # seconds per call by (dtype, n) and round: 2n^3 FLOPs, so 256^3 in 1 ms is 33.55 GFLOP/s.
    secs = {("float32", 256): [1e-3, 5e-4], ("float32", 512): [5e-3, 5e-3], ("float64", 256): [4e-3, 4e-3],
            ("float64", 512): [8e-3, 2e-3]}
    calls = []

    def fake(n, d, r):
        calls.append((d, n, r))
        return [secs[d, n][sum(1 for c in calls if c[:2] == (d, n)) - 1]] * r

    monkeypatch.setattr(mb, "gemm_times", fake)
    probe = iter([[2e-3, 1e-3, 1e-3], [5e-4, 5e-4, 2e-3]])  # the box-state probe's calls, per round
    monkeypatch.setattr(mb, "probe_times", lambda: next(probe))
    s = bs.PeakSampler({}, 3, sizes=(256, 512))
    s.round()
    s.round()
    got = s.summary()
    # float32 256: 3 calls at 33.55 and 3 at 67.11 GFLOP/s, median 50.33; 512: 53.69 throughout. 512 has the
    # faster median though 256 has the fastest run. float64 256: 8.39 throughout; 512: 33.55 and 134.2, median 83.89.
    assert got["gemm_n"] == {"float32": 512, "float64": 512}
    assert got["gemm_gflops"]["float32"]["median"] == pytest.approx(53.69, abs=0.01)
    assert got["gemm_gflops"]["float32"]["max"] == pytest.approx(53.69, abs=0.01)
    assert got["gemm_gflops"]["float64"]["max"] == pytest.approx(134.22, abs=0.01)
    assert got["gemm_gflops"]["float32"]["repeats"] == 6
    assert got["gemm_gflops"]["float64"]["median"] == pytest.approx(83.89, abs=0.01)
    assert got["gemm_gflops_by_size"]["float32"]["256"] == pytest.approx(50.33, abs=0.01)
    assert bs.gemm_peak(got["gemm_gflops"]["float64"]) == pytest.approx(83.89, abs=0.01)
    # The box-state probe per round, timed apart from the peaks: its median call 1 ms, then 0.5 ms (33.55 then
    # 67.11 GFLOP/s); over both rounds 1 ms, 1 ms, 0.5 ms, 0.5 ms, 2 ms, 2 ms, median 1 ms.
    assert got["probe_rounds"] == pytest.approx([33.55, 67.11], abs=0.01)
    assert got["probe_gflops"] == pytest.approx(33.55, abs=0.01)


def test_the_cache_probe_times_each_size_once_and_judges_the_edge_by_its_slowest_copy(monkeypatch):
    """A VM shown a 480 MiB L3 that holds about 60: copies run at 28 GB/s while both sides fit in 60 MiB, 13.6
    beyond, except that the copies of 30 MiB per side spill at times (one of five at 18). ``measure`` finds the L3
    holding 30 MiB, what the 15 MiB copies always held, and times every size once, PROBE_REPEATS copies."""
    import kernels.trace.microbench as mb

    mib, calls = 2**20, []

    def copy_rates(side, repeats):
        calls.append((side, repeats))
        if side == 30 * mib:
            return [28.0] * (repeats - 1) + [18.0]
        return [28.0 if 2 * side <= 60 * mib else 13.6] * repeats

    monkeypatch.setattr(mb, "call_overhead_s", lambda r: _rate(1e-6, 1e-6, 1e-6))
    monkeypatch.setattr(mb, "copy_rates", copy_rates)
    vm = {**REPORT, "caches": [{"level": 3, "size": 480 * mib, "total": 480 * mib, "shared_cpus": "0-3"},
                               {"level": 2, "size": 2 * mib, "total": 8 * mib, "shared_cpus": "0"}]}
    l3 = dc.measure(vm)["caches"][0]
    assert l3["effective_size"] == 30 * mib
    sides = [s for s, _ in calls]
    assert len(sides) == len(set(sides)) and all(r == dc.PROBE_REPEATS for _, r in calls) and 30 * mib in sides


def test_copies_and_scatters_are_timed_at_the_cache_sizes_every_round(monkeypatch):
    import kernels.trace.microbench as mb

    monkeypatch.setattr(mb, "call_overhead_s", lambda r: _rate(1e-6, 1e-6, 1e-6))
    monkeypatch.setattr(mb, "copy_rates", lambda b, r: [40.0] * r)  # the cache probe sees no edge: sizes as reported
    m = dc.measure(REPORT)
    assert [c["effective_size"] for c in m["caches"]] == [8 * 2**20, 2**20]
    assert m["copy_bytes"] == {"l3": 2 * 2**20, "l2": 2**18, "dram": 64 * 2**20}  # dram: 8 x the 8 MiB L3
    calls = []
    # GB/s by (kind, bytes) and round: the peak is the fastest of any round. Scatters and rank steps are timed on
    # a cache level's copy side and on a quarter of DRAM's (twice the last level).
    rates = {"copy": {2**21: [50.0, 70.0], 2**18: [90.0, 80.0], 2**26: [20.0, 21.0]},
             "indexed": {2**21: [3.0, 2.0], 2**18: [5.0, 6.0], 2**24: [1.0, 1.5]},
             "grouped": {2**21: [7.0, 6.0], 2**18: [7.5, 8.0], 2**24: [5.0, 4.0]}}

    def fake(kind):
        def f(b, r):
            calls.append((kind, b, r))
            return [rates[kind][b][sum(1 for c in calls if c[:2] == (kind, b)) - 1]] * r
        return f

    for kind in rates:
        monkeypatch.setattr(mb, f"{kind}_rates", fake(kind))
    monkeypatch.setattr(mb, "gemm_times", lambda n, d, r: [1e-3] * r)
    s = bs.PeakSampler(m["copy_bytes"], 2, sizes=(64,))
    s.round()
    s.round()
    got = s.summary()
    assert {lvl: r["max"] for lvl, r in got["copy_gbs"].items()} == {"l3": 70.0, "l2": 90.0, "dram": 21.0}
    assert {lvl: r["max"] for lvl, r in got["indexed_gbs"].items()} == {"l3": 3.0, "l2": 6.0, "dram": 1.5}
    assert {lvl: r["max"] for lvl, r in got["grouped_gbs"].items()} == {"l3": 7.0, "l2": 8.0, "dram": 5.0}
    assert got["copy_gbs"]["l3"]["repeats"] == 8 and got["indexed_gbs"]["l2"]["repeats"] == 4
    assert {c[1] for c in calls if c[0] == "grouped"} == {2**21, 2**18, 2**24}


def test_copy_rates_spread_over_buffer_pairs_held_at_once(monkeypatch):
    import kernels.trace.microbench as mb

    seen = []
    real = mb.samples

    def spy(fn, repeats, clock=None):
        seen.append(repeats)
        return real(fn, repeats)

    monkeypatch.setattr(mb, "samples", spy)
    rates = mb.copy_rates(2**16, 10)
    # 10 runs over 4 pairs: 3, 3, 2, 2; each a positive rate near the machine's copy bandwidth.
    assert seen == [3, 3, 2, 2] and len(rates) == 10 and all(r > 0.1 for r in rates)
    seen.clear()
    assert len(mb.copy_rates(64 * 2**20, 3)) == 3 and seen == [3]  # a DRAM-sized copy: one pair
    r = mb.bandwidth_gbs(2**16, 5)
    assert r["repeats"] == 5 and r["min"] <= r["median"] <= r["max"]


def test_probe_is_the_median_rate_of_a_256_cubed_fp32_matmul_timed_after_a_warm_up(monkeypatch):
    import kernels.trace.microbench as mb

    seen = []
    matmuls = []
    real_matmul = np.matmul

    def fake(n, d, r):
        seen.append((n, d, r, time.perf_counter() - start, len(matmuls)))
        return [1e-3, 2e-3, 4e-3, 8e-3, 5e-4][:r]

    monkeypatch.setattr(mb, "gemm_times", fake)
    monkeypatch.setattr(mb.np, "matmul", lambda *a, **k: matmuls.append(a[0].shape) or real_matmul(*a, **k))
    start = time.perf_counter()
    # 2 x 256^3 FLOPs in 2 ms (the median of 1, 2, 4, 8 and 0.5 ms): 16.78 GFLOP/s.
    assert mb.gemm_probe_gflops() == pytest.approx(2 * 256**3 / 2e-3 / 1e9)
    ((n, d, r, waited, warm_calls),) = seen
    assert (n, d, r) == (256, "float32", mb.PROBE_REPEATS)
    # Timed only after PROBE_WARM_S of the same 256^3 product, untimed.
    assert waited >= mb.PROBE_WARM_S and warm_calls >= 1 and set(matmuls) == {(256, 256)}


def _probe_table(rates_per_run, warm_s=None):
    import pyarrow as pa

    # Each run's two variants (dense and plan) carry the same probes; a layer record carries none. Without warm_s,
    # a run recorded before the probe's warm-up was.
    warm = {} if warm_s is None else {"gemm_probe_warm_s": warm_s}
    rows = [{"run_id": "run0", "params": json.dumps({"role": "layer", **warm})}]
    rows += [{"run_id": f"run{i}", "params": json.dumps({"role": "run", "plan": v, "gemm_probe_gflops": r, **warm})}
             for i, r in enumerate(rates_per_run) for v in ("dense", "plan")]
    return pa.Table.from_pylist(rows)


def test_probes_taken_after_different_warm_ups_are_not_compared():
    """A calibration whose probe had no warm-up read the 2-vCPU EPYC (Zen 3) at about half what a warmed probe
    reads (BENCHMARKS.md "Twenty-second slice"): compared with a warmed run's, every run would look faster than the
    box it was calibrated on. Neither ``validate``'s state comparison nor its pick among calibrations uses it."""
    old = {"gemm_probe_gflops": 70.0}  # made before the warm-up: no gemm_probe_warm_s
    new = {"gemm_probe_gflops": 130.0, "gemm_probe_warm_s": 0.01}
    run = _probe_table([[128.0, 131.0, 129.0]], warm_s=0.01)
    assert bs.probe_warm_s(old) == 0.0 and bs.probe_warm_s(new) == 0.01
    assert bs.compared_state(old, run) is None
    (note,) = bs.state_notes(old, run)
    assert note.startswith("box state not compared") and "after 10 ms" in note and "after 0 ms" in note
    assert bs.compared_state(new, run)["ratio"] == pytest.approx(129.0 / 130.0)
    assert bs.state_notes(new, run)[0].startswith("box state: a 256^3 fp32 GEMM ran at 129")
    # The nearest probe (129) is the unwarmed calibration's; the pick is the one taken as the run took its own.
    assert bs.nearest_state([{"gemm_probe_gflops": 129.0}, new], run) == 1
    pick, notes, state = bs.choose_state(["A", "B"], [{"gemm_probe_gflops": 129.0}, new], run)
    assert pick == 1 and state["calibration_probe_gflops"] == 130.0
    # A run recorded before the warm-up against a warmed calibration: likewise not compared.
    assert bs.compared_state(new, _probe_table([[70.0]])) is None
    assert bs.state_notes(new, _probe_table([[70.0]]))[0].startswith("box state not compared")


def test_state_notes_compare_the_runs_probe_with_the_calibrations():
    doc = {"gemm_probe_gflops": 200.0}
    # Median of 150, 160, 170, 165, 155 = 160: 20 % slower than the calibration, a warning.
    (note,) = bs.state_notes(doc, _probe_table([[150.0, 160.0, 170.0], [165.0, 155.0]]))
    assert "160 GFLOP/s" in note and "median of 5 passes" in note and "200" in note and "-20%" in note
    assert "ran slower" in note and "--calibration A --calibration B" in note
    (note,) = bs.state_notes(doc, _probe_table([[230.0, 240.0, 250.0]]))
    assert "+20%" in note and "ran faster" in note
    (note,) = bs.state_notes(doc, _probe_table([[195.0, 205.0, 210.0]]))  # +2.5 %: stated, no warning
    assert "+2%" in note and "calibrate again" not in note
    assert bs.state_notes({}, _probe_table([[195.0]])) == []  # a calibration without a probe
    assert bs.state_notes(doc, _probe_table([])) == []  # a run without probes (a GPU run)
    state = bs.compared_state(doc, _probe_table([[150.0, 160.0, 170.0], [165.0, 155.0]]))
    assert state == {"run_probe_gflops": 160.0, "run_passes": 5, "calibration_probe_gflops": 200.0,
                     "ratio": pytest.approx(0.8), "differs": True}
    assert not bs.compared_state(doc, _probe_table([[195.0, 205.0, 210.0]]))["differs"]  # 2.5 % <= STATE_NOTE
    assert bs.compared_state({}, _probe_table([[195.0]])) is None is bs.compared_state(doc, _probe_table([]))


def test_calibration_keeps_the_probe_per_round_and_its_median(tmp_path, monkeypatch):
    """Without injected peaks the sampler runs before each pass: the saved probe is the median of every probe
    call, per round too, and the arch's copy peak is the sampler's fastest copy."""
    import kernels.trace.microbench as mb

    seq = iter(range(1, 10**6))
    # probe rounds take 1.02, 1.04, 1.06, ... ms per call (one state); every GEMM the peaks time, 1 ms
    monkeypatch.setattr(mb, "probe_times", lambda: [(1 + 0.02 * next(seq)) * 1e-3] * 5)
    monkeypatch.setattr(mb, "gemm_times", lambda n, d, r: [1e-3] * r)
    monkeypatch.setattr(mb, "copy_rates", lambda b, r: [b / 2**20] * r)
    monkeypatch.setattr(mb, "indexed_rates", lambda b, r: [3.0] * r)
    monkeypatch.setattr(mb, "grouped_rates", lambda b, r: [5.0] * r)
    meas = {k: v for k, v in FAKE.items() if k not in ("gemm_n", "gemm_gflops", "copy_gbs", "indexed_gbs", "grouped_gbs")}
    doc = dc.calibrate_device(tmp_path / "c", 30.0, bench=lambda report: meas, cases=_cases())
    one = 2 * 256**3 / 1e9  # GFLOP per call
    want = [one / ((1 + 0.02 * k) * 1e-3) for k in range(1, cset.PASSES + 1)]
    assert doc["gemm_probe_rounds"] == pytest.approx(want)
    assert doc["gemm_probe_gflops"] == pytest.approx(statistics.median(want))
    assert doc["gemm_probe_warm_s"] == mb.PROBE_WARM_S  # how it was taken, as `run` records its own
    arch = load_arch(tmp_path / "c" / cdir.ARCH_FILE)
    l3 = next(m for m in arch.memory if m.name == "l3")
    assert l3.bandwidth == pytest.approx(meas["copy_bytes"]["l3"] / 2**20 / arch.clock_ghz)


def test_a_calibration_whose_probe_rounds_spread_is_called_mixed():
    steady = {"gemm_probe_gflops": 250.0, "gemm_probe_rounds": [245.0, 250.0, 255.0, 260.0]}  # 6 %: one state
    mixed = {"gemm_probe_gflops": 240.0, "gemm_probe_rounds": [250.0, 245.0, 190.0, 185.0]}  # 35 %: two
    assert bs.mixed_state_note(steady) is None and bs.mixed_state_note({}) is None
    note = bs.mixed_state_note(mixed)
    assert "185-250 GFLOP/s" in note and "average two states" in note
    # validate states it beside the run's probe, whatever the run's
    notes = bs.state_notes(mixed, _probe_table([[240.0, 241.0]]))
    assert len(notes) == 2 and notes[1] == note and "ran slower" not in notes[0] and "ran faster" not in notes[0]


def test_steady_passes_keep_the_majority_state_and_drop_passes_that_straddle_a_change():
    # Fast (~250) majority; passes 2-4 were run slow, and pass 1 ends where the slow rounds begin.
    fast_first = [250.0, 252.0, 190.0, 188.0, 192.0, 251.0, 249.0, 250.0, 253.0]
    assert bs.steady_passes(fast_first, 9) == [0, 5, 6, 7, 8]
    # A slow majority is kept just the same: the state is the median round's, not the faster one.
    slow_most = [190.0, 192.0, 250.0, 251.0, 188.0, 191.0, 189.0, 193.0, 190.0]
    assert bs.steady_passes(slow_most, 9) == [0, 4, 5, 6, 7, 8]
    # Half and half: the state the box is in at the end (the last round's).
    assert bs.steady_passes([190.0, 190.0, 190.0, 250.0, 250.0, 250.0], 6) == [3, 4, 5]
    assert bs.steady_passes([250.0, 250.0, 250.0, 190.0, 190.0, 190.0], 6) == [3, 4, 5]
    # Rounds 13 % apart in steps of at most 7.6 % (250/232.3): one state, every pass; a 9 % step splits.
    assert bs.steady_passes([250.0, 232.3, 262.0, 240.0, 250.0], 5) == [0, 1, 2, 3, 4]
    assert bs.steady_passes([116.0, 128.0, 131.0, 129.0, 128.0], 5) == [1, 2, 3, 4]
    # Fewer than three passes in one state, or rounds missing: every pass.
    assert bs.steady_passes([250.0, 190.0, 250.0, 190.0], 4) == [0, 1, 2, 3]
    assert bs.steady_passes([250.0], 3) == [0, 1, 2]
    assert bs.steady_passes([], 0) == []


def test_a_calibration_fits_the_passes_of_one_state_and_writes_them_all(tmp_path, monkeypatch):
    import kernels.trace.microbench as mb

    probe_ms = iter([1.0, 1.0, 1.3, 1.3, 1.3, 1.0, 1.0, 1.0, 1.0])  # the probe per round: fast, slow, fast
    l3_gbs = iter([50.0, 60.0, 95.0, 70.0, 70.0, 55.0, 52.0, 51.0, 53.0])  # per round: the fastest in a dropped one

    def copies(b, r):
        return [next(l3_gbs) if b == FAKE["copy_bytes"]["l3"] else 50.0] * r

    monkeypatch.setattr(mb, "probe_times", lambda: [next(probe_ms) * 1e-3] * 5)
    monkeypatch.setattr(mb, "gemm_times", lambda n, d, r: [1e-3] * r)
    monkeypatch.setattr(mb, "copy_rates", copies)
    monkeypatch.setattr(mb, "indexed_rates", lambda b, r: [3.0] * r)
    monkeypatch.setattr(mb, "grouped_rates", lambda b, r: [5.0] * r)
    meas = {k: v for k, v in FAKE.items() if k not in ("gemm_n", "gemm_gflops", "copy_gbs", "indexed_gbs", "grouped_gbs")}
    monkeypatch.setattr(cset, "PASSES", 9)  # one probe round per pass above
    doc = dc.calibrate_device(tmp_path / "c", 30.0, bench=lambda report: meas, cases=_cases())
    # Pass 1 ends in the slow state and passes 2-4 run in it: the fit keeps 0, 5, 6, 7, 8.
    assert doc["passes"] == {"recorded": cset.PASSES, "kept": [0, 5, 6, 7, 8]}
    traces = load_traces(tmp_path / "c" / cdir.TRACES_DIR)
    assert traces.num_rows == 9 * 6  # 6 cases per pass, every pass: the probe power is fitted on them all
    assert all(w["passes"] == 5 for w in doc["pass_spread"]["worst"])  # the parameters on the kept ones
    order = sorted(traces.column("timestamp").to_pylist())
    kept = {order[6 * p + i] for p in (0, 5, 6, 7, 8) for i in range(6)}  # the cases run in turn, pass by pass
    assert set(pp.kept_rows(traces, doc["passes"]).column("timestamp").to_pylist()) == kept
    assert doc["probe_power"]["span"] == pytest.approx(1.3, rel=0.01)  # passes in both states (1.0 and 1.3 ms)
    assert 0.0 <= doc["probe_power"]["power"] <= pp.MAX_POWER
    fast = 2 * 256**3 / 1e-3 / 1e9
    assert doc["gemm_probe_gflops"] == pytest.approx(fast)  # the state fitted, not the median of every round
    assert doc["gemm_probe_rounds"][2] == pytest.approx(fast / 1.3)
    arch = load_arch(tmp_path / "c" / cdir.ARCH_FILE)
    l3 = next(m for m in arch.memory if m.name == "l3")
    assert l3.bandwidth == pytest.approx(55.0 / arch.clock_ghz, rel=1e-5)  # the fastest kept round's, not round 3's 95
    note = bs.mixed_state_note(doc)
    assert "fitted the 5 of 9 passes run in one state" in note and f"{fast:.4g} GFLOP/s" in note


def test_threaded_calls_count_each_blas_call_on_more_than_one_thread():
    from accelsim.model.workload import Gemm, Sparsity
    from accelsim.replay.project import OnThreads, threaded_calls

    doc = load_arch("cpu_numpy").model_dump(mode="python")
    doc["compute"]["units"] = 2
    two = load_arch(doc)
    row = {"backend": "numpy", "params": json.dumps({"blas_threads": 2})}
    batch = Gemm("qk", 128, 128, 32, "fp32", count=768)
    assert threaded_calls(row, batch, two) == 768  # NumPy calls BLAS once per matrix of a batch
    assert threaded_calls(row, OnThreads(batch, 1), two) == 0  # small: OpenBLAS runs it on one thread
    assert threaded_calls(row, OnThreads(batch, 2), two) == 768
    assert threaded_calls(row, OnThreads(batch, 2, pooled=True), two) == 0  # the caller's pool, BLAS on one each
    sparse = Gemm("w", 64, 64, 64, "fp32", weight_sparsity=Sparsity.parse("2:4"))
    assert threaded_calls(row, [batch, OnThreads(batch, 1), sparse, Gemm("g", 8, 8, 8, "fp32")], two) == 769
    assert threaded_calls({**row, "params": json.dumps({"blas_threads": 1})}, batch, two) == 0
    assert threaded_calls({**row, "backend": "cupy"}, batch, two) == 0
    assert threaded_calls(row, batch, load_arch("cpu_numpy")) == 0  # a one-unit arch


def test_too_small_a_budget_writes_nothing(tmp_path):
    ticks = iter(range(1000))  # 1 s per clock reading (start 0, pass 1, cases 2-4): 3 kernel runs, under the 4 a fit needs
    with pytest.raises(AccelsimError, match=r"--budget-s 5: left time for 3 kernel runs .* raise it"):
        dc.calibrate_device(tmp_path / "c", 5.0, bench=lambda report: FAKE, cases=_cases(),
                            clock=lambda: float(next(ticks)))
    assert not (tmp_path / "c").exists()


def test_calibrate_prints_how_far_the_passes_spread():
    from accelsim.cli.calibrate_cmd import _spread_line

    spread = {"configs": 52, "median_pct": 2.44, "worst": [{"label": "gemm x64", "spread_pct": 66.6, "passes": 11}]}
    (line,) = _spread_line({"pass_spread": spread})
    assert "2.4 % in median over 52 configurations" in line and "gemm x64 67 %" in line
    assert _spread_line({"pass_spread": {"configs": 0, "median_pct": None, "worst": []}}) == []
    assert _spread_line({}) == []
    # above 7 % in median the box was unsteady: said after the spread, by calibrate and by validate's state notes
    line, note = _spread_line({"pass_spread": {**spread, "median_pct": 7.6}})
    assert "unsteady" in note and "7.6 %" in note and "calibrate again" in note
    assert bs.unsteady_note({"pass_spread": {**spread, "median_pct": 7.0}}) is None  # the bound itself is steady
    assert bs.unsteady_note({}) is None
    doc = {"gemm_probe_gflops": 200.0, "pass_spread": {**spread, "median_pct": 14.3}}
    notes = bs.state_notes(doc, _probe_table([[200.0, 201.0]]))
    assert len(notes) == 2 and "14.3 %" in notes[1]


def test_time_call_runs_before_ahead_of_each_timed_call_only():
    from kernels.trace import time_call

    log = []
    time_call(lambda: log.append("call"), warmup=2, repeats=3, before=lambda: log.append("before"))
    assert log == ["call", "call"] + ["before", "call"] * 3


@pytest.mark.parametrize("last_mib", [8, 30, 60, 200])
def test_the_same_six_batches_outgrow_the_cache_found(tmp_path, last_mib):
    """The stacked cases beyond the cache are the six beyond a 32 MiB one, whatever last level the probe found (on
    the Xeon VM 30 or 60 MiB), so the ``batched_gemm`` group is fitted in every calibration: the replay adds a DRAM
    fetch (``batch_fetch``) to exactly those, each 4·batch·(mk + kn + mn) bytes past twice the cache found (the
    size a VM's share may reach at times), their counts those of :data:`BATCH_CASES` times 2 · last / 32 MiB rounded
    up where that exceeds 1; the four in a 32 MiB cache keep theirs."""
    from accelsim.replay.numpy_run import batch_fetch

    last = last_mib * 2**20
    report = {**REPORT, "caches": [{"level": 3, "size": last, "total": last, "shared_cpus": "0-3"},
                                   {"level": 2, "size": 2**20, "total": 4 * 2**20, "shared_cpus": "0"}]}
    path = tmp_path / "arch.yaml"
    path.write_text(dc.arch_yaml(report, FAKE))
    arch = load_arch(path)
    cases = [c for c in cset.calibration_cases(np, last_level=last) if c.key[0] == "gemm" and len(c.key) == 6]
    assert [c.key[1:4] for c in cases] == [(m, n, k) for _, m, n, k in cset.BATCH_CASES]
    nbytes = {c.key: 4 * c.key[5] * (c.key[1] * c.key[3] + c.key[3] * c.key[2] + c.key[1] * c.key[2]) for c in cases}
    beyond = [c.key for c in cases if batch_fetch({"backend": "numpy", "dtype": "float32", "kernel": "gemm"}, *c.key[1:4], c.key[5], arch)]
    assert len(beyond) == 6 and all(nbytes[k] > max(2 * last, 32 * 2**20) for k in beyond)
    for (count, m, n, k), c in zip(cset.BATCH_CASES, cases):
        grown = 4 * count * (m * k + k * n + m * n) > 32 * 2**20 and 2 * last_mib > 32
        assert c.key[5] == (-(-count * 2 * last_mib // 32) if grown else count)


def _scaled_copy(src, dst, times: float, caches=None):
    """A copy of calibration directory ``src`` at ``dst`` with every time coefficient (overheads and both scales)
    multiplied by ``times`` (the efficiency and fraction each scale's inverse is written as, divided), and its
    probe's caches replaced by ``caches`` where given."""
    shutil.copytree(src, dst)
    doc = json.loads((dst / cdir.CALIBRATION_FILE).read_text())
    for p in (doc["global"], *doc["families"].values(), *doc["groups"].values()):
        for key in ("launch_overhead_s", "threaded_call_s", "compute_scale", "memory_scale"):
            if p.get(key) is not None:
                p[key] *= times
        for key in ("compute_efficiency", "bandwidth_fraction"):
            if p.get(key) is not None:
                p[key] /= times
    if caches is not None:
        doc["measured"]["caches"] = caches
    (dst / cdir.CALIBRATION_FILE).write_text(json.dumps(doc))
    return dst


def test_projection_spread_of_a_run_follows_the_calibrations(cal_dir, network_run, tmp_path, capsys):
    """bench/bench_calibration_spread.py --project: a calibration whose every time coefficient is doubled projects
    each plan's whole run at twice the time (the projection is linear in them) and the same gain; only the pairs
    given as one state count for the one-state column."""
    from bench.bench_calibration_spread import main, projection_spread

    out, _ = cal_dir
    slow = _scaled_copy(out, tmp_path / "slow", 2.0)
    rows = projection_spread([out, slow], [network_run / "traces"], [(0, 1)])
    assert [r["plan"] == "dense" for r in rows] == [True, False]
    for r in rows:
        a, b = r["projected_s"]
        assert b == pytest.approx(2 * a, rel=1e-9) and a > 0
        assert r["worst_same_state"] == pytest.approx(1.0) == r["worst_any"]
        if r["plan"] != "dense":
            assert r["gain_worst_same_state"] == pytest.approx(0.0, abs=1e-9) == r["gain_worst_any"]
    (unpaired,) = [r for r in projection_spread([out, slow], [network_run / "traces"], []) if r["plan"] == "dense"]
    assert unpaired["worst_same_state"] is None and unpaired["worst_any"] == pytest.approx(1.0)
    main(["--dirs", str(out), str(slow), "--project", str(network_run / "traces")])
    assert "| dense |" in capsys.readouterr().out


def test_calibration_spread_counts_pairs_across_states_apart(cal_dir, tmp_path):
    """bench/bench_calibration_spread.py: a calibration, a copy with every time coefficient doubled (one state with
    it: its efficiencies halved, not within 10 %) and that copy with the caches found twice as large (two states with
    both, so counted only over any pair: within 10 % of the doubled one, -50 % from the first; its L3 copies measured
    30 % faster, which the box's own rates show over any pair only). The fitted overheads of these tiny cases may be
    0, whose change is undefined; the compute efficiency never is. The copies' cases ran the same: their own times
    moved 0 while the projection doubled."""
    from bench.bench_calibration_spread import spread

    out, _ = cal_dir
    dirs = [_scaled_copy(out, tmp_path / name, times, [{"level": 3, "size": 2**30, "effective_size": grow * 2**25}])
            for name, times, grow in (("first", 1.0, 1), ("same", 2.0, 1), ("other", 2.0, 2))]
    other = json.loads((dirs[2] / cdir.CALIBRATION_FILE).read_text())
    other["measured"]["copy_gbs"]["l3"]["max"] *= 1.3
    (dirs[2] / cdir.CALIBRATION_FILE).write_text(json.dumps(other))
    s = spread(dirs)
    assert (s["pairs"], s["same_state_pairs"], s["within"], s["any_within"]) == (3, 1, 0, 1)
    peaks = {p["name"]: p for p in s["peaks"]}
    assert all(p["worst_same_state"] == 0.0 for p in peaks.values())
    assert {k: p["worst_any"] for k, p in peaks.items() if p["worst_any"]} == {"copy l3 GB/s": pytest.approx(0.3)}
    eff = next(p for p in s["params"] if p["name"] == "gemm float32.compute_efficiency")
    assert eff["worst_same_state"] == pytest.approx(0.5) == eff["worst_any"]
    # the copies share their traces: every group's projection doubled while its cases' own times stood still
    assert s["groups"] and all(g["worst_median_change"] == pytest.approx(1.0) for g in s["groups"])
    assert all(g["worst_measured_change"] == 0.0 == g["worst_case_change"] for g in s["groups"])
    alone = spread([dirs[0], dirs[2]])
    eff = next(p for p in alone["params"] if p["name"] == "gemm float32.compute_efficiency")
    assert (alone["same_state_pairs"], alone["any_within"]) == (0, 0)
    assert eff["worst_same_state"] is None and eff["worst_any"] == pytest.approx(0.5)


def test_calibration_spread_refit_fits_each_calibration_again_before_comparing(cal_dir, tmp_path, capsys):
    """bench/bench_calibration_spread.py --refit: the copy with every time coefficient doubled is fitted again on the
    traces it shares with the first, so the pair comes back with every parameter as the first's (within 10 %, 0
    change) where without --refit its efficiencies moved 50 %; the originals are left as they were."""
    from bench.bench_calibration_spread import main

    out, _ = cal_dir
    slow = _scaled_copy(out, tmp_path / "slow", 2.0)
    before = (slow / cdir.CALIBRATION_FILE).read_text()
    s = main(["--dirs", str(out), str(slow), "--refit", str(tmp_path / "refit")])
    assert (s["pairs"], s["same_state_pairs"], s["within"]) == (1, 1, 1)
    assert all(p["worst_same_state"] in (0.0, None) for p in s["params"])
    assert sorted(p.name for p in (tmp_path / "refit").iterdir()) == ["1-dev", "2-slow"]
    assert (slow / cdir.CALIBRATION_FILE).read_text() == before
    assert main(["--dirs", str(out), str(slow)])["within"] == 0
    capsys.readouterr()


def test_cold_fetch_bench_prices_the_fetch_as_the_replay_does(cal_dir):
    """bench/bench_cold_fetch.py: each cold case's modelled fetch is B plus A up to half a unit's innermost level,
    read at the rate of the level that holds the bytes its operand copies span (at least 2 x 4 MiB: this box's
    caches, the FAKE rates), the next cache in at its own rate for the share it holds where the copies outgrow it
    (a 32 MiB L3 against 78 MB of FFN copies); each shape's fraction is that fetch over its cold-less-warm time, the
    process's their least-squares fit relative to the cold time."""
    from bench.bench_cold_fetch import measure

    out, _ = cal_dir
    arch = load_arch(out / cdir.ARCH_FILE)
    block = arch.memory[-1].capacity_bytes // arch.compute.units // 2
    side = 4 * 2**20
    r = measure(out, side, passes=1, repeats=1)
    assert [s["shape"] for s in r["shapes"]] == [f"{m}x{n}x{k}" for m, n, k in cset.COLD_CASES]
    num = den = 0.0
    for (m, n, k), s in zip(cset.COLD_CASES, r["shapes"]):
        per = 4 * (m * k + k * n)
        assert s["cold_bytes"] == cset.cold_copies(per, side) * per >= 2 * side
        i = resident_level(arch, s["cold_bytes"])
        shares = [(arch.memory[i], 1.0)]  # the level holding the copies; a cache inside it holds its share of them
        if i + 2 < len(arch.memory):
            held = arch.memory[i + 1].capacity_bytes / s["cold_bytes"]
            shares = [(arch.memory[i + 1], held), (arch.memory[i], 1 - held)]
        read = 4 * k * n + min(4 * m * k, block)
        per_byte = sum(share / lvl.bandwidth for lvl, share in shares)
        assert s["fetch_s"] == pytest.approx(read * per_byte / (arch.clock_ghz * 1e9), rel=1e-9)
        assert s["warm_s"] > 0 and s["cold_s"] > 0
        d = s["cold_s"] - s["warm_s"]
        assert s["fraction"] == (pytest.approx(s["fetch_s"] / d) if d > 0 else None)
        num, den = num + s["fetch_s"] * d / s["cold_s"] ** 2, den + s["fetch_s"] ** 2 / s["cold_s"] ** 2
    assert r["fraction"] == (pytest.approx(den / num) if num > 0 else None)
    assert r["side"] == side and r["calibration_fraction"] is None  # FAKE's cases hold no cold GEMM


def test_refit_of_an_unchanged_calibration_gives_its_fit_again(cal_dir, tmp_path):
    """`refit_saved` rebuilds what `fit_saved` needs from the document alone: on the same traces and arch, every
    fitted parameter, the held-out MAPE and what was measured come back as saved; the creation date is kept and
    the refit dated."""
    out, doc = cal_dir
    saved = json.loads((out / cdir.CALIBRATION_FILE).read_text())
    new = dc.refit_saved(saved, load_traces(out / cdir.TRACES_DIR), load_arch(out / cdir.ARCH_FILE))
    for key in ("global", "families", "groups", "held_out_mape_pct", "measured", "split", "configs", "passes",
                "gemm_probe_gflops", "blas_threads", "blas_core", "device_name", "created"):
        assert new[key] == saved[key], key
    assert new["refitted"] >= saved["created"]


def test_loop_refit_gives_old_records_the_blas_core_and_keeps_recorded_ones(network_run, tmp_path):
    from bench.bench_loop_refit import copy_traces

    src = tmp_path / "src"
    src.mkdir()
    table = load_traces(network_run / "traces")
    params = [json.loads(p) for p in table.column("params").to_pylist()]
    old = [json.dumps({k: v for k, v in p.items() if k != "blas_core"}) for p in params]
    old[0] = json.dumps({**params[0], "blas_core": "Zen"})
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(table.set_column(table.schema.get_field_index("params"), "params", pa.array(old, pa.string())),
                   src / "part-0.parquet")
    copy_traces(src, tmp_path / "dst", "SkylakeX")
    got = [json.loads(p) for p in load_traces(tmp_path / "dst").column("params").to_pylist()]
    assert [p["blas_core"] for p in got] == ["Zen"] + ["SkylakeX"] * (len(got) - 1)
    assert [{k: v for k, v in p.items() if k != "blas_core"} for p in got] == [
        {k: v for k, v in p.items() if k != "blas_core"} for p in params]


@settings(max_examples=200, deadline=None)
@given(m=st.integers(32, 8192), n=st.integers(32, 8192))
def test_two_openblas_threads_share_panels_unless_c_is_taller_than_wide(m, n):
    # Closed form of OpenBLAS's level-3 split on two threads (SWITCH_RATIO 16, both sides >= 2 x 16): splitting the
    # rows of its column-major C (NumPy's n) costs 2m + n, its columns (NumPy's m) m + 2n; the columns win iff n < m.
    from accelsim.replay.numpy_run import shares_panels

    assert shares_panels(m, n, 2, "SkylakeX") is (n >= m)
    assert shares_panels(m, n, 1, "SkylakeX") is False
    assert shares_panels(m, n, 2, None) is None  # a core it does not know


def test_panel_sharing_follows_the_core_ratio_and_the_thread_count():
    from accelsim.replay.numpy_run import shares_panels

    # 20 x 24: 24 rows of C split in two only where the ratio is 8 (2 x 8 <= 24 < 2 x 16); then 2·20 + 24 = 64 is
    # below 20 + 2·24 = 68, so the rows stay split
    assert shares_panels(20, 24, 2, "Zen") and shares_panels(20, 24, 2, "SkylakeX", itemsize=8)
    assert not shares_panels(20, 24, 2, "SkylakeX")  # ratio 16: the 20 columns take both threads
    # four threads, 1024 x 1024: rows split four ways, columns one; dividing 2 x 2 costs 1024·2 + 1024·2 = 4096, under
    # 5120 for either 4 x 1 or 1 x 4, so two row groups still share panels
    assert shares_panels(1024, 1024, 4, "SkylakeX")
    # four threads, 8192 x 64: 4 x 1 costs 8192·4 + 64, 2 x 2 8192·2 + 128, 1 x 4 8192 + 256: the columns alone
    assert not shares_panels(8192, 64, 4, "SkylakeX")


def test_threaded_calls_weigh_the_calls_that_share_panels_on_a_known_core():
    from accelsim.replay.numpy_run import SHARED_PANEL_CALLS
    from accelsim.replay.project import OnThreads, threaded_calls

    doc = load_arch("cpu_numpy").model_dump(mode="python")
    doc["compute"]["units"] = 2
    two = load_arch(doc)
    row = {"backend": "numpy", "params": json.dumps({"blas_threads": 2, "blas_core": "SkylakeX"})}
    qk, av = Gemm("qk", 128, 128, 64, "fp32", count=12), Gemm("av", 128, 64, 128, "fp32", count=12)
    shared = 12 * SHARED_PANEL_CALLS
    assert SHARED_PANEL_CALLS > 1
    assert threaded_calls(row, OnThreads(qk, 2), two) == shared and threaded_calls(row, qk, two) == shared
    assert threaded_calls(row, OnThreads(av, 2), two) == 12 and threaded_calls(row, [qk, av], two) == shared + 12
    assert threaded_calls(row, OnThreads(qk, 1), two) == 0
