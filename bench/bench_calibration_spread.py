"""How far a second `accelsim calibrate` on the same box moves each parameter (issue #26: within 10 %).

Runs ``--runs`` calibrations back to back (``OPENBLAS_NUM_THREADS=--threads``) into ``--work``, or takes existing
calibration directories (``--dirs``, in the order they were made), and compares every pair with
:func:`accelsim.replay.calibration_diff.compare_dirs`: per parameter the largest |change| over pairs of one box
state, and over consecutive pairs only; how many pairs keep every parameter within 10 %, also among the calibrations
made on a steady box (:func:`accelsim.replay.box_state.unsteady_note`); the share of the time each parameter prices
(median and largest over the configurations); each calibration's own interval for it over its passes drawn again
(:mod:`accelsim.replay.resample`: the median half-width) and how many one-state pairs put the second outside the
first's (the box moved between them beyond its passes' own spread); per group the largest median change of the
projected time, and of its cases' own times as each calibration measured them (the box's own move), and how far its
furthest case's own time moved; per rate the box itself was measured at (MAC rates, copies, scatters, rank steps)
the largest change (where those moved as far as a parameter, the box moved, not the fit). Pairs in two states are
counted apart, and also over every pair (what a user who cannot choose the box's state sees). With ``--project RUN
...`` (trace directories of ``accelsim run``), each run is projected with every calibration: per run and plan, the
largest change of the projected whole-run time and of the projected gain between two calibrations, over one-state
pairs and over all pairs (what a user sees move). With ``--refit DIR``, each calibration is first fitted again on its
own traces with the replay as it is (:func:`~accelsim.replay.device_calibration.refit_saved`) into ``DIR``, so a
change to the replay is judged on calibrations already made.
Run: ``python bench/bench_calibration_spread.py --runs 8 --threads 2 --work /tmp/spread [--project RUN ...] [--json F]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from accelsim.replay.box_state import UNSTEADY_PASSES, unsteady_note
from accelsim.replay.calibration_diff import DRIFT, compare_dirs
from accelsim.replay.calibration_dir import CALIBRATION_FILE

__all__ = ["main", "projection_spread", "spread"]


def _calibrate(work: Path, runs: int, threads: int) -> list[Path]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads)}
    out = []
    for i in range(1, runs + 1):
        d = work / f"cal-t{threads}-{i}"
        subprocess.run([sys.executable, "-m", "accelsim", "calibrate", "--out", str(d), "--format", "json"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        out.append(d)
    return out


def _worst(values: list[float], pairs) -> float | None:
    return max((abs(values[j] / values[i] - 1) for i, j in pairs), default=None)


def projection_spread(dirs: list[Path], runs: list[Path], same: list[tuple[int, int]]) -> list[dict]:
    """Per run of ``runs`` and plan: the whole-run time each calibration of ``dirs`` projects (priced for the run's
    state as ``validate`` prices it, :func:`~accelsim.replay.probe_power.for_state`), the projected gain (dense /
    plan), and the largest change of either over the ``same``-state pairs and over every pair."""
    from accelsim.replay.box_state import compared_state
    from accelsim.replay.calibration_dir import load_calibration_dir
    from accelsim.replay.network import DENSE, compare_run
    from accelsim.replay.probe_power import for_state
    from accelsim.replay.traces import load

    loaded = [load_calibration_dir(d) for d in dirs]
    every = list(itertools.combinations(range(len(dirs)), 2))
    out = []
    for run in runs:
        table = load(run)
        projected = {}
        for arch, cal, doc in loaded:
            priced, _ = for_state(cal, doc, compared_state(doc, table))
            for v in compare_run(table, arch, priced)["variants"]:
                projected.setdefault(v["plan"], []).append(v["run"]["projected_s"])
        dense = projected.get(DENSE)
        for plan, times in projected.items():
            gains = [d / t for d, t in zip(dense, times)] if dense and plan != DENSE else None
            out.append({"run": str(run), "plan": plan, "projected_s": times,
                        "worst_same_state": _worst(times, same), "worst_any": _worst(times, every),
                        "gain_worst_same_state": gains and _worst(gains, same),
                        "gain_worst_any": gains and _worst(gains, every)})
    return out


def spread(dirs: list[Path], runs: list[Path] = ()) -> dict:
    """Every pair of ``dirs`` compared; the summary per parameter and group over the pairs of one state; each of
    ``runs`` projected with every calibration (:func:`projection_spread`)."""
    pairs = {(i, j): compare_dirs(dirs[i], dirs[j]) for i, j in itertools.combinations(range(len(dirs)), 2)}
    same = {ij: d for ij, d in pairs.items() if d["state"]["same"] is not False}
    consecutive = {ij: d for ij, d in same.items() if ij[1] == ij[0] + 1}
    first = next(iter(pairs.values()))

    def worst(sel, name, key="params", field="change", by="name"):
        v = [abs(p[field]) for d in sel.values() for p in d[key] if p[by] == name and p.get(field) is not None]
        return max(v) if v else None

    def shares(name, key):
        return [q[key] for d in pairs.values() for q in d["params"] if q["name"] == name and q[key] is not None]

    docs = [json.loads((Path(d) / CALIBRATION_FILE).read_text()) for d in dirs]

    def own(name):  # each calibration's interval over its passes drawn again, half its width in %
        v = [w for doc in docs if (w := ((doc.get("param_intervals") or {}).get(name) or {}).get("half_width_pct"))
             is not None]
        return statistics.median(v) if v else None

    def outside(name):
        v = [p["inside"] for d in same.values() for p in d["params"]
             if p["name"] == name and p.get("inside") is not None]
        return [sum(not x for x in v), len(v)] if v else None

    params = [{"name": p["name"], "share": statistics.median(shares(p["name"], "share") or [0.0]),
               "share_max": max(shares(p["name"], "share_max") or [0.0]),
               "worst_same_state": worst(same, p["name"]), "worst_consecutive": worst(consecutive, p["name"]),
               "worst_any": worst(pairs, p["name"]),
               "own_half_width_pct": own(p["name"]), "outside_same_state": outside(p["name"])}
              for p in first["params"]]
    peaks = [{"name": p["name"], "worst_same_state": worst(same, p["name"], "peaks"),
              "worst_consecutive": worst(consecutive, p["name"], "peaks"),
              "worst_any": worst(pairs, p["name"], "peaks")}
             for p in first["peaks"]]
    groups = [{"group": g["group"],
               "worst_median_change": worst(same, g["group"], "projection", "median_change", "group"),
               "worst_measured_change": worst(same, g["group"], "projection", "measured_median_change", "group"),
               "worst_case_change": worst(same, g["group"], "projection", "measured_max_change", "group")}
              for g in first["projection"]]
    unsteady = [i for i, doc in enumerate(docs) if unsteady_note(doc)]
    steady = {ij: d for ij, d in same.items() if not set(ij) & set(unsteady)}
    return {"dirs": [str(d) for d in dirs], "pairs": len(pairs), "same_state_pairs": len(same),
            "within": sum(d["within"] for d in same.values()),
            "any_within": sum(d["within"] for d in pairs.values()),
            "unsteady": unsteady, "steady_pairs": len(steady), "steady_within": sum(d["within"] for d in steady.values()),
            "consecutive_pairs": len(consecutive), "consecutive_within": sum(d["within"] for d in consecutive.values()),
            "probes": [first["state"]["a_probe_gflops"]] + [pairs[(0, j)]["state"]["b_probe_gflops"]
                                                           for j in range(1, len(dirs))],
            "params": params, "peaks": peaks, "groups": groups,
            "projections": projection_spread(dirs, list(runs), list(same))}


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.1f} %"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=0, help="calibrations to run back to back")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, help="directory for the calibrations run")
    parser.add_argument("--dirs", type=Path, nargs="*", default=[], help="existing calibration directories")
    parser.add_argument("--project", type=Path, nargs="*", default=[],
                        help="trace directories of `accelsim run` to project with every calibration")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--refit", type=Path, help="fit each calibration again with the replay as it is, into here")
    args = parser.parse_args(argv)
    dirs = list(args.dirs) + (_calibrate(args.work, args.runs, args.threads) if args.runs else [])
    if len(dirs) < 2:
        parser.error("need two calibrations or more (--runs N --work DIR, or --dirs D1 D2 ...)")
    if args.refit is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_loop_refit import refit_dir

        refitted = [args.refit / f"{i}-{d.name}" for i, d in enumerate(dirs, 1)]
        for src, dst in zip(dirs, refitted):
            refit_dir(src, dst)
        dirs = refitted
    s = spread(dirs, args.project)
    probes = ", ".join("n/a" if p is None else f"{p:.0f}" for p in s["probes"])
    print(f"{len(dirs)} calibrations, probe {probes} GFLOP/s; "
          f"{s['same_state_pairs']} of {s['pairs']} pairs in one state, {s['within']} of them with every parameter "
          f"within {DRIFT:.0%} (of all pairs: {s['any_within']}); consecutive: {s['consecutive_within']} of "
          f"{s['consecutive_pairs']}; of the one-state "
          f"pairs of steady calibrations (passes spread <= {UNSTEADY_PASSES:g} % in median): {s['steady_within']} of "
          f"{s['steady_pairs']}\n")
    print("| parameter | share of time (median / largest) | worst, one state | worst, consecutive | worst, any pair | "
          "own interval, median +- | one-state pairs outside the first's interval |\n|---|---|---|---|---|---|---|")
    for p in s["params"]:
        w, out = p["own_half_width_pct"], p["outside_same_state"]
        print(f"| {p['name']} | {_pct(p['share'])} / {_pct(p['share_max'])} | {_pct(p['worst_same_state'])} | "
              f"{_pct(p['worst_consecutive'])} | {_pct(p['worst_any'])} | {'n/a' if w is None else f'{w:.1f} %'} | "
              f"{'n/a' if out is None else f'{out[0]} of {out[1]}'} |")
    print("\n| the box's own rate | worst, one state | worst, consecutive | worst, any pair |\n|---|---|---|---|")
    for p in s["peaks"]:
        print(f"| {p['name']} | {_pct(p['worst_same_state'])} | {_pct(p['worst_consecutive'])} | "
              f"{_pct(p['worst_any'])} |")
    print("\n| group | worst median change of projected time, one state | of its cases' own measured time | "
          "of its furthest case's own time |\n|---|---|---|---|")
    for g in s["groups"]:
        print(f"| {g['group']} | {_pct(g['worst_median_change'])} | {_pct(g['worst_measured_change'])} | "
              f"{_pct(g['worst_case_change'])} |")
    if s["projections"]:
        print("\n| run | plan | projected whole run s, per calibration | worst change, one state / any | "
              "worst gain change, one state / any |\n|---|---|---|---|---|")
    for r in s["projections"]:
        print(f"| {r['run']} | {r['plan']} | {', '.join(f'{t:.4g}' for t in r['projected_s'])} | "
              f"{_pct(r['worst_same_state'])} / {_pct(r['worst_any'])} | "
              f"{_pct(r['gain_worst_same_state'])} / {_pct(r['gain_worst_any'])} |")
    if args.json:
        args.json.write_text(json.dumps(s, indent=2) + "\n")
    return s


if __name__ == "__main__":
    main()
