"""Microbenchmark: this CPU's achievable NumPy GEMM FLOP/s and streaming bandwidth → bench/results/cpu_peak.json.

The numbers calibrate ``arch_configs/cpu_numpy.yaml`` (the arch used to replay NumPy-backend
traces): datasheet peaks say what the silicon could do, this says what NumPy + its BLAS
actually reach here. GEMM: best of ``repeats`` float32/float64 ``matmul`` on square
matrices. Bandwidth: ``np.copyto`` of a buffer sized for each level (read + write bytes
counted), best of ``repeats``. Run: ``python bench/bench_cpu_peak.py [--quick]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from kernels.backend import device_info
from kernels.io import atomic_path

__all__ = ["bandwidth_gbs", "gemm_gflops", "main"]

OUT = Path(__file__).resolve().parent / "results" / "cpu_peak.json"
#: Buffer bytes per copy side: inside L1/L2 (per core), inside L3, and well past L3 (DRAM).
BUFFERS = {"l2": 512 * 1024, "l3": 8 * 1024**2, "dram": 512 * 1024**2}


def _best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_gflops(n: int, dtype: str, repeats: int) -> float:
    """Best-of GFLOP/s of an ``n × n`` by ``n × n`` ``matmul`` (2n³ FLOPs)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty_like(a)
    return 2 * n**3 / _best(lambda: np.matmul(a, b, out=out), repeats) / 1e9


def bandwidth_gbs(nbytes: int, repeats: int) -> float:
    """Best-of GB/s of copying ``nbytes`` (read ``nbytes`` + write ``nbytes``)."""
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    inner = max(1, (64 * 1024**2) // nbytes)  # small buffers: many copies per timing, above timer noise

    def run():
        for _ in range(inner):
            np.copyto(dst, src)

    return 2 * nbytes * inner / _best(run, repeats) / 1e9


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n", type=int, default=2048, help="GEMM size")
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 repeats (smoke test)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    n, reps = (256, 2) if args.quick else (args.n, args.repeats)
    info = device_info(np)
    result = {
        "machine": info["device_name"],
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date": dt.date.today().isoformat(),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "gemm_n": n,
        "gemm_gflops": {dt_: gemm_gflops(n, dt_, reps) for dt_ in ("float32", "float64")},
        "copy_gbs": {lvl: bandwidth_gbs(b if not args.quick else min(b, 8 * 1024**2), reps) for lvl, b in BUFFERS.items()},
        "buffer_bytes": BUFFERS,
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
