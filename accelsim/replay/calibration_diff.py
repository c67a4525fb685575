"""Two calibrations of one device side by side (``accelsim calibrate --against DIR``): how far each fitted
parameter, each measured peak and each group's projected time moved, and whether the box was in the same state.

A fitted bandwidth fraction prices only the part of a family's time its level streams (a quarter to a third for
``nm_gather``, ``dense_terms`` and ``batched_gemm`` on the 2-vCPU EPYC), so it moves three to four times as far as
the times it was fitted on; the projected times say what a user of either calibration would see.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from accelsim.errors import AccelsimError
from accelsim.replay.box_state import STATE_NOTE, gemm_peak, pass_center, probe_warm_s
from accelsim.replay.calibrate import fitted_params

__all__ = ["DRIFT", "check_against", "compare_dirs"]

DRIFT = 0.10
"""Relative change of a parameter above which two calibrations of one device are called apart (issue #26's bound)."""


def _change(a, b) -> float | None:
    return None if not a or b is None else b / a - 1.0


def _peaks(doc: dict, arch) -> dict[str, float]:
    """The box's own rates as one calibration measured them: MAC rates, copies and, from its arch, each level's
    scatters and rank steps. A fitted parameter's change reads against theirs: on the 2-vCPU Xeon VM the L3 rank steps'
    fastest of 28-36 moved by 13 % between calibrations minutes apart, as far as the parameters that missed there."""
    m = doc["measured"]
    out = {f"gemm {d} GFLOP/s": gemm_peak(r) for d, r in m["gemm_gflops"].items()}
    out |= {f"copy {lvl} GB/s": r["max"] for lvl, r in m["copy_gbs"].items()}
    return out | {f"{kind} {lvl.name} GB/s": rate * arch.clock_ghz for lvl in arch.memory
                  for kind in ("indexed", "grouped") if (rate := getattr(lvl, f"{kind}_bandwidth"))}


def check_against(doc: dict, where, device_name: str, blas_threads: int) -> None:
    """Refuse a calibration of another device or BLAS thread count than ``device_name`` with ``blas_threads``."""
    if doc.get("device_name") != device_name or doc.get("blas_threads") != blas_threads:
        raise AccelsimError(f"--against {where}: calibrated {doc.get('device_name')!r} with {doc.get('blas_threads')} "
                            f"BLAS threads, but this is {device_name!r} with {blas_threads}; compare calibrations of "
                            "one device")


def _priced(arch, cal, table) -> dict:
    """``{config key: (group, {part: seconds})}``: each configuration of ``table`` priced by ``arch`` and ``cal``, its
    time split into the parts each parameter scales (they add up to the projected warm time)."""
    from accelsim.replay.network import params_for
    from accelsim.replay.project import replay_table

    out = {}
    for it, p in zip(*replay_table(table, arch)):
        out[it.key] = (it.group, params_for(cal, it).parts(p, it.launches, it.threaded_calls))
    return out


def _measured(table, doc: dict, arch) -> dict:
    """``{config key: seconds}``: each configuration's own time in a calibration's traces, merged over the passes
    it fitted on as the fit merges them (:func:`~accelsim.replay.probe_power.kept_rows`,
    :func:`~accelsim.replay.box_state.pass_center`)."""
    from accelsim.replay.probe_power import kept_rows
    from accelsim.replay.project import items_from_table

    return {it.key: it.measured_s for it in items_from_table(kept_rows(table, doc.get("passes")), arch, pass_center)}


def _shares(priced: dict, name: str) -> tuple:
    """Median and largest share of the projected time that parameter ``name`` prices, over the configurations
    it prices (``(None, None)`` where it prices none)."""
    scope, part = name.rsplit(".", 1)
    shares = [parts[part] / sum(parts.values()) for group, parts in priced.values()
              if (scope == "global" or group == scope) and parts[part] > 0]
    return (statistics.median(shares), max(shares)) if shares else (None, None)


def _held(doc: dict) -> dict[str, int]:
    """Bytes each cache level held by the copy probe of a calibration (:mod:`accelsim.replay.cache_probe`): part of
    the box's state, since a VM's share of its host's cache can change between calibrations (the 2-vCPU Xeon VM's
    L3 held 30 MiB in some, 60 in others, and the fractions fitted moved with it by up to 36 %)."""
    caches = (doc.get("measured") or {}).get("caches") or []
    return {f"l{c['level']}": c.get("effective_size", c.get("size")) for c in caches if isinstance(c, dict)}


def _inside(span: dict | None, a: float, b: float | None) -> dict:
    """``a``'s interval over its passes drawn again (:mod:`accelsim.replay.resample`), widened to hold ``a`` itself,
    and whether ``b`` lies in it: outside, the box moved between the two calibrations beyond what ``a``'s own passes
    spread."""
    if not span or b is None:
        return {"a_interval": None, "inside": None}
    lo, hi = min(span["lo"], a), max(span["hi"], a)
    return {"a_interval": [lo, hi], "inside": lo <= b <= hi}


def compare_dirs(a, b) -> dict:
    """Calibration ``b`` against ``a`` (directories of ``accelsim calibrate``): each fitted parameter, peak and the
    box-state probe with its relative change (the probe's none where the two took it after different warm-ups,
    :func:`~accelsim.replay.box_state.probe_warm_s`; a parameter's also with the median and largest share of ``a``'s
    projected time it prices, ``a``'s interval for it and whether ``b``'s value lies in it), and per group the change
    of the projected time of ``a``'s trace configurations when ``b``'s arch and parameters price them (median and
    largest ``|change|``) beside the median and largest change of those configurations' own times, as each
    calibration measured them: where a parameter moved as far as its group's own times did, the box moved, not the
    fit."""
    from accelsim.replay.calibration_dir import TRACES_DIR, load_calibration_dir
    from accelsim.replay.traces import load

    (arch_a, cal_a, doc_a), (arch_b, cal_b, doc_b) = load_calibration_dir(a, "--against"), load_calibration_dir(b)
    check_against(doc_a, a, doc_b.get("device_name"), doc_b.get("blas_threads"))
    pa_, pb_ = fitted_params(doc_a), fitted_params(doc_b)
    table = load(Path(a) / TRACES_DIR)
    ta, tb = _priced(arch_a, cal_a, table), _priced(arch_b, cal_b, table)
    ma = _measured(table, doc_a, arch_a)
    mb = _measured(load(Path(b) / TRACES_DIR), doc_b, arch_b) if (Path(b) / TRACES_DIR).is_dir() else {}
    spans = doc_a.get("param_intervals") or {}
    params = [{"name": k, "a": v, "b": pb_.get(k), "change": _change(v, pb_.get(k)),
               **dict(zip(("share", "share_max"), _shares(ta, k))), **_inside(spans.get(k), v, pb_.get(k))}
              for k, v in pa_.items()]
    ka, kb = _peaks(doc_a, arch_a), _peaks(doc_b, arch_b)
    peaks = [{"name": k, "a": v, "b": kb.get(k), "change": _change(v, kb.get(k))} for k, v in ka.items()]
    by_group: dict[str, list[float]] = {}
    own: dict[str, list[float]] = {}
    for key, (group, parts) in ta.items():
        if key in tb and sum(parts.values()) > 0:
            by_group.setdefault(group, []).append(sum(tb[key][1].values()) / sum(parts.values()) - 1.0)
        if ma.get(key) and key in mb:
            own.setdefault(group, []).append(mb[key] / ma[key] - 1.0)
    projection = [{"group": g, "configs": len(v), "median_change": statistics.median(v),
                   "max_change": max(v, key=abs),
                   "measured_median_change": statistics.median(own[g]) if own.get(g) else None,
                   "measured_max_change": max(own[g], key=abs) if own.get(g) else None}
                  for g, v in sorted(by_group.items())]
    probe_a, probe_b = doc_a.get("gemm_probe_gflops"), doc_b.get("gemm_probe_gflops")
    moved = [p for p in params if p["change"] is not None]
    worst = max(moved, key=lambda p: abs(p["change"]), default=None)
    probe_change = _change(probe_a, probe_b) if probe_warm_s(doc_a) == probe_warm_s(doc_b) else None
    caches_a, caches_b = _held(doc_a), _held(doc_b)
    same_probe = None if probe_change is None else abs(probe_change) <= STATE_NOTE
    same_caches = None if not (caches_a and caches_b) else caches_a == caches_b
    return {"a": str(a), "b": str(b), "device_name": doc_a.get("device_name"),
            "blas_threads": doc_a.get("blas_threads"),
            "state": {"a_probe_gflops": probe_a, "b_probe_gflops": probe_b, "change": probe_change,
                      "a_caches": caches_a, "b_caches": caches_b, "same_caches": same_caches,
                      "same": False if False in (same_probe, same_caches) else same_probe},
            "params": params, "peaks": peaks, "projection": projection,
            "within": worst is None or abs(worst["change"]) <= DRIFT, "worst": worst}
