"""How long a calibration's cold GEMMs wait for their operands, timed against themselves warm (issue 26).

Each of :data:`~accelsim.replay.device_calibration.COLD_CASES` is timed warm and cold in turn, call by call (the cold
call after the calibration's own stream, :func:`~accelsim.replay.device_calibration.cold_case`, of ``--side-mib``
per side), in ``--processes`` fresh processes one after the other. Per process: each shape's median warm and cold
time, the difference, and the fraction that difference gives the modelled fetch (``input_bytes`` read at the DRAM rate
of ``--calibration``'s arch, as the replay prices it) with the least-squares fraction over the six (relative to the
cold time), beside the ``cold_gemm`` fraction that calibration fitted. The spread of the fraction between processes
minutes apart is what the box itself does to a cold read; no fit of it can be steadier.
Run: ``OPENBLAS_NUM_THREADS=T python bench/bench_cold_fetch.py --calibration DIR [--side-mib 60] [--processes 4]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main", "measure"]


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def measure(calibration: Path, side: int, passes: int, repeats: int) -> dict:
    """One process's warm and cold medians per shape (the median over ``passes`` of each pass's median of
    ``repeats`` pairs), the modelled fetch, and the fractions."""
    from accelsim.replay.device_calibration import COLD_CASES, load_calibration_dir, cold_case
    from accelsim.replay.project import COLD, project, record_workload

    arch, _, doc = load_calibration_dir(calibration)
    prepared = {shape: cold_case(*shape, side=side, seed=1).prepare() for shape in COLD_CASES}
    times = {shape: ([], []) for shape in COLD_CASES}
    for _ in range(passes):
        for shape, p in prepared.items():
            p.fn(*p.args)
            warm, cold = [], []
            for _ in range(repeats):
                warm.append(_timed(p.fn, *p.args))
                p.before()
                cold.append(_timed(p.fn, *p.args))
            times[shape][0].append(statistics.median(warm))
            times[shape][1].append(statistics.median(cold))
    shapes, num, den = [], 0.0, 0.0
    for (m, n, k), (warm, cold) in times.items():
        fields = prepared[(m, n, k)].fields
        row = {"kernel": "gemm", "backend": "numpy", "m": m, "n": n, "k": k, "dtype": "float32",
               "bytes_min": fields["bytes_min"], "params": json.dumps(fields["params"])}
        family, (_, read), _ = record_workload(row, arch)  # the calibration's own cold record, as the replay prices it
        assert family == COLD
        fetch = project(arch, read).memory_s
        w, c = statistics.median(warm), statistics.median(cold)
        num, den = num + fetch * (c - w) / c**2, den + fetch**2 / c**2
        shapes.append({"shape": f"{m}x{n}x{k}", "warm_s": w, "cold_s": c, "fetch_s": fetch,
                       "fraction": fetch / (c - w) if c > w else None})
    fitted = (doc["groups"].get("cold_gemm float32") or doc["families"].get("cold_gemm") or {})
    return {"side": side, "shapes": shapes, "fraction": den / num if num > 0 else None,
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
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    side = int(args.side_mib * 2**20)
    if args.one:
        print(json.dumps(measure(args.calibration, side, args.passes, args.repeats)))
        return []
    out = []
    for i in range(args.processes):
        cmd = [sys.executable, __file__, "--one", "--calibration", str(args.calibration), "--side-mib",
               str(args.side_mib), "--passes", str(args.passes), "--repeats", str(args.repeats)]
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
