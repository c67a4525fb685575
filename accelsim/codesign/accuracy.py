"""Accuracy side of TASD (the simulator prices EDP): tensor error reports, MiniLM embedding fidelity."""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accelsim.codesign.magnitude import prune_weights, sparsity
from kernels.errors import InputError
from kernels.tasd import format_series, parse_series, tasd_approximate, tasd_decompose, tasd_errors

__all__ = [
    "DEFAULT_ACT_SERIES",
    "DEFAULT_PRUNE",
    "DEFAULT_WEIGHT_SERIES",
    "EvalConfig",
    "ActivationTASD",
    "decompose_report",
    "default_configs",
    "evaluate",
    "load_sentences",
    "markdown_table",
    "mean_cosine",
    "tasd_weights",
]

DEFAULT_WEIGHT_SERIES = ("2:4", "1:4", "4:8", "2:8", "2:4+1:4", "4:8+2:8", "2:4+2:4")
DEFAULT_ACT_SERIES = ("2:4", "4:8", "2:4+1:4", "2:4+2:4")
DEFAULT_PRUNE = (0.5, 0.7, 0.9)

SeriesSpec = str | Sequence | Mapping[str, object] | None


def load_sentences(path: str | Path | None = None) -> list[str]:
    """Non-empty lines of ``path`` (default: the 64 sentences shipped in ``accelsim/data``)."""
    if path is None:
        text = importlib.resources.files("accelsim").joinpath("data/sentences.txt").read_text("utf-8")
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise InputError(f"sentences file {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def decompose_report(a: np.ndarray, series_list: Sequence, axis: int = -1) -> list[dict]:
    """One record per series: its final density, captured non-zeros and relative error, plus per-term records."""
    out = []
    for series in series_list:
        terms = tasd_decompose(a, series, axis)
        per_term = tasd_errors(a, terms)
        last = per_term[-1]
        out.append(
            {
                "series": format_series(series),
                "density": last["density"],
                "nnz_fraction": last["nnz_fraction"],
                "rel_error": last["rel_error"],
                "terms": per_term,
            }
        )
    return out


def _per_layer(spec: SeriesSpec, names: Sequence[str]) -> dict[str, tuple | None]:
    """A series for every layer: one for all, or a mapping (missing layers stay dense)."""
    if spec is None:
        return dict.fromkeys(names)
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise InputError(f"TASD per-layer series: unknown layer {unknown[0]!r}")
        return {n: parse_series(spec[n]) if spec.get(n) is not None else None for n in names}
    pats = parse_series(spec)
    return dict.fromkeys(names, pats)


def tasd_weights(weights: Mapping[str, np.ndarray], series: SeriesSpec) -> dict[str, np.ndarray]:
    """Each ``(out, in)`` weight replaced by its TASD approximation along ``in`` (TASD-W, offline)."""
    plan = _per_layer(series, list(weights))
    return {n: (tasd_approximate(w, plan[n], axis=-1) if plan[n] else w) for n, w in weights.items()}


class ActivationTASD:
    """MiniLM activation hook: decompose each Linear's input rows along the reduction axis (TASD-A).

    Calling it approximates ``x`` by its series; the squared error and squared norm are
    accumulated per call so :attr:`rel_error` reports ``sqrt(Σ‖x − x̂‖² / Σ‖x‖²)`` over a run.
    """

    def __init__(self, series: SeriesSpec, names: Sequence[str]):
        self.plan = _per_layer(series, names)
        self._err = 0.0
        self._norm = 0.0

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        pats = self.plan.get(name)
        if not pats:
            return x
        y = tasd_approximate(x, pats, axis=-1)
        self._err += float(np.square(x.astype(np.float64) - y).sum())
        self._norm += float(np.square(x.astype(np.float64)).sum())
        return y

    @property
    def rel_error(self) -> float:
        return (self._err / self._norm) ** 0.5 if self._norm > 0 else 0.0


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean row-wise cosine similarity of two embedding matrices."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    num = (a64 * b64).sum(axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-300)))


@dataclass(frozen=True)
class EvalConfig:
    """One evaluated point: base weights (dense or pruned by ``prune``) plus optional W/A series."""

    prune: float = 0.0
    weight_series: SeriesSpec = None
    act_series: SeriesSpec = None

    @property
    def base(self) -> str:
        return "dense" if self.prune == 0 else f"pruned {round(self.prune * 100)}%"


def default_configs(
    weight_series: Sequence = DEFAULT_WEIGHT_SERIES,
    act_series: Sequence = DEFAULT_ACT_SERIES,
    prune: Sequence[float] = DEFAULT_PRUNE,
) -> list[EvalConfig]:
    """Dense and each pruned base alone and with every weight series; activation series on the dense base."""
    out = []
    for p in (0.0, *prune):
        out.append(EvalConfig(p))
        out += [EvalConfig(p, weight_series=s) for s in weight_series]
    out += [EvalConfig(0.0, act_series=s) for s in act_series]
    return out


def _density(plan: Mapping[str, tuple | None], sizes: Mapping[str, int]) -> float:
    """MAC-weighted executed fraction: a Linear's MACs are proportional to its weight size."""
    total = sum(sizes.values())
    return sum(sizes[n] * (sum(p.density for p in plan[n]) if plan[n] else 1.0) for n in sizes) / total


def _label(spec: SeriesSpec) -> str:
    if spec is None:
        return "-"
    return "per-layer" if isinstance(spec, Mapping) else format_series(spec)


def evaluate(model, sentences: Sequence[str], configs: Sequence[EvalConfig]) -> list[dict]:
    """Accuracy proxy, executed density and approximation error for each configuration.

    The proxy is the mean cosine similarity of sentence embeddings to the dense model's: a
    label-free stand-in for task accuracy that needs only the shipped sentences.

    Row keys: ``base``, ``weights`` and ``acts`` (series or ``-``), ``cos_dense`` (mean cosine
    to the dense model), ``cos_base`` (to the unmodified base, i.e. the pruned model for pruned
    rows), ``w_density``/``a_density`` (fraction of dense Linear MACs a structured engine
    executes for that operand: the series' sum of N/M, 1.0 without TASD even when pruned),
    ``w_nnz`` (non-zero fraction of the weights used), ``w_rel_error`` (Frobenius error of the
    weights used vs the base weights, over all Linears) and ``a_rel_error`` (same for activations).
    """
    dense_w = model.linear_weights()
    names = list(dense_w)
    sizes = {n: w.size for n, w in dense_w.items()}
    dense_emb = model.encode(sentences)
    bases: dict[float, tuple[dict, np.ndarray]] = {0.0: (dense_w, dense_emb)}
    rows = []
    for cfg in configs:
        if cfg.prune not in bases:
            pruned = prune_weights(dense_w, cfg.prune)
            bases[cfg.prune] = (pruned, model.encode(sentences, weights=pruned))
        base_w, base_emb = bases[cfg.prune]
        used = tasd_weights(base_w, cfg.weight_series) if cfg.weight_series is not None else base_w
        hook = ActivationTASD(cfg.act_series, names) if cfg.act_series is not None else None
        if used is dense_w and hook is None:
            emb = dense_emb
        elif used is base_w and hook is None:
            emb = base_emb
        else:
            emb = model.encode(sentences, weights=used, act=hook)
        err = sum(float(np.square(used[n].astype(np.float64) - base_w[n]).sum()) for n in names)
        norm = sum(float(np.square(base_w[n].astype(np.float64)).sum()) for n in names)
        rows.append(
            {
                "base": cfg.base,
                "weights": _label(cfg.weight_series),
                "acts": _label(cfg.act_series),
                "cos_dense": mean_cosine(emb, dense_emb),
                "cos_base": mean_cosine(emb, base_emb),
                "w_density": _density(_per_layer(cfg.weight_series, names), sizes),
                "a_density": _density(_per_layer(cfg.act_series, names), sizes),
                "w_nnz": 1.0 - sparsity(used),
                "w_rel_error": (err / norm) ** 0.5 if norm > 0 else 0.0,
                "a_rel_error": hook.rel_error if hook is not None else 0.0,
            }
        )
    return rows


_COLUMNS = ("base", "weights", "acts", "cos_dense", "cos_base", "w_density", "a_density", "w_nnz",
            "w_rel_error", "a_rel_error")


def markdown_table(rows: Sequence[Mapping]) -> str:
    """The :func:`evaluate` rows as a GitHub markdown table (floats to 4 decimals)."""
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for r in rows:
        cells = [f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in _COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
