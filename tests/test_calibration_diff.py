"""`accelsim calibrate --against EARLIER`: each fitted parameter and peak beside the earlier calibration's with its
relative change, the share of the time it prices, and each group's projected-time change, all against values worked
out here from the documents and the simulator's projection; another device, a GPU run or a missing directory exits 2
before anything is measured."""

from __future__ import annotations

import json
import shutil
import statistics

import pytest
import yaml

from accelsim.replay import calibration_dir as cdir
from accelsim.replay import calibration_set as cset
from accelsim.replay import device_calibration as dc
from accelsim.replay.calibration_diff import DRIFT, compare_dirs
from accelsim.replay.cpu_report import os_report
from accelsim.replay.project import items_from_table, project
from accelsim.replay.traces import load as load_traces
from accelsim.model.arch import load_arch
from conftest import assert_exit_2, run_in_process
from test_calibrate_device import FAKE, _cases


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    out = tmp_path_factory.mktemp("diff") / "earlier"
    dc.calibrate_device(out, 30.0, bench=lambda report: FAKE, cases=_cases())
    return out


def _edited(earlier, dst, edit):
    shutil.copytree(earlier, dst)
    doc = json.loads((dst / cdir.CALIBRATION_FILE).read_text())
    edit(doc)
    (dst / cdir.CALIBRATION_FILE).write_text(json.dumps(doc))
    return dst


def test_a_copy_moves_nothing(earlier, tmp_path):
    d = compare_dirs(earlier, _edited(earlier, tmp_path / "same", lambda doc: None))
    assert d["params"] and all(p["change"] in (0.0, None) for p in d["params"])
    assert all(p["change"] == 0.0 for p in d["peaks"]) and d["state"]["same"] in (True, None)
    assert all(g["median_change"] == 0.0 == g["max_change"] == g["measured_median_change"] == g["measured_max_change"]
               for g in d["projection"])
    assert d["within"] and sum(g["configs"] for g in d["projection"]) == 6


def test_the_cases_own_times_say_how_far_the_box_moved(earlier, tmp_path):
    """A later calibration whose traces ran every timed call 1.25x slower but one case's 0.6x (parameters as they
    were): each group's own measured time moved +25 % in median, the group of that case -40 % at its furthest, and
    no projection moved. Without traces, no measured change is claimed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    later = _edited(earlier, tmp_path / "later", lambda doc: None)
    table = load_traces(later / cdir.TRACES_DIR)
    first = table.to_pylist()[0]
    one = {k: first[k] for k in ("kernel", "m", "n", "k", "dtype")}
    rows = [{**r, "time_median_s": (0.6 if all(r[k] == v for k, v in one.items()) else 1.25) * r["time_median_s"]}
            for r in table.to_pylist()]
    shutil.rmtree(later / cdir.TRACES_DIR)
    (later / cdir.TRACES_DIR).mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), later / cdir.TRACES_DIR / "part-0.parquet")
    d = compare_dirs(earlier, later)
    assert d["projection"] and all(g["median_change"] == 0.0 for g in d["projection"])
    assert all(g["measured_median_change"] == pytest.approx(0.25) for g in d["projection"])
    furthest = sorted(g["measured_max_change"] for g in d["projection"])
    assert furthest[0] == pytest.approx(-0.4) and furthest[1:] == pytest.approx([0.25] * (len(furthest) - 1))
    shutil.rmtree(later / cdir.TRACES_DIR)
    assert all(g["measured_median_change"] is None for g in compare_dirs(earlier, later)["projection"])


def test_changes_are_the_ratios_and_the_projection_follows_them(earlier, tmp_path):
    # The earlier calibration's launch overhead is set to the smallest configuration's compute time, whatever the fit
    # gave on this box (it can fit next to nothing), so that tripling it shows on the small configurations.
    arch = load_arch(earlier / cdir.ARCH_FILE)
    items = items_from_table(load_traces(earlier / cdir.TRACES_DIR), arch)
    fitted = json.loads((earlier / cdir.CALIBRATION_FILE).read_text())["groups"]["gemm float32"]
    launch0 = fitted["compute_scale"] * min(project(arch, it.workload, it.working_set).compute_s for it in items)

    def set_launch(doc, value):
        for p in (doc["global"], *doc["families"].values(), *doc["groups"].values()):
            p["launch_overhead_s"] = value

    start = _edited(earlier, tmp_path / "start", lambda doc: set_launch(doc, launch0))
    base = json.loads((start / cdir.CALIBRATION_FILE).read_text())

    def edit(doc):
        set_launch(doc, 3.0 * launch0)
        g = doc["groups"]["gemm float32"]
        g["compute_scale"] *= 0.1
        g["compute_efficiency"] /= 0.1
        doc["measured"]["copy_gbs"]["l3"]["max"] *= 1.1

    d = compare_dirs(start, _edited(earlier, tmp_path / "later", edit))
    by = {p["name"]: p for p in d["params"]}
    assert by["gemm float32.compute_efficiency"]["change"] == pytest.approx(9.0)
    assert by["global.launch_overhead_s"]["change"] == pytest.approx(2.0)
    assert {p["name"]: p["change"] for p in d["peaks"]}["copy l3 GB/s"] == pytest.approx(0.1)
    assert not d["within"] and d["worst"]["name"] == "gemm float32.compute_efficiency" and DRIFT == 0.10
    # Worked out here: t = launch_overhead_s * launches + compute_scale * compute_s + memory_scale * memory_s on
    # the simulator's projection of each configuration; the later calibration triples the overhead and divides
    # compute by 10: small configurations slow down, large ones speed up.
    g = base["groups"]["gemm float32"]
    changes, shares = [], []
    for it in items:
        p = project(arch, it.workload, it.working_set)
        launch = g["launch_overhead_s"] * it.launches
        rest = g["memory_scale"] * p.memory_s + g["threaded_call_s"] * it.threaded_calls
        before = launch + g["compute_scale"] * p.compute_s + rest
        changes.append((3 * launch + 0.1 * g["compute_scale"] * p.compute_s + rest) / before - 1)
        shares.append(launch / before)
    assert min(changes) < 0 < max(changes)
    (proj,) = d["projection"]
    assert proj["group"] == "gemm float32" and proj["configs"] == 6
    assert proj["median_change"] == pytest.approx(statistics.median(changes))
    assert proj["max_change"] == pytest.approx(max(changes, key=abs))
    assert by["global.launch_overhead_s"]["share"] == pytest.approx(statistics.median(shares))


def test_cli_prints_the_comparison(earlier, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dc, "measure", lambda report: FAKE)
    monkeypatch.setattr(cset, "calibration_cases", lambda xp, **_: _cases())
    out = tmp_path / "now"
    code, stdout, err = run_in_process(capsys, monkeypatch, "calibrate", "--out", str(out), "--against", str(earlier),
                                       "--format", "json")
    assert code in (0, None), err
    diff = json.loads(stdout)["against"]
    assert diff["a"] == str(earlier) and diff["b"] == str(out)
    assert diff == json.loads(json.dumps(compare_dirs(earlier, out)))
    code, stdout, err = run_in_process(capsys, monkeypatch, "calibrate", "--out", str(tmp_path / "again"),
                                       "--against", str(earlier))
    assert code in (0, None), err
    assert f"against {earlier}" in stdout.replace("\n", "") and "of the earlier one; the furthest:" in stdout
    assert "median (furthest) change per group (the box's own move): gemm float32" in " ".join(stdout.split())


def test_another_device_exits_2_before_measuring(earlier, tmp_path, capsys, monkeypatch):
    def boom(report):
        raise AssertionError("measured before refusing")

    monkeypatch.setattr(dc, "measure", boom)
    other = _edited(earlier, tmp_path / "other", lambda doc: doc.update(device_name="Other CPU 9000"))
    out = tmp_path / "c"
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--out", str(out), "--against", str(other)),
                  "--against", "'Other CPU 9000'", repr(os_report()["device_name"]))
    threads = _edited(earlier, tmp_path / "threads", lambda doc: doc.update(blas_threads=97))
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--out", str(out), "--against", str(threads)),
                  "--against", "97 BLAS threads")
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--out", str(out), "--against",
                                 str(tmp_path / "missing")), "--against", "has no calibration.json")
    bare = _edited(earlier, tmp_path / "bare", lambda doc: None)
    shutil.rmtree(bare / cdir.TRACES_DIR)
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--out", str(out), "--against", str(bare)),
                  "--against", "has no traces/")
    assert_exit_2(run_in_process(capsys, monkeypatch, "calibrate", "--out", str(out), "--backend", "cupy",
                                 "--against", str(earlier)), "--against", "compares NumPy calibrations")
    assert not out.exists()


def test_a_calibration_from_before_threaded_call_s_compares(earlier, tmp_path):
    def edit(doc):
        for p in (doc["global"], *doc["families"].values(), *doc["groups"].values()):
            p.pop("threaded_call_s")

    d = compare_dirs(_edited(earlier, tmp_path / "old", edit), earlier)
    by = {p["name"]: p for p in d["params"]}
    launch = by["global.launch_overhead_s"]  # the fit may give 0 here (then no relative change): the same either way
    assert by["global.threaded_call_s"]["a"] == 0.0 and launch["a"] == launch["b"] and launch["change"] in (0.0, None)


def test_probes_taken_after_different_warm_ups_say_nothing_of_the_state(earlier, tmp_path):
    """A calibration whose probe had no warm-up (made before it was added) read the box about half as fast: against
    a warmed one, its probe says nothing of whether the box moved."""
    def probed(gflops, warm_s):
        def edit(doc):
            doc["gemm_probe_gflops"] = gflops
            doc.pop("gemm_probe_warm_s", None)
            if warm_s is not None:
                doc["gemm_probe_warm_s"] = warm_s
        return edit

    old = _edited(earlier, tmp_path / "old", probed(70.0, None))
    new = _edited(earlier, tmp_path / "new", probed(130.0, 0.01))
    d = compare_dirs(old, new)
    assert d["state"]["change"] is None and d["state"]["same"] in (True, None)
    d = compare_dirs(new, _edited(earlier, tmp_path / "new2", probed(104.0, 0.01)))
    assert d["state"]["change"] == pytest.approx(104.0 / 130.0 - 1) and d["state"]["same"] is False


def test_caches_that_held_another_size_are_another_state(earlier, tmp_path):
    """The copy probe's verdict is part of the box's state: an L3 that held 60 MiB in one calibration and 30 in the
    other puts the pair in two states, whatever the GEMM probe says; the same verdict leaves it to the probe."""
    def held(mib):
        def edit(doc):
            doc["measured"]["caches"] = [{"level": 3, "size": 480 * 2**20, "effective_size": mib * 2**20},
                                         {"level": 2, "size": 2**21, "effective_size": 2**21}]
        return edit

    a = _edited(earlier, tmp_path / "a", held(30))
    d = compare_dirs(a, _edited(earlier, tmp_path / "b", held(60)))
    assert d["state"]["same_caches"] is False and d["state"]["same"] is False
    assert d["state"]["a_caches"] == {"l3": 30 * 2**20, "l2": 2**21} and d["state"]["b_caches"]["l3"] == 60 * 2**20
    d = compare_dirs(a, _edited(earlier, tmp_path / "c", held(30)))
    assert d["state"]["same_caches"] is True and d["state"]["same"] in (True, None)


def test_cli_says_when_the_caches_held_another_size(earlier, tmp_path, capsys, monkeypatch):
    def caches(mib):
        return [{"level": 3, "size": 480 * 2**20, "total": 480 * 2**20, "shared_cpus": "0-1",
                 "effective_size": mib * 2**20, "effective_total": mib * 2**20},
                {"level": 2, "size": 2**21, "total": 2**22, "shared_cpus": "0", "effective_size": 2**21,
                 "effective_total": 2**22}]

    then = _edited(earlier, tmp_path / "then", lambda doc: doc["measured"].update(caches=caches(30)))
    monkeypatch.setattr(dc, "measure", lambda report: {**FAKE, "caches": caches(60)})
    monkeypatch.setattr(cset, "calibration_cases", lambda xp, **_: _cases())
    code, stdout, err = run_in_process(capsys, monkeypatch, "calibrate", "--out", str(tmp_path / "now"),
                                       "--against", str(then))
    assert code in (0, None), err
    assert "the caches held another size (l3 30 then 60 MiB)" in " ".join(stdout.split())


def test_the_box_own_scatter_and_rank_step_rates_are_compared(earlier, tmp_path):
    """Beside the copies and MAC rates, each level's scatters and rank steps as the arch holds them, in GB/s: the
    fastest of each measured (FAKE's; the arch keeps 6 digits), and a later arch whose L3 rank steps ran 10 % faster
    moves only that rate."""
    later = _edited(earlier, tmp_path / "later", lambda doc: None)
    arch_doc = yaml.safe_load((later / cdir.ARCH_FILE).read_text())
    (l3,) = [m for m in arch_doc["memory"] if m["name"] == "l3"]
    l3["grouped_bandwidth"] *= 1.1
    (later / cdir.ARCH_FILE).write_text(yaml.safe_dump(arch_doc))
    peaks = {p["name"]: p for p in compare_dirs(earlier, later)["peaks"]}
    assert {k: peaks[k]["a"] for k in peaks if k.split()[0] in ("indexed", "grouped")} == pytest.approx(
        {f"indexed {lvl} GB/s": FAKE["indexed_gbs"][lvl]["max"] for lvl in ("l3", "l2")}
        | {f"grouped {lvl} GB/s": FAKE["grouped_gbs"][lvl]["max"] for lvl in ("dram", "l3", "l2")}, rel=1e-5)
    assert {k: p["change"] for k, p in peaks.items() if p["change"]} == {"grouped l3 GB/s": pytest.approx(0.1)}
