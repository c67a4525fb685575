"""OpenXLA GEMM perf tables → trace records → replay, and validation on the committed H100 records."""

import json
import zipfile
from pathlib import Path

import pytest
from conftest import assert_exit_2
from conftest import run_in_process as run
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim import cli
from accelsim.model.arch import load_arch
from accelsim.replay.calibrate import split, validate
from accelsim.replay.project import items_from_table, record_workload
from accelsim.model.workload import Gemm
from kernels.trace import TraceError, read_traces
from kernels.trace.importers import (
    parse_gemm_perf_table,
    read_gemm_perf_table,
    write_xla_gemm_traces,
)

H100 = load_arch("h100_sxm")
COMMITTED = Path(__file__).resolve().parents[1] / "traces" / "nvidia-h100-sxm-xla"


def table_text(devices: dict) -> str:
    """A GemmPerfTable text proto, written the way OpenXLA lays it out, from ``{key: [(b, m, n, k, {triple: flops})]}``."""
    out = ["# proto-file: xla_data.proto", "# proto-message: xla.GemmPerfTable", ""]
    for key, entries in devices.items():
        out += ["entries {", f'  key: "{key}"', "  value {"]
        for b, m, n, k, flops in entries:
            out += ["    entries {", f"      b: {b}", f"      m: {m}", f"      n: {n}", f"      k: {k}"]
            out += [f'      flops {{ key: "{t}" value: {v} }}' for t, v in flops.items()]
            out += ["    }"]
        out += ["  }", "}"]
    return "\n".join(out) + "\n"


dims = st.sampled_from([64, 128, 256, 384, 1024])
entry = st.tuples(st.integers(1, 4), dims, dims, dims,
                  st.dictionaries(st.sampled_from(["bf16xbf16->bf16", "f32xf32->f32", "f8e4m3fnxf8e5m2->bf16"]),
                                  st.integers(10**11, 10**15), min_size=1))


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["sm_90", "sm_100_B200", "gfx942"]), st.lists(entry, min_size=1, max_size=6),
                       min_size=1))
def test_parser_returns_every_entry_as_written(devices):
    parsed = parse_gemm_perf_table(table_text(devices))
    assert set(parsed) == set(devices)
    for key, entries in devices.items():
        assert [(e["b"], e["m"], e["n"], e["k"], e["flops"]) for e in parsed[key]] == entries


def test_records_carry_time_bytes_and_batch(tmp_path):
    text = table_text({"sm_90": [(2, 256, 512, 1024, {"bf16xbf16->bf16": 4 * 10**14, "f32xf32->f32": 10**14,
                                                        "f8e4m3fnxf8e5m2->bf16": 9 * 10**14})],
                       "sm_80": [(1, 64, 64, 64, {"bf16xbf16->bf16": 10**12})]})
    _, n = write_xla_gemm_traces(text, "sm_90", "NVIDIA H100 SXM (sm_90)", tmp_path, "test table")
    assert n == 2  # the mixed-type fp8 triple is skipped
    rows = {r["dtype"]: r for r in read_traces(tmp_path).to_pylist()}
    flops = 2 * 2 * 256 * 512 * 1024
    bf, tf = rows["bfloat16"], rows["tfloat32"]
    assert bf["time_median_s"] == pytest.approx(flops / 4e14, rel=1e-12)
    assert tf["time_median_s"] == pytest.approx(flops / 1e14, rel=1e-12)
    assert bf["bytes_min"] == 2 * (256 * 1024 + 1024 * 512 + 256 * 512) * 2
    assert tf["bytes_min"] == 2 * (256 * 1024 + 1024 * 512 + 256 * 512) * 4
    assert (bf["backend"], bf["compute_capability"], bf["m"], bf["n"], bf["k"]) == ("xla", "9.0", 256, 512, 1024)
    assert json.loads(bf["params"])["batch"] == 2
    family, w, launches = record_workload(bf, H100)
    assert (family, launches) == ("gemm", 1)
    assert isinstance(w, Gemm) and (w.m, w.n, w.k, w.count, w.dtype) == (256, 512, 1024, 2, "bf16")
    assert record_workload(tf, H100)[1].dtype == "tf32"
    only, n = write_xla_gemm_traces(text, "sm_90", "x", tmp_path / "one", "t", {"f32xf32->f32"})
    assert n == 1 and read_traces(only).column("dtype").to_pylist() == ["tfloat32"]
    with pytest.raises(TraceError, match="sm_80, sm_90"):
        write_xla_gemm_traces(text, "sm_70", "x", tmp_path / "none", "t")
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())


def test_table_is_found_in_a_shared_library_and_in_a_wheel(tmp_path):
    text = table_text({"sm_90": [(1, 128, 128, 128, {"bf16xbf16->bf16": 10**13})]})
    blob = b"\x7fELF\x02\x01" + b"\x00" * 64 + b"other\x00" + text.encode() + b"\x00tail\x00"
    so = tmp_path / "plugin.so"
    so.write_bytes(blob)
    whl = tmp_path / "plugin.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("pkg/__init__.py", "")
        z.writestr("pkg/plugin.so", blob)
    txt = tmp_path / "table.txtpb"
    txt.write_text(text)
    assert read_gemm_perf_table(so) == read_gemm_perf_table(whl) == read_gemm_perf_table(txt) == text
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("pkg/x.so", b"\x7fELF nothing here")
    with pytest.raises(TraceError, match="no shared library"):
        read_gemm_perf_table(empty)


def test_calibration_groups_are_family_and_dtype(tmp_path):
    entries = [(b, m, n, k, {"bf16xbf16->bf16": int(3e14 * (1 + (m + n) / 8192)), "f32xf32->f32": int(1e14)})
               for b in (1, 2) for m in (256, 1024) for n in (256, 2048) for k in (512, 4096)]
    write_xla_gemm_traces(table_text({"sm_90": entries}), "sm_90", "NVIDIA H100 SXM (sm_90)", tmp_path, "t")
    table = read_traces(tmp_path)
    items = items_from_table(table, H100)
    assert {it.group for it in items} == {"gemm bfloat16", "gemm tfloat32"}
    train, held = split(items, 0.5, seed=0)
    for g in ("gemm bfloat16", "gemm tfloat32"):
        assert sum(items[i].group == g for i in train) == 8 and sum(items[i].group == g for i in held) == 8
    rep = validate(table, H100, calibrate_on=0.5, seed=0)
    assert set(rep["calibration"]["params"]) == {"gemm bfloat16", "gemm tfloat32"}
    assert {g["family"] for g in rep["groups"]} == {"gemm bfloat16", "gemm tfloat32"}
    assert [f["family"] for f in rep["families"]] == ["gemm"] and rep["families"][0]["n"] == 16


def test_cli_import_then_validate_and_refusals(capsys, monkeypatch, tmp_path):
    src = tmp_path / "t.txtpb"
    src.write_text(table_text({"sm_90": [(1, 256 * i, 512, 1024, {"bf16xbf16->bf16": 10**14 * i}) for i in (1, 2, 3)]}))
    out = tmp_path / "tr"
    code, stdout, _ = run(capsys, monkeypatch, "traces", "import-xla", str(src), "--device", "sm_90",
                          "--device-name", "NVIDIA H100 SXM (sm_90)", "--out", str(out))
    assert code in (0, None) and "wrote 3 records" in stdout
    code, stdout, _ = run(capsys, monkeypatch, "validate", "--traces", str(out), "--arch", "h100_sxm", "--format", "json")
    assert code in (0, None) and json.loads(stdout)["overall"]["n"] == 3
    for args, needle in [(["validate", "--traces", str(out), "--arch", "tensor_core"], "H100"),
                         (["traces", "import-xla", str(tmp_path / "nope"), "--device", "sm_90", "--device-name", "x",
                           "--out", str(tmp_path / "o2")], "does not exist"),
                         (["traces", "import-xla", str(src), "--device", "sm_80", "--device-name", "x",
                           "--out", str(tmp_path / "o3")], "sm_80")]:
        assert_exit_2(run(capsys, monkeypatch, *args), needle)
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_committed_h100_records_validate_within_goal_on_bf16():
    """The OpenXLA-measured H100 GEMMs, held out: bf16 within the issue's goal (MAPE ≤ 10 %, r ≥ 0.98)."""
    table = read_traces(COMMITTED)
    assert table.num_rows == 750 and set(table.column("dtype").to_pylist()) == {"bfloat16", "tfloat32"}
    for seed in (0, 1):
        rep = validate(table, H100, calibrate_on=0.5, seed=seed)
        bf16 = next(g for g in rep["groups"] if g["family"] == "gemm bfloat16")
        assert bf16["n"] == 187 and bf16["mape_pct"] <= 10.0 and bf16["pearson_r"] >= 0.98, bf16
        assert rep["overall"]["pearson_r"] >= 0.98


def test_measured_peaks_stay_below_the_datasheet():
    """A sanity check on the imported data: no record beats the H100's dense tensor-core peak."""
    rows = read_traces(COMMITTED).to_pylist()
    peak = {"bfloat16": 989.4e12, "tfloat32": 494.7e12}
    assert all(r["flops_dense"] / r["time_median_s"] < peak[r["dtype"]] for r in rows)
