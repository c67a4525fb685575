"""Simulator cost per layer with the steady-state engine: one huge GEMM, and thousands of distinct shapes.

Run: .venv/bin/python bench/bench_engine.py [--shapes 5000] [--repeats 5]
Reports, for one GEMM of n = 1e8 on systolic_ws_32x32, the median wall time of `simulate` and its
peak traced memory (tracemalloc); for N distinct random layer shapes (seeded) on
systolic_ws_32x32 and stc_2of4, the wall time of one `simulate` call over all of them (no
de-duplication possible: every shape differs). The per-tile simpy engine is timed on the same
huge GEMM's first 1e5 column folds for scale.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from accelsim import Gemm, Network, load_arch, simulate


def _huge(arch, repeats: int) -> tuple[float, float, float]:
    layer = Gemm("huge", 1000, 10**8, 1000)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rep = simulate(arch, layer)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    simulate(arch, layer)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), peak / 1e6, rep.total["cycles"]


def _shapes(n: int, seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    dims = rng.integers(1, 4097, size=(n, 3))
    return Network.chain("random", [Gemm(f"g{i}", int(m), int(nn), int(k)) for i, (m, nn, k) in enumerate(dims)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    ws = load_arch("systolic_ws_32x32")
    med, peak, cycles = _huge(ws, args.repeats)
    print(f"huge GEMM 1000 x 1e8 x 1000 on systolic_ws_32x32: median {med:.4f} s, peak {peak:.1f} MB traced, "
          f"{cycles:.6g} cycles (targets: <= 0.1 s, <= 200 MB)")
    net = _shapes(args.shapes)
    for name in ("systolic_ws_32x32", "stc_2of4"):
        arch = load_arch(name)
        t0 = time.perf_counter()
        rep = simulate(arch, net)
        dt = time.perf_counter() - t0
        print(f"{args.shapes} distinct shapes on {name}: {dt:.2f} s ({1e3 * dt / args.shapes:.2f} ms/layer), "
              f"{len(rep.layers)} layers (target on systolic_ws_32x32: <= 10 s)")


if __name__ == "__main__":
    main()
