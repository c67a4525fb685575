"""The `--mapper` and `--objective` options that simulate, compare, sweep and tasd search share."""

from __future__ import annotations

from enum import Enum

import typer

__all__ = ["MapperKind", "MapperOpt", "Objective", "ObjectiveOpt", "mapper_of"]


class MapperKind(str, Enum):
    fixed = "fixed"
    search = "search"


class Objective(str, Enum):
    edp = "edp"
    latency = "latency"
    energy = "energy"


MapperOpt = typer.Option(MapperKind.fixed, "--mapper", help="fixed: SCALE-Sim's mapping (the parity reference); "
                         "search: the best mapping per layer by --objective (tiles, loop order, K split)")
ObjectiveOpt = typer.Option(Objective.edp, "--objective", help="what --mapper search minimises per layer: "
                            "edp (energy x cycles), latency (cycles) or energy")


def mapper_of(mapper: MapperKind, objective: Objective):
    """The library's :class:`~accelsim.model.mapper.Mapper` for the two options."""
    from accelsim.model.mapper import Mapper

    return Mapper(mapper.value, objective.value)
