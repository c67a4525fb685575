"""matplotlib (Agg) figures: energy breakdown / EDP comparison; written atomically as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kernels.io import atomic_path  # noqa: E402

__all__ = ["plot_comparison", "save_figure"]


def save_figure(fig, path: str | Path) -> None:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:  # also when the write fails (a full disk): figures are never left open
        plt.close(fig)


def plot_comparison(reports, path: str | Path) -> None:
    """Stacked energy per component (left) and EDP normalised to the first arch (right)."""
    names = [r.arch for r in reports]
    comps = sorted({c for r in reports for c in r.total["energy_breakdown"]})
    fig, (ax_e, ax_d) = plt.subplots(1, 2, figsize=(11, 4.2))
    bottom = [0.0] * len(reports)
    for comp in comps:
        vals = [r.total["energy_breakdown"].get(comp, 0.0) / 1e6 for r in reports]
        ax_e.bar(names, vals, bottom=bottom, label=comp)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax_e.set_ylabel("energy (µJ)")
    ax_e.set_title(f"energy breakdown: {reports[0].workload}")
    ax_e.legend(fontsize=8)
    base = reports[0].total["edp"]
    ax_d.bar(names, [r.total["edp"] / base if base else float("nan") for r in reports], color="tab:gray")
    ax_d.axhline(1.0, color="k", lw=0.8)
    ax_d.set_ylabel(f"EDP / EDP({names[0]})")
    ax_d.set_title("energy-delay product")
    for ax in (ax_e, ax_d):
        ax.tick_params(axis="x", rotation=20)
    save_figure(fig, path)
