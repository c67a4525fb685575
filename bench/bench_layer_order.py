"""Does a layer take longer after other layers' kernels than after its dense twins? (issue #26)

A network run times each layer once a pass, after the layers before it; the replay prices each layer on its own. At
two BLAS threads on the 2-vCPU Xeon VM, ``bert_base``'s attention products (dense in both variants, their own arrays)
took 10-25 % longer per layer in the plan's passes than in the dense ones. This bench builds the run's steps
(:func:`accelsim.codesign.runplan.prepare_run`) and times, in alternating rounds, the dense and the plan passes and
dense passes changed in one way each: ``--swap .q,.k`` takes those layers (name suffixes) from the plan;
``--insert KIND:WHAT:SIZE`` runs untimed work before every layer of KIND: ``read:MB`` (a read of another array),
``gemm:N`` (an N³ product of other arrays) or ``busy:US`` (a Python loop touching no array). Per pass and layer kind
it prints the median seconds summed over the network's blocks.
Run: ``python bench/bench_layer_order.py [--plan bench/plans/bert_base_nm.json] [--swap .q,.k,.v --swap .v]
[--insert .v:read:64 --insert .v:busy:3000] [--rounds 9] [--layers START:STOP] [--json F]``
(``OPENBLAS_NUM_THREADS`` as the run's).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__all__ = ["inserted", "main", "mixed", "suffix", "time_passes"]

HERE = Path(__file__).resolve().parent


def suffix(name: str) -> str:
    """A layer's kind within its block: ``l3.ffn1`` -> ``.ffn1``."""
    return name[name.index("."):] if "." in name else name


def mixed(dense: list, plan: list, swap: tuple[str, ...]) -> list:
    """The dense pass with the plan's step wherever the layer's kind is in ``swap``."""
    if [s.name for s in dense] != [s.name for s in plan]:
        raise ValueError("the dense and plan passes run different layers")
    return [p if suffix(d.name) in swap else d for d, p in zip(dense, plan)]


def inserted(steps: list, kind: str, work) -> list:
    """``steps`` with a step running ``work`` before every layer of ``kind``, named ``<block>.inserted`` (its time is
    reported apart)."""
    out = []
    for s in steps:
        if suffix(s.name) == kind:
            out.append(SimpleNamespace(name=s.name.split(".")[0] + ".inserted", fn=work))
        out.append(s)
    return out


def _work(what: str, size: int):
    """The inserted work: a read of ``size`` MB, an ``size``³ float32 product of arrays of its own, or ``size`` µs of
    a Python loop that touches no array (the core busy, its caches left alone)."""
    if what == "busy":
        def spin():
            end = time.perf_counter() + size * 1e-6
            while time.perf_counter() < end:
                pass
        return spin
    if what == "read":
        buf = np.ones(size * 2**20 // 4, np.float32)
        return buf.sum
    if what == "gemm":
        a = np.ones((size, size), np.float32)
        return lambda: a @ a
    raise ValueError(f"--insert: unknown work {what!r}; use read, gemm or busy")


def time_passes(passes: dict[str, list], rounds: int, clock=time.perf_counter) -> dict[str, dict[str, float]]:
    """``{pass kind: {layer kind: median over rounds of its seconds summed over blocks}}``, the kinds in
    alternating rounds so the box's drift falls on all alike."""
    sums = {k: [] for k in passes}
    for _ in range(rounds):
        for kind, steps in passes.items():
            per: dict[str, float] = {}
            for s in steps:
                t0 = clock()
                s.fn()
                per[suffix(s.name)] = per.get(suffix(s.name), 0.0) + clock() - t0
            sums[kind].append(per)
    return {k: {layer: statistics.median(r[layer] for r in rs) for layer in rs[0]} for k, rs in sums.items()}


def main(argv=None) -> dict:
    from accelsim.codesign.plan import parse_plan
    from accelsim.codesign.runplan import prepare_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, default=HERE / "plans" / "bert_base_nm.json")
    parser.add_argument("--swap", action="append", help="layer suffixes taken from the plan, comma-separated")
    parser.add_argument("--insert", action="append", default=[], help="KIND:read:MB, KIND:gemm:N or KIND:busy:US")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--layers", help="START:STOP slice of the network's layers")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    prep = prepare_run(parse_plan(json.loads(args.plan.read_text()), str(args.plan)), backend="numpy",
                       layers=args.layers)
    dense, plan = prep.steps.values()
    passes = {"dense": dense, "plan": plan}
    for spec in args.swap or [".q,.k,.v", ".v"]:
        swap = tuple(s.strip() for s in spec.split(","))
        passes[f"dense, {'/'.join(swap)} the plan's"] = mixed(dense, plan, swap)
    for spec in args.insert:
        kind, what, size = spec.split(":")
        passes[f"dense, {what} {size} before {kind}"] = inserted(dense, kind, _work(what, int(size)))
    got = time_passes(passes, args.rounds)
    kinds = list(dict.fromkeys(k for per in got.values() for k in per))
    print(f"{prep.meta.get('blas_threads')} BLAS threads, median of {args.rounds} rounds, ms summed over blocks\n")
    print("| pass | " + " | ".join(kinds) + " |\n|---|" + "---|" * len(kinds))
    for k, per in got.items():
        print(f"| {k} | " + " | ".join(f"{1e3 * per[x]:.2f}" if x in per else "" for x in kinds) + " |")
    out = {"plan": str(args.plan), "blas_threads": prep.meta.get("blas_threads"), "rounds": args.rounds,
           "seconds": got}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
