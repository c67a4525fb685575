"""ACCELSIM_BACKEND=cupy without a usable GPU: the Python API and the CLI refuse with the same one line."""

import numpy as np
import pytest

import kernels
import kernels.backend as backend
from conftest import assert_exit_2, run_in_process

NO_GPU = "backend 'cupy' requested but no usable CUDA device/CuPy"


@pytest.fixture
def cupy_without_gpu(monkeypatch):
    monkeypatch.setenv("ACCELSIM_BACKEND", "cupy")
    monkeypatch.setattr(backend, "_usable_cupy", lambda: None)


def test_python_api_refuses(cupy_without_gpu):
    a = np.arange(1.0, 33.0).reshape(4, 8)
    with pytest.raises(backend.BackendError) as exc:
        kernels.nm_compress(a, 2, 4)
    assert str(exc.value).startswith(NO_GPU) and "\n" not in str(exc.value)
    with pytest.raises(backend.BackendError, match="no usable CUDA"):
        kernels.kron_matmul(a[:, :4], [np.eye(2), np.eye(2)])


def test_cli_refuses_with_the_same_line(cupy_without_gpu, tmp_path, capsys, monkeypatch):
    with pytest.raises(backend.BackendError) as exc:
        kernels.nm_compress(np.ones((4, 8)), 2, 4)
    code, _, err = run_in_process(capsys, monkeypatch, "kernels", "run", "--suite", "gemm", "--out", str(tmp_path / "t"))
    assert_exit_2((code, "", err), NO_GPU)
    assert err.strip() == f"accelsim: error: {exc.value}"
    assert not (tmp_path / "t").exists()


def test_unknown_backend_refused_alike(monkeypatch):
    monkeypatch.setenv("ACCELSIM_BACKEND", "tpu")
    with pytest.raises(backend.BackendError, match="unknown backend 'tpu'"):
        kernels.nm_compress(np.ones((4, 8)), 2, 4)
    with pytest.raises(backend.BackendError, match="unknown backend 'tpu'"):
        backend.get_xp()


def test_numpy_data_runs_when_numpy_or_auto(monkeypatch):
    a = np.arange(1.0, 33.0).reshape(4, 8)
    for value in ("numpy", "auto"):
        monkeypatch.setenv("ACCELSIM_BACKEND", value)
        t = kernels.nm_compress(a, 2, 4)
        np.testing.assert_array_equal(kernels.nm_decompress(t), np.where(np.arange(8) % 4 >= 2, a, 0))
