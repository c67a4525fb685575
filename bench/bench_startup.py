"""CLI start-up: wall time of `accelsim --help` and of `accelsim simulate` on one small GEMM layer.

Run: .venv/bin/python bench/bench_startup.py [--repeats 7] [--before /tmp/before]
Each case is a fresh ``python -m accelsim ...`` process with PYTHONPATH set to the tree measured
(this checkout, and ``--before``'s checkout if given), timed end to end; the peer measured in the
same run is a bare ``python -c pass`` (interpreter start, the floor). Medians of the repeats, with
the load average, since these machines are shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _median_s(argv: list[str], tree: Path, repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--before", type=Path, help="another checkout to time the same way (e.g. a git worktree)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / "one_gemm.csv"
        layer.write_text("Layer, M, N, K,\nfc, 64, 64, 64,\n")
        py = [sys.executable]
        cases = {
            "python -c pass (floor)": py + ["-c", "pass"],
            "accelsim --help": py + ["-m", "accelsim", "--help"],
            "accelsim simulate (1 GEMM)": py + ["-m", "accelsim", "simulate", "--arch", "systolic_ws_32x32",
                                                "--workload", str(layer), "--format", "json"],
        }
        trees = {"this checkout": ROOT, **({"--before": args.before.resolve()} if args.before else {})}
        print(f"load average at start: {os.getloadavg()[0]:.2f}; median of {args.repeats} runs, seconds")
        print(f"{'case':<30}" + "".join(f"{t:>16}" for t in trees))
        for name, argv in cases.items():
            print(f"{name:<30}" + "".join(f"{_median_s(argv, tree, args.repeats):>16.3f}" for tree in trees.values()))
        print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
