"""TASD accuracy study on all-MiniLM-L6-v2 (needs accelsim[models]): markdown table of fidelity vs density."""

from __future__ import annotations

import argparse
import json
import platform
import time

from accelsim.codesign.minilm import load_minilm
from accelsim.codesign.accuracy import default_configs, evaluate, load_sentences, markdown_table

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--quick", action="store_true", help="16 sentences, fewer series (smoke run)")
    args = ap.parse_args(argv)
    sentences = load_sentences()
    configs = default_configs()
    if args.quick:
        sentences = sentences[:16]
        configs = default_configs(weight_series=("2:4", "2:4+1:4"), act_series=("2:4",), prune=(0.5,))
    model = load_minilm()
    t0 = time.perf_counter()
    rows = evaluate(model, sentences, configs)
    took = time.perf_counter() - t0
    print(f"all-MiniLM-L6-v2, {len(sentences)} sentences, {len(configs)} configurations, "
          f"{took:.1f} s on {platform.machine()} ({platform.processor() or 'cpu'})\n")
    print(markdown_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sentences": len(sentences), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
