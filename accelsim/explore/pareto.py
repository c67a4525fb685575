"""Pareto fronts of sweep results: which points no other point beats on both axes, and a plot of them."""

from __future__ import annotations

import math
from pathlib import Path

from accelsim.errors import ConfigError

__all__ = ["ALIASES", "pareto_front", "plot_pareto", "sweep_fronts"]

#: Short axis names accepted for the result columns.
ALIASES = {"area": "area_mm2", "energy": "energy_pj", "time": "seconds", "util": "utilization"}


def pareto_front(xs, ys, *, maximize_x: bool = False, maximize_y: bool = False) -> list[int]:
    """Indices of the non-dominated points, in order of increasing x (decreasing x when maximised).

    A point dominates another when it is no worse on both axes and better on one; equal points
    do not dominate each other, so duplicates on the front are all kept. NaN points are never
    on the front. O(n log n): sort by x then y, keep each point strictly better in y than all
    points with strictly better x.

    Examples
    --------
    >>> pareto_front([1, 2, 3, 2], [3, 2, 1, 3])
    [0, 1, 2]
    """
    sx, sy = (-1 if maximize_x else 1), (-1 if maximize_y else 1)
    pts = sorted((sx * x, sy * y, i) for i, (x, y) in enumerate(zip(xs, ys))
                 if not (math.isnan(x) or math.isnan(y)))
    front: list[int] = []
    best = math.inf
    j = 0
    while j < len(pts):
        x = pts[j][0]
        group = []
        while j < len(pts) and pts[j][0] == x:
            group.append(pts[j])
            j += 1
        y0 = group[0][1]
        if y0 < best:
            front.extend(i for _, y, i in group if y == y0)
            best = y0
    return front


def _column(table, name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in table.column_names:
        raise ConfigError(f"column {name!r}: not in the results (have: {', '.join(table.column_names)})")
    return name


def sweep_fronts(table, x: str, y: str, *, workloads: list[str] | None = None, maximize_x: bool = False,
                 maximize_y: bool = False) -> tuple[str, str, dict[str, tuple[list[dict], list[int]]]]:
    """Per workload: its rows and the indices of its Pareto front on columns ``x`` and ``y``.

    Fronts are per workload because one config's numbers on different networks are not comparable points.
    """
    x, y = _column(table, x), _column(table, y)
    rows = table.to_pylist()
    names = sorted({r["workload"] for r in rows})
    for w in workloads or []:
        if w not in names:
            raise ConfigError(f"--workload {w!r}: not in the results (have: {', '.join(names)})")
    out = {}
    for w in workloads or names:
        sub = [r for r in rows if r["workload"] == w]
        try:
            xs = [float(r[x]) if r[x] is not None else math.nan for r in sub]
            ys = [float(r[y]) if r[y] is not None else math.nan for r in sub]
        except (TypeError, ValueError):
            raise ConfigError(f"columns {x!r} and {y!r}: must be numeric to compare points") from None
        out[w] = (sub, pareto_front(xs, ys, maximize_x=maximize_x, maximize_y=maximize_y))
    return x, y, out


def plot_pareto(fronts: dict[str, tuple[list[dict], list[int]]], x: str, y: str, path: str | Path) -> None:
    """One panel per workload (their scales differ): all points faint, the front joined and highlighted."""
    from accelsim.plots import plt, save_figure  # here: matplotlib is slow to import, only plots need it

    n = max(1, len(fronts))
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.5), squeeze=False)
    for ax, (w, (rows, front)) in zip(axes[0], fronts.items()):
        ax.scatter([r[x] for r in rows], [r[y] for r in rows], s=10, alpha=0.3, color="tab:gray",
                   label=f"all ({len(rows)})")
        ax.plot([rows[i][x] for i in front], [rows[i][y] for i in front], "o-", ms=5, color="tab:red",
                label=f"Pareto front ({len(front)})")
        for col, setter in ((x, ax.set_xscale), (y, ax.set_yscale)):
            vals = [r[col] for r in rows if r[col] is not None and r[col] > 0]
            if vals and max(vals) / min(vals) > 100:
                setter("log")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(w)
        ax.legend(fontsize=8)
    fig.suptitle(f"Pareto front: {y} vs {x}")
    save_figure(fig, path)
