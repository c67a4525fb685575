"""Projected vs measured: the calibration split and fit, error metrics, and the ``validate`` report.

Calibration fits three named parameters: the launch overhead globally, the two efficiencies per
*group* — a kernel family at one dtype ('gemm bfloat16'), since a kernel reaches a different
fraction of peak at each dtype — where the group has enough training configurations, else per
family, else globally:

- ``launch_overhead_s``: seconds added per kernel launch (host dispatch, launch latency); per family for the
  families of :data:`OWN_CALL_COST`, whose launches are Python-level calls;
- ``threaded_call_s``: seconds added per BLAS call a NumPy record made on more than one thread
  (:func:`~accelsim.replay.project.threaded_calls`: starting and joining them; a call whose threads share packed
  panels counts several times, as they wait on each other), fitted globally as the launch overhead is;
- ``compute_efficiency``: the fraction of the arch's peak MAC rate the kernels reach;
- ``bandwidth_fraction``: the fraction of the modelled memory time the kernels reach.

The model is ``t = launches·launch_overhead_s + threaded calls·threaded_call_s + compute_s / compute_efficiency
+ memory_s / bandwidth_fraction`` with the engine's split of busy compute and memory time. It is linear in
(overheads, 1/efficiency, 1/fraction), so the fit is a least-squares problem in *relative* error
(every configuration counts alike however long it runs) with bounded coefficients — overhead ≥ 0,
efficiency and fraction in (0, 1], since the arch's peaks are what the device's best kernels reach —
solved exactly by trying each subset of free coefficients — no iterative solver, no randomness.

The split is by configuration, stratified by group and seeded, so the same
``(traces, fraction, seed)`` always trains on the same configurations, and errors are
reported on the held-out configurations only.
"""

from __future__ import annotations

import itertools
import math
import statistics
import zlib
from dataclasses import dataclass

import numpy as np

from accelsim.model.arch import ArchConfig
from accelsim.errors import AccelsimError
from accelsim.replay.project import (
    BLAS_FAMILIES, GATHER, Item, Projection, check_device, executed, replay_table, resident_level,
)

__all__ = [
    "MIN_DETERMINING",
    "MIN_FAMILY_FIT",
    "MIN_SCALE",
    "OWN_CALL_COST",
    "Params",
    "fit",
    "fit_groups",
    "fitted_params",
    "mape",
    "pearson_r",
    "plot_validation",
    "report",
    "split",
    "validate",
]

MIN_SCALE = 1.0
"""Lower bound of both fitted scales, so every fitted efficiency and bandwidth fraction is at most 1: a kernel's
typical run does not beat the arch's MAC rate (a GPU's fastest matmul, a CPU's median large square one:
:func:`~accelsim.replay.box_state.gemm_peak`) or the bandwidths its levels were measured at."""
NEGLIGIBLE = 0.02
"""A scale whose part (at scale 1) is below this fraction of the measured time on every row is held at
:data:`MIN_SCALE`, not fitted. Timing repeats spread by several % on the 2-vCPU EPYC, so such a part shows only
where its scale is well above 1, and fitting it let it trade against the compute scale: over five calibrations
the ``gemm`` bandwidth fraction ranged 0.28 to 1 (memory under 0.01 % of any GEMM's time), and with a line at
0.1 % the gather path's efficiency and fraction 0.74-1 and 0.25-1 (within 3 % and at 1 with this line). The cost:
a part under the line whose true scale is large is under-projected (scale 20 on a 2 % part: a third of the
time)."""
MIN_DETERMINING = 2
"""A scale is fitted only where its part (at scale 1) reaches :data:`NEGLIGIBLE` of the measured time on at least this
many rows; else it is held at :data:`MIN_SCALE`. One such row fits that configuration's noise: on the 2-vCPU Xeon VM
the ``gemm float64`` bandwidth fraction rested on 64³ alone (its memory part 5 % of 11 µs, its passes 7.7-14.4 µs),
came out 0.08-1 over its passes drawn again (:mod:`accelsim.replay.resample`) and 0.1-1 over five calibrations."""
MIN_FAMILY_FIT = 3
"""A group or family with fewer training configurations than this uses the next coarser fit (each fits 2 scales)."""
OWN_CALL_COST = (GATHER,)
"""Families that fit their own seconds per launch instead of the global one. NumPy's gather path makes two
Python-level calls per vector and panel (``np.take`` of its kept rows, a small ``matmul``): on the 2-vCPU EPYC (Zen 3)
about 7 µs a pair more, where the global launch overhead, fixed by a batch's tiny products whose calls NumPy makes in
C, is 0.09 µs. BERT's 1:8 ``ffn1`` (96 such calls) then came out 20-43 % fast in the calibration's own fit while the
same work in 24 calls was priced within 17 %; fitted per family, the cost came out 1.1-8.1 µs over 20 calibrations
and the held-out MAPE fell in 18 of them (BENCHMARKS.md "Twenty-fourth slice")."""
_WORST = 3


@dataclass(frozen=True)
class Params:
    """Calibration parameters; a scale of ``None`` was not determined by the fit (no such time)."""

    launch_overhead_s: float = 0.0
    compute_scale: float | None = 1.0
    memory_scale: float | None = 1.0
    source: str = "uncalibrated"
    threaded_call_s: float = 0.0

    def parts(self, p: Projection, launches: int, threaded_calls: int = 0) -> dict[str, float]:
        """The predicted seconds split by the parameter that prices each part; they add up to :meth:`predict`."""
        return {"launch_overhead_s": self.launch_overhead_s * launches,
                "threaded_call_s": self.threaded_call_s * threaded_calls,
                "compute_efficiency": (self.compute_scale or 0.0) * p.compute_s,
                "bandwidth_fraction": (self.memory_scale or 0.0) * p.memory_s}

    def predict(self, p: Projection, launches: int, threaded_calls: int = 0) -> float:
        return sum(self.parts(p, launches, threaded_calls).values())

    def to_dict(self) -> dict:
        def inv(s):
            return None if s is None or s == 0 else 1.0 / s

        return {"launch_overhead_s": self.launch_overhead_s, "threaded_call_s": self.threaded_call_s,
                "compute_efficiency": inv(self.compute_scale), "bandwidth_fraction": inv(self.memory_scale),
                "source": self.source}


def fitted_params(doc: dict) -> dict[str, float]:
    """``{name: value}`` of what a calibration's fit determined: the global overheads, and per group its own launch
    overhead (where its family fits one, :data:`OWN_CALL_COST`), its compute efficiency (unless borrowed from
    ``gemm``) and its bandwidth fraction (where it has one; 1 where the fit held it there). A calibration written
    before ``threaded_call_s`` existed has 0 for it."""
    out = {f"global.{k}": doc["global"].get(k) or 0.0 for k in ("launch_overhead_s", "threaded_call_s")}
    for g, p in doc["groups"].items():
        if p.get("launch_overhead_s") not in (None, out["global.launch_overhead_s"]):
            out[f"{g}.launch_overhead_s"] = p["launch_overhead_s"]  # its family's own (OWN_CALL_COST)
        if p.get("compute_efficiency") is not None and "gemm's compute" not in p.get("source", ""):
            out[f"{g}.compute_efficiency"] = p["compute_efficiency"]
        if p.get("bandwidth_fraction") is not None:
            out[f"{g}.bandwidth_fraction"] = p["bandwidth_fraction"]
    return out


def mape(projected, measured) -> float:
    """Mean absolute percentage error, 100·mean(|p − m| / m), of paired sequences (measured > 0).

    Examples
    --------
    >>> mape([110, 45], [100, 50])
    10.0
    """
    p, m = np.asarray(projected, float), np.asarray(measured, float)
    if p.shape != m.shape or not p.size:
        raise AccelsimError(f"mape: need equal, non-empty sequences, got {p.size} and {m.size} values")
    return float(np.mean(np.abs(p - m) / m) * 100.0)


def pearson_r(x, y) -> float | None:
    """Pearson correlation of paired sequences; ``None`` for fewer than 2 pairs or a constant one.

    Examples
    --------
    >>> pearson_r([1, 2, 3], [2, 4, 7])
    0.9933992677987828
    """
    a, b = np.asarray(x, float), np.asarray(y, float)
    if a.size < 2:
        return None
    da, db = a - a.mean(), b - b.mean()
    den = math.sqrt(float(da @ da) * float(db @ db))
    return float(da @ db / den) if den > 0 else None


def split(items: list[Item], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices ``(train, held_out)``: per group (family and dtype), a seeded shuffle; ``round(fraction·n)`` train.

    Every group with two or more configurations keeps at least one on each side; a group
    of one is held out (it is predicted with a coarser fit).
    """
    if not 0.0 < fraction < 1.0:
        raise AccelsimError(f"--calibrate-on {fraction!r}: must be a fraction strictly between 0 and 1, e.g. 0.5")
    by_group: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_group.setdefault(it.group, []).append(i)
    train, held = [], []
    for group in sorted(by_group):
        idx = by_group[group]
        order = np.random.default_rng([seed, zlib.crc32(group.encode())]).permutation(len(idx))
        n_train = 0 if len(idx) < 2 else min(len(idx) - 1, max(1, round(fraction * len(idx))))
        train += [idx[j] for j in order[:n_train]]
        held += [idx[j] for j in order[n_train:]]
    return sorted(train), sorted(held)


def _nnls(a: np.ndarray, t: np.ndarray, live: list[int]) -> np.ndarray:
    """argmin ‖a·c − t‖² over c ≥ 0 with c = 0 outside ``live``: best non-negative subset solution."""
    best, best_err = np.zeros(a.shape[1]), float(t @ t)
    for size in range(1, len(live) + 1):
        for cols in itertools.combinations(live, size):
            coef, *_ = np.linalg.lstsq(a[:, cols], t, rcond=None)
            if np.any(coef < 0):
                continue
            err = float(np.sum((a[:, cols] @ coef - t) ** 2))
            if err < best_err - 1e-12:
                best, best_err = np.zeros(a.shape[1]), err
                best[list(cols)] = coef
    return best


def fit(rows: list[tuple], source: str, launch_overhead_s: float | None = None,
        compute_scale: float | None = None, threaded_call_s: float | None = None) -> Params:
    """Fit :class:`Params` to ``(projection, launches, measured_s[, threaded_calls])`` rows: bounded, relative LS.

    Minimises Σ ((prediction − measured) / measured)² with both overheads ≥ 0 and both scales ≥
    :data:`MIN_SCALE` (efficiency and bandwidth fraction ≤ 1): the scales' excess over the bound and
    the overheads are solved over every subset (others held at 0), keeping the best non-negative
    solution — the exact bounded least-squares optimum for so few coefficients. With ``launch_overhead_s``
    and ``threaded_call_s`` given, only the two scales are fitted (a family fit reuses the global overheads:
    they are properties of the host and runtime, not of the kernel); with ``compute_scale`` given too, only the
    memory scale. Scales whose time is zero on every row (no compute in a streaming family) are not
    determined and come back ``None``; one whose time reaches :data:`NEGLIGIBLE` of the measured time on fewer than
    :data:`MIN_DETERMINING` rows is held at :data:`MIN_SCALE`.
    """
    if not rows:
        raise AccelsimError("calibration: no training configurations; raise --calibrate-on")
    rows = [(r + (0,))[:4] for r in rows]
    x = np.array([[n, p.compute_s, p.memory_s, c] for p, n, _, c in rows], float)
    y = np.array([m for _, _, m, _ in rows], float)
    a = x / y[:, None]
    t = np.ones(len(rows))
    fixed = {0: launch_overhead_s, 1: compute_scale, 3: threaded_call_s}
    for j, v in fixed.items():
        if v is not None:
            t = t - v * a[:, j]
            a[:, j] = 0.0
    held = [j for j in (1, 2) if np.any(a[:, j] > 0) and np.count_nonzero(a[:, j] > NEGLIGIBLE) < MIN_DETERMINING]
    t = t - MIN_SCALE * a[:, held].sum(axis=1)
    a[:, held] = 0.0
    live = [j for j in range(4) if np.any(a[:, j] > 0)]
    scales = [j for j in live if j in (1, 2)]
    coef = _nnls(a, t - a[:, scales].sum(axis=1), live)  # scale = MIN_SCALE + excess, excess >= 0
    coef[scales + held] += MIN_SCALE
    has_compute = bool(np.any(x[:, 1] > 0))
    return Params(
        launch_overhead_s=float(coef[0]) if launch_overhead_s is None else launch_overhead_s,
        compute_scale=(compute_scale if compute_scale is not None else float(coef[1])) if has_compute else None,
        memory_scale=float(coef[2]) if 2 in live or 2 in held else None,
        source=source,
        threaded_call_s=float(coef[3]) if threaded_call_s is None else threaded_call_s,
    )


def fit_groups(items: list[Item], projections: list[Projection], train: list[int]) -> tuple[Params, dict, dict]:
    """``(global, {family: Params}, {group: Params})`` fitted on the ``train`` items (see the module doc).

    A family with fewer than :data:`MIN_FAMILY_FIT` training configurations uses the global fit;
    a group uses its own fit only when it has enough and is not the whole family. The families of
    :data:`~accelsim.replay.project.BLAS_FAMILIES` compute with the dense GEMM's BLAS (one call per
    term), so they take the ``gemm`` compute scale of their dtype and fit only their bandwidth fraction:
    their NumPy passes and GEMMs both grow with the operands, too alike to tell two scales apart. A family of
    :data:`OWN_CALL_COST` fits its own launch overhead, which its groups keep.
    """
    rows = {i: (projections[i], items[i].launches, items[i].measured_s, items[i].threaded_calls) for i in train}
    glob = fit(list(rows.values()), "global")
    overheads = {"launch_overhead_s": glob.launch_overhead_s, "threaded_call_s": glob.threaded_call_s}
    fams, groups = {}, {}
    for f in sorted({it.family for it in items}, key=lambda f: (f in BLAS_FAMILIES, f)):
        mine = [rows[i] for i in train if items[i].family == f]
        blas = f in BLAS_FAMILIES
        borrow = (fams.get("gemm") or glob).compute_scale if blas else None
        own_calls = {**overheads, "launch_overhead_s": None} if f in OWN_CALL_COST else overheads
        fams[f] = fit(mine, f"family ({len(mine)} configs)", compute_scale=borrow, **own_calls) if len(
            mine) >= MIN_FAMILY_FIT else glob
        family_overheads = {**overheads, "launch_overhead_s": fams[f].launch_overhead_s}
        for g in sorted({it.group for it in items if it.family == f}):
            ours = [rows[i] for i in train if items[i].group == g]
            # a BLAS group fits even as the whole family: its compute scale is its dtype's GEMM's
            borrow = (groups.get(g.replace(f, "gemm", 1)) or fams.get("gemm") or glob).compute_scale \
                if blas else None
            own = len(ours) >= MIN_FAMILY_FIT and (blas or len(ours) < len(mine))
            groups[g] = fit(ours, f"group ({len(ours)} configs)" + (", gemm's compute" if blas else ""),
                            compute_scale=borrow, **family_overheads) if own else fams[f]
    return glob, fams, groups


def _errors(rows: list[dict], pred: str, meas: str) -> dict:
    p = [r[pred] for r in rows]
    m = [r[meas] for r in rows]
    r_log = pearson_r(np.log10(p), np.log10(m)) if all(v > 0 for v in p + m) else None
    return {"n": len(rows), "mape_pct": mape(p, m), "pearson_r": pearson_r(p, m), "pearson_r_log10": r_log}


def _family_report(family: str, rows: list[dict], energy: bool) -> dict:
    out = {"family": family, **_errors(rows, "projected_s", "measured_s")}
    out["worst"] = [
        {"label": r["label"], "ape_pct": r["ape_pct"], "projected_s": r["projected_s"], "measured_s": r["measured_s"]}
        for r in sorted(rows, key=lambda r: (-r["ape_pct"], r["label"]))[:_WORST]
    ]
    with_e = [r for r in rows if r.get("measured_j") is not None]
    if energy and with_e:
        out["energy"] = _errors(with_e, "projected_j", "measured_j")
        out["edp"] = _errors(with_e, "projected_edp", "measured_edp")
    return out


def validate(table, arch: ArchConfig, calibrate_on: float | None = None, seed: int = 0,
             center=statistics.median, replayed: tuple | None = None) -> dict:
    """Replay every configuration in ``table`` on ``arch`` and compare with its measurement.

    Returns a JSON-ready dict: ``kernels`` (one row each: projected/measured seconds and, where
    measured, joules and EDP; the split it fell in), ``families`` and ``overall`` (MAPE, Pearson r
    on seconds and on log10 seconds, worst kernels), ``calibration`` (fraction, seed, fitted
    parameters) and ``notes`` saying what was and was not compared. With ``calibrate_on`` the
    errors cover the held-out configurations only. Repeated runs of a configuration merge by ``center``;
    ``replayed`` is :func:`~accelsim.replay.project.replay_table`'s result where the caller has it.
    """
    notes = check_device(arch, table)
    items, projections = replayed or replay_table(table, arch, center)
    families = sorted({it.family for it in items})
    groups = sorted({it.group for it in items})
    params = {g: Params() for g in groups}
    calib = None
    evaluated = list(range(len(items)))
    if calibrate_on is not None:
        train, evaluated = split(items, calibrate_on, seed)
        glob, _, params = fit_groups(items, projections, train)
        calib = {"fraction": calibrate_on, "seed": seed, "train": len(train), "held_out": len(evaluated),
                 "train_ids": train, "global": glob.to_dict(), "params": {g: params[g].to_dict() for g in groups}}
        if not evaluated:
            raise AccelsimError("calibration left no held-out configuration; pass a smaller --calibrate-on")
    energy = any(items[i].measured_j is not None for i in evaluated)
    kernels = []
    for i, it in enumerate(items):
        p = projections[i]
        t = params[it.group].predict(p, it.launches, it.threaded_calls)
        e = p.dynamic_j + p.leakage_w * t
        row = {
            "id": i, "family": it.family, "group": it.group, "kernel": it.kernel, "label": it.label, "executed": executed(arch, it),
            "resident": arch.memory[resident_level(arch, it.working_set)].name,
            "split": "evaluated" if calibrate_on is None else ("held_out" if i in evaluated else "train"),
            "launches": it.launches, "runs": it.runs, "projected_s": t, "measured_s": it.measured_s,
            "ape_pct": abs(t - it.measured_s) / it.measured_s * 100.0, "projected_j": e, "measured_j": it.measured_j,
            "projected_edp": e * t, "measured_edp": None if it.measured_j is None else it.measured_j * it.measured_s,
        }
        kernels.append(row)
    scored = [kernels[i] for i in evaluated]
    devices = sorted({f"{it.row['device_name']} ({it.row['backend']})" for it in items})
    notes.insert(0, f"compared time of {len(scored)} {'held-out ' if calib else ''}kernel configurations "
                    f"measured on {', '.join(devices)} against arch {arch.name!r}")
    if not energy:
        notes.append("energy not compared: no compared trace record carries measured energy (energy_j is null; "
                     "the NumPy backend has no energy counter, CuPy needs NVML, imported tables carry none)")
    return report(arch.name, devices, calib, energy, scored, families, groups, kernels, notes)


def report(arch_name: str, devices: list, calib: dict, energy: bool, scored: list[dict], families, groups,
           kernels: list, notes: list) -> dict:
    """The validation report: per family and calibration group MAPE and r, over every scored record."""
    return {
        "arch": arch_name,
        "devices": devices,
        "calibration": calib,
        "energy_compared": energy,
        "overall": _family_report("all", scored, energy),
        "families": [_family_report(f, [r for r in scored if r["family"] == f], energy)
                     for f in families if any(r["family"] == f for r in scored)],
        "groups": [_family_report(g, [r for r in scored if r["group"] == g], energy)
                   for g in groups if any(r["group"] == g for r in scored)],
        "kernels": kernels,
        "notes": notes,
    }


def plot_validation(report: dict, path) -> None:
    """Projected vs measured seconds of the compared kernels, log-log, y = x line; one colour per family,
    or per group where a family was measured at several dtypes."""
    from accelsim.plots import plt, save_figure  # here: matplotlib is slow to import, only plots need it

    rows = [k for k in report["kernels"] if k["split"] != "train"]
    by = "group" if len({r["group"] for r in rows}) > len({r["family"] for r in rows}) else "family"
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    for label in sorted({r[by] for r in rows}):
        sel = [r for r in rows if r[by] == label]
        ax.loglog([r["measured_s"] for r in sel], [r["projected_s"] for r in sel], "o", label=label, alpha=0.6)
    vals = [v for r in rows for v in (r["measured_s"], r["projected_s"]) if v > 0]
    lo, hi = min(vals) / 1.5, max(vals) * 1.5
    ax.loglog([lo, hi], [lo, hi], "k-", lw=0.8, label="y = x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("projected time (s)")
    cal = report["calibration"]
    if cal and cal.get("held_out"):
        which = f"held-out ({cal['held_out']} of {cal['train'] + cal['held_out']})"
    else:
        which = "calibration from file" if cal and str(cal.get("source", "")).startswith("file") else (
            "in-sample" if cal and cal.get("train") else "uncalibrated")
    ax.set_title(f"{report['arch']}: {which}, MAPE {report['overall']['mape_pct']:.0f} %", fontsize=10)
    ax.legend(fontsize=8)
    save_figure(fig, path)
