"""Total cycles, stalls included, against SCALE-Sim v3 in USER bandwidth mode (small SRAMs, narrow DRAM).

tests/data/scalesim_stalls_reference.json records SCALE-Sim 3.0.0's own numbers and the command that
produced them (bench/scalesim_stall_cases.py). Each case sets the SRAM size of each operand and the
DRAM bandwidth every operand interface gets; accelsim's fixed systolic mapping stages data as
SCALE-Sim does (accelsim/model/staging.py, docs/scalesim_timing.md §9). Cases of sets ``heldout`` and
``sparse`` (N:M weights) were never used to build that model. SCALE-Sim reports the index of the last cycle: cycles − 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelsim import Conv, Gemm, Sparsity, load_arch, simulate
from accelsim.model import staging

REF = json.loads((Path(__file__).parent / "data" / "scalesim_stalls_reference.json").read_text())


def case_layer(case):
    spec = case["layer"]
    sp = Sparsity.parse(spec.get("sparsity"))
    if spec["type"] == "gemm":
        return Gemm(spec["name"], spec["M"], spec["N"], spec["K"], weight_sparsity=sp)
    return Conv(spec["name"], spec["ifmap_h"], spec["ifmap_w"], spec["filt_h"], spec["filt_w"], spec["channels"],
                spec["num_filters"], spec["stride"], spec["stride"], weight_sparsity=sp)


def case_arch(case):
    kb = case["sram_kb"]
    return load_arch(f"systolic_{case['dataflow']}_32x32", {
        "compute.rows": case["rows"], "compute.cols": case["cols"],
        "memory.sram.partition": {"input": kb["ifmap"] * 1024, "weight": kb["filter"] * 1024,
                                  "output": kb["ofmap"] * 1024},
        "memory.dram.bandwidth": case["bandwidth"],
        # SCALE-Sim's sparsity support compresses any layer-wise N:M along K
        "compute.sparsity.patterns": [case["layer"]["sparsity"]] if "sparsity" in case["layer"] else []})


def test_reference_covers_the_required_space():
    cases = REF["cases"]
    held = [c for c in cases if c["set"] == "heldout"]
    assert REF["scalesim_version"] == "3.0.0" and "scalesim_stall_cases.py" in REF["command"]
    assert len(held) >= 40
    assert {c["dataflow"] for c in held} == {"ws", "os", "is"}
    assert {c["layer"]["type"] for c in held} == {"gemm", "conv"}
    assert len({tuple(c["sram_kb"].values()) for c in held}) >= 5 and len({c["bandwidth"] for c in held}) >= 4
    assert sum(c["expected"]["stall_cycles"] > c["expected"]["total_cycles"] / 2 for c in held) >= 10
    sparse = [c for c in cases if c["set"] == "sparse"]
    assert len(sparse) >= 15 and {c["dataflow"] for c in sparse} == {"ws", "os", "is"}
    assert {c["layer"]["type"] for c in sparse} == {"gemm", "conv"} and all(c["layer"]["sparsity"] for c in sparse)


@pytest.mark.parametrize("case", REF["cases"], ids=lambda c: f"{c['id']}-{c['set']}-{c['dataflow']}-"
                                                             f"{c['rows']}x{c['cols']}-{c['layer']['name']}")
def test_total_cycles_match_scalesim(case):
    layer = case_layer(case)
    g = layer.as_gemm()
    assert (g.m, g.n, g.k) == (case["gemm"]["M"], case["gemm"]["N"], case["gemm"]["K"])
    r = simulate(case_arch(case), layer).layers[0]
    expected = case["expected"]
    assert r.compute_cycles - 1 == expected["total_cycles"] - expected["stall_cycles"]
    # to the cycle (issue 31 asks for 5 %): a looser bound let changes to the staging's buffer sizes and
    # bandwidths through
    assert r.cycles - 1 == expected["total_cycles"]


def test_huge_layer_steps_a_bounded_number_of_folds(monkeypatch):
    """n = 1e8 (6.25 M folds): at most MAX_FOLDS folds are replayed, the rest extrapolated."""
    stepped = []
    real = staging._fold
    monkeypatch.setattr(staging, "_fold", lambda *a: stepped.append(1) or real(*a))
    st = staging.SystolicStaging(32, 32, "ws", 64, 10**8, 64)
    cycles, compute = staging.staged_cycles(st, {op: staging.BufferSpec(65536, 10) for op in ("input", "weight", "output")})
    assert len(stepped) == staging.MAX_FOLDS and compute == 2 * (10**8 // 32) * (2 * 32 + 32 + 64 - 2)
    assert cycles > compute
