"""Where the loops' errors sit: per calibration case, and per layer kind of the runs.

``cases CAL [CAL ...]``: each GEMM case of the calibrations' own traces (families ``gemm``, ``cold_gemm``,
``batched_gemm``) projected with its saved fit, the median over the calibrations of projected / measured − 1, beside
the median measured time. ``layers OUT THREADS [--loop bert]``: per variant (dense, plan), layer kind (``q``,
``ffn1``, ``layer.attention.qk``: the name without its first part and its layer numbers) and kernel, projected /
measured − 1 of the summed times of every pass of ``bench/bench_loop.sh``'s reports in ``OUT/tTHREADS`` (or
``bench/bench_loop_refit.py``'s), and the kind's share of the measured time.
Run: ``python bench/bench_loop_cases.py cases OUT/t1/p*/cal`` or
``python bench/bench_loop_cases.py layers OUT 1 [--loop seq|full|bert]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
from pathlib import Path

__all__ = ["case_errors", "layer_errors", "main"]

GEMM_FAMILIES = ("gemm", "cold_gemm", "batched_gemm")


def case_errors(cal_dirs: list[Path]) -> dict[tuple[str, str], tuple[float, float]]:
    """``(family, label) → (median measured s, median projected / measured − 1)`` over ``cal_dirs``."""
    from accelsim.replay.calibration_dir import TRACES_DIR, load_calibration_dir
    from accelsim.replay.network import simulator_predictor
    from accelsim.replay.project import items_from_table
    from accelsim.replay.traces import load

    got = collections.defaultdict(list)
    for cal in cal_dirs:
        arch, calibration, _ = load_calibration_dir(cal)
        predict = simulator_predictor(arch, calibration)
        for it in items_from_table(load(Path(cal) / TRACES_DIR), arch):
            if it.family in GEMM_FAMILIES:
                got[(it.family, it.label)].append((it.measured_s, predict(it, 0)[0] / it.measured_s - 1))
    return {k: (statistics.median(m for m, _ in v), statistics.median(e for _, e in v)) for k, v in sorted(got.items())}


def layer_errors(out: Path, threads: str, loop: str) -> dict[tuple[str, str, str], tuple[float, float]]:
    """``(variant, layer kind, kernel) → (share of the variant's measured time, projected / measured − 1)``."""
    sums = collections.defaultdict(lambda: [0.0, 0.0])
    for f in sorted(out.glob(f"t{threads}/p*/{loop}.json")):
        for v in json.loads(f.read_text())["variants"]:
            for layer in v["layers"]:
                kind = ".".join(p for p in layer["layer"].split(".")[1:] if not p.isdigit())
                key = ("dense" if v["plan"] == "dense" else "plan", kind, layer["kernel"])
                sums[key][0] += layer["projected_s"]
                sums[key][1] += layer["measured_s"]
    total = collections.Counter()
    for (variant, *_), (_, measured) in sums.items():
        total[variant] += measured
    return {k: (m / total[k[0]], p / m - 1) for k, (p, m) in sorted(sums.items())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    cases = sub.add_parser("cases", help="per calibration case")
    cases.add_argument("cal", type=Path, nargs="+", help="calibration directories (accelsim calibrate --out)")
    layers = sub.add_parser("layers", help="per layer kind of the loops' runs")
    layers.add_argument("out", type=Path, help="an output directory of bench/bench_loop.sh")
    layers.add_argument("threads", help="the thread count of the loops (the tTHREADS folder)")
    layers.add_argument("--loop", default="bert", choices=("seq", "full", "bert"))
    args = parser.parse_args(argv)
    if args.what == "cases":
        print("| family | case | measured s (median) | error (median) |\n|---|---|---|---|")
        for (family, label), (m, e) in case_errors(args.cal).items():
            print(f"| {family} | {label} | {m:.3g} | {100 * e:+.1f} % |")
    else:
        print("| variant | layer | kernel | share of measured | error |\n|---|---|---|---|---|")
        for (variant, kind, kernel), (share, e) in layer_errors(args.out, args.threads, args.loop).items():
            print(f"| {variant} | {kind} | {kernel} | {100 * share:.1f} % | {100 * e:+.1f} % |")


if __name__ == "__main__":
    main()
