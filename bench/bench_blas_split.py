"""What a second BLAS thread buys per GEMM shape, by how OpenBLAS splits the product (issue #26).

For each NumPy product shape m × n × k (every side 64, 128 or 256, 2^20 to 2^23 multiply-adds: the range where
OpenBLAS gives two threads and the per-call cost shows), times a batch of ``--batch`` products on one and on two
BLAS threads (threadpoolctl), the two in alternating rounds so the box's drift falls on both alike, and prints the
median time per product, their ratio, and how OpenBLAS splits it
(:func:`accelsim.replay.numpy_run.shares_panels`: the threads share packed panels, or each takes its own rows of
C). Then, per split, the least-squares fit of the two-thread time as ``a · one-thread time + c`` in relative error
(:func:`bench_gemm_shapes.fit_terms`): ``c`` is what ``threaded_call_s`` prices per call, a call that shares
panels counted :data:`~accelsim.replay.numpy_run.SHARED_PANEL_CALLS` times.
Run: ``python bench/bench_blas_split.py [--rounds 7] [--batch 8] [--json F]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gemm_shapes import fit_terms  # noqa: E402

__all__ = ["main", "shapes"]

SIDES = (64, 128, 256)
SPLIT = {True: "panels shared", False: "own rows"}


def shapes(lo: int = 2**20, hi: int = 2**23) -> list[tuple[int, int, int]]:
    """Every (m, n, k) over :data:`SIDES` with ``lo <= m·n·k <= hi``."""
    return [s for s in itertools.product(SIDES, repeat=3) if lo <= s[0] * s[1] * s[2] <= hi]


def main(argv=None) -> dict:
    from threadpoolctl import threadpool_limits

    from accelsim.replay.numpy_run import shares_panels
    from kernels.timing import time_call
    from kernels.trace.microbench import blas_core

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=30, help="timed calls per shape, thread count and round")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    core = blas_core()
    rng = np.random.default_rng(0)
    rows = []
    for m, n, k in shapes():
        a = rng.standard_normal((args.batch, m, k), dtype=np.float32)
        b = rng.standard_normal((args.batch, k, n), dtype=np.float32)
        got = {1: [], 2: []}
        for _ in range(args.rounds):
            for t in (1, 2):
                with threadpool_limits(t):
                    timing = time_call(np.matmul, a, b, warmup=3, repeats=args.reps, min_window_s=0)
                    got[t].append(timing.median_s / args.batch)
        t1, t2 = statistics.median(got[1]), statistics.median(got[2])
        rows.append({"m": m, "n": n, "k": k, "one_s": t1, "two_s": t2, "shared": shares_panels(m, n, 2, core)})
        split = SPLIT.get(rows[-1]["shared"], f"split not known for core {core!r}")
        print(f"{m} x {n} x {k}: one thread {t1 * 1e6:.1f} µs, two {t2 * 1e6:.1f} µs ({t2 / t1:.2f}x), {split}",
              flush=True)
    fits = {}
    for shared in (True, False):
        sel = [r for r in rows if r["shared"] is shared]
        if len(sel) < 2:
            continue
        coef, err = fit_terms([r["two_s"] for r in sel], [[r["one_s"], 1.0] for r in sel])
        fits["shared" if shared else "own_rows"] = {"a": coef[0], "c_s": coef[1], "shapes": len(sel),
                                                   "mape_pct": 100 * float(np.mean(np.abs(err)))}
        print(f"{SPLIT[shared]} ({len(sel)} shapes): two threads = {coef[0]:.3f} x one "
              f"+ {coef[1] * 1e6:.2f} µs per call, MAPE {100 * np.mean(np.abs(err)):.1f} %")
    out = {"core": core, "batch": args.batch, "rounds": args.rounds, "rows": rows, "fits": fits}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
