"""The steady-state engine equals the tile-by-tile simpy pipeline, at a cost independent of layer size.

The systolic mappings carry SCALE-Sim's staging, which run_mapping times on its own
(test_scalesim_stalls.py); here it is dropped so the pipeline engine is what is compared.
"""

from __future__ import annotations

import dataclasses
import json
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim import Gemm, load_arch
from accelsim.model.engine import run_mapping, simulate_tiles
from accelsim.model.lowering import lower_layer
from accelsim.model.mapping import Mapping, TileBlock, TileGroup

REF = json.loads((Path(__file__).parent / "data" / "scalesim_reference.json").read_text())
ARCHS = ["systolic_ws_32x32", "systolic_os_32x32", "systolic_is_32x32", "tensor_core", "stc_2of4"]


def _piped(mp: Mapping) -> Mapping:
    """The mapping timed by the tile pipeline (its SCALE-Sim staging dropped)."""
    return dataclasses.replace(mp, staging=None)


def _with_dram_bw(arch, bw):
    mem = [lvl.model_copy(update={"bandwidth": bw}) if lvl.name == "dram" else lvl for lvl in arch.memory]
    return arch.model_copy(update={"memory": mem})


ONE_LEVEL = _with_dram_bw(load_arch("systolic_ws_32x32"), 1.0)


def _mapping(groups, load_bytes, store_bytes) -> Mapping:
    """A bare mapping whose DRAM bytes (at 1 byte/cycle) set the layer's load and store cycles."""
    reads = {lvl.name: {"input": 0.0, "weight": 0.0, "output": 0.0} for lvl in ONE_LEVEL.memory}
    writes = {lvl.name: {"input": 0.0, "weight": 0.0, "output": 0.0} for lvl in ONE_LEVEL.memory}
    reads["dram"]["input"], writes["dram"]["output"] = load_bytes, store_bytes
    return Mapping("t", 1, 1, 1, "fp16", {}, (), list(groups), 1.0, 1.0, 1.0, reads, writes, 1.0)

group = st.builds(TileGroup, st.integers(1, 40), st.integers(0, 60).map(float), st.integers(1, 9).map(float))
block = st.builds(lambda gs, t: TileBlock(tuple(gs), t), st.lists(group, min_size=1, max_size=3), st.integers(1, 25))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(group, block), min_size=1, max_size=5), st.integers(0, 20000), st.integers(0, 20000))
def test_equals_tile_by_tile_on_random_pipelines(groups, load, store):
    """Random groups and repeated blocks, loads and stores around the compute time: every regime."""
    mp = _mapping(groups, float(load), float(store))
    assert run_mapping(ONE_LEVEL, mp) == simulate_tiles(ONE_LEVEL, mp)


@pytest.mark.parametrize("case", REF["cases"], ids=lambda c: f"{c['id']}-{c['dataflow']}-{c['rows']}x{c['cols']}")
def test_equals_tile_by_tile_on_scalesim_cases(case):
    """The 230 SCALE-Sim reference layers, with their reference bandwidth and with a starved one."""
    from test_scalesim_parity import _arch, _layer

    for bw in (None, 4.0):
        arch = _arch(case) if bw is None else _with_dram_bw(_arch(case), bw)
        for mp in map(_piped, lower_layer(arch, _layer(case)).mappings):
            assert run_mapping(arch, mp) == simulate_tiles(arch, mp)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ARCHS), st.integers(1, 300), st.integers(1, 300), st.integers(1, 300),
       st.sampled_from([None, 1.0, 8.0, 64.0]))
def test_equals_tile_by_tile_on_random_layers(arch_name, m, n, k, bw):
    """A held-out random set of GEMMs on every built-in array and tensor core, ample and starved."""
    arch = load_arch(arch_name)
    if bw is not None:
        arch = _with_dram_bw(arch, bw)
    for mp in map(_piped, lower_layer(arch, Gemm("g", m, n, k)).mappings):
        assert run_mapping(arch, mp) == simulate_tiles(arch, mp)


def test_huge_layer_costs_what_a_small_one_does():
    """n = 1e8 on a 32x32 array: three million column folds, one block; cycles match the closed form."""
    arch = load_arch("systolic_ws_32x32")
    tracemalloc.start()
    t0 = time.perf_counter()
    mp = _piped(lower_layer(arch, Gemm("g", 64, 10**8, 64)).mappings[0])
    timing = run_mapping(arch, mp)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    folds = 2 * (10**8 // 32)  # two row folds (K = 64) per column fold
    assert timing.compute_cycles == folds * (2 * 32 + 32 + 64 - 2)
    assert mp.tiles == folds and len(mp.groups) <= 3
    assert peak < 5e6 and elapsed < 5.0  # generous: a bound on growth, not a benchmark


def test_transfers_stream_and_only_the_layer_end_is_rounded():
    """Three tiles each loading 2.5 cycles of bytes, computing 1: by hand, loads end at 2.5, 5 and 7.5
    (the channel streams), computes at 3.5, 6 and 8.5, so the layer takes 9 cycles; whole-cycle
    transfers per tile would take 10."""
    mp = _mapping([TileGroup(3, 1.0, 1.0)], 7.5, 0.0)
    for timing in (run_mapping(ONE_LEVEL, mp), simulate_tiles(ONE_LEVEL, mp)):
        assert (timing.cycles, timing.compute_cycles, timing.stall_cycles) == (9.0, 3.0, 6.0)
