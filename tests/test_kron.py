"""Kron-matmul: every algorithm against an np.kron float64 reference, refusals, FLOP count."""

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import InputError, kron_matmul
from kernels.kron import NAIVE_MAX_BYTES, kron_config, kron_flops

dims = st.integers(1, 5)
shapes_st = st.lists(st.tuples(dims, dims), min_size=1, max_size=4).filter(
    lambda s: math.prod(p for p, _ in s) <= 256 and math.prod(q for _, q in s) <= 256
)


def _reference(x, factors):
    return x.astype(np.float64) @ functools.reduce(np.kron, [f.astype(np.float64) for f in factors])


def _rand(rng, shape, dtype):
    # Uniform on [0.5, 1.5) with random signs: never zero, so unwritten outputs show.
    a = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return a.astype(dtype)


@settings(max_examples=60, deadline=None)
@given(
    shapes=shapes_st,
    m=st.integers(1, 9),
    dtype=st.sampled_from([np.float32, np.float64]),
    algorithm=st.sampled_from(["naive", "shuffle", "fused", "auto"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_kron_reference(shapes, m, dtype, algorithm, seed):
    rng = np.random.default_rng(seed)
    factors = [_rand(rng, s, dtype) for s in shapes]
    x = _rand(rng, (m, math.prod(p for p, _ in shapes)), dtype)
    ref = _reference(x, factors)
    y = kron_matmul(x, factors, algorithm)
    assert y.shape == ref.shape and y.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.linalg.norm(y - ref) <= tol * np.linalg.norm(ref)


@pytest.mark.parametrize("pool_flops, workers", [(1e30, 1), (0, 3)])
def test_fused_row_blocks_cover_every_row(monkeypatch, pool_flops, workers):
    """Blocks smaller than M (and a ragged last block) must still write every row, in the calling thread (small
    work) and on three workers taking every third block."""
    monkeypatch.setattr("kernels.kron._BLOCK_BYTES", 3 * 64 * 8)
    monkeypatch.setattr("kernels.kron.POOL_FLOPS", pool_flops)
    monkeypatch.setenv("ACCELSIM_CPU_THREADS", "3")
    rng = np.random.default_rng(0)
    factors = [_rand(rng, (4, 4), np.float64), _rand(rng, (4, 2), np.float64), _rand(rng, (4, 4), np.float64)]
    x = _rand(rng, (11, 64), np.float64)
    assert kron_config(x, factors, "fused")["threads"] == workers
    np.testing.assert_allclose(kron_matmul(x, factors, "fused"), _reference(x, factors), rtol=1e-12)


def test_mixed_precision_promotes_to_float64():
    rng = np.random.default_rng(1)
    x = _rand(rng, (3, 6), np.float32)
    factors = [_rand(rng, (2, 2), np.float64), _rand(rng, (3, 1), np.float32)]
    assert kron_matmul(x, factors).dtype == np.float64


def test_naive_refuses_large_product():
    side = int(math.isqrt(NAIVE_MAX_BYTES // 8)) + 1
    p = math.ceil(math.sqrt(side))
    factors = [np.ones((p, p)), np.ones((p, p))]
    x = np.ones((1, p * p))
    with pytest.raises(InputError, match="NAIVE_MAX_BYTES"):
        kron_matmul(x, factors, "naive")


@pytest.mark.parametrize(
    ("x", "factors", "algorithm", "match"),
    [
        (np.ones((2, 5)), [np.ones((2, 2)), np.ones((2, 2))], "auto", "x: has 5 columns"),
        (np.ones(4), [np.ones((2, 2)), np.ones((2, 2))], "auto", "x: expected a 2-D"),
        (np.ones((2, 4)), [], "auto", "factors: got an empty list"),
        (np.ones((2, 4)), [np.ones(4)], "auto", r"factors\[0\]: expected a 2-D"),
        (np.ones((2, 4)), [np.ones((4, 0))], "auto", r"factors\[0\]: shape \(4, 0\)"),
        (np.ones((2, 4)), np.ones((4, 4)), "auto", "factors: expected a list"),
        (np.ones((2, 4), dtype=np.int64), [np.ones((4, 4), dtype=np.int64)], "auto", "dtype: int64"),
        (np.ones((2, 4)), [np.ones((4, 4))], "fast", "algorithm: unknown value 'fast'"),
    ],
)
def test_bad_input_one_line_error(x, factors, algorithm, match):
    with pytest.raises(InputError, match=match) as info:
        kron_matmul(x, factors, algorithm)
    assert "\n" not in str(info.value)


def _count_shuffle_flops(m, shapes):
    """Independent count: run the shuffle on shapes alone, summing 2·rows·P·Q per matmul."""
    total, k = 0, math.prod(p for p, _ in shapes)
    for p, q in reversed(shapes):
        rows = m * k // p
        total += 2 * rows * p * q
        k = rows // m * q
    return total


@given(shapes=shapes_st, m=st.integers(1, 1024))
def test_flops_formula_matches_matmul_count(shapes, m):
    assert kron_flops(m, shapes) == _count_shuffle_flops(m, shapes)


def test_flops_paper_shape():
    # M=1024, six 8x8 factors: 6 steps of 2·M·8^6·8 each.
    assert kron_flops(1024, [(8, 8)] * 6) == 6 * 2 * 1024 * 8**6 * 8


@pytest.mark.parametrize("algorithm", ["auto", "naive", "shuffle", "fused"])
def test_config_names_a_described_implementation(algorithm):
    from kernels.impls import describe

    rng = np.random.default_rng(2)
    factors = [_rand(rng, (4, 4), np.float32)] * 3
    x = _rand(rng, (300, 64), np.float32)
    cfg = kron_config(x, factors, algorithm)
    assert describe(cfg["impl"]).name == cfg["impl"]
    if cfg["impl"] == "kron_fused_numpy":
        assert 1 <= cfg["block_rows"] <= 300 and cfg["threads"] >= 1
