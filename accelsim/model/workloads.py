"""Workload input, in one place: built-in networks (from their published layer shapes), SCALE-Sim
topology CSV, workload YAML (read with the arch configs' YAML loader), ONNX models (:mod:`accelsim.model.onnx_in`),
and :func:`as_network`."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from pathlib import Path

import networkx as nx

from accelsim.checks import MAX_BLOCKS, check_dim, check_layer_count, read_text
from accelsim.errors import WorkloadError
from accelsim.model.arch import read_yaml
from accelsim.model.workload import DENSE, Conv, Gemm, KronMatmul, Layer, Network, Sparsity
from kernels.errors import InputError
from kernels.nm.format import NMPattern

__all__ = [
    "BUILTIN",
    "as_network",
    "bert_base",
    "build",
    "from_yaml",
    "llama_8b_prefill",
    "minilm",
    "read_topology_csv",
    "resnet50",
]


def _conv(name: str, out_hw: int, r: int, c: int, k: int, stride: int = 1) -> Conv:
    """A conv given its *output* size; the ifmap is the padded input SCALE-Sim expects (it never pads)."""
    size = (out_hw - 1) * stride + r
    return Conv(name, size, size, r, r, c, k, stride, stride)


def resnet50(batch: int = 1) -> Network:
    """ResNet-50 v1.5 (He et al. 2016; stride on the 3×3 as in torchvision) at 224×224: 53 convs + FC.

    Pooling and element-wise layers carry no MACs and are left out, as in SCALE-Sim's topologies.
    """
    layers = [_conv("conv1", 112, 7, 3, 64, 2)]
    in_ch = 64
    for stage, (blocks, width, out_hw) in enumerate([(3, 64, 56), (4, 128, 28), (6, 256, 14), (3, 512, 7)], start=2):
        for b in range(blocks):
            s = 2 if (b == 0 and stage > 2) else 1
            pre = f"conv{stage}_{b + 1}"
            layers.append(_conv(f"{pre}_a", out_hw * s, 1, in_ch, width))
            layers.append(_conv(f"{pre}_b", out_hw, 3, width, width, s))
            layers.append(_conv(f"{pre}_c", out_hw, 1, width, width * 4))
            if b == 0:
                layers.append(_conv(f"{pre}_proj", out_hw, 1, in_ch, width * 4, s))
            in_ch = width * 4
    if batch > 1:
        layers = [Conv(**{**l.__dict__, "batch": batch}) for l in layers]
    layers.append(Gemm("fc", batch, 1000, 2048))
    return Network.chain("resnet50" if batch == 1 else f"resnet50_b{batch}", layers)


def _encoder_layer(pre: str, seq: int, hidden: int, heads: int, kv_heads: int | None = None,
                   batch: int = 1) -> list[Gemm]:
    """One transformer block's attention GEMMs for ``batch`` sequences: the projections see all
    batch·seq tokens; the attention-score GEMMs (two activations, no static weight) run per sequence
    and head."""
    hd = hidden // heads
    kv = (kv_heads or heads) * hd
    tokens = batch * seq
    return [
        Gemm(f"{pre}.q", tokens, hidden, hidden),
        Gemm(f"{pre}.k", tokens, kv, hidden),
        Gemm(f"{pre}.v", tokens, kv, hidden),
        Gemm(f"{pre}.qk", seq, seq, hd, count=heads * batch, static_weight=False),
        Gemm(f"{pre}.av", seq, hd, seq, count=heads * batch, static_weight=False),
        Gemm(f"{pre}.o", tokens, hidden, hidden),
    ]


def _suffix(seq_len: int, batch: int) -> str:
    return f"_s{seq_len}" + (f"_b{batch}" if batch > 1 else "")


def bert_base(seq_len: int = 128, layers: int = 12, batch: int = 1) -> Network:
    """BERT-base encoder (Devlin et al. 2019): hidden 768, 12 heads, FFN 3072, 12 layers."""
    out = []
    t = batch * seq_len
    for i in range(layers):
        out += _encoder_layer(f"l{i}", seq_len, 768, 12, batch=batch)
        out += [Gemm(f"l{i}.ffn1", t, 3072, 768), Gemm(f"l{i}.ffn2", t, 768, 3072)]
    return Network.chain("bert_base" + _suffix(seq_len, batch), out)


def llama_8b_prefill(seq_len: int = 2048, layers: int = 32) -> Network:
    """Llama-3-8B prefill GEMMs (Meta 2024): hidden 4096, 32 heads, 8 KV heads, SwiGLU FFN 14336,
    vocabulary 128256; the LM head runs on the last token only."""
    out = []
    for i in range(layers):
        out += _encoder_layer(f"l{i}", seq_len, 4096, 32, kv_heads=8)
        out += [
            Gemm(f"l{i}.gate", seq_len, 14336, 4096),
            Gemm(f"l{i}.up", seq_len, 14336, 4096),
            Gemm(f"l{i}.down", seq_len, 4096, 14336),
        ]
    out.append(Gemm("lm_head", 1, 128256, 4096))
    return Network.chain(f"llama_8b_prefill_s{seq_len}", out)


def minilm(seq_len: int = 128, layers: int = 6, hidden: int = 384, heads: int = 12,
           intermediate: int = 1536, batch: int = 1) -> Network:
    """all-MiniLM-L6-v2's GEMMs for ``batch`` sequences of ``seq_len`` tokens, in execution order.

    Linear layers carry the checkpoint names (``encoder.layer.0.attention.self.query``, as
    :attr:`MiniLM.linear_names`) so real weights map onto them; the attention-score GEMMs
    (``….attention.qk``/``….attention.av``) multiply two activations (``static_weight=False``)
    and run per sequence and head.
    """
    for name, v in (("seq_len", seq_len), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise WorkloadError(f"minilm workload: {name} must be a positive integer, got {v!r}")
    hd = hidden // heads
    t = batch * seq_len
    out = []
    for i in range(layers):
        p = f"encoder.layer.{i}."
        out += [Gemm(p + f"attention.self.{n}", t, hidden, hidden) for n in ("query", "key", "value")]
        out += [
            Gemm(p + "attention.qk", seq_len, seq_len, hd, count=heads * batch, static_weight=False),
            Gemm(p + "attention.av", seq_len, hd, seq_len, count=heads * batch, static_weight=False),
            Gemm(p + "attention.output.dense", t, hidden, hidden),
            Gemm(p + "intermediate.dense", t, intermediate, hidden),
            Gemm(p + "output.dense", t, hidden, intermediate),
        ]
    return Network.chain("minilm" + _suffix(seq_len, batch), out)


BUILTIN = {"resnet50": resnet50, "bert_base": bert_base, "llama_8b_prefill": llama_8b_prefill, "minilm": minilm}


def build(name: str, **params) -> Network:
    """The built-in network ``name`` with ``params`` (each a positive integer, as in ``--param seq_len=512``)."""
    import inspect

    if name not in BUILTIN:
        raise WorkloadError(f"workload {name!r}: unknown built-in (choose from {', '.join(sorted(BUILTIN))})")
    fn = BUILTIN[name]
    known = inspect.signature(fn).parameters
    for key, value in params.items():
        if key not in known:
            raise WorkloadError(f"--param {key}: {name} has no parameter {key!r} (it takes {', '.join(known)})")
        check_dim(key, value, f"workload {name!r} --param", *((MAX_BLOCKS, "MAX_BLOCKS") if key == "layers" else ()))
    full = {k: p.default for k, p in known.items()} | params
    if "heads" in full and full["hidden"] % full["heads"]:
        raise WorkloadError(f"--param heads={full['heads']} for {name}: hidden size {full['hidden']} is not "
                            f"divisible by {full['heads']} heads")
    return fn(**params)


_TYPES = {"gemm": Gemm, "conv": Conv, "kron": KronMatmul}


def from_yaml(path: str | Path) -> Network:
    """Read ``workload: {name, layers: [{type: gemm|conv|kron, name, ...}], edges: [[a, b], ...]}``.

    Without ``edges`` the layers form a chain in file order. Every error names the file and the
    ``workload.…`` path of the bad entry.
    """
    path = Path(path)
    doc = read_yaml(path, "workload YAML", WorkloadError)
    if not isinstance(doc, dict) or not isinstance(doc.get("workload"), dict):
        raise WorkloadError(f"{path}: expected a top-level 'workload:' mapping")
    wl = doc["workload"]
    unknown = set(wl) - {"name", "layers", "edges"}
    if unknown:
        raise WorkloadError(f"{path}: unknown key workload.{sorted(map(str, unknown))[0]!r}")
    name = wl.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise WorkloadError(f"{path}: workload.name must be a non-empty string, got {name!r}")
    specs = wl.get("layers") or []
    if not isinstance(specs, list):
        raise WorkloadError(f"{path}: workload.layers must be a list of layer mappings, got {type(specs).__name__}")
    check_layer_count(name, len(specs))
    layers = [_layer(path, i, spec) for i, spec in enumerate(specs)]
    if not layers:
        raise WorkloadError(f"{path}: workload.layers is empty")
    try:
        net = Network.chain(name, layers)
    except WorkloadError as exc:
        raise WorkloadError(f"{path}: {exc}") from None
    if "edges" in wl:
        edges = wl["edges"]
        if not isinstance(edges, list):
            raise WorkloadError(f"{path}: workload.edges must be a list of [from, to] pairs, got {edges!r}")
        g = nx.DiGraph()
        g.add_nodes_from(net.graph.nodes(data=True))
        for j, edge in enumerate(edges):
            if not isinstance(edge, list) or len(edge) != 2 or not all(isinstance(x, str) for x in edge):
                raise WorkloadError(f"{path}: workload.edges.{j}: expected a [from, to] pair of layer names, got {edge!r}")
            a, b = edge
            if a not in g or b not in g:
                raise WorkloadError(f"{path}: workload.edges: unknown layer in edge [{a}, {b}]")
            g.add_edge(a, b)
        if not nx.is_directed_acyclic_graph(g):
            raise WorkloadError(f"{path}: workload.edges: the graph has a cycle")
        net = Network(net.name, g)
    return net


def _layer(path: Path, i: int, spec):
    """``workload.layers.i`` as a layer; its checks run in the layer's constructor."""
    where = f"{path}: workload.layers.{i}"
    if not isinstance(spec, dict):
        raise WorkloadError(f"{where}: expected a mapping such as {{type: gemm, m: 64, n: 64, k: 64}}, got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("type", "gemm")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise WorkloadError(f"{where}.type: unknown {kind!r} (gemm, conv or kron)")
    bad = [k for k in spec if not isinstance(k, str)]
    if bad:
        raise WorkloadError(f"{where}: keys must be field names, got {bad[0]!r}")
    spec.setdefault("name", f"layer{i}")
    try:
        for key in ("weight_sparsity", "input_sparsity"):
            if key in spec:
                spec[key] = Sparsity.parse(spec[key])
        return _TYPES[kind](**spec)
    except TypeError as exc:
        raise WorkloadError(f"{where}: {str(exc).split('.', 1)[-1].removeprefix('__init__() ')}") from None
    except WorkloadError as exc:
        raise WorkloadError(f"{where}: {exc}") from None


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
    check_layer_count(name or path.stem, len(rows) - 1)  # before building them, one by one
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
    dup = {n for n, c in Counter(names).items() if c > 1}
    if dup:
        layers = [replace(layer, name=f"{layer.name}#{i}") if layer.name in dup else layer for i, layer in enumerate(layers)]
    return Network.chain(name or path.stem, layers)


def as_network(workload, *, weight_sparsity: str | Sparsity | None = None, **params) -> Network:
    """Normalise a workload spec: a Network, a layer, a list of layers, a built-in name or a CSV/YAML/ONNX
    path (``params`` size a built-in network or an ONNX model's symbolic dimensions).

    ``weight_sparsity`` (``2:4``, ``u0.3``, ``tasd:2:4+1:4``, a :class:`Sparsity`) replaces the sparsity
    of every static weight (attention-score GEMMs have none) and appends `` (weights SPEC)`` to the
    name, so a dense built-in network can show what a sparse architecture gains.
    """
    net = _as_network(workload, **params)
    if weight_sparsity is None:
        return net
    sp = weight_sparsity if isinstance(weight_sparsity, Sparsity) else Sparsity.parse(weight_sparsity)
    return Network(f"{net.name} (weights {sp})", net.with_sparsity(weight=sp).graph)


def _as_network(workload, **params) -> Network:
    if isinstance(workload, Network):
        return workload
    if isinstance(workload, (Gemm, Conv, KronMatmul)):
        return Network.chain(workload.name, [workload])
    if isinstance(workload, nx.DiGraph):
        return Network(workload.graph.get("name", "graph"), workload)
    if isinstance(workload, (list, tuple)):
        return Network.chain("layers", list(workload))
    spec = str(workload)
    if spec in BUILTIN:
        return build(spec, **params)
    path = Path(spec)
    if path.suffix.lower() == ".onnx":
        from accelsim.model.onnx_in import read_onnx  # onnx is an optional extra, imported on use

        return read_onnx(path, **params)
    if params and (path.suffix.lower() in (".yaml", ".yml", ".csv") or path.exists()):
        raise WorkloadError(f"--param {next(iter(params))}: only built-in networks take parameters; "
                            f"{spec} is a file whose layers are fixed")
    if path.suffix.lower() in (".yaml", ".yml"):
        return from_yaml(path)
    if path.suffix.lower() == ".csv" or path.exists():
        return read_topology_csv(path)
    raise WorkloadError(
        f"workload {spec!r}: not a built-in network ({', '.join(sorted(BUILTIN))}) nor a .csv/.yaml/.onnx file"
    )
