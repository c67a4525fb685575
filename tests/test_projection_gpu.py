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


# ----------------------------------------------------------------------------- the device path


BILEVEL = {"inf": project_l1inf_bilevel, "l1": project_l11_bilevel, "l2": project_l12_bilevel}
TAGS = {"inf": "l1inf", "l1": "l11", "l2": "l12"}
SHAPES = [(257, 513), (1000, 1000), (64, 20_000), (3000, 7), (1, 900), (900, 1)]  # 20 000 groups: global scratch


def _data(shape, dtype, seed=0):
    """Rows and columns of very different scale (groups really get zeroed), plus exact ties."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(shape) * rng.exponential(size=shape[1]) * rng.exponential(size=(shape[0], 1))
    y[::7] = np.round(y[::7])
    return y.astype(dtype)


@pytest.mark.parametrize("inner", ["inf", "l2", "l1"])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_device_matches_model_and_host(cp, inner, axis, dtype, shape):
    from kernels.projection import bilevel_impl
    from kernels.projection.device import bilevel_device

    y = _data(shape, dtype)
    fn = BILEVEL[inner]
    for frac in (0.05, 0.5, 1.5):  # the last is inside the ball: unchanged
        r = frac * mixed_norm(y, ("l1", inner), axes=(1 - axis, axis))
        yd = cp.asarray(y)
        if bilevel_impl(yd, inner, axis) != f"bilevel_{TAGS[inner]}_device":
            pytest.skip("group too long for the shared-memory l1 kernel")
        got = fn(yd, r, axis, impl="device")
        assert isinstance(got, cp.ndarray) and got.dtype == dtype and got.shape == y.shape
        got = cp.asnumpy(got)
        scale = float(np.abs(y).max()) * max(shape)
        tol = 2e-6 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, fn(y, r, axis), atol=tol * scale)
        g = np.moveaxis(y, axis, 0).reshape(y.shape[axis], -1)
        if inner != "l1" or g.shape[1] <= 1100:  # the ℓ1 model loops over groups in Python: keep it short
            model = np.moveaxis(bilevel_device(g, r, inner).reshape(np.moveaxis(y, axis, 0).shape), 0, axis)
            np.testing.assert_allclose(got, model, atol=tol * scale)
        if frac > 1:
            assert np.array_equal(got, y)
        assert bool((cp.asnumpy(fn(yd, r, axis, impl="device")) == got).all())  # run to run: same bits


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threshold_kernel_tau_and_sweeps_match_model(cp, dtype):
    from kernels.projection.device import _bilevel_cupy, _heuristic, l1_threshold

    y = _data((400, 3000), dtype, seed=3)
    r = 0.1 * mixed_norm(y, ("l1", "inf"), axes=(1, 0))
    info = cp.zeros(3, dtype=cp.float64)
    for max_sweeps in (64, 0):  # 0: the bisection finish
        _bilevel_cupy(cp.asarray(y), r, "inf", _heuristic(400, 3000, "cols", 132), max_sweeps, info)
        tau, sweeps, bisections = (float(x) for x in cp.asnumpy(info))
        m_tau, m_sweeps, m_bis = l1_threshold(np.abs(y).max(axis=0), r, max_sweeps)[1]
        assert tau == pytest.approx(m_tau, rel=1e-12) and sweeps == m_sweeps
        assert abs(bisections - m_bis) <= 2 and (bisections > 0) == (max_sweeps == 0)


@pytest.mark.parametrize("norms, axes", [(("l1", "inf", "inf"), None), (("l1", "l2", "l2"), (2, 0, 1)),
                                         (("l1", "inf", "inf"), (1, 2, 0))])
def test_multilevel_device(cp, norms, axes):
    from kernels.projection import multilevel_impl

    t = np.random.default_rng(4).standard_normal((16, 64, 48)).astype(np.float32)
    r = 0.1 * mixed_norm(t, norms, axes)
    td = cp.asarray(t)
    assert multilevel_impl(td, norms, axes).endswith("_device")
    got = cp.asnumpy(project_multilevel(td, r, norms, axes))
    np.testing.assert_allclose(got, project_multilevel(t, r, norms, axes), atol=1e-5 * float(np.abs(t).max()))
    assert mixed_norm(got, norms, axes) <= r * (1 + 1e-5)


def test_device_nonfinite_gives_nan(cp):
    y = cp.asarray(np.array([[1.0, np.nan, 2.0], [2.0, 3.0, -1.0]], np.float32))
    for fn in BILEVEL.values():
        assert bool(cp.isnan(fn(y, 1.0, impl="device")).all())


_SPIN = r"""
extern "C" __global__ void spin(long long cycles) {
    long long t0 = clock64();
    while (clock64() - t0 < cycles) { }
}
"""


def test_device_path_never_waits_for_the_gpu(cp):
    """Behind 0.2 s of queued GPU work the device call returns at once; the xp path (a host sync) cannot."""
    import time

    spin = cp.RawKernel(_SPIN, "spin")
    y = cp.asarray(_data((2048, 4096), np.float32))
    r = 0.1 * float(cp.abs(y).max(axis=0).sum())
    clock_hz = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["clockRate"] * 1e3
    for impl, waits in (("device", False), ("xp", True)):
        for fn in BILEVEL.values():
            fn(y, r, impl=impl)  # warm-up: compile, fill the memory pool
            cp.cuda.Device().synchronize()
            spin((1,), (1,), (np.int64(0.2 * clock_hz),))
            t0 = time.perf_counter()
            fn(y, r, impl=impl)
            took = time.perf_counter() - t0
            busy = not cp.cuda.get_current_stream().done
            cp.cuda.Device().synchronize()
            assert (took > 0.1) == waits, (impl, fn.__name__, took)
            assert busy or waits, (impl, fn.__name__)


def test_tune_caches_and_launch_config_reads_it(cp, tmp_path, monkeypatch):
    from kernels import autotune
    from kernels.projection.device import _candidates, launch_config, tune

    monkeypatch.setenv("ACCELSIM_CACHE_DIR", str(tmp_path))
    autotune.clear()
    y = cp.asarray(_data((512, 2048), np.float32))
    cfg = tune(y, 10.0, "inf")
    assert cfg in _candidates(512, 2048, "cols", cp.cuda.Device().attributes["MultiProcessorCount"])
    assert launch_config(y, "inf") == cfg and (tmp_path / "autotune.json").exists()
    autotune.clear()
