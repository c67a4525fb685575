"""Row labels, `traces compare`'s unmatched list and per-device roofs, on small tables built here."""

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import accelsim.cli as cli
import accelsim.cli.traces_cmd  # noqa: F401  (registers `traces`)
from accelsim.replay import traces
from accelsim.replay.labels import row_label, workload_key
from kernels.trace import SCHEMA


def row(kernel="gemm", dtype="float32", m=64, n=128, k=256, pattern=None, series=None, params=None, shapes=None,
        device="AMD EPYC", backend="numpy", time=1e-3, flops=None, nbytes=None):
    """One trace row of :data:`SCHEMA` with everything a label or a roof reads; the rest null or a fixed value."""
    return {
        "run_id": "t", "timestamp": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "suite": "test", "kernel": kernel,
        "backend": backend, "device_name": device, "dtype": dtype, "m": m, "n": n, "k": k,
        "shapes": json.dumps(shapes or {"a": [m, k], "b": [k, n]}), "pattern": pattern, "tasd_series": series,
        "params": json.dumps(params or {}), "flops_dense": flops, "flops_effectual": flops, "bytes_min": nbytes,
        "time_median_s": time, "time_min_s": time, "time_max_s": time, "repeats": 3, "warmup": 1,
    }


def table(rows):
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def test_label_names_each_field():
    nm = row("nm_spmm", "float16", 128, 256, 512, pattern="2:4", params={"layout": "vector", "impl": "nm_vector_numpy"})
    assert row_label(nm) == "nm_spmm float16 m×n×k=128×256×512 pattern=2:4 layout=vector impl=nm_vector_numpy"
    tasd = row("tasd_spmm", series="2:8+1:8", params={"layout": "element", "backend_impl": "cuda"})
    assert row_label(tasd) == "tasd_spmm float32 m×n×k=64×128×256 series=2:8+1:8 layout=element impl=cuda"
    kron = row("kron_matmul_fused", m=64, n=4096, k=4096, params={"factors": [[16, 16]] * 3, "impl": "kron_fused_numpy"})
    assert row_label(kron) == "kron_matmul_fused float32 m×n×k=64×4096×4096 factors=(16×16)^⊗3 impl=kron_fused_numpy"
    mixed = row("kron_matmul_shuffle", params={"factors": [[8, 4], [16, 32]]})
    assert row_label(mixed) == "kron_matmul_shuffle float32 m×n×k=64×128×256 factors=8×4⊗16×32"
    xla = row("gemm", "bfloat16", 256, 256, 256, params={"batch": 4}, backend="xla")
    assert row_label(xla) == "gemm bfloat16 m×n×k=256×256×256 batch=4"
    proj = row("project_l1inf_bilevel", m=None, n=None, k=None, shapes={"y": [1000, 2000]}, params={"axis": 0})
    assert row_label(proj) == "project_l1inf_bilevel float32 y=1000×2000"
    assert workload_key(nm) == "nm_spmm float16 m×n×k=128×256×512 pattern=2:4 layout=vector"


@pytest.mark.parametrize("field, a, b", [
    ("layout", {"params": {"layout": "element"}}, {"params": {"layout": "vector"}}),
    ("series", {"series": "2:4+1:4"}, {"series": "4:8+2:8"}),
    ("factors", {"params": {"factors": [[64, 64], [64, 64]]}}, {"params": {"factors": [[16, 16]] * 3}}),
])
def test_rows_differing_in_one_field_get_different_labels(field, a, b):
    la, lb = row_label(row(**a)), row_label(row(**b))
    assert la != lb and f"{field}=" in la and f"{field}=" in lb


def test_summarize_labels_every_row_distinctly_and_projections_without_none():
    rows = [row("nm_spmm", pattern="2:4", params={"layout": lay}) for lay in ("element", "vector")]
    rows.append(row("project_multilevel", m=None, n=None, k=None, shapes={"y": [16, 64, 64]}))
    configs = [r["config"] for r in traces.summarize(table(rows))]
    assert sorted(configs) == ["nm_spmm float32 m×n×k=64×128×256 pattern=2:4 layout=element",
                               "nm_spmm float32 m×n×k=64×128×256 pattern=2:4 layout=vector",
                               "project_multilevel float32 y=16×64×64"]


def _pair():
    a = [row("gemm", params={"impl": "matmul"}, time=2e-3),
         row("nm_spmm", pattern="2:4", params={"backend_impl": "gather", "metadata": "uint8 per value"}),
         row("kron_matmul_fused", params={"factors": [[8, 8], [16, 16]]})]
    b = [row("gemm", params={"impl": "matmul"}, device="NVIDIA H200", backend="cupy", time=5e-4),
         row("nm_spmm", pattern="2:4", params={"layout": "element", "impl": "nm_element_numpy",
                                                "metadata": "uint8 per value"}),
         row("tasd_spmm", series="2:4+1:4")]
    return table(a), table(b)


def test_compare_matches_across_devices_and_says_why_the_rest_did_not():
    res = traces.compare(*_pair())
    assert [(r["config"], r["device_a"], r["device_b"]) for r in res["rows"]] == [
        ("gemm float32 m×n×k=64×128×256", "AMD EPYC", "NVIDIA H200")]
    assert res["rows"][0]["speedup"] == pytest.approx(4.0)
    why = {(u["side"], u["config"].split()[0]): u["reason"] for u in res["unmatched"]}
    assert set(why) == {("a", "nm_spmm"), ("a", "kron_matmul_fused"), ("b", "nm_spmm"), ("b", "tasd_spmm")}
    assert why[("a", "kron_matmul_fused")] == "B has no kron_matmul_fused rows"
    assert why[("b", "tasd_spmm")] == "A has no tasd_spmm rows"
    nm = why[("a", "nm_spmm")]
    assert "layout: absent here, element in B" in nm
    assert "params keys only here: backend_impl" in nm and "only in B: impl, layout" in nm


def test_compare_cli_lists_the_unmatched(tmp_path):
    ta, tb = _pair()
    for name, t in (("a", ta), ("b", tb)):
        (tmp_path / name).mkdir()
        pq.write_table(t, tmp_path / name / "part.parquet")
    res = CliRunner().invoke(cli.app, ["traces", "compare", str(tmp_path / "a"), str(tmp_path / "b")],
                             catch_exceptions=False, standalone_mode=False)
    out = " ".join(res.output.split())
    assert "1 configurations matched; 2 of A and 2 of B unmatched" in out
    assert "not matched" in out and "A has no tasd_spmm rows" in out


def _gemm(device, backend, time, size=4096):
    return row("gemm", m=size, n=size, k=size, device=device, backend=backend, time=time,
               flops=2 * size**3, nbytes=3 * size * size * 4)


def test_roofline_one_roof_per_device_and_a_note_above_it(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    flops, nbytes = 2 * 4096**3, 3 * 4096 * 4096 * 4
    res = traces.roofline(table([_gemm("AMD EPYC", "numpy", 0.5), _gemm("NVIDIA H200", "cupy", 3e-3)]))
    by_device = {p["device"]: p for p in res["points"]}
    # CPU: 2 cores x 2.5 GHz x 32 FLOP/cycle = 0.16 TFLOP/s, 20 GB/s; H200 fp32 datasheet 67 TFLOP/s, 4800 GB/s.
    intensity = flops / nbytes
    cpu_roof = min(0.16, intensity * 20 / 1e3)
    gpu_roof = min(67.0, intensity * 4800 / 1e3)
    assert by_device["AMD EPYC"]["fraction_of_roof"] == pytest.approx(flops / 0.5 / 1e12 / cpu_roof)
    assert by_device["NVIDIA H200"]["fraction_of_roof"] == pytest.approx(flops / 3e-3 / 1e12 / gpu_roof)
    assert len(res["roofs"]) == 2
    assert by_device["AMD EPYC"]["fraction_of_roof"] > 1 > by_device["NVIDIA H200"]["fraction_of_roof"]
    assert len(res["notes"]) == 1 and "AMD EPYC" in res["notes"][0] and "too low" in res["notes"][0]


def test_roofline_user_peaks_fit_one_device_only():
    from kernels.errors import InputError

    with pytest.raises(InputError, match="2 devices"):
        traces.roofline(table([_gemm("AMD EPYC", "numpy", 0.5), _gemm("NVIDIA H200", "cupy", 3e-3)]), 1.0, 10.0)


def test_roofline_of_the_committed_folders_judges_each_device_by_its_own_roof():
    from pathlib import Path

    res = traces.roofline(traces.load(Path(__file__).resolve().parents[1] / "traces"))
    roofs = {r["roof"]: r for r in res["roofs"]}
    assert {r["device"] for r in roofs.values()} == {"AMD EPYC", "Intel(R) Xeon(R) Processor", "NVIDIA H200",
                                                       "NVIDIA H100 SXM (sm_90)"}  # the Xeon's: loops-xeon-2vcpu/
    for p in res["points"]:
        roof = roofs[p["roof"]]
        assert roof["device"] == p["device"] and roof["backend"] == p["backend"]
        assert p["roof_tflops"] == pytest.approx(min(roof["peak_tflops"], p["intensity"] * roof["peak_gbs"] / 1e3))
    # datasheet peaks, dense: H200 fp32 CUDA cores 67, fp16 989 TFLOP/s at 4800 GB/s; H100 SXM TF32 494.7 at 3350 GB/s
    peaks = {(r["device"], r["peak_source"].split()[-1]): (r["peak_tflops"], r["peak_gbs"]) for r in roofs.values()}
    assert peaks[("NVIDIA H200", "float32")] == (67.0, 4800.0) and peaks[("NVIDIA H200", "float16")] == (989.0, 4800.0)
    assert peaks[("NVIDIA H100 SXM (sm_90)", "tfloat32")] == (494.7, 3350.0)


def test_roofline_cli_marks_and_explains_a_point_above_its_roof(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    (tmp_path / "t").mkdir()
    pq.write_table(table([_gemm("AMD EPYC", "numpy", 0.5), _gemm("NVIDIA H200", "cupy", 3e-3)]), tmp_path / "t" / "p.parquet")
    res = CliRunner().invoke(cli.app, ["traces", "roofline", str(tmp_path / "t")], catch_exceptions=False,
                             standalone_mode=False)
    out = " ".join(res.output.split())
    assert "1.718 *" in out  # 2·4096³ FLOP in 0.5 s = 0.275 TFLOP/s over the 0.16 TFLOP/s CPU estimate
    assert "* 1 point(s) lie above the roof AMD EPYC (numpy)" in out and "peak is too low for this device" in out
    assert "fraction_of_roof = achieved effectual TFLOP/s" in out
