"""Distributed Kron-matmul equals the single-process result; its byte counts follow closed forms."""

import functools
import math

import numpy as np
import pytest

pytest.importorskip("dask.distributed")
from dask.distributed import Client, LocalCluster  # noqa: E402

from kernels import InputError, kron_matmul  # noqa: E402
from kernels.kron.dist import kron_comm_bytes, kron_matmul_dist  # noqa: E402

SHAPES = [(4, 3), (2, 5), (4, 2)]


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=4, processes=False, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as c:
            yield c


def _data(m=12, dtype=np.float64):
    rng = np.random.default_rng(7)
    factors = [rng.uniform(0.5, 1.5, s).astype(dtype) for s in SHAPES]
    x = rng.uniform(-1.5, 1.5, (m, math.prod(p for p, _ in SHAPES))).astype(dtype)
    return x, factors


@pytest.mark.parametrize("grid", [(2, 1), (1, 2), (4, 1), (2, 2), (1, 4)])
def test_equals_single_process(client, grid):
    x, factors = _data()
    y, report = kron_matmul_dist(x, factors, grid, client=client)
    np.testing.assert_allclose(y, kron_matmul(x, factors), rtol=1e-12)
    assert report.grid == grid


@pytest.mark.parametrize("cols", [1, 2, 4])
@pytest.mark.parametrize("rows", [1, 2])
def test_comm_bytes_closed_form(rows, cols):
    m, isz = 12, 8
    p1 = SHAPES[0][0]
    tail = math.prod(q for _, q in SHAPES[1:])
    # Width of the intermediate before each factor, last first: 32, then 32/4·2 = 16, then 16/2·5 = 40.
    before = [4 * 2 * 4, 4 * 2 * 2, 4 * 5 * 2]
    r = kron_comm_bytes(m, SHAPES, (rows, cols), isz)
    assert r.exchange_bytes == m * p1 * tail * isz * (cols - 1) // cols
    assert r.naive_exchange_bytes == sum(m * k * isz * (cols - 1) // cols for k in before)
    assert r.io_bytes == m * (32 + 3 * 5 * 2) * isz
    if cols > 1:
        assert r.saving == pytest.approx(sum(before) / (p1 * tail))


def test_grid_errors():
    x, factors = _data()
    with pytest.raises(InputError, match="grid: 5 column blocks exceed P1=4"):
        kron_comm_bytes(12, SHAPES, (1, 5), 8)
    with pytest.raises(InputError, match="grid: 13 row blocks"):
        kron_matmul_dist(x, factors, (13, 1), client=object())


def test_missing_dask_names_the_extra(monkeypatch):
    import sys

    from kernels.kron import dist as kron_dist

    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(ImportError, match=r"accelsim\[dist\]"):
        kron_dist._client(None, 1)


def test_cpu_cells_report_numpy(client):
    x, factors = _data()
    y, report = kron_matmul_dist(x, factors, (2, 2), client=client, device="auto")
    np.testing.assert_allclose(y, kron_matmul(x, factors), rtol=1e-12)
    assert report.backends == ("numpy",) * 4


def test_bad_device_is_refused(client):
    x, factors = _data()
    with pytest.raises(InputError, match="device: unknown value 'tpu'"):
        kron_matmul_dist(x, factors, (1, 1), client=client, device="tpu")


@pytest.mark.gpu
def test_gpu_cells_run_the_kernel_and_match(client):
    """With a GPU each cell multiplies on it; result and byte counts equal the CPU run's."""
    from kernels.backend import gpu_available

    if not gpu_available():
        pytest.skip("needs CuPy and a CUDA device")
    rng = np.random.default_rng(11)
    factors = [rng.uniform(-1, 1, (8, 8)).astype(np.float32) for _ in range(4)]
    x = rng.uniform(-1, 1, (64, 8**4)).astype(np.float32)
    y_cpu, rep_cpu = kron_matmul_dist(x, factors, (2, 2), client=client, device="cpu")
    y_gpu, rep_gpu = kron_matmul_dist(x, factors, (2, 2), client=client, device="gpu")
    assert all(b.startswith("cupy:") for b in rep_gpu.backends) and len(rep_gpu.backends) == 4
    assert rep_gpu.exchange_bytes == rep_cpu.exchange_bytes
    ref = x.astype(np.float64) @ functools.reduce(np.kron, [f.astype(np.float64) for f in factors])
    for y in (y_cpu, y_gpu):
        assert np.linalg.norm(y - ref) <= 1e-5 * np.linalg.norm(ref)
