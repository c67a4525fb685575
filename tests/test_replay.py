"""Replay (trace record → workload), device matching, calibration split/fit and error metrics."""

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from accelsim.model.arch import load_arch
from accelsim.replay.calibrate import Params, fit, mape, pearson_r, split, validate
from accelsim.replay.project import (
    PROJECTION_PASSES, OnThreads, Projection, ReplayError, Streaming, check_device, items_from_table, project,
    record_workload,
)
from accelsim.model.workload import Gemm, KronMatmul
from kernels.nm import NMPattern
from kernels.suites.gemm import dense_case
from kernels.suites.kron import kron_case
from kernels.suites.nm_spmm import nm_case
from kernels.suites.projection import projection_case
from kernels.suites.tasd import tasd_case
from kernels.trace import SCHEMA, Recorder, time_call

CPU = load_arch("cpu_numpy")
H100 = load_arch("h100_sxm")


def tiny_cases():
    """One tiny real NumPy case per kernel family (and both Kron algorithms)."""
    return [
        dense_case("t", 8, 16, 32, "float32", np, 0),
        nm_case("t", 8, 16, 32, "float32", "2:4", np, 0),
        tasd_case("t", 8, 16, 32, "float32", "2:4+1:4", np, 0),
        kron_case("t", 4, [(2, 3), (4, 2)], "float32", "fused", np, 0),
        kron_case("t", 4, [(2, 3), (4, 2)], "float32", "shuffle", np, 0),
        projection_case("t", "bilevel", (16, 8), "float32", np, 0),
        projection_case("t", "multilevel", (4, 4, 4), "float32", np, 0),
    ]


def record(cases=None) -> list[dict]:
    rec = Recorder()
    for case in cases or tiny_cases():
        p = case.prepare()
        rec.add(timing=time_call(p.fn, *p.args, warmup=0, repeats=1), suite=case.suite, xp=np, **p.fields)
    return rec.rows


@pytest.fixture(scope="module")
def rows():
    return record()


def by_kernel(rows, kernel, **match):
    return next(r for r in rows if r["kernel"] == kernel and all(r[k] == v for k, v in match.items()))


def test_gemm_maps_to_dense_gemm(rows):
    family, (w, pack), launches = record_workload(by_kernel(rows, "gemm"), CPU)
    assert (family, launches) == ("gemm", 1)
    assert isinstance(w, Gemm) and (w.m, w.n, w.k, w.dtype) == (8, 16, 32, "fp32")
    assert w.weight_sparsity.kind == "dense"
    # BLAS packs A (8 x 32) and B (32 x 16) and reads and writes C (8 x 16): fp32, read once and written once
    values = 8 * 32 + 32 * 16 + 8 * 16
    assert (pack.bytes_read, pack.bytes_written, pack.launches) == (4 * values, 4 * values, 0)


def test_a_gemm_of_another_backend_has_no_pack_pass(rows):
    """The pack pass is what NumPy's BLAS does around its multiply; a GPU record stays the GEMM alone."""
    family, w, launches = record_workload({**by_kernel(rows, "gemm"), "backend": "cupy"}, CPU)
    assert (family, launches) == ("gemm", 1) and isinstance(w, Gemm)


def test_the_pack_pass_is_priced_at_the_innermost_resident_level_on_top_of_the_multiply(rows):
    """Projected alone the pass takes its bytes over the read and write bandwidths of the innermost level that holds
    data across calls (cpu_numpy's L3: its L2, the innermost, is per-call scratch); the record's projection is the
    GEMM's plus that."""
    row = {**by_kernel(rows, "gemm"), "m": 96, "n": 80, "k": 72}
    _, (w, pack), _ = record_workload(row, CPU)
    l3 = next(lvl for lvl in CPU.memory if lvl.name == "l3")
    values = 96 * 72 + 72 * 80 + 96 * 80
    expect = (4 * values / l3.bandwidth + 4 * values / (l3.write_bandwidth or l3.bandwidth)) / (CPU.clock_ghz * 1e9)
    assert project(CPU, pack).memory_s == pytest.approx(expect, rel=1e-12)
    both = project(CPU, [w, pack])
    alone = project(CPU, w)
    assert both.compute_s == pytest.approx(alone.compute_s, rel=1e-12)
    assert both.memory_s == pytest.approx(alone.memory_s + expect, rel=1e-12)


def on_core(row: dict, core: str, **params) -> dict:
    """The record as ``accelsim run`` or ``calibrate`` writes it on a BLAS of ``core`` (``params.blas_core``)."""
    return {**row, "params": json.dumps({**json.loads(row["params"]), "blas_core": core, **params})}


@pytest.mark.parametrize("core, m, n, k, batch, packs", [
    ("SkylakeX", 100, 100, 100, 1, False),   # 100³ multiply-adds: OpenBLAS's small-matrix kernel, no packing
    ("SkylakeX", 8, 8, 32, 768, False),      # each product of a batch alike
    ("SapphireRapids", 64, 64, 64, 1, False),
    ("SkylakeX", 101, 100, 100, 1, True),    # one row over the bound: the blocked path packs
    ("SkylakeX", 128, 128, 64, 64, True),
    ("Zen", 8, 8, 32, 768, True),            # a core without small-matrix kernels packs every product
    ("Haswell", 100, 100, 100, 1, True),
])
def test_blas_packs_only_outside_the_small_matrix_kernels(rows, core, m, n, k, batch, packs):
    """A dense NumPy GEMM's pack pass (2 × 4 B × (m·k + k·n + m·n) per product) is priced where BLAS packs, and the
    record is the multiply alone where the small-matrix kernel takes it (at most 100³ multiply-adds on a core that
    has one), so its projection is the multiply's."""
    row = on_core({**by_kernel(rows, "gemm"), "m": m, "n": n, "k": k}, core, batch=batch)
    family, w, launches = record_workload(row, CPU)
    assert (family, launches) == ("gemm", batch)
    alone = project(CPU, Gemm("g", m, n, k, "fp32", count=batch))
    got = project(CPU, w)
    l3 = next(lvl for lvl in CPU.memory if lvl.name == "l3")
    values = batch * (m * k + k * n + m * n)
    pack = 2 * 4 * values / l3.bandwidth / (CPU.clock_ghz * 1e9) if packs else 0.0
    assert got.compute_s == pytest.approx(alone.compute_s, rel=1e-12)
    assert got.memory_s == pytest.approx(alone.memory_s + pack, rel=1e-12)
    assert isinstance(w, list) is packs


def test_a_small_cold_gemm_on_a_small_matrix_core_is_its_multiply_and_its_fetch(rows):
    """A calibration's cold case of a small product keeps its fetch; only the pack pass goes."""
    row = on_core({**by_kernel(rows, "gemm"), "m": 64, "n": 64, "k": 64}, "SkylakeX", cold_bytes=2 ** 27)
    family, parts, _ = record_workload(row, CPU)
    assert family == "cold_gemm" and [type(p) for p in parts] == [Gemm, Streaming]
    assert parts[1].name.endswith(".fetch")


def without_cpu_path(row: dict) -> dict:
    """The record as another backend or an older trace writes it: no NumPy ``cpu_path`` in its params."""
    params = json.loads(row["params"])
    params.pop("cpu_path", None)
    return {**row, "params": json.dumps(params)}


def test_nm_spmm_maps_to_transposed_gemm_with_weight_pattern(rows):
    family, w, _ = record_workload(without_cpu_path(by_kernel(rows, "nm_spmm")), CPU)
    assert family == "nm_spmm"
    # C = A·B with A (8 x 32) sparse along k is replayed as Cᵀ = Bᵀ·Aᵀ: M = n, N = m, sparse weight.
    assert (w.m, w.n, w.k) == (16, 8, 32)
    assert w.weight_sparsity.kind == "nm" and w.weight_sparsity.pattern == NMPattern(2, 4)


def test_tasd_maps_to_series_gemm_or_separate_passes(rows):
    row = without_cpu_path(by_kernel(rows, "tasd_spmm"))
    family, w, launches = record_workload(row, CPU)
    assert (family, launches) == ("tasd", 2)
    assert (w.m, w.n, w.k) == (16, 8, 32)
    assert w.weight_sparsity.kind == "tasd" and w.weight_sparsity.series == (NMPattern(2, 4), NMPattern(1, 4))
    # The H100 runs 2:4 only, so the series replays as one N:M Gemm per term (separate launches).
    _, terms, launches = record_workload(row, H100)
    assert launches == 2 and [t.weight_sparsity.pattern for t in terms] == [NMPattern(2, 4), NMPattern(1, 4)]


def test_numpy_vector_tasd_on_the_gather_path_is_its_own_blas_family(rows):
    """NumPy runs a vector-layout TASD term by term on the gather path: family ``tasd_gather``, one of the
    BLAS families (the ``gemm`` compute scale), replayed as its series like any TASD; a GPU's stays ``tasd``."""
    from accelsim.replay.project import BLAS_FAMILIES, TASD_GATHER

    row = by_kernel(rows, "tasd_spmm")
    params = {**json.loads(row["params"]), "cpu_path": "gather_gemm", "layout": "vector"}
    vec = {**row, "params": json.dumps(params), "backend": "numpy"}
    family, w, launches = record_workload(vec, CPU)
    assert family == TASD_GATHER and TASD_GATHER in BLAS_FAMILIES and launches == 2
    assert w.weight_sparsity.series == (NMPattern(2, 4), NMPattern(1, 4))
    assert record_workload({**vec, "backend": "cupy"}, CPU)[0] == "tasd"


@pytest.mark.parametrize("algorithm", ["fused", "shuffle"])
def test_a_gpu_kron_record_maps_to_kron_matmul_with_factors(rows, algorithm):
    family, w, _ = record_workload({**by_kernel(rows, f"kron_matmul_{algorithm}"), "backend": "cupy"}, CPU)
    assert family == "kron" and isinstance(w, KronMatmul)
    assert w.m == 4 and w.factors == ((2, 3), (4, 2)) and w.fused is (algorithm == "fused")


def _macs(w) -> int:
    g = w.workload if isinstance(w, OnThreads) else w
    return g.m * g.n * g.k * g.count


@pytest.mark.parametrize("algorithm, block_rows, threads", [("shuffle", None, None), ("fused", 4, 2), ("fused", 6, 1)])
def test_a_numpy_kron_record_is_priced_as_it_runs(rows, algorithm, block_rows, threads):
    """X (6 x 8) by F1 (4 x 3) ⊗ F2 (2 x 5), factor by factor, last first: widths 8 -> 20 -> 15. Shuffle: GEMMs
    24 x 5 x 2 and 30 x 3 x 4, each followed by a copy of its 120 / 90 float32 results; fused: per row 5 x 4 x 2
    and 3 x 5 x 4, one matmul call per row block and factor. Either way the multiply-adds are kron_flops / 2."""
    from kernels.kron import kron_flops

    params = {"algorithm": algorithm, "factors": [[4, 3], [2, 5]]}
    if block_rows:
        params |= {"block_rows": block_rows, "threads": threads}
    row = {**by_kernel(rows, f"kron_matmul_{algorithm}"), "m": 6, "n": 15, "k": 8, "params": json.dumps(params)}
    family, parts, launches = record_workload(row, CPU)
    assert family == "kron" and sum(map(_macs, [w for w in parts if not isinstance(w, Streaming)])) == kron_flops(
        6, [(4, 3), (2, 5)]) // 2
    gemms = [(w.workload if isinstance(w, OnThreads) else w) for w in parts if not isinstance(w, Streaming)]
    if algorithm == "shuffle":
        assert [(g.m, g.n, g.k, g.count) for g in gemms] == [(24, 5, 2, 1), (30, 3, 4, 1)]
        copies = [(w.bytes_read, w.bytes_written) for w in parts if isinstance(w, Streaming)]
        assert copies == [(120 * 4, 120 * 4), (90 * 4, 90 * 4)] and launches == 4
    else:
        assert [(g.m, g.n, g.k, g.count) for g in gemms] == [(5, 4, 2, 6), (3, 5, 4, 6)]
        assert not any(isinstance(w, Streaming) for w in parts) and launches == 2 * -(-6 // block_rows)
        several = block_rows < 6
        assert all(isinstance(w, OnThreads) and w.pooled and w.threads == min(threads, CPU.compute.units)
                   for w in parts) if several else not any(isinstance(w, OnThreads) for w in parts)


@pytest.mark.parametrize("bad", ["abc", 0, 2.5, True])
def test_a_numpy_kron_record_with_bad_block_rows_is_refused(rows, bad):
    row = by_kernel(rows, "kron_matmul_fused")
    params = {**json.loads(row["params"]), "block_rows": bad}
    with pytest.raises(ReplayError, match="kron_matmul_fused.*'block_rows' and 'threads' must be positive integers"):
        record_workload({**row, "params": json.dumps(params)}, CPU)


@pytest.mark.parametrize("kernel,shape", [("project_l1inf_bilevel", (16, 8)), ("project_multilevel", (4, 4, 4))])
def test_projection_maps_to_streaming_passes(rows, kernel, shape):
    family, w, launches = record_workload(by_kernel(rows, kernel), CPU)
    size = math.prod(shape) * 4
    reads, writes = PROJECTION_PASSES[kernel]
    assert family == "projection" and isinstance(w, Streaming)
    assert (w.bytes_read, w.bytes_written, launches) == (reads * size, writes * size, reads + writes)


def test_unknown_kernel_is_refused(rows):
    bad = {**rows[0], "kernel": "mystery_kernel"}
    with pytest.raises(ReplayError, match="mystery_kernel.*unknown"):
        record_workload(bad, CPU)


def table_of(rows, **changes):
    return pa.Table.from_pylist([{**r, **changes} for r in rows], schema=SCHEMA)


@pytest.mark.parametrize(
    "backend,device,arch,ok",
    [
        ("numpy", "AMD EPYC", CPU, True),
        ("numpy", "AMD EPYC", H100, False),             # NumPy traces need a CPU arch
        ("cupy", "NVIDIA H100 80GB HBM3", H100, True),
        ("cupy", "NVIDIA H100 80GB HBM3", CPU, False),
        ("cupy", "NVIDIA H200", H100, False),           # another GPU
        ("cupy", "NVIDIA H100 PCIe", H100, False),      # another form factor
        ("cupy", "NVIDIA A100-SXM4-80GB", H100, False),
    ],
)
def test_device_must_match_arch(rows, backend, device, arch, ok):
    table = table_of(rows, backend=backend, device_name=device)
    if ok:
        check_device(arch, table)
    else:
        with pytest.raises(ReplayError, match="arch"):
            check_device(arch, table)


def test_mape_and_pearson_against_hand_computed():
    # |110-100|/100 = 0.1, |45-50|/50 = 0.1, |30-20|/20 = 0.5 -> mean 0.2333
    assert mape([110, 45, 30], [100, 50, 20]) == pytest.approx(70 / 3)
    # x̄ = 2, ȳ = 13/3; Σdxdy = 5, Σdx² = 2, Σdy² = 114/9 -> r = 5 / sqrt(228/9)
    assert pearson_r([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(228 / 9))
    assert pearson_r([1, 2], [3, 3]) is None and pearson_r([1], [2]) is None


def test_fit_recovers_known_parameters():
    truth = Params(launch_overhead_s=2e-6, compute_scale=1 / 0.6, memory_scale=1 / 0.8)
    rows = []
    for i in range(6):
        p = Projection(compute_s=1e-4 * (i + 1), memory_s=3e-5 * (6 - i) ** 2, dynamic_j=0.0, leakage_w=0.0)
        rows.append((p, 1 + i % 3, truth.predict(p, 1 + i % 3)))
    got = fit(rows, "test")
    assert got.launch_overhead_s == pytest.approx(2e-6, rel=1e-6)
    assert got.to_dict()["compute_efficiency"] == pytest.approx(0.6, rel=1e-6)
    assert got.to_dict()["bandwidth_fraction"] == pytest.approx(0.8, rel=1e-6)


def synthetic_items(n_per_family=6):
    """Rows of six configurations in each of three families, for split and calibration tests."""
    return record([dense_case("t", 8, 8 * (i + 1), 16, "float32", np, 0) for i in range(n_per_family)]
                  + [nm_case("t", 8, 8 * (i + 1), 16, "float32", "2:4", np, 0) for i in range(n_per_family)]
                  + [projection_case("t", "bilevel", (8 * (i + 1), 8), "float32", np, 0) for i in range(n_per_family)])


@pytest.fixture(scope="module")
def many_rows():
    return synthetic_items()


def test_split_is_deterministic_stratified_and_disjoint(many_rows):
    items = items_from_table(table_of(many_rows), CPU)
    train, held = split(items, 0.5, seed=3)
    assert set(train).isdisjoint(held) and sorted(train + held) == list(range(len(items)))
    assert (train, held) == split(items, 0.5, seed=3)
    assert split(items, 0.5, seed=4) != (train, held)
    for family in {it.family for it in items}:
        assert sum(items[i].family == family for i in train) == 3
    with pytest.raises(Exception, match="between 0 and 1"):
        split(items, 1.0, 0)


def test_calibration_never_uses_held_out_records(many_rows):
    base = validate(table_of(many_rows), CPU, calibrate_on=0.5, seed=1)
    held_ids = {k["id"] for k in base["kernels"] if k["split"] == "held_out"}
    assert held_ids and set(base["calibration"]["train_ids"]).isdisjoint(held_ids)
    assert base["overall"]["n"] == len(held_ids)
    # Scale every held-out measurement: the fit (and every train prediction) must not move.
    items = items_from_table(table_of(many_rows), CPU)
    held_keys = {items[i].key for i in held_ids}
    from accelsim.replay.traces import KEY as key_cols

    changed = [
        {**r, "time_median_s": r["time_median_s"] * 10} if tuple(r[c] for c in key_cols) in held_keys else r
        for r in many_rows
    ]
    again = validate(table_of(changed), CPU, calibrate_on=0.5, seed=1)
    assert again["calibration"]["params"] == base["calibration"]["params"]
    assert again["calibration"]["global"] == base["calibration"]["global"]
    assert again["overall"]["mape_pct"] != base["overall"]["mape_pct"]


def test_projected_energy_is_dynamic_plus_leakage_over_the_projected_time(rows):
    """Each kernel's projected joules: the engine's dynamic energy plus the arch's static power over the
    projected (here uncalibrated) time; the report's first note says what was compared."""
    rep = validate(table_of(rows), CPU)
    items = items_from_table(table_of(rows), CPU)
    assert rep["notes"][0].startswith(f"compared time of {len(items)} kernel configurations")
    for k, it in zip(rep["kernels"], items):
        p = project(CPU, it.workload, it.working_set)
        assert p.leakage_w > 0
        assert k["projected_s"] == pytest.approx(p.compute_s + p.memory_s, rel=1e-12)
        assert k["projected_j"] == pytest.approx(p.dynamic_j + p.leakage_w * k["projected_s"], rel=1e-12)
        assert k["ape_pct"] == pytest.approx(abs(k["projected_s"] - k["measured_s"]) / k["measured_s"] * 100, rel=1e-12)


def test_what_was_compared_comes_before_the_device_notes(rows):
    other = [dict(r, device_name="Zeta Quux 9000 processor") for r in rows]
    notes = validate(table_of(other), CPU)["notes"]
    assert notes[0].startswith("compared time of") and "describes another CPU" in notes[1]


def test_split_refuses_fractions_outside_the_open_interval(many_rows):
    items = items_from_table(table_of(many_rows), CPU)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(Exception, match="between 0 and 1"):
            split(items, bad, 0)


def test_default_seed_is_zero(many_rows):
    rep = validate(table_of(many_rows), CPU, calibrate_on=0.5)
    assert rep["calibration"]["seed"] == 0
    assert rep["calibration"]["train_ids"] == validate(table_of(many_rows), CPU, calibrate_on=0.5, seed=0)["calibration"]["train_ids"]


def test_energy_compared_only_when_measured(rows):
    plain = validate(table_of(rows), CPU)
    assert not plain["energy_compared"] and any("energy not compared" in n for n in plain["notes"])
    measured = [dict(r, energy_j=1e-3 * (i + 1)) for i, r in enumerate(rows)]
    rep = validate(table_of(measured), CPU)
    assert rep["energy_compared"] and "energy" in rep["overall"] and "edp" in rep["overall"]
    k = rep["kernels"][0]
    assert k["measured_edp"] == pytest.approx(k["measured_j"] * k["measured_s"])
    assert k["projected_edp"] == pytest.approx(k["projected_j"] * k["projected_s"])


def test_uncalibrated_report_covers_every_family(rows):
    """NumPy's element-layout N:M and TASD records run as dense terms; written without a ``cpu_path`` (another
    backend), they replay as the arch's sparse kernels."""
    other = [without_cpu_path(r) for r in rows if r["kernel"] in ("nm_spmm", "tasd_spmm")]
    rep = validate(table_of(rows + other), CPU)
    assert {f["family"] for f in rep["families"]} == {"gemm", "nm_spmm", "tasd", "dense_terms", "kron", "projection"}
    assert all(k["projected_s"] > 0 and k["split"] == "evaluated" for k in rep["kernels"])
