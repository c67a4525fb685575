"""Workloads: GEMM, Conv (lowered to GEMM as SCALE-Sim does), Kron-matmul, and networks of them."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Union

import networkx as nx

from accelsim.checks import MAX_LAYER_MACS, check_dim, read_text
from accelsim.errors import WorkloadError
from accelsim.model.arch import DTYPE_BYTES
from kernels.errors import InputError
from kernels.nm import NMPattern

__all__ = [
    "Conv",
    "Gemm",
    "KronMatmul",
    "Layer",
    "Network",
    "Sparsity",
    "as_network",
    "read_topology_csv",
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

    @classmethod
    def chain(cls, name: str, layers: list[Layer]) -> Network:
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


_CONV_FIELDS = ("ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels", "num_filters", "stride_h", "stride_w")


def _row_int(value: str, path: Path, lineno: int, column: str) -> int:
    try:
        v = int(float(value)) if value.strip() else None
        if v is None or float(value) != v:
            raise ValueError
    except (ValueError, OverflowError):
        raise WorkloadError(f"{path}:{lineno}: column {column!r}: expected an integer, got {value!r}") from None
    if v <= 0:
        raise WorkloadError(f"{path}:{lineno}: column {column!r}: must be positive, got {v}")
    return check_dim(column, v, f"{path}:{lineno}")


def read_topology_csv(path: str | Path, *, gemm: bool | None = None, name: str | None = None) -> Network:
    """Read a SCALE-Sim topology CSV unchanged into a :class:`Network`.

    Conv format: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
    Num Filter, Strides[, Sparsity]`` (one stride for both axes, as SCALE-Sim). GEMM format
    (SCALE-Sim's ``-i gemm``): ``Layer, M, N, K[, Sparsity]``. ``gemm=None`` detects the format
    from the header. Trailing commas, blank lines, spacing and header case are tolerated; the
    optional Sparsity column holds ``N:M`` for the weights.
    """
    path = Path(path)
    text = read_text(path, "topology file", WorkloadError)
    try:
        rows = [(i + 1, [c.strip() for c in r]) for i, r in enumerate(csv.reader(text.splitlines()))]
    except csv.Error as exc:
        raise WorkloadError(f"{path}: malformed CSV: {exc}") from None
    rows = [(i, r[: max((j + 1 for j, c in enumerate(r) if c), default=0)]) for i, r in rows]
    rows = [(i, r) for i, r in rows if r]
    if not rows:
        raise WorkloadError(f"{path}: empty topology file")
    header_line, header = rows[0]
    head = [h.lower().replace("_", " ") for h in header]
    if gemm is None:
        gemm = len(head) >= 4 and head[1] in ("m", "m dim") and head[2] in ("n", "n dim")
    has_sparsity = any("sparsity" in h for h in head)
    ncols = 4 if gemm else 8
    layers: list[Layer] = []
    for lineno, row in rows[1:]:
        if len(row) < ncols:
            raise WorkloadError(f"{path}:{lineno}: expected {ncols} columns ({', '.join(header[:ncols])}), got {len(row)}")
        lname = row[0] or f"layer{len(layers)}"
        wsp = DENSE
        if has_sparsity and len(row) > ncols and row[ncols]:
            try:
                pattern = NMPattern.parse(row[ncols])
            except InputError as exc:
                raise WorkloadError(f"{path}:{lineno}: column 'Sparsity': {exc}") from None
            wsp = DENSE if pattern.dense else Sparsity("nm", pattern=pattern, density=pattern.density)
        try:
            if gemm:
                m, n, k = (_row_int(row[j], path, lineno, header[j] if j < len(header) else f"col{j}") for j in (1, 2, 3))
                layers.append(Gemm(lname, m, n, k, weight_sparsity=wsp))
            else:
                vals = [_row_int(row[j], path, lineno, header[j] if j < len(header) else f"col{j}") for j in range(1, 8)]
                layers.append(Conv(lname, *vals[:6], stride_h=vals[6], stride_w=vals[6], weight_sparsity=wsp))
        except WorkloadError as exc:
            msg = str(exc)
            raise WorkloadError(msg if msg.startswith(str(path)) else f"{path}:{lineno}: {msg}") from None
    if not layers:
        raise WorkloadError(f"{path}: no layers after the header on line {header_line}")
    names = [layer.name for layer in layers]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        layers = [replace(layer, name=f"{layer.name}#{i}") if layer.name in dup else layer for i, layer in enumerate(layers)]
    return Network.chain(name or path.stem, layers)


def as_network(workload, **params) -> Network:
    """Normalise a workload spec: a Network, a layer, a list of layers, a built-in name or a CSV path."""
    from accelsim.model import networks
    if isinstance(workload, Network):
        return workload
    if isinstance(workload, (Gemm, Conv, KronMatmul)):
        return Network.chain(workload.name, [workload])
    if isinstance(workload, nx.DiGraph):
        return Network(workload.graph.get("name", "graph"), workload)
    if isinstance(workload, (list, tuple)):
        return Network.chain("layers", list(workload))
    spec = str(workload)
    if spec in networks.BUILTIN:
        return networks.build(spec, **params)
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml"):
        return networks.from_yaml(path)
    if path.suffix.lower() == ".csv" or path.exists():
        return read_topology_csv(path)
    raise WorkloadError(
        f"workload {spec!r}: not a built-in network ({', '.join(sorted(networks.BUILTIN))}) nor a .csv/.yaml file"
    )
