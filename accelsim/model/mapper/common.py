"""What every search shares: the convolution a GEMM lowers, and how a candidate mapping is costed and ranked."""

from __future__ import annotations

from dataclasses import dataclass

from accelsim.model.arch import ArchConfig
from accelsim.model.energy import mapping_actions, price
from accelsim.model.engine import run_mapping
from accelsim.model.mapping import Mapping


@dataclass(frozen=True)
class Window:
    """A convolution's output pixels and window: ``k = c·fy·fx`` of its im2col GEMM, ``m = batch·oy·ox``."""

    batch: int
    oy: int
    ox: int
    fy: int = 1
    fx: int = 1
    sy: int = 1
    sx: int = 1

    @classmethod
    def gemm(cls, m: int) -> Window:
        return cls(1, m, 1)


def cost(arch: ArchConfig, mp: Mapping) -> tuple[float, float]:
    """(cycles, energy in pJ) of one mapping, as ``simulate`` prices it (leakage included)."""
    cycles = run_mapping(arch, mp).cycles
    actions = mapping_actions(arch, mp)
    actions["leakage.cycle"] = cycles
    return cycles, sum(price(arch, actions).values())


def rank(objective: str, cycles, energy):
    if objective == "latency":
        return cycles, energy
    if objective == "energy":
        return energy, cycles
    return energy * cycles, cycles
