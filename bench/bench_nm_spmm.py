"""Benchmark N:M SpMM against dense GEMM (cuBLAS / host BLAS) and cuSPARSELt 2:4; writes traces, prints ratios.

On a GPU (default there): the ``paper`` shapes, traces under ``traces/<gpu-name>/``.
On the CPU (``--backend numpy``): ``small`` shapes by default, traces only with ``--out``.

    python bench/bench_nm_spmm.py                          # GPU, paper sizes
    python bench/bench_nm_spmm.py --backend numpy --sizes small --repeats 20
    python bench/bench_nm_spmm.py --cpu-at-size --repeats 5   # NumPy at 1024x4096x4096, both layouts
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.backend import backend_name, device_info, get_xp  # noqa: E402
from kernels.suites import run_suite  # noqa: E402
from kernels.trace import Recorder  # noqa: E402

__all__ = ["cpu_at_size", "eval_density", "main"]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None)
    p.add_argument("--sizes", choices=["small", "paper"], default=None)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--out", type=Path, default=None, help="trace directory (GPU default: traces/<gpu-name>)")
    p.add_argument("--cpu-at-size", action="store_true",
                   help="NumPy nm_spmm vs dense and decompress+dense at 1024x4096x4096, both layouts, 2:4 and 1:8")
    p.add_argument("--settle-s", type=float, default=0.25,
                   help="--cpu-at-size: sleep before each timed call (OpenBLAS threads spin ~0.1 s after a call)")
    args = p.parse_args(argv)
    if args.cpu_at_size:
        return cpu_at_size(args.repeats, settle_s=args.settle_s)

    xp = get_xp(args.backend)
    gpu = backend_name(xp) == "cupy"
    dev = device_info(xp)
    sizes = args.sizes or ("paper" if gpu else "small")
    out = args.out or (Path("traces") / _slug(dev["device_name"]) if gpu else None)
    rec = Recorder(out)
    rows = run_suite("nm_spmm", sizes, rec, repeats=args.repeats, warmup=args.warmup, xp=xp,
                     on_case=lambda c, i, n: print(f"[{i + 1}/{n}] {c.label}", file=sys.stderr))
    written = rec.flush()

    dense = {(r["dtype"], r["m"], r["n"], r["k"]): r["time_median_s"] for r in rows if r["kernel"] == "gemm"}
    ratios: dict[tuple, list[float]] = {}
    print(f"device: {dev['device_name']} ({backend_name(xp)}), sizes={sizes}, repeats={args.repeats}")
    print(f"{'kernel':<16}{'pattern':>8}{'dtype':>9}{'m':>6}{'n':>7}{'k':>7}{'time_ms':>10}{'dense_ms':>10}{'speedup':>9}")
    for r in rows:
        if r["kernel"] == "gemm":
            continue
        d = dense[(r["dtype"], r["m"], r["n"], r["k"])]
        s = d / r["time_median_s"]
        ratios.setdefault((r["kernel"], r["pattern"], r["dtype"]), []).append(s)
        print(f"{r['kernel']:<16}{r['pattern']:>8}{r['dtype']:>9}{r['m']:>6}{r['n']:>7}{r['k']:>7}"
              f"{r['time_median_s'] * 1e3:>10.3f}{d * 1e3:>10.3f}{s:>9.2f}")
    print("geometric-mean speedup over dense, per pattern:")
    for (kernel, pattern, dtype), v in sorted(ratios.items()):
        print(f"  {kernel:<16}{pattern:>6}{dtype:>9}  {statistics.geometric_mean(v):6.2f}x  (ideal {1 / eval_density(pattern):.2f}x)")
    if written:
        print(f"traces: {written}")
    return 0


def _interleaved_medians(fns, repeats: int, settle_s: float = 0.0) -> list[float]:
    """Median seconds of each function, timed in turn within every round so all share the load.

    ``settle_s`` sleeps before every timed call: after a multi-threaded BLAS call OpenBLAS's
    worker threads spin for ~0.1 s (measured: 110 ms of CPU burnt in a 0.3 s sleep after one
    dense GEMM here), which only the call timed next -- whoever it is -- pays for.
    """
    import time

    for fn in fns:
        fn()  # warm-up: page-in, thread pool start
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            time.sleep(settle_s)
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def cpu_at_size(repeats: int, m: int = 1024, n: int = 4096, k: int = 4096, settle_s: float = 0.25) -> int:
    """Issue 13's CPU targets: nm_spmm >= 1.0x decompress + dense at 2:4, >= 2x dense at 1:8.

    Dense, decompress + dense and nm_spmm are timed in turn within every round (medians of
    ``repeats`` rounds after one warm-up), so each ratio compares runs under the same load, each
    after ``settle_s`` of sleep (see :func:`_interleaved_medians`; ``--settle-s 0`` times them back to back).
    """
    from kernels.nm import nm_compress, nm_decompress, nm_spmm
    from kernels.nm.cpu import choose_impl

    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    print(f"cpu: {device_info(np)['device_name']}, {os.cpu_count()} threads, {m}x{n}x{k} float32, "
          f"medians of {repeats}, {settle_s:g} s settle before each call, load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'pattern':>8}{'layout':>9}{'impl':>17}{'dense_s':>9}{'dec+dense_s':>12}{'nm_spmm_s':>10}"
          f"{'vs dense':>9}{'vs dec+dense':>13}")
    for pattern in ("2:4", "1:8"):
        nn, mm = (int(x) for x in pattern.split(":"))
        for layout in ("element", "vector"):
            t = nm_compress(a, nn, mm, axis=1, layout=layout)
            dense, dec, sp = _interleaved_medians(
                [lambda: a @ b, lambda: nm_decompress(t) @ b, lambda: nm_spmm(t, b)], repeats, settle_s)
            print(f"{pattern:>8}{layout:>9}{choose_impl(t):>17}{dense:>9.3f}{dec:>12.3f}{sp:>10.3f}"
                  f"{dense / sp:>8.2f}x{dec / sp:>12.2f}x", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


def eval_density(pattern: str) -> float:
    n, m = (int(x) for x in pattern.split(":"))
    return n / m


if __name__ == "__main__":
    raise SystemExit(main())
