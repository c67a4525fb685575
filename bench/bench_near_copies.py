"""How fast NumPy copies run by where the destination starts past the source within the page (issue #26).

For each copy size (``--sizes``, KiB per side) and each offset of the destination past the source modulo 4 KiB
(``--offsets``, bytes; the source starts a page), the median GB/s (read + write) of ``--runs`` timed runs of
``np.copyto``, each run ~2 ms of copies, the offsets alternating within a round so the box's drift falls on all.
glibc copies 2 KiB and up with ``rep movsb`` where the CPU reports it fast (FSRM); on some (glibc bug 30994, AMD Zen
3) that runs 4-15x slower at offsets of 1-31 bytes, which ``accelsim calibrate`` looks for
(:func:`kernels.trace.microbench.near_copy_gbs`). Run it with and without
``GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=4294967295`` to see what the setting changes.
Run: ``python bench/bench_near_copies.py [--runs 7] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

from kernels.trace.microbench import alternating_copy_rates, copy_pair

__all__ = ["main", "table"]

SIZES_KIB = (4, 16, 64, 128, 256, 384, 512, 1024, 4096)
OFFSETS = (0, 8, 16, 31, 32, 64, 2048, 4080)


def table(sizes_kib, offsets, runs: int) -> dict[int, dict[int, float]]:
    """Median GB/s by size (KiB) and offset (bytes)."""
    out = {}
    for kib in sizes_kib:
        n = kib * 1024
        pairs = {off: copy_pair(n, off) for off in offsets}
        inner = max(1, (8 * 1024**2) // n)  # ~2 ms of copies a run at 50 GB/s
        out[kib] = {off: statistics.median(r) for off, r in alternating_copy_rates(pairs, runs, inner).items()}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES_KIB), metavar="KIB")
    parser.add_argument("--offsets", type=int, nargs="+", default=list(OFFSETS), metavar="BYTES")
    parser.add_argument("--json", help="write the table here too")
    args = parser.parse_args(argv)
    if args.runs < 1 or any(s < 1 for s in args.sizes) or any(not 0 <= o < 4096 for o in args.offsets):
        parser.error("--runs and --sizes at least 1, --offsets within 0-4095")
    got = table(args.sizes, args.offsets, args.runs)
    tunables = os.environ.get("GLIBC_TUNABLES")
    print(f"GB/s (median of {args.runs}) by size and destination offset past the source; "
          f"GLIBC_TUNABLES={tunables or '(unset)'}")
    print("| KiB | " + " | ".join(f"+{o} B" for o in args.offsets) + " |")
    print("|---" * (len(args.offsets) + 1) + "|")
    for kib, row in got.items():
        print(f"| {kib} | " + " | ".join(f"{row[o]:.3g}" for o in args.offsets) + " |")
    doc = {"runs": args.runs, "glibc_tunables": tunables,
           "gbs": {str(k): {str(o): v for o, v in row.items()} for k, row in got.items()}}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return doc


if __name__ == "__main__":
    main()
