"""How far a calibration's single warm GEMMs miss by shape, and how much of it the bytes BLAS packs explain (issue #26).

The ``gemm`` group fits one compute efficiency for every shape, and every BLAS family borrows it (the cold GEMMs'
fraction absorbs what it misses on their shapes). For each calibration directory this prints each warm single
fp32 GEMM's error under the saved fit, then two least-squares fits of its measured times in relative error: the
model's compute time and a constant per call, and the same plus the bytes OpenBLAS packs per call,
4 × (m·k + k·n) (:func:`pack_bytes`). A packing term that takes the shape trend away is what a packing part in the
replay would price.
Run: ``python bench/bench_gemm_shapes.py CAL [CAL ...] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["fit_terms", "main", "pack_bytes"]


def pack_bytes(m: int, n: int, k: int, itemsize: int = 4) -> int:
    """Bytes BLAS copies into its packed buffers in one call of an m × k by k × n product: A and B once each."""
    return itemsize * (m * k + k * n)


def fit_terms(measured, columns) -> tuple[np.ndarray, np.ndarray]:
    """``(coefficients, relative errors)`` of the least-squares fit of ``measured`` (seconds) by ``columns`` (one row
    per configuration), every configuration weighted by its own time, as the calibration's fit weighs them."""
    t = np.asarray(measured, float)
    a = np.asarray(columns, float) / t[:, None]
    coef, *_ = np.linalg.lstsq(a, np.ones(len(t)), rcond=None)
    return coef, a @ coef - 1.0


def _rows(cal: Path) -> tuple[list[dict], dict]:
    from accelsim.replay.box_state import pass_center
    from accelsim.replay.calibration_dir import TRACES_DIR, load_calibration_dir
    from accelsim.replay.labels import params_of
    from accelsim.replay.network import params_for
    from accelsim.replay.project import replay_table
    from accelsim.replay.traces import load

    arch, cal_params, doc = load_calibration_dir(cal)
    items, projections = replay_table(load(cal / TRACES_DIR), arch, pass_center)
    rows = []
    for it, p in zip(items, projections):
        if it.group != "gemm float32" or params_of(it.row).get("batch", 1) != 1:
            continue
        m, n, k = (int(it.row[c]) for c in ("m", "n", "k"))
        saved = params_for(cal_params, it).predict(p, it.launches, it.threaded_calls)
        rows.append({"shape": f"{m}x{n}x{k}", "measured_s": it.measured_s, "compute_s": p.compute_s,
                     "pack_bytes": pack_bytes(m, n, k), "saved_fit_pct": 100 * (saved / it.measured_s - 1)})
    return rows, doc


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cals", type=Path, nargs="+", help="directories of `accelsim calibrate`")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args(argv)
    out = []
    for cal in args.cals:
        rows, doc = _rows(cal)
        t = [r["measured_s"] for r in rows]
        plain, e1 = fit_terms(t, [[r["compute_s"], 1.0] for r in rows])
        packed, e2 = fit_terms(t, [[r["compute_s"], r["pack_bytes"], 1.0] for r in rows])
        for r, a, b in zip(rows, e1, e2):
            r["compute_call_pct"], r["compute_pack_call_pct"] = 100 * a, 100 * b
        res = {"calibration": str(cal), "blas_threads": doc["blas_threads"], "rows": rows,
               "mape_pct": {k: float(np.mean([abs(r[k]) for r in rows]))
                            for k in ("saved_fit_pct", "compute_call_pct", "compute_pack_call_pct")},
               "compute_call": {"compute_scale": plain[0], "call_s": plain[1]},
               "compute_pack_call": {"compute_scale": packed[0], "s_per_packed_byte": packed[1], "call_s": packed[2]}}
        out.append(res)
        print(f"\n{cal} ({doc['blas_threads']} BLAS threads): MAPE saved fit {res['mape_pct']['saved_fit_pct']:.1f} %, "
              f"compute + call {res['mape_pct']['compute_call_pct']:.1f} %, compute + pack + call "
              f"{res['mape_pct']['compute_pack_call_pct']:.1f} % (packing at "
              f"{1e-9 / packed[1] if packed[1] > 0 else float('inf'):.3g} GB/s)\n")
        print("| shape | measured ms | saved fit | compute + call | compute + pack + call |\n|---|---|---|---|---|")
        for r in sorted(rows, key=lambda r: r["measured_s"]):
            print(f"| {r['shape']} | {r['measured_s'] * 1e3:.4g} | {r['saved_fit_pct']:+.1f} % | "
                  f"{r['compute_call_pct']:+.1f} % | {r['compute_pack_call_pct']:+.1f} % |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
