"""How a layer that compresses its activation at run time grows with its rows, measured and projected (issue #26).

MiniLM's full-size TASD-A layers (2:4+1:4 on the 384-wide input, 1536 outputs) at 1024 to 8192 rows, timed as
``accelsim calibrate`` times its run-time cases (:func:`~accelsim.replay.calibration_set.runtime_case`,
:func:`~accelsim.replay.calibration_set.record`: passes over the row counts, merged by the calibration's
pass mean; freed memory kept for reuse, as ``accelsim run`` and ``calibrate`` keep it), each projected with
``--calibration``'s arch and fit. The compression keeps 17 B per value live
(:func:`~accelsim.replay.numpy_passes.decompose_live`: 51 MiB at 8192 rows), past a 30 MiB L3 from 8192 rows on:
the levels its passes are priced at (:func:`~accelsim.replay.records.streaming_levels`) are printed beside it.
Run: ``OPENBLAS_NUM_THREADS=T python bench/bench_runtime_rows.py --calibration DIR [--rounds 5] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import time

ROWS = (1024, 2048, 4096, 8192)
SHAPE = (1536, 384, "tasd", "2:4+1:4")
"""``(out, in, kernel, series)`` of MiniLM's intermediate layers under the README's TASDER plan."""


def main(argv=None) -> None:
    import pyarrow as pa

    from accelsim.replay.box_state import pass_center
    from accelsim.replay.calibration_dir import load_calibration_dir
    from accelsim.replay.calibration_set import record, runtime_case
    from accelsim.replay.cpu_report import os_report
    from accelsim.replay.network import simulator_predictor
    from accelsim.replay.project import items_from_table
    from accelsim.replay.records import streaming_levels
    from kernels.trace import Recorder
    from kernels.trace.microbench import keep_freed_memory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", required=True, help="a directory of `accelsim calibrate`")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the row counts")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    arch, cal, _ = load_calibration_dir(args.calibration)
    keep_freed_memory()
    report = os_report()
    cases = [runtime_case(m, *SHAPE) for m in ROWS]
    rec = Recorder(None)
    record(rec, cases, time.monotonic() + 3600, report["blas_threads"], passes=args.rounds,
           core=report.get("blas_core"))
    items = sorted(items_from_table(pa.Table.from_pylist(rec.rows), arch, pass_center), key=lambda it: it.row["m"])
    predict = simulator_predictor(arch, cal)  # warm: the cases are timed in a loop of their own
    rows = []
    for it in items:
        projected, _ = predict(it)
        live = it.workload[0].working_set  # the compression's part (as_run puts it first): what it keeps live
        levels = ", ".join(f"{lvl.name} {share:.0%}" for lvl, share in streaming_levels(arch, live))
        rows.append({"rows": it.row["m"], "measured_s": it.measured_s, "projected_s": projected,
                     "live_mib": live / 2**20, "levels": levels})
        print(f"{it.row['m']:5d} rows: measured {it.measured_s * 1e3:8.2f} ms, projected {projected * 1e3:8.2f} ms "
              f"({projected / it.measured_s - 1:+.1%}); {live / 2**20:.1f} MiB live, compression from {levels}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"blas_threads": report["blas_threads"], "rounds": args.rounds, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
