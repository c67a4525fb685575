"""What `accelsim demo` runs: its workloads, arch pairs and committed trace sets (the CLI only prints)."""

from __future__ import annotations

from pathlib import Path

from accelsim.explore.compare import compare_reports
from accelsim.model.arch import builtin_archs, load_arch
from accelsim.model.simulate import Report, simulate
from accelsim.model.workload import Sparsity
from accelsim.model.workloads import bert_base
from accelsim.replay.calibrate import validate
from accelsim.replay.device import validate_gpu
from kernels.trace import read_traces

__all__ = ["DEMO_TRACES", "TRACES_DIR", "headline", "sparse_comparison", "trace_replays"]

#: Committed trace sets the demo replays, each on the arch config of its device.
DEMO_TRACES = (("cpu-amd-epyc-2vcpu", "cpu_numpy"), ("nvidia-h100-sxm-xla", "h100_sxm"),
               ("nvidia-h200-cupy", "h200_sxm"))

#: The repository's traces/ (absent from an installed wheel: the replay part is then skipped).
TRACES_DIR = Path(__file__).resolve().parents[2] / "traces"


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
