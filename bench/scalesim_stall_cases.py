#!/usr/bin/env python3
"""Regenerate tests/data/scalesim_stalls_reference.json: SCALE-Sim v3 in USER bandwidth mode
(small SRAMs, narrow DRAM interface, so stalls are large) on layers drawn at random.

    SCALESIM_VENV=/path/to/venv python bench/scalesim_stall_cases.py [--jobs 2]

Three sets, drawn from different seeds: ``build`` (used while developing the memory model in
accelsim/model/staging.py), ``heldout`` and ``sparse`` (N:M weights; both only evaluated by
bench/bench_scalesim_stalls.py and the test, never used to shape the model). Each case is one layer on one (array, dataflow, SRAM sizes,
bandwidth) configuration; cases sharing a configuration run in one SCALE-Sim invocation.
Sizes are kept small (SCALE-Sim's USER mode costs ~0.1-1 ms per simulated cycle). Stdlib only.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import peer_scalesim as peer  # noqa: E402

DEFAULT_OUT = REPO / "tests" / "data" / "scalesim_stalls_reference.json"
SEEDS = {"build": 31, "heldout": 3131, "sparse": 313131}
COUNTS = {"build": 24, "heldout": 48, "sparse": 18}
#: Layer-wise N:M weight sparsity of the ``sparse`` set (SCALE-Sim's SparsitySupport, ellpack_block).
PATTERNS = ["1:2", "2:4", "1:4", "3:4", "2:8"]
ARRAYS = [(8, 8), (16, 16), (8, 16), (16, 8), (4, 8)]
SRAM_KB = [1, 2, 4]
BANDWIDTHS = [2, 4, 8, 10, 16, 32]
MAX_LINES = 9000   # compute cycles per case, so SCALE-Sim runs in seconds


def _lines(df: str, rows: int, cols: int, m: int, n: int, k: int) -> int:
    sr, sc, t = {"ws": (k, n, m), "os": (m, n, k), "is": (k, m, n)}[df]
    fold = (rows + cols + t - 2) if df == "os" else (2 * rows + cols + t - 2)
    return -(-sr // rows) * -(-sc // cols) * fold


def draw(which: str) -> list[dict]:
    """``COUNTS[which]`` cases from ``SEEDS[which]``: dataflows in turn, everything else at random."""
    rng = random.Random(SEEDS[which])
    cases = []
    while len(cases) < COUNTS[which]:
        df = ("ws", "os", "is")[len(cases) % 3]
        rows, cols = rng.choice(ARRAYS)
        kb = [rng.choice(SRAM_KB) for _ in range(3)]
        bw = rng.choice(BANDWIDTHS)
        if rng.random() < 0.6:
            layer = {"type": "gemm", "name": f"g{len(cases)}", "M": rng.randint(8, 160),
                     "N": rng.randint(4, 96), "K": rng.randint(4, 160)}
        else:
            fh = rng.choice([1, 3, 3, 5])
            s = rng.choice([1, 1, 2])
            h = rng.randint(fh + 2, 14)
            layer = {"type": "conv", "name": f"c{len(cases)}", "ifmap_h": h, "ifmap_w": rng.randint(fh + 2, 14),
                     "filt_h": fh, "filt_w": fh, "channels": rng.randint(1, 16),
                     "num_filters": rng.randint(4, 48), "stride": s}
        if which == "sparse":
            layer["sparsity"] = rng.choice(PATTERNS)
        m, n, k = peer.gemm_dims(layer)
        if _lines(df, rows, cols, m, n, k) > MAX_LINES:
            continue
        cases.append({"set": which, "dataflow": df, "rows": rows, "cols": cols,
                      "sram_kb": {"ifmap": kb[0], "filter": kb[1], "ofmap": kb[2]}, "bandwidth": bw,
                      "layer": layer, "gemm": {"M": m, "N": n, "K": k}})
    return cases


def run_group(key, cases):
    df, rows, cols, kb, bw, typ, sparse = key
    mem = {"ifmap_kb": kb[0], "filter_kb": kb[1], "ofmap_kb": kb[2], "bandwidth": bw,
           "bandwidth_mode": "USER"}
    with tempfile.TemporaryDirectory() as tmp:
        topo = Path(tmp) / "topo.csv"
        peer.write_topology([c["layer"] for c in cases], topo, typ == "gemm", with_sparsity=sparse)
        res, wall = peer.run_scalesim(topo, rows, cols, df, gemm=typ == "gemm", memory=mem,
                                      sparsity=True if sparse else None)
    for c, r in zip(cases, res):
        c["expected"] = {"total_cycles": r["total_cycles"], "stall_cycles": r["stall_cycles"]}
        c["info"] = {"scalesim_layer_seconds": round(r["sim_seconds"], 3)}
    return wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sets", default="build,heldout")
    a = ap.parse_args(argv)
    peer.ensure_venv()
    cases = [c for s in a.sets.split(",") for c in draw(s)]
    groups: dict = {}
    for c in cases:
        kb = c["sram_kb"]
        key = (c["dataflow"], c["rows"], c["cols"], (kb["ifmap"], kb["filter"], kb["ofmap"]), c["bandwidth"],
               c["layer"]["type"], "sparsity" in c["layer"])
        groups.setdefault(key, []).append(c)
    t0 = time.time()
    with cf.ThreadPoolExecutor(max_workers=a.jobs) as ex:
        futs = {ex.submit(run_group, k, v): k for k, v in groups.items()}
        for f in cf.as_completed(futs):
            print(f"{futs[f]}  {f.result():6.1f} s", flush=True)
    for i, c in enumerate(cases):
        c["id"] = i
    doc = {
        "scalesim_version": peer.SCALESIM_VERSION,
        "command": "python3.11 bench/scalesim_stall_cases.py (bench/peer_scalesim.py run_scalesim(..., "
                   "memory={ifmap_kb, filter_kb, ofmap_kb, bandwidth, bandwidth_mode: USER}) -> SCALE-Sim "
                   "3.0.0 from PyPI with numpy<2, pandas<2.3, trace saving off)",
        "notes": [
            "expected.total_cycles is SCALE-Sim's 'Total Cycles' (index of the last cycle, stalls included).",
            "bandwidth (words/cycle) is SCALE-Sim's Bandwidth and both [layout] *SRAMBankBandwidth: each of "
            "the ifmap, filter and ofmap DRAM interfaces gets it; 1-byte words; sram_kb per operand.",
            "set 'build' shaped the model; sets 'heldout' and 'sparse' were only evaluated.",
            "layer.sparsity (set 'sparse'): layer-wise N:M weights, SparsitySupport true, SparseRep "
            "ellpack_block, OptimizedMapping false; gemm.K is the dense K.",
        ],
        "total_wall_seconds": round(time.time() - t0, 1),
        "cases": cases,
    }
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
