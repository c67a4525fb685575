"""Replay of what a CPU run executes: the NumPy passes of a run-time compression, decompress_blas, their fit, and
the threads OpenBLAS gives each GEMM.

The byte counts are checked against listings written here, one entry per NumPy call, read off
``kernels.nm.format`` / ``kernels.tasd`` / ``kernels.nm.cpu`` for tiny shapes (not produced by the
code under test); the calibration of the run-time family against ``scipy.optimize.lsq_linear``.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import lsq_linear

from accelsim.codesign.operands import Operands
from accelsim.codesign.plan import LayerPlan
from accelsim.codesign.runplan import layer_step
from accelsim.model.arch import load_arch
from accelsim.model.workload import Gemm
from accelsim.replay.calibrate import fit_groups
from accelsim.replay.numpy_passes import compress_traffic, decompose_traffic, scatter_traffic
from accelsim.replay.project import (
    BATCHED, COLD, DENSE_TERMS, GATHER, RUNTIME, OnThreads, Projection, ReplayError, Streaming, blas_threads_used,
    executed, project, record_workload, resident_level,
)
from kernels.trace import Recorder, time_call

F = 4  # float32 bytes
CPU = load_arch(Path(__file__).parent / "data" / "cpu_two_units.yaml")  # fixed numbers: 2 units, 16 fp32 MACs each


def per_byte(held: float) -> float:
    """Seconds a byte of a pass takes on cpu_two_units when its 32 MiB L3 holds ``held`` of the pass: that share at
    the L3's copy rate (16.2 B/cycle), the rest at DRAM's (8.76), at 2.596 GHz."""
    return (held / 16.2 + (1 - held) / 8.76) / 2.596e9


def total(ops):
    """(bytes read, bytes written, calls, bytes indexed, bytes grouped) of a listing of (read, written) per streaming
    NumPy call, ``ix(...)`` per fancy-index call and ``grp(...)`` per rank step call."""
    return (sum(o[0] for o in ops), sum(o[1] for o in ops), len(ops), sum(o[2] for o in ops if len(o) > 2),
            sum(o[3] for o in ops if len(o) > 3))


def ix(elems, item=F):
    """A fancy-index call on `elems` values: int64 position, value read, value written, apart from the streams."""
    return (0, 0, elems * (8 + 2 * item))


def grp(groups):
    """The five calls of one rank step over ``groups`` groups (>, ==, &, |, +=), counted as a step over as many groups
    of four float32 scores: per group the 4 scores read twice and its broadcast member twice (40 B), a one-byte
    mask written by each of the five calls, one read by the & and two by each of the last two (5 + 5 = 10 B per
    score, 40 B per group): 80 B."""
    return [(0, 0, 0, 80 * groups)] + [(0, 0)] * 4


def rank_ops(e, g, n, m, item):
    """_top_positions on e scores of `item` bytes in g groups of m: rank zeros; per position a rank step;
    then rank < n and nonzero (two scans, two int64 arrays of the g*n kept positions)."""
    return [(0, e)] + grp(g) * m + [(e, e), (2 * e, 2 * 8 * g * n)]


def compress_ops(rows, k, n, m):
    """nm_compress(a, n, m, axis=1) of a float32 rows x k array (k a multiple of m), element layout."""
    e, g = rows * k, rows * k // m
    kept = g * n
    return ([(e * F, e), (e, 0), (e * F, e * F)]          # isnan, .any(), abs
            + rank_ops(e, g, n, m, F)
            + [ix(kept),                                   # take_along_axis(g, idx)
               (8 * kept, kept)])                          # idx.astype(uint8)


def residual_ops(rows, k, n, m):
    """residual - nm_decompress(term): zeros, int64 base, per kept slot base + idx and the assignment, subtract."""
    e, g = rows * k, rows * k // m
    return [(0, e * F), (0, 8 * g)] + [(8 * g + g, 8 * g), ix(g)] * n + [(2 * e * F, e * F)]


def test_nm_compress_element_2of4_of_2x8():
    # 16 values in 4 groups, 8 kept: 28 calls.
    assert compress_traffic(2, 8, 2, 4, F) == total(compress_ops(2, 8, 2, 4))
    # the gather of 8 kept values: 8 x 16 B indexed; 4 rank steps over 4 groups: 16 x 80 B grouped
    assert total(compress_ops(2, 8, 2, 4)) == (256, 248, 28, 128, 1280)


def test_tasd_decompose_2of4_plus_1of4_of_2x8():
    ops = ([(2 * 8 * F, 16), (16, 0)]  # isfinite, .all()
           + compress_ops(2, 8, 2, 4) + residual_ops(2, 8, 2, 4) + compress_ops(2, 8, 1, 4))
    assert decompose_traffic(2, 8, [(2, 4), (1, 4)], F) == total(ops)
    assert total(ops) == (760, 668, 65, 320, 2560)  # indexed: 8 + 4 gathered, 2 x 4 scattered, x 16 B


def test_nm_compress_vector_layout_of_one_32_row_vector():
    """32 rows x 8 (one vector): float64 squared norms summed row by row, the rank on the 8 norms, the
    per-vector positions repeated to every row, then the gather."""
    e, kept, v = 256, 128, 8
    vg, vkept = 2, 4
    ops = ([(e * F, e), (e, 0), (e * F, 8 * e)]            # isnan, .any(), astype(float64)
           + [(2 * 8 * v, 8 * v)] + [(2 * 8 * v, 8 * v), (2 * 8 * v, 8 * v)] * 31   # acc = v0*v0; v_r*v_r, acc +
           + rank_ops(v, vg, 2, 4, 8)
           + [(8 * vkept, 8 * kept),                       # repeat to 32 rows
              ix(kept),                                    # take_along_axis
              (8 * vkept, vkept)])                         # astype(uint8) of the vector positions
    assert compress_traffic(32, 8, 2, 4, F, "vector") == total(ops)


def test_padded_reduction_axis_adds_the_concatenate():
    """k = 6 with M = 4: isnan and .any() on the 12 values, zeros for the 2 x 2 padding and the concatenate to
    2 x 8; from the magnitudes on, the 2 x 8 listing."""
    ops = [(12 * F, 12), (12, 0), (0, 2 * 2 * F), (12 * F + 2 * 2 * F, 16 * F)] + compress_ops(2, 8, 2, 4)[2:]
    assert compress_traffic(2, 6, 2, 4, F) == total(ops)


def test_decompress_blas_term_besides_its_gemm():
    # 2 x 8 at 2:4 times 8 x 3: zero fill, base, per slot add + assign; the second term adds out += (2 x 3)
    g = 4
    first = [(0, 16 * F), (0, 8 * g)] + [(8 * g + g, 8 * g), ix(g)] * 2
    assert scatter_traffic(2, 8, 3, 2, 4, F) == total(first)
    assert scatter_traffic(2, 8, 3, 2, 4, F, first=False) == total(first + [(2 * 6 * F, 6 * F)])
    # float16 operands are cast to float32 first: the kept values and B
    half = [(8 * 2, 8 * F), (8 * 3 * 2, 8 * 3 * F), (0, 16 * F), (0, 8 * g)] + [(8 * g + g, 8 * g), ix(g)] * 2
    assert scatter_traffic(2, 8, 3, 2, 4, 2) == total(half)


def plan_row(lp: LayerPlan, mt: int, n: int, k: int, seed: int = 3) -> dict:
    """The trace row `accelsim run` writes for a layer ``y = x @ w.T`` (x ``mt × k``, w ``n × k``) under ``lp``,
    built by the run's own step."""
    rng = np.random.default_rng(seed)
    step = layer_step(0, types.SimpleNamespace(name="l"), lp, Operands(
        x=rng.standard_normal((mt, k), dtype=np.float32), w=rng.standard_normal((n, k), dtype=np.float32)), np, "float32")
    rec = Recorder()
    rec.add(timing=time_call(step.fn, warmup=0, repeats=1), suite="network", xp=np, **{**step.fields, "dtype": "float32"})
    return rec.rows[0]


def runtime_row(kernel="tasd", spec="2:4+1:4", mt=8, n=12, k=16):
    """The row of an operand: input layer."""
    lp = LayerPlan("l", kernel=kernel, operand="input", **({"series": spec} if kernel == "tasd" else {"pattern": spec}))
    return plan_row(lp, mt, n, k)


def test_runtime_tasd_row_is_its_compression_then_a_dense_gemm_per_term():
    row = runtime_row()
    params = json.loads(row["params"])
    assert params["runtime_compress"] and params["compress_layout"] == "element" and params["cpu_path"] == "decompress_blas"
    family, parts, launches = record_workload(row, CPU)
    assert family == RUNTIME
    assert [type(p) for p in parts] == [Streaming, Streaming, Gemm, Streaming, Streaming, Gemm, Streaming]
    comp = parts[0]
    ref = total([(8 * 16 * F, 128), (128, 0)] + compress_ops(8, 16, 2, 4) + residual_ops(8, 16, 2, 4)
                + compress_ops(8, 16, 1, 4))
    assert (comp.bytes_read, comp.bytes_written, comp.launches, comp.bytes_indexed, comp.bytes_grouped) == ref
    for g in (parts[2], parts[5]):  # dense: the NumPy path multiplies the decompressed term whole
        assert (g.m, g.n, g.k) == (8, 12, 16) and g.weight_sparsity.kind == "dense"
    for pack in (parts[3], parts[6]):  # BLAS packs the decompressed 8 x 16 term and the 16 x 12 B, writes 8 x 12
        assert (pack.bytes_read, pack.bytes_written, pack.launches) == (F * (8 * 16 + 16 * 12 + 8 * 12),) * 2 + (0,)
    assert launches == 2 + sum(p.launches for p in parts if isinstance(p, Streaming))


def test_decompress_blas_row_is_dense_terms():
    """An element-layout N:M layer with its weight compressed ahead (no run-time compression): the scatter and a
    dense GEMM, in the family whose GEMMs are BLAS's."""
    row = plan_row(LayerPlan("l", kernel="nm", operand="weight", pattern="2:4"), 8, 12, 16, seed=4)
    assert json.loads(row["params"])["cpu_path"] == "decompress_blas"
    family, parts, launches = record_workload(row, CPU)
    assert family == DENSE_TERMS and [type(p) for p in parts] == [Streaming, Gemm, Streaming]
    sc = parts[0]
    assert (sc.bytes_read, sc.bytes_written, sc.launches, sc.bytes_indexed, sc.bytes_grouped) == scatter_traffic(
        12, 16, 8, 2, 4, F)
    assert (parts[1].m, parts[1].n, parts[1].k) == (12, 8, 16) and launches == 1 + sc.launches


def test_gather_row_is_its_row_gathers_then_one_small_gemm_per_vector():
    """A 1:8 vector-layout weight (64 rows: 2 vectors of 32; k = 16: 2 groups, depth 2) times an 8-column B: per
    vector one np.take of 2 rows of B (an int64 index each), then a 32 x 8 x 2 GEMM; one panel, one thread."""
    row = plan_row(LayerPlan("l", kernel="nm", operand="weight", pattern="1:8", layout="vector"), 8, 64, 16, seed=6)
    params = json.loads(row["params"])
    assert params["cpu_path"] == "gather_gemm" and params["gather"]["panels"] == 1
    family, parts, launches = record_workload(row, CPU)
    assert family == GATHER and [type(p) for p in parts] == [Streaming, OnThreads]
    takes = [(2 * 8 + 2 * 8 * F, 2 * 8 * F)] * 2  # per vector: 2 indices + 2 rows of 8 read, 2 rows written
    g = parts[0]
    assert (g.bytes_read, g.bytes_written, g.launches, g.bytes_indexed, g.bytes_grouped) == total(takes)
    small = parts[1]
    assert small.threads == 1 and (small.workload.m, small.workload.n, small.workload.k, small.workload.count) == (32, 8, 2, 2)
    assert launches == 2 + g.launches
    # a record whose cut is damaged is refused with one line naming it
    for bad in ({**params["gather"], "vectors": 0}, {k: v for k, v in params["gather"].items() if k != "width"}):
        with pytest.raises(ReplayError, match="'gather' counts"):
            record_workload({**row, "params": json.dumps({**params, "gather": bad})}, CPU)


def test_tasd_gather_row_is_each_terms_gathers_then_one_add():
    """A 2:8+1:8 vector-layout weight (64 rows: 2 vectors; k = 16: 2 groups) times an 8-column B runs as one
    nm_spmm per term, accumulated in place: term 0 gathers 2 x 2 = 4 rows of B per vector, term 1 2 rows, each then
    a 32 x 8 x depth GEMM per vector; term 1's result is added to the output (64 x 8 float32: read twice, written)."""
    row = plan_row(LayerPlan("l", kernel="tasd", operand="weight", series="2:8+1:8", layout="vector"), 8, 64, 16, seed=7)
    params = json.loads(row["params"])
    assert params["cpu_path"] == "gather_gemm" and [g["depth"] for g in params["gathers"]] == [4, 2]
    family, parts, launches = record_workload(row, CPU)
    assert family == GATHER
    assert [type(p) for p in parts] == [Streaming, OnThreads, Streaming, OnThreads, Streaming]
    for part, depth in ((parts[0], 4), (parts[2], 2)):
        takes = [(depth * 8 + depth * 8 * F, depth * 8 * F)] * 2
        assert (part.bytes_read, part.bytes_written, part.launches, part.bytes_indexed) == total(takes)[:4]
    assert [(p.workload.m, p.workload.n, p.workload.k, p.workload.count) for p in (parts[1], parts[3])] == [
        (32, 8, 4, 2), (32, 8, 2, 2)]
    add = parts[4]
    assert (add.bytes_read, add.bytes_written, add.launches) == (2 * 64 * 8 * F, 64 * 8 * F, 1)
    assert launches == 2 + 2 + sum(p.launches for p in parts if isinstance(p, Streaming))


def test_runtime_nm_row_compresses_once():
    family, parts, _ = record_workload(runtime_row("nm", "2:4"), CPU)
    assert family == RUNTIME and [type(p) for p in parts] == [Streaming, Streaming, Gemm, Streaming]
    p = parts[0]
    assert (p.bytes_read, p.bytes_written, p.launches, p.bytes_indexed, p.bytes_grouped) == total(compress_ops(8, 16, 2, 4))


def _with_indexed(arch, per_cycle, grouped=None):
    doc = arch.model_dump(mode="python")
    for lvl in doc["memory"]:
        lvl["indexed_bandwidth"] = per_cycle
        lvl["grouped_bandwidth"] = grouped
    return load_arch(doc)


@pytest.mark.parametrize(("indexed", "grouped"), [(None, None), (1.5, None), (1.5, 0.7)])
def test_parts_project_to_their_sum(indexed, grouped):
    """A pass streams its reads and writes at the level's bandwidth, its gathers and scatters at the level's
    indexed bandwidth and its rank steps at its grouped bandwidth (the copy bandwidth where the arch gives none)."""
    arch = _with_indexed(CPU, indexed, grouped)
    _, parts, _ = record_workload(runtime_row(), arch)
    whole = project(arch, parts, 4096)
    comp = parts[0]
    lvl = CPU.memory[resident_level(CPU, comp.working_set)]
    assert comp.bytes_indexed > 0 and comp.bytes_grouped > 0 and lvl.write_bandwidth is None
    bw = lvl.bandwidth
    by_hand = (comp.bytes_read + comp.bytes_written + comp.bytes_indexed * bw / (indexed or bw)
               + comp.bytes_grouped * bw / (grouped or bw)) / (bw * CPU.clock_ghz * 1e9)
    assert project(arch, comp).memory_s == pytest.approx(by_hand, rel=1e-12)
    each = [project(arch, p, 4096) for p in parts]
    assert whole.compute_s == pytest.approx(sum(p.compute_s for p in each), rel=1e-12)
    assert whole.memory_s == pytest.approx(sum(p.memory_s for p in each), rel=1e-12)
    assert whole.compute_s > 0 and whole.memory_s > by_hand


@pytest.mark.parametrize("family", [RUNTIME, DENSE_TERMS, GATHER, BATCHED])
def test_blas_family_takes_gemm_compute_and_fits_its_bandwidth(family):
    """GEMMs at compute scale 1.25 (efficiency 0.8); run-time (or decompress_blas) layers whose GEMMs run alike
    and whose passes reach 1/20 of the copy bandwidth. The family's group keeps the gemm group's compute scale
    and fits its memory scale alone, as lsq_linear does with the compute scale held."""
    rng = np.random.default_rng(5)
    items, projections = [], []
    for i in range(12):
        fam = "gemm" if i < 6 else family
        c = float(10 ** rng.uniform(-4, -2))
        mem = c * (0.01 if fam == "gemm" else float(rng.uniform(0.1, 0.5)))
        truth_mem = 1.0 if fam == "gemm" else 20.0
        y = (1e-6 + 1.25 * c + truth_mem * mem) * float(np.exp(rng.normal(0, 0.03)))
        items.append(types.SimpleNamespace(family=fam, group=f"{fam} float32", launches=1, threaded_calls=0, measured_s=y))
        projections.append(Projection(c, mem, 0.0, 0.0))
    glob, fams, groups = fit_groups(items, projections, list(range(12)))
    gemm, rt = groups["gemm float32"], groups[f"{family} float32"]
    assert rt.compute_scale == gemm.compute_scale
    sel = [i for i in range(12) if items[i].family == family]
    y = np.array([items[i].measured_s for i in sel])
    c = np.array([projections[i].compute_s for i in sel])
    mem = np.array([projections[i].memory_s for i in sel])
    # the gather path's group prices launches at the overhead its family fitted (OWN_CALL_COST); the rest globally
    assert (rt.launch_overhead_s == fams[family].launch_overhead_s) if family == GATHER else (
        rt.launch_overhead_s == glob.launch_overhead_s)
    b = 1 - (rt.launch_overhead_s + gemm.compute_scale * c) / y
    ref = lsq_linear((mem / y)[:, None], b, bounds=(1.0, np.inf), method="bvls", tol=1e-15).x[0]
    assert rt.memory_scale == pytest.approx(ref, rel=1e-9)
    assert rt.memory_scale == pytest.approx(20.0, rel=0.1)
    assert all(p.compute_scale >= 1 and p.memory_scale >= 1 for p in (glob, *fams.values(), *groups.values()))


@pytest.mark.parametrize("mnk,threads,used", [
    (32 ** 3, 2, 1), (80 ** 3, 2, 1),           # under 2 x 262144 MACs: one thread (measured: same time on 1 and 2)
    (2 * 262144, 2, 2), (128 ** 3, 2, 2), (512 * 384 * 384, 2, 2), (512 * 384 * 384, 1, 1),
    (3 * 262144, 8, 3), (10 * 262144, 8, 8),    # one thread per 262144 MACs, at most all of them
])
def test_openblas_threads_per_gemm(mnk, threads, used):
    assert blas_threads_used(mnk, threads) == used
    assert blas_threads_used(mnk, threads, "Zen") == used  # a core without OpenBLAS's small-matrix kernels


@pytest.mark.parametrize("mnk,threads,used", [
    (2 * 262144, 2, 1), (128 * 128 * 32, 2, 1), (100 ** 3, 2, 1), (100 ** 3, 8, 1),  # small-matrix kernel, one thread
    (100 ** 3 + 1, 2, 2), (128 * 128 * 64, 2, 2), (10 * 262144, 8, 8),                # over 100^3: threaded as before
])
@pytest.mark.parametrize("core", ["SkylakeX", "Cooperlake", "SapphireRapids"])
def test_openblas_small_matrices_run_on_one_thread_on_avx512_cores(mnk, threads, used, core):
    assert blas_threads_used(mnk, threads, core) == used


def test_attention_at_128_tokens_on_a_skylakex_core_makes_no_threaded_call():
    """MiniLM's 768 products of 128x32 by 32x128 (524288 MACs each) recorded on a SkylakeX core: one thread each and
    no threaded call, where a record without the core (older traces) keeps two threads and 768 threaded calls."""
    from accelsim.replay.numpy_run import threaded_calls

    row = gemm_row(128, 128, 32, batch=768)
    params = json.loads(row["params"])
    skx = {**row, "params": json.dumps({**params, "blas_core": "SkylakeX"})}
    _, parts, _ = record_workload(skx, CPU)
    assert isinstance(parts[0], OnThreads) and parts[0].threads == 1 and parts[0].workload.count == 768
    assert threaded_calls(skx, parts, CPU) == 0
    _, parts, _ = record_workload(row, CPU)
    assert isinstance(parts[0], Gemm) and threaded_calls(row, parts, CPU) == 768


def gemm_row(m, n, k, batch=1, blas_threads=2):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((batch, m, k), dtype=np.float32)
    b = rng.standard_normal((batch, k, n), dtype=np.float32)
    rec = Recorder()
    params = {"batch": batch} | ({} if blas_threads is None else {"blas_threads": blas_threads})
    rec.add(timing=time_call(lambda: a @ b, warmup=0, repeats=1), suite="network", xp=np, kernel="gemm", dtype="float32",
            m=m, n=n, k=k, shapes={"a": a.shape, "b": b.shape}, flops_dense=2 * batch * m * n * k,
            bytes_min=4 * batch * (m * k + k * n + m * n), params=params)
    return rec.rows[0]


def test_small_batched_gemm_runs_on_one_thread():
    """Attention's 768 products of 8x32 by 32x8: NumPy multiplies them one by one, each far below OpenBLAS's
    threading threshold, so the replay runs them on one of the arch's two units; a big GEMM keeps both;
    a record without its BLAS thread count (older traces) is replayed as before."""
    _, (w, _), _ = record_workload(gemm_row(8, 8, 32, batch=768), CPU)
    assert isinstance(w, OnThreads) and w.threads == 1 and (w.workload.m, w.workload.count) == (8, 768)
    _, (w, _), _ = record_workload(gemm_row(512, 384, 384), CPU)
    assert isinstance(w, Gemm)
    _, (w, _), _ = record_workload(gemm_row(8, 8, 32, batch=768, blas_threads=None), CPU)
    assert isinstance(w, Gemm)


def test_batch_beyond_the_last_cache_adds_its_dram_fetch():
    """768 products of 128x32 by 32x128 (75.5 MB, beyond cpu_two_units' 32 MiB L3): the GEMMs as before, plus every
    operand read and every product written once, added to the time: the 32 MiB share the L3 holds at its copy
    rate (16.2 B/cycle at 2.596 GHz), the rest at DRAM's (8.76); 48 of them (4.7 MB) stay in L3 and a CuPy record
    overlaps its loads: both as before."""
    row = gemm_row(128, 128, 32, batch=768)
    family, parts, launches = record_workload(row, CPU)
    # a BLAS call a matrix; the GEMMs, their fetch, their pack passes
    assert family == BATCHED and launches == 768 and [type(p) for p in parts] == [Gemm, Streaming, Streaming]
    fetch = parts[1]
    assert (fetch.bytes_read, fetch.bytes_written, fetch.bytes_indexed) == (F * 768 * 2 * 128 * 32, F * 768 * 128 * 128, 0)
    ws = row["bytes_min"]
    alone = project(CPU, [parts[0], parts[2]], ws)  # the GEMMs and their pack passes
    both = project(CPU, parts, ws)
    assert both.compute_s == alone.compute_s
    moved, held = F * 768 * (2 * 128 * 32 + 128 * 128), 2**25 / ws
    assert ws == moved
    assert both.memory_s - alone.memory_s == pytest.approx(moved * per_byte(held), rel=1e-12)
    family, (w, _), _ = record_workload(gemm_row(128, 128, 32, batch=48), CPU)
    assert family == "gemm" and isinstance(w, Gemm) and w.count == 48
    family, w, _ = record_workload({**row, "backend": "cupy"}, CPU)
    assert family == "gemm" and isinstance(w, Gemm) and w.count == 768


@pytest.mark.parametrize("gather_scale", [None, 3.0, "absent"])
@pytest.mark.parametrize("cold_scale", [None, 2.5])
def test_cold_fetch_of_a_layer_runs_at_the_cold_gemms_fraction_a_gather_layers_at_its_own(cold_scale, gather_scale):
    """A NumPy layer in a pass beyond the caches adds the read of its inputs (at DRAM's copy rate but for the share
    of the pass the L3 holds, at the L3's) over the memory scale fitted on the calibration's cold GEMMs (1 without
    them); a gather-path layer's read is over its own group's memory scale (3 here), and over the cold GEMMs' where
    its group fitted none or the calibration has no gather group, never the global fit's (1.9 here). Measured: the
    plan's 1:8 vector FFN layers of bert_base came out 5-21 % fast at the cold GEMMs' fraction while the dense FFNs
    of the same shapes came out -2..+8 %."""
    import pyarrow as pa
    from accelsim.replay.calibrate import Params
    from accelsim.replay.network import simulator_predictor
    from accelsim.replay.project import items_from_table

    rows = [plan_row(LayerPlan("l", kernel="nm", operand="weight", pattern="1:4", layout="vector"), 8, 64, 16),
            gemm_row(64, 64, 64)]
    items = {it.family: it for it in items_from_table(pa.Table.from_pylist(rows), CPU)}
    assert set(items) == {GATHER, "gemm"}
    scale = {"gemm": 1.7} if gather_scale == "absent" else {GATHER: gather_scale, "gemm": 1.7}
    if cold_scale:
        scale[COLD] = cold_scale
    groups = {f"{f} float32": Params(0.0, 1.0, s) for f, s in scale.items()}
    cal = {"global": Params(0.0, 1.0, 1.9), "families": {}, "groups": groups}
    per_gb = per_byte(2**25 / 10**9)  # a 1 GB pass: cpu_two_units' 32 MiB L3 holds 3.4 % of it
    for fam, it in items.items():
        warm, _ = simulator_predictor(CPU, cal)(it, 0)
        cold, _ = simulator_predictor(CPU, cal)(it, 10**9)
        own = gather_scale if fam == GATHER and gather_scale != "absent" else None
        per = own or cold_scale or 1.0
        shapes = json.loads(it.row["shapes"])
        # the inputs: a and b of the dense GEMM; the gather layer's compressed weight and b (bytes_min less c)
        inputs = 4 * (np.prod(shapes["a"]) + np.prod(shapes["b"])) if fam == "gemm" else it.row["bytes_min"] - 4 * (
            np.prod(shapes["c"]))
        # a dense layer that fetches takes the cold GEMMs' fit whole: its warm memory time at their scale too
        rescaled = (cold_scale - 1.7) * project(CPU, it.workload, it.working_set).memory_s \
            if fam == "gemm" and cold_scale else 0.0
        assert cold - warm == pytest.approx(per * inputs * per_gb + rescaled, rel=1e-9)


def test_a_pass_gemm_beyond_the_caches_adds_its_fetch():
    """A dense GEMM whose own operands outgrow cpu_two_units' 32 MiB L3 (B is 48 MiB) is projected from DRAM with its
    reads behind its tiles; in a pass it also waits for B and A (under one block) as a cold GEMM of the calibration
    does, since BLAS packs B before it multiplies: the read from where the pass leaves them, the L3's share at its
    16.2 B/cycle and the rest at DRAM's 8.76, over the cold GEMMs' memory scale (2.5). Alone (footprint 0) it stays
    warm, and a batched GEMM beyond the caches, whose DRAM fetch its own family prices, adds nothing."""
    import pyarrow as pa
    from accelsim.replay.calibrate import Params
    from accelsim.replay.network import simulator_predictor
    from accelsim.replay.project import items_from_table

    m, n, k = 32, 12288, 1024
    rows = [gemm_row(m, n, k), gemm_row(128, 128, 32, batch=768)]
    items = {it.family: it for it in items_from_table(pa.Table.from_pylist(rows), CPU)}
    assert set(items) == {"gemm", BATCHED}
    big, batched = items["gemm"], items[BATCHED]
    groups = {f"{f} float32": Params(0.0, 1.0, s) for f, s in (("gemm", 1.7), (BATCHED, 3.0), (COLD, 2.5))}
    predict = simulator_predictor(CPU, {"global": Params(), "families": {}, "groups": groups})
    warm, _ = predict(big, 0)
    own = project(CPU, big.workload, big.working_set)
    for footprint in (big.working_set, 10**9):
        cold, _ = predict(big, footprint)
        fetch = 2.5 * F * (m * k + k * n) * per_byte(2**25 / footprint)
        assert cold - warm == pytest.approx(fetch + (2.5 - 1.7) * own.memory_s, rel=1e-9)
    assert predict(batched, 10**9)[0] == predict(batched, 0)[0]


@pytest.mark.parametrize("shape", [(128, 768, 768), (8, 1536, 384), (300, 200, 700)])
@pytest.mark.parametrize("footprint", [10**8, 10**9])
def test_a_run_layer_that_fetches_is_priced_as_the_calibrations_cold_case_of_its_shape(shape, footprint):
    """A dense GEMM layer whose pass evicts its operands is what the calibration's cold case of its shape times
    (its operands turned over ``cold_bytes`` apart): both are projected alike, to the second and joule, whatever the
    cold GEMMs' group fitted (overheads, scales, all unlike the ``gemm`` group's). Left warm (footprint 0) the layer
    takes the ``gemm`` group's fit."""
    import pyarrow as pa
    from accelsim.replay.calibrate import Params
    from accelsim.replay.network import simulator_predictor
    from accelsim.replay.project import items_from_table

    row = gemm_row(*shape)
    params = json.loads(row["params"])
    case = {**row, "params": json.dumps({**params, "cold_bytes": footprint})}
    layer, cold_case = items_from_table(pa.Table.from_pylist([row]), CPU)[0], \
        items_from_table(pa.Table.from_pylist([case]), CPU)[0]
    assert (layer.family, cold_case.family) == ("gemm", COLD)
    groups = {"gemm float32": Params(2e-7, 1.1, 1.7, threaded_call_s=3e-6),
              f"{COLD} float32": Params(5e-7, 1.3, 2.5, threaded_call_s=4e-6)}
    predict = simulator_predictor(CPU, {"global": Params(), "families": {}, "groups": groups})
    assert predict(layer, footprint) == pytest.approx(predict(cold_case, 0), rel=1e-12)
    p = project(CPU, layer.workload, layer.working_set)
    assert predict(layer, 0)[0] == pytest.approx(groups["gemm float32"].predict(p, 1, layer.threaded_calls),
                                                 rel=1e-12)


def test_the_report_calls_plain_and_cold_numpy_gemms_dense():
    """Their pack pass (and a cold one's fetch) make them lists of parts, as a sparse layer run as passes is; the
    validate report still says what the arch ran: a dense GEMM, and for the cold one where its operands came from."""
    row = gemm_row(64, 48, 32)
    cold = {**row, "params": json.dumps({**json.loads(row["params"]), "cold_bytes": 10**9})}
    for r, want in ((row, "dense"), (cold, "dense, operands read cold")):
        family, w, _ = record_workload(r, CPU)
        assert executed(CPU, types.SimpleNamespace(family=family, workload=w, row=r)) == want


def test_a_gemm_timed_cold_adds_the_read_of_its_operands():
    """A record with ``params.cold_bytes`` (a calibration's cold GEMM): family COLD, the GEMM plus a read of its
    inputs ``a`` (m × k) and ``b`` (k × n) from where the stream left them: after 1 GB, 3.4 % (cpu_two_units'
    32 MiB L3) at the L3's 16.2 B/cycle and the rest at DRAM's 8.76; after 1 MiB, all from the L3 (the replay
    never leaves operands in the innermost level)."""
    row = gemm_row(64, 48, 32)
    warm_family, (gemm, pack), _ = record_workload(row, CPU)
    read = 4 * (64 * 32 + 32 * 48)
    for streamed, held in ((10**9, 2**25 / 10**9), (2**20, 1.0)):
        cold = {**row, "params": json.dumps({**json.loads(row["params"]), "cold_bytes": streamed})}
        family, w, launches = record_workload(cold, CPU)
        assert (warm_family, family, launches) == ("gemm", COLD, 1)
        assert w[0] == gemm and w[2] == pack
        assert (w[1].bytes_read, w[1].bytes_written, w[1].working_set) == (read, 0, streamed)
        ws = 4 * (64 * 32 + 32 * 48 + 64 * 48)
        extra = project(CPU, w, ws).memory_s - project(CPU, [gemm, pack], ws).memory_s
        assert extra == pytest.approx(read * per_byte(held), rel=1e-12)
    bad = {**row, "params": json.dumps({"cold_bytes": -5})}
    with pytest.raises(ReplayError, match="cold_bytes"):
        record_workload(bad, CPU)


@pytest.mark.parametrize(("m", "n", "k", "batch"), [(64, 48, 32, 1), (8192, 384, 384, 1), (1024, 256, 1024, 3)])
def test_a_cold_gemm_waits_for_b_and_its_first_block_of_a(m, n, k, batch):
    """cpu_two_units: a 2 MiB L2 over 2 units, so A is read cold up to 512 KiB (half of one unit's 1 MiB) per
    matrix; B whole. Small GEMMs read all of their inputs cold."""
    row = gemm_row(m, n, k)
    row = {**row, "bytes_min": batch * 4 * (m * k + k * n + m * n),
           "params": json.dumps({**json.loads(row["params"]), "cold_bytes": 10**9, "batch": batch})}
    a, b = 4 * m * k, 4 * k * n
    _, w, _ = record_workload(row, CPU)
    assert w[1].bytes_read == batch * (b + min(a, 2**19))
    assert (w[1].bytes_read < batch * (a + b)) == (a > 2**19)


def test_one_thread_computes_at_one_units_rate():
    # cpu_two_units: 16 fp32 MACs per cycle per unit; 64^3 divides its 16 x 4 x 8 tiles, so on one unit 768 of
    # them take 768 * 64^3 / 16 cycles, twice what the two units take
    g = Gemm("g", 64, 64, 64, "fp32", count=768)
    one = project(CPU, OnThreads(g, 1))
    assert one.compute_s * CPU.clock_ghz * 1e9 == pytest.approx(768 * 64 ** 3 / 16, rel=1e-12)
    assert one.compute_s == pytest.approx(2 * project(CPU, g).compute_s, rel=1e-12)


def test_rank_step_bytes_are_its_arrays_bytes():
    """The microbenchmark's count of one rank step equals the bytes of the arrays its five NumPy calls read and
    write, taken from the arrays themselves (but the ``j < pos`` of four values)."""
    from kernels.trace.microbench import grouped_bytes

    score = np.abs(np.random.default_rng(5).standard_normal((48, 4)).astype(np.float32))
    sj, pos, rank = score[:, 1:2], np.arange(4), np.zeros(score.shape, np.int8)
    gt, eq = sj > score, sj == score
    low = eq & (1 < pos)
    either = gt | low
    moved = ((score.nbytes + sj.nbytes + gt.nbytes) + (score.nbytes + sj.nbytes + eq.nbytes)
             + (eq.nbytes + low.nbytes)
             + (gt.nbytes + low.nbytes + either.nbytes) + (rank.nbytes + either.nbytes + rank.nbytes))
    assert grouped_bytes(score.size) == moved


def test_runtime_compression_streams_from_the_level_its_live_set_needs():
    """A 2:4+1:4 decomposition keeps the operand, its magnitudes, the residual (float32 each), the int8 rank and four
    one-byte temporaries live: 17 B per value. Up to the 32 MiB L3 it streams from there; beyond, the share of its
    live set the L3 holds from there and the rest from DRAM, its rank steps at each level's grouped rate."""
    arch = _with_indexed(CPU, 1.5, 2.0)
    doc = arch.model_dump(mode="python")
    doc["memory"][0]["grouped_bandwidth"] = 1.0  # DRAM's rank steps at half the caches' rate
    arch = load_arch(doc)
    dram, l3 = arch.memory[0], arch.memory[1]
    per_value = {}
    for m in (2**16, 2**19):  # 16 values per row: 17.8 MB and 142.6 MB live
        _, parts, _ = record_workload({**runtime_row(), "m": m}, arch)
        comp = parts[0]
        assert comp.working_set == m * 16 * 17
        held = min(1.0, l3.capacity_bytes / comp.working_set)
        assert (held == 1.0) == (m == 2**16)

        def cycles(lvl):
            return ((comp.bytes_read + comp.bytes_written) / lvl.bandwidth
                    + comp.bytes_indexed / lvl.indexed_bandwidth + comp.bytes_grouped / lvl.grouped_bandwidth)

        by_hand = (held * cycles(l3) + (1 - held) * cycles(dram)) / (arch.clock_ghz * 1e9)
        assert project(arch, comp).memory_s == pytest.approx(by_hand, rel=1e-12)
        # two terms, each four rank steps over m * 4 groups, counted 80 B per group and step
        assert comp.bytes_grouped == 2 * 4 * m * 4 * 80
        per_value[m] = comp.bytes_grouped * (held / l3.grouped_bandwidth + (1 - held) / dram.grouped_bandwidth) / (m * 16)
    held = 2**25 / (2**19 * 16 * 17)
    assert per_value[2**19] == pytest.approx((held + 2 * (1 - held)) * per_value[2**16])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2**31), st.integers(1, 2**24), st.integers(0, 2**24))
def test_a_pass_beyond_a_cache_keeps_its_share_of_it(working_set, read, written):
    """A streaming pass is served by the level that holds its working set; past the L3 (32 MiB, never the innermost
    L2), the L3 still serves capacity / working set of its bytes and DRAM the rest: its time, a closed form of the
    two copy rates, never falls as the working set grows and does not jump where it outgrows the L3."""
    from accelsim.replay.records import streaming_levels

    levels = streaming_levels(CPU, working_set)
    assert sum(share for _, share in levels) == pytest.approx(1.0, rel=1e-12)
    held = 1.0 if working_set <= 2**25 else 2**25 / working_set
    assert [(lvl.name, share) for lvl, share in levels] == (
        [("l3", 1.0)] if held == 1.0 else [("l3", pytest.approx(held)), ("dram", pytest.approx(1 - held))])

    def seconds(ws):
        return project(CPU, Streaming("s", read, written, ws)).memory_s

    expected = (read + written) * per_byte(held)
    assert seconds(working_set) == pytest.approx(expected, rel=1e-12)
    assert seconds(2 * working_set) >= seconds(working_set) * (1 - 1e-12)
    assert seconds(2**25 + 1) == pytest.approx(seconds(2**25), rel=1e-6)


def test_rank_steps_count_groups_not_scores():
    """NumPy runs an inner loop per group: a compression in groups of 8 takes 8 steps over half as many groups as
    one in groups of 4 takes 4 steps over, the same grouped work per value."""
    g4, g8 = compress_traffic(32, 64, 2, 4, F).grouped, compress_traffic(32, 64, 2, 8, F).grouped
    assert g4 == g8 == 4 * (32 * 64 // 4) * 80
