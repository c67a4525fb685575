"""`accelsim validate` end to end in-process: reports, plot, and one-line exit-2 errors on bad input."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_exit_2
from conftest import run_in_process as run

from accelsim import cli
from accelsim.cli import validate_cmd
from kernels.suites.gemm import dense_case
from kernels.suites.kron import kron_case
from kernels.suites.nm_spmm import nm_case
from kernels.suites.projection import projection_case
from kernels.suites.tasd import tasd_case
from kernels.trace import SCHEMA, Recorder, time_call



@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("traces")
    cases = [dense_case("t", 8, 8 * i, 16, "float32", np, 0) for i in (1, 2, 3)]
    cases += [nm_case("t", 8, 8 * i, 16, "float32", p, np, 0) for i in (1, 2) for p in ("2:4", "1:4")]
    cases += [nm_case("t", 32, 8 * i, 16, "float32", "1:4", np, 0, "vector") for i in (1, 2)]  # the gather path
    cases += [tasd_case("t", 8, 8 * i, 16, "float32", "2:4+1:4", np, 0) for i in (1, 2, 3)]
    cases += [kron_case("t", 4, [(2, 2)] * n, "float32", a, np, 0) for n in (2, 3) for a in ("fused", "shuffle")]
    cases += [projection_case("t", "bilevel", (8 * i, 8), "float32", np, 0) for i in (1, 2, 3)]
    with Recorder(out) as rec:
        for case in cases:
            p = case.prepare()
            rec.add(timing=time_call(p.fn, *p.args, warmup=1, repeats=3), suite=case.suite, xp=np, **p.fields)
    return out


def test_json_report_with_calibration_and_plot(capsys, monkeypatch, trace_dir, tmp_path):
    png = tmp_path / "v.png"
    code, out, err = run(capsys, monkeypatch, "validate", "--traces", str(trace_dir), "--arch", "cpu_numpy",
                         "--calibrate-on", "0.5", "--seed", "2", "--plot", str(png), "--format", "json")
    assert code == 0, err
    rep = json.loads(out)
    # element-layout N:M and TASD run as decompress_blas on NumPy (the dense_terms family), vector N:M on the gather
    # path (nm_gather)
    assert {f["family"] for f in rep["families"]} == {"gemm", "nm_gather", "dense_terms", "kron", "projection"}
    assert rep["calibration"]["held_out"] == rep["overall"]["n"] > 0
    assert not rep["energy_compared"] and any("energy not compared" in n for n in rep["notes"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_table_report(capsys, monkeypatch, trace_dir):
    code, out, err = run(capsys, monkeypatch, "validate", "--traces", str(trace_dir), "--arch", "cpu_numpy")
    assert code == 0, err
    assert "mape_pct" in out and "uncalibrated" in out and "energy not compared" in out


def test_unknown_schema_version_exits_2(capsys, monkeypatch, trace_dir, tmp_path):
    table = pq.read_table(next(trace_dir.glob("*.parquet")))
    pq.write_table(table.replace_schema_metadata({b"accelsim.trace.schema_version": b"99"}), tmp_path / "old.parquet")
    assert_exit_2(run(capsys, monkeypatch, "validate", "--traces", str(tmp_path), "--arch", "cpu_numpy"),
                  "schema version '99'")


def test_unknown_kernel_exits_2(capsys, monkeypatch, trace_dir, tmp_path):
    rows = pq.read_table(next(trace_dir.glob("*.parquet"))).to_pylist()
    pq.write_table(pa.Table.from_pylist([{**rows[0], "kernel": "mystery_kernel"}], schema=SCHEMA), tmp_path / "x.parquet")
    assert_exit_2(run(capsys, monkeypatch, "validate", "--traces", str(tmp_path), "--arch", "cpu_numpy"),
                  "mystery_kernel")


def test_arch_of_another_device_exits_2(capsys, monkeypatch, trace_dir):
    assert_exit_2(run(capsys, monkeypatch, "validate", "--traces", str(trace_dir), "--arch", "h100_sxm"),
                  "h100_sxm", "arch")


@pytest.mark.parametrize("args,needle", [
    (["--calibrate-on", "1.5"], "--calibrate-on"),
    (["--arch", "no_such_arch"], "no_such_arch"),
])
def test_bad_options_exit_2(capsys, monkeypatch, trace_dir, args, needle):
    base = ["validate", "--traces", str(trace_dir), "--arch", "cpu_numpy"]
    assert_exit_2(run(capsys, monkeypatch, *base, *args), needle)
