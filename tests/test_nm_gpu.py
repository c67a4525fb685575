"""The packed CUDA-core N:M kernels (forced: the dispatcher would take cuSPARSELt for eligible float16
shapes) against float64: both layouts, every tile configuration, split-K, ragged shapes, within the
float32 accumulation bound for K; needs a GPU (skipped cleanly without one)."""

import zlib

import numpy as np
import pytest
from roundoff import assert_within_bound, dot_bound

from kernels.backend import gpu_available
from kernels.nm import nm_compress, nm_decompress
from kernels.nm.configs import IMPL_NAMES, candidates
from kernels.nm.dispatch import CUDA_CORE, spmm_cupy
from kernels.nm.pack import entries_per_block

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="no usable CUDA device / CuPy")]

PATTERNS = [(2, 4), (4, 8), (3, 8), (2, 8), (1, 8), (1, 4), (3, 5), (4, 4), (7, 32), (1, 32)]
SHAPES = [(1, 1, 1), (64, 64, 64), (65, 130, 97), (200, 33, 259), (256, 512, 1024)]


@pytest.fixture(autouse=True)
def _private_tuning_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELSIM_CACHE_DIR", str(tmp_path))


def _data(shape, dtype, seed):
    rows, cols, k = shape
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((rows, k)) + 0.01).astype(dtype)
    b = (rng.standard_normal((k, cols)) + 0.01).astype(dtype)
    return a, b


def _close(got, a_nm_host, b):
    """Elementwise error within gamma_K(float32) * (|A| @ |B|): float32 accumulation of K products (fair where
    sums cancel; float16 products are exact in float32)."""
    assert_within_bound(got, nm_decompress(a_nm_host), b, dot_bound(b.shape[0], np.float32, np.float32))


@pytest.mark.parametrize("layout", ["element", "vector"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("pattern", PATTERNS, ids=[f"{n}:{m}" for n, m in PATTERNS])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_cuda_matches_numpy(shape, pattern, dtype, layout, monkeypatch):
    import cupy

    monkeypatch.setenv("ACCELSIM_AUTOTUNE", "0")  # the heuristic default tile; every tile is covered below
    n, m = pattern
    a, b = _data(shape, dtype, zlib.crc32(repr((shape, pattern, dtype, layout)).encode()))
    host = nm_compress(a, n, m, layout=layout)
    t = nm_compress(cupy.asarray(a), n, m, layout=layout)
    np.testing.assert_array_equal(cupy.asnumpy(t.indices), host.indices)
    out = spmm_cupy([t], cupy.asarray(b), impl=CUDA_CORE)  # the CUDA-core kernel, whatever would tune fastest
    assert isinstance(out, cupy.ndarray) and out.dtype == cupy.float32
    _close(cupy.asnumpy(out), host, b)


CONFIG_CASES = [((2, 4), "vector"), ((1, 8), "vector"), ((3, 8), "vector"), ((2, 4), "element"), ((1, 8), "element"),
                ((3, 5), "element"), ((1, 32), "vector")]


@pytest.mark.parametrize("pattern,layout", CONFIG_CASES, ids=[f"{p[0]}:{p[1]}-{lay}" for p, lay in CONFIG_CASES])
@pytest.mark.parametrize("shape", [(65, 130, 97), (200, 36, 531), (300, 260, 1030)], ids=str)
def test_every_candidate_config_matches_numpy(shape, pattern, layout):
    """Each tile, gather and split-K variant the autotuner may pick, run directly."""
    import cupy

    from kernels.nm.cuda import _device, run_config

    n, m = pattern
    a, b = _data(shape, "float32", 11)
    host = nm_compress(a, n, m, layout=layout)
    t = nm_compress(cupy.asarray(a), n, m, layout=layout)
    lblock, e_l = entries_per_block([t])
    _, smem_limit, sms = _device()
    cols4 = -(-shape[1] // 4) * 4
    cands = candidates(layout, lblock, e_l, n / m, shape[0], cols4, smem_limit, sms)
    forced_split = [{**c, "split": 3} for c in cands[:2]]  # uneven split ranges too
    assert cands
    for cfg in cands + forced_split:
        out = run_config([t], cupy.asarray(b), cfg)
        _close(cupy.asnumpy(out), host, b)


def test_plan_names_the_implementation_and_is_cached():
    import cupy

    from kernels import autotune
    from kernels.nm.cuda import plan

    a, b = _data((256, 256, 512), "float32", 5)
    t = nm_compress(cupy.asarray(a), 1, 8, layout="vector")
    cfg = plan([t], cupy.asarray(b))
    assert cfg["impl"] in IMPL_NAMES.values() and {"bm", "bn", "tm", "stages", "emax", "ks", "split"} <= set(cfg)
    assert autotune.cache_path().exists()
    assert plan([t], cupy.asarray(b)) == cfg


def test_cusparselt_baseline_if_available():
    import cupy

    from kernels.nm.cuda import cusparselt_2_4_available, cusparselt_2_4_prepare

    if not cusparselt_2_4_available():
        pytest.skip("cuSPARSELt not usable through CuPy here")
    rng = np.random.default_rng(0)
    a = cupy.asarray(rng.standard_normal((256, 256)).astype("float16"))
    b = cupy.asarray(rng.standard_normal((256, 128)).astype("float16"))
    fn, args = cusparselt_2_4_prepare(a, b)
    c = fn(*args)
    ref = a.astype(cupy.float32) @ b.astype(cupy.float32)  # a was pruned in place to 2:4
    assert float(cupy.linalg.norm(c.astype(cupy.float32) - ref) / cupy.linalg.norm(ref)) < 1e-2
