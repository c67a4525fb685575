"""Sparse tensor cores (cuSPARSELt) and the GPU dispatcher against the NumPy reference; needs a GPU."""

import dataclasses

import numpy as np
import pytest

from kernels import sparse_tc
from kernels.backend import gpu_available
from kernels.errors import InputError
from kernels.nm import nm_compress, nm_decompress, nm_spmm
from kernels.tasd import tasd_decompose, tasd_spmm

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
    if dtype == "bfloat16":
        import ml_dtypes

        return a.astype(ml_dtypes.bfloat16), b.astype(ml_dtypes.bfloat16)
    return a.astype(dtype), b.astype(dtype)


def _rel(got, ref):
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))


@needs_lt
@pytest.mark.parametrize("dtype", _dtypes())
@pytest.mark.parametrize("pattern", [(2, 4), (1, 4), (1, 8), (2, 8)], ids=["2:4", "1:4", "1:8", "2:8"])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize("layout", ["element", "vector"])
def test_sparse_tc_matches_float64(shape, pattern, dtype, layout):
    import cupy

    rows, cols, k = shape
    a, b = _data(rows, cols, k, dtype, hash((shape, pattern, dtype)) % 2**32)
    t = nm_compress(cupy.asarray(a), *pattern, axis=1, layout=layout)
    ref = cupy.asnumpy(nm_decompress(t)).astype(np.float64) @ b.astype(np.float64)
    out = sparse_tc.matmul_terms([t], cupy.asarray(b))
    assert out.dtype == b.dtype and out.shape == (rows, cols)
    tol = 1e-2 if dtype == "float16" else 3e-2  # 16-bit output rounding
    assert _rel(cupy.asnumpy(out.astype(cupy.float32)).astype(np.float64), ref) < tol
    again = sparse_tc.matmul_terms([t], cupy.asarray(b))  # cached compression and plan
    assert cupy.array_equal(out, again)


@needs_lt
def test_tasd_terms_accumulate_with_beta_one():
    import cupy

    a, b = _data(128, 64, 256, "float16", 1)
    terms = tasd_decompose(cupy.asarray(a), "2:4+1:4", axis=1)
    ref = sum(cupy.asnumpy(nm_decompress(t)).astype(np.float64) for t in terms) @ b.astype(np.float64)
    out = sparse_tc.matmul_terms(terms, cupy.asarray(b))
    assert _rel(cupy.asnumpy(out).astype(np.float64), ref) < 1e-2


@needs_lt
def test_three_of_eight_runs_only_when_the_data_fits():
    import cupy

    fits = np.tile(np.array([1, 1, 0, 0, 1, 0, 0, 0], np.float16), (64, 16))  # 3:8 with <= 2 per 4
    b = cupy.asarray(np.random.default_rng(0).standard_normal((128, 32)).astype(np.float16))
    t = nm_compress(cupy.asarray(fits), 3, 8, axis=1)
    ref = fits.astype(np.float64) @ cupy.asnumpy(b).astype(np.float64)
    assert _rel(cupy.asnumpy(sparse_tc.matmul_terms([t], b)).astype(np.float64), ref) < 1e-2
    bad = nm_compress(cupy.asarray(np.tile(np.array([1, 1, 1, 0, 0, 0, 0, 0], np.float16), (64, 16))), 3, 8, axis=1)
    with pytest.raises(InputError, match="group of 4"):
        sparse_tc.matmul_terms([bad], b)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("layout", ["element", "vector"])
@pytest.mark.parametrize("series", ["2:4", "1:8", "2:4+1:4"])
def test_dispatcher_matches_numpy(dtype, layout, series):
    import cupy

    from kernels.nm_dispatch import DENSE, plan

    a, b = _data(128, 64, 512, dtype, 5)
    terms_np = tasd_decompose(a, series, axis=1, layout=layout)
    # The same kept values on the device, so both backends multiply identical operands.
    terms = [dataclasses.replace(t, values=cupy.asarray(t.values), indices=cupy.asarray(t.indices)) for t in terms_np]
    bg = cupy.asarray(b)
    got = tasd_spmm(terms, bg) if len(terms) > 1 else nm_spmm(terms[0], bg)
    ref = tasd_spmm(terms_np, b) if len(terms) > 1 else nm_spmm(terms_np[0], b)
    assert got.dtype == cupy.float32 and ref.dtype == np.float32
    tol = 1e-5 if dtype == "float32" else 1e-2
    assert _rel(cupy.asnumpy(got).astype(np.float64), ref.astype(np.float64)) < tol
    info = plan(terms, bg)
    assert DENSE in info["candidates"]
    assert info["impl"] in {"nm_2of4_cusparselt", DENSE} or info["impl"].endswith("_cuda")


def test_dense_is_the_only_candidate_for_float64():
    import cupy

    from kernels.nm_dispatch import DENSE, plan

    a, b = _data(64, 32, 128, "float32", 9)
    t = nm_compress(cupy.asarray(a.astype(np.float64)), 2, 4, axis=1)
    bg = cupy.asarray(b.astype(np.float64))
    assert plan([t], bg)["impl"] == DENSE  # the CUDA-core kernel refuses float64; dense always runs
    ref = nm_decompress(nm_compress(a.astype(np.float64), 2, 4, axis=1)) @ b.astype(np.float64)
    assert _rel(cupy.asnumpy(nm_spmm(t, bg)), ref) < 1e-12
