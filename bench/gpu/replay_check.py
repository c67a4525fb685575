#!/usr/bin/env python3
"""The replay check (issue 15) on a GPU run's own trace records: the saved calibration applied, then split fits.

    python3 bench/gpu/replay_check.py --traces $OUT/traces.parquet --json $OUT/validate.json

The GPU kernel records of the run (every suite's calls, ``suite_replay.py``'s re-recording of the
validation set's cases among them, and the ``network`` suite's layers; not its whole-run records,
which ``accelsim validate`` replays as a run, nor NumPy baselines) are replayed on the builtin GPU
arch describing the device:

- ``saved``: with the device calibration saved from the a1a550e records
  (``docs/results/<arch>_calibration.json``, where one exists for this device), so every record of
  the current kernels is an out-of-sample check of calibrate-once-apply-elsewhere;
- ``split``: fitted on half of these records and scored on the rest, seeds 0, 1, 2, with energy and
  EDP on the records whose NVML window was at least 1 s (``suite_replay.py``'s and the network
  suite's; the other kernel suites time only, to fit the job's 8 minutes).

Each report keeps the per-family MAPE and Pearson r, the fitted parameters and the records that
dominate the error, and ``meets`` says which of the issue's goals hold. A check that cannot run
(no arch for the device, no calibration for it, too few records) is named in ``notes``.

``--calibration DIR`` (the job's ``accelsim calibrate`` step) carries that directory into the JSON under
``calibrate``, since the job brings back at most 8 files: the text of its ``arch.yaml``, its
``calibration.json`` and held-out MAPE, and (a GPU calibration) ``applied``: the run's other kernel records
replayed on that arch with those parameters, as ``accelsim validate --calibration DIR`` would.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pyarrow.compute as pc  # noqa: E402

from bench.gpu.common import write_json  # noqa: E402

from accelsim.errors import AccelsimError  # noqa: E402
from accelsim.model.arch import load_arch  # noqa: E402
from accelsim.model.gpu import gpu_archs  # noqa: E402
from accelsim.replay.device import validate_gpu  # noqa: E402
from accelsim.replay.calibration_dir import ARCH_FILE, CALIBRATION_FILE, check_same_device  # noqa: E402
from accelsim.replay.gpu_calibration import SUITE, is_gpu_calibration_dir, load_gpu_calibration_dir  # noqa: E402
from accelsim.replay.project import arch_for  # noqa: E402
from kernels.trace import read_traces  # noqa: E402

SEEDS = (0, 1, 2)
GOALS = {"overall_mape_pct": 10.0, "family_mape_pct": 15.0, "pearson_r": 0.98, "energy_mape_pct": 15.0}


def calibration_file(arch: str) -> Path:
    return ROOT / "docs" / "results" / f"{arch.split('_')[0]}_calibration.json"


def kernel_records(table):
    """The records a kernel replay compares: the GPU's kernel calls, the network suite's layers among them (timed
    with >= 1 s NVML windows: the run's energy data); not its whole-run records (``accelsim validate`` replays a
    run) nor the NumPy baselines some suites time beside the GPU."""
    run = pc.fill_null(pc.equal(table["kernel"], "network"), False)
    cpu = pc.fill_null(pc.equal(table["backend"], "numpy"), False)
    return table.filter(pc.invert(pc.or_(run, cpu)))


def meets(rep: dict) -> dict:
    """Which of the issue's goals this report meets (energy: None where no record had a ≥ 1 s window)."""
    energy = rep["overall"].get("energy")
    return {
        "overall_mape": rep["overall"]["mape_pct"] <= GOALS["overall_mape_pct"],
        "every_family_mape": all(f["mape_pct"] <= GOALS["family_mape_pct"] for f in rep["families"]),
        "pearson_r": (rep["overall"]["pearson_r"] or 0.0) >= GOALS["pearson_r"],
        "params_inside_bounds": all(p["inside_bound"] for p in rep["calibration"]["params"].values()),
        "energy_mape": energy["mape_pct"] <= GOALS["energy_mape_pct"] if energy else None,
    }


def summary(rep: dict) -> dict:
    """The report without its per-record rows, plus what it meets."""
    cal = rep["calibration"]
    return {
        "overall": rep["overall"], "families": rep["families"], "groups": rep["groups"],
        "energy_compared": rep["energy_compared"], "notes": rep["notes"], "meets": meets(rep),
        "calibration": {"source": cal["source"], "params": {n: p["value"] for n, p in cal["params"].items()},
                        "energy_params": cal["energy_params"], "dominant": cal["dominant"]},
    }


def carry(cal_dir: Path, table) -> dict:
    """The calibrate step's directory: its arch text, calibration and held-out MAPE, and (GPU) applied to
    ``table``'s records other than its own."""
    out: dict = {"dir": str(cal_dir), "notes": []}
    arch_f, cal_f = cal_dir / ARCH_FILE, cal_dir / CALIBRATION_FILE
    if not (arch_f.is_file() and cal_f.is_file()):
        out["notes"].append(f"no finished calibration in {cal_dir} (the calibrate step failed or ran out of time)")
        return out
    doc = json.loads(cal_f.read_text())
    out.update(arch_yaml=arch_f.read_text(), calibration=doc, held_out_mape_pct=doc.get("held_out_mape_pct"))
    if not is_gpu_calibration_dir(cal_dir):
        out["notes"].append("a CPU calibration (the dry run's NumPy stand-in): carried, not applied")
        return out
    others = table.filter(pc.invert(pc.fill_null(pc.equal(table["suite"], SUITE), False)))
    if others.num_rows == 0:
        out["notes"].append("no GPU kernel records besides the calibration's own (NumPy records are left out): "
                            "not applied")
        return out
    try:
        arch, cal_file, _ = load_gpu_calibration_dir(cal_dir)
        notes = check_same_device({"device_name": doc.get("device")}, others, str(cal_dir))
        out["applied"] = summary(validate_gpu(others, arch, calibration=cal_file))
        out["notes"] += notes
    except AccelsimError as exc:
        out["notes"].append(f"not applied: {exc}")
    return out


def check(traces: Path, calibration: Path | None = None) -> dict:
    table = kernel_records(read_traces(traces))
    out: dict = {"traces": str(traces), "records": table.num_rows, "goals": GOALS, "notes": []}
    if calibration is not None:
        out["calibrate"] = carry(calibration, table)
    arch = arch_for(table, gpu_archs()) if table.num_rows else None
    out["arch"] = arch
    if arch is None:
        out["notes"].append("no kernel records of a device a builtin GPU arch describes; nothing replayed")
        return out
    cfg = load_arch(arch)
    saved = calibration_file(arch)
    try:
        rep = validate_gpu(table, cfg, calibration=saved)
        # every record's projection with the saved calibration: which kernels a new description gets wrong
        rows = [{k: r[k] for k in ("label", "impl", "executed", "bound", "projected_s", "measured_s", "ape_pct",
                                   "projected_j", "measured_j", "energy_window_s")} for r in rep["kernels"]]
        out["saved"] = {"calibration": str(saved.relative_to(ROOT)), **summary(rep), "kernels": rows}
    except (AccelsimError, OSError) as exc:
        out["notes"].append(f"saved calibration not applied: {exc}")
    out["split"] = {}
    for seed in SEEDS:
        try:
            out["split"][str(seed)] = summary(validate_gpu(table, cfg, calibrate_on=0.5, seed=seed))
        except AccelsimError as exc:
            out["notes"].append(f"split fit, seed {seed}: {exc}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", required=True, type=Path, help="trace parquet file or folder of one GPU run")
    ap.add_argument("--json", required=True, type=Path, help="where the reports go")
    ap.add_argument("--calibration", type=Path, help="an `accelsim calibrate` directory to carry into the JSON")
    args = ap.parse_args(argv)
    try:
        out = check(args.traces, args.calibration)
    except AccelsimError as exc:
        print(f"replay_check: {exc}", file=sys.stderr)
        return 2
    write_json(args.json, out)
    for name, rep in [("saved", out.get("saved")), *((f"split seed {s}", r) for s, r in out.get("split", {}).items())]:
        if rep:
            fams = ", ".join(f"{f['family']} {f['mape_pct']:.1f}" for f in rep["families"])
            print(f"{name}: MAPE {rep['overall']['mape_pct']:.1f} % ({fams}); meets {rep['meets']}")
    cal = out.get("calibrate")
    if cal and cal.get("held_out_mape_pct") is not None:
        applied = cal.get("applied")
        print(f"calibrate: held-out MAPE {cal['held_out_mape_pct']:.1f} %"
              + (f"; applied to {applied['overall']['n']} other configurations: MAPE {applied['overall']['mape_pct']:.1f} %"
                 if applied else ""))
    for n in out["notes"] + (cal or {}).get("notes", []):
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
