#!/usr/bin/env python3
"""How much of the GPU model's held-out error a smooth function of the shape could still remove.

    python3 bench/replay_floor.py --traces traces/nvidia-h100-sxm-xla --arch h100_sxm_units --group "gemm tfloat32"

For each seed, the device calibration is fitted on the split's training records (as
``accelsim validate --calibrate-on 0.5`` does); then two regressors of log(measured / projected) on
log2 m, n, k and batch are fitted on the same training records of ``--group`` (nearest neighbours,
distance-weighted, k = 3; gradient-boosted trees, depth 3), and the held-out MAPE of the model, and
of the model times each correction, is printed. Where even these per-shape corrections leave the
error near the model's, what is left is not a smooth function of the shape (kernel-choice jumps,
measurement noise), so no further device-level term could remove it. Needs scikit-learn
(``pip install -e .[train]``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelsim.model.arch import load_arch  # noqa: E402
from accelsim.replay.calibrate import mape  # noqa: E402
from accelsim.replay.device import gpu_items, validate_gpu  # noqa: E402
from kernels.trace import read_traces  # noqa: E402


def features(row: dict) -> list[float]:
    batch = json.loads(row["params"] or "{}").get("batch", 1)
    return [float(np.log2(v)) for v in (row["m"], row["n"], row["k"], batch)]


def floor(traces: Path, arch: str, group: str, seed: int) -> dict:
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.neighbors import KNeighborsRegressor

    table = read_traces(traces)
    cfg = load_arch(arch)
    rep = validate_gpu(table, cfg, calibrate_on=0.5, seed=seed)
    items = gpu_items(table)
    rows = [(items[k["id"]], k) for k in rep["kernels"] if k["group"] == group]
    if not rows:
        raise SystemExit(f"replay_floor: no record of group {group!r} in {traces}")
    x = np.array([features(it.row) for it, _ in rows])
    resid = np.log(np.array([k["measured_s"] / k["projected_s"] for _, k in rows]))
    train = np.array([k["split"] == "train" for _, k in rows])
    proj = np.array([k["projected_s"] for _, k in rows])[~train]
    meas = np.array([k["measured_s"] for _, k in rows])[~train]
    out = {"seed": seed, "held_out": int((~train).sum()), "model": mape(proj, meas)}
    for name, reg in (("model x knn3", KNeighborsRegressor(3, weights="distance")),
                      ("model x boosted trees", GradientBoostingRegressor(n_estimators=300, max_depth=3,
                                                                          learning_rate=0.05, random_state=0))):
        reg.fit(x[train], resid[train])
        out[name] = mape(proj * np.exp(reg.predict(x[~train])), meas)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=Path, default=ROOT / "traces" / "nvidia-h100-sxm-xla")
    ap.add_argument("--arch", default="h100_sxm_units")
    ap.add_argument("--group", default="gemm tfloat32", help="family and dtype, as validate's groups name them")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    for seed in args.seeds:
        r = floor(args.traces, args.arch, args.group, seed)
        print(f"seed {seed}: {r['held_out']} held-out {args.group}: held-out MAPE "
              + ", ".join(f"{k} {v:.1f} %" for k, v in r.items() if k not in ("seed", "held_out")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
