"""GPU suite (issue 15): the validation set's kernels again, on the current code, with >= 1 s NVML windows.

Run: ``python3 bench/gpu/suite_replay.py --json FILE --traces DIR --budget-s SECONDS``
(``--backend numpy --tiny`` runs the same code on the CPU's ``small`` cases; tests do that).

``../shared/gpu/h200-cupy`` was recorded at a1a550e by the ``kernels.suites`` paper cases with
10 timed calls and NVML windows mostly under 1 s. This suite times the same cases (dense GEMM,
N:M, TASD, Kron, projections) on today's kernels through ``kernels.suites``' own timing: the
median of 10 calls, and energy per call over a window the recorder extends to >= 1 s, with the
idle power before it. Cases run round-robin over the suites, each suite's in a fixed shuffled
order, so any budget covers every family; a case starts only while the budget has room for the
slowest case so far. The JSON is rewritten after every case; a failing case is listed under ``errors``. ``bench/gpu/replay_check.py`` then replays these records with the saved H200
calibration (the calibrate-once, apply-elsewhere check) and fits energy on them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gpu.common import exit_on_term, guarded, suite_parser, write_json  # noqa: E402
from kernels.backend import device_info, get_xp  # noqa: E402
from kernels.suites import record_case, round_robin, within_budget  # noqa: E402
from kernels.trace import Recorder  # noqa: E402

__all__ = ["main", "round_robin", "run"]

SEED = 0


def _measure(case, xp, recorder, repeats: int) -> dict:
    """One case timed by ``kernels.suites``' own ``time_call`` (>= 1 s NVML window on a GPU), recorded."""
    _, timing = record_case(case, xp, recorder, warmup=3, repeats=repeats)
    return {"suite": case.suite, "label": case.label, "time_s": timing.median_s, "energy_j": timing.energy_j,
            "energy_window_s": timing.energy_window_s, "idle_power_w": timing.idle_power_w}


def run(xp, recorder, budget_s: float, size: str, repeats: int, write=None) -> dict:
    """Time cases in :func:`~kernels.suites.round_robin` order while the budget has room for the slowest one so
    far (:func:`~kernels.suites.within_budget`); ``write(result)`` after each (a failing case is listed under
    ``errors``)."""
    cases = round_robin(size, xp, SEED)
    rows, errors = [], []

    def result() -> dict:
        done = len(rows) + len(errors)
        return {"cases": len(cases), "recorded": len(rows), "failed": len(errors), "skipped": len(cases) - done,
                "families": sorted({r["suite"] for r in rows}), "rows": rows, "errors": errors}

    for case in within_budget(cases, budget_s):
        row = guarded(f"{case.suite} {case.label}", lambda: _measure(case, xp, recorder, repeats), errors)
        if row is not None:
            rows.append(row)
        recorder.flush()
        if write:
            write(result())
    return result()


def main(argv=None) -> int:
    ap = suite_parser(__doc__, budget_s=60.0, tiny="the CI-sized cases (CPU check of the script)")
    args = ap.parse_args(argv)
    xp = get_xp(args.backend)
    head = {"suite": "replay", "device": device_info(xp)["device_name"], "backend": args.backend}
    with Recorder(args.traces) as rec:
        result = run(xp, rec, args.budget_s, "small" if args.tiny else "paper", repeats=3 if args.tiny else 10,
                     write=lambda res: write_json(args.json, {**head, **res}))
    result = {**head, **result}
    write_json(args.json, result)
    windows = [r["energy_window_s"] for r in result["rows"] if r["energy_window_s"]]
    print(f"replay: {result['recorded']} of {result['cases']} cases ({', '.join(result['families'])}); "
          f"{len(windows)} with an NVML window, shortest {min(windows, default=0):.2f} s")
    return 0


if __name__ == "__main__":
    exit_on_term()  # as a script only: tests call main() in their own process
    sys.exit(main())
