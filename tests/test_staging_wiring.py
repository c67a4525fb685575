from __future__ import annotations

import pytest

from accelsim import load_arch, simulate
from accelsim.model import staging
from test_scalesim_stalls import REF, case_arch, case_layer


def _doc(case) -> dict:
    """The case's arch as an editable document (its memory levels a list)."""
    doc = case_arch(case).model_dump(mode="python")
    doc["memory"] = list(doc["memory"])
    return doc


def _with(case, overrides: dict):
    """The case's arch with further overrides applied to its document."""
    return load_arch(_doc(case), overrides)


#: Cases with stalls, one or two per dataflow, for the checks of how the staging is wired to the arch.
WIRED = [c for c in REF["cases"] if c["id"] in (25, 30, 32, 44, 57, 37)]


@pytest.mark.parametrize("case", WIRED, ids=lambda c: f"{c['id']}-{c['dataflow']}")
def test_staging_counts_words_not_bytes(case):
    """fp16 with twice the SRAM bytes and twice the DRAM bytes per cycle is SCALE-Sim's int8 case: the
    replay sizes its buffers and bandwidths in words (SCALE-Sim's unit), not bytes."""
    kb = case["sram_kb"]
    arch = _with(case, {
        "compute.default_dtype": "fp16", "memory.dram.bandwidth": 2 * case["bandwidth"],
        "memory.sram.partition": {"input": kb["ifmap"] * 2048, "weight": kb["filter"] * 2048,
                                  "output": kb["ofmap"] * 2048},
        "memory.sram.capacity_bytes": 2 * 1024 * sum(kb.values())})
    r = simulate(arch, case_layer(case)).layers[0]
    assert r.cycles - 1 == case["expected"]["total_cycles"]


@pytest.mark.parametrize("case", WIRED[:3], ids=lambda c: f"{c['id']}-{c['dataflow']}")
def test_staging_reads_the_outermost_and_innermost_levels(case):
    """A level between DRAM and the SRAM partitions (unbounded here, so only the innermost level's bounds
    can admit the replay) changes nothing: the replay feeds the innermost level's partitions from the
    outermost level, as SCALE-Sim's two levels."""
    doc = _doc(case)
    doc["memory"].insert(1, {"name": "l2", "bandwidth": 1000.0, "read_pj_per_byte": 10.0, "write_pj_per_byte": 10.0})
    r = simulate(load_arch(doc), case_layer(case)).layers[0]
    assert r.cycles - 1 == case["expected"]["total_cycles"]


@pytest.mark.parametrize("case", [c for c in REF["cases"] if c["id"] in (8, 24, 57)],
                         ids=lambda c: f"{c['id']}-{c['dataflow']}")
def test_staging_drains_the_output_at_the_write_bandwidth(case):
    """The output partition drains at the outer level's write bandwidth, the operands fill at its read
    bandwidth: a write port at a quarter of the read rate gives the replay's own cycles for those two
    rates, and more than SCALE-Sim's one shared rate."""
    slow = 0.25 * case["bandwidth"]
    arch = _with(case, {"memory.dram.write_bandwidth": slow})
    layer = case_layer(case)
    kb = case["sram_kb"]
    bufs = {"input": staging.BufferSpec(kb["ifmap"] * 1024, case["bandwidth"]),
            "weight": staging.BufferSpec(kb["filter"] * 1024, case["bandwidth"]),
            "output": staging.BufferSpec(kb["ofmap"] * 1024, slow)}
    g = layer.as_gemm()
    expected, _ = staging.staged_cycles(staging.SystolicStaging(case["rows"], case["cols"], case["dataflow"],
                                                                g.m, g.n, g.k, 1), bufs)
    r = simulate(arch, layer).layers[0]
    assert r.cycles == expected and r.cycles - 1 > case["expected"]["total_cycles"]


def test_one_memory_level_is_not_staged():
    """Staging needs a backing store and a buffer: with one level the fixed mapping runs the tile
    pipeline, whichever staging the array names."""
    case = WIRED[0]
    doc = _doc(case)
    doc["memory"] = doc["memory"][1:]
    staged = simulate(load_arch(doc), case_layer(case)).layers[0]
    doc["compute"]["staging"] = "pipeline"
    assert staged.cycles == simulate(load_arch(doc), case_layer(case)).layers[0].cycles


def test_a_two_word_partition_is_staged_and_an_unbounded_one_is_not():
    """Staging needs each operand's partition to hold two words (one per half) and to be bounded: two
    bytes of int8 replay SCALE-Sim's staging (each half one word); an SRAM without a capacity runs the
    tile pipeline, whichever staging the array names."""
    case = WIRED[0]
    layer = case_layer(case)
    tiny = _with(case, {"memory.sram.partition": {"input": 2, "weight": 2, "output": 2},
                        "memory.sram.capacity_bytes": 6})
    g = layer.as_gemm()
    st = staging.SystolicStaging(case["rows"], case["cols"], case["dataflow"], g.m, g.n, g.k, 1)
    expected, _ = staging.staged_cycles(st, {op: staging.BufferSpec(2, case["bandwidth"])
                                             for op in ("input", "weight", "output")})
    assert simulate(tiny, layer).layers[0].cycles == expected
    doc = _doc(case)
    doc["memory"][1] = {k: v for k, v in doc["memory"][1].items() if k not in ("capacity_bytes", "partition")}
    unbounded = simulate(load_arch(doc), layer).layers[0]
    doc["compute"]["staging"] = "pipeline"
    assert unbounded.cycles == simulate(load_arch(doc), layer).layers[0].cycles


@pytest.mark.parametrize("operand", ["input", "weight", "output"])
def test_one_operand_below_two_words_is_not_staged(operand):
    """Each operand's partition must hold two words: one of them at a single byte sends the layer to the
    tile pipeline, whichever it is."""
    case = WIRED[0]
    kb = {"input": case["sram_kb"]["ifmap"], "weight": case["sram_kb"]["filter"], "output": case["sram_kb"]["ofmap"]}
    part = {op: (1 if op == operand else kb[op] * 1024) for op in kb}
    staged = simulate(_with(case, {"memory.sram.partition": part}), case_layer(case)).layers[0]
    piped = simulate(_with(case, {"memory.sram.partition": part, "compute.staging": "pipeline"}),
                     case_layer(case)).layers[0]
    assert staged.cycles == piped.cycles
