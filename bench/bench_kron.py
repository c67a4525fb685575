"""Kron-matmul benchmark: fused vs shuffle vs pyfastkron on FastKron's shapes, same inputs, one run."""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from kernels import kron_matmul
from kernels.backend import device_info, gpu_available
from kernels.kron import kron_flops
from kernels.trace import time_call

__all__ = ["CASES", "main"]

# FastKron's shapes (PPoPP'24, M=1024). On the CPU each case gets as many rows (at most --m) as
# keep float32 X within --x-mib, so the whole table takes about a minute on a 2-core machine;
# the table's M column says which M each row used.
CASES = [(8, 5), (8, 6), (16, 4), (16, 5), (32, 3), (32, 4), (64, 2), (64, 3), (128, 2)]


def _rows(p: int, n: int, m: int, x_mib: float) -> int:
    return max(1, min(m, int(x_mib * 2**20) // (p**n * 4)))


def _time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rel_err(a, b) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))


def run_case(p, n, m, repeats, shuffle_repeats, peer, tmp: Path) -> dict:
    rng = np.random.default_rng(1234 + 10 * p + n)
    x = rng.uniform(-1, 1, (m, p**n)).astype(np.float32)
    fs = [rng.uniform(-1, 1, (p, p)).astype(np.float32) for _ in range(n)]
    row = {"case": f"{p}^{n}", "M": m, "K": p**n, "gflop": kron_flops(m, [(p, p)] * n) / 1e9}
    ref = kron_matmul(x[:4].astype(np.float64), [f.astype(np.float64) for f in fs], "shuffle")
    y = kron_matmul(x, fs, "fused")
    row["err_fused"] = _rel_err(y[:4], ref)
    row["fused_s"] = _time(lambda: kron_matmul(x, fs, "fused"), repeats)
    row["shuffle_s"] = _time(lambda: kron_matmul(x, fs, "shuffle"), shuffle_repeats)
    if peer:
        from peer_pyfastkron import run_peer

        np.save(tmp / "x.npy", x)
        for i, f in enumerate(fs):
            np.save(tmp / f"f{i}.npy", f)
        row["pyfastkron_s"] = statistics.median(run_peer(tmp, n, repeats))
        y_peer = np.load(tmp / "y_peer.npy")
        row["err_peer"] = _rel_err(y_peer[:4], ref)
        row["peer_vs_fused"] = _rel_err(y_peer, y.astype(np.float64))
        if not row["peer_vs_fused"] < 1e-5:
            raise SystemExit(f"{p}^{n}: pyfastkron and fused disagree (rel. err {row['peer_vs_fused']:.1e})")
    if gpu_available():
        import cupy as cp

        xg, fg = cp.asarray(x), [cp.asarray(f) for f in fs]
        for alg in ("fused", "shuffle"):
            row[f"gpu_{alg}_s"] = time_call(kron_matmul, xg, fg, alg, warmup=1, repeats=repeats, xp=cp,
                                             min_window_s=0).median_s
        row["err_gpu_fused"] = _rel_err(cp.asnumpy(kron_matmul(xg, fg, "fused"))[:4], ref)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--m", type=int, default=1024, help="most rows of X")
    ap.add_argument("--x-mib", type=float, default=32.0, help="fewer rows where X would exceed this")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shuffle-repeats", type=int, default=3, help="the slow baseline gets fewer runs")
    ap.add_argument("--cases", default=",".join(f"{p}^{n}" for p, n in CASES), help="e.g. 8^6,16^4")
    ap.add_argument("--no-peer", action="store_true", help="skip pyfastkron")
    args = ap.parse_args(argv)
    cases = [tuple(int(v) for v in c.split("^")) for c in args.cases.split(",")]
    info = device_info(np)
    print(f"# CPU: {info['device_name']}, {info['sm_count']} cores; float32; median of {args.repeats} runs "
          f"(shuffle: {args.shuffle_repeats}) after one warm-up")
    cols = ["case", "M", "K", "gflop", "fused_s", "shuffle_s", "pyfastkron_s", "GF/s fused",
            "pfk/fused", "pfk/shuffle", "err_fused", "err_peer"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for p, n in cases:
            r = run_case(p, n, _rows(p, n, args.m, args.x_mib), args.repeats, args.shuffle_repeats, not args.no_peer,
                         Path(tmp))
            pfk = r.get("pyfastkron_s", math.nan)
            vals = [r["case"], r["M"], r["K"], f"{r['gflop']:.2f}", f"{r['fused_s']:.4f}",
                    f"{r['shuffle_s']:.4f}", f"{pfk:.4f}", f"{r['gflop'] / r['fused_s']:.1f}",
                    f"{pfk / r['fused_s']:.2f}", f"{pfk / r['shuffle_s']:.2f}",
                    f"{r['err_fused']:.1e}", f"{r.get('err_peer', math.nan):.1e}"]
            print("| " + " | ".join(str(v) for v in vals) + " |", flush=True)
            if "pyfastkron_s" in r:
                ratios.append(r["pyfastkron_s"] / r["fused_s"])
            gpu = {k: v for k, v in r.items() if k.startswith(("gpu_", "err_gpu"))}
            if gpu:
                print(f"  GPU {r['case']}: {gpu}", flush=True)
    if ratios:
        gm = math.exp(sum(math.log(v) for v in ratios) / len(ratios))
        print(f"geometric mean pyfastkron/fused: {gm:.2f} over {len(ratios)} shapes; load average "
              f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
