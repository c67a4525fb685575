"""Benchmark: bilevel vs exact ℓ1,∞ projection on rows×m matrices, 1- vs 2-thread speedup, and the
bilevel host path (whole-array passes) against the previous 64-column blocked passes (``impl="xp"``).

Prints a markdown table (medians of interleaved repeats, so machine drift hits every
variant alike). Run: ``python bench/bench_projection.py [--rows 1000] [--sizes 1000,2000,4000,8000]``;
the issue-14 shape: ``--rows 4096 --sizes 11008 --dtype float32``.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import numpy as np

from kernels.backend import device_info
from kernels.projection import project_l1inf_bilevel, project_l1inf_exact

__all__ = ["bench", "main"]

VARIANTS = {
    "blocked×1": (functools.partial(project_l1inf_bilevel, impl="xp"), 1),
    "bilevel×1": (project_l1inf_bilevel, 1),
    "bilevel×2": (project_l1inf_bilevel, 2),
    "exact×1": (project_l1inf_exact, 1),
    "exact×2": (project_l1inf_exact, 2),
}


def bench(rows: int, cols: int, *, repeats: int, frac: float, dtype, seed: int) -> dict:
    """Median seconds per variant on one N(0,1) matrix, radius = frac·‖Y‖₁,∞ (groups = columns)."""
    y = np.random.default_rng(seed).standard_normal((rows, cols)).astype(dtype)
    radius = frac * float(np.abs(y).max(axis=0).sum())
    times = {k: [] for k in VARIANTS}
    zero_cols = {}
    for fn, workers in VARIANTS.values():  # warm-up: page in the output buffers once
        fn(y, radius, 0, workers=workers)
    for _ in range(repeats):
        for name, (fn, workers) in VARIANTS.items():
            t0 = time.perf_counter()
            x = fn(y, radius, 0, workers=workers)
            times[name].append(time.perf_counter() - t0)
            zero_cols[name.split("×")[0]] = float((~x.any(axis=0)).mean())
    same = bool(np.array_equal(VARIANTS["blocked×1"][0](y, radius, 0), project_l1inf_bilevel(y, radius, 0)))
    return {"cols": cols, "median": {k: statistics.median(v) for k, v in times.items()}, "zero_cols": zero_cols,
            "same_bits": same}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--sizes", default="1000,2000,4000,8000", help="comma-separated column counts")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--radius-frac", type=float, default=0.1, help="C as a fraction of ‖Y‖₁,∞")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    info = device_info(np)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {info['device_name']}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"load avg {load:.2f}; {args.rows}×m {args.dtype}, C = {args.radius_frac:g}·‖Y‖₁,∞, "
          f"median of {args.repeats}")
    print()
    print("| m | bilevel before: blocked (ms) | bilevel (ms) | before/after | same bits | exact (ms) | exact/bilevel | "
          "bilevel 2 thr (ms) | bilevel 1→2 thr | exact 2 thr (ms) | exact 1→2 thr | zero cols bilevel | zero cols exact |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cols in (int(s) for s in args.sizes.split(",")):
        r = bench(args.rows, cols, repeats=args.repeats, frac=args.radius_frac, dtype=args.dtype, seed=args.seed)
        m = {k: v * 1e3 for k, v in r["median"].items()}
        print(f"| {cols} | {m['blocked×1']:.2f} | {m['bilevel×1']:.2f} | {m['blocked×1'] / m['bilevel×1']:.1f}× | "
              f"{'yes' if r['same_bits'] else 'NO'} | "
              f"{m['exact×1']:.2f} | {m['exact×1'] / m['bilevel×1']:.1f}× | "
              f"{m['bilevel×2']:.2f} | {m['bilevel×1'] / m['bilevel×2']:.2f}× | {m['exact×2']:.2f} | "
              f"{m['exact×1'] / m['exact×2']:.2f}× | {r['zero_cols']['bilevel']:.1%} | {r['zero_cols']['exact']:.1%} |",
              flush=True)


if __name__ == "__main__":
    main()
