"""Descriptions of the projection implementations :func:`kernels.projection.bilevel_impl` names (kernels.impls entries).

:data:`ENTRIES` and :data:`LEGACY` are registered by :mod:`kernels.impls`. Each is a
number of whole-array passes (reads, writes; O(groups) vectors not counted), launches and host
calls, following the code paths in :mod:`kernels.projection` and :mod:`kernels.projection.device`.
The suites and ``bench/gpu/suite_projection.py`` read the passes back with :func:`kernels.impls.passes`;
the level-by-level multilevel names (:data:`LEVELWISE`) share the H200 records' xp description
(:data:`LEGACY`).
"""

from __future__ import annotations

import math

from kernels.errors import InputError
from kernels.impl_types import Impl, Record, Step

__all__ = ["DEVICE", "ENTRIES", "LEGACY", "LEVELWISE", "MULTILEVEL_NAMES"]

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


def _projection_size(r: Record) -> int:
    shape = r.shapes.get("y") or r.shapes.get("t")
    if not shape:
        raise InputError(f"trace record {r.kernel!r}: shapes has no 'y' (the projected array)")
    return math.prod(int(s) for s in shape) * r.item


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


# ---------------------------------------- records made through a1a550e, and the level-by-level names
# kernels/projection.py on CuPy, counted call by call: each CuPy call is one host dispatch and (most) one
# kernel launch; an allocation or a synchronisation (float() of a device scalar, thrust's sort) is a host
# call without a launch. (host calls, launches) per step:
_L1_BALL_ROWS = (
    (1, 1),  # xp.asarray(radii): a scalar copied to the device
    (1, 1),  # -a
    (7, 5),  # xp.sort: a copy, then thrust: temp allocation, 4 radix passes, a sync
    (1, 1),  # -(sorted)
    (3, 2),  # xp.cumsum: CUB scan: temp allocation, 2 launches
    (4, 4),  # arange, s * k, csum - rr, >=
    (3, 3),  # count_nonzero, rho - 1, maximum
    (4, 4),  # take_along_axis: index arrays, gather
    (3, 3),  # - radii, maximum(rho, 1), /
    (4, 4),  # sum(a), <= radii, maximum(tau, 0), where
    (2, 2),  # a - tau, maximum(., 0)
)
_PROJECTION_CALLS = {
    # (host calls, launches, full-size reads, full-size writes)
    "project_l1inf_bilevel": (
        6 + 2 + sum(h for h, _ in _L1_BALL_ROWS) + 4,  # norms (max, min, -, maximum, copy, empty); sum + sync; clip
        5 + 1 + sum(n for _, n in _L1_BALL_ROWS) + 3, 3, 1),
    "project_multilevel": (
        1 + 2 + 2 + 1 + sum(h for h, _ in _L1_BALL_ROWS) + 2 + 2,  # abs; 2 max; sum + sync; asarray; l1 ball; 2 min
        1 + 2 + 1 + 1 + sum(n for _, n in _L1_BALL_ROWS) + 2 + 2, 3, 2),    # ...; copysign, astype
}


def _projection_steps(r: Record) -> list[Step]:
    _, launches, reads, writes = _PROJECTION_CALLS[r.kernel]
    size = _projection_size(r)
    return [Step("projection passes", "memory", r.unit_dtype, launches=launches, bytes_read=reads * size,
                 bytes_written=writes * size, working_set=2 * size)]


def _projection_calls(r: Record) -> int:
    return _PROJECTION_CALLS[r.kernel][0]


LEGACY = (
    Impl("bilevel_l1inf_xp", "project_l1inf_bilevel", "memory", "~45 CuPy calls (sort, scan) and their syncs",
         _projection_steps, _projection_calls),
    Impl("multilevel_l1_inf_inf_xp", "project_multilevel", "memory", "~45 CuPy calls (sort, scan) and their syncs",
         _projection_steps, _projection_calls),
    *(Impl(name, "project_multilevel", "memory", "level-by-level array calls (sort, scan per level)",
           _projection_steps, _projection_calls if name.endswith("_xp") else (lambda r: 0))
      for name in LEVELWISE if name != "multilevel_l1_inf_inf_xp"),  # that one: the H200 records' entry above
)
"""The implementations of the H200 records (:func:`kernels.impls.infer_impl` names them); the level-by-level
multilevel names (:data:`LEVELWISE`) share their description."""
