"""TASDER (Jeong et al., MLSys 2025): per-layer TASD series search, the simulator as cost model.

For every layer TASDER lists what the arch can run — dense, a weight series, or (with TASD units
on the input operand) an activation series — prices each option with :func:`accelsim.model.simulate`
and measures its error: the relative Frobenius error ``‖X − X̂‖F / ‖X‖F`` of the approximated
operand (real weights/activations where given, else the synthetic samples of
:mod:`accelsim.codesign.sources`). The simulator runs TASD on one operand per layer, so an option
approximates the weight *or* the activation, never both.

Under a per-layer error cap each layer takes its minimum-EDP option. With an end-to-end budget
(MiniLM: mean cosine of sentence embeddings to the unmodified model) the cap is bisected over
the distinct option errors until the largest cap whose choices still meet the budget is found.
Everything is deterministic: fixed seeds, ties broken by (EDP, error, label).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accelsim.model.arch import ArchConfig, load_arch
from accelsim.errors import AccelsimError, WorkloadError
from accelsim.model.mapper import FIXED, Mapper
from accelsim.model.simulate import simulate
from accelsim.codesign.accuracy import ActivationTASD, load_sentences, mean_cosine
from accelsim.codesign.sources import activation_kind, capture_activations, synthetic_activation, synthetic_weight
from accelsim.model.workload import Conv, Gemm, Network, Sparsity, layer_key
from accelsim.model.workloads import as_network
from kernels.errors import InputError
from kernels.io import atomic_path
from kernels.tasd import candidate_series, format_series, parse_series, tasd_approximate, tasd_decompose, tasd_errors

__all__ = ["DEFAULT_BUDGET", "DEFAULT_MAX_TERMS", "LayerChoice", "Option", "PROXY_MEANINGS", "TasderResult", "arch_series",
           "search", "write_result"]

PROXY_MEANINGS = {
    "cos_base": "mean cosine of the shipped sentences' embeddings to the model before TASD (after --prune, if "
                "given); --budget bounds it",
    "cos_dense": "the same cosine to the unmodified dense model (equals cos_base without --prune)",
    "mean_rel_error": "MAC-weighted mean over layers of the relative error ‖X − X̂‖F / ‖X‖F of the approximated operand",
    "max_rel_error": "the largest per-layer relative error (at most the per-layer cap)",
}
"""One line per key of :attr:`TasderResult.proxy`: what a `tasd search` caption prints next to the number."""

#: Accuracy budget (mean cosine to the unmodified model) when a model is given and no budget or cap.
DEFAULT_BUDGET = 0.99
DEFAULT_MAX_TERMS = 2  # archs without a TASD block: two terms of one pattern already reproduce any tensor


@dataclass(frozen=True)
class Option:
    """One way to run a layer: ``weight``/``act`` are ``"dense"`` or a series, priced and judged."""

    weight: str
    act: str
    error: float
    cycles: float
    energy_pj: float
    executed_macs: float

    @property
    def edp(self) -> float:
        return self.energy_pj * self.cycles

    @property
    def label(self) -> str:
        if self.weight != "dense":
            return f"W {self.weight}"
        return f"A {self.act}" if self.act != "dense" else "dense"

    def _key(self):
        return (self.edp, self.error, self.label)


@dataclass
class LayerChoice:
    """A layer's chosen option, its dense option on the same arch and where its error came from."""

    name: str
    macs: float
    choice: Option
    dense: Option
    options: list[Option] = field(repr=False, default_factory=list)
    sources: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        c = self.choice
        return {"name": self.name, "weight": c.weight, "act": c.act, "error": c.error, "cycles": c.cycles,
                "energy_pj": c.energy_pj, "edp": c.edp, "macs": self.macs, "executed_macs": c.executed_macs,
                "dense_edp": self.dense.edp, "candidates": len(self.options), **self.sources}


@dataclass
class TasderResult:
    """Per-layer choices, network totals and the accuracy proxy of the chosen configuration."""

    arch: str
    workload: str
    layers: list[LayerChoice]
    cap: float
    budget: float | None
    proxy: dict
    probes: list[dict]
    base: Network = field(repr=False)

    @property
    def total(self) -> dict:
        """Summed cycles/energy, EDP = total energy × total cycles, and the same for all-dense."""
        cyc = sum(l.choice.cycles for l in self.layers)
        en = sum(l.choice.energy_pj for l in self.layers)
        dcyc = sum(l.dense.cycles for l in self.layers)
        den = sum(l.dense.energy_pj for l in self.layers)
        macs = sum(l.macs for l in self.layers)
        ex = sum(l.choice.executed_macs for l in self.layers)
        return {"cycles": cyc, "energy_pj": en, "edp": cyc * en, "macs": macs, "executed_macs": ex,
                "compute_fraction": ex / macs if macs else 1.0, "dense_cycles": dcyc, "dense_energy_pj": den,
                "dense_edp": dcyc * den, "edp_change": cyc * en / (dcyc * den) - 1.0 if dcyc * den else 0.0}

    def network(self) -> Network:
        """The workload with every layer's chosen sparsity applied (what ``simulate`` should run)."""
        chosen = {l.name: l.choice for l in self.layers}
        return self.base.map_layers(lambda layer: _apply(layer, chosen[layer.name]) if layer.name in chosen else layer)

    def to_dict(self) -> dict:
        return {"arch": self.arch, "workload": self.workload, "cap": _finite(self.cap), "budget": self.budget,
                "proxy": self.proxy, "probes": self.probes, "layers": [l.to_dict() for l in self.layers],
                "total": self.total}


def _finite(x: float):
    return None if math.isinf(x) else x


def _apply(layer, opt: Option):
    if isinstance(layer, (Gemm, Conv)):
        kw = {}
        if opt.weight != "dense":
            kw["weight_sparsity"] = Sparsity.parse("tasd:" + opt.weight)
        if opt.act != "dense":
            kw["input_sparsity"] = Sparsity.parse("tasd:" + opt.act)
        return dataclasses.replace(layer, **kw) if kw else layer
    return layer


def arch_series(arch: ArchConfig, max_terms: int | None = None, series: Sequence | None = None) -> dict[str, list[str]]:
    """The series TASDER may use on each operand of ``arch``: ``{"weight": [...], "input": [...]}``.

    Candidates are :func:`kernels.tasd.candidate_series` over the arch's sparse N:M patterns up
    to ``compute.tasd.max_terms`` (:data:`DEFAULT_MAX_TERMS` without a TASD block) or a smaller
    ``max_terms``; activation series need TASD units and the input operand. ``series`` restricts
    the candidates; a series the arch cannot run raises :class:`InputError`.
    """
    sup = arch.compute.sparsity
    tasd = arch.compute.tasd
    limit = tasd.max_terms if tasd is not None else DEFAULT_MAX_TERMS
    if max_terms is not None:
        if isinstance(max_terms, bool) or not isinstance(max_terms, int) or max_terms < 1:
            raise InputError(f"--max-terms: expected a positive integer, got {max_terms!r}")
        if tasd is not None and max_terms > tasd.max_terms:
            raise InputError(f"--max-terms {max_terms}: arch {arch.name!r} runs at most {tasd.max_terms} TASD terms")
        limit = max_terms
    pats = [p for p in sup.nm_patterns() if not p.dense]
    cands = [format_series(s) for s in candidate_series(pats, limit)] if pats else []
    if series is not None:
        wanted = [format_series(parse_series(s)) for s in series]
        for s in wanted:
            if s not in cands:
                raise InputError(
                    f"--series {s}: does not fit arch {arch.name!r} (patterns {', '.join(map(str, pats)) or 'none'}, "
                    f"at most {limit} terms)"
                )
        cands = [c for c in cands if c in wanted]
    out = {"weight": cands if "weight" in sup.operands else [], "input": []}
    if tasd is not None and "input" in sup.operands:
        out["input"] = list(cands)
    return out


class _Cost:
    """Simulate a layer once per :func:`~accelsim.model.workload.layer_key`: equal layers share one run."""

    def __init__(self, arch: ArchConfig, mapper: Mapper = FIXED):
        self.arch = arch
        self.mapper = mapper
        self.cache: dict = {}

    def __call__(self, layer) -> tuple[float, float, float]:
        key = layer_key(layer)
        if key not in self.cache:
            r = simulate(self.arch, layer, mapper=self.mapper).layers[0]
            ex = sum(v for a, v in r.actions.items() if a.startswith("compute.mac."))
            self.cache[key] = (r.cycles, r.energy_pj, ex)
        return self.cache[key]


def _series_errors(x: np.ndarray, series: Sequence[str]) -> dict[str, float]:
    """Relative error of every candidate series on ``x``.

    Greedy terms of one group size M take the next-largest magnitudes of each group, so a
    series whose terms share M keeps exactly the top ``min(ΣN, M)`` per group: its error comes
    from one per-group sort (exact, far cheaper than decomposing). Mixed-M series decompose.
    """
    x64 = np.asarray(x, dtype=np.float64)
    norm2 = float(np.square(x64).sum())
    out: dict[str, float] = {}
    dropped: dict[int, np.ndarray] = {}
    for s in series:
        pats = parse_series(s)
        m = pats[0].m
        if norm2 == 0:
            out[s] = 0.0
        elif all(p.m == m for p in pats):
            if m not in dropped:
                g = np.square(x64)
                pad = (-g.shape[-1]) % m
                g = np.pad(g.reshape(-1, g.shape[-1]), ((0, 0), (0, pad))).reshape(-1, m)
                # dropped[j]: the j smallest squares of every group, summed (the residual when M - j are kept)
                dropped[m] = np.concatenate([[0.0], np.cumsum(np.sort(g, axis=1), axis=1).sum(axis=0)])
            n = min(sum(p.n for p in pats), m)
            out[s] = math.sqrt(float(dropped[m][m - n]) / norm2)
        else:
            out[s] = tasd_errors(x, tasd_decompose(x, s, axis=-1))[-1]["rel_error"]
    return out


def _layer_options(cost: _Cost, layer, cands: dict, w: np.ndarray | None, x: np.ndarray | None) -> list[Option]:
    opts = [Option("dense", "dense", 0.0, *cost(layer))]
    plans = []
    if w is not None and cands["weight"] and getattr(layer, "static_weight", True):
        plans += [("weight", s, e) for s, e in _series_errors(w, cands["weight"]).items()]
    if x is not None and cands["input"]:
        plans += [("input", s, e) for s, e in _series_errors(x, cands["input"]).items()]
    for operand, s, err in plans:
        opt = Option(s if operand == "weight" else "dense", s if operand == "input" else "dense", err, 0, 0, 0)
        try:
            priced = cost(_apply(layer, opt))
        except WorkloadError:
            continue  # e.g. an activation series on a layer whose weights are already N:M
        opts.append(dataclasses.replace(opt, cycles=priced[0], energy_pj=priced[1], executed_macs=priced[2]))
    return sorted(opts, key=Option._key)


def _choose(options: list[Option], cap: float) -> Option:
    """Minimum-EDP option within the cap (``options`` are sorted; dense has error 0)."""
    return next(o for o in options if o.error <= cap)


class _MiniLMProxy:
    """End-to-end accuracy proxy: mean cosine of embeddings to the base (and to the dense) model."""

    def __init__(self, model, sentences, base_weights: Mapping[str, np.ndarray]):
        self.model, self.sentences, self.base_w = model, list(sentences), dict(base_weights)
        self._cos = mean_cosine
        self.dense_emb = model.encode(self.sentences)
        self.base_emb = model.encode(self.sentences, weights=self.base_w)
        self._w: dict = {}
        self._memo: dict = {}

    def __call__(self, choice: Mapping[str, Option]) -> dict:
        key = tuple(sorted((n, o.weight, o.act) for n, o in choice.items() if n in self.base_w))
        if key not in self._memo:
            used = dict(self.base_w)
            acts = {}
            for n, wser, aser in key:
                if wser != "dense":
                    if (n, wser) not in self._w:
                        self._w[(n, wser)] = tasd_approximate(self.base_w[n], wser, axis=-1)
                    used[n] = self._w[(n, wser)]
                if aser != "dense":
                    acts[n] = aser
            hook = ActivationTASD(acts, list(self.model.linear_names)) if acts else None
            emb = self.model.encode(self.sentences, weights=used, act=hook)
            self._memo[key] = {"cos_base": self._cos(emb, self.base_emb), "cos_dense": self._cos(emb, self.dense_emb)}
        return self._memo[key]


def _error_proxy(choice: Mapping[str, Option], macs: Mapping[str, float]) -> dict:
    total = sum(macs.values())
    mean = sum(macs[n] * o.error for n, o in choice.items()) / total if total else 0.0
    return {"mean_rel_error": mean, "max_rel_error": max((o.error for o in choice.values()), default=0.0)}


def _refine(layers, choice, evaluate, budget, cap_max, tries, probes) -> dict[str, Option]:
    """Greedy per-layer relaxation of a budget-meeting choice (see ``refine`` in :func:`search`)."""
    order = sorted(layers, key=lambda l: (-l.dense.edp, l.name))
    progress = True
    while progress and tries > 0:
        progress = False
        for l in order:
            cur = choice[l.name]
            cheaper = [o for o in l.options if o.edp < cur.edp and o.error <= cap_max]
            if not cheaper or tries <= 0:
                continue
            step = min(cheaper, key=lambda o: (o.error, o.edp, o.label))
            trial = {**choice, l.name: step}
            p = evaluate(trial)
            tries -= 1
            probes.append({"layer": l.name, "option": step.label, **p})
            if p["cos_base"] >= budget:
                choice, progress = trial, True
    return choice


def search(arch, workload, *, max_error: float | None = None, budget: float | None = None,
           weights: Mapping[str, np.ndarray] | None = None, activations: Mapping[str, np.ndarray] | None = None,
           model=None, sentences: Sequence[str] | None = None, prune: float = 0.0, max_terms: int | None = None,
           series: Sequence | None = None, refine: int = 0, mapper: Mapper = FIXED, **params) -> TasderResult:
    """Choose each layer's TASD series (weights or activations) to minimise EDP within an error budget.

    Parameters
    ----------
    arch, workload : as :func:`accelsim.model.simulate` (``params`` go to a built-in network).
    max_error : per-layer cap on the relative error of the approximated operand (default: none
        with ``budget``; required without).
    budget : minimum end-to-end accuracy proxy; needs ``model`` (a :class:`MiniLM`): the mean
        cosine of embeddings on ``sentences`` to the model run with ``weights`` unchanged;
        :data:`DEFAULT_BUDGET` when ``model`` is given without ``budget`` or ``max_error``.
    weights : real ``(N, K)`` weights by layer name; other layers get :func:`synthetic_weight`
        pruned by ``prune``. ``activations``: real ``(rows, K)`` inputs by layer name; others
        get :func:`synthetic_activation`. With ``model`` given, missing activations are captured.
    max_terms, series : restrict the candidates (see :func:`arch_series`).
    mapper : how every option is mapped when priced (the searching mapper prices each series under
        its own best mapping).
    refine : with ``budget``, up to this many extra forward passes after the bisection: layers
        in order of dense EDP (largest first) each try their least-error cheaper option, kept
        when the budget still holds; passes repeat while something was kept. Layers differ in
        sensitivity, which one uniform cap cannot see.

    Raises
    ------
    InputError
        Bad budget/cap, a budget without a model, a series or term count the arch cannot run.
    """
    arch = load_arch(arch) if not isinstance(arch, ArchConfig) else arch
    net = as_network(workload, **params)
    if budget is None and max_error is None and model is not None:
        budget = DEFAULT_BUDGET
    if max_error is not None and not (max_error >= 0):
        raise InputError(f"--max-error: expected a relative error >= 0, got {max_error!r}")
    if budget is not None:
        if not 0 < budget <= 1:
            raise InputError(f"--budget: expected an accuracy proxy in (0, 1], e.g. 0.99, got {budget!r}")
        if model is None:
            raise InputError("--budget needs an end-to-end model (--weights minilm); use --max-error for synthetic weights")
    elif max_error is None:
        raise InputError("give an error budget: --budget (with --weights minilm) or --max-error")
    if not 0 <= prune < 1:
        raise InputError(f"--prune: expected a fraction in [0, 1), got {prune!r}")
    cands = arch_series(arch, max_terms, series)
    weights = dict(weights or {})
    if model is not None:
        sentences = list(sentences) if sentences is not None else load_sentences()
        weights = {**model.linear_weights(), **weights}
        base_w = {n: weights[n] for n in model.linear_names}
        activations = {**capture_activations(model, sentences, weights=base_w), **(activations or {})}
    activations = dict(activations or {})
    cost = _Cost(arch, mapper)
    layers: list[LayerChoice] = []
    for layer in net.layers:
        if not isinstance(layer, (Gemm, Conv)):
            opts = [Option("dense", "dense", 0.0, *cost(layer))]
            layers.append(LayerChoice(layer.name, float(layer.macs), opts[0], opts[0], opts, {}))
            continue
        w_src = "real" if layer.name in weights else f"laplace{'+prune' if prune else ''}"
        w = weights[layer.name] if layer.name in weights else synthetic_weight(layer, prune)
        # Activation-by-activation GEMMs (attention scores) have no hooked input to measure: kept dense.
        static = getattr(layer, "static_weight", True)
        a_src = "real" if layer.name in activations else (activation_kind(layer, net) if static else "-")
        x = activations.get(layer.name) if a_src == "real" else (synthetic_activation(layer, a_src) if a_src != "-" else None)
        opts = _layer_options(cost, layer, cands, w, x)
        dense = next(o for o in opts if o.label == "dense")
        layers.append(LayerChoice(layer.name, float(layer.macs), dense, dense, opts, {"w_source": w_src, "a_source": a_src}))
    macs = {l.name: l.macs for l in layers}
    cap_max = math.inf if max_error is None else float(max_error)
    probes: list[dict] = []
    cap = cap_max
    evaluate = _MiniLMProxy(model, sentences, base_w) if model is not None else None
    if budget is not None:
        caps = sorted({o.error for l in layers for o in l.options if o.error <= cap_max} | {0.0})
        lo, hi = 0, len(caps) - 1  # invariant: caps[lo] meets the budget (cap 0 = exact choices only)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            p = evaluate({l.name: _choose(l.options, caps[mid]) for l in layers})
            probes.append({"cap": caps[mid], **p})
            if p["cos_base"] >= budget:
                lo = mid
            else:
                hi = mid - 1
        cap = caps[lo]
    choice = {l.name: _choose(l.options, cap) for l in layers}
    if budget is not None and refine > 0:
        choice = _refine(layers, choice, evaluate, budget, cap_max, refine, probes)
    for l in layers:
        l.choice = choice[l.name]
    proxy = {**(evaluate(choice) if evaluate is not None else {}), **_error_proxy(choice, macs)}
    return TasderResult(arch.name, net.name, layers, cap, budget, proxy, probes, net)


def write_result(result: TasderResult, path: str | Path, workload: str | None = None, params: dict | None = None,
                 layout: str = "element", sparse_tc: bool = False) -> None:
    """Write ``result`` atomically: ``.json`` as a plan (:mod:`accelsim.codesign.plan`, TASDER's figures kept
    per layer) or ``.parquet`` (a row per layer). ``workload``/``params`` rebuild the network (default: its name)."""
    from accelsim.codesign.plan import plan_from_search

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".parquet"):
        raise AccelsimError(f"--out {path}: unknown file type {suffix or '(none)'!r}; use .json or .parquet")
    if suffix == ".json":
        doc = plan_from_search(result, workload or result.workload, params or {}, layout, sparse_tc)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    doc = result.to_dict()
    rows = [{"arch": result.arch, "workload": result.workload, **r} for r in doc.pop("layers")]
    table = pa.Table.from_pylist(rows)
    meta = {b"tasder": json.dumps(doc, allow_nan=False).encode()}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}), tmp)
