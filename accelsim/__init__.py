"""accelsim: a tile-level simpy simulator for sparse-DNN accelerators (cycles, traffic, energy, EDP)."""

from accelsim.model.arch import ArchConfig, builtin_archs, load_arch
from accelsim.errors import AccelsimError, ConfigError, WorkloadError
from accelsim.model.simulate import LayerResult, Report, simulate
from accelsim.model.workload import Conv, Gemm, KronMatmul, Network, Sparsity, read_topology_csv

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
