"""Workloads: GEMM, Conv (lowered to GEMM as SCALE-Sim does), Kron-matmul, and networks of them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Union

import networkx as nx

from accelsim.checks import MAX_LAYER_MACS, check_dim, check_layer_count
from accelsim.errors import WorkloadError
from accelsim.model.arch import DTYPE_BYTES
from kernels.errors import InputError
from kernels.nm.format import NMPattern

__all__ = [
    "Conv",
    "Gemm",
    "KronMatmul",
    "Layer",
    "Network",
    "Sparsity",
    "layer_key",
]


@dataclass(frozen=True)
class Sparsity:
    """How an operand is sparse: ``dense``, ``nm`` (one pattern), ``unstructured`` (a density), or
    ``tasd`` (a series of N:M terms summed). ``density`` is the fraction of non-zeros."""

    kind: str = "dense"
    pattern: NMPattern | None = None
    density: float = 1.0
    series: tuple[NMPattern, ...] = ()

    def __post_init__(self):
        if self.kind not in ("dense", "nm", "unstructured", "tasd"):
            raise WorkloadError(f"sparsity kind {self.kind!r}: use dense, nm, unstructured or tasd")
        if not 0.0 < self.density <= 1.0:
            raise WorkloadError(f"sparsity density {self.density!r}: must be in (0, 1]")
        if self.kind == "nm" and self.pattern is None:
            raise WorkloadError("sparsity kind 'nm' needs a pattern such as 2:4")
        if self.kind == "tasd" and not self.series:
            raise WorkloadError("sparsity kind 'tasd' needs a non-empty series such as 2:4+1:4")

    @classmethod
    def parse(cls, text: str | None) -> Sparsity:
        """Parse ``dense``, ``2:4``, ``u0.3`` / ``unstructured:0.3`` (density) or ``tasd:2:4+1:4``."""
        if text is None:
            return DENSE
        s = str(text).strip().lower()
        try:
            if s in ("", "dense", "none"):
                return DENSE
            if s.startswith("tasd:"):
                series = tuple(NMPattern.parse(p) for p in s[5:].split("+"))
                return cls("tasd", series=series, density=min(1.0, sum(p.density for p in series)))
            if s.startswith(("u", "unstructured:")):
                return cls("unstructured", density=float(s.split(":")[-1].lstrip("u")))
            p = NMPattern.parse(s)
            return DENSE if p.dense else cls("nm", pattern=p, density=p.density)
        except (ValueError, InputError) as exc:
            raise WorkloadError(f"sparsity {text!r}: {str(exc).removeprefix('sparsity ')}") from None

    def __str__(self) -> str:
        if self.kind == "nm":
            return str(self.pattern)
        if self.kind == "tasd":
            return "tasd:" + "+".join(map(str, self.series))
        if self.kind == "unstructured":
            return f"u{self.density:g}"
        return "dense"


DENSE = Sparsity()


def _ensure_layer(layer, dims: tuple[str, ...]) -> None:
    """The checks every layer type shares: a string name, bounded positive dimensions, a known dtype,
    boolean flags (typed data from a YAML file or a script is checked here, once)."""
    if not isinstance(layer.name, str) or not layer.name:
        raise WorkloadError(f"layer {layer.name!r}: field name must be a non-empty string")
    where = f"layer {layer.name!r}"
    for f in dims:
        check_dim(f, getattr(layer, f), where)
    if layer.dtype is not None and layer.dtype not in DTYPE_BYTES:
        raise WorkloadError(f"{where}: field dtype: unknown {layer.dtype!r} (use one of {', '.join(DTYPE_BYTES)})")
    for f in ("weight_sparsity", "input_sparsity"):
        if not isinstance(getattr(layer, f, DENSE), Sparsity):
            raise WorkloadError(f"{where}: field {f} must be a Sparsity, got {getattr(layer, f)!r}")
    for f in ("static_weight", "fused"):
        if not isinstance(getattr(layer, f, True), bool):
            raise WorkloadError(f"{where}: field {f} must be true or false, got {getattr(layer, f)!r}")


def _ensure_macs(gemm: Gemm, where: str) -> None:
    if gemm.macs > MAX_LAYER_MACS:
        raise WorkloadError(f"layer {where!r}: {gemm.macs:.3g} MACs (m·n·k·count = {gemm.m}·{gemm.n}·{gemm.k}·"
                            f"{gemm.count}) exceed the limit 2**53 (accelsim.checks.MAX_LAYER_MACS)")


@dataclass(frozen=True)
class Gemm:
    """C[M, N] = A[M, K] · B[K, N]; A is the input (activations), B the weight.

    ``count`` identical copies (e.g. attention heads × sequences) run one after another on a
    systolic array and as one batched GEMM on tensor cores.
    """

    name: str
    m: int
    n: int
    k: int
    dtype: str | None = None
    weight_sparsity: Sparsity = DENSE
    input_sparsity: Sparsity = DENSE
    count: int = 1
    static_weight: bool = True

    def __post_init__(self):
        _ensure_layer(self, ("m", "n", "k", "count"))
        _ensure_macs(self, self.name)

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k * self.count

    def as_gemm(self) -> Gemm:
        return self


@dataclass(frozen=True)
class Conv:
    """A convolution, lowered to GEMM exactly as SCALE-Sim does (no padding: the ifmap size given
    includes it).

    M = ofmap pixels = batch·E·F with E = ⌈(H − R)/stride_h⌉ + 1 (SCALE-Sim's rounding: one more
    output row than a framework's ⌊·⌋ when H − R is not a multiple of the stride), K = R·S·C,
    N = filters. ``batch`` images share the weights, so they lengthen M (im2col over the batch);
    ``count`` is for independent copies run one after another.
    """

    name: str
    ifmap_h: int
    ifmap_w: int
    filt_h: int
    filt_w: int
    channels: int
    num_filters: int
    stride_h: int = 1
    stride_w: int = 1
    dtype: str | None = None
    weight_sparsity: Sparsity = DENSE
    input_sparsity: Sparsity = DENSE
    count: int = 1
    batch: int = 1

    def __post_init__(self):
        _ensure_layer(self, ("ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels", "num_filters", "stride_h",
                             "stride_w", "count", "batch"))
        if self.filt_h > self.ifmap_h or self.filt_w > self.ifmap_w:
            raise WorkloadError(
                f"layer {self.name!r}: filter {self.filt_h}x{self.filt_w} larger than ifmap {self.ifmap_h}x{self.ifmap_w}"
            )
        self.as_gemm()  # the lowered GEMM's dimensions and MACs are bounded too

    @property
    def ofmap(self) -> tuple[int, int]:
        return (-(-(self.ifmap_h - self.filt_h) // self.stride_h) + 1, -(-(self.ifmap_w - self.filt_w) // self.stride_w) + 1)

    def as_gemm(self) -> Gemm:
        e, f = self.ofmap
        return Gemm(
            self.name, self.batch * e * f, self.num_filters, self.filt_h * self.filt_w * self.channels, self.dtype,
            self.weight_sparsity, self.input_sparsity, self.count,
        )

    @property
    def macs(self) -> int:
        return self.as_gemm().macs


@dataclass(frozen=True)
class KronMatmul:
    """Y[M, ∏Qi] = X[M, ∏Pi] · (F1 ⊗ … ⊗ FN); ``factors`` are (Pi, Qi). ``fused`` keeps intermediates on chip."""

    name: str
    m: int
    factors: tuple[tuple[int, int], ...]
    dtype: str | None = None
    fused: bool = True
    count: int = 1

    def __post_init__(self):
        _ensure_layer(self, ("m", "count"))
        where = f"layer {self.name!r}"
        if not isinstance(self.factors, (list, tuple)) or not self.factors:
            raise WorkloadError(f"{where}: field factors must list at least one [P, Q], got {self.factors!r}")
        for f in self.factors:
            if not isinstance(f, (list, tuple)) or len(f) != 2:
                raise WorkloadError(f"{where}: field factors: each factor is a [P, Q] pair, got {f!r}")
            for v in f:
                check_dim("factors", v, where)
        object.__setattr__(self, "factors", tuple((p, q) for p, q in self.factors))
        self.steps()  # each per-factor GEMM (rows = m·∏P/Pi) is checked as it is built

    def steps(self) -> list[Gemm]:
        """The per-factor GEMMs, last factor first: each contracts one Pi into Qi over all other modes."""
        k = math.prod(p for p, _ in self.factors)
        out = []
        for i, (p, q) in reversed(list(enumerate(self.factors))):
            rows = self.m * (k // p)
            out.append(Gemm(f"{self.name}.f{i}", rows, q, p, self.dtype, count=self.count))
            k = (k // p) * q
        return out

    @property
    def macs(self) -> int:
        return sum(g.macs for g in self.steps())


Layer = Union[Gemm, Conv, KronMatmul]


@dataclass
class Network:
    """A named DAG of layers (networkx ``DiGraph``, node attribute ``layer``); run in topological order."""

    name: str
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)

    def __post_init__(self):
        check_layer_count(self.name, self.graph.number_of_nodes())

    @classmethod
    def chain(cls, name: str, layers: list[Layer]) -> Network:
        check_layer_count(name, len(layers))
        g = nx.DiGraph()
        prev = None
        for layer in layers:
            if layer.name in g:
                raise WorkloadError(f"network {name!r}: duplicate layer name {layer.name!r}")
            g.add_node(layer.name, layer=layer)
            if prev is not None:
                g.add_edge(prev, layer.name)
            prev = layer.name
        return cls(name, g)

    @property
    def layers(self) -> list[Layer]:
        """Layers in a deterministic topological order (ties broken by insertion order)."""
        order = {n: i for i, n in enumerate(self.graph.nodes)}
        return [self.graph.nodes[n]["layer"] for n in nx.lexicographical_topological_sort(self.graph, key=order.get)]

    def map_layers(self, fn) -> Network:
        g = self.graph.copy()
        for n in g.nodes:
            g.nodes[n]["layer"] = fn(g.nodes[n]["layer"])
        return Network(self.name, g)

    def with_sparsity(self, weight: Sparsity | None = None, input: Sparsity | None = None) -> Network:
        """The same network with every GEMM/conv layer's weight and/or input sparsity replaced."""

        def update(layer):
            if isinstance(layer, KronMatmul):
                return layer
            kw = {}
            if weight is not None and getattr(layer, "static_weight", True):
                kw["weight_sparsity"] = weight
            if input is not None:
                kw["input_sparsity"] = input
            return replace(layer, **kw)

        return self.map_layers(update)


def layer_key(layer: Layer) -> tuple:
    """A layer's identity for reuse: two layers equal in every field but ``name`` simulate
    identically, so one run serves both (network simulation, the TASDER search's pricing)."""
    return (type(layer).__name__, *(v for f, v in sorted(layer.__dict__.items()) if f != "name"))

