"""Merge the peers' per-shape runs (bench/peers/runs/*.json) into one per-layer results file.

Stdlib only. Every layer gets the result of its shape (identical layers ran once); a layer with count > 1
(BERT's per-head attention GEMMs) is count independent copies of the GEMM, so its cycles and energy are count
times the single GEMM's. AccelForge's result per shape is its best EDP over the SRAM orders it was run with.

    python3 bench/peers/merge.py [--out bench/results/peers_mapper_systolic_ws_32x32.json]
"""
import argparse
import json
import os
import platform

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUNS = {  # result name -> run file; in the order they are listed
    "zigzag_loma6": "zigzag_loma6.json", "zigzag_loma7": "zigzag_loma7.json",
    "zigzag_salsa": "zigzag_salsa.json", "accelforge": "accelforge.json"}
KEEP = ("cycles", "energy_pj", "edp", "search_wall_s", "search_cpu_s", "mapping", "loadavg_1min", "error")


def shape_result(run: dict, net: str, sid: str) -> dict | None:
    """One shape's result from one run; for AccelForge the best-EDP SRAM order, with every order's EDP."""
    shapes = run["shapes"]
    if run["peer"] == "zigzag":
        rec = shapes.get(f"{net}/{sid}")
        return None if rec is None else {k: rec[k] for k in KEEP if k in rec}
    tried = {k.rsplit("/", 1)[1]: v for k, v in shapes.items() if k.startswith(f"{net}/{sid}/")}
    ok = {o: v for o, v in tried.items() if "error" not in v}
    if not ok:
        return {"error": "; ".join(f"{o}: {v['error']}" for o, v in tried.items())} if tried else None
    order = min(ok, key=lambda o: ok[o]["edp"])
    out = {k: ok[order][k] for k in KEEP if k in ok[order]}
    out.update({"sram_order": order, "search_wall_s": round(sum(v.get("search_wall_s", 0) for v in tried.values()), 3),
                "search_wall_s_best_order": ok[order]["search_wall_s"],
                "edp_by_order": {o: v.get("edp", v.get("error")) for o, v in tried.items()}})
    return out


def merge(layers: dict, runs: dict) -> dict:
    """{net: {"layers": [...], "totals": {...}}} from layers.json and the loaded runs."""
    nets = {}
    for net, spec in layers.items():
        by_id = {s["id"]: s for s in spec["shapes"]}
        rows, first_of = [], {}
        totals = {name: {"cycles": 0.0, "energy_pj": 0.0, "sum_layer_edp": 0.0, "search_wall_s": 0.0,
                         "layers_done": 0, "layers_missing": 0} for name in runs}
        for layer in spec["layers"]:
            sid, count = layer["shape"], layer["count"]
            row = {"name": layer["name"], "count": count, "problem": by_id[sid]["problem"], "shape": sid}
            if sid in first_of:
                row["reuses"] = first_of[sid]
            else:
                first_of[sid] = layer["name"]
            for name, run in runs.items():
                res = shape_result(run, net, sid)
                t = totals[name]
                if res is None or "error" in res:
                    t["layers_missing"] += 1
                    row[name] = res
                    continue
                # a reused shape's search and mapping are on the layer it reuses: numbers only here
                row[name] = {k: res[k] for k in ("cycles", "energy_pj", "edp")} if "reuses" in row else res
                t["cycles"] += count * res["cycles"]
                t["energy_pj"] += count * res["energy_pj"]
                t["sum_layer_edp"] += count * count * res["edp"]
                t["layers_done"] += 1
                if "reuses" not in row:
                    t["search_wall_s"] += res["search_wall_s"]
            done = {n: row[n] for n in runs if row.get(n) and "error" not in row[n]}
            if done:
                best = min(done, key=lambda n: done[n]["edp"] * count * count)
                row["best"] = {"by": best, "edp": done[best]["edp"] * count * count,
                               "cycles": done[best]["cycles"] * count, "energy_pj": done[best]["energy_pj"] * count}
            rows.append(row)
        best = [r["best"] for r in rows if "best" in r]
        totals["best_per_layer"] = {"cycles": sum(b["cycles"] for b in best),
                                    "energy_pj": sum(b["energy_pj"] for b in best),
                                    "sum_layer_edp": sum(b["edp"] for b in best), "layers_done": len(best),
                                    "layers_missing": len(rows) - len(best),
                                    "by": {n: sum(1 for b in best if b["by"] == n) for n in runs},
                                    "search_wall_s": 0.0}
        for t in totals.values():
            t["network_edp"] = t["energy_pj"] * t["cycles"]
            t["search_wall_s"] = round(t["search_wall_s"], 1)
        nets[net] = {"network": spec["network"], "layers": rows, "totals": totals}
    return nets


def markdown(nets: dict, names: list) -> str:
    """One row per distinct shape: layers using it, each engine's EDP (one copy), the best engine."""
    out = []
    for net, v in nets.items():
        out += [f"\n{net}: EDP (pJ x cycles) of one copy of the layer, shape b x oy x ox x c x kout x fy x fx or m x n x k\n",
                "| shape | layers | " + " | ".join(names) + " | best |", "|---" * (len(names) + 3) + "|"]
        users = {}
        for r in v["layers"]:
            users.setdefault(r["shape"], []).append(r["name"])
        for r in v["layers"]:
            if "reuses" in r:
                continue
            d = r["problem"]["dims"]
            shape = "x".join(str(d[k]) for k in d) + (f" s{r['problem']['stride'][0]}" if "stride" in r["problem"] else "")
            cells = [f"{r[n]['edp']:.3e}" if r.get(n) and "edp" in r[n] else "-" for n in names]
            names_ = users[r["shape"]]
            who = names_[0] + (f" (+{len(names_) - 1})" if len(names_) > 1 else "") + (f" x{r['count']}" if r["count"] > 1 else "")
            out.append(f"| {shape} | {who} | " + " | ".join(cells) + f" | {r.get('best', {}).get('by', '-')} |")
    return "\n".join(out)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=os.path.join(HERE, "runs"))
    p.add_argument("--layers", default=os.path.join(HERE, "layers.json"))
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "peers_mapper_systolic_ws_32x32.json"))
    p.add_argument("--markdown", action="store_true", help="also print a per-shape table of EDP per engine")
    args = p.parse_args(argv)
    runs = {}
    for name, fn in RUNS.items():
        path = os.path.join(args.runs, fn)
        if os.path.exists(path):
            with open(path) as f:
                runs[name] = json.load(f)
    with open(args.layers) as f:
        layers = json.load(f)
    loads = [x for r in runs.values() for v in r["shapes"].values() for x in v.get("loadavg_1min", [])]
    finished = sorted(v["finished_utc"] for r in runs.values() for v in r["shapes"].values())
    doc = {
        "what": "Peer mappers (ZigZag LOMA/SALSA, AccelForge) searching each layer of accelsim's built-in resnet50 "
                "and bert_base (seq_len 128) on their models of systolic_ws_32x32; objective EDP",
        "arch": "systolic_ws_32x32",
        "peer_models": {"zigzag": "shared/peers/zigzag/accelsim_ws_32x32_duplex.yaml + mapping_ws.yaml",
                        "accelforge": "shared/peers/accelforge/accelsim_ws_32x32.arch.yaml (order OWI) and "
                                      "accelsim_ws_32x32_order.arch.yaml (other SRAM orders)"},
        "units": {"cycles": "cycles at 1 GHz", "energy_pj": "dynamic energy, pJ (no leakage)",
                  "edp": "energy_pj * cycles", "search_wall_s": "wall seconds of the peer's search"},
        "notes": [
            "AccelForge cycles are lower bounds (all transfers overlapped); ZigZag adds on/off-loading and drain.",
            "Identical layer shapes ran once; later layers of the same shape carry 'reuses' and add no search time.",
            "BERT attention GEMMs (count 12, one per head) are count independent copies of one GEMM: the single "
            "GEMM was searched and its cycles and energy multiplied by count (its EDP by count^2).",
            "A layer's per-peer numbers are for one copy; its 'best' and the totals include count.",
            "AccelForge: mapper objective Metrics.ENERGY_DELAY_PRODUCT, one job, run once per SRAM order "
            "(the arch's node order; freeing it crashes the mapper); the best EDP order is kept, search_wall_s "
            "sums all orders tried.",
            "ZigZag: opt='EDP' picks among the spatial mappings and LOMA's orderings; SALSA anneals on energy "
            "(its default criterion; the 3.9.1 API does not expose it) and is randomised.",
            "ZigZag's fixed WS spatial unrolling (K over columns, C over rows) leaves conv1 (C=3) at 3/32 row "
            "use; AccelForge may also spread the filter window over the rows.",
            "search_wall_s is on a 2-vCPU box shared with other jobs; see machine.loadavg_1min."],
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_model(), "platform": platform.platform(),
                    "shared": "2-vCPU box shared with about seven other agents' jobs while the peers ran",
                    "loadavg_1min": [min(loads), max(loads)] if loads else None,
                    "runs_finished_utc": [finished[0], finished[-1]] if finished else None},
        "command": "bash bench/peers/setup.sh && bash bench/peers/run_all.sh && python3 bench/peers/merge.py",
        "runs": {n: {k: r[k] for k in ("peer", "peer_version", "python", "settings", "command")} for n, r in runs.items()},
        "networks": merge(layers, runs),
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    if args.markdown:
        print(markdown(doc["networks"], list(runs)))
    for net, v in doc["networks"].items():
        for name, t in v["totals"].items():
            print(f"{net:10s} {name:14s} layers {t['layers_done']:3d} (missing {t['layers_missing']}) "
                  f"cycles {t['cycles']:14,.0f} energy {t['energy_pj'] / 1e6:10,.1f} uJ "
                  f"search {t['search_wall_s']:8.1f} s")


if __name__ == "__main__":
    main()
