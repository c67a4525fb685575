"""TASD decomposition, reconstruction, error reports, SpMM and series parsing; the eval harness on a toy model."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.errors import InputError
from kernels.nm import NMPattern, NMTensor, is_nm, nm_compress, nm_decompress
from kernels.tasd import (
    candidate_series,
    format_series,
    parse_series,
    series_density,
    tasd_approximate,
    tasd_decompose,
    tasd_errors,
    tasd_reconstruct,
    tasd_spmm,
)


def _nonzero(rng, shape, dtype):
    """Random values with magnitudes in [0.1, 10] and random signs: never an exact zero."""
    mag = 10.0 ** rng.uniform(-1, 1, size=shape)
    return (mag * rng.choice([-1.0, 1.0], size=shape)).astype(dtype)


patterns = st.integers(1, 16).flatmap(lambda m: st.tuples(st.integers(1, m), st.just(m)))


@st.composite
def tasd_cases(draw, max_terms=4):
    series = draw(st.lists(patterns, min_size=1, max_size=max_terms))
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 20), min_size=ndim, max_size=ndim)))
    axis = draw(st.integers(-ndim, ndim - 1))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return _nonzero(rng, shape, dtype), series, axis


@settings(max_examples=60, deadline=None)
@given(tasd_cases())
def test_every_term_is_nm_and_terms_are_disjoint(case):
    a, series, axis = case
    terms = tasd_decompose(a, series, axis)
    assert len(terms) == len(series)
    seen = np.zeros(a.shape, dtype=bool)
    for t, (n, m) in zip(terms, series):
        assert isinstance(t, NMTensor) and t.pattern == NMPattern(n, m) and t.shape == a.shape
        d = nm_decompress(t)
        assert d.dtype == a.dtype
        assert is_nm(d, n, m, axis)
        assert not (seen & (d != 0)).any()
        seen |= d != 0
    # Every kept value is an input value, untouched.
    approx = tasd_reconstruct(terms)
    assert np.array_equal(approx[seen], a[seen])


@settings(max_examples=60, deadline=None)
@given(tasd_cases())
def test_error_never_increases_and_matches_direct(case):
    a, series, axis = case
    terms = tasd_decompose(a, series, axis)
    rep = tasd_errors(a, terms)
    errs = [r["rel_error"] for r in rep]
    assert all(e2 <= e1 + 1e-12 for e1, e2 in zip(errs, errs[1:]))
    direct = np.linalg.norm((a - tasd_reconstruct(terms)).astype(np.float64)) / np.linalg.norm(a.astype(np.float64))
    assert errs[-1] == pytest.approx(direct, abs=1e-6)
    assert rep[-1]["density"] == pytest.approx(sum(n / m for n, m in series))
    assert rep[-1]["series"] == format_series(series)
    assert [r["term"] for r in rep] == list(range(1, len(series) + 1))
    assert all(0 < r["nnz_fraction"] <= 1 for r in rep)


@settings(max_examples=40, deadline=None)
@given(tasd_cases(max_terms=1))
def test_enough_terms_reproduce_the_input_exactly(case):
    a, ((n, m),), axis = case
    series = [(n, m)] * math.ceil(m / n)
    terms = tasd_decompose(a, series, axis)
    assert np.array_equal(tasd_reconstruct(terms), a)
    assert tasd_errors(a, terms)[-1]["rel_error"] == 0.0


@settings(max_examples=40, deadline=None)
@given(tasd_cases(max_terms=1))
def test_first_term_is_plain_nm_and_nm_input_is_exact(case):
    a, ((n, m),), axis = case
    first = tasd_decompose(a, [(n, m), (1, 4)], axis)[0]
    assert np.array_equal(nm_decompress(first), nm_decompress(nm_compress(a, n, m, axis)))
    a_nm = nm_decompress(nm_compress(a, n, m, axis))
    assert np.array_equal(tasd_approximate(a_nm, [(n, m)], axis), a_nm)


def test_already_2_4_tensor_is_exact_with_one_2_4_term():
    rng = np.random.default_rng(7)
    a = nm_decompress(nm_compress(_nonzero(rng, (32, 64), "float32"), 2, 4))
    terms = tasd_decompose(a, [(2, 4)])
    assert np.array_equal(tasd_reconstruct(terms), a)
    assert tasd_errors(a, terms)[0]["rel_error"] == 0.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(patterns, min_size=1, max_size=3),
    st.integers(1, 12), st.integers(1, 40), st.integers(1, 8),
    st.sampled_from(["float32", "float64"]), st.integers(0, 2**32 - 1),
)
def test_spmm_equals_float64_product_of_reconstruction(series, rows, k, cols, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = _nonzero(rng, (rows, k), dtype), _nonzero(rng, (k, cols), dtype)
    terms = tasd_decompose(a, series)
    ref = tasd_reconstruct(terms).astype(np.float64) @ b.astype(np.float64)
    out = tasd_spmm(terms, b)
    assert out.shape == (rows, cols)
    tol = 1e-12 if dtype == "float64" else 1e-5
    scale = np.abs(tasd_reconstruct(terms).astype(np.float64)) @ np.abs(b.astype(np.float64))
    assert np.all(np.abs(out - ref) <= tol * len(series) * (scale + 1e-30))


def test_decompose_is_deterministic():
    rng = np.random.default_rng(3)
    a = np.repeat(_nonzero(rng, (48, 20), "float32"), 2, axis=1)  # magnitude ties inside groups
    a[:, 1::4] *= -1
    t1, t2 = tasd_decompose(a, "2:4+1:8"), tasd_decompose(a, "2:4+1:8")
    for x, y in zip(t1, t2):
        assert np.array_equal(x.values, y.values) and np.array_equal(x.indices, y.indices)


def test_series_forms_agree():
    want = (NMPattern(2, 4), NMPattern(1, 4))
    for form in ("2:4+1:4", " 2:4 + 1:4 ", ["2:4", "1:4"], [(2, 4), (1, 4)], list(want), ["2:4", (1, 4)]):
        assert parse_series(form) == want
    assert parse_series((2, 4)) == (NMPattern(2, 4),)
    assert parse_series(NMPattern(1, 8)) == (NMPattern(1, 8),)
    assert format_series([(2, 4), (1, 4)]) == "2:4+1:4"
    assert series_density("2:4+2:4") == 1.0 and series_density("4:8+1:8") == 0.625


BAD_SERIES = ["", "+", "2:4+", "2:4++1:4", "5:4", "0:4", "2:64", "x", "2-4", [], 3, [(2, 4, 1)], [2.0], [(True, 4)]]


@pytest.mark.parametrize("bad", BAD_SERIES)
def test_bad_series_is_one_line_input_error(bad):
    with pytest.raises(InputError) as exc:
        parse_series(bad)
    assert "\n" not in str(exc.value)


def test_bad_inputs_raise_input_error():
    a = np.ones((4, 8), dtype=np.float32)
    with pytest.raises(InputError, match="NaN or infinity"):
        tasd_decompose(np.array([[1.0, np.nan, 2.0, 3.0]]), "2:4")
    with pytest.raises(InputError, match="non-empty"):
        tasd_decompose(np.float32(1.0), "2:4")
    with pytest.raises(InputError, match="non-empty"):
        tasd_decompose(np.zeros((3, 0)), "2:4")
    with pytest.raises(InputError, match="real numeric"):
        tasd_decompose(a.astype(np.complex64), "2:4")
    with pytest.raises(InputError, match="axis"):
        tasd_decompose(a, "2:4", axis=2)
    with pytest.raises(InputError, match="no TASD terms"):
        tasd_reconstruct([])
    with pytest.raises(InputError, match="NMTensor"):
        tasd_spmm([a], a.T)
    with pytest.raises(InputError, match="disagree"):
        tasd_reconstruct(tasd_decompose(a, "2:4") + tasd_decompose(a.T, "2:4"))
    with pytest.raises(InputError, match="does not match"):
        tasd_errors(a.T, tasd_decompose(a, "2:4"))
    with pytest.raises(InputError, match="axis 1"):
        tasd_spmm(tasd_decompose(a, "2:4", axis=0), np.ones((8, 2)))
    with pytest.raises(InputError, match="rows to match"):
        tasd_spmm(tasd_decompose(a, "2:4"), np.ones((5, 2)))


def test_candidate_series_enumerates_multisets_densest_first():
    got = candidate_series(["1:4", "2:4", "2:8", "2:4"], 3)
    assert len(got) == 3 + 6 + 10  # multisets of size 1..3 from 3 distinct patterns
    assert len(set(got)) == len(got)
    assert [format_series(s) for s in got[:3]] == ["2:4", "1:4", "2:8"]
    for s in got:
        keys = [(-p.density, p.m, p.n) for p in s]
        assert keys == sorted(keys)
    assert candidate_series("2:4", 1) == [(NMPattern(2, 4),)]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="max_terms"):
            candidate_series(["2:4"], bad)
    with pytest.raises(InputError, match="no patterns"):
        candidate_series([], 2)


# ---- evaluation harness (accelsim.codesign.accuracy) on a toy two-Linear model: no weights needed ----


class ToyModel:
    """Two Linears with a ReLU and L2-normalised mean output; ``encode`` matches MiniLM's hooks."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.w = {"fc1": _nonzero(rng, (24, 16), "float32") / 10, "fc2": _nonzero(rng, (8, 24), "float32") / 10}
        self.linear_names = list(self.w)
        self._emb = {s: _nonzero(np.random.default_rng(len(s)), (5, 16), "float32") for s in ("a b", "c d e", "f")}

    def linear_weights(self):
        return dict(self.w)

    def encode(self, sentences, *, weights=None, act=None):
        w = {**self.w, **(weights or {})}
        out = []
        for s in sentences:
            x = self._emb[s]
            for name in self.linear_names:
                x = act(name, x) if act else x
                x = np.maximum(x @ w[name].T, 0) if name == "fc1" else x @ w[name].T
            v = x.mean(axis=0)
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32)


def test_evaluate_rows_on_toy_model():
    from accelsim.codesign.accuracy import EvalConfig, evaluate, markdown_table

    cfgs = [EvalConfig(), EvalConfig(weight_series="2:4+2:4"), EvalConfig(weight_series="2:4"),
            EvalConfig(0.5), EvalConfig(0.5, weight_series="2:4+1:4"), EvalConfig(act_series="2:4+1:4"),
            EvalConfig(weight_series={"fc1": "1:4", "fc2": None})]
    rows = evaluate(ToyModel(), ["a b", "c d e", "f"], cfgs)
    dense, exact, w24, p50, p50t, act, per_layer = rows
    assert dense["cos_dense"] == pytest.approx(1.0) and dense["w_density"] == 1.0 and dense["w_rel_error"] == 0
    assert exact["cos_dense"] == pytest.approx(1.0) and exact["w_rel_error"] == 0.0 and exact["w_density"] == 1.0
    assert w24["w_density"] == 0.5 and w24["w_nnz"] == 0.5 and 0 < w24["w_rel_error"] < 1
    assert p50["base"] == "pruned 50%" and p50["cos_base"] == pytest.approx(1.0) and p50["w_nnz"] == pytest.approx(0.5)
    assert p50["w_density"] == 1.0  # structured hardware cannot skip unstructured zeros
    assert p50t["w_density"] == 0.75 and p50t["w_nnz"] <= 0.5
    assert act["a_density"] == 0.75 and act["w_density"] == 1.0 and 0 < act["a_rel_error"] < 1
    assert per_layer["weights"] == "per-layer"
    assert per_layer["w_density"] == pytest.approx((24 * 16 * 0.25 + 8 * 24) / (24 * 16 + 8 * 24))
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "| dense | 2:4 | - |" in table
    assert rows == evaluate(ToyModel(), ["a b", "c d e", "f"], cfgs)  # deterministic


def test_eval_helpers():
    from accelsim.codesign.accuracy import ActivationTASD, decompose_report, load_sentences, mean_cosine, tasd_weights

    sentences = load_sentences()
    assert len(sentences) == 64 and len(set(sentences)) == 64
    rng = np.random.default_rng(0)
    a = _nonzero(rng, (16, 32), "float32")
    rep = decompose_report(a, ["2:4", "2:4+2:4"])
    assert [r["series"] for r in rep] == ["2:4", "2:4+2:4"] and rep[1]["rel_error"] == 0.0
    assert len(rep[1]["terms"]) == 2
    w = tasd_weights({"x": a}, "1:4")
    assert is_nm(w["x"], 1, 4)
    with pytest.raises(InputError, match="unknown layer"):
        tasd_weights({"x": a}, {"y": "2:4"})
    hook = ActivationTASD("2:4+2:4", ["x"])
    assert np.array_equal(hook("x", a), a) and hook.rel_error == 0.0
    assert mean_cosine(a, 2 * a) == pytest.approx(1.0)
    with pytest.raises(InputError, match="sentences file"):
        load_sentences("/nonexistent/sentences.txt")


def test_cli_decompose_json(tmp_path):
    import typer
    from typer.testing import CliRunner

    from accelsim.cli.tasd_cmd import register

    root = typer.Typer()
    register(root)

    a = _nonzero(np.random.default_rng(1), (8, 16), "float32")
    np.save(tmp_path / "w.npy", a)
    res = CliRunner().invoke(root, ["tasd", "decompose", str(tmp_path / "w.npy"), "--series", "2:4",
                                        "--series", "2:4+2:4", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["shape"] == [8, 16] and [s["series"] for s in doc["series"]] == ["2:4", "2:4+2:4"]
    assert doc["series"][1]["rel_error"] == 0.0
    res = CliRunner().invoke(root, ["tasd", "decompose", str(tmp_path / "w.npy"), "--series", "2:4+"])
    assert isinstance(res.exception, InputError)
    res = CliRunner().invoke(root, ["tasd", "decompose", str(tmp_path / "w.npy")])
    assert res.exit_code == 0 and "2:4+1:4" in res.output
