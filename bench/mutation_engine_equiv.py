"""Evidence for engine mutants listed as equivalent: each against the unmutated engine on many random pipelines.

Usage::

    python bench/mutation_engine_equiv.py ID [ID ...] [--cases 2000] [--seed 0]

For each mutant id of ``accelsim.model.engine`` (as ``bench/mutation.py --list`` numbers them) the mutated
module is loaded beside the original, and both engines (``run_mapping`` and ``simulate_tiles``) run the
same random mappings: groups and repeated blocks of up to 10^6 repetitions (the steady-state jumps),
load and store times from zero to far above the compute time (loader-, compute- and writer-bound).
Prints, per mutant, how many cases differ from the original; 0 of thousands is the evidence docs/mutation.md
cites (the unit suite runs 150 such cases per run).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation import mutated_code, source_of  # noqa: E402

from accelsim import load_arch  # noqa: E402
from accelsim.model import engine  # noqa: E402
from accelsim.model.mapping import Mapping, TileBlock, TileGroup  # noqa: E402

ARCH = load_arch("systolic_ws_32x32", {"memory.dram.bandwidth": 1.0})


def _mapping(groups, load: float, store: float) -> Mapping:
    reads = {lvl.name: dict.fromkeys(("input", "weight", "output"), 0.0) for lvl in ARCH.memory}
    writes = {lvl.name: dict.fromkeys(("input", "weight", "output"), 0.0) for lvl in ARCH.memory}
    reads["dram"]["input"], writes["dram"]["output"] = load, store
    return Mapping("t", 1, 1, 1, "int8", {}, (), list(groups), 1.0, 1.0, 1.0, reads, writes, 1.0)


def _case(rng: random.Random, small: bool) -> Mapping:
    def group():
        return TileGroup(rng.choice([1, 2, 3, rng.randint(1, 40)] if small else [1, 7, 10**3, 10**6]),
                         float(rng.randint(0, 60)), float(rng.randint(1, 9)))

    groups = []
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.5:
            groups.append(group())
        else:
            groups.append(TileBlock(tuple(group() for _ in range(rng.randint(1, 3))),
                                    rng.randint(1, 25) if small else rng.choice([2, 3, 10**4, 10**5])))
    total = sum(g.tiles for g in groups)
    per_tile = rng.choice([0.0, 0.3, 1.0, 10.0, 50.0, 200.0])
    return _mapping(groups, float(round(per_tile * total * rng.random())), float(round(per_tile * total * rng.random())))


def _t(timing) -> tuple:
    """The timing as numbers (the mutant module has its own LayerTiming class; None stays None)."""
    return None if timing is None else (timing.cycles, timing.compute_cycles, timing.stall_cycles)


def _load(index: int):
    spec = importlib.util.spec_from_file_location(f"engine_mutant_{index}", source_of("accelsim.model.engine"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is made
    exec(mutated_code("accelsim.model.engine", index), mod.__dict__)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ids", type=int, nargs="+")
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for i in args.ids:
        mut = _load(i)
        rng = random.Random(args.seed)
        diff = 0
        for n in range(args.cases):
            small = n % 2 == 0  # small cases also go through the simpy definition
            mp = _case(rng, small)
            want = engine.run_mapping(ARCH, mp)
            if small:
                assert want == engine.simulate_tiles(ARCH, mp)
            try:
                got = (mut.run_mapping(ARCH, mp), *((mut.simulate_tiles(ARCH, mp),) if small else ()))
            except Exception:  # a mutant that raises differs
                got = (None,)
            diff += any(_t(g) != _t(want) for g in got)
        print(f"engine mutant {i}: {diff} of {args.cases} random pipelines differ from the original", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
