"""Engine and mapping: closed-form traffic, bandwidth bounds, stalls, energy sum, determinism."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim import Gemm, load_arch, simulate
from accelsim.model.energy import action_energy
from conftest import run_cli

AMPLE = {"memory.dram.bandwidth": 1e6, "memory.sram.bandwidth": 1e6}


def _dram(r, op_total=None):
    return r.layers[0].traffic_bytes["dram"]


def test_everything_fits_reads_each_operand_once():
    m, n, k = 100, 70, 50  # int8: 5000 + 3500 + 7000 bytes, all under 64 KiB partitions
    r = simulate(load_arch("systolic_ws_32x32"), Gemm("g", m, n, k))
    assert r.layers[0].traffic_bytes["dram"] == m * k + k * n + m * n


def test_ws_input_refetched_per_column_fold_when_it_does_not_fit():
    m, n, k = 4096, 96, 32  # input 128 KiB > 64 KiB ifmap SRAM -> read once per column fold (3)
    r = simulate(load_arch("systolic_ws_32x32"), Gemm("g", m, n, k))
    acts = r.layers[0].actions
    assert acts["memory.dram.read"] == m * k * math.ceil(n / 32) + k * n
    assert acts["memory.dram.write"] == m * n  # one row fold: no partial sums to spill


def test_os_stationary_outputs_write_once_and_stream_operands():
    arch = load_arch("systolic_os_32x32", {"memory.sram.partition": {"input": 64, "weight": 64, "output": 64}})
    m, n, k = 64, 64, 40  # tiny SRAM: nothing is reused across folds
    r = simulate(arch, Gemm("g", m, n, k))
    acts = r.layers[0].actions
    assert acts["memory.dram.read"] == m * k * (n // 32) + k * n * (m // 32)
    assert acts["memory.dram.write"] == m * n


def test_compute_bound_layer_has_only_fill_and_drain_stalls():
    arch = load_arch("systolic_ws_32x32", AMPLE)
    r = simulate(arch, Gemm("g", 512, 256, 256)).layers[0]
    assert r.stall_cycles <= 2  # first load and last write-back, the layer's end rounded up to a whole cycle
    assert r.cycles == r.compute_cycles + r.stall_cycles


def test_bandwidth_bound_layer_takes_at_least_bytes_over_bandwidth():
    bw = 2.0
    arch = load_arch("systolic_ws_32x32", {"memory.dram.bandwidth": bw})
    r = simulate(arch, Gemm("g", 2048, 256, 512)).layers[0]
    reads = r.actions["memory.dram.read"]
    assert r.cycles >= reads / bw
    assert r.stall_cycles > 0.5 * r.cycles


def test_tensor_core_waves_and_rate():
    arch = load_arch("tensor_core", {"memory.hbm.bandwidth": 1e9, "memory.l2.bandwidth": 1e9,
                                     "memory.smem.bandwidth": 1e9})
    c = arch.compute
    m, n, k = 128 * 12, 128 * 10, 320  # 120 CTAs on 108 SMs: two waves
    r = simulate(arch, Gemm("g", m, n, k)).layers[0]
    steps = math.ceil(k / c.tile_k)
    assert r.compute_cycles == pytest.approx(2 * steps * c.tile_m * c.tile_n * c.tile_k / c.macs_per_cycle["fp16"])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 700), st.sampled_from([None, 1, 8, 16]))
def test_k_multiple_pads_k_only_to_a_multiple_of_it(k, k_multiple):
    """A tensor-core arch pads the last K-chunk to ``tile_k`` (a GPU mainloop's); with ``k_multiple`` (a CPU BLAS's
    micro-kernel, which runs any K) only to a multiple of it: two waves of CTAs take 2·tile_m·tile_n·K'/rate cycles,
    K' = K rounded up to the multiple, however ``tile_k`` divides K. The MACs counted are the dense m·n·k either
    way."""
    arch = load_arch("tensor_core", {"memory.hbm.bandwidth": 1e9, "memory.l2.bandwidth": 1e9,
                                     "memory.smem.bandwidth": 1e9, "compute.k_multiple": k_multiple})
    c = arch.compute
    m, n = 128 * 12, 128 * 10  # 120 CTAs on 108 SMs: two waves, no split
    r = simulate(arch, Gemm("g", m, n, k)).layers[0]
    grain = k_multiple or c.tile_k
    assert r.compute_cycles == pytest.approx(2 * c.tile_m * c.tile_n * (-(-k // grain) * grain) / c.macs_per_cycle["fp16"])
    assert r.macs == m * n * k


def test_energy_is_sum_of_actions_times_table():
    arch = load_arch("tensor_core")
    rep = simulate(arch, "bert_base", seq_len=64)
    e = arch.energy
    levels = {l.name: l for l in arch.memory}
    for layer in rep.layers[:9]:
        # a dense network issues every MAC
        expect = layer.macs * e.mac_pj["fp16"] + layer.cycles * e.leakage_pj_per_cycle
        for name, lvl in levels.items():
            rd, wr = layer.actions[f"memory.{name}.read"], layer.actions[f"memory.{name}.write"]
            assert rd + wr == pytest.approx(layer.traffic_bytes[name])
            expect += rd * lvl.read_pj_per_byte + wr * lvl.write_pj_per_byte
        assert layer.energy_pj == pytest.approx(expect, rel=1e-12)
        assert layer.edp == pytest.approx(layer.energy_pj * layer.cycles)
    assert rep.total["energy_pj"] == pytest.approx(sum(l.energy_pj for l in rep.layers))
    assert rep.total["edp"] == pytest.approx(rep.total["energy_pj"] * rep.total["cycles"])
    assert action_energy(arch, "memory.hbm.read") == 31.2


def test_json_output_is_bit_identical_across_runs(tmp_path):
    args = ("simulate", "--arch", "systolic_ws_32x32", "--workload", "resnet50", "--format", "json")
    a, b = run_cli(*args), run_cli(*args)
    assert a.returncode == 0 and a.stdout == b.stdout
    out = tmp_path / "r.json"
    c = run_cli(*args, "--out", str(out))
    assert out.read_text() == c.stdout


def test_parquet_out(tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "r.parquet"
    proc = run_cli("simulate", "--arch", "tensor_core", "--workload", "bert_base", "--param", "seq_len=64",
                   "--out", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    t = pq.read_table(out)
    assert t.num_rows == 12 * 8 and "traffic_hbm" in t.column_names


def test_compare_cli_ratios_and_plot(tmp_path):
    import json

    png = tmp_path / "cmp.png"
    proc = run_cli("compare", "--arch", "dense_tc", "--arch", "stc_2of4", "--workload", "bert_base",
                   "--param", "seq_len=64", "--plot", str(png), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    cmp = json.loads(proc.stdout)
    base, other = cmp["archs"]
    assert base["speedup"] == 1.0 and other["speedup"] == 1.0  # dense weights: no speedup
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_runs():
    proc = run_cli("demo")
    assert proc.returncode == 0, proc.stderr
    assert "TOTAL" in proc.stdout and "resnet50" in proc.stdout and "stc_2of4" in proc.stdout


@pytest.mark.parametrize("m,n,k,count", [(256, 256, 4096, 1), (512, 1024, 512, 2), (4096, 4096, 4096, 1), (384, 130, 70, 3)])
def test_tile_options_pick_the_fastest_tile_by_roofline(m, n, k, count):
    """With tile options the mapper returns, of all candidate tiles, the mapping of fewest roofline cycles."""
    from accelsim.model.mapping import map_gemm, roofline_cycles

    h100 = load_arch("h100_sxm")
    tiles = [(h100.compute.tile_m, h100.compute.tile_n, h100.compute.tile_k), *h100.compute.tile_options]
    assert len(tiles) > 1
    alone = []
    for tm, tn, tk in tiles:
        one = load_arch("h100_sxm", {"compute.tile_m": tm, "compute.tile_n": tn, "compute.tile_k": tk,
                                     "compute.tile_options": []})
        alone.append(roofline_cycles(one, map_gemm(one, "g", m, n, k, "bf16", count)))
    chosen = map_gemm(h100, "g", m, n, k, "bf16", count)
    assert roofline_cycles(h100, chosen) == min(alone)
    assert (chosen.tile["m"], chosen.tile["n"], chosen.tile["k"]) == tiles[alone.index(min(alone))]
    assert chosen.macs == m * n * k * count
