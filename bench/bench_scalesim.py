"""accelsim vs SCALE-Sim v3 on the same layers in one run: cycle parity and wall-time ratio.

Run: .venv/bin/python bench/bench_scalesim.py [TOPOLOGY.csv] [--rows 32 --cols 32 --dataflow ws]
     [--gemm] [--sparsity] [--repeats 5]
SCALE-Sim 3.0.0 runs in its own venv (bench/peer_scalesim.py creates bench/.venv-scalesim) with
ample bandwidth (CALC mode, 8 MiB SRAMs), so its Total Cycles are compute cycles; accelsim gets
the matching arch (same array, ample bandwidth). SCALE-Sim's per-layer time is its own
simulation time (imports excluded); accelsim's is the median of ``--repeats`` runs of
``simulate`` on that layer alone, config load included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_scalesim import run_scalesim  # noqa: E402

from accelsim import load_arch, read_topology_csv, simulate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topology", nargs="?", default=str(ROOT / "tests/data/topologies/resnet50_sel.csv"))
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--dataflow", default="ws", choices=["ws", "os", "is"])
    ap.add_argument("--gemm", action="store_true")
    ap.add_argument("--sparsity", action="store_true", help="SparsitySupport on; N:M from the CSV column")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    peer, peer_wall = run_scalesim(args.topology, args.rows, args.cols, args.dataflow, gemm=args.gemm,
                                   sparsity=True if args.sparsity else None)
    net = read_topology_csv(args.topology, gemm=args.gemm)
    overrides = {"compute.rows": args.rows, "compute.cols": args.cols, "memory.dram.bandwidth": 1e9,
                 "memory.sram.bandwidth": 1e9}
    patterns = sorted({str(l.weight_sparsity.pattern) for l in net.layers if l.weight_sparsity.kind == "nm"})
    if args.sparsity and patterns:
        overrides["compute.sparsity.patterns"] = patterns
    arch = load_arch(f"systolic_{args.dataflow}_32x32", overrides)
    if not args.sparsity:
        net = net.with_sparsity(weight=type(net.layers[0].weight_sparsity)())
    print(f"topology {args.topology}, {args.rows}x{args.cols} {args.dataflow.upper()}, "
          f"SCALE-Sim subprocess wall {peer_wall:.1f} s\n")
    print("| layer | SCALE-Sim cycles | accelsim cycles − 1 | diff | SCALE-Sim s | accelsim ms | speedup |")
    print("|---|---|---|---|---|---|---|")
    tot_peer = tot_ours = 0.0
    exact = 0
    for layer, ref in zip(net.layers, peer):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = simulate(arch, layer).layers[0]
            times.append(time.perf_counter() - t0)
        ours = statistics.median(times)
        cyc = int(res.compute_cycles) - 1
        exact += cyc == ref["total_cycles"]
        tot_peer += ref["sim_seconds"]
        tot_ours += ours
        print(f"| {layer.name} | {ref['total_cycles']:,} | {cyc:,} | {cyc - ref['total_cycles']} | "
              f"{ref['sim_seconds']:.2f} | {ours * 1e3:.2f} | {ref['sim_seconds'] / ours:,.0f}× |")
    print(f"\n{exact}/{len(peer)} layers exact; total SCALE-Sim {tot_peer:.1f} s vs accelsim {tot_ours * 1e3:.1f} ms "
          f"→ {tot_peer / tot_ours:,.0f}× faster")


if __name__ == "__main__":
    main()
