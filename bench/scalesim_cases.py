#!/usr/bin/env python3
"""Regenerate tests/data/scalesim_reference.json by running SCALE-Sim v3 (via
bench/peer_scalesim.py) over the topology files in tests/data/topologies/.

    python bench/scalesim_cases.py [--out tests/data/scalesim_reference.json] [--jobs 2]

Each "run" below is one SCALE-Sim invocation (one topology file on one array /
dataflow / sparsity setting); every layer of the file becomes one case.
Stdlib only; SCALE-Sim itself lives in bench/.venv-scalesim.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import peer_scalesim as peer  # noqa: E402

TOPO_DIR = REPO / "tests" / "data" / "topologies"
DEFAULT_OUT = REPO / "tests" / "data" / "scalesim_reference.json"

# (topology file, gemm?, sparsity-from-csv?, [(rows, cols, dataflow), ...])
RUNS = [
    ("gemm_mix.csv", True, False,
     [(r, c, df) for (r, c) in [(8, 8), (32, 32), (16, 64), (64, 16)] for df in ("ws", "os", "is")]),
    ("conv_mix.csv", False, False,
     [(r, c, df) for (r, c) in [(8, 8), (32, 32), (128, 128)] for df in ("ws", "os", "is")]),
    ("resnet50_sel.csv", False, False,
     [(32, 32, "ws"), (32, 32, "os"), (32, 32, "is"), (128, 128, "ws"), (128, 128, "os")]),
    ("sparse_gemm.csv", True, True,
     [(32, 32, "ws"), (8, 8, "ws"), (16, 64, "ws"), (8, 8, "os"), (8, 8, "is")]),
    ("sparse_conv.csv", False, True,
     [(32, 32, "ws"), (8, 16, "ws")]),
]


def layer_record(L: dict) -> dict:
    if L["type"] == "gemm":
        return {"type": "gemm", "name": L["name"], "M": L["M"], "N": L["N"], "K": L["K"]}
    return {"type": "conv", "name": L["name"], "ifmap_h": L["ifmap_h"], "ifmap_w": L["ifmap_w"],
            "filt_h": L["filt_h"], "filt_w": L["filt_w"], "channels": L["channels"],
            "num_filters": L["num_filters"], "stride": L["stride"]}


def do_run(topo: str, gemm: bool, sparse: bool, rows: int, cols: int, df: str):
    path = TOPO_DIR / topo
    layers_in = peer.parse_topology(path, gemm=gemm)
    res, wall = peer.run_scalesim(path, rows, cols, df, gemm=gemm,
                                  sparsity=True if sparse else None)
    cases = []
    for L, r in zip(layers_in, res):
        M, N, K = peer.gemm_dims(L)
        cases.append({
            "topology": f"tests/data/topologies/{topo}",
            "input_type": "gemm" if gemm else "conv",
            "dataflow": df, "rows": rows, "cols": cols,
            "layer": layer_record(L),
            "gemm": {"M": M, "N": N, "K": K},
            "sparsity": (L.get("sparsity") or "1:1") if sparse else None,
            "expected": {k: r[k] for k in ("total_cycles", "stall_cycles", "overall_util",
                                           "mapping_efficiency", "compute_util")},
            "info": {"total_cycles_incl_prefetch": r["total_cycles_incl_prefetch"],
                     "scalesim_layer_seconds": round(r["sim_seconds"], 4)},
        })
    return cases, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    peer.ensure_venv()
    jobs = [(t, g, s, r, c, df) for (t, g, s, combos) in RUNS for (r, c, df) in combos]
    results = {}
    t0 = time.time()
    with cf.ThreadPoolExecutor(max_workers=a.jobs) as ex:
        futs = {ex.submit(do_run, *j): j for j in jobs}
        for f in cf.as_completed(futs):
            j = futs[f]
            cases, wall = f.result()
            results[j] = (cases, wall)
            print(f"{j[0]:18s} {j[3]:3d}x{j[4]:<3d} {j[5]}  {len(cases)} layers  {wall:6.1f} s",
                  flush=True)
    all_cases = []
    runs_meta = []
    for j in jobs:
        cases, wall = results[j]
        all_cases.extend(cases)
        runs_meta.append({"topology": j[0], "rows": j[3], "cols": j[4], "dataflow": j[5],
                          "sparsity_support": j[2], "wall_seconds": round(wall, 2)})
    for i, c in enumerate(all_cases):
        c["id"] = i
    mem = dict(peer.DEFAULT_MEMORY)
    doc = {
        "scalesim_version": peer.SCALESIM_VERSION,
        "command": "python3.11 bench/scalesim_cases.py  "
                   "(each run = bench/peer_scalesim.py run_scalesim(topology, rows, cols, dataflow, "
                   "gemm=..., sparsity=True|None) -> SCALE-Sim 3.0.0 from PyPI, "
                   "pip install scalesim==3.0.0 'numpy<2' 'pandas<2.3', Python 3.11, "
                   "trace saving off)",
        "memory_config": mem,
        "notes": [
            "expected.total_cycles is SCALE-Sim's 'Total Cycles' column (compute pipeline incl. "
            "stalls); with the memory_config above stall_cycles is always 0.",
            "overall_util, mapping_efficiency, compute_util are percentages as SCALE-Sim prints "
            "them (overall_util uses the dense K, so it exceeds 100 for sparse layers).",
            "info.total_cycles_incl_prefetch is a memory-system number (depends on SRAM size "
            "and bandwidth mode); it is recorded for information only.",
            "sparsity null = SparsitySupport false; 'N:M' = SparsitySupport true, "
            "SparseRep ellpack_block, OptimizedMapping false, ratio from the CSV column.",
            "gemm.{M,N,K}: M = ofmap_h*ofmap_w, N = num_filters, K = filt_h*filt_w*channels, "
            "with ofmap = ceil((ifmap - filt + stride)/stride) as SCALE-Sim computes it.",
        ],
        "runs": runs_meta,
        "total_wall_seconds": round(time.time() - t0, 1),
        "cases": all_cases,
    }
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(all_cases)} cases to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
