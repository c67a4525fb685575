"""CuPy nm_spmm (the packed CUDA-core kernels) against the NumPy path: both layouts, every tile
configuration, split-K, ragged shapes; needs a GPU (skipped cleanly without one)."""

import numpy as np
import pytest

from kernels.backend import gpu_available
from kernels.nm import nm_compress, nm_decompress, nm_spmm
from kernels.nm_configs import IMPL_NAMES, candidates
from kernels.nm_pack import entries_per_block

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


def _close(got, a_nm_host, b, tol):
    """Elementwise error within tol * (|A| @ |B|): fair where sums cancel."""
    dense = nm_decompress(a_nm_host).astype(np.float64)
    ref = dense @ b.astype(np.float64)
    scale = np.abs(dense) @ np.abs(b.astype(np.float64))
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert (np.abs(got - ref) <= tol * scale + 1e-30).all(), np.abs(got - ref).max()


@pytest.mark.parametrize("layout", ["element", "vector"])
@pytest.mark.parametrize("dtype,tol", [("float32", 5e-5), ("float16", 5e-5)])
@pytest.mark.parametrize("pattern", PATTERNS, ids=[f"{n}:{m}" for n, m in PATTERNS])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_cuda_matches_numpy(shape, pattern, dtype, tol, layout, monkeypatch):
    import cupy

    monkeypatch.setenv("ACCELSIM_AUTOTUNE", "0")  # the heuristic default; every tile is covered below
    n, m = pattern
    a, b = _data(shape, dtype, hash((shape, pattern, dtype, layout)) % 2**32)
    host = nm_compress(a, n, m, layout=layout)
    t = nm_compress(cupy.asarray(a), n, m, layout=layout)
    np.testing.assert_array_equal(cupy.asnumpy(t.indices), host.indices)
    out = nm_spmm(t, cupy.asarray(b))
    assert isinstance(out, cupy.ndarray) and out.dtype == cupy.float32
    _close(cupy.asnumpy(out), host, b, tol)  # float16 inputs are exact in float32 products


CONFIG_CASES = [((2, 4), "vector"), ((1, 8), "vector"), ((3, 8), "vector"), ((2, 4), "element"), ((1, 8), "element"),
                ((3, 5), "element"), ((1, 32), "vector")]


@pytest.mark.parametrize("pattern,layout", CONFIG_CASES, ids=[f"{p[0]}:{p[1]}-{lay}" for p, lay in CONFIG_CASES])
@pytest.mark.parametrize("shape", [(65, 130, 97), (200, 36, 531), (300, 260, 1030)], ids=str)
def test_every_candidate_config_matches_numpy(shape, pattern, layout):
    """Each tile, gather and split-K variant the autotuner may pick, run directly."""
    import cupy

    from kernels.nm_cuda import _device, run_config

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
        _close(cupy.asnumpy(out), host, b, 5e-5)


def test_plan_names_the_implementation_and_is_cached():
    import cupy

    from kernels import autotune
    from kernels.nm_cuda import plan

    a, b = _data((256, 256, 512), "float32", 5)
    t = nm_compress(cupy.asarray(a), 1, 8, layout="vector")
    cfg = plan([t], cupy.asarray(b))
    assert cfg["impl"] in IMPL_NAMES.values() and {"bm", "bn", "tm", "stages", "emax", "ks", "split"} <= set(cfg)
    assert autotune.cache_path().exists()
    assert plan([t], cupy.asarray(b)) == cfg


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
