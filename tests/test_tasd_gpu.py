"""TASD on CuPy arrays: the same terms as NumPy, and the CUDA-core TASD kernel (forced by name) in ONE launch
for the whole series, within the float32 accumulation bound for K."""

import zlib

import ml_dtypes
import numpy as np
import pytest
from roundoff import assert_within_bound, dot_bound

from kernels.backend import gpu_available
from kernels.nm.dispatch import CUDA_CORE, spmm_cupy
from kernels.tasd import tasd_decompose, tasd_errors, tasd_reconstruct

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="no usable CUDA device / CuPy")]

SERIES = ["2:4", "2:4+1:4", "4:8+2:8", "2:4+2:4", "1:4+1:4+1:4+1:4", "2:8+1:8"]
SHAPES = [(1, 1, 1), (64, 64, 64), (65, 130, 97), (256, 512, 1024)]


def _data(shape, series, dtype):
    rows, cols, k = shape
    rng = np.random.default_rng(zlib.crc32(repr((shape, series, dtype)).encode()))  # stable across runs
    dt = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    a = (rng.standard_normal((rows, k)) + 0.01).astype(dt)
    b = (rng.standard_normal((k, cols)) + 0.01).astype(dt)
    return a, b


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_cupy_terms_equal_numpy_terms(shape, series, dtype):
    """The same kept values and positions on both backends: bfloat16 too (the 2:4 bf16 figure needs it)."""
    import cupy

    a, _ = _data(shape, series, dtype)
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


@pytest.fixture(autouse=True)
def _private_tuning_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELSIM_CACHE_DIR", str(tmp_path))


@pytest.mark.parametrize("layout", ["element", "vector"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_cupy_tasd_spmm_matches_float64_reference(shape, series, dtype, layout, monkeypatch):
    import cupy

    import kernels.nm.cuda as nc

    launches = []
    real = nc._launch
    monkeypatch.setattr(nc, "_launch", lambda *a, **k: launches.append(1) or real(*a, **k))
    a, b = _data(shape, series, dtype)
    host = tasd_decompose(a, series, layout=layout)
    monkeypatch.setenv("ACCELSIM_AUTOTUNE", "0")  # no timing launches: count the call's own
    # Forced: with cuSPARSELt loaded the dispatcher would take sparse tensor cores for eligible float16 shapes.
    out = spmm_cupy(tasd_decompose(cupy.asarray(a), series, layout=layout), cupy.asarray(b), impl=CUDA_CORE)
    cupy.cuda.Device().synchronize()
    assert isinstance(out, cupy.ndarray) and out.dtype == cupy.float32
    assert len(launches) == 1  # every term in one kernel launch
    # Disjoint terms: at most K non-zero products per output, plus one addition per term's partial sums.
    assert_within_bound(cupy.asnumpy(out), tasd_reconstruct(host), b,
                        dot_bound(shape[2] + len(host), np.float32, np.float32))


def test_tasd_plan_is_the_one_pass_implementation():
    import cupy

    from kernels.nm.cuda import plan

    a, b = _data((256, 512, 1024), "2:4+1:4", "float32")
    terms = tasd_decompose(cupy.asarray(a), "2:4+1:4")
    cfg = plan(terms, cupy.asarray(b))
    assert cfg["impl"] == "tasd_onepass_cuda" and cfg["mode"] in (2, 3)  # element layout: slab or expand
