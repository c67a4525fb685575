"""TASDER evaluation table (docs/results/tasd.md): dense TC, STC-only, TASD-on-STC, TASD-on-TTC per network.

MiniLM uses its real weights (dense and magnitude-pruned) and real activations with the end-to-end
budget (mean cosine >= 0.99 to the unmodified model); ResNet-50 and BERT-base use synthetic weights
and activations (see accelsim.codesign.sources) under a per-layer relative-error cap.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from accelsim.codesign.tasder import search
from accelsim.model.workloads import minilm as minilm_network
from kernels.io import atomic_path

__all__ = ["main"]

SYNTH_CAP = 0.1  # per-layer cap: about what the MiniLM budget settles on for TTC (0.106 dense, 0.111 at 50%)


def _rows(label, net, kw, budget_kw):
    """The four configurations of one network; the proxy keys differ for real and synthetic weights."""
    dense = search("dense_tc", net, max_error=0.0, **kw)
    configs = [
        ("dense-TC", dense),
        ("STC-only", search("stc_2of4", net, max_error=0.0, **kw)),
        ("TASD-on-STC", search("stc_2of4", net, **budget_kw, **kw)),
        ("TASD-on-TTC", search("tasd_ttc", net, **budget_kw, **kw)),
    ]
    base_edp = dense.total["edp"]
    out = []
    for name, r in configs:
        t = r.total
        out.append({"network": label, "config": name, "arch": r.arch, "cycles": t["cycles"],
                    "energy_uj": t["energy_pj"] / 1e6, "edp": t["edp"], "edp_change": t["edp"] / base_edp - 1.0,
                    "compute_fraction": t["compute_fraction"], "cap": r.cap if r.cap != float("inf") else None,
                    **r.proxy,
                    "choices": sorted({l.choice.label for l in r.layers if l.choice.label != "dense"})})
    return out


def _proxy(r) -> str:
    if "cos_base" in r:
        return f"cos→dense {r['cos_dense']:.4f}, cos→base {r['cos_base']:.4f}"
    return f"mean rel. err {r['mean_rel_error']:.4f} (max {r['max_rel_error']:.3f})"


def markdown(rows) -> str:
    head = ("| network | config | cycles | energy (µJ) | EDP (pJ·cyc) | EDP vs dense-TC | MACs executed | "
            "accuracy proxy | series used |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['config']} | {r['cycles']:,.0f} | {r['energy_uj']:,.1f} | {r['edp']:.3e} | "
            f"{r['edp_change']:+.1%} | {r['compute_fraction']:.3f} | {_proxy(r)} | {', '.join(r['choices']) or '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the rows to this JSON file (atomically)")
    ap.add_argument("--quick", action="store_true", help="MiniLM dense and 90%% only, no synthetic networks")
    ap.add_argument("--refine", type=int, default=0, help="TASDER greedy refinement passes for MiniLM")
    ap.add_argument("--batch-minilm", type=int, default=64, help="MiniLM sequences per batch (the 64 shipped "
                    "sentences at once); 1 gives the latency-bound case")
    ap.add_argument("--batch", type=int, default=32, help="batch of the synthetic ResNet-50 / BERT-base runs")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = []
    try:
        from accelsim.codesign.magnitude import prune_weights
        from accelsim.codesign.minilm import load_minilm

        model = load_minilm()
    except ImportError as exc:
        print(f"skipping MiniLM: {exc}")
        model = None
    if model is not None:
        net = minilm_network(128, batch=args.batch_minilm)
        for p in ((0.0, 0.9) if args.quick else (0.0, 0.5, 0.7, 0.9)):
            w = prune_weights(model.linear_weights(), p) if p else None
            label = f"MiniLM (real weights, {args.batch_minilm}×128 tokens)" + (
                f", pruned {round(p * 100)}%" if p else ", dense")
            rows += _rows(label, net, {"model": model, "weights": w}, {"budget": 0.99, "refine": args.refine})
    if not args.quick:
        from accelsim.model.workloads import bert_base, resnet50

        for p in (0.0, 0.7):
            sfx = f", pruned {round(p * 100)}%" if p else ", dense"
            rows += _rows(f"ResNet-50 batch {args.batch} (synthetic" + sfx + ")", resnet50(batch=args.batch),
                          {"prune": p}, {"max_error": SYNTH_CAP})
            rows += _rows(f"BERT-base {args.batch}×128 (synthetic" + sfx + ")", bert_base(128, batch=args.batch),
                          {"prune": p}, {"max_error": SYNTH_CAP})
    took = time.perf_counter() - t0
    print(f"TASDER table, {took:.0f} s on {platform.machine()} ({platform.processor() or 'cpu'}), "
          f"python {platform.python_version()}\n")
    print(markdown(rows))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({"seconds": took, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
