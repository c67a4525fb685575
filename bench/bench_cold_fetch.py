"""How long a calibration's cold GEMMs wait for their operands, timed against themselves warm (issue 26).

Each of :data:`~accelsim.replay.calibration_set.COLD_CASES` is timed warm and cold in turn, call by call (the cold
call as ``--stream`` makes it, ``--side-mib`` setting its span), in ``--processes`` fresh processes one after the other. Per process: each shape's median warm and cold
time, the difference, and the fraction that difference gives the modelled fetch (``input_bytes`` read at the DRAM rate
of ``--calibration``'s arch, as the replay prices it) with the least-squares fraction over the six (relative to the
cold time), beside the ``cold_gemm`` fraction that calibration fitted. The spread of the fraction between processes
minutes apart is what the box itself does to a cold read; no fit of it can be steadier.
``--stream`` sets how a call is made cold: ``rotate`` (the calibration's own cold case, operand copies spanning
``2 × side``, :func:`~accelsim.replay.calibration_set.cold_case`), or before the warm call a pass over two
``side``-byte buffers: ``copy`` (``np.copyto``, which glibc may turn into non-temporal stores past its threshold; the
calibration's stream before the copies), ``multiply`` (``np.multiply(src, 1, out=dst)``: every store through the
caches) or ``read`` (both buffers only read).
Run: ``OPENBLAS_NUM_THREADS=T python bench/bench_cold_fetch.py --calibration DIR [--side-mib 60] [--processes 4]
[--stream rotate]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "measure"]


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


STREAMS = ("rotate", "copy", "multiply", "read")


def _sweep(stream: str, side: int):
    """What runs before a cold call of a ``copy`` / ``multiply`` / ``read`` stream: that pass over two ``side``-byte
    buffers (shared by every shape)."""
    src = np.ones(side // 4, np.float32)
    dst = np.empty_like(src)
    if stream == "copy":
        return lambda: np.copyto(dst, src)
    if stream == "multiply":
        return lambda: np.multiply(src, 1.0, out=dst)
    return lambda: (src.sum(), dst.sum())


def measure(calibration: Path, side: int, passes: int, repeats: int, stream: str = "rotate") -> dict:
    """One process's warm and cold medians per shape (the median over ``passes`` of each pass's median of
    ``repeats`` pairs), the modelled fetch, and the fractions. Warm: the GEMM on one pair of operands, again and
    again; cold: the calibration's own cold case (``rotate``), or the warm call after a stream."""
    from accelsim.replay.calibration_dir import load_calibration_dir
    from accelsim.replay.calibration_set import COLD_CASES, SUITE, cold_case
    from accelsim.replay.project import COLD, project, record_workload
    from kernels.suites.gemm import dense_case

    arch, _, doc = load_calibration_dir(calibration)
    warm_cases = {shape: dense_case(SUITE, *shape, "float32", np, 1).prepare() for shape in COLD_CASES}
    sweep = None if stream == "rotate" else _sweep(stream, side)
    cold_cases = {shape: cold_case(*shape, side=side, seed=1).prepare() for shape in COLD_CASES} if sweep is None \
        else warm_cases
    times = {shape: ([], []) for shape in COLD_CASES}
    for _ in range(passes):
        for shape, p in warm_cases.items():
            c = cold_cases[shape]
            p.fn(*p.args)
            warm, cold = [], []
            for _ in range(repeats):
                warm.append(_timed(p.fn, *p.args))
                if sweep is not None:
                    sweep()
                cold.append(_timed(c.fn, *c.args))
            times[shape][0].append(statistics.median(warm))
            times[shape][1].append(statistics.median(cold))
    shapes, num, den = [], 0.0, 0.0
    for (m, n, k), (warm, cold) in times.items():
        fields = warm_cases[(m, n, k)].fields
        spanned = cold_cases[(m, n, k)].fields["params"].get("cold_bytes", 2 * side)
        row = {"kernel": "gemm", "backend": "numpy", "m": m, "n": n, "k": k, "dtype": "float32",
               "bytes_min": fields["bytes_min"], "params": json.dumps({**fields["params"], "cold_bytes": spanned})}
        # the calibration's own cold record, as the replay prices it: the GEMM, the read of its inputs, its pack pass
        family, (_, read, _), _ = record_workload(row, arch)
        assert family == COLD
        fetch = project(arch, read).memory_s
        w, c = statistics.median(warm), statistics.median(cold)
        num, den = num + fetch * (c - w) / c**2, den + fetch**2 / c**2
        shapes.append({"shape": f"{m}x{n}x{k}", "warm_s": w, "cold_s": c, "fetch_s": fetch,
                       "fraction": fetch / (c - w) if c > w else None, "cold_bytes": spanned})
    fitted = (doc["groups"].get("cold_gemm float32") or doc["families"].get("cold_gemm") or {})
    return {"side": side, "stream": stream, "shapes": shapes, "fraction": den / num if num > 0 else None,
            "calibration_fraction": fitted.get("bandwidth_fraction")}


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=Path, required=True, help="an `accelsim calibrate` directory")
    parser.add_argument("--side-mib", type=float, default=60.0, help="each side of the stream before a cold call")
    parser.add_argument("--passes", type=int, default=18)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--processes", type=int, default=4, help="fresh processes, one after the other")
    parser.add_argument("--stream", choices=STREAMS, default="rotate", help="how a call is made cold")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    side = int(args.side_mib * 2**20)
    if args.one:
        print(json.dumps(measure(args.calibration, side, args.passes, args.repeats, args.stream)))
        return []
    out = []
    for i in range(args.processes):
        cmd = [sys.executable, __file__, "--one", "--calibration", str(args.calibration), "--side-mib",
               str(args.side_mib), "--passes", str(args.passes), "--repeats", str(args.repeats), "--stream", args.stream]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        out.append(r)
        shapes = " | ".join(f"{s['shape']} {1e3 * s['warm_s']:.3f}/{1e3 * s['cold_s']:.3f} ms "
                            f"{_f(s['fraction'])}" for s in r["shapes"])
        print(f"process {i + 1}: fraction {_f(r['fraction'])} (calibration's {_f(r['calibration_fraction'])}); "
              f"warm/cold, fraction: {shapes}", flush=True)
    fr = [r["fraction"] for r in out if r["fraction"]]
    if len(fr) > 1:
        print(f"fraction over {len(fr)} processes: {min(fr):.3f}-{max(fr):.3f} "
              f"(largest / smallest - 1: {100 * (max(fr) / min(fr) - 1):.1f} %)")
    return out


if __name__ == "__main__":
    main()
