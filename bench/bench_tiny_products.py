"""Nanoseconds per product of NumPy's stacked fp32 matmul on tiny shapes: where BLAS's register tile pads, and what
one BLAS call costs (issue #26).

NumPy multiplies a stack one matrix at a time, one BLAS call each; its row-major product is BLAS's transposed
column-major one, so the register tile's wide side (OpenBLAS's SGEMM M, 16) runs along NumPy's n. The default
shapes show it: 8x8x32 costs about twice 8x32x8 (same MACs, n padded 8 -> 16), and n steps at multiples of 16
where m does not. 2x2x2 is the call itself (the calibration's launch probe, ``BATCH_CASES``).
Run: ``OPENBLAS_NUM_THREADS=1 python bench/bench_tiny_products.py [--rounds 3] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np

from kernels.timing import time_call

SHAPES = ((2, 2, 2), (8, 32, 8), (8, 8, 32), (8, 16, 16), (16, 8, 16), (16, 16, 8),
          *((8, n, 32) for n in (4, 12, 16, 20, 32, 48)), *((m, 16, 32) for m in (2, 4, 6, 12, 16)))
"""``(m, n, k)`` timed, in this order every round: n swept at m = 8, m at n = 16 (8x16x32 in the first sweep)."""


def per_product_ns(m: int, n: int, k: int, batch: int = 768, calls: int = 200) -> float:
    """Median over ``calls`` timed stacked matmuls (after 10 untimed; :func:`kernels.timing.time_call`) of one call's
    time over ``batch``."""
    rng = np.random.default_rng([m, n, k])
    a = rng.standard_normal((batch, m, k), dtype=np.float32)
    b = rng.standard_normal((batch, k, n), dtype=np.float32)
    out = np.empty((batch, m, n), np.float32)
    timing = time_call(np.matmul, a, b, out=out, warmup=10, repeats=calls, min_window_s=0)
    return timing.median_s / batch * 1e9


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every shape (the median is reported)")
    parser.add_argument("--json", help="write {shape: [ns per round]} here")
    args = parser.parse_args(argv)
    rounds = {s: [] for s in SHAPES}
    for _ in range(args.rounds):
        for s in SHAPES:
            rounds[s].append(per_product_ns(*s))
    print("| m x n x k | ns per product, median | rounds |\n|---|---|---|")
    for (m, n, k), v in rounds.items():
        print(f"| {m}x{n}x{k} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{m}x{n}x{k}": v for (m, n, k), v in rounds.items()}, f, indent=1)


if __name__ == "__main__":
    main()
