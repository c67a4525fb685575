"""Sweeps: grid parsing, validation before work, identical results on every path, resume, Pareto fronts."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.explore import sweep as sweep_mod
from accelsim.errors import ConfigError
from accelsim.explore.pareto import pareto_front
from accelsim.explore.sweep import METRICS, parse_grid, run_sweep
from accelsim.explore.store import read_results
from conftest import assert_one_line_error

WORKLOAD = """\
workload:
  name: tiny
  layers:
    - {type: gemm, name: a, m: 64, n: 64, k: 128, weight_sparsity: "2:4"}
    - {type: gemm, name: b, m: 128, n: 32, k: 64}
    - {type: gemm, name: c, m: 33, n: 17, k: 96, weight_sparsity: "1:4"}
"""
GRID = ["compute.rows=16,32", "memory.dram.bandwidth=8,32", "compute.sparsity.patterns=[];[2:4];[1:4,2:4]"]
NPOINTS = 2 * 2 * 3


@pytest.fixture
def wl(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(WORKLOAD)
    return str(path)


def test_parse_grid_values():
    g = parse_grid(["compute.rows=16, 32", "compute.sparsity.patterns=[],[2:4],[1:4, 2:4]",
                    "compute.dataflow=ws;os", "memory.sram.partition={input: 1, weight: 2}"])
    assert [v for _, v in g["compute.rows"]] == [16, 32]
    assert [v for _, v in g["compute.sparsity.patterns"]] == [[], ["2:4"], ["1:4", "2:4"]]
    assert [v for _, v in g["compute.dataflow"]] == ["ws", "os"]
    assert [v for _, v in g["memory.sram.partition"]] == [{"input": 1, "weight": 2}]
    assert [v for _, v in parse_grid(["k=[2:4];[1:4,2:4]"])["k"]] == [["2:4"], ["1:4", "2:4"]]
    for bad, needle in (("compute.rows", "expected key.path"), ("compute.rows=1,", "empty value"),
                        ("=1", "expected key.path")):
        with pytest.raises(ConfigError, match=needle):
            parse_grid([bad])
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["compute.rows=1", "compute.rows=2"])


@pytest.mark.parametrize("grid, needle", [
    (["compute.rows=16,-4"], "--grid compute.rows=-4: field compute.rows"),
    (["compute.rowz=16,32"], "unknown key 'compute.rowz'"),
    (["compute.sparsity.patterns=[2:4];[3:2]"], "--grid compute.sparsity.patterns=[3:2]"),
    (["memory.nosuch.bandwidth=1"], "no list item 'nosuch'"),
])
def test_bad_grid_fails_before_any_work(wl, tmp_path, monkeypatch, grid, needle):
    def boom(*a, **k):
        raise AssertionError("evaluated a point before validating the grid")

    monkeypatch.setattr(sweep_mod, "evaluate", boom)
    out = tmp_path / "res"
    with pytest.raises(ConfigError) as exc:
        run_sweep("systolic_ws_32x32", grid, [wl], out=out, dask=False)
    assert needle in str(exc.value)
    assert not out.exists()


def test_cli_bad_value_exit_2_no_output(cli, wl, tmp_path):
    out = tmp_path / "res"
    proc = cli("sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,0", "--workload", wl,
               "--no-dask", "--out", str(out))
    assert_one_line_error(proc, "compute.rows=0")
    assert not out.exists()


def _rows(res):
    return sorted(res.rows, key=lambda r: r["key"])


def test_sequential_local_dask_and_in_process_dask_identical(wl):
    distributed = pytest.importorskip("distributed")
    seq = run_sweep("systolic_ws_32x32", GRID, [wl, "tests/data/topologies/gemm_mix.csv"], dask=False)
    assert seq.mode == "in-process" and seq.computed == 2 * NPOINTS
    local = run_sweep("systolic_ws_32x32", GRID, [wl, "tests/data/topologies/gemm_mix.csv"], workers=2)
    assert local.mode.startswith("dask local")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        inproc = run_sweep("systolic_ws_32x32", GRID, [wl, "tests/data/topologies/gemm_mix.csv"],
                           scheduler=cluster.scheduler_address, chunk_size=3)
    assert inproc.mode.startswith("dask tcp://") or inproc.mode.startswith("dask inproc")
    assert _rows(seq) == _rows(local) == _rows(inproc)  # exact float equality: bit-identical
    assert [r["key"] for r in seq.rows] == [r["key"] for r in local.rows]  # same (grid) order too


def test_falls_back_in_process_without_dask(wl, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    res = run_sweep("systolic_ws_32x32", ["compute.rows=16,32"], [wl])
    assert res.mode == "in-process" and res.computed == 2
    with pytest.raises(ConfigError, match="--scheduler needs Dask"):
        run_sweep("systolic_ws_32x32", ["compute.rows=16,32"], [wl], scheduler="tcp://127.0.0.1:1")


def test_resume_after_interruption_recomputes_nothing_stored(wl, tmp_path, monkeypatch):
    real = sweep_mod.evaluate
    calls = []

    def counting(config, net, *how, stop_after=None):
        if stop_after is not None and len(calls) >= stop_after:
            raise KeyboardInterrupt
        calls.append(config["compute"]["rows"])
        return real(config, net, *how)

    out = tmp_path / "res"
    monkeypatch.setattr(sweep_mod, "evaluate", lambda c, n, *how: counting(c, n, *how, stop_after=5))
    with pytest.raises(KeyboardInterrupt):
        run_sweep("systolic_ws_32x32", GRID, [wl], out=out, dask=False)
    assert len(calls) == 5
    assert len(read_results(out)) == 5  # every finished point was flushed
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left behind

    calls.clear()
    monkeypatch.setattr(sweep_mod, "evaluate", lambda c, n, *how: counting(c, n, *how))
    res = run_sweep("systolic_ws_32x32", GRID, [wl], out=out, dask=False)
    assert len(calls) == NPOINTS - 5 and (res.computed, res.reused) == (NPOINTS - 5, 5)
    again = run_sweep("systolic_ws_32x32", GRID, [wl], out=out, dask=False)
    assert again.computed == 0 and len(calls) == NPOINTS - 5

    fresh = run_sweep("systolic_ws_32x32", GRID, [wl], dask=False)
    assert res.rows == fresh.rows == again.rows
    stored = read_results(out)
    assert stored.num_rows == NPOINTS and set(METRICS) <= set(stored.column_names)
    assert {"key", "config_key", "workload", "compute.rows", "compute.sparsity.patterns"} <= set(stored.column_names)


def test_changed_config_or_workload_changes_the_key(wl, tmp_path):
    a = run_sweep("systolic_ws_32x32", ["compute.rows=16"], [wl], dask=False).rows[0]
    b = run_sweep("systolic_ws_32x32", ["compute.cols=16"], [wl], dask=False).rows[0]
    other = tmp_path / "other.yaml"
    other.write_text(WORKLOAD.replace("k: 128", "k: 256"))
    c = run_sweep("systolic_ws_32x32", ["compute.rows=16"], [str(other)], dask=False).rows[0]
    assert len({a["key"], b["key"], c["key"]}) == 3 and a["config_key"] == c["config_key"]


def _brute_front(xs, ys, mx, my):
    sx, sy = (-1 if mx else 1), (-1 if my else 1)
    pts = [(sx * x, sy * y) for x, y in zip(xs, ys)]
    ok = [i for i, (x, y) in enumerate(pts) if not (math.isnan(x) or math.isnan(y))]
    return {i for i in ok
            if not any(pts[j][0] <= pts[i][0] and pts[j][1] <= pts[i][1] and pts[j] != pts[i] for j in ok)}


_val = st.one_of(st.integers(0, 6).map(float), st.floats(-1e6, 1e6, allow_nan=False), st.just(math.nan))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_val, _val), max_size=40), st.booleans(), st.booleans())
def test_pareto_front_matches_brute_force(pts, mx, my):
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    front = pareto_front(xs, ys, maximize_x=mx, maximize_y=my)
    assert len(front) == len(set(front))
    assert set(front) == _brute_front(xs, ys, mx, my)
    keyx = [(-1 if mx else 1) * xs[i] for i in front]
    assert keyx == sorted(keyx)


def test_cli_sweep_then_pareto(cli, wl, tmp_path):
    out, png, png2 = tmp_path / "res", tmp_path / "sweep.png", tmp_path / "front.png"
    proc = cli("sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,32",
               "--grid", "compute.sparsity.patterns=[],[2:4]", "--workload", wl, "--no-dask",
               "--out", str(out), "--plot", str(png), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["points"], doc["computed"], doc["reused"]) == (4, 4, 0) and png.stat().st_size > 0
    proc = cli("sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,32", "--workload", wl,
               "--workers", "0", "--out", str(out))
    assert proc.returncode == 0 and "Pareto front, tiny" in proc.stdout, proc.stderr

    proc = cli("sweep", "pareto", str(out), "--x", "area", "--y", "edp", "--plot", str(png2), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    rows = read_results(out).to_pylist()
    expect = [rows[i] for i in pareto_front([r["area_mm2"] for r in rows], [r["edp"] for r in rows])]
    assert doc["x"] == "area_mm2" and doc["fronts"]["tiny"] == expect and png2.stat().st_size > 0
    assert_one_line_error(cli("sweep", "pareto", str(out), "--x", "nosuch"), "'nosuch'")
    assert_one_line_error(cli("sweep", "pareto", str(tmp_path / "missing")), "no such sweep results")


def test_store_reads_parts_with_differing_columns(tmp_path, wl):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "res"
    out.mkdir()
    pq.write_table(pa.table({"key": ["b"], "p": [64], "edp": [1.0]}), out / "part-1.parquet")
    pq.write_table(pa.table({"key": ["a", "b"], "p": ["auto", "x"], "q": [1, 2], "edp": [2, 3]}), out / "part-2.parquet")
    (out / ".part-3.parquet.tmp").write_bytes(b"half-written")  # an interrupted writer's temporary
    rows = read_results(out).to_pylist()
    assert rows == [{"key": "a", "p": "auto", "edp": 2.0, "q": 1}, {"key": "b", "p": "64", "edp": 1.0, "q": None}]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a sweep dataset directory"):
        run_sweep("systolic_ws_32x32", ["compute.rows=16"], [wl], out=tmp_path / "file", dask=False)
