"""Small real models run in NumPy for accuracy studies (all-MiniLM-L6-v2), with pruning helpers."""

from accelsim.models.minilm import MiniLM, MiniLMConfig, load_minilm, model_dir
from accelsim.models.magnitude import magnitude_prune, prune_weights, sparsity

__all__ = ["MiniLM", "MiniLMConfig", "load_minilm", "magnitude_prune", "model_dir", "prune_weights", "sparsity"]
