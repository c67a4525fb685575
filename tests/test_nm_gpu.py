"""CuPy nm_spmm (CUDA kernel) against the NumPy reference at fp32/fp16 tolerance; needs a GPU."""

import numpy as np
import pytest

from kernels.backend import gpu_available
from kernels.nm import nm_compress, nm_decompress, nm_spmm

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="no usable CUDA device / CuPy")]

PATTERNS = [(2, 4), (4, 8), (3, 8), (2, 8), (1, 8), (1, 4), (3, 5), (4, 4), (7, 32), (1, 32)]
SHAPES = [(1, 1, 1), (64, 64, 64), (65, 130, 97), (200, 33, 259), (256, 512, 1024)]


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float16", 1e-3)])
@pytest.mark.parametrize("pattern", PATTERNS, ids=[f"{n}:{m}" for n, m in PATTERNS])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_cuda_matches_numpy(shape, pattern, dtype, tol):
    import cupy

    rows, cols, k = shape
    n, m = pattern
    rng = np.random.default_rng(hash((shape, pattern, dtype)) % 2**32)
    a = (rng.standard_normal((rows, k)) + 0.01).astype(dtype)
    b = (rng.standard_normal((k, cols)) + 0.01).astype(dtype)
    ref = nm_decompress(nm_compress(a, n, m)).astype(np.float64) @ b.astype(np.float64)
    t = nm_compress(cupy.asarray(a), n, m)
    np.testing.assert_array_equal(cupy.asnumpy(t.indices), nm_compress(a, n, m).indices)
    out = nm_spmm(t, cupy.asarray(b))
    cupy.cuda.Device().synchronize()
    assert out.dtype == cupy.float32 and out.shape == (rows, cols)
    got = cupy.asnumpy(out).astype(np.float64)
    assert np.isfinite(got).all()
    assert np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30) < tol


def test_cusparselt_baseline_if_available():
    import cupy

    from kernels.nm_cuda import cusparselt_2_4_available, cusparselt_2_4_prepare

    if not cusparselt_2_4_available():
        pytest.skip("cuSPARSELt not usable through CuPy here")
    rng = np.random.default_rng(0)
    a = cupy.asarray(rng.standard_normal((256, 256)).astype("float16"))
    b = cupy.asarray(rng.standard_normal((256, 128)).astype("float16"))
    fn, args = cusparselt_2_4_prepare(a, b)
    c = fn(*args)
    ref = a.astype(cupy.float32) @ b.astype(cupy.float32)  # a was pruned in place to 2:4
    assert float(cupy.linalg.norm(c.astype(cupy.float32) - ref) / cupy.linalg.norm(ref)) < 1e-2
