"""The engine: tiles flow load → compute → write-back through double buffers; cycles and stalls.

Assumes a validated ArchConfig and a Mapping from :mod:`accelsim.model.mapping`.

The pipeline is defined tile by tile by :func:`simulate_tiles`, three simpy processes over two
buffers; that is the specification, and its cost grows with the number of tiles. :func:`run_mapping`
computes the same cycles at a cost independent of the layer's size: the processes' event times
obey a max-plus recurrence (each event is the later of the events it waits for plus a duration),
so once the loader/compute state shifts by the same amount for every component over a tile, or
over a repeated block of tiles, it keeps doing so, and the engine jumps over the remaining
repetitions exactly. The write-back queue is unbounded; over such a stretch its finish time has a
closed form. Tests hold the two to the same cycles.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import simpy

from accelsim.model.arch import DTYPE_BYTES, ArchConfig
from accelsim.model.mapping import Mapping, TileBlock, TileGroup
from accelsim.model.staging import BufferSpec, staged_cycles

__all__ = ["LayerTiming", "run_mapping", "simulate_tiles"]

#: Repetitions simulated one by one before looking for the periodic regime (period 1 or 2).
_PERIODS = (1, 2)


@dataclass(frozen=True)
class LayerTiming:
    """Cycles of one layer: ``cycles = compute_cycles + stall_cycles`` (fill, bandwidth and drain)."""

    cycles: float
    compute_cycles: float
    stall_cycles: float


def _transfer_time(arch: ArchConfig, mapping: Mapping) -> tuple[float, float]:
    """Cycles to load and to write back all of the layer's data, the slowest level deciding.

    Levels stream concurrently (a tile's bytes pipeline through them), so a tile's transfer
    takes as long as its slowest level. Reads and writes use separate channels; a level's
    ``write_bandwidth`` defaults to its ``bandwidth``.
    """
    load = store = 0.0
    for lvl in arch.memory:
        rd = sum(mapping.reads[lvl.name][op] for op in ("input", "weight"))
        wr = mapping.writes[lvl.name]["output"] + mapping.reads[lvl.name]["output"]
        load = max(load, rd / lvl.bandwidth)
        store = max(store, wr / (lvl.write_bandwidth or lvl.bandwidth))
    return load, store


#: Transfers are timed in steps of 1/STEPS cycle: a channel streams tile after tile, so only the
#: layer's end is rounded to a whole cycle, and dyadic steps keep every sum exact in floating point.
STEPS = 1024


def _fluid(cycles: float) -> float:
    return math.ceil(cycles * STEPS) / STEPS


@dataclass(frozen=True)
class _Tile:
    """One tile's load, compute and write-back cycles (transfers in steps of 1/:data:`STEPS` cycle)."""

    load: float
    compute: float
    store: float


def _tile(g: TileGroup, total_macs: float, load_all: float, store_all: float) -> _Tile:
    """A tile moves its share of the layer's bytes, in proportion to its MACs."""
    share = g.macs / total_macs
    return _Tile(_fluid(share * load_all), g.compute_cycles, _fluid(share * store_all))


def _plan(arch: ArchConfig, mapping: Mapping):
    """The mapping's groups as (tile, count) runs and (runs, times) blocks, in execution order."""
    total_macs = sum(g.total_macs for g in mapping.groups) or 1.0
    load_all, store_all = _transfer_time(arch, mapping)

    def runs(groups) -> list[tuple[_Tile, int]]:
        return [(_tile(g, total_macs, load_all, store_all), g.count) for g in groups]

    return [(runs(g.groups), g.times) if isinstance(g, TileBlock) else (runs([g]), 1) for g in mapping.groups]


def _flat(plan) -> Iterator[_Tile]:
    for body, times in plan:
        for _ in range(times):
            for tile, count in body:
                for _ in range(count):
                    yield tile


def simulate_tiles(arch: ArchConfig, mapping: Mapping) -> LayerTiming:
    """The pipeline, one tile at a time: the definition :func:`run_mapping` reproduces.

    Processes: ``loader`` fills a free buffer with the next tile's operands (yields on a free
    slot, then for the transfer time); ``compute`` takes a filled buffer (waiting there is a
    stall), computes, frees the buffer and hands the result to ``writer``, which drains it.
    Two buffers make the double buffering; ties resolve in simpy's fixed event order.
    Cost grows with the number of tiles: use it to check, not to simulate networks.
    """
    tiles = list(_flat(_plan(arch, mapping)))
    env = simpy.Environment()
    free = simpy.Container(env, capacity=2, init=2)
    filled = simpy.Container(env, capacity=2, init=0)
    done = simpy.Store(env)
    compute_total = 0.0

    def loader():
        for t in tiles:
            yield free.get(1)
            if t.load:
                yield env.timeout(t.load)
            yield filled.put(1)

    def compute():
        nonlocal compute_total
        for t in tiles:
            yield filled.get(1)
            yield env.timeout(t.compute)
            compute_total += t.compute
            yield free.put(1)
            yield done.put(t)

    def writer():
        for _ in tiles:
            t = yield done.get()
            if t.store:
                yield env.timeout(t.store)

    env.process(loader())
    env.process(compute())
    finish = env.process(writer())
    env.run(until=finish)
    cycles = float(math.ceil(env.now))
    return LayerTiming(cycles, compute_total, cycles - compute_total)


# State of the loader/compute pair after a tile: (end of its load, end of its compute, end of
# the previous tile's compute). A tile's load starts when the loader is free and a buffer is:
# the compute two tiles back has released it.
_State = tuple[float, float, float]


def _step(s: _State, t: _Tile) -> _State:
    load_end = max(s[0], s[2]) + t.load
    return load_end, max(s[1], load_end) + t.compute, s[1]


def _pass(s: _State, body) -> tuple[_State, float, float]:
    """One pass of ``body`` (runs of identical tiles) from ``s``: the new state and the writer's map.

    The writer's map over the pass is ``w -> max(w + a, b)`` (``w`` its finish time before): ``a``
    is the pass's write-back cycles, ``b`` the finish time had the writer been idle. Each run is
    itself repeated with :func:`_repeat`, so a long run costs no more than a short one.
    """
    a, b = 0.0, -math.inf
    for tile, n in body:
        if n == 1:
            s = _step(s, tile)
            b = max(b + tile.store, s[1] + tile.store)
        else:
            s, b = _repeat(s, b, [(tile, 1)], n)
        a += n * tile.store
    return s, a, b


def _shift(new: _State, old: _State) -> float | None:
    """The common shift when every component moved by the same amount, else None."""
    d = new[0] - old[0]
    return d if new[1] - old[1] == d and new[2] - old[2] == d else None


def _repeat(s: _State, w: float, body, times: int) -> tuple[_State, float]:
    """``times`` passes of ``body``: pass by pass until the state repeats up to a shift, then a jump.

    The recurrence is max-plus homogeneous (shifting the state shifts every later event), so a
    shift ``c`` seen over ``p`` passes recurs every ``p`` passes: ``q`` more periods add ``q·c``.
    Over them the writer's map ``w -> max(w + a, b)`` has ``b`` growing by ``c`` per period, hence
    ``w_q = max(w + q·a, b + (q-1)·max(a, c))``.
    """
    history = [s]
    done = 0
    while done < times:
        for p in _PERIODS:
            if len(history) > p and done + p <= times:
                c = _shift(history[-1], history[-1 - p])
                if c is not None:
                    q = (times - done) // p
                    s1, a, b = s, 0.0, -math.inf
                    for _ in range(p):
                        s1, a1, b1 = _pass(s1, body)
                        a, b = a + a1, max(b + a1, b1)
                    w = max(w + q * a, b + (q - 1) * max(a, c))
                    s = (s[0] + q * c, s[1] + q * c, s[2] + q * c)
                    done += q * p
                    history = [s]
                    break
        else:
            s, a, b = _pass(s, body)
            w = max(w + a, b)
            done += 1
            history.append(s)
    return s, w


def _staged(arch: ArchConfig, mapping: Mapping) -> LayerTiming:
    """SCALE-Sim's staging: each operand's SRAM partition (innermost level) fed by its own DRAM
    interface at the outermost level's bandwidth (reads for the operands, writes for the output)."""
    eb = DTYPE_BYTES[mapping.dtype]
    dram, sram = arch.memory[0], arch.memory[-1]
    bufs = {op: BufferSpec(int(sram.capacity_for(op) // eb), (dram.bandwidth if op != "output" else
                                                               dram.write_bandwidth or dram.bandwidth) / eb)
            for op in ("input", "weight", "output")}
    cycles, compute = staged_cycles(mapping.staging, bufs)
    return LayerTiming(cycles, compute, cycles - compute)


def run_mapping(arch: ArchConfig, mapping: Mapping) -> LayerTiming:
    """One layer's :class:`LayerTiming`: SCALE-Sim's staging for a staged mapping (the fixed systolic
    one) on a two-level hierarchy, else the tile pipeline, equal to :func:`simulate_tiles` at a cost set
    by its groups, not its tiles."""
    if mapping.staging is not None and len(arch.memory) > 1 and all(
            2 <= arch.memory[-1].capacity_for(op) < math.inf for op in ("input", "weight", "output")):
        return _staged(arch, mapping)
    s: _State = (0.0, 0.0, 0.0)
    w = 0.0
    compute_total = 0.0
    for body, times in _plan(arch, mapping):
        s, w = _repeat(s, w, body, times)
        compute_total += times * sum(t.compute * n for t, n in body)
    cycles = float(math.ceil(max(w, s[1])))
    return LayerTiming(cycles, compute_total, cycles - compute_total)
