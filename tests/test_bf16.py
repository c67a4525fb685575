"""bfloat16 (ml_dtypes; dtype kind 'V' in NumPy and CuPy) through nm_compress, tasd_decompose and nm_spmm on NumPy,
against float64 references: selection by an independent stable sort, products within the roundoff bound."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from roundoff import assert_within_bound, dot_bound

from kernels.backend import dtype_kind
from kernels.errors import InputError
from kernels.nm import nm_compress, nm_decompress, nm_spmm
from kernels.tasd import parse_series, tasd_decompose, tasd_errors, tasd_reconstruct, tasd_spmm

BF16 = np.dtype(ml_dtypes.bfloat16)


def _nonzero_bf16(rng, shape):
    """Normal draws rounded to bfloat16, with no exact zero (never test on zeros)."""
    x = rng.standard_normal(shape).astype(BF16)
    x[x == 0] = BF16.type(0.5)
    return x


@st.composite
def cases(draw):
    m = draw(st.sampled_from([2, 4, 5, 8, 16, 32]))
    n = draw(st.integers(1, m - 1))
    rows, k, cols = draw(st.integers(1, 70)), draw(st.integers(1, 3 * m + 5)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return _nonzero_bf16(rng, (rows, k)), _nonzero_bf16(rng, (k, cols)), n, m


def _top_n(x64, n, m):
    """Dense float64 array keeping, per group of m along the last axis (zero-padded), the n largest
    magnitudes, lower index first on ties: a stable argsort, independent of the kernels' rank count."""
    rows, k = x64.shape
    pad = (-k) % m
    g = np.concatenate([x64, np.zeros((rows, pad))], axis=1).reshape(rows, -1, m)
    keep = np.argsort(-np.abs(g), axis=-1, kind="stable")[..., :n]
    out = np.zeros_like(g)
    np.put_along_axis(out, keep, np.take_along_axis(g, keep, -1), -1)
    return out.reshape(rows, -1)[:, :k]


def test_bfloat16_is_a_float_kind():
    assert BF16.kind == "V"  # why the plain kind check refused it
    assert dtype_kind(BF16) == "f" and dtype_kind(np.float16) == "f" and dtype_kind(np.int8) == "i"
    assert dtype_kind(np.dtype("V4")) == "V"  # other void types stay refused
    with pytest.raises(InputError, match="real numeric"):
        nm_compress(np.zeros((2, 4), dtype="V4"), 2, 4)


def test_bfloat16_nan_is_refused():
    a = np.ones((2, 8), dtype=BF16)
    a[1, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        nm_compress(a, 2, 4)
    with pytest.raises(InputError, match="NaN or infinity"):
        tasd_decompose(a, "2:4")


@settings(max_examples=60, deadline=None)
@given(cases())
def test_compress_keeps_the_largest_bf16_values(case):
    a, _, n, m = case
    t = nm_compress(a, n, m, axis=1)
    assert t.values.dtype == BF16
    np.testing.assert_array_equal(nm_decompress(t).astype(np.float64), _top_n(a.astype(np.float64), n, m))


@settings(max_examples=40, deadline=None)
@given(cases(), st.sampled_from(["2:4+1:4", "1:8+1:8+2:8", "2:4", "4:8+2:8"]))
def test_tasd_terms_match_a_float64_greedy_reference(case, series):
    a, _, _, _ = case
    terms = tasd_decompose(a, series, axis=1)
    residual, total = a.astype(np.float64), np.zeros(a.shape)
    for t, p in zip(terms, parse_series(series)):
        assert t.values.dtype == BF16
        want = _top_n(residual, p.n, p.m)  # bf16 residuals are exact: kept entries leave exact zeros
        np.testing.assert_array_equal(nm_decompress(t).astype(np.float64), want)
        residual, total = residual - want, total + want
    np.testing.assert_array_equal(tasd_reconstruct(terms).astype(np.float64), total)
    want_err = np.linalg.norm(a.astype(np.float64) - total) / np.linalg.norm(a.astype(np.float64))
    assert tasd_errors(a, terms)[-1]["rel_error"] == pytest.approx(want_err, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(cases(), st.sampled_from(["element", "vector"]))
def test_nm_spmm_bf16_within_the_float32_accumulation_bound(case, layout):
    a, b, n, m = case
    t = nm_compress(a, n, m, axis=1, layout=layout)
    out = nm_spmm(t, b)
    assert out.dtype == np.float32  # bf16 products are exact in float32; the contract's float32 result
    assert_within_bound(out, nm_decompress(t), b, dot_bound(a.shape[1], np.float32, np.float32))


@settings(max_examples=40, deadline=None)
@given(cases(), st.sampled_from(["element", "vector"]))
def test_tasd_spmm_bf16_within_the_bound(case, layout):
    a, b, _, _ = case
    terms = tasd_decompose(a, "2:4+1:4", axis=1, layout=layout)
    out = tasd_spmm(terms, b)
    assert out.dtype == np.float32
    # one float32 accumulation per term, then the terms' sums added: at most K + terms additions per element
    assert_within_bound(out, tasd_reconstruct(terms), b, dot_bound(a.shape[1] + len(terms), np.float32, np.float32))


def test_the_bound_is_tight_enough_to_catch_bf16_accumulation():
    """The float32 bound rejects a product accumulated in bfloat16: the test above can fail."""
    rng = np.random.default_rng(7)
    a, b = _nonzero_bf16(rng, (16, 512)), _nonzero_bf16(rng, (512, 8))
    acc = np.zeros((16, 8), dtype=BF16)
    for j in range(a.shape[1]):
        acc = (acc + np.outer(a[:, j], b[j]).astype(BF16)).astype(BF16)
    with pytest.raises(AssertionError, match="over the bound"):
        assert_within_bound(acc, a, b, dot_bound(512, np.float32, np.float32))
