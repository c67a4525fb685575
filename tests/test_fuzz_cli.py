"""Fuzz the CLI's input boundary: mutated arch configs, workload YAMLs, topology CSVs and trace files.

Each example mutates a valid input (a value swapped for NaN, ±inf, a huge, negative or zero number, a
string, a list, null; a key dropped or added; the bytes truncated, overwritten or replaced by random
ones), runs the command in-process and asserts the contract of every accelsim command: exit status 0
or 2, never a traceback, exactly one stderr line on exit 2, no output or temporary file left on exit
2, and on exit 0 an output that parses as strict JSON (no NaN/inf).

CI runs a fixed (derandomized) set of ``ACCELSIM_FUZZ_EXAMPLES`` examples per input class (default 25,
about a minute in all on 2 cores). For a longer, random search::

    ACCELSIM_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_cli.py -p no:cacheprovider

(setting the variable also turns derandomization off, so each run explores new inputs; failures are
shrunk and printed by hypothesis as the minimal mutated file).
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import tempfile
import traceback
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT

_ENV = os.environ.get("ACCELSIM_FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(_ENV or 25), deadline=None, derandomize=_ENV is None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

ARCH = {
    "version": 1, "name": "tiny", "clock_ghz": 1.0,
    "compute": {"kind": "systolic", "rows": 8, "cols": 8, "dataflow": "ws",
                "sparsity": {"patterns": ["2:4"], "operands": ["weight"]}},
    "memory": [{"name": "dram", "bandwidth": 16, "read_pj_per_byte": 20.0, "write_pj_per_byte": 20.0},
               {"name": "sram", "capacity_bytes": 65536, "bandwidth": 64, "read_pj_per_byte": 1.0}],
    "energy": {"mac_pj": {"int8": 0.2}, "leakage_pj_per_cycle": 0.5, "metadata_decode_pj": 0.01},
}
WORKLOAD = {"workload": {"name": "mix", "layers": [
    {"type": "gemm", "name": "g", "m": 64, "n": 48, "k": 32, "weight_sparsity": "2:4"},
    {"type": "conv", "name": "c", "ifmap_h": 10, "ifmap_w": 10, "filt_h": 3, "filt_w": 3, "channels": 4,
     "num_filters": 8, "stride_h": 2, "stride_w": 2},
    {"type": "kron", "name": "k", "m": 16, "factors": [[4, 4], [4, 4]], "fused": True},
], "edges": [["g", "c"], ["g", "k"]]}}
CSV = (ROOT / "tests" / "data" / "topologies" / "conv_mix.csv").read_text()
TRACE = next((ROOT / "traces" / "cpu-amd-epyc-2vcpu").glob("*.parquet"))

#: Values no field should accept silently: every one is refused or is a valid value of its field.
NASTY = st.sampled_from([
    math.nan, math.inf, -math.inf, 1e308, -1e308, 10**12, 10**24, 2**63, -1, -3.5, 0, 0.0, 1e-300,
    True, False, None, "", "abc", "2:4", "\x00", [], [1, 2, 3], {}, {"a": 1},
])


def _paths(node, prefix=()):
    """Every path into a nested dict/list (the root excluded)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


@st.composite
def mutated_doc(draw, doc: dict):
    """``doc`` with 1-3 edits: a value replaced, a key or item dropped, or an unknown key added."""
    import copy

    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        op = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add"]))
        value = copy.deepcopy(draw(NASTY))  # a fresh copy: later edits must not change NASTY itself
        if op == "replace":
            parent[path[-1]] = value
        elif op == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "1", "name "]))] = value
        else:
            parent.append(value)
    return doc


@st.composite
def mutated_bytes(draw, data: bytes):
    """``data`` truncated, with bytes overwritten, or replaced by random bytes."""
    op = draw(st.sampled_from(["truncate", "overwrite", "random"]))
    if op == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if op == "random":
        return draw(st.binary(min_size=0, max_size=512))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(buf) - 1))
        buf[i] = draw(st.integers(0, 255))
    return bytes(buf)


def _text(doc) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()


def _yaml_input(doc: dict):
    return st.one_of(mutated_doc(doc).map(_text), mutated_bytes(_text(doc)))


@st.composite
def mutated_csv(draw) -> bytes:
    rows = [line.split(",") for line in CSV.splitlines()]
    if draw(st.booleans()):
        return draw(mutated_bytes(CSV.encode()))
    for _ in range(draw(st.integers(1, 3))):
        r = draw(st.integers(0, len(rows) - 1))
        c = draw(st.integers(0, len(rows[r]) - 1))
        rows[r][c] = draw(st.sampled_from(["inf", "-inf", "nan", "1e400", "-1", "0", "abc", "", "3.5", "2:4",
                                           "1" + "0" * 30, '"', "\t"]))
    return "\n".join(",".join(r) for r in rows).encode()


@st.composite
def mutated_trace(draw) -> bytes:
    """A trace part file: a cell of one row set to a nasty value (the column retyped if needed), or the
    file's bytes damaged."""
    data = TRACE.read_bytes()
    if draw(st.integers(0, 3)) == 0:
        return draw(mutated_bytes(data))
    table = pq.read_table(io.BytesIO(data))
    for _ in range(draw(st.integers(1, 2))):
        col = draw(st.sampled_from(table.column_names))
        row = draw(st.integers(0, table.num_rows - 1))
        value = draw(st.one_of(NASTY, st.sampled_from(["{}", "[]", '{"factors": 3}', '{"batch": -1}', "128"])))
        values = table.column(col).to_pylist()
        values[row] = value
        try:
            arr = pa.array(values, type=table.schema.field(col).type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            arr = pa.array([None if v is None else json.dumps(v, default=str) for v in values])
        table = table.set_column(table.schema.get_field_index(col), pa.field(col, arr.type), arr)
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(pq.read_schema(io.BytesIO(data)).metadata), buf)
    return buf.getvalue()


def _run(capsys, monkeypatch, args: list[str]) -> tuple:
    """``accelsim ARGS`` in-process: (exit status, stdout, stderr); an escaping exception is a failure."""
    from accelsim import cli

    monkeypatch.setattr(sys, "argv", ["accelsim", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    except BaseException:  # noqa: BLE001  (the point: nothing may escape main)
        out = capsys.readouterr()
        pytest.fail(f"accelsim {' '.join(args)} raised:\n{traceback.format_exc()}\nstderr: {out.err}")
    out = capsys.readouterr()
    return code, out.out, out.err


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"JSON output holds {name}")

    return json.loads(text, parse_constant=refuse)


def _check(capsys, monkeypatch, folder: Path, inputs: set[str], args: list[str], out: Path | None) -> int:
    code, stdout, stderr = _run(capsys, monkeypatch, args)
    assert code in (0, 2), (code, stderr[-2000:])
    assert "Traceback" not in stderr, stderr
    if code == 2:
        assert len([l for l in stderr.splitlines() if l.strip()]) == 1, stderr
        assert stderr.startswith("accelsim: error: "), stderr
        assert {p.name for p in folder.iterdir()} == inputs, "output or temporary file left after exit 2"
    else:
        if "--format" in args:
            _strict_json(stdout)
        if out is not None:
            assert out.exists()
        assert not [p for p in folder.rglob(".*")], "temporary file left"
    return code


def _case(data: bytes, name: str):
    """A fresh folder holding the input ``name`` with ``data``."""
    tmp = tempfile.TemporaryDirectory(prefix="accelsim-fuzz-")
    folder = Path(tmp.name)
    (folder / name).write_bytes(data)
    return tmp, folder


@FUZZ
@given(data=_yaml_input(ARCH))
def test_fuzz_arch_config(capsys, monkeypatch, data):
    tmp, folder = _case(data, "arch.yaml")
    with tmp:
        out = folder / "r.json"
        _check(capsys, monkeypatch, folder, {"arch.yaml"},
               ["simulate", "--arch", str(folder / "arch.yaml"), "--workload", str(ROOT / "tests/data/topologies/gemm_mix.csv"),
                "--format", "json", "--out", str(out)], out)


@FUZZ
@given(data=_yaml_input(WORKLOAD))
def test_fuzz_workload_yaml(capsys, monkeypatch, data):
    tmp, folder = _case(data, "w.yaml")
    with tmp:
        out = folder / "r.parquet"
        _check(capsys, monkeypatch, folder, {"w.yaml"},
               ["simulate", "--arch", "systolic_ws_32x32", "--workload", str(folder / "w.yaml"), "--out", str(out),
                "--format", "json"], out)


@FUZZ
@given(data=mutated_csv())
def test_fuzz_topology_csv(capsys, monkeypatch, data):
    tmp, folder = _case(data, "topo.csv")
    with tmp:
        _check(capsys, monkeypatch, folder, {"topo.csv"},
               ["compare", "--arch", "systolic_ws_32x32", "--arch", "systolic_os_32x32", "--workload",
                str(folder / "topo.csv"), "--format", "json"], None)


@FUZZ
@given(data=mutated_trace())
def test_fuzz_trace_file(capsys, monkeypatch, data):
    tmp, folder = _case(b"", "traces")
    with tmp:
        (folder / "traces").unlink()
        (folder / "traces").mkdir()
        (folder / "traces" / "part-0.parquet").write_bytes(data)
        _check(capsys, monkeypatch, folder, {"traces"},
               ["validate", "--traces", str(folder / "traces"), "--arch", "cpu_numpy", "--calibrate-on", "0.5",
                "--format", "json"], None)
        _check(capsys, monkeypatch, folder, {"traces"}, ["traces", "summarize", str(folder / "traces"), "--format",
                                                          "json"], None)
