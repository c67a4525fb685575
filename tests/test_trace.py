"""Trace schema, recorder and atomic writer round trip; validation of bad trace files."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from accelsim.replay import traces
from kernels.errors import InputError
from kernels.suites import run_suite
from kernels.trace import SCHEMA, SCHEMA_VERSION, Recorder, TraceError, read_traces, time_call


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("traces")
    with Recorder(out) as rec:
        run_suite("nm_spmm", "small", rec, repeats=2, warmup=1, xp=np)
    return out


def test_round_trip_schema_and_summary(trace_dir):
    files = list(trace_dir.glob("*.parquet"))
    assert len(files) == 1
    assert pq.read_schema(files[0]).metadata[b"accelsim.trace.schema_version"] == SCHEMA_VERSION.encode()
    t = read_traces(trace_dir)
    assert t.schema.equals(SCHEMA) and t.num_rows == 22  # 2 shapes x (dense + 5 patterns x 2 layouts)
    row = t.to_pylist()[0]
    assert row["backend"] == "numpy" and row["energy_j"] is None and row["repeats"] == 2
    assert json.loads(row["shapes"])["a"] == [row["m"], row["k"]]
    summary = traces.summarize(t)
    sparse = [r for r in summary if r["kernel"] == "nm_spmm"]
    assert len(sparse) == 20 and all(r["speedup_vs_dense"] > 0 for r in sparse)
    assert all(r["tflops_effectual"] > 0 and r["gbs"] > 0 for r in summary)


def test_opens_in_pandas_polars_duckdb(trace_dir):
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    f = str(next(trace_dir.glob("*.parquet")))
    assert len(pd.read_parquet(f)) == 22
    assert pl.read_parquet(f).height == 22
    assert duckdb.sql(f"select count(*) from '{trace_dir}/*.parquet'").fetchall() == [(22,)]


def test_appends_new_part_files(tmp_path):
    a = np.random.default_rng(0).standard_normal((8, 8))
    for _ in range(2):
        rec = Recorder(tmp_path)
        rec.add(kernel="gemm", dtype="float64", shapes={"a": a.shape}, timing=time_call(np.matmul, a, a, repeats=2))
        rec.flush()
    assert len(list(tmp_path.glob("*.parquet"))) == 2 and read_traces(tmp_path).num_rows == 2


def _one(path):
    f = next(path.glob("*.parquet"))
    return f, f.read_bytes()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "version", "foreign"])
def test_bad_files_raise_trace_error_naming_the_file(trace_dir, tmp_path, damage):
    _, data = _one(trace_dir)
    f = tmp_path / "bad.parquet"
    if damage == "truncate":
        f.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        f.write_bytes(b"not parquet at all" * 10)
    elif damage == "version":
        t = read_traces(trace_dir)
        pq.write_table(t.replace_schema_metadata({b"accelsim.trace.schema_version": b"999"}), f)
    else:
        pq.write_table(pa.table({"x": [1, 2]}), f)
    with pytest.raises(TraceError) as exc:
        read_traces(tmp_path)
    msg = str(exc.value)
    assert isinstance(exc.value, InputError) and "bad.parquet" in msg and "\n" not in msg


def test_missing_and_empty_paths(tmp_path):
    with pytest.raises(TraceError, match="does not exist"):
        read_traces(tmp_path / "nope")
    with pytest.raises(TraceError, match="no .parquet files"):
        read_traces(tmp_path)


def test_writer_failing_midway_leaves_no_file(tmp_path, monkeypatch):
    rec = Recorder(tmp_path)
    a = np.ones((4, 4)) + np.eye(4)
    rec.add(kernel="gemm", dtype="float64", shapes={"a": a.shape}, timing=time_call(np.matmul, a, a, repeats=1))

    def half_write(table, where, **kw):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", half_write)
    with pytest.raises(OSError):
        rec.flush()
    assert list(tmp_path.iterdir()) == []
    assert len(rec.rows) == 1  # kept, so a retry can still write them


def test_time_call_validates():
    with pytest.raises(InputError):
        time_call(np.matmul, np.ones((2, 2)), np.ones((2, 2)), repeats=0)
