"""ONNX models in: a graph read with the ``onnx`` package (the ``[onnx]`` extra), shapes inferred, its
Conv/Gemm/MatMul nodes as layers named after the model's nodes, every other op counted.

The quantized forms (QLinearConv, ConvInteger, QLinearMatMul, MatMulInteger) lower as their float ops, in
int8. Nodes inside control flow (If, Loop, Scan bodies) are not expanded: the op itself is counted.

Lowering (exact in MACs, as ZigZag's parser counts them):

- **Conv** (1-D, 2-D) → :class:`Conv` with ``count`` = groups, ``channels`` = C/groups, ``num_filters``
  = K/groups, ``batch`` = N: the GEMM M = N·E·F, N = K/g, K = C/g·R·S run g times (depthwise: g = C).
  The ifmap is the padded input the output reads, ``(E − 1)·stride + R`` per axis, so SCALE-Sim's
  rounding gives the framework's E. Dilation keeps the GEMM (im2col gathers R·S taps, spaced or not):
  the layer's ifmap is then that of the undilated conv with the same GEMM, and the true geometry
  (pads, strides, dilations, group, shapes) stays on the graph node under ``onnx``. 3-D convs → :class:`Gemm`.
- **Gemm** → :class:`Gemm` (``transA``/``transB`` honoured; bias and alpha/beta cost no MACs here).
- **MatMul** → :class:`Gemm`: a 2-D constant right operand shared by all rows folds the batch dimensions
  into M; otherwise (attention's Q·Kᵀ, A·V) ``count`` = the product of the output's batch dimensions and
  ``static_weight`` says whether the right operand is a constant.

Every other op (activations, pooling, Add, Reshape, Constant, …) moves data or none and is counted
per op type in ``network.graph.graph["not_modelled"]``, which :func:`accelsim.simulate` reports.
Weights are optional: a shape-only file (initializers with dims, no data) or one whose external data
is missing loads; :func:`read_weights` gives the weights where the file has them.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np

from accelsim.checks import check_dim
from accelsim.errors import WorkloadError
from accelsim.model.workload import Conv, Gemm, Network

__all__ = ["MODELLED_OPS", "read_onnx", "read_weights"]


def _onnx():
    try:
        import onnx
    except ImportError:
        raise WorkloadError("reading .onnx models needs the onnx package: pip install 'accelsim[onnx]'") from None
    return onnx


def _load(path: Path):
    """The model proto without external data (shape-only and missing-data files load too)."""
    onnx = _onnx()
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise WorkloadError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise WorkloadError(f"{path}: not an ONNX model ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if model.ir_version <= 0 or not model.graph.node:
        raise WorkloadError(f"{path}: not an ONNX model (no ir_version or no graph nodes)")
    for i, node in enumerate(model.graph.node):  # protobuf hands invalid UTF-8 strings back as bytes
        if not all(isinstance(t, str) for t in (node.op_type, node.name, node.domain, *node.input, *node.output)):
            raise WorkloadError(f"{path}: not an ONNX model (node {i}: a name or op type is not UTF-8 text)")
    return model


def _set_dims(path: Path, model, params: dict) -> None:
    """Give every symbolic dimension named in ``params`` its value; refuse any left symbolic or unknown."""
    inits = {t.name for t in model.graph.initializer}
    symbols: set[str] = set()
    for vi in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for i, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_param"):
                symbols.add(d.dim_param)
                if d.dim_param in params:
                    d.dim_value = params[d.dim_param]
    for key in params:
        if key not in symbols:
            have = ", ".join(sorted(symbols)) or "none: its input shapes are fixed"
            raise WorkloadError(f"{path}: --param {key}: the model has no symbolic dimension {key!r} ({have})")
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        for i, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_param") and d.dim_param not in params:
                raise WorkloadError(f"{path}: input {vi.name!r} dimension {i} is symbolic ({d.dim_param!r}): "
                                    f"give it with --param {d.dim_param}=N")
            if not d.HasField("dim_param") and not d.HasField("dim_value"):
                raise WorkloadError(f"{path}: input {vi.name!r} dimension {i} is unknown (no size and no name to "
                                    f"set with --param)")


def _infer(path: Path, model):
    onnx = _onnx()
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError, ValidationError or RuntimeError here
        msg = " ".join(str(exc).split())
        raise WorkloadError(f"{path}: shape inference failed: {msg[:300]}") from None


class _Shapes:
    """Concrete shapes of the inferred model's tensors; a MAC op whose shapes are not concrete is an error."""

    def __init__(self, path: Path, model):
        self.path = path
        self.shapes: dict[str, tuple] = {t.name: tuple(t.dims) for t in model.graph.initializer}
        for vi in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
            tt = vi.type.tensor_type
            if tt.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)

    def __call__(self, node, name: str, tensor: str) -> tuple[int, ...]:
        s = self.shapes.get(tensor)
        if s is None or any(d is None or d <= 0 for d in s):
            raise WorkloadError(f"{self.path}: node {name!r} ({node.op_type}): shape of {tensor!r} unknown after shape "
                                f"inference ({'no shape' if s is None else list(s)})")
        return s


def _attr(node, key: str, default):
    for a in node.attribute:
        if a.name == key:
            return list(a.ints) if a.ints else a.i
    return default


def _conv(node, name: str, shape, const: set, xi: str, wi: str, dtype: str | None):
    x, w, y = shape(node, name, xi), shape(node, name, wi), shape(node, name, node.output[0])
    g = _attr(node, "group", 1)
    if len(x) != len(w) or x[1] != w[1] * g or w[0] % g:
        raise WorkloadError(f"input {list(x)} and weight {list(w)} do not fit a Conv with group={g} "
                            f"(channels = weight.shape[1]·group, filters a multiple of group)")
    spatial = len(w) - 2
    kernel = list(w[2:])
    strides = _attr(node, "strides", [1] * spatial)
    batch, k_out, out = y[0], y[1], list(y[2:])
    geo = {"group": g, "kernel": kernel, "strides": strides, "dilations": _attr(node, "dilations", [1] * spatial),
           "pads": _attr(node, "pads", [0] * 2 * spatial), "input": list(x), "output": list(y)}
    if spatial > 2:
        return Gemm(name, batch * math.prod(out), k_out // g, w[1] * math.prod(kernel), dtype, count=g), wi, False, geo
    if spatial == 1:
        kernel, strides, out = [1, *kernel], [1, *strides], [1, *out]
    ifmap = [(e - 1) * s + r for e, s, r in zip(out, strides, kernel)]
    layer = Conv(name, ifmap[0], ifmap[1], kernel[0], kernel[1], w[1], k_out // g, strides[0], strides[1], dtype,
                 count=g, batch=batch)
    return layer, wi, False, geo


def _gemm(node, name: str, shape, const: set, ai: str, bi: str, dtype: str | None):
    a, b = shape(node, name, ai), shape(node, name, bi)
    if _attr(node, "transA", 0):
        a = a[::-1]
    tb = bool(_attr(node, "transB", 0))
    k, n = b[::-1] if tb else b
    if a[1] != k:
        raise WorkloadError(f"Gemm operands {list(a)} and {[k, n]} (after transA/transB) do not multiply")
    if bi not in const and ai in const:  # C = W·X: Cᵀ = Xᵀ·Wᵀ, W the weight
        return Gemm(name, n, a[0], a[1], dtype), ai, bool(_attr(node, "transA", 0)), {"swapped": True}
    return Gemm(name, a[0], n, a[1], dtype, static_weight=bi in const), bi, not tb, {}


def _matmul(node, name: str, shape, const: set, ai: str, bi: str, dtype: str | None):
    a, b = shape(node, name, ai), shape(node, name, bi)
    m, k = (1, a[0]) if len(a) == 1 else a[-2:]
    n = 1 if len(b) == 1 else b[-1]
    batch = math.prod(np.broadcast_shapes(a[:-2], b[:-2]))
    if math.prod(b[:-2]) == 1 and bi in const:  # one weight shared by every row: rows fold into M
        return Gemm(name, batch * m, n, k, dtype), bi, True, {}
    if math.prod(a[:-2]) == 1 and ai in const:  # W·X per batch: the weight is A, (out, in) already
        return Gemm(name, batch * n, m, k, dtype), ai, False, {"swapped": True}
    return Gemm(name, m, n, k, dtype, count=batch, static_weight=bi in const), bi, True, {}


# op type → (lowering, index of the input operand, index of the weight operand, dtype); float ops run in the
# arch's default dtype, the quantized forms in int8
_LOWER = {
    "Conv": (_conv, 0, 1, None), "ConvInteger": (_conv, 0, 1, "int8"), "QLinearConv": (_conv, 0, 3, "int8"),
    "Gemm": (_gemm, 0, 1, None),
    "MatMul": (_matmul, 0, 1, None), "MatMulInteger": (_matmul, 0, 1, "int8"), "QLinearMatMul": (_matmul, 0, 3, "int8"),
}
MODELLED_OPS = tuple(_LOWER)


def _constants(model) -> set[str]:
    """Tensors fixed before the model runs: initializers, Constant outputs, and what ops on them alone make."""
    const = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" or (node.input and all(i in const or not i for i in node.input)
                                          and node.op_type not in MODELLED_OPS):
            const.update(node.output)
    return const


def read_onnx(path: str | Path, **params) -> Network:
    """The Conv/Gemm/MatMul layers of the ONNX model at ``path`` as a :class:`Network`.

    ``params`` set the model's symbolic dimensions (``batch=4``, ``seq_len=128``: the ``dim_param``
    names). Nodes keep their ONNX names (``/layer1/layer1.0/conv1/Conv``); an edge joins two layers when
    data flows from one to the other through ops that are not layers. Each node carries ``onnx``:
    the op type, weight tensor and (for convs) the true geometry.

    Raises
    ------
    WorkloadError
        Not an ONNX file, a symbolic dimension without a ``--param``, a layer whose shapes inference
        cannot make concrete, or the ``onnx`` extra missing.
    """
    path = Path(path)
    for key, value in params.items():
        check_dim(key, value, f"{path}: --param")
    model = _load(path)
    _set_dims(path, model, params)
    model = _infer(path, model)
    shape = _Shapes(path, model)
    const = _constants(model)
    feeds: dict[str, set[str]] = {}  # tensor → the layers whose outputs reach it through non-layer ops
    g = nx.DiGraph(name=path.stem)
    skipped: Counter = Counter()
    seen: Counter = Counter()
    for i, node in enumerate(model.graph.node):
        srcs = set().union(*(feeds.get(t, set()) for t in node.input))
        if node.op_type not in _LOWER or node.domain not in ("", "ai.onnx"):
            skipped[node.op_type] += 1
            for t in node.output:
                feeds[t] = srcs
            continue
        name = node.name or node.output[0] or f"{node.op_type}_{i}"
        seen[name] += 1
        if seen[name] > 1:
            name = f"{name}#{i}"
        try:
            lower, xi, wi, dtype = _LOWER[node.op_type]
            layer, weight, transpose, geo = lower(node, name, shape, const, node.input[xi], node.input[wi], dtype)
        except WorkloadError as exc:
            msg = str(exc)
            raise WorkloadError(msg if msg.startswith(str(path)) else f"{path}: node {name!r}: {msg}") from None
        g.add_node(name, layer=layer, onnx={"op_type": node.op_type, "weight": weight if weight in const else None,
                                            "weight_transposed": transpose, **geo})
        g.add_edges_from((s, name) for s in srcs)
        for t in node.output:
            feeds[t] = {name}
    if not g:
        raise WorkloadError(f"{path}: no Conv, Gemm or MatMul node (or quantized form) to simulate (ops: "
                            f"{', '.join(f'{k} {v}' for k, v in skipped.most_common()) or 'none'})")
    g.graph["not_modelled"] = dict(sorted(skipped.items()))
    g.graph["source"] = str(path)
    return Network(path.stem, g)


def _tensors(path: Path, model, wanted: set[str]) -> dict[str, np.ndarray]:
    """Initializer and Constant values named in ``wanted`` that the file holds (external data if present)."""
    onnx = _onnx()
    from onnx import numpy_helper

    protos = {t.name: t for t in model.graph.initializer if t.name in wanted}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] in wanted:
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    protos[node.output[0]] = a.t
    out = {}
    for name, t in protos.items():
        try:
            arr = numpy_helper.to_array(t, base_dir=str(path.parent))
        except (OSError, ValueError, onnx.checker.ValidationError):
            continue  # external data missing: that weight stays synthetic
        if arr.size == math.prod(t.dims) and arr.size:
            out[name] = arr
    return out


def read_weights(path: str | Path, network: Network) -> dict[str, np.ndarray]:
    """Each layer's weight from the ONNX file it was read from, laid out ``(out, in, …)`` as PyTorch's.

    A grouped conv's weight keeps its ``(K, C/g, R, S)`` shape: ``count`` copies of ``K/g`` rows.
    Layers whose weight the file lacks (shape-only, external data missing, an activation operand)
    are left out.

    Raises
    ------
    WorkloadError
        ``network`` was not read from ``path``, or the file holds no weight of any layer.
    """
    path = Path(path)
    source = network.graph.graph.get("source")
    if source is None or Path(source).resolve() != path.resolve():
        raise WorkloadError(f"--weights {path}: fits only --workload {path} (the workload is {network.name!r})")
    model = _load(path)
    info = {n: d["onnx"] for n, d in network.graph.nodes(data=True) if "onnx" in d and d["onnx"]["weight"]}
    arrays = _tensors(path, model, {i["weight"] for i in info.values()})
    out = {}
    for name, i in info.items():
        w = arrays.get(i["weight"])
        if w is None:
            continue
        if w.ndim == 1:
            w = w.reshape(1, -1)
        elif i["weight_transposed"]:
            w = np.swapaxes(w, -1, -2).reshape(-1, w.shape[-2])
        out[name] = w
    if not out:
        raise WorkloadError(f"--weights {path}: the file holds no layer's weights (shape-only, or its external "
                            f"data is missing)")
    return out
