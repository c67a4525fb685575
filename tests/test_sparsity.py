"""Sparse operands on sparse hardware: speedups only where the hardware can exploit them, closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accelsim import Gemm, Sparsity, load_arch, simulate
from accelsim.errors import WorkloadError
from accelsim.model.workloads import bert_base, resnet50
from accelsim.model.sparsity import satisfies
from conftest import assert_one_line_error, run_cli
from kernels.nm import NMPattern

NETS = {"resnet50": resnet50(), "bert_base": bert_base(128), "resnet50_b32": resnet50(batch=32),
        "bert_base_s2048": bert_base(2048)}


@pytest.mark.parametrize("net", sorted(NETS))
def test_stc_halves_sparse_layers_and_cuts_edp(net):
    """2:4 weights on the STC: never slower; half the compute (plus K-tile padding) wherever the GPU
    is saturated; on layers too small to fill 108 SMs split-K already uses the idle SMs, so the
    halved K shows partly as fewer busy SMs rather than fewer cycles (as on real GPUs)."""
    sparse = NETS[net].with_sparsity(weight=Sparsity.parse("2:4"))
    dense_r, stc_r = simulate("dense_tc", sparse), simulate("stc_2of4", sparse)
    sparse_d = sparse_s = 0.0
    saturated = 0
    for d, s, layer in zip(dense_r.layers, stc_r.layers, sparse.layers):
        if getattr(layer, "static_weight", True):
            ratio = s.compute_cycles / d.compute_cycles
            assert 0.5 <= ratio <= 1.0, (layer.name, ratio)
            if d.detail["split_k"] == s.detail["split_k"] == 1:
                saturated += 1
                assert ratio <= 0.6, (layer.name, ratio)  # kept K of K; K-tile padding for small K
            sparse_d, sparse_s = sparse_d + d.compute_cycles, sparse_s + s.compute_cycles
        else:  # attention GEMMs multiply two activations: nothing to exploit
            assert s.compute_cycles == d.compute_cycles
    if net in ("resnet50_b32", "bert_base_s2048"):  # large enough to fill the GPU
        assert saturated >= 20
        assert 0.5 <= sparse_s / sparse_d <= 0.56
    else:
        assert 0.5 <= sparse_s / sparse_d <= 0.7
    assert stc_r.total["edp"] < 0.7 * dense_r.total["edp"]
    assert stc_r.total["energy_pj"] < 0.9 * dense_r.total["energy_pj"]


def test_split_k_uses_idle_units_and_more_units_never_hurt():
    """Fewer output tiles than SMs: K is split over idle SMs, so cycles fall as SMs are added."""
    g = Gemm("g", 128, 768, 3072)  # 6 output tiles of 128x128 on up to 108 SMs
    cycles = [simulate(load_arch("dense_tc", {"compute.units": u}), g).layers[0] for u in (6, 24, 108)]
    assert [c.detail["split_k"] for c in cycles][0] == 1 and cycles[-1].detail["split_k"] > 1
    assert cycles[0].compute_cycles > cycles[1].compute_cycles > cycles[2].compute_cycles


@pytest.mark.parametrize("net", sorted(NETS))
def test_no_sparsity_no_speedup(net):
    d, s = simulate("dense_tc", NETS[net]), simulate("stc_2of4", NETS[net])
    assert d.total["cycles"] == s.total["cycles"]
    assert d.total["energy_pj"] == s.total["energy_pj"]


def _ample(name):
    return load_arch(name, {"memory.hbm.bandwidth": 1e9, "memory.l2.bandwidth": 1e9, "memory.smem.bandwidth": 1e9})


def test_closed_form_macs_and_bytes_on_small_layer():
    m, n, k = 1536, 1152, 1001  # 108 output tiles fill the 108 SMs (no split-K); K mod 4 = 1 keeps 1
    arch = _ample("stc_2of4")
    layer = simulate(arch, Gemm("g", m, n, k, weight_sparsity=Sparsity.parse("2:4"))).layers[0]
    assert layer.macs == m * n * k
    assert layer.effectual_macs == m * n * k / 2
    kept = 2 * (k // 4) + 1
    assert layer.actions["compute.mac.fp16"] == m * n * kept
    # Everything fits in L2: HBM reads the input once and the compressed weights once
    # (2 of 4 values, each fp16 + 2 bits of metadata), and writes the output once.
    assert layer.actions["memory.hbm.read"] == pytest.approx(m * k * 2 + k * n * 0.5 * (2 + 2 / 8))
    assert layer.actions["memory.hbm.write"] == m * n * 2
    assert layer.actions["compute.metadata_decode"] == n * kept
    dense = simulate(_ample("dense_tc"), Gemm("g", m, n, k)).layers[0]
    c = arch.compute
    ctas = math.ceil(m / c.tile_m) * math.ceil(n / c.tile_n)
    assert ctas == c.units and dense.detail["split_k"] == layer.detail["split_k"] == 1
    assert dense.compute_cycles == math.ceil(k / c.tile_k) * c.tile_m * c.tile_n * c.tile_k / c.macs_per_cycle["fp16"]
    assert layer.compute_cycles == math.ceil(kept / c.tile_k) * c.tile_m * c.tile_n * c.tile_k / c.macs_per_cycle["fp16"]


@pytest.mark.parametrize(
    "pattern,arch,executed",
    [("1:4", "stc_2of4", "2:4"), ("1:8", "stc_2of4", "2:4"), ("3:8", "stc_2of4", "dense"),
     ("1:4", "vegeta_flex", "1:4"), ("2:8", "vegeta_flex", "2:4"), ("1:8", "vegeta_flex", "1:4"), ("1:4", "dense_tc", "dense"),
     ("4:16", "highlight_hss", "4:16"), ("2:4", "highlight_hss", "2:4")],
)
def test_pattern_runs_at_nearest_supported_denser(pattern, arch, executed):
    r = simulate(arch, Gemm("g", 128, 128, 256, weight_sparsity=Sparsity.parse(pattern)))
    assert r.layers[0].detail["executed"] == executed


def test_satisfies_matches_brute_force():
    import itertools

    import numpy as np

    rng = np.random.default_rng(0)
    for p, q in itertools.product([NMPattern(1, 4), NMPattern(2, 4), NMPattern(1, 8), NMPattern(3, 8), NMPattern(2, 8)],
                                  [NMPattern(1, 4), NMPattern(2, 4), NMPattern(4, 8), NMPattern(2, 8)]):
        # worst case over random p-sparse rows of length lcm: does any violate q?
        length = math.lcm(p.m, q.m) * 2
        ok = True
        for _ in range(200):
            row = np.zeros(length)
            for g in range(length // p.m):
                row[g * p.m + rng.choice(p.m, size=p.n, replace=False)] = 1
            if (row.reshape(-1, q.m).sum(1) > q.n).any():
                ok = False
                break
        assert satisfies(p, q) == ok, (p, q)


def test_satisfies_groups_that_do_not_nest():
    """Group sizes where neither M divides the other: a dense target holds any tensor; 2:3 can put 3
    non-zeros in an aligned group of 4 (two from one group of 3, one from the next), so it is not 2:4."""
    assert satisfies(NMPattern(2, 3), NMPattern(4, 4)) is True
    assert satisfies(NMPattern(2, 3), NMPattern(2, 4)) is False
    row = np.array([1, 1, 0, 1, 0, 0])  # 2:3, three non-zeros in the first group of 4
    assert row.reshape(-1, 3).sum(1).max() <= 2 and row[:4].sum() == 3


def test_unstructured_runs_dense_unless_skipped():
    g = Gemm("g", 1536, 1152, 1024, weight_sparsity=Sparsity.parse("u0.3"))
    d = simulate("stc_2of4", g).layers[0]
    assert d.compute_cycles == simulate("dense_tc", Gemm("g", 1536, 1152, 1024)).layers[0].compute_cycles
    skip = load_arch("stc_2of4", {"compute.sparsity.skip_unstructured": True})
    assert simulate(skip, g).layers[0].compute_cycles < 0.5 * d.compute_cycles


def test_tasd_on_ttc_keeps_dense_operand_stationary():
    g = Gemm("g", 2048, 2048, 2048, weight_sparsity=Sparsity.parse("tasd:2:4+1:4"))
    stc = simulate("vegeta_flex", g).layers[0]
    ttc = simulate("tasd_ttc", g).layers[0]
    assert stc.detail["passes"] == ttc.detail["passes"] == 2
    assert ttc.compute_cycles == stc.compute_cycles  # same terms, same rates
    assert ttc.traffic_bytes["l2"] < stc.traffic_bytes["l2"]
    dense = simulate("dense_tc", Gemm("g", 2048, 2048, 2048)).layers[0]
    assert 0.7 < ttc.compute_cycles / dense.compute_cycles < 0.8  # 1/2 + 1/4 of the dense work


def test_activation_tasd_needs_units_and_hides_latency():
    g = Gemm("g", 1024, 1024, 1024, input_sparsity=Sparsity.parse("tasd:2:4"))
    both = load_arch("vegeta_flex", {"compute.sparsity.operands": ["weight", "input"]})
    with pytest.raises(WorkloadError, match="TASD units"):
        simulate(both, g)
    with pytest.raises(WorkloadError, match="does not fit"):
        simulate("stc_2of4", g)
    many = load_arch("tasd_ttc")
    few = load_arch("tasd_ttc", {"compute.tasd.units": 1})
    fast, slow = simulate(many, g).layers[0], simulate(few, g).layers[0]
    assert fast.compute_cycles < slow.compute_cycles
    assert fast.actions["tasd_unit.op"] == 1024 * 1024 // 4


def _workload(tmp_path, sparsity_field):
    p = tmp_path / "w.yaml"
    p.write_text(f"workload:\n  name: w\n  layers:\n    - {{type: gemm, name: g, m: 64, n: 64, k: 64, {sparsity_field}}}\n")
    return str(p)


@pytest.mark.parametrize(
    "arch,field,needles",
    [("stc_2of4", "weight_sparsity: 'tasd:1:4+1:4'", ["TASD term 1:4", "stc_2of4"]),
     ("tasd_ttc", "weight_sparsity: 'tasd:2:4+1:4+1:4+1:4'", ["4 terms", "at most 3"]),
     ("tasd_ttc", "weight_sparsity: u1.5", ["u1.5", "(0, 1]"]),
     ("tasd_ttc", "input_sparsity: u0", ["u0", "(0, 1]"])],
)
def test_bad_sparse_input_cli(tmp_path, arch, field, needles):
    assert_one_line_error(run_cli("simulate", "--arch", arch, "--workload", _workload(tmp_path, field)), *needles)


def test_set_override_keeps_nm_patterns_as_text():
    """YAML 1.1 would read 2:4 as the base-60 number 124; overrides must keep patterns."""
    from accelsim.model.arch import parse_overrides

    arch = load_arch("dense_tc", parse_overrides(["compute.sparsity.patterns=[1:4, 2:4]", "memory.hbm.bandwidth=1e4"]))
    assert arch.compute.sparsity.nm_patterns() == (NMPattern(1, 4), NMPattern(2, 4))
    assert arch.memory[0].bandwidth == 1e4
    r = simulate(arch, Gemm("g", 256, 256, 256, weight_sparsity=Sparsity.parse("1:4")))
    assert r.layers[0].detail["executed"] == "1:4"


def test_area_follows_array_and_buffer_size():
    small = load_arch("systolic_ws_32x32")
    big = load_arch("systolic_ws_32x32", {"compute.rows": 64, "memory.sram.partition.input": 131072})
    a, b = small.area_mm2(), big.area_mm2()
    assert b["compute"] == pytest.approx(2 * a["compute"])
    assert b["memory.sram"] == pytest.approx(a["memory.sram"] * (4 / 3))
