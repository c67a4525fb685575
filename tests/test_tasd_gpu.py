"""TASD on CuPy arrays: the same terms as NumPy, and tasd_spmm (one N:M launch per term) at fp32/fp16 tolerance."""

import zlib

import numpy as np
import pytest

from kernels.backend import gpu_available
from kernels.tasd import tasd_decompose, tasd_errors, tasd_reconstruct, tasd_spmm

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="no usable CUDA device / CuPy")]

SERIES = ["2:4", "2:4+1:4", "4:8+2:8", "2:4+2:4", "1:4+1:4+1:4+1:4", "2:8+1:8"]
SHAPES = [(1, 1, 1), (64, 64, 64), (65, 130, 97), (256, 512, 1024)]


def _data(shape, series, dtype):
    rows, cols, k = shape
    rng = np.random.default_rng(zlib.crc32(repr((shape, series, dtype)).encode()))  # stable across runs
    a = (rng.standard_normal((rows, k)) + 0.01).astype(dtype)
    b = (rng.standard_normal((k, cols)) + 0.01).astype(dtype)
    return a, b


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_cupy_terms_equal_numpy_terms(shape, series):
    import cupy

    a, _ = _data(shape, series, "float32")
    host = tasd_decompose(a, series)
    dev = tasd_decompose(cupy.asarray(a), series)
    for h, d in zip(host, dev):
        assert isinstance(d.values, cupy.ndarray)
        np.testing.assert_array_equal(cupy.asnumpy(d.indices), h.indices)
        np.testing.assert_array_equal(cupy.asnumpy(d.values), h.values)
    np.testing.assert_array_equal(cupy.asnumpy(tasd_reconstruct(dev)), tasd_reconstruct(host))
    errs_h = [r["rel_error"] for r in tasd_errors(a, host)]
    errs_d = [r["rel_error"] for r in tasd_errors(cupy.asarray(a), dev)]
    np.testing.assert_allclose(errs_d, errs_h, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float16", 1e-3)])
@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_cupy_tasd_spmm_matches_float64_reference(shape, series, dtype, tol):
    import cupy

    a, b = _data(shape, series, dtype)
    ref = tasd_reconstruct(tasd_decompose(a, series)).astype(np.float64) @ b.astype(np.float64)
    out = tasd_spmm(tasd_decompose(cupy.asarray(a), series), cupy.asarray(b))
    cupy.cuda.Device().synchronize()
    assert isinstance(out, cupy.ndarray) and out.shape == ref.shape and out.dtype == cupy.float32
    got = cupy.asnumpy(out).astype(np.float64)
    assert np.isfinite(got).all()
    assert np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30) < tol
