"""Pricings judged offline and not kept (or kept later), so their figures in BENCHMARKS.md can be made again.

``bench/bench_loop_refit.py SRC DST --variant NAME`` projects the stored loops of ``bench/bench_loop.sh`` with one
of them. A variant changes either how a layer of a run is priced (``predictor(arch, calibration)``, which stands in
for :func:`accelsim.replay.network.simulator_predictor` while the runs are validated) or the arch a calibration is
fitted on again (``arch(arch, doc)``, the ``--arch-set`` settings that arch takes). Each says where it was judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import accelsim.replay.network as net
from accelsim.model.arch import ArchConfig
from accelsim.model.workload import Gemm
from accelsim.replay.numpy_run import GATHER, PASS_RESIDENT, pack_pass
from accelsim.replay.project import COLD, project
from accelsim.replay.records import Streaming

__all__ = ["VARIANTS", "Variant"]


@dataclass(frozen=True)
class Variant:
    """One of ``predictor`` (a stand-in for the replay's) and ``arch`` (the settings a calibration's arch takes)."""

    predictor: Callable | None = None
    arch: Callable[[ArchConfig, dict], list[str]] | None = None


def _cold_params(calibration: dict, item):
    return net._fitted(calibration, COLD, item.row.get("dtype", ""))  # the cold GEMMs' group, else family


def _priced(arch: ArchConfig, calibration: dict | None, params_of, fetch_scale_of, extra=lambda item, params: 0.0):
    """A predictor as :func:`~accelsim.replay.network.simulator_predictor` builds it, with the layer's parameters,
    its fetch's scale and an added time each given as functions of the item."""

    def predict(item, footprint: int = 0):
        p = project(arch, item.workload, item.working_set)
        fetch = net.cold_fetch(arch, item, footprint)
        params = params_of(item, fetch is not None)
        t = params.predict(p, item.launches, item.threaded_calls)
        e = p.dynamic_j + p.leakage_w * t
        if fetch is not None:
            s = fetch_scale_of(item) * fetch.seconds + extra(item, params)
            t, e = t + s, e + fetch.dynamic_j + fetch.leakage_w * s
        return t, e

    return predict


def gather_at_cold(arch, calibration=None):
    """Every layer's fetch at the cold GEMMs' scale, a gather-path layer's too: the pricing before f2b7f70
    (BENCHMARKS.md "Thirtieth slice")."""
    def scale(item):
        if calibration is None or item.family != GATHER:
            return net.fetch_scale(calibration, item)
        own = _cold_params(calibration, item)
        return (own.memory_scale if own is not None else None) or 1.0
    return _priced(arch, calibration, lambda item, cold: net.params_for(calibration, item), scale)


def cold_whole(arch, calibration=None):
    """A dense GEMM layer that fetches priced whole at the cold GEMMs' parameters, not only its fetch ("Thirtieth
    slice": 1T ``bert_base`` dense −13 → −5 %, but gains +1.5 → +9.7 % and 1T ``seq_len=8`` MAPE 10.6 → 22.0)."""
    def params_of(item, cold):
        if cold and calibration is not None and item.family == "gemm":
            return _cold_params(calibration, item) or net.params_for(calibration, item)
        return net.params_for(calibration, item)
    return _priced(arch, calibration, params_of, lambda item: net.fetch_scale(calibration, item))


def cold_pack(arch, calibration=None):
    """A layer that fetches with its BLAS pack passes at the cold GEMMs' memory scale instead of its own ("Thirtieth
    slice": 14 of 18 loop medians within against 16 of 18)."""
    def extra(item, params):
        packs = [w for w in (item.workload if isinstance(item.workload, list) else [])
                 if isinstance(w, Streaming) and w.name.endswith(".pack")]
        cold = _cold_params(calibration, item) if calibration is not None else None
        if not packs or cold is None or not cold.memory_scale or not params.memory_scale:
            return 0.0
        return (cold.memory_scale - params.memory_scale) * project(arch, packs, item.working_set).memory_s
    return _priced(arch, calibration, lambda item, cold: net.params_for(calibration, item),
                   lambda item: net.fetch_scale(calibration, item), extra)


def net_peak(arch: ArchConfig, doc: dict) -> list[str]:
    """Each dtype's MAC peak as the multiply alone: the peak size's measured time less its own pack pass
    (:func:`~accelsim.replay.numpy_run.pack_pass` on this arch), since every GEMM is priced with that pass added
    ("Thirty-first slice": the largest cases within -0.2..+2.4 % and held-out MAPE 1-2 points lower, but the runs priced
    2-9 % lower, one-thread ``bert_base`` dense -14.3 -> -16.8 % and -14.7 -> -17.4 %)."""
    settings = []
    for dtype, short, item in (("float32", "fp32", 4), ("float64", "fp64", 8)):
        by_size = doc["measured"]["gemm_gflops_by_size"][dtype]
        rate = doc["measured"]["gemm_gflops"][dtype]["median"]
        n = int(min(by_size, key=lambda size: abs(by_size[size] - rate)))
        t = 2 * n ** 3 / (rate * 1e9)
        pack = project(arch, pack_pass(Gemm("peak", n, n, n, short), item), PASS_RESIDENT).memory_s
        settings.append(f"compute.macs_per_cycle.{short}={arch.compute.macs_per_cycle[short] * t / (t - pack):.6g}")
    return settings


VARIANTS = {
    "gather_at_cold": Variant(predictor=gather_at_cold),
    "cold_whole": Variant(predictor=cold_whole),
    "cold_pack": Variant(predictor=cold_pack),
    "net_peak": Variant(arch=net_peak),
}
