"""CuPy Kron-matmul (fused CUDA kernel and cuBLAS shuffle) against the NumPy float64 reference."""

import functools
import math
import zlib

import numpy as np
import pytest

from kernels.backend import gpu_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device"),
]

CASES = [
    [(8, 8)] * 4,  # one launch fusing all four
    [(8, 8)] * 6,  # two launches (shared-memory cap)
    [(2, 3), (3, 2), (4, 5)],  # mixed shapes
    [(32, 32)] * 3,
    [(128, 128)] * 2,  # one factor per launch
    [(5, 7)],
]


@pytest.mark.parametrize("shapes", CASES, ids=str)
@pytest.mark.parametrize("algorithm", ["fused", "shuffle"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_matches_numpy(shapes, algorithm, dtype):
    import cupy as cp

    from kernels import kron_matmul

    rng = np.random.default_rng(zlib.crc32(f"{shapes}{algorithm}".encode()))
    m = 37
    factors = [rng.uniform(-1, 1, s) for s in shapes]
    x = rng.uniform(-1, 1, (m, math.prod(p for p, _ in shapes)))
    ref = kron_matmul(x, factors, "shuffle")
    if math.prod(p for p, _ in shapes) <= 256:
        np.testing.assert_allclose(ref, x @ functools.reduce(np.kron, factors), rtol=1e-10)
    y = kron_matmul(cp.asarray(x, dtype), [cp.asarray(f, dtype) for f in factors], algorithm)
    assert isinstance(y, cp.ndarray) and y.dtype == dtype
    y = cp.asnumpy(y)
    assert np.isfinite(y).all()
    tol = 1e-4 if dtype == np.float32 else 1e-11
    assert np.linalg.norm(y - ref) <= tol * np.linalg.norm(ref)


def test_many_rows_wrap_grid_y():
    """More rows than gridDim.y allows (65535): blocks loop over rows."""
    import cupy as cp

    from kernels import kron_matmul

    rng = np.random.default_rng(3)
    factors = [rng.uniform(-1, 1, (2, 2)) for _ in range(2)]
    x = rng.uniform(-1, 1, (70000, 4))
    y = cp.asnumpy(kron_matmul(cp.asarray(x), [cp.asarray(f) for f in factors], "fused"))
    np.testing.assert_allclose(y, kron_matmul(x, factors), rtol=1e-12)
