"""Descriptions of the projection implementations :func:`kernels.projection.bilevel_impl` names (kernels.impls entries).

:data:`ENTRIES` is registered by :mod:`kernels.impls`. Each is a
number of whole-array passes (reads, writes; O(groups) vectors not counted), launches and host
calls, following the code paths in :mod:`kernels.projection` and :mod:`kernels.projection.device`.
The suites and ``bench/gpu/suite_projection.py`` read the passes back with :func:`kernels.impls.passes`;
the level-by-level multilevel names (:data:`LEVELWISE`) share the H200 records' xp description in
:mod:`kernels.impls`.
"""

from __future__ import annotations

from kernels.impl_types import Impl, Record, Step, _projection_size

__all__ = ["DEVICE", "ENTRIES", "LEVELWISE", "MULTILEVEL_NAMES"]

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


_DEVICE_NAMES = ("bilevel_l1inf_device", "bilevel_l12_device", "bilevel_l11_device",
                 *(n for n in MULTILEVEL_NAMES if n.endswith("_device")))
LEVELWISE = tuple(n for n in MULTILEVEL_NAMES if not n.endswith("_device"))
"""Multilevel names run level by level (CuPy calls or NumPy): described like the H200 records' xp path."""
ENTRIES = (
    *(Impl(name, "project_multilevel" if name.startswith("multilevel") else "project_l1inf_bilevel", "memory",
           "kernels/projection/device.py: 3 kernels (+ memset when split), 2 reads + 1 write over HBM, no sync",
           _device_steps, _device_calls) for name in _DEVICE_NAMES),
    *(Impl(name, "project_l1inf_bilevel", "memory", row[0], _table_steps(name), (lambda calls: lambda r: calls)(row[-1]))
      for name, row in _TABLE.items()),
)
