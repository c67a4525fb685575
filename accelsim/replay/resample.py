"""How far a calibration's fit moves with the passes it happened to time: each fitted parameter's interval over
refits on its passes drawn again with replacement (a bootstrap over passes).

Pass ``j`` of every configuration ran at the same minute, so a draw takes whole passes (the same pass indices for
every configuration) and keeps what the box did to all of them at once. The interval is what this calibration
can say about its own parameters; a second calibration outside it saw a box in another state (it drifted between
the two), not just other draws of the same noise.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from accelsim.replay.calibrate import fit_groups

__all__ = ["INTERVAL", "ROUNDS", "param_intervals"]

ROUNDS = 200
"""Refits per calibration (about 1 s for the 60 NumPy configurations): on a Xeon VM calibration, ten seeds of 200 put
every parameter's limits within 1.3 % of those of 4000 refits."""
INTERVAL = (5.0, 95.0)
"""Percentiles of the refitted values kept: a central 90 % interval."""


def _drawn(items, passes: np.ndarray, center) -> list:
    out = []
    for it in items:
        times = it.row.get("run_times_s") or []
        mine = [times[j] for j in passes if j < len(times)]
        out.append(dataclasses.replace(it, measured_s=float(center(mine))) if mine else it)
    return out


def param_intervals(items, projections, center, named, *, rounds: int = ROUNDS, seed: int = 0) -> dict:
    """``{parameter: {"lo", "hi", "half_width_pct"}}`` over ``rounds`` refits of every configuration of ``items`` on
    passes drawn with replacement (seeded: the same calibration gives the same intervals). ``named(glob, groups)``
    names the fitted values of one fit (:func:`~accelsim.replay.calibrate.fitted_params` of its document);
    ``half_width_pct`` is half the interval over its middle. Empty where no configuration has two passes."""
    n = max((len(it.row.get("run_times_s") or []) for it in items), default=0)
    if n < 2:
        return {}
    rng = np.random.default_rng(seed)
    every = list(range(len(items)))
    values: dict[str, list[float]] = {}
    for _ in range(rounds):
        glob, _, groups = fit_groups(_drawn(items, rng.integers(0, n, n), center), projections, every)
        for name, v in named(glob, groups).items():
            values.setdefault(name, []).append(v)
    out = {}
    for name, vs in values.items():
        lo, hi = (float(x) for x in np.percentile(vs, INTERVAL))
        mid = (lo + hi) / 2
        out[name] = {"lo": lo, "hi": hi, "half_width_pct": 100.0 * (hi - lo) / 2 / mid if mid > 0 else None}
    return out
