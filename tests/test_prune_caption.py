"""`prune --arch`: the table says what each column means, and why a residual pattern gains nothing."""

from __future__ import annotations

from accelsim.cli.prune_cmd import _prune_caption
from accelsim.codesign.prune import PruneStructure, simulate_pruned
from accelsim.model.arch import load_arch


def _row(variant, cycles, compute, stall):
    return {"variant": variant, "cycles": cycles, "compute_cycles": compute, "stall_cycles": stall}


def test_caption_names_why_a_residual_pattern_is_no_faster():
    dense, pruned = _row("dense", 900, 500, 400), _row("pruned", 600, 200, 400)
    memory = _prune_caption([dense, pruned, _row("pruned+2:4", 640, 100, 540)])
    assert "pruned+2:4 is no faster than pruned: the layer waits on memory" in memory
    padded = _prune_caption([dense, _row("pruned", 574, 512, 62), _row("pruned+2:4", 574, 512, 62)])
    assert "tiles are padded" in padded
    faster = _prune_caption([dense, pruned, _row("pruned+2:4", 500, 100, 400)])
    assert "no faster" not in faster and "compute and stall cycles add up to cycles" in faster


def test_variants_carry_compute_stall_and_the_executed_pattern():
    """Cycles split into compute and stall, and a 2:4 residual on stc_2of4 runs as 2:4 (the dense ones dense)."""
    st = PruneStructure((64, 128), (), tuple(range(0, 128, 2)), 0.5)
    sim = simulate_pruned(load_arch("stc_2of4"), st, 256, "2:4")
    assert [v["executed"] for v in sim["variants"]] == ["dense", "dense", "2:4"]
    assert [v["k"] for v in sim["variants"]] == [128, 64, 64]
    for v in sim["variants"]:
        assert v["compute_cycles"] + v["stall_cycles"] == v["cycles"] and v["compute_cycles"] > 0
