"""Simulator wall time: ResNet-50 on systolic_ws_32x32 and llama_8b_prefill on tensor_core.

Run: .venv/bin/python bench/bench_sim_speed.py [--repeats 7]
Each run is a fresh process-level call to accelsim.model.simulate (config load, lowering, simpy);
the median of the repeats is reported. The last column times ``dedup=False`` (every layer simulated, none reused).
"""

from __future__ import annotations

import argparse
import statistics
import time

from accelsim import load_arch, simulate


def _time(arch, workload, repeats, **kw):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rep = simulate(load_arch(arch), workload, **kw)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    cases = [("systolic_ws_32x32", "resnet50", 0.5, {}), ("tensor_core", "llama_8b_prefill", 5.0, {})]
    print("| workload | arch | layers | tiles | median s | min s | target s | no-dedup median s |")
    print("|---|---|---|---|---|---|---|---|")
    for arch, wl, target, kw in cases:
        med, mn, rep = _time(arch, wl, args.repeats, **kw)
        tiles = sum(l.detail.get("tiles", 0) for l in rep.layers)
        med_nc, _, _ = _time(arch, wl, max(3, args.repeats // 2), dedup=False, **kw)
        print(f"| {wl} | {arch} | {len(rep.layers)} | {tiles:,} | {med:.3f} | {mn:.3f} | {target} | {med_nc:.3f} |")


if __name__ == "__main__":
    main()
