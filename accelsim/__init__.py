"""accelsim: a tile-level simpy simulator for sparse-DNN accelerators (cycles, traffic, energy, EDP)."""

from __future__ import annotations

import importlib

from accelsim.errors import AccelsimError, ConfigError, WorkloadError

__all__ = [
    "AccelsimError",
    "ArchConfig",
    "ConfigError",
    "Conv",
    "Gemm",
    "KronMatmul",
    "LayerResult",
    "Network",
    "Report",
    "Sparsity",
    "WorkloadError",
    "builtin_archs",
    "load_arch",
    "read_topology_csv",
    "simulate",
]

__version__ = "0.1.0"

#: Where each lazily loaded name lives: ``import accelsim`` (and so every CLI start) stays free of
#: pydantic, numpy and networkx until a name is first used.
_LAZY = {
    "ArchConfig": "accelsim.model.arch",
    "builtin_archs": "accelsim.model.arch",
    "load_arch": "accelsim.model.arch",
    "LayerResult": "accelsim.model.simulate",
    "Report": "accelsim.model.simulate",
    "simulate": "accelsim.model.simulate",
    "Conv": "accelsim.model.workload",
    "Gemm": "accelsim.model.workload",
    "KronMatmul": "accelsim.model.workload",
    "Network": "accelsim.model.workload",
    "Sparsity": "accelsim.model.workload",
    "read_topology_csv": "accelsim.model.workloads",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'accelsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
