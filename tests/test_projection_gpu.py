"""CuPy projections against the NumPy reference; skipped cleanly without a usable GPU."""

import numpy as np
import pytest

from kernels.backend import gpu_available
from kernels.projection import (
    mixed_norm,
    project_l11_bilevel,
    project_l12_bilevel,
    project_l1_ball,
    project_l1inf_bilevel,
    project_l1inf_exact,
    project_multilevel,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device"),
]


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.mark.parametrize("fn", [project_l1inf_bilevel, project_l11_bilevel, project_l12_bilevel, project_l1inf_exact])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_numpy(cp, fn, axis, dtype):
    y = np.random.default_rng(0).standard_normal((257, 513)).astype(dtype)
    r = 0.2 * float(np.abs(y).max(axis=axis).sum())
    got = fn(cp.asarray(y), r, axis)
    assert isinstance(got, cp.ndarray) and got.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(cp.asnumpy(got), fn(y, r, axis), atol=tol, rtol=tol)


def test_l1_ball_and_multilevel(cp):
    rng = np.random.default_rng(1)
    v = rng.laplace(size=10_001)
    np.testing.assert_allclose(cp.asnumpy(project_l1_ball(cp.asarray(v), 30.0)), project_l1_ball(v, 30.0), atol=1e-10)
    t = rng.standard_normal((8, 16, 32))
    got = project_multilevel(cp.asarray(t), 5.0, ("l1", "inf", "l2"))
    np.testing.assert_allclose(cp.asnumpy(got), project_multilevel(t, 5.0, ("l1", "inf", "l2")), atol=1e-10)
    assert mixed_norm(got, ("l1", "inf", "l2")) <= 5.0 * (1 + 1e-9)


def test_inside_ball_unchanged(cp):
    y = cp.asarray(np.random.default_rng(2).standard_normal((64, 64)))
    big = 10 * float(cp.abs(y).max(axis=0).sum())
    assert bool((project_l1inf_bilevel(y, big) == y).all())
    assert bool((project_l1inf_exact(y, big) == y).all())
