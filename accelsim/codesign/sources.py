"""Where TASDER's error estimates come from: real or synthetic weights, real or synthetic activations.

TASDER prices a choice with the simulator and judges it by the relative Frobenius error of the
approximated operand. This module supplies those operands:

- **MiniLM** (all-MiniLM-L6-v2): :func:`accelsim.model.workloads.minilm` gives its GEMMs (36 Linears with their
  real shapes plus the attention-score GEMMs), :func:`capture_activations` records every
  Linear's real input rows from a forward pass on the shipped sentences (padding rows dropped).
- **Synthetic** (built-in CNN and transformer shapes without weights): :func:`synthetic_weight`
  draws Laplace(0, 1) values — trained weights are heavy-tailed, closer to Laplace than Gauss —
  then magnitude-prunes them unstructured to the network's sparsity; :func:`synthetic_activation`
  draws ReLU'd standard Gaussians for CNN layers (Gaussian for the first conv, a normalised
  image), Gaussians for transformer GEMMs fed by LayerNorm and GELU'd Gaussians for the FFN's
  second GEMM. Both are seeded from the layer name, so every run sees the same samples.

Samples are at most :data:`SAMPLE_ROWS` rows × K (the reduction length): TASD's error on i.i.d.
values depends on the distribution and on K's grouping, not on how many rows are drawn.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from accelsim.codesign.magnitude import magnitude_prune
from accelsim.model.workload import Conv, Gemm, Network
from accelsim.codesign.tensors import check_weights, load_safetensors
from kernels.errors import InputError

__all__ = [
    "SAMPLE_ROWS",
    "SEED",
    "activation_kind",
    "capture_activations",
    "load_weight_file",
    "synthetic_activation",
    "synthetic_weight",
]

SAMPLE_ROWS = 256
SEED = 20250307


def _rng(name: str, salt: str) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(f"{salt}:{name}".encode())])


def _gemm(layer) -> Gemm:
    return layer.as_gemm() if isinstance(layer, Conv) else layer


def synthetic_weight(layer, prune: float = 0.0, rows: int | None = None) -> np.ndarray:
    """A ``(min(N, SAMPLE_ROWS), K)`` Laplace(0, 1) weight sample, magnitude-pruned by ``prune``.

    ``rows`` draws that many rows instead (``N`` for the whole weight); the first rows are the sample's.
    """
    g = _gemm(layer)
    rows = min(g.n, SAMPLE_ROWS) if rows is None else rows
    w = _rng(layer.name, "weight").laplace(0.0, 1.0, size=(rows, g.k)).astype(np.float32)
    return magnitude_prune(w, prune) if prune else w


def activation_kind(layer, network: Network) -> str:
    """``relu``, ``gauss`` or ``gelu``: which synthetic distribution feeds ``layer`` (see module doc)."""
    layers = network.layers
    if any(isinstance(l, Conv) for l in layers):
        return "gauss" if layers and layers[0].name == layer.name else "relu"
    name = layer.name
    if name.endswith(("ffn2", ".down")) or (name.endswith("output.dense") and "attention" not in name):
        return "gelu"
    return "gauss"


def synthetic_activation(layer, kind: str, rows: int | None = None) -> np.ndarray:
    """A ``(SAMPLE_ROWS, K)`` activation sample of the given :func:`activation_kind` (``rows`` rows if given)."""
    x = _rng(layer.name, "act").standard_normal((rows or SAMPLE_ROWS, _gemm(layer).k))
    if kind == "relu":
        x = np.maximum(x, 0.0)
    elif kind == "gelu":
        x = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    elif kind != "gauss":
        raise InputError(f"synthetic activation kind {kind!r}: use relu, gauss or gelu")
    return x.astype(np.float32, copy=False)


def capture_activations(model, sentences: Sequence[str], weights: Mapping[str, np.ndarray] | None = None,
                        batch_size: int = 64, keep_padding: bool = False) -> dict[str, np.ndarray]:
    """Each Linear's real input rows ``(tokens, in)`` from ``model`` on ``sentences``, padding excluded.

    Runs the unmodified forward pass (``weights`` replace Linears, e.g. a pruned base) and
    records inputs through the activation hook; padding rows are dropped with the tokenizer's
    attention mask, so the sample is exactly what real tokens feed each layer. ``keep_padding``
    keeps them: every row a padded batch multiplies (what a network run executes).
    """
    rows: dict[str, list[np.ndarray]] = {n: [] for n in model.linear_names}
    for i in range(0, len(sentences), batch_size):
        batch = list(sentences[i : i + batch_size])
        keep = model.tokenize(batch)[1].reshape(-1).astype(bool) | keep_padding

        def hook(name, x, keep=keep):
            rows[name].append(np.array(x[keep], dtype=np.float32))
            return x

        model.encode(batch, weights=weights, act=hook, batch_size=len(batch))
    return {n: np.concatenate(r, axis=0) for n, r in rows.items() if r}


def load_weight_file(path: str | Path, network: Network) -> dict[str, np.ndarray]:
    """Weights for ``network``'s layers from a .safetensors file (tensor ``name`` or ``name.weight``) or
    from the .onnx model the network was read from (:func:`accelsim.model.onnx_in.read_weights`).

    A tensor is laid out ``(out, in, …)`` as PyTorch stores it and flattened to ``(rows, K)``: ``N``
    rows, or ``count·N`` for a layer run as ``count`` copies with their own weights (a grouped conv).
    Layers without a tensor keep synthetic weights.

    Raises
    ------
    InputError
        Unreadable file, a size mismatch, or no tensor matching any layer name.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--weights: no such file {str(path)!r} (give a .safetensors or .onnx file or 'minilm')")
    if path.suffix.lower() == ".onnx":
        from accelsim.model.onnx_in import read_weights  # the optional onnx extra

        tensors = read_weights(path, network)
    elif path.suffix.lower() == ".safetensors":
        tensors = load_safetensors(path, "--weights")
    else:
        raise InputError(f"--weights {str(path)!r}: expected a .safetensors or .onnx file or 'minilm'")
    out = {}
    for layer in network.layers:
        if not isinstance(layer, (Gemm, Conv)):
            continue
        t = tensors.get(layer.name, tensors.get(layer.name + ".weight"))
        if t is None:
            continue
        g = _gemm(layer)
        if t.ndim < 2 or t.shape[0] not in (g.n, g.n * g.count) or math.prod(t.shape[1:]) != g.k:
            raise InputError(
                f"--weights: tensor for layer {layer.name!r} has shape {t.shape}; expected ({g.n}, {g.k}) "
                f"(out, in) or (out, in, kh, kw) with in*kh*kw = {g.k}"
                + (f", or {g.count * g.n} rows for its {g.count} copies" if g.count > 1 else "")
            )
        check_weights(t, path, f"--weights tensor {layer.name!r}")
        out[layer.name] = np.asarray(t, dtype=np.float32).reshape(t.shape[0], g.k)
    if not out:
        raise InputError(f"--weights {str(path)!r}: no tensor named after a layer of {network.name!r} (e.g. {network.layers[0].name!r})")
    return out
