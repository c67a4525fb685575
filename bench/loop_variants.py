"""Pricings judged offline and not kept (or kept later), so their figures in BENCHMARKS.md can be made again.

Each is the replay's pricing as it is now with one thing changed; ``fetch_only`` is the replay's own before the
thirty-second slice.

``bench/bench_loop_refit.py SRC DST --variant NAME`` projects the stored loops of ``bench/bench_loop.sh`` with one
of them. A variant changes either how a layer of a run is priced (``predictor(arch, calibration)``, which stands in
for :func:`accelsim.replay.network.simulator_predictor` while the runs are validated: that function with other
parameters, fetch scales or added seconds) or the arch a calibration is fitted on again (``arch(arch, doc)``, the
``--arch-set`` settings that arch takes). Each says where it was judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import accelsim.replay.network as net
from accelsim.model.arch import ArchConfig
from accelsim.replay.box_state import gemm_peak
from accelsim.replay.device_calibration import net_peaks
from accelsim.replay.numpy_run import GATHER
from accelsim.replay.project import project
from accelsim.replay.records import Streaming

_replay = net.simulator_predictor  # bound now: bench_loop_refit.validated puts a variant in its place while it runs

__all__ = ["VARIANTS", "Variant"]


@dataclass(frozen=True)
class Variant:
    """One of ``predictor`` (a stand-in for the replay's) and ``arch`` (the settings a calibration's arch takes)."""

    predictor: Callable | None = None
    arch: Callable[[ArchConfig, dict], list[str]] | None = None


def _own_params(calibration, item, cold):
    """A layer's own group's parameters whether it fetches or not: the pricing before the thirty-second slice."""
    return net.params_for(calibration, item)


fetch_only = partial(_replay, params_of=_own_params)
fetch_only.__doc__ = """A dense GEMM layer that fetches priced at the ``gemm`` group's parameters, only its fetch at the
cold GEMMs' scale: the replay's pricing before the thirty-second slice (1T ``bert_base`` dense −13.9..−14.7 % over four
loops; with the cold GEMMs' parameters whole, −7.1..−7.8 %)."""


def gather_at_cold(arch, calibration=None):
    """Every layer's fetch at the cold GEMMs' scale, a gather-path layer's too: the pricing before f2b7f70
    (BENCHMARKS.md "Thirtieth slice")."""
    def scale(calibration, item):
        if calibration is None or item.family != GATHER:
            return net.fetch_scale(calibration, item)
        own = net.cold_fit(calibration, item)
        return (own.memory_scale if own is not None else None) or 1.0
    return _replay(arch, calibration, scale_of=scale)


def cold_pack(arch, calibration=None):
    """A layer that fetches with its BLAS pack passes at the cold GEMMs' memory scale instead of its own ("Thirtieth
    slice": 14 of 18 loop medians within against 16 of 18; "Thirty-second slice", beside a cold dense layer priced as
    its cold case: two-thread ``bert_base`` gains +8.6..+11.4 % in three loops against +6.8..+9.5 %)."""
    def extra(item, params):
        packs = [w for w in (item.workload if isinstance(item.workload, list) else [])
                 if isinstance(w, Streaming) and w.name.endswith(".pack")]
        cold = net.cold_fit(calibration, item) if calibration is not None else None
        if not packs or cold is None or not cold.memory_scale or not params.memory_scale:
            return 0.0
        return (cold.memory_scale - params.memory_scale) * project(arch, packs, item.working_set).memory_s
    return _replay(arch, calibration, extra=extra)


def net_peak(arch: ArchConfig, doc: dict) -> list[str]:
    """Each dtype's MAC peak net of the peak size's own pack pass
    (:func:`~accelsim.replay.device_calibration.net_peaks`), as ``accelsim calibrate`` writes it since the
    thirty-second slice: what a calibration stored before then, with the gross peak, needs to be priced as one made
    now ("Thirty-first slice", on the fetch-only pricing: the largest cases within -0.2..+2.4 % and held-out MAPE 1-2
    points lower, but one-thread ``bert_base`` dense -14.3 -> -16.8 %; "Thirty-second slice": with a fetching dense
    layer priced as its cold case, 29 of 30 loop medians within against 27)."""
    by_size = doc["measured"]["gemm_gflops_by_size"]
    gflops = doc["measured"]["gemm_gflops"]
    sizes = {d: int(min(by_size[d], key=lambda n: abs(by_size[d][n] - gemm_peak(gflops[d])))) for d in gflops}
    net = net_peaks(arch, {"gemm_n": sizes, "gemm_gflops": gflops})
    return [f"compute.macs_per_cycle.{short}={arch.compute.macs_per_cycle[short] * net[d][0] / gemm_peak(gflops[d]):.6g}"
            for d, short in (("float32", "fp32"), ("float64", "fp64"))]


VARIANTS = {
    "fetch_only": Variant(predictor=fetch_only),
    "gather_at_cold": Variant(predictor=gather_at_cold),
    "cold_pack": Variant(predictor=cold_pack),
    "net_peak": Variant(arch=net_peak),
}
