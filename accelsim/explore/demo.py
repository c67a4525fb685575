"""What `accelsim demo` runs: its workloads, arch pairs and committed trace sets (the CLI only prints)."""

from __future__ import annotations

import os
from pathlib import Path

from accelsim.explore.compare import compare_reports
from accelsim.model.arch import builtin_archs, load_arch
from accelsim.model.simulate import Report, simulate
from accelsim.model.workload import Sparsity
from accelsim.model.workloads import bert_base
from accelsim.replay.calibrate import validate
from accelsim.replay.device import validate_gpu
from kernels.trace import read_traces

__all__ = ["DEMO_TRACES", "EXAMPLES_DIR", "TRACES_DIR", "headline", "next_commands", "sparse_comparison",
           "trace_replays"]

#: Committed trace sets the demo replays, each on the arch config of its device.
DEMO_TRACES = (("cpu-amd-epyc-2vcpu", "cpu_numpy"), ("nvidia-h100-sxm-xla", "h100_sxm"),
               ("nvidia-h200-cupy", "h200_sxm"))

#: The repository's traces/ (absent from an installed wheel: the replay part is then skipped).
TRACES_DIR = Path(__file__).resolve().parents[2] / "traces"

#: The repository's examples/ (the README's inputs; absent from an installed wheel).
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def headline() -> tuple[str, str]:
    """The first run: (arch, workload)."""
    return "systolic_ws_32x32", "resnet50"


def sparse_comparison() -> dict | None:
    """BERT-base (seq 128) with 2:4-pruned weights on the dense vs the 2:4 sparse tensor core, as
    :func:`compare_reports` gives it; ``None`` when those configs are not built in."""
    archs = ("dense_tc", "stc_2of4")
    if not set(archs) <= set(builtin_archs()):
        return None
    net = bert_base(128).with_sparsity(weight=Sparsity.parse("2:4"))
    reports: list[Report] = [simulate(load_arch(a), net) for a in archs]
    return compare_reports(reports)


def trace_replays(traces_dir: Path = TRACES_DIR):
    """Yield ``(trace set name, validation report)`` for each committed trace set present, replayed on
    its device's arch with half the configurations held out (seed 0): on the GPU unit model with one
    device calibration where the arch has a ``gpu:`` section, on the simulator otherwise."""
    for name, arch in DEMO_TRACES:
        traces = traces_dir / name
        if traces.is_dir():
            cfg = load_arch(arch)
            check = validate_gpu if cfg.gpu is not None else validate
            yield name, check(read_traces(traces), cfg, 0.5, 0)


def next_commands() -> list[tuple[str, str]]:
    """The three ``(command, what it shows)`` a user would run after the demo: their own arch and
    layers, sparse hardware compared, a TASD search. Paths are relative to the current directory
    (outputs under ``out/``); without examples/ (an installed wheel) the first uses a built-in."""
    if (EXAMPLES_DIR / "my_arch.yaml").is_file():
        arch, workload = (os.path.relpath(EXAMPLES_DIR / f) for f in ("my_arch.yaml", "topology.csv"))
        own = (f"accelsim simulate --arch {arch} --workload {workload} --set compute.rows=32",
               f"your own arch and layers: copy {arch} and {workload}, edit, simulate")
    else:
        own = ("accelsim simulate --arch systolic_os_32x32 --workload resnet50 --set compute.rows=64",
               "another dataflow and array size: any field of a config can be overridden with --set")
    return [own,
            ("accelsim compare --arch dense_tc --arch stc_2of4 --arch tasd_ttc --workload bert_base "
             "--weight-sparsity 1:4 --plot out/edp.png", "what 1:4-sparse weights gain on each sparse tensor core"),
            ("accelsim tasd search --arch tasd_ttc --workload bert_base --param batch=32 --prune 0.5 --max-error 0.1",
             "per layer, the cheapest TASD series within 0.1 relative error of the pruned weights")]
