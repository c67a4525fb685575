"""Distributed Kron-matmul: bytes exchanged vs one exchange per factor, for 2 and 4 workers.

Run: .venv/bin/python bench/bench_kron_dist.py
Closed-form counts (kernels.kron.dist.kron_comm_bytes) on FastKron shapes, then one real run on a
local Dask cluster per grid checking the result against the single-process kron_matmul and that
the bytes it reports equal the closed form.
"""

from __future__ import annotations

import time

import numpy as np

from kernels.kron import kron_matmul
from kernels.kron.dist import kron_comm_bytes, kron_matmul_dist

GRIDS = ((1, 2), (2, 1), (1, 4), (2, 2))


def main() -> None:
    print("| factors | M | grid rows×cols | workers | exchanged MB | one-per-factor MB | saving |")
    print("|---|---|---|---|---|---|---|")
    for fs in (((8, 8),) * 6, ((16, 16),) * 4, ((32, 32),) * 3):
        for grid in GRIDS:
            r = kron_comm_bytes(1024, fs, grid, 4)
            saving = f"{r.naive_exchange_bytes / r.exchange_bytes:.1f}×" if r.exchange_bytes else "– (rows never talk)"
            print(f"| {fs[0][0]}^{len(fs)} | 1024 | {grid[0]}×{grid[1]} | {grid[0] * grid[1]} | "
                  f"{r.exchange_bytes / 1e6:.1f} | {r.naive_exchange_bytes / 1e6:.1f} | {saving} |")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 16**3)).astype(np.float32)
    factors = [rng.standard_normal((16, 16)).astype(np.float32) for _ in range(3)]
    ref = kron_matmul(x, factors)
    print()
    for grid in ((1, 2), (2, 2)):
        t0 = time.perf_counter()
        y, rep = kron_matmul_dist(x, factors, grid=grid)
        dt = time.perf_counter() - t0
        closed = kron_comm_bytes(256, [f.shape for f in factors], grid, 4)
        print(f"local Dask, grid {grid}: max |y - single-process| = {float(np.abs(y - ref).max()):.2e}, "
              f"exchanged {rep.exchange_bytes:,} B (closed form {closed.exchange_bytes:,}), "
              f"one-per-factor {rep.naive_exchange_bytes:,} B, cells on {sorted(set(rep.backends))}, "
              f"wall {dt:.1f} s incl. cluster start")


if __name__ == "__main__":
    main()
