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


@pytest.mark.parametrize("props, clock", [
    ({"clockRate": 1980000, "memoryClockRate": 2619000}, 1980.0),
    ({}, None),  # CUDA 13 drops clockRate and memoryClockRate from the device properties
])
def test_cupy_device_info_reads_the_properties_the_driver_has(monkeypatch, props, clock):
    """The CuPy device report from a stand-in ``cupy`` module: the SM clock in MHz where the driver gives
    ``clockRate`` (kHz), None where it does not (NVML reports it then), instead of a KeyError."""
    import sys
    import types

    from kernels import backend

    full = {"name": b"NVIDIA H200", "major": 9, "minor": 0, "multiProcessorCount": 132,
            "totalGlobalMem": 141 * 2**30, **props}
    runtime = types.SimpleNamespace(getDeviceProperties=lambda i: full)
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0), runtime=runtime))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    backend._device_info.cache_clear()
    try:
        info = backend._device_info("cupy")
    finally:
        backend._device_info.cache_clear()
    info = dict(info) if not isinstance(info, dict) else info
    assert info["device_name"] == "NVIDIA H200" and info["sm_count"] == 132 and info["compute_capability"] == "9.0"
    assert info["clock_mhz"] == clock
    assert info["memory_clock_mhz"] == (2619.0 if props else 0.0)
