"""bench/bench_gemm_shapes.py: the packed bytes and the relative least-squares fit behind its table."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from conftest import load_script


def _bench():
    return load_script("bench/bench_gemm_shapes.py")


def test_packed_bytes_are_a_and_b_once():
    # 64 x 1536 x 384 fp32: A 64 x 384, B 384 x 1536 -> 4 * (24576 + 589824).
    assert _bench().pack_bytes(64, 1536, 384) == 4 * (64 * 384 + 384 * 1536) == 2_457_600
    assert _bench().pack_bytes(2, 3, 5, itemsize=8) == 8 * (2 * 5 + 5 * 3)


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.8, 1.6), per_byte=st.floats(1e-11, 1e-10), call=st.floats(1e-7, 2e-6),
       seed=st.integers(0, 2**16))
def test_the_fit_recovers_the_terms_that_made_the_times(scale, per_byte, call, seed):
    """Times made exactly from compute, packed bytes and a per-call constant are fitted back to those three
    coefficients with no error."""
    rng = np.random.default_rng(seed)
    shapes = rng.integers(8, 2048, size=(12, 3))
    compute = np.prod(shapes, axis=1) * 2 / 150e9 * rng.uniform(0.8, 1.2, 12)
    pack = np.array([_bench().pack_bytes(*map(int, s)) for s in shapes], float)
    t = scale * compute + per_byte * pack + call
    coef, err = _bench().fit_terms(t, np.column_stack([compute, pack, np.ones(12)]))
    np.testing.assert_allclose(coef, [scale, per_byte, call], rtol=1e-6)
    assert np.max(np.abs(err)) < 1e-9


def test_without_the_packing_column_the_fit_misses_by_shape():
    """An 8-row product is mostly packing (B whole for 8 rows), a 1024-cube mostly compute: at 25 GB/s of packing
    and 150 GFLOP/s, compute and a per-call constant alone cannot fit both."""
    shapes = [(8, 384, 384), (64, 384, 1536), (512, 384, 384), (1024, 1024, 1024)]
    compute = np.array([2 * m * n * k / 150e9 for m, n, k in shapes])
    pack = np.array([_bench().pack_bytes(*s) for s in shapes], float)
    t = compute + pack / 25e9 + 1e-6
    _, err = _bench().fit_terms(t, np.column_stack([compute, np.ones(4)]))
    assert np.max(np.abs(err)) > 0.05
