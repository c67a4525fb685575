"""What the box-state probe reads after different work, with and without its warm-up (issue #26).

``accelsim calibrate`` probes right after a calibration pass and ``accelsim run`` right after a pass of the
network; a probe that reads those moments differently compares moments, not states of the box. Each round, in
three contexts (right after one pass over the calibration's cases, after 50 ms of a Python loop, after 50 ms of
probe GEMMs), it times the probe as each variant takes it: ``cold`` (two calls after one untimed, as ``calibrate``'s
rounds took it before 0435869), and :func:`kernels.trace.microbench.probe_times` with warm-ups of 0, 2, 5 and 10 ms.
Prints per context and variant the median GFLOP/s over the rounds, with its range.
Run: ``OPENBLAS_NUM_THREADS=2 python bench/bench_probe_context.py [--rounds 12] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from kernels.trace.microbench import PROBE_N, gemm_gflop, gemm_times, probe_gemms, probe_times

VARIANTS = {"cold": None, "warm 0 ms": 0.0, "warm 2 ms": 0.002, "warm 5 ms": 0.005, "warm 10 ms": 0.01}
"""Probe variants: ``None`` is two calls after one untimed; a number is :func:`probe_times`' ``warm_s``."""


def probe(warm_s: float | None) -> float:
    """GFLOP/s of the probe, its median call, as variant ``warm_s`` takes it."""
    times = gemm_times(PROBE_N, "float32", 2) if warm_s is None else probe_times(warm_s=warm_s)
    return gemm_gflop(PROBE_N) / statistics.median(times)


def contexts() -> dict:
    """``{name: what runs before the probe}``: one calibration pass, 50 ms of Python, 50 ms of probe GEMMs."""
    import accelsim.replay.device_calibration as dc
    from accelsim.replay import calibration_set as cset
    from accelsim.replay.box_state import pass_buffers
    from accelsim.replay.cpu_report import os_report
    from kernels.trace import Recorder

    meas = dc.measure(os_report())
    cases = cset.calibration_cases(np, cold_side=pass_buffers(meas["copy_bytes"])["dram"],
                                   last_level=dc.last_level_bytes(meas["caches"]))
    rec = Recorder(None)

    def calibration_pass():
        cset.record(rec, cases, time.monotonic() + 60, 0, passes=1)

    def python_loop():
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            pass

    return {"after a calibration pass": calibration_pass, "after 50 ms of Python": python_loop,
            "after 50 ms of GEMMs": lambda: probe_gemms(0.05)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--json", help="write the rates here")
    args = parser.parse_args(argv)
    ctx = contexts()
    rates = {c: {v: [] for v in VARIANTS} for c in ctx}
    for _ in range(args.rounds):
        for v, warm in VARIANTS.items():
            for c, before in ctx.items():
                before()
                rates[c][v].append(probe(warm))
    print("| context | " + " | ".join(VARIANTS) + " |\n|---|" + "---|" * len(VARIANTS))
    for c, by in rates.items():
        print(f"| {c} | " + " | ".join(f"{statistics.median(r):.0f} ({min(r):.0f}-{max(r):.0f})"
                                        for r in by.values()) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": args.rounds, "gflops": rates}, f, indent=2)
    return rates


if __name__ == "__main__":
    main()
