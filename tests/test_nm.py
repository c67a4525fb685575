"""N:M compress/decompress/is_nm and the NumPy nm_spmm reference against float64 dense products."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.errors import InputError
from kernels.nm import VECTOR_WIDTH, NMTensor, is_nm, nm_compress, nm_decompress, nm_spmm, row_indices


@st.composite
def nm_cases(draw):
    m = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 16, 32]))
    n = draw(st.integers(1, m))
    rows = draw(st.integers(1, 9))
    k = draw(st.integers(1, 3 * m + 3))
    cols = draw(st.integers(1, 7))
    dtype = draw(st.sampled_from(["float16", "float32", "float64"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Never all zeros: normal draws plus an offset so exact zeros are essentially impossible.
    a = (rng.standard_normal((rows, k)) + 0.01).astype(dtype)
    b = (rng.standard_normal((k, cols)) + 0.01).astype(dtype)
    return a, b, n, m


@st.composite
def layout_cases(draw):
    """Both layouts; rows up to three vectors (ragged last vector), any N <= M <= 32, ragged K."""
    m = draw(st.integers(1, 32))
    n = draw(st.integers(1, m))
    rows = draw(st.integers(1, 3 * VECTOR_WIDTH + 5))
    k = draw(st.integers(1, 3 * m + 3))
    cols = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from(["float16", "float32", "float64"]))
    layout = draw(st.sampled_from(["element", "vector"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = (rng.standard_normal((rows, k)) + 0.01).astype(dtype)
    b = (rng.standard_normal((k, cols)) + 0.01).astype(dtype)
    return a, b, n, m, layout


def _within_dot_bound(out, a64, b64, tol):
    """|out - a64 @ b64| <= tol * (|a64| @ |b64|) per element: the error bound of a dot product, which holds where
    the terms cancel (a relative error against |ref| does not: hypothesis found a 15-term sum of O(1) products
    cancelling to -9e-4, off by 2e-4 of itself in float32)."""
    return bool(np.all(np.abs(out - a64 @ b64) <= tol * (np.abs(a64) @ np.abs(b64)) + 1e-300))


@settings(max_examples=60, deadline=None)
@given(nm_cases())
def test_spmm_matches_float64_dense_product(case):
    a, b, n, m = case
    t = nm_compress(a, n, m)
    a64, b64 = nm_decompress(t).astype(np.float64), b.astype(np.float64)
    out = nm_spmm(t, b)
    assert out.shape == (a.shape[0], b.shape[1])
    assert out.dtype == (np.float64 if a.dtype == np.float64 else np.float32)
    assert np.isfinite(out).all()
    # K <= 99 terms: float32 accumulation is within 99 x 6e-8 of the bound's scale, float64 within 99 x 1.1e-16.
    assert _within_dot_bound(out, a64, b64, 1e-12 if a.dtype == np.float64 else 1e-5)


@settings(max_examples=60, deadline=None)
@given(nm_cases())
def test_compress_keeps_exactly_n_largest_per_group(case):
    a, _, n, m = case
    t = nm_compress(a, n, m)
    rows, k = a.shape
    groups = -(-k // m)
    assert t.values.shape == t.indices.shape == (rows, groups, n)
    assert (np.diff(t.indices.astype(int), axis=-1) > 0).all()  # distinct, ascending
    pad = np.zeros((rows, groups * m), dtype=a.dtype)
    pad[:, :k] = a
    g = np.abs(pad.reshape(rows, groups, m).astype(np.float64))
    kept = np.take_along_axis(g, t.indices.astype(np.intp), -1)
    mask = np.zeros(g.shape, bool)
    np.put_along_axis(mask, t.indices.astype(np.intp), True, -1)
    dropped_max = np.where(mask, -1.0, g).max(-1)
    assert (kept.min(-1) >= dropped_max).all()
    d = nm_decompress(t)
    assert d.shape == a.shape and d.dtype == a.dtype
    assert is_nm(d, n, m)
    assert ((d == a) | (d == 0)).all()


@settings(max_examples=30, deadline=None)
@given(nm_cases(), st.sampled_from([0, 1]))
def test_round_trip_any_axis(case, axis):
    a, _, n, m = case
    d = nm_decompress(nm_compress(a, n, m, axis=axis))
    assert is_nm(d, n, m, axis=axis)
    np.testing.assert_array_equal(nm_decompress(nm_compress(d, n, m, axis=axis)), d)
    np.testing.assert_array_equal(nm_decompress(nm_compress(a, m, m, axis=axis)), a)


def test_padding_when_k_not_multiple_of_m():
    a = np.arange(1, 11, dtype=np.float32).reshape(1, 10)  # K=10, m=4: last group pads 2 zeros
    t = nm_compress(a, 2, 4)
    assert t.values.shape == (1, 3, 2)
    assert t.values[0, -1].tolist() == [9.0, 10.0]
    np.testing.assert_array_equal(nm_decompress(t), [[0, 0, 3, 4, 0, 0, 7, 8, 9, 10]])
    b = np.ones((10, 3), np.float32)
    np.testing.assert_allclose(nm_spmm(t, b), nm_decompress(t) @ b)


def test_tie_break_lower_index_wins_and_deterministic():
    a = np.array([[1.0, -1.0, 1.0, 1.0, 2.0, 2.0, -2.0, 0.5]])
    t = nm_compress(a, 2, 4)
    assert t.indices.tolist() == [[[0, 1], [0, 1]]]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((33, 70)).astype(np.float32)
    t1, t2 = nm_compress(x, 3, 8), nm_compress(x, 3, 8)
    assert t1.values.tobytes() == t2.values.tobytes() and t1.indices.tobytes() == t2.indices.tobytes()
    b = rng.standard_normal((70, 5)).astype(np.float32)
    assert nm_spmm(t1, b).tobytes() == nm_spmm(t2, b).tobytes()


def test_nm_tensor_fields():
    t = nm_compress(np.random.default_rng(0).standard_normal((4, 16)), 2, 8)
    assert isinstance(t, NMTensor) and str(t.pattern) == "2:8" and t.groups == 2
    assert t.shape == (4, 16) and t.axis == 1 and t.nbytes == t.values.nbytes + t.indices.nbytes


@pytest.mark.parametrize(
    "call",
    [
        lambda: nm_compress(np.ones((2, 4)), 3, 2),
        lambda: nm_compress(np.ones((2, 4)), 1, 33),
        lambda: nm_compress(np.ones((2, 4)), 2, 4, axis=2),
        lambda: nm_compress(np.array(1.0), 2, 4),
        lambda: nm_compress(np.array([[np.nan, 1, 2, 3]]), 2, 4),
        lambda: nm_compress(np.ones((2, 4), complex), 2, 4),
        lambda: nm_spmm(np.ones((2, 4)), np.ones((4, 2))),
        lambda: nm_spmm(nm_compress(np.ones((2, 4)), 2, 4), np.ones((5, 2))),
        lambda: nm_spmm(nm_compress(np.ones((2, 4)), 2, 4, axis=0), np.ones((4, 2))),
        lambda: nm_decompress(np.ones(3)),
    ],
)
def test_bad_input_is_one_line_input_error(call):
    with pytest.raises(InputError) as exc:
        call()
    assert "\n" not in str(exc.value)


def _dense_ref(a, idx_per_row, n, m):
    """Independent decompression: place a's kept entries (by per-row positions) into zeros, float64."""
    rows, k = a.shape
    groups = -(-k // m)
    out = np.zeros((rows, groups * m))
    for r in range(rows):
        for g in range(groups):
            for j in range(n):
                c = g * m + int(idx_per_row[r, g, j])
                if c < k:
                    out[r, c] = float(a[r, c])
    return out[:, :k]


@settings(max_examples=80, deadline=None)
@given(layout_cases())
def test_both_layouts_spmm_matches_float64_reference(case):
    a, b, n, m, layout = case
    t = nm_compress(a, n, m, axis=1, layout=layout)
    assert t.layout == layout and t.values.shape == (a.shape[0], -(-a.shape[1] // m), n)
    dense = _dense_ref(a, row_indices(t), n, m)
    np.testing.assert_array_equal(nm_decompress(t).astype(np.float64), dense)
    ref = dense @ b.astype(np.float64)
    out = nm_spmm(t, b)
    assert out.shape == ref.shape and np.isfinite(out).all()
    # elementwise bound relative to |A| @ |B|: a sum that cancels to ~0 is still checked fairly
    scale = np.abs(dense) @ np.abs(b.astype(np.float64))
    assert (np.abs(out - ref) <= (1e-12 if a.dtype == np.float64 else 1e-5) * scale + 1e-300).all()


@settings(max_examples=80, deadline=None)
@given(layout_cases())
def test_vector_layout_keeps_largest_norm_positions(case):
    a, _, n, m, _ = case
    t = nm_compress(a, n, m, axis=1, layout="vector")
    rows, k = a.shape
    groups, nvec = -(-k // m), -(-rows // VECTOR_WIDTH)
    assert t.indices.shape == (nvec, groups, n) and t.indices.dtype == np.uint8
    assert (np.diff(t.indices.astype(int), axis=-1) > 0).all()
    pad = np.zeros((rows, groups * m))
    pad[:, :k] = a
    for v in range(nvec):
        block = pad[v * VECTOR_WIDTH : (v + 1) * VECTOR_WIDTH]
        for g in range(groups):
            norms = np.linalg.norm(block[:, g * m : (g + 1) * m], axis=0)
            kept = set(t.indices[v, g].tolist())
            # brute force over every position pair: no dropped position beats a kept one
            for p in kept:
                for q in set(range(m)) - kept:
                    assert norms[p] > norms[q] * (1 - 1e-9) or (norms[p] >= norms[q] * (1 - 1e-9) and p < q)
            # every row of the vector stores exactly its entries at the shared positions
            pos = g * m + np.array(sorted(kept))
            np.testing.assert_array_equal(
                t.values[v * VECTOR_WIDTH : (v + 1) * VECTOR_WIDTH, g].astype(np.float64), block[:, pos]
            )


def test_vector_layout_ties_and_ragged_rows():
    # 40 rows (one full vector, one of 8), K = 6 with m = 4 (last group padded by 2).
    a = np.zeros((40, 6), np.float32)
    a[:32, 1] = 1.0
    a[:32, 3] = -1.0  # ties column 1 in norm: the lower index (1) wins for 1:4
    a[:32, 5] = 0.5
    a[32:, 0] = 2.0
    a[32:, 4] = 3.0
    a[32:, 2] = 1.0  # rows 32.. have a non-zero; not all zeros
    t = nm_compress(a, 1, 4, axis=1, layout="vector")
    assert t.indices.tolist() == [[[1], [1]], [[0], [0]]]
    np.testing.assert_array_equal(t.values[:32, :, 0], np.tile([1.0, 0.5], (32, 1)))
    np.testing.assert_array_equal(t.values[32:, :, 0], np.tile([2.0, 3.0], (8, 1)))
    b = np.arange(18, dtype=np.float32).reshape(6, 3) + 1
    np.testing.assert_allclose(nm_spmm(t, b), nm_decompress(t) @ b)


def test_vector_layout_deterministic_and_axis0():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((70, 45)).astype(np.float32)
    t1, t2 = nm_compress(x, 3, 8, layout="vector"), nm_compress(x, 3, 8, layout="vector")
    assert t1.indices.tobytes() == t2.indices.tobytes() and t1.values.tobytes() == t2.values.tobytes()
    t0 = nm_compress(x, 2, 4, axis=0, layout="vector")  # groups run down the rows, vectors across columns
    assert t0.values.shape == (45, 18, 2) and t0.indices.shape == (2, 18, 2)
    np.testing.assert_array_equal(nm_decompress(t0), nm_decompress(nm_compress(x.T, 2, 4, layout="vector")).T)


@pytest.mark.parametrize(
    "call",
    [
        lambda: nm_compress(np.ones((2, 4)), 2, 4, layout="block"),
        lambda: nm_compress(np.ones((2, 2, 4)), 2, 4, layout="vector"),
    ],
)
def test_bad_layout_is_one_line_input_error(call):
    with pytest.raises(InputError, match="layout") as exc:
        call()
    assert "\n" not in str(exc.value)
