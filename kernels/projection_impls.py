"""Descriptions (kernels.impls entries) of the projection implementations :func:`kernels.projection.bilevel_impl` names.

Registered into :data:`kernels.impls.IMPLS` when :mod:`kernels.impls` is imported. Each is a
number of whole-array passes (reads, writes; O(groups) vectors not counted), launches and host
calls, following the code paths in :mod:`kernels.projection` and :mod:`kernels.projection_device`.
The suites and ``bench/gpu/suite_projection.py`` read the passes back with :func:`passes`.
"""

from __future__ import annotations

import math

from kernels.impls import IMPLS, Impl, Record, Step, _projection_calls, _projection_size, _projection_steps, describe, register

__all__ = ["DEVICE", "MULTILEVEL_NAMES", "passes"]

DEVICE = {"reads": 2, "writes": 1, "launches": 3, "host_syncs": 0}
"""The device path: norms, l1_threshold and apply kernels (+ a memset of the norm partials when split
over row blocks); the norm pass and the apply each read the array, the apply writes it; no sync."""

# name -> (summary, whole-array reads, writes, launches, host calls)
_TABLE = {
    "bilevel_l1inf_host": ("CPU NumPy SIMD passes: max and min, then minimum and maximum into out", 4, 2, 0, 6),
    "bilevel_l12_host": ("CPU NumPy passes: |y|, squares, sum; y * scale", 4, 3, 0, 7),
    "bilevel_l11_host": ("CPU NumPy: |y| and its sum, per cache-sized block a sort, cumsum and select", 3, 2, 0, 8),
    "bilevel_l12_xp": ("about 35 CuPy calls, one float() sync", 4, 3, 35, 36),
    "bilevel_l11_xp": ("about 35 CuPy calls plus a full sort of |y| (radix: 4 passes), one sync", 8, 7, 40, 41),
}


MULTILEVEL_NAMES = tuple(f"multilevel_l1_{'_'.join([p] * levels)}_{kind}" for p in ("inf", "l2")
                         for levels in (1, 2, 3) for kind in ("device", "xp", "host"))
"""The multilevel names described: norm lists ("l1", p, ..., p), the ones the device kernels take."""


def _device_launches(r: Record) -> int:
    return DEVICE["launches"] + (int(r.params.get("splits", 1)) > 1)


def _device_calls(r: Record) -> int:
    """Input checks, 3-5 memory-pool allocations (counted as 4) and the launches; no synchronisation."""
    return 4 + _device_launches(r)


def _device_steps(r: Record) -> list[Step]:
    size = _projection_size(r)
    return [Step("projection device passes", "memory", r.unit_dtype, launches=_device_launches(r),
                 bytes_read=DEVICE["reads"] * size, bytes_written=DEVICE["writes"] * size, working_set=size)]


def _table_steps(name: str):
    _, reads, writes, launches, _ = _TABLE[name]

    def steps(r: Record) -> list[Step]:
        size = _projection_size(r)
        return [Step("projection passes", "memory", r.unit_dtype, launches=max(1, launches),
                     bytes_read=reads * size, bytes_written=writes * size, working_set=2 * size)]

    return steps


def passes(name: str, shape, dtype: str = "float32") -> tuple[int, int]:
    """(whole-array reads, writes) one call of implementation ``name`` makes, read from its registered steps."""
    impl = describe(name)
    r = Record(impl.kernel, dtype, shapes={"y": list(shape)}, params={"impl": name})
    steps = impl.steps(r)
    size = math.prod(shape) * r.item
    return sum(s.bytes_read for s in steps) // size, sum(s.bytes_written for s in steps) // size


for _name in ("bilevel_l1inf_device", "bilevel_l12_device", "bilevel_l11_device",
              *(n for n in MULTILEVEL_NAMES if n.endswith("_device"))):
    register(Impl(_name, "project_multilevel" if _name.startswith("multilevel") else "project_l1inf_bilevel", "memory",
                  "kernels/projection_device.py: 3 kernels (+ memset when split), 2 reads + 1 write over HBM, no sync",
                  _device_steps, _device_calls))
for _name in MULTILEVEL_NAMES:
    if _name.endswith("_device") or _name in IMPLS:  # multilevel_l1_inf_inf_xp: the H200 records' entry
        continue
    # level by level like the xp path of the H200 records (kernels.impls: 3 reads, 2 writes); on NumPy no launches
    register(Impl(_name, "project_multilevel", "memory", "level-by-level array calls (sort, scan per level)",
                  _projection_steps, _projection_calls if _name.endswith("_xp") else (lambda r: 0)))
for _name, (_summary, *_rest) in _TABLE.items():
    register(Impl(_name, "project_l1inf_bilevel", "memory", _summary, _table_steps(_name),
                  (lambda calls: lambda r: calls)(_rest[-1])))
