"""The CuPy launcher's host logic on the CPU: a NumPy stand-in for CuPy runs each launch through the kernel model.

The stand-in kernel rebuilds the launch from the very arguments kron_gpu passes (factor
pointers, packed shapes, grid, shared-memory bytes, buffer size) and replays it with
:func:`kernels.kron.model.emulate_launch`, so wrong arguments, a wrong ping-pong buffer or a
too-small shared-memory size show up as a wrong product (or NaN) here, before any GPU run.
"""

import functools
import math
import types

import numpy as np
import pytest

from kernels import autotune
from kernels.kron import gpu as kron_gpu
from kernels.kron.model import emulate_launch
from kernels.kron.plan import MAX_FACTORS, THREADS, Launch, candidates

SMS, SMEM = 132, 227 * 1024


class _Fn:
    def __init__(self, name, calls):
        self.name, self.calls = name, calls
        self.max_dynamic_shared_size_bytes = 48 * 1024

    def __call__(self, grid, block, args, shared_mem=0):
        assert block == (THREADS,)
        assert shared_mem <= max(48 * 1024, self.max_dynamic_shared_size_bytes)
        x, y, *rest = args
        ptrs, pq = rest[:MAX_FACTORS], [int(v) for v in rest[MAX_FACTORS : 2 * MAX_FACTORS]]
        nf, m, j_count, nj_log, tm, buf_elems = (int(v) for v in rest[2 * MAX_FACTORS :])
        shapes = tuple((v & 0xFFFF, v >> 16) for v in pq[:nf])
        assert all(v == 0 for v in pq[nf:])
        assert [f.shape for f in ptrs[:nf]] == list(shapes)
        rk, rq = (int(v) for v in self.name.rsplit("_", 1)[1].split("x"))
        la = Launch("fastkron", shapes, 0, m, x.shape[1], y.shape[1], rk, rq, 1 << nj_log, tm, buf_elems, 0,
                    shared_mem, tuple(grid))
        assert la.j_count == j_count
        self.calls.append(la)
        y[...] = emulate_launch(x, list(ptrs[:nf]), la)


@pytest.fixture
def fake_cp(monkeypatch, tmp_path):
    """A CuPy stand-in over NumPy; ``fake_cp.calls`` lists the launches made."""
    calls = []
    fns = {}
    module = types.SimpleNamespace(get_function=lambda name: fns.setdefault(name, _Fn(name, calls)))
    events = iter(range(10**6))

    class _Event:
        def record(self, stream=None):
            self.t = next(events)

        def synchronize(self):
            pass

    stream = types.SimpleNamespace(synchronize=lambda: None)
    cuda = types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0), Event=_Event,
                                 get_current_stream=lambda: stream, get_elapsed_time=lambda a, b: float(b.t - a.t))
    cp = types.SimpleNamespace(__name__="cupy", empty=np.empty, ascontiguousarray=np.ascontiguousarray, cuda=cuda,
                               calls=calls)
    monkeypatch.setattr(kron_gpu, "cuda_function", lambda source, name, feature: module.get_function(name))
    monkeypatch.setattr(kron_gpu, "_device", lambda dev: ("fake-gpu", SMS, SMEM))
    monkeypatch.setattr(kron_gpu, "_PLANS", {})
    monkeypatch.setattr(kron_gpu, "_TUNED", {})
    monkeypatch.setenv("ACCELSIM_CACHE_DIR", str(tmp_path))
    autotune.clear()
    return cp


def _case(shapes, m, dtype, seed=0):
    rng = np.random.default_rng(seed)
    fs = [rng.uniform(-1, 1, s).astype(dtype) for s in shapes]
    x = rng.uniform(-1, 1, (m, math.prod(p for p, _ in shapes))).astype(dtype)
    ref = x.astype(np.float64) @ functools.reduce(np.kron, [f.astype(np.float64) for f in fs])
    return x, fs, ref


@pytest.mark.parametrize(
    "shapes", [[(8, 8)] * 4, [(4, 4)] * 5, [(2, 3), (3, 2), (4, 5)], [(16, 16)] * 2, [(4, 1), (1, 4), (2, 2)]], ids=str
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_launcher_arguments_compute_the_product(fake_cp, shapes, dtype):
    x, fs, ref = _case(shapes, 6, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for cfg in candidates(6, shapes, np.dtype(dtype).name, SMS, SMEM):
        fake_cp.calls.clear()
        y = kron_gpu.kron_fastkron_gpu(fake_cp, x, fs, cfg)
        assert y.shape == ref.shape and not np.isnan(y).any()
        assert np.linalg.norm(y - ref) <= tol * np.linalg.norm(ref), cfg
        assert sum(len(la.shapes) for la in fake_cp.calls) == len(shapes)


def test_ping_pong_never_overwrites_its_own_input(fake_cp):
    """Four single-factor launches alternate between the output and one scratch buffer."""
    x, fs, ref = _case([(4, 4)] * 4, 5, np.float64, seed=3)
    cfg = {"impl": "kron_fastkron_cuda", "variant": "4x4", "depth": 1, "nj": 16, "tm": 1}
    y = kron_gpu.kron_fastkron_gpu(fake_cp, x, fs, cfg)
    assert len(fake_cp.calls) == 4
    assert np.linalg.norm(y - ref) <= 1e-12 * np.linalg.norm(ref)


def test_auto_times_shuffle_and_records_the_choice(fake_cp):
    x, fs, ref = _case([(8, 8)] * 3, 4, np.float32, seed=4)
    cfg = kron_gpu.kron_config_gpu(fake_cp, x, fs, "auto")
    assert cfg["impl"] in ("kron_fastkron_cuda", "kron_shuffle_cupy")
    assert autotune.lookup("kron_matmul", "fake-gpu", {"m": 4, "shapes": [[8, 8]] * 3, "dtype": "float32",
                                                       "algorithm": "auto"}) == cfg
    y = kron_gpu.kron_gpu(fake_cp, x, fs, "auto")
    assert np.linalg.norm(y - ref) <= 1e-5 * np.linalg.norm(ref)
    assert kron_gpu.kron_config_gpu(fake_cp, x, fs, "fused")["impl"] == "kron_fastkron_cuda"
