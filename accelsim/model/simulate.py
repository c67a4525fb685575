"""simulate(): arch + workload → per-layer and network cycles, traffic, energy and EDP."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from accelsim.model.arch import ArchConfig, load_arch
from accelsim.model.energy import mapping_actions, price
from accelsim.model.engine import LayerTiming, run_mapping
from accelsim.errors import WorkloadError
from accelsim.model.lowering import lower_layer
from accelsim.model.mapper import FIXED, Mapper
from accelsim.model.workload import Network, layer_key
from accelsim.model.workloads import as_network

__all__ = ["LayerResult", "Report", "simulate"]

_SUMMED = ("cycles", "compute_cycles", "stall_cycles", "macs", "effectual_macs", "energy_pj")


@dataclass
class LayerResult:
    """One layer's outcome; ``actions`` are the counts that ``energy_breakdown`` prices."""

    name: str
    cycles: float
    compute_cycles: float
    stall_cycles: float
    utilization: float
    mapping_efficiency: float
    macs: float
    effectual_macs: float
    energy_pj: float
    edp: float
    traffic_bytes: dict[str, float]
    energy_breakdown: dict[str, float] = field(default_factory=dict)
    actions: dict[str, float] = field(default_factory=dict)
    detail: dict = field(default_factory=dict)

    def to_dict(self, full: bool = False) -> dict:
        d = {k: getattr(self, k) for k in ("name", *_SUMMED[:3], "utilization", "mapping_efficiency",
                                           "macs", "effectual_macs", "energy_pj", "edp", "traffic_bytes",
                                           "energy_breakdown")}
        if "mapping" in self.detail:
            d["mapping"] = self.detail["mapping"]
        if full:
            d.update(actions=self.actions, detail=self.detail)
        return d


@dataclass
class Report:
    """Per-layer results plus network totals; ``total["edp"]`` is total energy × total cycles.
    ``not_modelled`` counts the workload's ops that are not layers (an ONNX model's Relu, Add, …) by type."""

    arch: str
    workload: str
    clock_ghz: float
    layers: list[LayerResult]
    total: dict
    not_modelled: dict[str, int] = field(default_factory=dict)

    def to_dict(self, full: bool = False) -> dict:
        return {"arch": self.arch, "workload": self.workload, "layers": [l.to_dict(full) for l in self.layers],
                "total": self.total, **({"not_modelled": self.not_modelled} if self.not_modelled else {})}

    @property
    def seconds(self) -> float:
        return self.total["cycles"] / (self.clock_ghz * 1e9)


def _totals(layers: list[LayerResult], peak: float) -> dict:
    tot = {k: float(sum(getattr(l, k) for l in layers)) for k in _SUMMED}
    traffic: dict[str, float] = {}
    breakdown: dict[str, float] = {}
    for l in layers:
        for lvl, b in l.traffic_bytes.items():
            traffic[lvl] = traffic.get(lvl, 0.0) + b
        for comp, e in l.energy_breakdown.items():
            breakdown[comp] = breakdown.get(comp, 0.0) + e
    tot["utilization"] = tot["effectual_macs"] / (tot["cycles"] * peak) if tot["cycles"] else 0.0
    tot["mapping_efficiency"] = (
        sum(l.mapping_efficiency * l.compute_cycles for l in layers) / tot["compute_cycles"] if tot["compute_cycles"] else 0.0
    )
    tot["edp"] = tot["energy_pj"] * tot["cycles"]
    tot["traffic_bytes"] = traffic
    tot["energy_breakdown"] = breakdown
    return tot


def _run_layer(arch: ArchConfig, layer, mapper: Mapper = FIXED) -> LayerResult:
    lowered = lower_layer(arch, layer, mapper)
    cycles = compute = stall = 0.0
    actions: dict[str, float] = {}
    traffic: dict[str, float] = {lvl.name: 0.0 for lvl in arch.memory}
    macs = eff = 0.0
    weighted_eff = 0.0
    for mapping in lowered.mappings:
        t: LayerTiming = run_mapping(arch, mapping)
        cycles += t.cycles
        compute += t.compute_cycles
        stall += t.stall_cycles
        macs += mapping.macs
        eff += mapping.effectual_macs
        weighted_eff += mapping.mapping_efficiency * t.compute_cycles
        for lvl in arch.memory:
            traffic[lvl.name] += sum(mapping.level_bytes(lvl.name))
        for a, v in mapping_actions(arch, mapping).items():
            actions[a] = actions.get(a, 0.0) + v
    actions["leakage.cycle"] = cycles
    breakdown = price(arch, actions)
    energy = float(sum(breakdown.values()))
    peak = arch.compute.peak_macs_per_cycle
    detail = dict(lowered.detail)
    nests = [mp.nest for mp in lowered.mappings if mp.nest is not None]
    if nests:
        detail["mapping"] = {"mapper": mapper.kind, "objective": mapper.objective,
                             **(nests[0] if len(nests) == 1 else {"passes": nests})}
    return LayerResult(
        name=layer.name, cycles=cycles, compute_cycles=compute, stall_cycles=stall,
        utilization=eff / (cycles * peak) if cycles else 0.0,
        mapping_efficiency=weighted_eff / compute if compute else 0.0,
        macs=macs, effectual_macs=eff, energy_pj=energy, edp=energy * cycles,
        traffic_bytes=traffic, energy_breakdown=breakdown, actions=actions, detail=detail,
    )


def simulate(arch, workload, *, progress=None, overrides: dict | None = None, dedup: bool = True,
             mapper: Mapper | str = FIXED, objective: str = "edp", **params) -> Report:
    """Simulate ``workload`` (a Network, layer, list, built-in name or CSV/YAML path) on ``arch``.

    ``overrides`` are dotted-path config overrides (as ``--set``); ``params`` go to a built-in
    network (e.g. ``seq_len``). ``progress(i, n, name)`` is called after each layer. With
    ``dedup`` (default) layers equal in all but name are simulated once and the result reused.
    ``mapper`` is ``"fixed"`` (SCALE-Sim's mapping, the parity reference) or ``"search"`` (the
    best mapping per layer by ``objective``: ``edp``, ``latency`` or ``energy``; see
    :mod:`accelsim.model.mapper`); a searched layer's ``detail["mapping"]`` is its loop nest.

    Examples
    --------
    >>> from accelsim.model.workload import Gemm
    >>> simulate("systolic_ws_32x32", Gemm("g", 64, 64, 64)).total["macs"]
    262144.0
    """
    if not isinstance(arch, ArchConfig) or overrides:
        arch = load_arch(arch, overrides)
    if not isinstance(mapper, Mapper):
        mapper = Mapper(mapper, objective)
    net: Network = as_network(workload, **params)
    layers = net.layers
    if not layers:
        raise WorkloadError(f"workload {net.name!r}: has no layers")
    cache: dict = {}
    results = []
    for i, layer in enumerate(layers):
        key = layer_key(layer) if dedup else i
        if key not in cache:
            cache[key] = _run_layer(arch, layer, mapper)
        results.append(dataclasses.replace(cache[key], name=layer.name))
        if progress is not None:
            progress(i + 1, len(layers), layer.name)
    return Report(arch.name, net.name, arch.clock_ghz, results, _totals(results, arch.compute.peak_macs_per_cycle),
                  dict(net.graph.graph.get("not_modelled", {})))
