"""The simpy engine: tiles flow load → compute → write-back through double buffers; cycles and stalls.

Assumes a validated ArchConfig and a Mapping from :mod:`accelsim.model.mapping`. One event per tile (or
per chunk of identical tiles), never per cycle or per MAC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import simpy

from accelsim.model.arch import ArchConfig
from accelsim.model.mapping import Mapping

__all__ = ["LayerTiming", "MAX_STEPS_PER_GROUP", "run_mapping"]

#: A tile group longer than this is simulated as its first and last tile plus equal chunks of
#: consecutive tiles: compute cycles and bytes stay exact, only the pipeline's edge inside a
#: chunk is coarser. This bounds the cost per layer by the number of distinct tile groups.
MAX_STEPS_PER_GROUP = 24


@dataclass(frozen=True)
class LayerTiming:
    """Cycles of one layer: ``cycles = compute_cycles + stall_cycles`` (fill, bandwidth and drain)."""

    cycles: float
    compute_cycles: float
    stall_cycles: float


def _steps(mapping: Mapping):
    """(compute cycles, MAC share) per simulated step, in execution order."""
    total_macs = sum(g.count * g.macs for g in mapping.groups) or 1.0
    for g in mapping.groups:
        share = g.macs / total_macs
        if g.count <= MAX_STEPS_PER_GROUP:
            for _ in range(g.count):
                yield g.compute_cycles, share
            continue
        yield g.compute_cycles, share
        middle, chunks = g.count - 2, MAX_STEPS_PER_GROUP - 2
        base, extra = divmod(middle, chunks)
        for i in range(chunks):
            n = base + (1 if i < extra else 0)
            if n:
                yield n * g.compute_cycles, n * share
        yield g.compute_cycles, share


def _transfer_time(arch: ArchConfig, mapping: Mapping):
    """Cycles to load and to write back all of the layer's data, the slowest level deciding.

    Levels stream concurrently (a tile's bytes pipeline through them), so a tile's transfer
    takes as long as its slowest level; each transfer is rounded up to whole cycles. Reads and writes use separate channels; a level's
    ``write_bandwidth`` defaults to its ``bandwidth``.
    """
    load = store = 0.0
    for lvl in arch.memory:
        rd = sum(mapping.reads[lvl.name][op] for op in ("input", "weight"))
        wr = mapping.writes[lvl.name]["output"] + mapping.reads[lvl.name]["output"]
        load = max(load, rd / lvl.bandwidth)
        store = max(store, wr / (lvl.write_bandwidth or lvl.bandwidth))
    return load, store


def run_mapping(arch: ArchConfig, mapping: Mapping) -> LayerTiming:
    """Simulate one layer's tiles and return its :class:`LayerTiming`.

    Processes: ``loader`` fills a free buffer with the next tile's operands (yields on a free
    slot, then for the transfer time); ``compute`` takes a filled buffer (waiting there is a
    stall), computes, frees the buffer and hands the result to ``writer``, which drains it.
    Two buffers make the double buffering; ties resolve in simpy's fixed event order.
    """
    steps = list(_steps(mapping))
    load_all, store_all = _transfer_time(arch, mapping)
    env = simpy.Environment()
    free = simpy.Container(env, capacity=2, init=2)
    filled = simpy.Container(env, capacity=2, init=0)
    done = simpy.Store(env)
    compute_total = 0.0

    def loader():
        for _, share in steps:
            yield free.get(1)
            if share * load_all:
                yield env.timeout(math.ceil(share * load_all))
            yield filled.put(1)

    def compute():
        nonlocal compute_total
        for cycles, share in steps:
            yield filled.get(1)
            yield env.timeout(cycles)
            compute_total += cycles
            yield free.put(1)
            yield done.put(share)

    def writer():
        for _ in steps:
            share = yield done.get()
            if share * store_all:
                yield env.timeout(math.ceil(share * store_all))

    env.process(loader())
    env.process(compute())
    finish = env.process(writer())
    env.run(until=finish)
    cycles = float(env.now)
    return LayerTiming(cycles, compute_total, cycles - compute_total)
