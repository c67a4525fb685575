"""The mapper on `systolic_ws_32x32`: search time per distinct layer, and EDP per layer against the
peers' best (ZigZag LOMA and SALSA, AccelForge), read from the peers' side-by-side run.

    python bench/bench_mapper.py [--peers bench/results/peers_mapper_systolic_ws_32x32.json] [--repeats 5]

EDP here is dynamic energy × cycles (the peers model no leakage). Writes
bench/results/mapper_systolic_ws_32x32.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

from accelsim import simulate
from accelsim.model import mapper
from accelsim.model.arch import load_arch
from accelsim.model.workload import layer_key
from accelsim.model.workloads import bert_base, resnet50

ROOT = Path(__file__).resolve().parent.parent
ARCH = "systolic_ws_32x32"


def dynamic(layer) -> tuple[float, float, float]:
    """(cycles, dynamic energy pJ, dynamic EDP) of one layer result."""
    e = layer.energy_pj - layer.energy_breakdown.get("leakage", 0.0)
    return layer.cycles, e, e * layer.cycles


def timed_search(arch, layer, repeats: int) -> tuple[float, object]:
    """Median wall time of a cold search of one layer (the result cache emptied before each run)."""
    times = []
    for _ in range(repeats):
        mapper._CACHE.clear()
        t0 = time.perf_counter()
        rep = simulate(arch, layer, mapper="search")
        times.append(time.perf_counter() - t0)
    return statistics.median(times), rep.layers[0]


def peer_best(peers: dict, name: str) -> tuple[str, dict] | None:
    """The peer result of least EDP for a layer name, if the peers' run has it."""
    rows = peers.get("layers", {}).get(name)
    if not rows:
        return None
    done = {k: v for k, v in rows.items() if isinstance(v, dict) and v.get("edp")}
    return min(done.items(), key=lambda kv: kv[1]["edp"]) if done else None


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", type=Path, default=ROOT / "bench/results/peers_mapper_systolic_ws_32x32.json")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/mapper_systolic_ws_32x32.json")
    args = ap.parse_args(argv)
    arch = load_arch(ARCH)
    peers = json.loads(args.peers.read_text()) if args.peers.exists() else {}
    out = {"arch": ARCH, "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}",
           "repeats": args.repeats, "networks": {}}
    for net in (resnet50(), bert_base()):
        seen: dict = {}
        rows = []
        for layer in net.layers:
            key = layer_key(layer)
            if key not in seen:
                t, found = timed_search(arch, layer, args.repeats)
                fixed = simulate(arch, layer).layers[0]
                seen[key] = {"search_s": t, "search": dynamic(found), "fixed": dynamic(fixed),
                             "mapping": found.detail["mapping"]}
            r = dict(seen[key], name=layer.name)
            best = peer_best(peers, layer.name)
            if best is not None:
                r["peer"], r["peer_edp"] = best[0], best[1]["edp"]
                r["ratio"] = r["search"][2] / best[1]["edp"]
            rows.append(r)
        whole = []
        for _ in range(args.repeats):
            mapper._CACHE.clear()
            t0 = time.perf_counter()
            simulate(arch, net, mapper="search")
            whole.append(time.perf_counter() - t0)
        ratios = [r["ratio"] for r in rows if "ratio" in r]
        summary = {
            "layers": len(rows), "distinct": len(seen),
            "search_s_per_distinct_median": statistics.median(v["search_s"] for v in seen.values()),
            "search_s_per_distinct_max": max(v["search_s"] for v in seen.values()),
            "whole_network_search_s": statistics.median(whole),
            "cycles": sum(r["search"][0] for r in rows), "dynamic_energy_pj": sum(r["search"][1] for r in rows),
            "fixed_cycles": sum(r["fixed"][0] for r in rows), "fixed_dynamic_energy_pj": sum(r["fixed"][1] for r in rows),
        }
        if ratios:
            summary.update(compared=len(ratios), geomean_edp_vs_best_peer=math.exp(statistics.fmean(map(math.log, ratios))),
                           worst_edp_vs_best_peer=max(ratios), within_5pct=sum(x <= 1.05 for x in ratios))
        out["networks"][net.name] = {"summary": summary, "layers": rows}
        print(f"{net.name}: {json.dumps(summary)}")
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
