"""Sparse tensor cores (cuSPARSELt) and each implementation of the GPU dispatcher, forced by name, against
float64 within the bound from the dtypes' unit roundoff and K; needs a GPU."""

import dataclasses
import zlib

import numpy as np
import pytest
from roundoff import assert_within_bound, dot_bound

from kernels.nm import sparse_tc
from kernels.backend import gpu_available
from kernels.errors import InputError
from kernels.nm import nm_compress, nm_decompress, nm_spmm
from kernels.nm.dispatch import CUDA_CORE, DENSE, plan, spmm_cupy
from kernels.tasd import tasd_decompose, tasd_reconstruct, tasd_spmm

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="no usable CUDA device / CuPy")]
needs_lt = pytest.mark.skipif(not gpu_available() or not sparse_tc.available(),
                              reason="nvmath-python's cuSPARSELt binding not usable here")

SHAPES = [(64, 32, 128), (256, 128, 512), (96, 48, 4096)]  # (rows, cols, K): rows, K % 32 == 0, cols % 16 == 0


@pytest.fixture(autouse=True)
def _private_cache(private_autotune_cache):
    yield


def _dtypes():
    out = ["float16"]
    try:
        import cupy
        import ml_dtypes

        cupy.zeros(1, dtype=ml_dtypes.bfloat16) + 0
        out.append("bfloat16")
    except Exception:  # no bfloat16 in this CuPy: the bf16 path is not testable here
        pass
    return out


def _data(rows, cols, k, dtype, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((rows, k)) + 0.05).astype(np.float32)
    b = rng.standard_normal((k, cols)).astype(np.float32)
    return a.astype(_np_dtype(dtype)), b.astype(_np_dtype(dtype))


def _seed(*parts) -> int:
    """A seed from the case's parameters, the same in every process (hash() of strings is not)."""
    return zlib.crc32(repr(parts).encode())


def _tc_bound(k: int, dtype: str, terms: int = 1) -> float:
    """Tensor cores: float32 accumulation (maybe truncating), the result rounded to the 16-bit type once per
    term (each matmul reads the previous sum back, beta = 1); terms are disjoint, so |A| is the sum of theirs."""
    return terms * dot_bound(k, np.float32, np.dtype(_np_dtype(dtype)), directed=True)


def _np_dtype(name: str):
    if name == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(name)


@needs_lt
@pytest.mark.parametrize("dtype", _dtypes())
@pytest.mark.parametrize("pattern", [(2, 4), (1, 4), (1, 8), (2, 8)], ids=["2:4", "1:4", "1:8", "2:8"])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize("layout", ["element", "vector"])
def test_sparse_tc_matches_float64(shape, pattern, dtype, layout):
    import cupy

    rows, cols, k = shape
    a, b = _data(rows, cols, k, dtype, _seed(shape, pattern, dtype, layout))
    t = nm_compress(cupy.asarray(a), *pattern, axis=1, layout=layout)
    out = sparse_tc.matmul_terms([t], cupy.asarray(b))
    assert out.dtype == b.dtype and out.shape == (rows, cols)
    assert_within_bound(cupy.asnumpy(out.astype(cupy.float32)), cupy.asnumpy(nm_decompress(t)).astype(np.float64),
                        b, _tc_bound(k, dtype))
    again = sparse_tc.matmul_terms([t], cupy.asarray(b))  # cached compression and plan
    assert cupy.array_equal(out, again)


@needs_lt
def test_tasd_terms_accumulate_with_beta_one():
    import cupy

    a, b = _data(128, 64, 256, "float16", 1)
    terms = tasd_decompose(cupy.asarray(a), "2:4+1:4", axis=1)
    out = sparse_tc.matmul_terms(terms, cupy.asarray(b))
    assert_within_bound(cupy.asnumpy(out), cupy.asnumpy(tasd_reconstruct(terms)), b,
                        _tc_bound(256, "float16", terms=2))


@needs_lt
def test_three_of_eight_runs_only_when_the_data_fits():
    import cupy

    fits = np.tile(np.array([1, 1, 0, 0, 1, 0, 0, 0], np.float16), (64, 16))  # 3:8 with <= 2 per 4
    b = cupy.asarray(np.random.default_rng(0).standard_normal((128, 32)).astype(np.float16))
    t = nm_compress(cupy.asarray(fits), 3, 8, axis=1)
    assert_within_bound(cupy.asnumpy(sparse_tc.matmul_terms([t], b)), fits, cupy.asnumpy(b), _tc_bound(128, "float16"))
    bad = nm_compress(cupy.asarray(np.tile(np.array([1, 1, 1, 0, 0, 0, 0, 0], np.float16), (64, 16))), 3, 8, axis=1)
    with pytest.raises(InputError, match="group of 4"):
        sparse_tc.matmul_terms([bad], b)


def _impl_bound(impl: str, dtype: str, k: int, terms: int) -> float:
    """The bound of the implementation that ran (float32 results: the nm_spmm contract)."""
    if impl == sparse_tc.IMPL:
        return _tc_bound(k, dtype, terms)
    if impl == DENSE:  # the summed operand (disjoint terms: exact) through cupy.matmul in the input dtype
        wide = dtype in ("float32", "float64")
        return dot_bound(k, dtype if wide else np.float32, _np_dtype(dtype), directed=not wide)
    return dot_bound(k + terms, np.float32, np.float32)  # the CUDA-core kernel: FFMA over every term, one output


@pytest.mark.parametrize("dtype", ["float32", *_dtypes()])
@pytest.mark.parametrize("layout", ["element", "vector"])
@pytest.mark.parametrize("series", ["2:4", "1:8", "2:4+1:4"])
def test_each_dispatcher_impl_matches_float64(dtype, layout, series):
    """Every candidate the dispatcher has for these operands, forced by name, then the tuned choice."""
    import cupy

    k = 512
    a, b = _data(128, 64, k, dtype, _seed(dtype, layout, series))
    terms_np = tasd_decompose(a, series, axis=1, layout=layout)
    # The same kept values on the device, so every implementation multiplies identical operands.
    terms = [dataclasses.replace(t, values=cupy.asarray(t.values), indices=cupy.asarray(t.indices)) for t in terms_np]
    bg = cupy.asarray(b)
    dense = tasd_reconstruct(terms_np).astype(np.float64)
    info = plan(terms, bg)
    assert DENSE in info["candidates"]
    if dtype in ("float32", "float16"):
        assert CUDA_CORE in info["candidates"]
    for impl in info["candidates"]:
        got = spmm_cupy(terms, bg, impl=impl)
        assert got.dtype == cupy.float32, impl
        assert_within_bound(cupy.asnumpy(got), dense, b, _impl_bound(impl, dtype, k, len(terms)))
    tuned = info["tuned"]["impl"]
    got = tasd_spmm(terms, bg) if len(terms) > 1 else nm_spmm(terms[0], bg)
    assert_within_bound(cupy.asnumpy(got), dense, b, _impl_bound(tuned, dtype, k, len(terms)))
    assert info["impl"] in {sparse_tc.IMPL, DENSE} or info["impl"].endswith("_cuda")


def test_dense_is_the_only_candidate_for_float64():
    import cupy

    a, b = _data(64, 32, 128, "float32", 9)
    t = nm_compress(cupy.asarray(a.astype(np.float64)), 2, 4, axis=1)
    bg = cupy.asarray(b.astype(np.float64))
    assert plan([t], bg)["impl"] == DENSE  # the CUDA-core kernel refuses float64; dense always runs
    with pytest.raises(InputError, match="cannot run"):
        spmm_cupy([t], bg, impl=CUDA_CORE)
    host = nm_compress(a.astype(np.float64), 2, 4, axis=1)
    assert_within_bound(cupy.asnumpy(nm_spmm(t, bg)), nm_decompress(host), b, dot_bound(128, np.float64, np.float64))
