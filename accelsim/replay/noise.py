"""Noise of a measured gain (dense time / plan time): the range its repeats allow, and a warning when they are too few.

Trace records keep each configuration's fastest and slowest timed pass (``time_min_s``,
``time_max_s``), so the range of a ratio of two records is known without the passes themselves:
from the dense run's fastest over the plan's slowest to the dense run's slowest over the plan's
fastest. Every ratio of one dense pass to one plan pass lies in it.
"""

from __future__ import annotations

__all__ = ["MIN_REPEATS", "few_repeats_warning", "gain_range", "format_range"]

MIN_REPEATS = 3
"""Fewer timed passes than this give a gain without a usable spread: warn."""


def gain_range(dense: dict, plan: dict, passes: int) -> tuple[float, float] | None:
    """``(low, high)`` of dense/plan over the records' fastest and slowest of ``passes`` timed passes;
    None from a single pass (no spread to show) or when a time is missing or 0."""
    d_lo, d_hi = dense.get("time_min_s"), dense.get("time_max_s")
    p_lo, p_hi = plan.get("time_min_s"), plan.get("time_max_s")
    if passes < 2 or None in (d_lo, d_hi, p_lo, p_hi) or not (p_lo > 0 and p_hi > 0):
        return None
    return d_lo / p_hi, d_hi / p_lo


def format_range(r: tuple[float, float] | None) -> str:
    """``0.91–1.12x``; ``n/a`` without a range (a single pass)."""
    return "n/a" if r is None else f"{r[0]:.3g}–{r[1]:.3g}x"


def few_repeats_warning(passes: int) -> str | None:
    """A one-line warning when ``passes`` timed passes are below :data:`MIN_REPEATS`; None otherwise."""
    if passes >= MIN_REPEATS:
        return None
    return (f"warning: {passes} timed pass{'es' if passes != 1 else ''}: each gain is a ratio of "
            f"{'single timings' if passes == 1 else 'two timings'} with {'no' if passes == 1 else 'a rough'} spread; "
            f"on a busy machine it can be off several-fold. Re-run with --repeats {MIN_REPEATS} or more")
