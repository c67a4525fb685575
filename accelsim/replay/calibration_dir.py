"""A calibration directory (``accelsim calibrate --out DIR``): its three files, reading it back, and the traces
it may price (those of the same device and BLAS thread count)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from accelsim.errors import AccelsimError
from accelsim.replay.calibrate import Params
from accelsim.replay.labels import params_of
from accelsim.replay.probe_power import MAX_POWER

__all__ = [
    "ARCH_FILE",
    "CALIBRATION_FILE",
    "FORMAT",
    "TRACES_DIR",
    "VERSION",
    "CalibrationDirError",
    "check_same_device",
    "is_calibration_dir",
    "load_calibration_dir",
]

ARCH_FILE = "arch.yaml"
CALIBRATION_FILE = "calibration.json"
TRACES_DIR = "traces"
FORMAT = "accelsim.cpu_calibration"
VERSION = 1


class CalibrationDirError(AccelsimError):
    """A calibration directory that cannot be used: missing files, another format, another device."""


def is_calibration_dir(path) -> bool:
    return path is not None and Path(path).is_dir()


def load_calibration_dir(path, flag: str = "--calibration") -> tuple:
    """``(arch, calibration, doc)`` of a directory written by
    :func:`~accelsim.replay.device_calibration.calibrate_device`; ``calibration`` is what
    :func:`~accelsim.replay.network.compare_run` takes. Errors name the option ``flag``."""
    from accelsim.checks import ensure_finite, read_json
    from accelsim.model.arch import load_arch

    path = Path(path)
    cal_file, arch_file = path / CALIBRATION_FILE, path / ARCH_FILE
    for f in (cal_file, arch_file):
        if not f.is_file():
            raise CalibrationDirError(f"{flag} {path}: has no {f.name}; write the directory with "
                                      "`accelsim calibrate --out DIR`")
    doc = read_json(cal_file, f"calibration JSON ({flag})", CalibrationDirError)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise CalibrationDirError(f"{flag} {cal_file}: not a version-{VERSION} {FORMAT} file")

    def params(d, where):
        if not isinstance(d, dict):
            raise CalibrationDirError(f"{flag} {cal_file}: field {where}: expected a mapping")
        vals = {}
        for key in ("launch_overhead_s", "threaded_call_s", "compute_scale", "memory_scale"):
            v = d.get(key)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)
                                  or ensure_finite(v, f"{flag} {cal_file}: field {where}.{key}") < 0):
                raise CalibrationDirError(f"{flag} {cal_file}: field {where}.{key} = {v!r}: expected a "
                                          "non-negative number")
            vals[key] = v
        return Params(vals["launch_overhead_s"] or 0.0, vals["compute_scale"], vals["memory_scale"],
                      f"{d.get('source', where)} ({path})", vals["threaded_call_s"] or 0.0)

    _check_power(doc.get("probe_power"), f"{flag} {cal_file}")
    cal = {"global": params(doc.get("global"), "global"),
           "families": {k: params(v, f"families.{k}") for k, v in (doc.get("families") or {}).items()},
           "groups": {k: params(v, f"groups.{k}") for k, v in (doc.get("groups") or {}).items()},
           "configs": doc.get("configs")}
    return load_arch(arch_file), cal, doc


def _check_power(power, where: str) -> None:
    """Refuse a ``probe_power`` (:func:`~accelsim.replay.probe_power.fit_power`) that is not null or a mapping whose
    ``power`` is a number in [0, :data:`~accelsim.replay.probe_power.MAX_POWER`]."""
    if power is None:
        return
    v = power.get("power") if isinstance(power, dict) else power
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= MAX_POWER:
        raise CalibrationDirError(f"{where}: field probe_power{'.power' if isinstance(power, dict) else ''} = "
                                  f"{v!r}: expected a number in [0, {MAX_POWER:g}]")


def _threads_of(row: dict) -> int | None:
    v = params_of(row).get("blas_threads")
    return int(v) if isinstance(v, int) else None


def check_same_device(doc: dict, table: pa.Table, where: str) -> list[str]:
    """Refuse traces of another device name, or (a CPU calibration: ``doc`` has ``blas_threads``) BLAS thread
    count, than the calibration's; notes otherwise."""
    rows = table.select(["device_name", "params"]).to_pylist()
    names = sorted({r["device_name"] or "" for r in rows})
    cpu = doc.get("blas_threads") is not None
    threads = sorted({t for t in map(_threads_of, rows) if t is not None}) if cpu else []
    mine = repr(doc.get("device_name")) + (f" with {doc.get('blas_threads')} BLAS threads" if cpu else "")
    if names != [doc.get("device_name")] or (threads and threads != [doc.get("blas_threads")]):
        theirs = ", ".join(repr(n) for n in names) + (f" with {'/'.join(map(str, threads))} BLAS threads"
                                                      if threads else "")
        raise CalibrationDirError(f"--calibration {where}: recorded on {mine}, but the traces come from {theirs}; "
                                  "run `accelsim calibrate` on the device that recorded them")
    return [] if threads or not cpu else [f"the traces do not record their BLAS thread count; the calibration's "
                                          f"is {doc.get('blas_threads')}"]
