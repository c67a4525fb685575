"""Sweep throughput: a 1000-point design-space sweep in-process and on a local Dask cluster.

Run: .venv/bin/python bench/bench_sweep.py [--repeats 3] [--workers 1 2]

Grid on systolic_ws_32x32: 4 array shapes (rows × cols in {16, 32}²) × 5 weight-buffer sizes ×
5 DRAM bandwidths × 5 supported N:M pattern sets = 500 configs, × 2 networks with 2:4-pruned
weights (ResNet-50, BERT-base) = 1000 points. Each run writes a fresh result dataset; wall time
covers everything run_sweep does (validation, cluster start, simulation, parquet flushes).
The median over repeats is reported; every mode's rows are checked to be identical, and a
resume (all points stored) is timed once.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from accelsim.model.workloads import bert_base, resnet50
from accelsim.explore.sweep import run_sweep
from accelsim.model.workload import Network, Sparsity

GRID = [
    "compute.rows=16,32",
    "compute.cols=16,32",
    "memory.sram.partition.weight=16384,32768,65536,131072,262144",
    "memory.dram.bandwidth=4,8,16,32,64",
    "compute.sparsity.patterns=[];[2:4];[1:4,2:4];[4:8];[2:8,4:8]",
]
ARCH = "systolic_ws_32x32"


def _networks() -> list[Network]:
    w24 = Sparsity.parse("2:4")
    return [Network("resnet50_w2of4", resnet50().with_sparsity(weight=w24).graph),
            Network("bert_base_w2of4", bert_base().with_sparsity(weight=w24).graph)]


def _run(mode: str, nets, out: Path):
    kw = {"dask": False} if mode == "in-process" else {"workers": int(mode.split()[0])}
    t0 = time.perf_counter()
    res = run_sweep(ARCH, GRID, nets, out=out, **kw)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    args = ap.parse_args()
    nets = _networks()
    modes = ["in-process", *[f"{w} dask worker{'s' if w > 1 else ''}" for w in args.workers]]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print("| mode | points | median wall s | min wall s | points/s (median) |")
    print("|---|---|---|---|---|")
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            times = []
            for r in range(args.repeats):
                wall, res = _run(mode, nets, Path(tmp) / f"{mode.replace(' ', '_')}_{r}")
                assert res.computed == len(res.rows), "fresh dataset expected"
                times.append(wall)
                if reference is None:
                    reference = res.rows
                assert res.rows == reference, f"{mode}: rows differ from the first run"
            med = statistics.median(times)
            print(f"| {mode} | {len(reference)} | {med:.2f} | {min(times):.2f} | {len(reference) / med:.1f} |")
        wall, res = _run("in-process", nets, Path(tmp) / "in-process_0")
        print(f"| resume, all stored | {len(res.rows)} (0 computed) | {wall:.2f} | {wall:.2f} | – |")
    print(f"load average after: {os.getloadavg()[0]:.2f} (other processes on the machine skew parallel timings)")


if __name__ == "__main__":
    main()
