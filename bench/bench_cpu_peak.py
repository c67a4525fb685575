"""Microbenchmark: this CPU's achievable NumPy GEMM FLOP/s and streaming bandwidth → bench/results/cpu_peak.json.

The numbers calibrate ``arch_configs/cpu_numpy.yaml`` (the arch used to replay NumPy-backend
traces): datasheet peaks say what the silicon could do, this says what NumPy + its BLAS
actually reach here. GEMM: float32/float64 ``matmul`` on square matrices. Bandwidth:
``np.copyto`` of a buffer sized for each level (read + write bytes counted). Each is the median
of ``repeats`` with its fastest and slowest (:mod:`kernels.trace.microbench`, shared with
``accelsim calibrate``). Run: ``python bench/bench_cpu_peak.py [--quick]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path

import numpy as np

from kernels.backend import device_info
from kernels.io import atomic_path
from kernels.trace.microbench import bandwidth_gbs, blas_threads, gemm_gflops

__all__ = ["main"]

OUT = Path(__file__).resolve().parent / "results" / "cpu_peak.json"
#: Buffer bytes per copy side: inside L1/L2 (per core), inside L3, and well past L3 (DRAM).
BUFFERS = {"l2": 512 * 1024, "l3": 8 * 1024**2, "dram": 512 * 1024**2}


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
        "blas_threads": blas_threads(),
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
