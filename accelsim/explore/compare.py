"""Comparing reports of several architectures on one workload: speedup, energy and EDP ratios."""

from __future__ import annotations

from accelsim.errors import WorkloadError
from accelsim.model.simulate import Report

__all__ = ["compare_reports", "ratio"]


def compare_reports(reports: list[Report]) -> dict:
    """Ratios of each report against the first (the baseline), in total and per layer.

    ``speedup`` = baseline cycles / cycles; ``energy_ratio`` and ``edp_ratio`` = value / baseline.
    A ratio over zero (an arch whose energies are all 0, which the schema allows) is None, JSON null.
    """
    base = reports[0]
    names = [l.name for l in base.layers]
    for r in reports[1:]:
        if [l.name for l in r.layers] != names:
            raise WorkloadError(f"compare: reports of {base.arch!r} and {r.arch!r} cover different layers")
    archs = [
        {
            "arch": r.arch,
            "cycles": r.total["cycles"],
            "energy_pj": r.total["energy_pj"],
            "edp": r.total["edp"],
            "speedup": ratio(base.total["cycles"], r.total["cycles"]),
            "energy_ratio": ratio(r.total["energy_pj"], base.total["energy_pj"]),
            "edp_ratio": ratio(r.total["edp"], base.total["edp"]),
        }
        for r in reports
    ]
    layers = [
        {
            "name": name,
            "speedup": [ratio(base.layers[i].cycles, r.layers[i].cycles) for r in reports],
            "energy_ratio": [ratio(r.layers[i].energy_pj, base.layers[i].energy_pj) for r in reports],
            "edp_ratio": [ratio(r.layers[i].edp, base.layers[i].edp) for r in reports],
        }
        for i, name in enumerate(names)
    ]
    return {"workload": base.workload, "baseline": base.arch, "archs": archs, "layers": layers}


def ratio(num: float, den: float) -> float | None:
    """``num / den``, or None when ``den`` is 0 (no baseline to compare against)."""
    return num / den if den else None
