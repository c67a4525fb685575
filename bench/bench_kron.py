"""Kron-matmul benchmark: fused vs shuffle vs pyfastkron on FastKron's shapes, same inputs, one run."""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from kernels import kron_matmul
from kernels.backend import device_info, gpu_available
from kernels.kron import kron_flops

__all__ = ["CASES", "main"]

# FastKron's shapes (PPoPP'24, M=1024). Cases whose X would exceed 1 GiB in float32 (16^5, 32^4)
# use an eighth of the rows that fit in 1 GiB (M=32) so a 2-core machine finishes them in
# minutes; the table's M column says which M each row used.
CASES = [(8, 5), (8, 6), (16, 4), (16, 5), (32, 3), (32, 4), (64, 2), (64, 3), (128, 2)]
_MAX_X_BYTES = 2**30


def _rows(p: int, n: int, m: int) -> int:
    return m if m * p**n * 4 <= _MAX_X_BYTES else max(1, _MAX_X_BYTES // (p**n * 4) // 8)


def _time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _time_gpu(fn, repeats: int) -> float:
    import cupy as cp

    fn()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
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
            row[f"gpu_{alg}_s"] = _time_gpu(lambda: kron_matmul(xg, fg, alg), repeats)
        row["err_gpu_fused"] = _rel_err(cp.asnumpy(kron_matmul(xg, fg, "fused"))[:4], ref)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--m", type=int, default=1024, help="rows of X (large cases use fewer)")
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
    with tempfile.TemporaryDirectory() as tmp:
        for p, n in cases:
            r = run_case(p, n, _rows(p, n, args.m), args.repeats, args.shuffle_repeats, not args.no_peer, Path(tmp))
            pfk = r.get("pyfastkron_s", math.nan)
            vals = [r["case"], r["M"], r["K"], f"{r['gflop']:.2f}", f"{r['fused_s']:.4f}",
                    f"{r['shuffle_s']:.4f}", f"{pfk:.4f}", f"{r['gflop'] / r['fused_s']:.1f}",
                    f"{pfk / r['fused_s']:.2f}", f"{pfk / r['shuffle_s']:.2f}",
                    f"{r['err_fused']:.1e}", f"{r.get('err_peer', math.nan):.1e}"]
            print("| " + " | ".join(str(v) for v in vals) + " |", flush=True)
            gpu = {k: v for k, v in r.items() if k.startswith(("gpu_", "err_gpu"))}
            if gpu:
                print(f"  GPU {r['case']}: {gpu}", flush=True)


if __name__ == "__main__":
    main()
