"""kernels.nm.cpu: both CPU paths against float64 dense math, the fixed path rule, bit-identical reruns."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.nm import nm_compress, nm_decompress, nm_spmm
from kernels.nm.cpu import GATHER_DENSITY, choose_impl, nm_spmm_numpy


def _ref(t, b):
    return nm_decompress(t).astype(np.float64) @ b.astype(np.float64)


def _check(got, t, b):
    # Each output is a float32 sum of G*n products: bound the error by |A| @ |B| elementwise.
    bound = np.abs(nm_decompress(t)).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert got.dtype == np.float32
    assert np.all(np.abs(got - _ref(t, b)) <= 1e-5 * bound + 1e-30)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 80),
    k=st.integers(1, 70),
    cols=st.integers(1, 40),
    nm=st.sampled_from([(1, 8), (2, 4), (1, 4), (3, 8), (2, 3), (1, 32), (4, 4)]),
    layout=st.sampled_from(["element", "vector"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_both_paths_match_float64(rows, k, cols, nm, layout, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((rows, k)) + 0.1).astype(np.float32)
    b = rng.standard_normal((k, cols)).astype(np.float32)
    t = nm_compress(a, *nm, axis=1, layout=layout)
    impls = ["decompress_blas"] + (["gather_gemm"] if layout == "vector" else [])
    for impl in impls:
        _check(nm_spmm_numpy(t, b, impl), t, b)
    _check(nm_spmm(t, b), t, b)


def test_panels_and_blocks_cover_a_large_case(monkeypatch):
    # Several 64-row blocks and (with 64 KB panels) six column panels, a ragged last vector, K % m != 0.
    import kernels.nm.cpu

    monkeypatch.setattr(kernels.nm.cpu, "_PANEL_BYTES", 1 << 16)
    rng = np.random.default_rng(7)
    a = rng.standard_normal((300, 1001)).astype(np.float32)
    b = rng.standard_normal((1001, 700)).astype(np.float32)
    t = nm_compress(a, 1, 8, axis=1, layout="vector")
    for impl in ("gather_gemm", "decompress_blas"):
        _check(nm_spmm_numpy(t, b, impl), t, b)


def test_rule_is_fixed_by_layout_and_density():
    a = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    assert choose_impl(nm_compress(a, 1, 8, axis=1, layout="vector")) == "gather_gemm"
    assert choose_impl(nm_compress(a, 2, 8, axis=1, layout="vector")) == "gather_gemm"
    assert 3 / 8 > GATHER_DENSITY
    assert choose_impl(nm_compress(a, 3, 8, axis=1, layout="vector")) == "decompress_blas"
    assert choose_impl(nm_compress(a, 1, 8, axis=1, layout="element")) == "decompress_blas"


@pytest.mark.parametrize("layout", ["element", "vector"])
def test_bit_identical_whatever_the_thread_count(layout, monkeypatch):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((260, 515)).astype(np.float32)
    b = rng.standard_normal((515, 300)).astype(np.float32)
    t = nm_compress(a, 1, 8, axis=1, layout=layout)
    monkeypatch.setenv("ACCELSIM_CPU_THREADS", "1")
    one = nm_spmm(t, b)
    monkeypatch.setenv("ACCELSIM_CPU_THREADS", "2")
    two = nm_spmm(t, b)
    assert one.tobytes() == two.tobytes() == nm_spmm(t, b).tobytes()


def test_gather_panels_bit_identical_on_a_pool_and_in_the_calling_thread(monkeypatch):
    """Big enough for BLAS to be held to one thread, cut into 8 panels: two pool workers, or one worker in the
    calling thread (no pool), give the same bytes, and both match float64."""
    import concurrent.futures

    import kernels.nm.cpu as cpu

    pools = []

    class Spy(concurrent.futures.ThreadPoolExecutor):
        def __init__(self, workers):
            pools.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(cpu, "ThreadPoolExecutor", Spy)
    monkeypatch.setattr(cpu, "_PANEL_BYTES", 1 << 16)  # 128-wide panels at depth 128
    rng = np.random.default_rng(7)
    a = rng.standard_normal((96, 1024)).astype(np.float32)
    b = rng.standard_normal((1024, 1000)).astype(np.float32)
    t = nm_compress(a, 1, 8, axis=1, layout="vector")
    assert choose_impl(t) == "gather_gemm" and 2.0 * 96 * 128 * 1000 > cpu._SERIAL_FLOPS
    monkeypatch.setenv("ACCELSIM_CPU_THREADS", "1")
    one = nm_spmm(t, b)
    assert pools == []
    monkeypatch.setenv("ACCELSIM_CPU_THREADS", "2")
    two = nm_spmm(t, b)
    assert pools == [2]
    assert one.tobytes() == two.tobytes()
    ref = nm_decompress(t).astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(one, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cols, panel_bytes", [(8, 1 << 21), (1000, 1 << 16), (100, 1 << 12)])
def test_gather_plan_is_how_the_call_cuts_its_work(cols, panel_bytes, monkeypatch):
    """The plan a trace records (vectors, depth, width, panels, workers) is what the call hands its workers."""
    import kernels.nm.cpu as cpu

    monkeypatch.setattr(cpu, "_PANEL_BYTES", panel_bytes)
    seen = []
    real = cpu._run

    def spy(fn, tasks, flops, scratch):
        seen.append((list(tasks), flops))
        return real(fn, tasks, flops, scratch)

    monkeypatch.setattr(cpu, "_run", spy)
    rng = np.random.default_rng(11)
    a = rng.standard_normal((70, 1024)).astype(np.float32)
    b = rng.standard_normal((1024, cols)).astype(np.float32)
    t = nm_compress(a, 1, 8, axis=1, layout="vector")
    plan = cpu.gather_plan(t, cols, 4)
    y = nm_spmm(t, b)
    (tasks, flops), = seen
    assert plan["vectors"] == 3 and plan["depth"] == 128 and plan["panels"] == len(tasks)
    assert tasks[0] == (0, plan["width"]) and tasks[-1][1] == cols
    assert plan["held"] == (flops >= cpu._SERIAL_FLOPS)
    np.testing.assert_allclose(y, nm_decompress(t).astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-4)


def test_gather_needs_the_vector_layout():
    a = np.ones((4, 8), dtype=np.float32)
    with pytest.raises(ValueError):
        nm_spmm_numpy(nm_compress(a, 1, 8, axis=1), np.ones((8, 2), np.float32), "gather_gemm")
