"""How a calibration's times follow the box's state, fitted on its own passes, and the calibration priced for the
state a run found the box in.

A calibration probes the box before each trace pass (:class:`~accelsim.replay.box_state.PeakSampler`) and fits its
parameters on the passes of one state (:func:`~accelsim.replay.box_state.steady_passes`); a run probes before each
timed pass. When the run's probe rate is another than the calibration's, the fitted parameters price a box the run
did not meet. Here every pass the calibration recorded, of whatever state, gives each configuration's time beside
its pass's probe rate; the slope of log(time) on log(probe rate) over them is the calibration's *power*: a run whose
probe ran at ``r`` × the calibration's is priced at ``r ** -power`` × the calibration's time.

One power for every kernel family: on the 2-vCPU EPYC (Zen 3), powers fitted per family ranged 0.12-0.66 within one
two-thread calibration, and priced family by family the loop's mean whole-run errors came out within 0.5 points of
one power's while its mean gain errors (dense / plan, which one power leaves as they are) moved by -0.9 to +1.4
points (BENCHMARKS.md "Twenty-fourth slice"). A run whose probe lies within
:data:`~accelsim.replay.box_state.STATE_NOTE` of the calibration's is left at the calibration's state: one state's
own rounds spread that far.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pyarrow as pa

from accelsim.replay.box_state import NEAR_MEDIAN, STATE_GAP, STATE_NOTE, choose_state
from accelsim.replay.calibrate import Params
from accelsim.replay.traces import KEY

__all__ = ["MAX_POWER", "MIN_CONFIG_PASSES", "fit_power", "for_state", "kept_rows", "pass_probes", "priced_choice",
           "row_passes", "state_scale"]

MIN_CONFIG_PASSES = 3
"""Passes a configuration needs to enter the fit."""
MAX_POWER = 1.5
"""Largest power kept: a calibration whose times grew more steeply than this with the probe rate's fall is priced at
this one."""


def _keys(table: pa.Table) -> list[tuple]:
    """Each row's configuration (:data:`~accelsim.replay.traces.KEY`)."""
    return [tuple(r[c] for c in KEY) for r in table.select(list(KEY)).to_pylist()]


def row_passes(table: pa.Table, passes: dict | None) -> list[int] | None:
    """The pass each row of a calibration's traces was timed in (``passes``: the calibration's ``{"recorded",
    "kept"}``): a configuration's j-th row by time is pass j where the traces hold every pass recorded, the j-th kept
    pass where they hold only the kept ones (calibrations written before every pass was kept). None where neither
    fits (traces of another origin)."""
    if table.num_rows == 0 or not passes:
        return None
    keys = _keys(table)
    stamps = table.column("timestamp").to_pylist()
    seen: dict[tuple, int] = defaultdict(int)
    out = [0] * len(keys)
    for i in sorted(range(len(keys)), key=lambda i: (stamps[i], i)):
        out[i] = seen[keys[i]]
        seen[keys[i]] += 1
    most, kept = max(seen.values()), list(passes.get("kept") or [])
    if most == passes.get("recorded"):
        return out
    if kept and most == len(kept):
        return [kept[j] for j in out]
    return None


def kept_rows(table: pa.Table, passes: dict | None) -> pa.Table:
    """The rows of ``table`` timed in the passes a calibration fits on (``passes["kept"]``); all of them where the
    passes cannot be told (:func:`row_passes`) or every pass was kept."""
    where = row_passes(table, passes)
    if where is None:
        return table
    kept = set(passes.get("kept") or range(passes["recorded"]))
    return table.filter(pa.array([p in kept for p in where]))


def pass_probes(rounds: list[float], passes: int) -> list[float] | None:
    """The probe rate of each of ``passes`` passes: the geometric mean of the round before it and the one after (the
    last pass has only the one before). None where rounds are missing."""
    if len(rounds) < passes or passes == 0:
        return None
    return [math.sqrt(rounds[p] * rounds[p + 1]) if p + 1 < len(rounds) else rounds[p] for p in range(passes)]


def _slope(configs: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """Least-squares slope of log time on log probe rate over ``configs`` (each its passes' log probe rates and log
    times, centred on their own means), fitted again without the passes more than
    :data:`~accelsim.replay.box_state.NEAR_MEDIAN` × off the first line (a pass the scheduler interrupted), each
    configuration centred again on the passes left."""

    def fit(pts):
        x = np.concatenate([px - px.mean() for px, _ in pts])
        y = np.concatenate([py - py.mean() for _, py in pts])
        return float(x @ y) / float(x @ x) if float(x @ x) > 0 else None

    b = fit(configs)
    if b is None:
        return None
    near = [(px[m], py[m]) for px, py in configs
            if (m := np.abs((py - py.mean()) - b * (px - px.mean())) <= math.log(NEAR_MEDIAN)).sum() >= 2]
    return (fit(near) if near else None) or b


def fit_power(table: pa.Table, passes: dict | None, rounds: list[float]) -> dict | None:
    """``{"power", "span", "passes", "configs"}``: the power (:mod:`this module <accelsim.replay.probe_power>`) over
    the rows of ``table`` whose pass (:func:`row_passes`) has a probe rate (:func:`pass_probes`), of every
    configuration timed in :data:`MIN_CONFIG_PASSES` passes or more (:func:`_slope`), within [0,
    :data:`MAX_POWER`]; the span of the passes' probe rates (fastest / slowest), and how many passes and
    configurations it rests on. None where that span is within :data:`~accelsim.replay.box_state.STATE_GAP` (one
    state: nothing to fit on)."""
    where = row_passes(table, passes)
    probes = pass_probes(rounds or [], (passes or {}).get("recorded") or 0)
    if where is None or probes is None:
        return None
    keys = _keys(table)
    runs: dict[tuple, list[tuple[int, float, float]]] = defaultdict(list)
    for key, p, t in zip(keys, where, table.column("time_median_s").to_pylist()):
        if p < len(probes) and t > 0:
            runs[key].append((p, math.log(probes[p]), math.log(t)))
    configs = [np.array(pts).T for pts in runs.values() if len(pts) >= MIN_CONFIG_PASSES]
    used = {int(p) for c in configs for p in c[0]}
    span = max(probes[p] for p in used) / min(probes[p] for p in used) if used else 1.0
    b = _slope([(x, y) for _, x, y in configs]) if span > 1 + STATE_GAP else None
    if b is None:
        return None
    return {"power": min(MAX_POWER, max(0.0, -b)), "span": span, "passes": len(used), "configs": len(configs)}


def _scaled(p: Params, k: float) -> Params:
    """``p`` pricing every part ``k`` × as long."""
    return Params(p.launch_overhead_s * k, None if p.compute_scale is None else p.compute_scale * k,
                  None if p.memory_scale is None else p.memory_scale * k, p.source, p.threaded_call_s * k)


def state_scale(power: dict | None, ratio: float | None) -> float | None:
    """How many times the calibration's time a run whose probe ran at ``ratio`` × the calibration's is priced at:
    ``ratio ** -power`` (``power``: :func:`fit_power`'s), 1 where ``ratio`` is within
    :data:`~accelsim.replay.box_state.STATE_NOTE` of 1 (the calibration's state). None without a power or a ratio."""
    if not power or not ratio or ratio <= 0:
        return None
    return 1.0 if abs(ratio - 1.0) <= STATE_NOTE else ratio ** -power["power"]


def for_state(cal: dict, doc: dict, state: dict | None) -> tuple[dict, list[str]]:
    """The calibration ``cal`` (:func:`~accelsim.replay.calibration_dir.load_calibration_dir`'s) priced for the
    run's box state (``state``: :func:`~accelsim.replay.box_state.compared_state`) by the power its document
    ``doc`` fitted (``probe_power``, :func:`state_scale`), and a note saying so; ``cal`` as it is, and no note,
    without either or in the calibration's state."""
    k = state_scale(doc.get("probe_power"), (state or {}).get("ratio"))
    if k is None or k == 1.0:
        return cal, []
    out = {**cal, "global": _scaled(cal["global"], k),
           "families": {f: _scaled(p, k) for f, p in cal["families"].items()},
           "groups": {g: _scaled(p, k) for g, p in cal["groups"].items()}}
    note = (f"box state: the projection is priced for the run's probe rate ({state['ratio']:.3g} x the "
            f"calibration's) by the power the calibration fitted on its passes ({doc['probe_power']['power']:.2f}): "
            f"{k:.3g} x its time")
    return out, [note]


def priced_choice(paths: list, loaded: list, table: pa.Table) -> tuple:
    """``(pick, arch, calibration, notes, state)``: of the calibrations ``loaded`` (``(arch, calibration, doc)``
    each, read from ``paths``) the one that prices the run in ``table``
    (:func:`~accelsim.replay.box_state.choose_state`), priced for the run's state (:func:`for_state`), with what
    both say of it and the run's state against it (the report's ``box_state``)."""
    pick, notes, state = choose_state(paths, [doc for *_, doc in loaded], table)
    arch, cal, doc = loaded[pick]
    cal, priced = for_state(cal, doc, state)
    return pick, arch, cal, notes + priced, state
