"""Table of bench/bench_loop.sh's passes: per loop and pass, whole-run time measured / projected (error), per-layer
MAPE, the plan's gain (dense / plan) measured / projected, and the box's state during the run against the
calibration's (the probe's rate, run / calibration: ``validate``'s ``box_state``); then the median of each column
over the passes.
Run: ``python bench/bench_loop_table.py OUT``."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

LOOPS = {"seq": "`seq_len=8`", "full": "full size", "bert": "`bert_base`"}


def summary(path: Path) -> dict:
    """Per variant (dense, plan): measured and projected whole-run seconds, error %, per-layer MAPE %; the gain."""
    doc = json.loads(path.read_text())
    out = {}
    for v in doc["variants"]:
        run, layers = v["run"], v["layers"]
        out["dense" if v["plan"] == "dense" else "plan"] = {
            "meas": run["measured_s"], "proj": run["projected_s"],
            "err": 100 * (run["projected_s"] / run["measured_s"] - 1),
            "mape": 100 * statistics.fmean(abs(x["projected_s"] - x["measured_s"]) / x["measured_s"] for x in layers)}
    d, p = out["dense"], out["plan"]
    out["gain"] = {"meas": d["meas"] / p["meas"], "proj": d["proj"] / p["proj"]}
    out["gain"]["err"] = 100 * (out["gain"]["proj"] / out["gain"]["meas"] - 1)
    out["state"] = {"ratio": (doc.get("box_state") or {}).get("ratio")}
    return out


def _median(values: list):
    return None if None in values else statistics.median(values)


def row(label: str, s: dict, start: str = "", load: str = "") -> str:
    d, p, g, r = s["dense"], s["plan"], s["gain"], s["state"]["ratio"]
    return (f"| {label} | {start} | {load} | {d['meas']:.4g} / {d['proj']:.4g} ({d['err']:+.1f} %) | "
            f"{p['meas']:.4g} / {p['proj']:.4g} ({p['err']:+.1f} %) | {d['mape']:.1f} / {p['mape']:.1f} | "
            f"{g['meas']:.3f}× / {g['proj']:.3f}× ({g['err']:+.1f} %) | {'n/a' if r is None else f'{r:.2f}×'} |")


def main(root: Path) -> None:
    print("| pass | start (UTC) | load | dense meas / proj s (err) | plan meas / proj s (err) "
          "| per-layer MAPE dense / plan % | gain meas / proj (err) | probe run / calibration |")
    print("|---|---|---|---|---|---|---|---|")
    for tdir in sorted(root.glob("t*")):
        threads = tdir.name[1:]
        for loop, name in LOOPS.items():
            got = []
            for pdir in sorted(tdir.glob("p*"), key=lambda p: int(p.name[1:])):
                f = pdir / f"{loop}.json"
                if not f.is_file() or not f.stat().st_size:
                    continue
                start, load = (pdir / f"{loop}.start").read_text().split()[-2:]
                got.append(summary(f))
                print(row(f"{name}, {threads} thread{'s' * (threads != '1')}, {pdir.name[1:]}", got[-1], start, load))
            if len(got) > 1:
                med = {v: {k: _median([s[v][k] for s in got]) for k in got[0][v]} for v in got[0]}
                print(row(f"**{name}, {threads} thread{'s' * (threads != '1')}, median**", med))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
