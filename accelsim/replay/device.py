"""Replay on the GPU unit model: trace record → implementation steps → time and energy; one calibration per device.

Used by ``accelsim validate`` when the arch has a ``gpu:`` section. Each measured configuration
(rows merged as :mod:`accelsim.replay.traces` does) is described by its implementation
(:mod:`kernels.impls`, ``params["impl"]`` or inferred for older records) and timed by
:mod:`accelsim.model.gpu`. The calibration is the six :class:`~accelsim.model.gpu.DeviceParams`,
fitted at once on the training configurations of every family (bounded least squares in relative
error, deterministic), saved with the device it belongs to and applicable to any other trace set
of that device. Energy is compared only on records whose NVML window was at least
:data:`MIN_ENERGY_WINDOW_S`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from accelsim.checks import ensure_finite, read_json
from accelsim.errors import AccelsimError
from accelsim.model.arch import ArchConfig
from accelsim.model.gpu import BOUNDS, ENERGY_BOUNDS, DeviceParams, EnergyParams, energy, gpu_of, record_time
from accelsim.replay.labels import row_label
from accelsim.replay.project import FAMILIES, Measured
from accelsim.replay.traces import merge_runs
from kernels.trace import MIN_ENERGY_WINDOW_S

__all__ = [
    "CALIBRATION_VERSION",
    "MIN_ENERGY_WINDOW_S",
    "CalibrationError",
    "GpuItem",
    "fit_device",
    "fit_energy",
    "gpu_items",
    "load_calibration",
    "predict",
    "write_calibration",
    "validate_gpu",
]

CALIBRATION_VERSION = 1

class CalibrationError(AccelsimError):
    """A calibration file that cannot be used: unreadable, another version, or another device."""


@dataclass(kw_only=True)
class GpuItem(Measured):
    """A :class:`Measured` configuration with its implementation's steps."""

    impl: str
    window_s: float | None
    steps: list
    host_calls: int

    @property
    def launches(self) -> int:
        return sum(s.launches for s in self.steps)


def gpu_items(table) -> list[GpuItem]:
    """Merged configurations of ``table`` with their implementation steps, sorted by key."""
    from kernels.errors import InputError
    from kernels.impls import Record, describe, infer_impl

    items = []
    merged = merge_runs(table)
    for key in sorted(merged, key=lambda k: tuple(str(v) for v in k)):
        row = merged[key]
        rec = Record.from_row(row)
        try:
            name = infer_impl(rec)
            impl = describe(name)
            steps, calls = impl.steps(rec), int(impl.host_calls(rec))
        except InputError as exc:
            raise AccelsimError(str(exc)) from None
        window = row.get("energy_window_s")
        items.append(GpuItem(key=key, family=FAMILIES.get(row["kernel"], row["kernel"]), kernel=row["kernel"],
                             label=row_label(row), measured_s=float(row["time_s"]), measured_j=row["energy_j"],
                             runs=row["runs"], row=row, impl=name, window_s=window, steps=steps, host_calls=calls))
    return items


def predict(arch: ArchConfig, p: DeviceParams, it: GpuItem) -> float:
    return record_time(arch, p, it.steps, it.host_calls)[0]


_NAMES = list(BOUNDS)


def _vector(p: DeviceParams) -> np.ndarray:
    # efficiencies are fitted as their inverses (time is linear in them), the costs as they are
    return np.array([getattr(p, n) if not n.endswith("efficiency") else 1.0 / getattr(p, n) for n in _NAMES])


def _params(x) -> DeviceParams:
    return DeviceParams(**{n: float(v) if not n.endswith("efficiency") else 1.0 / float(v) for n, v in zip(_NAMES, x)})


def fit_device(arch: ArchConfig, items: list[GpuItem]) -> DeviceParams:
    """The six device parameters minimising Σ((projected − measured)/measured)² over ``items``, within :data:`BOUNDS`.

    Bounded trust-region least squares from the arch's defaults and from a few fixed starts;
    the best result is kept, so the fit is deterministic.
    """
    from scipy.optimize import least_squares

    if not items:
        raise AccelsimError("calibration: no training configurations; raise --calibrate-on")
    lo = np.array([BOUNDS[n][0] if not n.endswith("efficiency") else 1.0 for n in _NAMES])
    hi = np.array([BOUNDS[n][1] if not n.endswith("efficiency") else 1.0 / BOUNDS[n][0] for n in _NAMES])
    meas = np.array([it.measured_s for it in items])

    def resid(x):
        p = _params(x)
        return np.array([predict(arch, p, it) for it in items]) / meas - 1.0

    base = _vector(DeviceParams.defaults(gpu_of(arch)))
    starts = [np.clip(base, lo, hi)] + [np.clip(base * f, lo, hi) for f in (0.5, 2.0)] + [lo + (hi - lo) * 0.3]
    best = None
    for x0 in starts:
        x0 = np.minimum(np.maximum(x0, lo + 1e-12), hi - 1e-12)
        res = least_squares(resid, x0, bounds=(lo, hi), x_scale=np.maximum(np.abs(x0), 1e-7), method="trf",
                            diff_step=1e-4, max_nfev=400)
        if best is None or res.cost < best.cost - 1e-12:
            best = res
    return _params(best.x)


def fit_energy(arch: ArchConfig, p: DeviceParams, items: list[GpuItem]) -> EnergyParams | None:
    """Energy parameters fitted on ``items`` with a measured window ≥ :data:`MIN_ENERGY_WINDOW_S`; None when there are none."""
    from scipy.optimize import least_squares

    usable = [it for it in items if _energy_ok(it)]
    if len(usable) < len(ENERGY_BOUNDS):
        return None
    names = list(ENERGY_BOUNDS)
    lo = np.array([ENERGY_BOUNDS[n][0] for n in names])
    hi = np.array([ENERGY_BOUNDS[n][1] for n in names])
    parts = []
    for it in usable:
        t, times = record_time(arch, p, it.steps, it.host_calls)
        parts.append((it, t, times))

    def resid(x):
        e = EnergyParams(*x)
        return np.array([energy(arch, it.steps, times, t, e) / it.measured_j - 1.0 for it, t, times in parts])

    x0 = np.clip(np.array([1.0, 1.0, 1.0, gpu_of(arch).energy.static_w]), lo, hi)
    res = least_squares(resid, x0, bounds=(lo, hi), method="trf", max_nfev=400)
    return EnergyParams(*[float(v) for v in res.x])


def _energy_ok(it: GpuItem) -> bool:
    return it.measured_j is not None and it.window_s is not None and it.window_s >= MIN_ENERGY_WINDOW_S


def device_of(items: list[GpuItem]) -> str:
    names = sorted({str(it.row.get("device_name")) for it in items})
    return ", ".join(names)


def write_calibration(path, arch: ArchConfig, device: str, p: DeviceParams, e: EnergyParams | None, source: dict,
                      extra: dict | None = None) -> None:
    """Write the calibration JSON atomically (temporary name, then rename); ``extra`` adds top-level fields
    (``accelsim calibrate``: its format, measurements and held-out score), which :func:`load_calibration` ignores."""
    from kernels.io import atomic_path

    doc = {**(extra or {}), "version": CALIBRATION_VERSION, "arch": arch.name, "device": device,
           "params": p.to_dict(), "bounds": {n: [b[0], b[1]] for n, b in BOUNDS.items()},
           "energy": None if e is None else e.to_dict(), "fitted_on": source}
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.write("\n")


def load_calibration(path, arch: ArchConfig, device: str) -> tuple[DeviceParams, EnergyParams | None, dict]:
    """Read a calibration saved by :func:`write_calibration`; refuse one of another device or arch."""
    doc = read_json(path, "device calibration JSON (--calibration)", CalibrationError)
    if not isinstance(doc, dict) or doc.get("version") != CALIBRATION_VERSION:
        raise CalibrationError(f"--calibration {os.fspath(path)}: not a version-{CALIBRATION_VERSION} accelsim calibration")
    if doc.get("device") != device or doc.get("arch") != arch.name:
        raise CalibrationError(f"--calibration {os.fspath(path)}: fitted for device {doc.get('device')!r} on arch "
                               f"{doc.get('arch')!r}, but the traces come from {device!r} on arch {arch.name!r}")
    for section in ("params", "energy"):
        values = doc.get(section)
        if section == "params" or values is not None:
            if not isinstance(values, dict):
                raise CalibrationError(f"--calibration {os.fspath(path)}: field {section}: expected a mapping of "
                                       f"numbers, got {values!r}"[:300])
            for key, v in values.items():
                ensure_finite(v, f"--calibration {os.fspath(path)}: field {section}.{key}")
    try:
        p = DeviceParams(**doc["params"])
        e = None if doc.get("energy") is None else EnergyParams(**doc["energy"])
    except (KeyError, TypeError) as exc:
        raise CalibrationError(f"--calibration {os.fspath(path)}: bad params: {exc}") from None
    for name, (lo, hi, _) in BOUNDS.items():
        v = getattr(p, name)
        if not (lo <= v <= hi and math.isfinite(v)):
            raise CalibrationError(f"--calibration {os.fspath(path)}: {name} = {v!r} is outside its bound [{lo}, {hi}]")
    return p, e, doc.get("fitted_on") or {}


def with_defaults(arch: ArchConfig) -> DeviceParams:
    return DeviceParams.defaults(gpu_of(arch))


def _dominant(rows: list[dict], n: int = 5) -> list[dict]:
    """The records with the largest squared relative error, and their share of the total."""
    total = sum((r["ape_pct"] / 100) ** 2 for r in rows) or 1.0
    worst = sorted(rows, key=lambda r: (-r["ape_pct"], r["label"]))[:n]
    return [{"label": r["label"], "impl": r["impl"], "ape_pct": r["ape_pct"],
             "share_of_squared_error": (r["ape_pct"] / 100) ** 2 / total} for r in worst]


def validate_gpu(table, arch: ArchConfig, calibrate_on: float | None = None, seed: int = 0,
                 calibration=None, save_calibration=None) -> dict:
    """Replay ``table`` on ``arch``'s GPU unit model and compare with the measurements.

    Parameters come from ``calibration`` (a file of :func:`write_calibration`), else are fitted on
    the ``calibrate_on`` split (errors then cover the held-out configurations only), else are the
    arch's uncalibrated defaults. ``save_calibration`` writes the fitted parameters (fitted on all
    configurations when ``calibrate_on`` is not given). The report has the shape of
    :func:`accelsim.replay.calibrate.validate`'s, with ``calibration.params`` naming each parameter's
    value, bound and meaning, and ``calibration.dominant`` the records that dominate the error.
    """
    from accelsim.replay.calibrate import report, split
    from accelsim.replay.project import check_device

    notes = check_device(arch, table)
    items = gpu_items(table)
    device = device_of(items)
    evaluated = list(range(len(items)))
    train: list[int] = []
    e_params = None
    if calibration is not None:
        if calibrate_on is not None:
            raise CalibrationError("pass --calibration or --calibrate-on, not both")
        p, e_params, fitted_on = load_calibration(calibration, arch, device)
        source = f"file {os.fspath(calibration)} (fitted on {fitted_on.get('configurations', '?')} configurations)"
    elif calibrate_on is not None:
        train, evaluated = split(items, calibrate_on, seed)
        if not evaluated:
            raise AccelsimError("calibration left no held-out configuration; pass a smaller --calibrate-on")
        p = fit_device(arch, [items[i] for i in train])
        e_params = fit_energy(arch, p, [items[i] for i in train])
        source = f"fitted on {len(train)} configurations (fraction {calibrate_on}, seed {seed})"
    elif save_calibration is not None:
        train = evaluated
        p = fit_device(arch, items)
        e_params = fit_energy(arch, p, items)
        source = f"fitted on all {len(items)} configurations (errors are in-sample)"
    else:
        p = with_defaults(arch)
        source = "uncalibrated (the arch's defaults)"
    if save_calibration is not None:
        fitted_on = {"configurations": len(train), "fraction": calibrate_on, "seed": seed}
        write_calibration(save_calibration, arch, device, p, e_params, fitted_on)
    e_used = e_params or EnergyParams()
    kernels = []
    held = set(evaluated)
    for i, it in enumerate(items):
        t, times = record_time(arch, p, it.steps, it.host_calls)
        j = energy(arch, it.steps, times, t, e_used)
        meas_j = it.measured_j if _energy_ok(it) else None
        kernels.append({
            "id": i, "family": it.family, "group": it.group, "kernel": it.kernel, "impl": it.impl, "label": it.label,
            "executed": ", ".join(f"{s.name} on {s.unit}" for s in it.steps),
            "bound": ", ".join(x.bound for x in times),
            "split": "evaluated" if calibrate_on is None else ("held_out" if i in held else "train"),
            "launches": it.launches, "host_calls": it.host_calls, "runs": it.runs,
            "projected_s": t, "measured_s": it.measured_s, "ape_pct": abs(t - it.measured_s) / it.measured_s * 100.0,
            "projected_j": j, "measured_j": meas_j, "energy_window_s": it.window_s,
            "projected_edp": j * t, "measured_edp": None if meas_j is None else meas_j * it.measured_s,
        })
    scored = [kernels[i] for i in evaluated]
    energy_cmp = any(r["measured_j"] is not None for r in scored)
    families = sorted({it.family for it in items})
    groups = sorted({it.group for it in items})
    notes.insert(0, f"compared time of {len(scored)} {'held-out ' if calibrate_on is not None else ''}kernel "
                    f"configurations measured on {device} against the GPU unit model of arch {arch.name!r}")
    if not energy_cmp:
        windows = [it.window_s for it in items if it.measured_j is not None]
        notes.append(f"energy unmeasured: no compared record has an NVML window >= {MIN_ENERGY_WINDOW_S:g} s "
                     f"({len(windows)} records carry energy_j over shorter or unrecorded windows; re-record on a "
                     f"GPU with the current recorder: bash bench/gpu/run.sh, bench/gpu/README.md)")
    calib = {
        "model": "gpu-units", "source": source, "fraction": calibrate_on, "seed": seed,
        "train": len(train), "held_out": len(evaluated) if calibrate_on is not None else 0, "train_ids": train,
        "params": {n: {"value": getattr(p, n), "lower": BOUNDS[n][0], "upper": BOUNDS[n][1], "meaning": BOUNDS[n][2],
                       "inside_bound": BOUNDS[n][0] <= getattr(p, n) <= BOUNDS[n][1]} for n in BOUNDS},
        "energy_params": None if e_params is None else {
            n: {"value": getattr(e_params, n), "lower": ENERGY_BOUNDS[n][0], "upper": ENERGY_BOUNDS[n][1],
                "meaning": ENERGY_BOUNDS[n][2]} for n in ENERGY_BOUNDS},
        "dominant": _dominant(scored),
    }
    return report(arch.name, [device], calib, energy_cmp, scored, families, groups, kernels, notes)
