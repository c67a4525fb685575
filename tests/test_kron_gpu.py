"""CuPy Kron-matmul (FastKron-style CUDA kernel, every tuning candidate, and the cuBLAS shuffle) vs NumPy float64."""

import functools
import math
import zlib

import numpy as np
import pytest
from roundoff import dot_bound

from kernels.backend import gpu_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device"),
]

CASES = [
    [(8, 8)] * 4,  # one launch can fuse all four
    [(8, 8)] * 6,  # two or more launches
    [(2, 3), (3, 2), (4, 5)],  # rectangular, differing shapes, odd sizes (no padding, Q not a multiple of RQ)
    [(16, 16)] * 3,
    [(32, 32)] * 3,
    [(64, 64)] * 2,
    [(128, 128)] * 2,  # one factor per launch, 64 KB (fp32) of factor in shared memory
    [(5, 7)],
    [(4, 1), (1, 4), (2, 2)],
]


def _data(shapes, m, dtype, salt=""):
    rng = np.random.default_rng(zlib.crc32(f"{shapes}{m}{dtype}{salt}".encode()))
    factors = [rng.uniform(-1, 1, s) for s in shapes]
    x = rng.uniform(-1, 1, (m, math.prod(p for p, _ in shapes)))
    return x.astype(dtype), [f.astype(dtype) for f in factors]


def _ref(x, factors):
    """The float64 product and its error bound per element: a Kron-matmul contracts one factor at a time, so each
    output is a nested sum whose depth is the factors' row counts added, times |X| @ (|F1| x |F2| x ...)."""
    from kernels import kron_matmul

    ref = kron_matmul(x.astype(np.float64), [f.astype(np.float64) for f in factors], "shuffle")
    if math.prod(f.shape[0] for f in factors) <= 256:
        dense = functools.reduce(np.kron, [f.astype(np.float64) for f in factors])  # float64 before the products
        np.testing.assert_allclose(ref, x.astype(np.float64) @ dense, rtol=1e-9, atol=1e-12)
    scale = kron_matmul(np.abs(x.astype(np.float64)), [np.abs(f.astype(np.float64)) for f in factors], "shuffle")
    depth = sum(f.shape[0] for f in factors) + len(factors)
    return ref, dot_bound(depth, x.dtype, x.dtype) * scale


def _check(y, ref, dtype):
    """``y`` within the bound of ``ref`` = (float64 product, bound per element) from :func:`_ref`."""
    import cupy as cp

    ref, bound = ref
    assert isinstance(y, cp.ndarray) and y.dtype == dtype and y.shape == ref.shape
    y = cp.asnumpy(y)
    assert np.isfinite(y).all()
    err = np.abs(y.astype(np.float64) - ref)
    assert (err <= bound + dot_bound(bound.shape[-1], np.float64, np.float64) * np.abs(ref)).all(), (err - bound).max()


@pytest.mark.parametrize("shapes", CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_candidate_matches_numpy(shapes, dtype):
    """Each tiling the autotuner may choose computes the same product."""
    import cupy as cp

    from kernels.kron.gpu import _device, kron_fastkron_gpu
    from kernels.kron.plan import candidates

    m = 37
    x, factors = _data(shapes, m, dtype)
    ref = _ref(x, factors)
    xg, fg = cp.asarray(x), [cp.asarray(f) for f in factors]
    _, sms, smem = _device(cp.cuda.Device().id)
    for cfg in candidates(m, shapes, np.dtype(dtype).name, sms, smem):
        _check(kron_fastkron_gpu(cp, xg, fg, cfg), ref, dtype)


@pytest.mark.parametrize("algorithm", ["auto", "fused", "shuffle"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dispatcher_matches_numpy(algorithm, dtype, tmp_path, monkeypatch):
    import cupy as cp

    from kernels import kron_matmul
    from kernels.kron import kron_config
    from kernels.impls import IMPLS

    monkeypatch.setenv("ACCELSIM_CACHE_DIR", str(tmp_path))
    shapes = [(8, 8)] * 3 + [(4, 6)]
    x, factors = _data(shapes, 300, dtype, algorithm)
    xg, fg = cp.asarray(x), [cp.asarray(f) for f in factors]
    _check(kron_matmul(xg, fg, algorithm), _ref(x, factors), dtype)
    cfg = kron_config(xg, fg, algorithm)
    assert cfg["impl"] in IMPLS
    if algorithm == "fused":
        assert cfg["impl"] == "kron_fastkron_cuda" and {"variant", "depth", "nj", "tm"} <= set(cfg)


def test_factor_larger_than_shared_memory_runs_as_shuffle_step():
    """A 300×300 float64 factor (720 KB) cannot sit in shared memory: that step is cuBLAS, the rest fused."""
    import cupy as cp

    from kernels.kron.gpu import _device, kron_fastkron_gpu
    from kernels.kron.plan import candidates, plan

    shapes = [(300, 300), (4, 4), (4, 4)]
    x, factors = _data(shapes, 9, np.float64)
    _, sms, smem = _device(cp.cuda.Device().id)
    cfg = candidates(9, shapes, "float64", sms, smem)[0]
    assert [la.impl for la in plan(9, shapes, "float64", cfg, sms, smem)] == ["fastkron", "shuffle"]
    _check(kron_fastkron_gpu(cp, cp.asarray(x), [cp.asarray(f) for f in factors], cfg), _ref(x, factors), np.float64)


def test_many_rows_loop_over_row_tiles():
    """More row tiles than blocks in y: each block walks rows by, by + gridDim.y, ... ."""
    import cupy as cp

    from kernels import kron_matmul

    x, factors = _data([(2, 2), (2, 2)], 70000, np.float64)
    y = kron_matmul(cp.asarray(x), [cp.asarray(f) for f in factors], "fused")
    _check(y, _ref(x, factors), np.float64)


def test_same_inputs_same_bits():
    """Deterministic: no atomics, a fixed reduction order per output."""
    import cupy as cp

    from kernels import kron_matmul

    x, factors = _data([(16, 16)] * 3, 64, np.float32)
    xg, fg = cp.asarray(x), [cp.asarray(f) for f in factors]
    a = cp.asnumpy(kron_matmul(xg, fg, "fused"))
    b = cp.asnumpy(kron_matmul(xg, fg, "fused"))
    assert np.array_equal(a, b)


def test_random_shapes_property():
    """Hypothesis: fresh rectangular shapes, M and dtype; the tuned kernel against float64 np.kron."""
    import cupy as cp
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from kernels.kron.gpu import _device, kron_fastkron_gpu
    from kernels.kron.plan import candidates

    dims = st.integers(1, 9)
    shapes_st = st.lists(st.tuples(dims, dims), min_size=1, max_size=5).filter(
        lambda s: math.prod(p for p, _ in s) <= 4096 and math.prod(q for _, q in s) <= 4096
    )

    @settings(max_examples=25, deadline=None)
    @given(shapes=shapes_st, m=st.integers(1, 70), dtype=st.sampled_from([np.float32, np.float64]),
           pick=st.integers(0, 10**6), seed=st.integers(0, 2**32 - 1))
    def check(shapes, m, dtype, pick, seed):
        rng = np.random.default_rng(seed)
        factors = [(rng.uniform(0.5, 1.5, s) * rng.choice([-1.0, 1.0], s)).astype(dtype) for s in shapes]
        x = rng.uniform(-1, 1, (m, math.prod(p for p, _ in shapes))).astype(dtype)
        _, sms, smem = _device(cp.cuda.Device().id)
        cands = candidates(m, shapes, np.dtype(dtype).name, sms, smem)
        y = kron_fastkron_gpu(cp, cp.asarray(x), [cp.asarray(f) for f in factors], cands[pick % len(cands)])
        _check(y, _ref(x, factors), dtype)

    check()
