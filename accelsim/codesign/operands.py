"""Full-size operands of a network run, layer by layer: real MiniLM tensors or seeded synthetic ones.

``accelsim run`` multiplies what each layer really multiplies. For MiniLM that is its real
weights and the inputs its forward pass feeds each Linear on the shipped sentences, padded to
``seq_len`` tokens as a batched run pads them (:func:`minilm_operands`); the attention-score GEMMs
get the real per-head Q·Kᵀ and softmax·V operands. Built-in networks get the seeded synthetic
weights and activations of :mod:`accelsim.codesign.sources` at full size (a conv as its im2col
GEMM). A layer's operands are either a static GEMM ``x (M, K)``, ``w (N, K)`` or, for a GEMM of two
activations, batched ``a (count, m, k)``, ``b (count, k, n)``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from accelsim.codesign.sources import SEED, activation_kind, capture_activations, synthetic_activation, synthetic_weight
from accelsim.model.workload import Conv, Gemm, Network
from kernels.errors import InputError

__all__ = ["Operands", "minilm_operands", "network_operands"]


@dataclass(frozen=True)
class Operands:
    """``x``/``w`` for a static-weight GEMM (``y = x @ w.T``), or ``a``/``b`` batched (``y = a @ b``)."""

    x: np.ndarray | None = None
    w: np.ndarray | None = None
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    source: str = "synthetic"

    @property
    def static(self) -> bool:
        return self.w is not None


def _check_shape(name: str, what: str, arr: np.ndarray, want: tuple) -> None:
    if tuple(arr.shape) != tuple(want):
        raise InputError(f"layer {name!r}: {what} has shape {tuple(arr.shape)}, the network needs {tuple(want)}")


def _synthetic(layer, network: Network, prune: float) -> Operands:
    g = layer.as_gemm()
    if not getattr(layer, "static_weight", True):
        rng = np.random.default_rng([SEED, zlib.crc32(f"pair:{layer.name}".encode())])
        a = rng.standard_normal((g.count, g.m, g.k), dtype=np.float32)
        b = rng.standard_normal((g.count, g.k, g.n), dtype=np.float32)
        return Operands(a=a, b=b)
    rows = g.m * getattr(g, "count", 1)
    return Operands(x=synthetic_activation(layer, activation_kind(layer, network), rows=rows),
                    w=synthetic_weight(layer, prune, rows=g.n))


def network_operands(network: Network, layers: Sequence, weights: Mapping[str, np.ndarray] | None = None,
                     real: Mapping[str, Operands] | None = None, prune: float = 0.0) -> dict[str, Operands]:
    """Operands of ``layers`` (of ``network``): ``real`` ones where given, else synthetic with ``weights``.

    ``prune`` magnitude-prunes the synthetic weights (as ``tasd search --prune`` assumes them).

    Raises
    ------
    InputError
        A weight (or real operand) whose shape is not the layer's.
    """
    out = {}
    for layer in layers:
        if not isinstance(layer, (Gemm, Conv)):
            raise InputError(f"layer {layer.name!r} ({type(layer).__name__}) is not a GEMM or conv; `accelsim run` "
                             f"runs GEMM networks")
        g = layer.as_gemm()
        ops = (real or {}).get(layer.name) or _synthetic(layer, network, prune)
        if layer.name in (weights or {}):
            ops = Operands(x=ops.x, w=np.asarray(weights[layer.name], dtype=np.float32), source="weights")
        if ops.static:
            _check_shape(layer.name, "weight", ops.w, (g.n, g.k))
            _check_shape(layer.name, "input", ops.x, (g.m * g.count, g.k))
        else:
            _check_shape(layer.name, "first operand", ops.a, (g.count, g.m, g.k))
            _check_shape(layer.name, "second operand", ops.b, (g.count, g.k, g.n))
        out[layer.name] = ops
    return out


def _padded(model, seq_len: int):
    """``model`` with its tokenizer padding (and truncating) every sentence to ``seq_len`` tokens."""
    from tokenizers import Tokenizer

    from accelsim.codesign.minilm import MiniLM

    tok = Tokenizer.from_str(model.tokenizer.to_str())
    tok.enable_truncation(max_length=seq_len)
    tok.enable_padding(pad_id=0, pad_token="[PAD]", pad_type_id=0, length=seq_len)
    return MiniLM(model.weights, tok, model.config)


def minilm_operands(model, sentences: Sequence[str], seq_len: int, names: Sequence[str] | None = None) -> dict[str, Operands]:
    """Real operands of MiniLM's GEMMs (names as :func:`accelsim.model.workloads.minilm`) on ``sentences``.

    Every sentence is padded or truncated to ``seq_len`` tokens; all ``len(sentences) · seq_len`` rows
    run, as in a padded batch. Q, K, V and the attention probabilities (padded keys masked) are
    recomputed from the captured Linear inputs with the model's weights. ``names`` limits the
    result (the attention operands of a block need its ``query`` input, captured anyway).
    """
    if seq_len > model.config.max_seq_len:
        raise InputError(f"minilm: seq_len {seq_len} exceeds the model's {model.config.max_seq_len} positions")
    from accelsim.codesign.minilm import _softmax

    padded = _padded(model, seq_len)
    inputs = capture_activations(padded, list(sentences), batch_size=len(sentences), keep_padding=True)
    mask = padded.tokenize(list(sentences))[1].astype(bool)  # (batch, seq)
    w = model.weights
    cfg = model.config
    hd = cfg.hidden // cfg.heads
    batch = len(sentences)
    wanted = set(names) if names is not None else None
    out: dict[str, Operands] = {}
    for name, x in inputs.items():
        if wanted is None or name in wanted:
            out[name] = Operands(x=x, w=w[name + ".weight"], source="minilm")
    for i in range(cfg.layers):
        p = f"encoder.layer.{i}."
        if wanted is not None and not {p + "attention.qk", p + "attention.av"} & wanted:
            continue
        x = inputs[p + "attention.self.query"]

        def heads(kind, x=x, p=p):
            y = x @ w[f"{p}attention.self.{kind}.weight"].T + w[f"{p}attention.self.{kind}.bias"]
            return y.reshape(batch, seq_len, cfg.heads, hd).transpose(0, 2, 1, 3).reshape(batch * cfg.heads, seq_len, hd)

        q, k, v = heads("query"), heads("key"), heads("value")
        keep = np.repeat(mask, cfg.heads, axis=0)[:, None, :]
        scores = np.where(keep, q @ k.transpose(0, 2, 1) / np.float32(math.sqrt(hd)), -np.inf)
        probs = _softmax(scores).astype(np.float32)
        out[p + "attention.qk"] = Operands(a=np.ascontiguousarray(q), b=np.ascontiguousarray(k.transpose(0, 2, 1)),
                                           source="minilm")
        out[p + "attention.av"] = Operands(a=probs, b=np.ascontiguousarray(v), source="minilm")
    return {n: o for n, o in out.items() if wanted is None or n in wanted}
