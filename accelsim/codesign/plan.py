"""The sparsity plan: which kernel runs each layer of a network (schema, TASDER export, load, checks).

A plan is the JSON file ``accelsim tasd search --out plan.json`` writes and ``accelsim run
--plan`` executes. Version 1::

    {
      "format": "accelsim.plan",
      "version": 1,
      "network": {"workload": "minilm", "params": {"batch": 64}, "name": "minilm_s128_b64"},
      "arch": "tasd_ttc",                      # the arch the plan was searched for
      "layers": [
        {"name": "encoder.layer.0.attention.self.query", "kernel": "nm", "operand": "weight",
         "pattern": "2:4", "layout": "element"},
        {"name": "encoder.layer.0.intermediate.dense", "kernel": "tasd", "operand": "input",
         "series": "2:4+1:4"},
        {"name": "encoder.layer.0.attention.qk", "kernel": "dense"},
        {"name": "...", "kernel": "sparse_tc", "operand": "weight", "pattern": "2:4"}
      ],
      ...                                      # optional: TASDER's cap, budget, proxy, probes, total
    }

Kernels (:data:`KERNELS`): ``dense`` (a GEMM); ``nm`` (:func:`kernels.nm_spmm` on one N:M
pattern, ``layout`` ``element`` or ``vector``, passed to :func:`kernels.nm_compress`); ``tasd`` (a
TASD series, :func:`kernels.tasd_spmm`, one N:M SpMM per term); ``sparse_tc`` (2:4 on sparse
tensor cores through cuSPARSELt, GPU only). ``operand`` says which GEMM operand is N:M: the
``weight`` (compressed once, before the run) or the ``input`` activations (compressed at run
time, TASD-A). Layers the plan does not list run dense. Each layer may also carry TASDER's
figures for it (``weight``, ``act``, ``error``, ``cycles``, ``energy_pj``, ``edp``, …: see
:data:`SEARCH_LAYER_KEYS`); they are informational.

Loading validates everything and raises :class:`PlanError` with one line naming the file, the
field and the bad value; :func:`check_network` then refuses layers the network lacks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from accelsim.checks import read_json
from accelsim.errors import AccelsimError
from kernels.io import atomic_path
from kernels.nm.format import NMPattern
from kernels.tasd import format_series, parse_series

__all__ = [
    "FORMAT",
    "KERNELS",
    "LAYOUTS",
    "PLAN_VERSION",
    "SEARCH_LAYER_KEYS",
    "LayerPlan",
    "Plan",
    "PlanError",
    "check_network",
    "load_plan",
    "parse_plan",
    "plan_from_search",
    "write_plan",
]

FORMAT = "accelsim.plan"
PLAN_VERSION = 1
KERNELS = ("dense", "nm", "tasd", "sparse_tc")
LAYOUTS = ("element", "vector")
OPERANDS = ("weight", "input")
SEARCH_LAYER_KEYS = frozenset({"weight", "act", "error", "cycles", "energy_pj", "edp", "macs", "executed_macs",
                               "dense_edp", "candidates", "w_source", "a_source"})
_LAYER_KEYS = frozenset({"name", "kernel", "operand", "pattern", "series", "layout"}) | SEARCH_LAYER_KEYS
_TOP_KEYS = frozenset({"format", "version", "network", "arch", "layers", "workload", "cap", "budget", "proxy",
                       "probes", "total"})


class PlanError(AccelsimError):
    """A plan file or plan entry that cannot be run: names the file, field and value."""


@dataclass(frozen=True)
class LayerPlan:
    """How one layer runs: ``kernel`` from :data:`KERNELS` and, for sparse kernels, its operand and pattern."""

    name: str
    kernel: str = "dense"
    operand: str = "weight"
    pattern: str | None = None
    series: str | None = None
    layout: str = "element"

    @property
    def label(self) -> str:
        """Short human form: ``dense``, ``W nm 2:4``, ``A tasd 2:4+1:4``, ``W nm 2:4 vector``, ``W sparse_tc 2:4``."""
        if self.kernel == "dense":
            return "dense"
        spec = self.series if self.kernel == "tasd" else self.pattern
        return f"{'W' if self.operand == 'weight' else 'A'} {self.kernel} {spec}" + (
            " vector" if self.layout == "vector" else "")

    def to_dict(self) -> dict:
        if self.kernel == "dense":
            return {"name": self.name, "kernel": "dense"}
        out = {"name": self.name, "kernel": self.kernel, "operand": self.operand}
        out.update({"series": self.series} if self.kernel == "tasd" else {"pattern": self.pattern})
        if self.kernel != "sparse_tc":
            out["layout"] = self.layout
        return out


@dataclass(frozen=True)
class Plan:
    """A validated plan: the network to build, the arch it was searched for, one entry per planned layer."""

    workload: str
    params: dict
    arch: str
    layers: tuple[LayerPlan, ...]
    network_name: str | None = None
    extra: dict = field(default_factory=dict, compare=False, repr=False)
    source: str = "<plan>"

    @property
    def id(self) -> str:
        """``plan-`` and 10 hex digits of the kernel choices' hash: the plan's identifier in trace records."""
        doc = {"workload": self.workload, "params": self.params, "layers": [l.to_dict() for l in self.layers]}
        return "plan-" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:10]

    def layer(self, name: str) -> LayerPlan:
        """The entry for ``name``; a layer the plan does not list runs dense."""
        return self._by_name.get(name) or LayerPlan(name)

    @property
    def _by_name(self) -> dict:
        return {l.name: l for l in self.layers}

    def to_dict(self) -> dict:
        net = {"workload": self.workload, "params": dict(self.params)}
        if self.network_name:
            net["name"] = self.network_name
        return {"format": FORMAT, "version": PLAN_VERSION, "network": net, "arch": self.arch,
                "layers": [l.to_dict() for l in self.layers], **self.extra}


def _err(src: str, where: str, msg: str) -> PlanError:
    return PlanError(f"{src}: {where}: {msg}")


def _layer(src: str, i: int, d) -> LayerPlan:
    where = f"layers[{i}]"
    if not isinstance(d, dict):
        raise _err(src, where, f"expected an object, got {d!r}")
    unknown = sorted(set(d) - _LAYER_KEYS)
    if unknown:
        raise _err(src, f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_LAYER_KEYS - SEARCH_LAYER_KEYS))})")
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise _err(src, f"{where}.name", f"expected a layer name, got {name!r}")
    where = f"layers[{i}] ({name})"
    kernel = d.get("kernel", "dense")
    if kernel not in KERNELS:
        raise _err(src, f"{where}.kernel", f"unknown kernel {kernel!r} (choose from {', '.join(KERNELS)})")
    if kernel == "dense":
        extra = sorted(k for k in ("operand", "pattern", "series", "layout") if k in d)
        if extra:
            raise _err(src, f"{where}.{extra[0]}", "a dense layer takes no sparsity fields")
        return LayerPlan(name)
    operand = d.get("operand", "weight")
    if operand not in OPERANDS:
        raise _err(src, f"{where}.operand", f"{operand!r}: use weight or input")
    layout = d.get("layout", "element")
    if layout not in LAYOUTS:
        raise _err(src, f"{where}.layout", f"unknown N:M layout {layout!r} (element or vector)")
    need, other = ("series", "pattern") if kernel == "tasd" else ("pattern", "series")
    if other in d:
        raise _err(src, f"{where}.{other}", f"kernel {kernel!r} takes {need!r}, not {other!r}")
    if need not in d:
        raise _err(src, where, f"kernel {kernel!r} needs {need!r}")
    try:
        if kernel == "tasd":
            spec = format_series(parse_series(d["series"]))
        else:
            pat = NMPattern.parse(d["pattern"])
            if pat.dense:
                raise _err(src, f"{where}.pattern", f"{d['pattern']!r} keeps every value; use kernel 'dense'")
            spec = str(pat)
    except PlanError:
        raise
    except ValueError as exc:  # InputError from the pattern parsers
        raise _err(src, f"{where}.{need}", str(exc)) from None
    if kernel == "sparse_tc":
        if spec != "2:4" or operand != "weight":
            raise _err(src, f"{where}.pattern", f"sparse tensor cores run 2:4 on the weight only, got {operand} {spec}")
        if "layout" in d:
            raise _err(src, f"{where}.layout", "sparse_tc has its own (cuSPARSELt) layout")
    if kernel == "tasd" and layout != "element":
        raise _err(src, f"{where}.layout", "TASD terms use the element layout")
    return LayerPlan(name, kernel, operand, spec if kernel != "tasd" else None, spec if kernel == "tasd" else None,
                     layout)


def parse_plan(doc, source: str = "<plan>") -> Plan:
    """Validate a plan document (a dict as in the module docstring); raise :class:`PlanError` naming the field."""
    src = source
    if not isinstance(doc, dict):
        raise PlanError(f"{src}: expected a JSON object with 'format': {FORMAT!r}")
    if doc.get("format") != FORMAT:
        raise _err(src, "format", f"expected {FORMAT!r}, got {doc.get('format')!r} (write plans with "
                                  f"`accelsim tasd search --out plan.json`)")
    if doc.get("version") != PLAN_VERSION:
        raise _err(src, "version", f"{doc.get('version')!r}: this accelsim reads plan version {PLAN_VERSION}")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise _err(src, unknown[0], "unknown key")
    net = doc.get("network")
    if not isinstance(net, dict) or not isinstance(net.get("workload"), str):
        raise _err(src, "network", f"expected {{'workload': NAME, 'params': {{...}}}}, got {net!r}")
    bad = sorted(set(net) - {"workload", "params", "name"})
    if bad:
        raise _err(src, f"network.{bad[0]}", "unknown key")
    params = net.get("params", {})
    if not isinstance(params, dict):
        raise _err(src, "network.params", f"expected an object, got {params!r}")
    arch = doc.get("arch")
    if not isinstance(arch, str):
        raise _err(src, "arch", f"expected the arch name, got {arch!r}")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise _err(src, "layers", f"expected a list, got {type(layers).__name__}")
    parsed = tuple(_layer(src, i, d) for i, d in enumerate(layers))
    seen = set()
    for i, l in enumerate(parsed):
        if l.name in seen:
            raise _err(src, f"layers[{i}].name", f"layer {l.name!r} is planned twice")
        seen.add(l.name)
    extra = {k: v for k, v in doc.items() if k not in ("format", "version", "network", "arch", "layers")}
    return Plan(net["workload"], dict(params), arch, parsed, net.get("name"), extra, src)


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file.

    Raises
    ------
    PlanError
        Missing or malformed file, wrong format or version, or a bad field (named).
    """
    path = Path(path)
    if not path.exists():
        raise PlanError(f"--plan {str(path)!r}: no such file (write one with `accelsim tasd search --out plan.json`)")
    return parse_plan(read_json(path, "JSON plan", PlanError), str(path))


def write_plan(plan: Plan, path: str | Path) -> None:
    """Write ``plan`` as JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(plan.to_dict(), indent=2, allow_nan=False) + "\n")


def check_network(plan: Plan, network) -> None:
    """Refuse a plan naming layers ``network`` lacks, or a sparse kernel on a two-activation GEMM."""
    layers = {l.name: l for l in network.layers}
    for i, lp in enumerate(plan.layers):
        if lp.name not in layers:
            example = next(iter(layers), "")
            raise _err(plan.source, f"layers[{i}].name",
                       f"network {network.name!r} has no layer {lp.name!r} (its layers are named like {example!r})")
        if lp.kernel != "dense" and not getattr(layers[lp.name], "static_weight", True):
            raise _err(plan.source, f"layers[{i}] ({lp.name}).kernel",
                       f"{lp.kernel!r}: this GEMM multiplies two activations; only 'dense' runs it")
        if lp.kernel != "dense" and not hasattr(layers[lp.name], "as_gemm"):
            raise _err(plan.source, f"layers[{i}] ({lp.name}).kernel", f"{lp.kernel!r}: not a GEMM or conv layer")


def _from_series(name: str, operand: str, series: str, layout: str, sparse_tc: bool) -> LayerPlan:
    pats = parse_series(series)
    if len(pats) == 1:
        if sparse_tc and operand == "weight" and str(pats[0]) == "2:4":
            return LayerPlan(name, "sparse_tc", "weight", "2:4")
        return LayerPlan(name, "nm", operand, str(pats[0]), layout=layout)
    return LayerPlan(name, "tasd", operand, series=format_series(pats))


def plan_from_search(result, workload: str, params: dict, layout: str = "element", sparse_tc: bool = False) -> dict:
    """The plan document of a TASDER result: kernel fields added to each layer's search record.

    One-term series run as ``nm`` (in ``layout``), longer ones as ``tasd``; with ``sparse_tc``
    a 2:4 weight runs on sparse tensor cores. ``workload``/``params`` are what rebuilds the network.
    """
    if layout not in LAYOUTS:
        raise PlanError(f"--layout {layout!r}: use element or vector")
    doc = result.to_dict()
    layers = []
    for rec in doc.pop("layers"):
        if rec["weight"] != "dense":
            lp = _from_series(rec["name"], "weight", rec["weight"], layout, sparse_tc)
        elif rec["act"] != "dense":
            lp = _from_series(rec["name"], "input", rec["act"], layout, False)
        else:
            lp = LayerPlan(rec["name"])
        layers.append({**lp.to_dict(), **{k: v for k, v in rec.items() if k != "name"}})
    arch = doc.pop("arch")
    out = {"format": FORMAT, "version": PLAN_VERSION,
           "network": {"workload": workload, "params": dict(params), "name": doc["workload"]},
           "arch": arch, "layers": layers, **doc}
    parse_plan(out, "tasd search")  # what we write must load
    return out
