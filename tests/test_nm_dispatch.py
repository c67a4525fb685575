"""Dispatcher and sparse-tensor-core eligibility, checked on the CPU with NumPy stand-ins for the GPU parts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.nm import dispatch as nm_dispatch, sparse_tc
from kernels.errors import InputError
from kernels.nm import nm_compress, nm_decompress
from kernels.tasd import tasd_decompose


def _quad_max(t) -> int:
    """Independent reference: most kept (non-zero) values in any aligned group of 4 along K."""
    mask = nm_decompress(t) != 0
    k = mask.shape[1]
    mask = np.concatenate([mask, np.zeros((mask.shape[0], (-k) % 4), bool)], axis=1)
    return int(mask.reshape(mask.shape[0], -1, 4).sum(-1).max())


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 40),
    k=st.integers(1, 64),
    n=st.integers(1, 8),
    m=st.integers(1, 8),
    layout=st.sampled_from(["element", "vector"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_fits_2of4_matches_a_count_of_kept_values_per_quad(rows, k, n, m, layout, seed):
    n = min(n, m)
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, (rows, k)) * rng.choice([-1.0, 1.0], (rows, k))  # no zeros: kept == non-zero
    t = nm_compress(a.astype(np.float32), n, m, axis=1, layout=layout)
    if k % m == 0:  # no zero padding, so every kept position is a non-zero
        assert sparse_tc.fits_2of4(t) == (_quad_max(t) <= 2)
    elif sparse_tc.fits_2of4(t):
        assert _quad_max(t) <= 2


@pytest.mark.parametrize(
    "nm,fits", [((2, 4), True), ((1, 4), True), ((1, 8), True), ((2, 8), True), ((1, 2), True),
                ((3, 8), False), ((2, 2), False), ((4, 8), False), ((1, 3), False), ((4, 4), False)],
)
def test_pattern_guarantee(nm, fits):
    assert sparse_tc.pattern_fits_2of4(*nm) is fits


def test_eligibility_reasons():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 128)).astype(np.float16)
    b = rng.standard_normal((128, 32)).astype(np.float16)
    assert sparse_tc.eligible([nm_compress(a, 1, 8, axis=1)], b) is None
    assert "dtype" in sparse_tc.eligible([nm_compress(a.astype(np.float32), 2, 4, axis=1)], b)
    assert "shape" in sparse_tc.eligible([nm_compress(a[:, :100], 2, 4, axis=1)], b[:100])
    assert "shape" in sparse_tc.eligible([nm_compress(a, 2, 4, axis=1)], b[:, :24])
    dense_groups = np.tile(np.array([1, 1, 1, 0, 0, 0, 0, 0], np.float16), (64, 16))
    assert "group of 4" in sparse_tc.eligible([nm_compress(dense_groups, 3, 8, axis=1)], b)


def test_candidates_keep_dense_last_and_tc_only_when_allowed():
    key = {"sparse_tc": True, "dtype": "float16", "b_dtype": "float16"}
    assert [c["impl"] for c in nm_dispatch.candidates(key, True)] == ["nm_2of4_cusparselt", "cuda_core", "dense_cublas"]
    assert [c["impl"] for c in nm_dispatch.candidates(key, False)] == ["cuda_core", "dense_cublas"]
    key = {"sparse_tc": False, "dtype": "float32", "b_dtype": "float32"}
    assert [c["impl"] for c in nm_dispatch.candidates(key, True)] == ["cuda_core", "dense_cublas"]
    key = {"sparse_tc": False, "dtype": "float64", "b_dtype": "float64"}
    assert [c["impl"] for c in nm_dispatch.candidates(key, True)] == ["dense_cublas"]  # no CUDA-core float64


@pytest.fixture
def fake_gpu(private_autotune_cache, monkeypatch):
    """Dispatcher on NumPy data: fixed per-impl times instead of CUDA events, a private tuning cache."""
    times = {}
    monkeypatch.setattr(nm_dispatch, "_device_name", lambda: "fake-gpu")
    monkeypatch.setattr(nm_dispatch, "_runner", _numpy_runner)
    monkeypatch.setattr(nm_dispatch, "_time_gpu", lambda fn: times[fn()[1]])
    monkeypatch.setattr(sparse_tc, "available", lambda: True)
    monkeypatch.setattr(sparse_tc, "_device_id", lambda: 0)
    return times


def _numpy_runner(impl, terms, b, out_dtype):
    """Every impl computes the float32 reference here; the tag says which one ran."""
    a = sum(nm_decompress(t).astype(np.float32) for t in terms)
    return lambda: ((a @ b.astype(np.float32)).astype(out_dtype), impl)


def test_plan_picks_the_fastest_and_falls_back_to_dense(fake_gpu):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((64, 128)).astype(np.float16)
    b = rng.standard_normal((128, 32)).astype(np.float16)
    terms = tasd_decompose(a, "2:4+1:4", axis=1)
    fake_gpu.update({"nm_2of4_cusparselt": 1.0, "cuda_core": 3.0, "dense_cublas": 2.0})
    p = nm_dispatch.plan(terms, b)
    assert p["impl"] == "nm_2of4_cusparselt" and p["tuned"] == {"impl": "nm_2of4_cusparselt"}
    assert p["candidates"] == ["nm_2of4_cusparselt", "cuda_core", "dense_cublas"]
    # A slower sparse path on another shape: dense wins, so the choice is never below dense.
    fake_gpu.update({"nm_2of4_cusparselt": 5.0, "cuda_core": 4.0, "dense_cublas": 2.0})
    assert nm_dispatch.plan(terms, b[:, :16])["impl"] == "dense_cublas"
    # The first choice is cached per (device, key): new timings do not change it.
    assert nm_dispatch.plan(terms, b)["impl"] == "nm_2of4_cusparselt"


def test_spmm_result_and_out_dtype(fake_gpu):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((32, 64)).astype(np.float32)
    b = rng.standard_normal((64, 16)).astype(np.float32)
    terms = tasd_decompose(a, "2:4+1:4", axis=1)
    fake_gpu.update({"cuda_core": 3.0, "dense_cublas": 1.0})
    out, impl = nm_dispatch.spmm_cupy(terms, b)
    ref = sum(nm_decompress(t).astype(np.float64) for t in terms) @ b.astype(np.float64)
    assert impl == "dense_cublas" and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert nm_dispatch.tune_key(terms, b, np.float32)["series"] == "2:4+1:4"


def test_dense_runner_caches_the_summed_operand():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((16, 32)).astype(np.float32)
    b = rng.standard_normal((32, 8)).astype(np.float32)
    terms = tasd_decompose(a, "2:4+1:4", axis=1)
    out = nm_dispatch._runner("dense_cublas", terms, b, np.dtype(np.float32))()
    ref = (nm_decompress(terms[0]).astype(np.float64) + nm_decompress(terms[1])) @ b.astype(np.float64)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert nm_dispatch._DENSE_A[terms[0]][0] == (id(terms[0]), id(terms[1]))


def test_a_forced_impl_runs_that_impl_and_an_impossible_one_says_why(fake_gpu, monkeypatch):
    """GPU tests name the implementation they check: ``impl=`` bypasses the tuned choice."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((32, 64)).astype(np.float16)
    b = rng.standard_normal((64, 16)).astype(np.float16)
    terms = tasd_decompose(a, "2:4+1:4", axis=1)
    fake_gpu.update({"nm_2of4_cusparselt": 1.0, "cuda_core": 3.0, "dense_cublas": 2.0})
    for impl in ("cuda_core", "dense_cublas", "nm_2of4_cusparselt"):
        assert nm_dispatch.spmm_cupy(terms, b, impl=impl)[1] == impl
    with pytest.raises(InputError, match="'cuda_core' cannot run.*float32 or float16"):
        nm_dispatch.spmm_cupy([nm_compress(a.astype(np.float64), 2, 4, axis=1)], b.astype(np.float64), impl="cuda_core")
    monkeypatch.setattr(sparse_tc, "available", lambda: False)
    monkeypatch.setattr(sparse_tc, "unavailable_reason", lambda: "ImportError: no nvmath here")
    with pytest.raises(InputError, match="no nvmath here"):
        nm_dispatch.spmm_cupy(terms, b, impl="nm_2of4_cusparselt")
    with pytest.raises(InputError, match="unknown impl"):
        nm_dispatch.spmm_cupy(terms, b, impl="nm_magic")
    wide = rng.standard_normal((64, 32)).astype(np.float16)  # an untuned shape the sparse path would take
    assert nm_dispatch.plan(terms, wide)["sparse_tc_unavailable"] == "ImportError: no nvmath here"


def test_unavailable_reason_names_the_failure(monkeypatch):
    """available() no longer swallows the exception: the reason is kept for the preflight and the trace."""
    def broken():
        raise RuntimeError("cuda-core 0.1 is older than nvmath-python needs")

    monkeypatch.setattr(sparse_tc, "_device_id", lambda: 0)
    monkeypatch.setattr(sparse_tc, "_binding", broken)
    sparse_tc.unavailable_reason.cache_clear()
    sparse_tc._handle.cache_clear()
    try:
        assert sparse_tc.unavailable_reason() == "RuntimeError: cuda-core 0.1 is older than nvmath-python needs"
        assert sparse_tc.available() is False
    finally:
        sparse_tc.unavailable_reason.cache_clear()
        sparse_tc._handle.cache_clear()
