"""The mapper: the best mapping of one GEMM or convolution on an arch, by bounded search of its mapspace.

``fixed`` is SCALE-Sim's mapping (:func:`accelsim.model.mapping.map_gemm`, the parity reference);
``search`` enumerates the mapspace the arch allows and keeps the mapping that minimises the
objective (``edp``, ``latency`` or ``energy``) as :func:`accelsim.simulate` prices it: on systolic
arrays :mod:`.systolic` (tiles from :mod:`.tiles`), on tensor cores :mod:`.tensor_core`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from accelsim.errors import ConfigError
from accelsim.model.arch import ArchConfig, SystolicCompute
from accelsim.model.mapper.common import Window
from accelsim.model.mapper.systolic import search as _search_systolic
from accelsim.model.mapper.tensor_core import search as _search_tensor_core
from accelsim.model.mapping import DENSE_EXEC, Exec, Mapping, map_gemm

__all__ = ["MAPPERS", "OBJECTIVES", "Mapper", "Window", "plan_gemm", "search_gemm"]

MAPPERS = ("fixed", "search")
OBJECTIVES = ("edp", "latency", "energy")


@dataclass(frozen=True)
class Mapper:
    """Which mapper runs and what it minimises; ``Mapper()`` is SCALE-Sim's fixed mapping."""

    kind: str = "fixed"
    objective: str = "edp"

    def __post_init__(self):
        if self.kind not in MAPPERS:
            raise ConfigError(f"mapper {self.kind!r}: use one of {', '.join(MAPPERS)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective {self.objective!r}: use one of {', '.join(OBJECTIVES)}")


FIXED = Mapper()


def plan_gemm(arch: ArchConfig, name: str, m: int, n: int, k: int, dtype: str, count: int = 1,
              exe: Exec = DENSE_EXEC, mapper: Mapper = FIXED, window: Window | None = None) -> Mapping:
    """The mapping ``mapper`` chooses for ``count`` GEMMs (``window``: the convolution they lower)."""
    if mapper.kind == "fixed":
        return map_gemm(arch, name, m, n, k, dtype, count, exe)
    return search_gemm(arch, name, m, n, k, dtype, count, exe, mapper.objective, window)


#: Searched mappings by (arch, problem, execution, objective), least recently used dropped past
#: CACHE_SIZE: a sweep over many archs keeps its memory bounded, one network's layers all stay.
_CACHE: dict = {}
CACHE_SIZE = 4096


def search_gemm(arch: ArchConfig, name: str, m: int, n: int, k: int, dtype: str, count: int = 1,
                exe: Exec = DENSE_EXEC, objective: str = "edp", window: Window | None = None) -> Mapping:
    """The best mapping by ``objective``; results are cached by (arch, problem, execution, objective)."""
    window = window or Window.gemm(m)
    key = (arch.model_dump_json(), m, n, k, dtype, count, repr(exe), objective, window)
    if key not in _CACHE:
        if isinstance(arch.compute, SystolicCompute):
            _CACHE[key] = _search_systolic(arch, name, m, n, k, dtype, count, exe, objective, window)
        else:
            _CACHE[key] = _search_tensor_core(arch, m, n, k, dtype, count, exe, objective)
        while len(_CACHE) > CACHE_SIZE:
            del _CACHE[next(iter(_CACHE))]
    _CACHE[key] = found = _CACHE.pop(key)  # the most recently used last (dicts keep insertion order)
    mp = copy.deepcopy(found)
    mp.layer = name
    return mp
