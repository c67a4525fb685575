"""The cache probe (:mod:`accelsim.replay.cache_probe`): a private level's reported size stands where copies show
its edge; the shared last level, and any level the OS reports more of than the machine gets (a VM shown its host's
L3), holds what copies held. The copy rates come from a piecewise model of a cache hierarchy, so the expected sizes
are the model's edges."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.replay.cache_probe import FLOOR, STEP, describe, effective_caches

MIB = 2**20


def hierarchy(edges: list[tuple[int, float]], beyond: float):
    """``rate(side)``: a copy of two ``side``-byte buffers runs at the rate of the first level (bytes, GB/s),
    innermost first, whose capacity holds both; at ``beyond`` past them all. The sides timed are logged."""
    timed = []

    def rate(side):
        timed.append(side)
        return next((r for cap, r in edges if 2 * side <= cap), beyond)

    return rate, timed


def caches(l3: int, l2: int = 2 * MIB) -> list[dict]:
    return [{"level": 3, "size": l3, "total": l3, "shared_cpus": "0-1"},
            {"level": 2, "size": l2, "total": 2 * l2, "shared_cpus": "0"}]


def test_a_vm_shown_its_hosts_l3_gets_what_copies_held():
    """The Xeon VM: 480 MiB reported, copies at 28 GB/s up to 32 MiB of working set, 13 beyond."""
    rate, timed = hierarchy([(2 * MIB, 84.0), (32 * MIB, 28.0)], 13.0)
    l3, l2 = effective_caches(caches(480 * MIB), rate)
    # Halving from 120 MiB per side: 240 (the first comparison), 120, 60, 30 all at 13; 15 MiB at 28; then 7.5 MiB,
    # at 28 too: 15 MiB per side was on the level's plateau.
    assert [s for s, _ in l3["probe"]] == [240 * MIB, 120 * MIB, 60 * MIB, 30 * MIB, 15 * MIB, 15 * MIB // 2]
    assert l3["effective_size"] == 30 * MIB and l3["effective_total"] == 30 * MIB
    assert (l3["size"], l3["total"]) == (480 * MIB, 480 * MIB)  # the OS's numbers are kept beside
    assert "of the OS's 491520 KiB, 30720 KiB is what copies here count on" in describe(l3)
    # The L2 holds its quarter-size copy and its half-size one alike: nothing contradicts the OS.
    assert l2["effective_size"] == 2 * MIB and l2["effective_total"] == 4 * MIB
    assert min(timed) >= FLOOR


def test_a_cache_whose_edge_shows_at_once_keeps_its_size():
    """Copies filling half of a 32 MiB L3 run at its rate, copies filling all of it at DRAM's."""
    rate, _ = hierarchy([(2 * MIB, 84.0), (31 * MIB, 60.0)], 20.0)
    l3, _ = effective_caches(caches(32 * MIB), rate)
    assert [s for s, _ in l3["probe"]] == [16 * MIB, 8 * MIB, 4 * MIB]
    assert l3["effective_size"] == 32 * MIB
    assert "more than" not in describe(l3)


def test_no_step_above_the_inner_level_keeps_the_reported_size():
    """Flat rates down to the L2's size: nothing contradicts the OS, and the probe stops before the L2's edge."""
    rate, timed = hierarchy([(2 * MIB, 84.0)], 20.0)
    l3, _ = effective_caches(caches(64 * MIB), rate)
    assert l3["effective_size"] == 64 * MIB
    assert min(s for s, _ in l3["probe"]) > 2 * MIB


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 9).flatmap(lambda r: st.tuples(st.just(r), st.integers(r + 1, 12))),
       st.floats(1.5, 6.0), st.floats(5.0, 40.0), st.booleans())
def test_the_found_size_is_the_largest_working_set_that_fit(powers, gap, dram, shared):
    """Any real L3 of 2^r MiB under a reported 2^R MiB (R > r) and any step of at least 1.5×: judged as the shared
    last level (by its slowest copy), the size found is the largest working set of the ladder (halvings of R's
    quarter, two sides) within the real cache; judged as a private level, the reported size where the step shows on
    the first try."""
    r, big = powers
    real, reported = 2**r * MIB, 2**big * MIB
    rate, _ = hierarchy([(2 * MIB, 84.0 * gap * dram / 10), (real, gap * dram)], dram)
    l3, _ = effective_caches(caches(reported), rate, rate if shared else None)
    assert gap >= STEP
    largest_within = 2 ** min(r, big - 1) * MIB
    assert l3["effective_size"] == (largest_within if shared or real < reported // 2 else reported)


def test_the_shared_level_holds_what_its_copies_held_where_its_edge_shows_at_once():
    """The EPYC VM's 32 MiB L3: 16 MiB copies per side spill (working set 32 MiB), 8 MiB ones run at the level's
    rate. In either mood of its 8 MiB copies (never spilled; spilled on a repeat) the level is found at what a copy
    always held, 16 or 8 MiB, not at the OS's 32: its copy buffers (a quarter of it per side) stay within what it
    holds. Judged as a private level (no slowest copy asked) the OS's 32 MiB stands."""
    from accelsim.replay.device_calibration import copy_buffers

    rate, _ = hierarchy([(MIB, 80.0), (16 * MIB, 66.0)], 20.0)
    for spill, held in ((66.0, 16 * MIB), (40.0, 8 * MIB)):
        l3 = effective_caches(caches(32 * MIB), rate, lambda side: spill if side == 8 * MIB else rate(side))[0]
        assert [s for s, _ in l3["probe"]] == [16 * MIB, 8 * MIB, 4 * MIB]
        assert l3["effective_size"] == held and l3["effective_total"] == held
        sides = copy_buffers({"caches": [l3], "memory_bytes": 16 * 2**30})
        assert sides == {"l3": held // 4, "dram": max(8 * held, 64 * MIB)}
        assert f"32768 KiB, {held // 1024} KiB is what copies here count on" in describe(l3)
    assert effective_caches(caches(32 * MIB), rate)[0]["effective_size"] == 32 * MIB


def test_a_level_whose_edge_moves_is_found_where_it_always_holds():
    """The Xeon VM's L3 in its two moods: copies of 30 MiB per side partly held (24 GB/s, a step over 60 MiB's
    13.6) or not at all (14); 15 MiB per side at 28 either way. Both are found holding 30 MiB, the size a copy
    on the level's plateau filled."""
    for edge_rate in (24.0, 14.0):
        rate, _ = hierarchy([(2 * MIB, 84.0), (30 * MIB, 28.0), (60 * MIB, edge_rate)], 13.6)
        l3, _ = effective_caches(caches(480 * MIB), rate)
        assert l3["effective_size"] == 30 * MIB, (edge_rate, l3["probe"])
    # a copy just under the plateau's rate (within PLATEAU) is held: the level keeps what it filled
    rate, _ = hierarchy([(2 * MIB, 84.0), (30 * MIB, 28.0), (60 * MIB, 26.0)], 13.6)
    l3, _ = effective_caches(caches(480 * MIB), rate)
    assert l3["effective_size"] == 60 * MIB


def test_a_copy_that_spilled_on_some_repeats_is_not_held():
    """The Xeon VM's L3 at its edge: copies of 30 MiB per side ran at 28 GB/s at best, as 15 MiB's did, but at 18
    at worst. The level holds 30 MiB (what 15 MiB per side always held), not the 60 the fastest copy alone says."""
    rate, _ = hierarchy([(2 * MIB, 84.0), (60 * MIB, 28.0)], 13.6)

    def slowest(side):
        return 18.0 if side == 30 * MIB else rate(side)

    l3 = effective_caches(caches(480 * MIB), rate, slowest)[0]
    assert l3["effective_size"] == 30 * MIB and l3["edge_slowest"] == [30 * MIB, 18.0]
    assert "slowest at 30 MiB 18" in describe(l3)  # the arch comment says why
    assert effective_caches(caches(480 * MIB), rate)[0]["effective_size"] == 60 * MIB


def test_an_inner_level_is_judged_by_its_fastest_copy():
    """A slow repeat at the L2's edge is a neighbour's noise, not a spill: the L2 keeps its 2 MiB while the L3 beside
    it is still judged by its slowest copy. As on the Xeon VM, copies of 1 MiB per side run at the L3's rate and
    512 KiB ones at the L2's (a step on the first try); one of 512 KiB ran at 40 GB/s."""
    rate, _ = hierarchy([(MIB, 84.0), (60 * MIB, 28.0)], 13.6)

    def slowest(side):
        return {30 * MIB: 18.0, MIB // 2: 40.0}.get(side) or rate(side)

    l3, l2 = effective_caches(caches(480 * MIB), rate, slowest)
    assert l3["effective_size"] == 30 * MIB and l3["edge_slowest"] == [30 * MIB, 18.0]
    assert l2["effective_size"] == 2 * MIB and "edge_slowest" not in l2
