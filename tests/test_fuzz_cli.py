"""Fuzz the CLI's input boundary: mutated arch configs, workload YAMLs, topology CSVs and trace files;
and (issue 25) structure depth, input size, encodings, duplicate keys, signals and a full disk.

Each example mutates a valid input (a value swapped for NaN, ±inf, a huge, negative or zero number, a
string, a list, null; a key dropped or added; the bytes truncated, overwritten or replaced by random
ones), runs the command in-process and asserts the contract of every accelsim command: exit status 0
or 2, never a traceback, exactly one stderr line on exit 2, no output or temporary file left on exit
2, and on exit 0 an output that parses as strict JSON (no NaN/inf).

CI runs a fixed (derandomized) set of ``ACCELSIM_FUZZ_EXAMPLES`` examples per input class (default 25,
about 30 s in all on 2 cores). For a longer, random search::

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


# -- issue 25: structure depth, sizes, encodings, duplicate keys, signals, a full disk ---------------

#: Documents every new class starts from: (file name, text, the command that reads it).
SIMPLE_WORKLOAD = {"workload": {"name": "w", "layers": [{"type": "gemm", "name": "g", "m": 16, "n": 8, "k": 8}]}}


def _cmd(kind: str, path: Path) -> list[str]:
    if kind == "arch":
        return ["simulate", "--arch", str(path), "--workload", str(ROOT / "tests/data/topologies/gemm_mix.csv"),
                "--format", "json"]
    if kind == "workload":
        return ["simulate", "--arch", "systolic_ws_32x32", "--workload", str(path), "--format", "json"]
    return ["compare", "--arch", "systolic_ws_32x32", "--arch", "dense_tc", "--workload", str(path), "--format", "json"]


_DOCS = {"arch": ("arch.yaml", ARCH), "workload": ("w.yaml", SIMPLE_WORKLOAD)}


@st.composite
def deepened(draw):
    """A valid document with one value wrapped in 1..3000 levels of flow lists or single-key mappings
    (written as text: PyYAML's own dumper recurses, too)."""
    import copy

    kind = draw(st.sampled_from(sorted(_DOCS)))
    doc = copy.deepcopy(_DOCS[kind][1])
    path = draw(st.sampled_from(list(_paths(doc))))
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    value = json.dumps(parent[path[-1]])
    parent[path[-1]] = "__DEEP__"
    depth = draw(st.one_of(st.integers(1, 80), st.integers(80, 3000)))
    wrap = draw(st.sampled_from(["list", "dict"]))
    inner = "[" * depth + value + "]" * depth if wrap == "list" else "{x: " * depth + value + "}" * depth
    text = yaml.safe_dump(doc, default_flow_style=draw(st.booleans()), width=10**9).replace("__DEEP__", inner)
    return kind, text.encode(), depth


@FUZZ
@given(case=deepened())
def test_fuzz_structure_depth(capsys, monkeypatch, case):
    """Any nesting depth: exit 0 or 2, never a RecursionError; past MAX_DEPTH always refused."""
    from accelsim.checks import MAX_DEPTH

    kind, data, depth = case
    name = _DOCS[kind][0]
    tmp, folder = _case(data, name)
    with tmp:
        code = _check(capsys, monkeypatch, folder, {name}, _cmd(kind, folder / name), None)
        if depth + 3 > MAX_DEPTH + 1:  # the wrapped value sits at least 2 levels below the root
            assert code == 2


@st.composite
def sized(draw):
    kind = draw(st.sampled_from(sorted(_DOCS)))
    text = _text(_DOCS[kind][1])
    return kind, text, draw(st.integers(0, 4000))


@FUZZ
@given(case=sized())
def test_fuzz_input_size_limit(capsys, monkeypatch, case):
    """A text input over the limit (set low here, at random) is refused by its size and nothing else."""
    import accelsim.checks as checks

    from accelsim.model.arch import ARCH_DIR

    kind, data, limit = case
    name = _DOCS[kind][0]
    other = (ROOT / "tests/data/topologies/gemm_mix.csv" if kind == "arch" else ARCH_DIR / "systolic_ws_32x32.yaml")
    monkeypatch.setattr(checks, "MAX_TEXT_BYTES", limit)
    tmp, folder = _case(data, name)
    with tmp:
        code, _, err = _run(capsys, monkeypatch, _cmd(kind, folder / name))
        over = max(len(data), other.stat().st_size) > limit  # the command reads both files
        assert (code, "MAX_TEXT_BYTES" in err) == ((2, True) if over else (0, False)), err


@st.composite
def encoded(draw):
    """A valid document in another encoding, with a byte-order mark, or with odd characters inserted."""
    kind = draw(st.sampled_from(sorted(_DOCS)))
    text = _text(_DOCS[kind][1]).decode()
    op = draw(st.sampled_from(["encoding", "bom", "insert"]))
    if op == "encoding":
        enc = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-8"]))
        extra = draw(st.sampled_from(["", "é", "ß", "µ"]))
        return kind, text.replace("name: ", f"name: {extra}", 1).encode(enc, errors="replace")
    if op == "bom":
        return kind, draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"])) + text.encode()
    chars = draw(st.lists(st.characters(codec="utf-8", exclude_categories=()), min_size=1, max_size=5))
    at = draw(st.integers(0, len(text)))
    return kind, (text[:at] + "".join(chars) + text[at:]).encode("utf-8", errors="surrogatepass")


@FUZZ
@given(case=encoded())
def test_fuzz_encodings(capsys, monkeypatch, case):
    kind, data = case
    name = _DOCS[kind][0]
    tmp, folder = _case(data, name)
    with tmp:
        _check(capsys, monkeypatch, folder, {name}, _cmd(kind, folder / name), None)


def _block(node, indent: int = 0) -> list[str]:
    """``node`` as block-style YAML lines, one ``key: value`` line per scalar (so a line can be repeated)."""
    pad = " " * indent
    lines = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        head = f"{pad}{k}:" if isinstance(node, dict) else f"{pad}-"
        if isinstance(v, (dict, list)) and v:
            if isinstance(node, dict):
                lines.append(head)
                lines += _block(v, indent + 2)
            else:
                sub = _block(v, indent + 2)
                lines.append(f"{pad}- {sub[0].strip()}")
                lines += sub[1:]
        else:
            lines.append(f"{head} {json.dumps(v)}")
    return lines


@st.composite
def duplicated(draw):
    """A valid document with one ``key: value`` line repeated right after itself (same mapping)."""
    kind = draw(st.sampled_from(sorted(_DOCS)))
    lines = _block(_DOCS[kind][1])
    keyed = [i for i, l in enumerate(lines) if ":" in l and not l.lstrip().startswith("-")]
    i = draw(st.sampled_from(keyed))
    indent = len(lines[i]) - len(lines[i].lstrip())
    end = i + 1  # after the key's own block, if its value is one
    while end < len(lines) and len(lines[end]) - len(lines[end].lstrip(" -")) > indent:
        end += 1
    lines.insert(end, lines[i].split(":", 1)[0] + ": " + draw(st.sampled_from(["1", "x", "null", "[]"])))
    return kind, ("\n".join(lines) + "\n").encode(), lines[i].split(":", 1)[0].strip()


@FUZZ
@given(case=duplicated())
def test_fuzz_duplicate_keys(capsys, monkeypatch, case):
    """Any key given twice in one mapping is refused, naming it; the last value never silently wins."""
    kind, data, key = case
    name = _DOCS[kind][0]
    tmp, folder = _case(data, name)
    with tmp:
        code, _, err = _run(capsys, monkeypatch, _cmd(kind, folder / name))
        assert code == 2 and f"duplicate key {key!r}" in err and err.count("\n") == 1, err


_SIGNAL_COMMANDS = {
    "simulate": ("accelsim.model.simulate", "_run_layer"),
    "sweep": ("accelsim.explore.sweep", "evaluate"),
    "kernels run": ("kernels.trace", "time_call"),
}


@FUZZ
@given(command=st.sampled_from(sorted(_SIGNAL_COMMANDS)), after=st.integers(0, 8),
       how=st.sampled_from(["SIGTERM", "Ctrl-C"]))
def test_fuzz_signals(capsys, monkeypatch, command, after, how):
    """An interrupt at any call: exit 0 (it came too late) or 130 with one line; what the line says was
    kept is exactly what the output folder holds, and no temporary file is left."""
    import importlib
    import re
    import signal as sig

    module, attr = _SIGNAL_COMMANDS[command]
    mod = importlib.import_module(module)
    real = getattr(mod, attr)
    calls = [0]

    def wrapped(*a, **k):
        calls[0] += 1
        if calls[0] > after:
            if how == "SIGTERM":
                os.kill(os.getpid(), sig.SIGTERM)
            else:
                raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(mod, attr, wrapped)
    tmp = tempfile.TemporaryDirectory(prefix="accelsim-fuzz-")
    with tmp:
        out = Path(tmp.name) / "out"
        args = {"simulate": ["simulate", "--arch", "systolic_ws_32x32", "--workload",
                             str(ROOT / "tests/data/topologies/gemm_mix.csv"), "--out", str(out) + ".json"],
                "sweep": ["sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=8,16,32,64",
                          "--workload", str(ROOT / "tests/data/topologies/gemm_mix.csv"), "--no-dask", "--out", str(out),
                          "--format", "json"],
                "kernels run": ["kernels", "run", "--suite", "gemm", "--repeats", "1", "--warmup", "0", "--backend",
                                "numpy", "--out", str(out), "--format", "json"]}[command]
        code, _, err = _run(capsys, monkeypatch, args)
        assert signal_handler_restored(sig)
        assert code in (0, 130) and "Traceback" not in err, err
        assert not [p for p in Path(tmp.name).rglob(".*")], "temporary file left"
        if code == 0:
            return
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("accelsim: interrupted"), err
        if command == "simulate":
            assert not Path(str(out) + ".json").exists()
            return
        kept = int(re.search(r"(\d+) of \d+", lines[0]).group(1))
        if command == "kernels run":
            from kernels.trace import read_traces
            assert (read_traces(out).num_rows if out.exists() else 0) == kept
        else:
            from accelsim.explore.store import read_results
            assert (read_results(out).num_rows if out.exists() else 0) == kept


def signal_handler_restored(sig) -> bool:
    """main() gives the caller's SIGTERM handler back (pytest's, here)."""
    return sig.getsignal(sig.SIGTERM) is not getattr(__import__("accelsim.cli", fromlist=["_on_term"]), "_on_term")


_DISK_COMMANDS = {
    "simulate --out json": (["simulate", "--arch", "dense_tc", "--workload", "resnet50", "--out", "OUT/r.json"], "r.json"),
    "simulate --out parquet": (["simulate", "--arch", "dense_tc", "--workload", "resnet50", "--out", "OUT/r.parquet"],
                               "r.parquet"),
    "prune --out": (["prune", "W", "--radius", "1", "--out", "OUT/p.npy"], "p.npy"),
    "compare --plot": (["compare", "--arch", "dense_tc", "--arch", "stc_2of4", "--workload",
                        str(ROOT / "tests/data/topologies/gemm_mix.csv"), "--plot", "OUT/c.png"], "c.png"),
    "kernels run --out": (["kernels", "run", "--suite", "gemm", "--repeats", "1", "--warmup", "0", "--backend", "numpy",
                           "--out", "OUT/t"], "t"),
}


@FUZZ
@given(command=st.sampled_from(sorted(_DISK_COMMANDS)), room=st.integers(0, 120_000))
def test_fuzz_full_disk(capsys, monkeypatch, command, room):
    """Room for only ``room`` bytes per file (RLIMIT_FSIZE, the injected disk-full): the output is whole
    (exit 0) or absent with one line (exit 2), with no temporary file or created folder left."""
    import resource
    import signal as sig

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (imports, caches, fonts: before the limit)
    import numpy as np

    tmp = tempfile.TemporaryDirectory(prefix="accelsim-fuzz-")
    with tmp:
        folder = Path(tmp.name)
        np.save(folder / "w.npy", np.random.default_rng(0).standard_normal((96, 96)))
        template, made = _DISK_COMMANDS[command]
        args = [a.replace("OUT", str(folder / "new")).replace("W", str(folder / "w.npy")) if a in ("W",) or
                a.startswith("OUT") else a for a in template]
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        old = sig.signal(sig.SIGXFSZ, sig.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, hard))
        try:
            code, _, err = _run(capsys, monkeypatch, args)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            sig.signal(sig.SIGXFSZ, old)
        assert code in (0, 2) and "Traceback" not in err, err
        left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
        if code == 2:
            assert err.count("\n") == 1 and "cannot write" in err, err
            assert left == ["w.npy"] or command == "kernels run --out" and all(
                p == "w.npy" or p.startswith("new") and ".tmp" not in p for p in left), left
        else:
            assert (folder / "new" / made).exists() and not [p for p in left if "/." in p or p.startswith(".")]
