"""Reading a trace record for replay: its fields, strictly, and what every replay workload shares.

A record that cannot be replayed raises :class:`ReplayError` naming the record and the column; a
:class:`Streaming` workload is one priced by its memory traffic alone; :func:`resident_level` says where a
working set stays between the warm calls a trace times, :func:`streaming_levels` where a pass over it is served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from accelsim.errors import AccelsimError
from accelsim.model.arch import ArchConfig

__all__ = ["ReplayError", "Streaming", "arch_dtype", "json_field", "need", "positive_ints", "resident_level",
           "streaming_levels"]

_DTYPES = {"float16": "fp16", "bfloat16": "bf16", "tfloat32": "tf32", "float32": "fp32", "float64": "fp64",
           "int8": "int8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}


class ReplayError(AccelsimError):
    """A trace record or trace set that cannot be replayed on the given arch."""


@dataclass(frozen=True)
class Streaming:
    """A bandwidth-bound kernel: ``bytes_read`` and ``bytes_written`` streamed, ``bytes_indexed`` moved by
    element-granular gathers and scatters (at the level's ``indexed_bandwidth``), ``bytes_grouped`` by rank steps
    over short groups (at its ``grouped_bandwidth``), ``working_set`` resident."""

    name: str
    bytes_read: int
    bytes_written: int
    working_set: int
    launches: int = 1
    bytes_indexed: int = 0
    bytes_grouped: int = 0


def json_field(row: dict, column: str) -> dict:
    try:
        value = json.loads(row[column] or "{}")
    except json.JSONDecodeError:
        raise ReplayError(f"trace record {row['kernel']!r}: column {column} is not JSON: {row[column]!r}") from None
    return value if isinstance(value, dict) else {}


def need(row: dict, column: str):
    value = row.get(column)
    if value is None:
        raise ReplayError(f"trace record {row['kernel']!r}: column {column} is null; replay needs it")
    return value


def arch_dtype(row: dict) -> str:
    dtype = _DTYPES.get(row["dtype"])
    if dtype is None:
        raise ReplayError(f"trace record {row['kernel']!r}: dtype {row['dtype']!r} has no arch dtype ({', '.join(_DTYPES)})")
    return dtype


def positive_ints(row: dict, column: str, value, what: str) -> list[int]:
    """``value`` as a non-empty list of positive integers, else a :class:`ReplayError` naming the record."""
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ReplayError(f"trace record {row['kernel']!r}: {column} {what} must be positive integers, got {value!r}")
    return value


def resident_level(arch: ArchConfig, working_set: int) -> int:
    """Index of the innermost level (never the innermost one) that holds ``working_set`` bytes; 0 if none."""
    keeping = [i for i, lvl in enumerate(arch.memory[:-1]) if lvl.capacity_bytes is None or lvl.capacity_bytes >= working_set]
    return keeping[-1] if keeping else 0


def streaming_levels(arch: ArchConfig, working_set: int) -> list[tuple]:
    """``(level, share of the traffic)`` a :class:`Streaming` pass over ``working_set`` bytes is served from: its
    :func:`resident_level`, and where the next level in (never the innermost) is too small for the working set,
    that level too, for the share it holds (its capacity over the working set). Passes that sweep a working set
    larger than a cache again and again do not all miss it: a last-level cache that adapts its replacement to
    such sweeps keeps about that share. On the 2-vCPU Xeon VM (30 MiB of L3) MiniLM's full-size TASD-A layers,
    whose run-time compression keeps 51 MiB live, were projected 14 % (one thread) and 8 % (two) slow with every
    pass priced from DRAM, 5 % and 1 % with 59 % of it from the L3 (the five loops of e507bf9 refitted,
    ``bench/bench_loop_refit.py``). Over five such sets of five loops, the full-size plans' median errors went from
    -1.9..+8.1 % to -8.4..+4.5 % (8 of 10 closer to 0), their gains' from -7.7..+5.3 % to -1.9..+4.8 %."""
    i = resident_level(arch, working_set)
    inner = arch.memory[i + 1] if i + 2 < len(arch.memory) else None
    if inner is None or not inner.capacity_bytes or working_set <= inner.capacity_bytes:
        return [(arch.memory[i], 1.0)]
    held = inner.capacity_bytes / working_set
    return [(inner, held), (arch.memory[i], 1.0 - held)]
