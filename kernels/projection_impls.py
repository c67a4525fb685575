"""How each projection implementation runs, keyed by the name trace records carry in ``params["impl"]``.

One entry per implementation: the unit doing the work, kernel launches per call, passes over the
array per memory level (``read``/``write`` counts of the whole array; O(groups) vectors are not
counted), host-side operations and synchronisations per call. Figures follow the code paths in
:mod:`kernels.projection` and :mod:`kernels.projection_device`; the replay and the GPU suite read
``passes`` to place a time against the memory roofline.
"""

from __future__ import annotations

__all__ = ["IMPLEMENTATIONS", "describe"]

_DEVICE = {
    "unit": "GPU, memory-bound, CUDA cores",
    "launches": "3 kernels (norms, l1_threshold, apply) + 1 memset when the norms are split over row blocks",
    "passes": {"hbm": {"read": 2, "write": 1}, "l2": "norm partials (splits x groups), folded once",
               "smem": "the group-norm vector, once per Michelot sweep (typically 1-8)"},
    "host_ops": "input checks, 3-5 memory-pool allocations, launch-shape lookup (memoized)",
    "host_syncs": 0,
}
_HOST_INF = {
    "unit": "CPU, memory-bound, NumPy SIMD (workers threads over wide blocks)",
    "launches": None,
    "passes": {"dram": {"read": 4, "write": 2}},  # max and min; minimum then maximum into out
    "host_ops": "whole-array NumPy passes; l1 threshold by Condat-started Michelot sweeps on the group norms",
    "host_syncs": None,
}
_XP_GPU = {
    "unit": "GPU through generic CuPy array calls (CPU: NumPy over 64-column blocks)",
    "launches": "about 35 CuPy calls (sort, cumsum, reductions, elementwise)",
    "passes": {"hbm": {"read": 4, "write": 2}},
    "host_ops": "one float() of the norm sum (finiteness check)",
    "host_syncs": 1,
}

IMPLEMENTATIONS = {
    "bilevel_l1inf_device": _DEVICE,
    "bilevel_l12_device": _DEVICE,
    "bilevel_l11_device": {
        **_DEVICE,
        "passes": {"hbm": {"read": 2, "write": 1}, "l2": {"read": 1},  # the apply re-reads its group for the signs
                   "smem": "each group's |y| staged once; its l1-ball sweeps run there"},
    },
    "multilevel_l1_inf_inf_device": _DEVICE,
    "multilevel_l1_l2_l2_device": _DEVICE,
    "bilevel_l1inf_host": _HOST_INF,
    "bilevel_l12_host": {**_HOST_INF, "passes": {"dram": {"read": 4, "write": 3}}},  # |y|, squares, sum; y*scale
    "bilevel_l11_host": {**_HOST_INF, "unit": "CPU, NumPy over cache-sized blocks (per-group sorts)",
                         "passes": {"dram": "|y| and its sum, then per block a sort, cumsum and select (cache-resident)"}},
    "bilevel_l1inf_xp": _XP_GPU,
    "bilevel_l12_xp": {**_XP_GPU, "passes": {"hbm": {"read": 4, "write": 3}}},
    "bilevel_l11_xp": {**_XP_GPU, "launches": "about 35 CuPy calls plus a per-group sort of |y|",
                       "passes": {"hbm": "|y| and its sum, a full sort, cumsum and select of |y|"}},
}
"""Implementation name -> description (plain, JSON-ready dicts)."""


def describe(impl: str) -> dict | None:
    """The description of ``impl`` (``params["impl"]`` of a trace record), None for unlisted ones
    (the level-by-level multilevel code, whose cost depends on the norm list)."""
    found = IMPLEMENTATIONS.get(impl)
    return None if found is None else dict(found)
