"""Array-module selection (CuPy where a CUDA device is usable, else NumPy), device info, the CPU's worker threads
and BLAS thread limit for the NumPy paths that split their work (N:M gather, fused Kron), and host buffers placed
within their page."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import numpy as np

from kernels.errors import InputError

__all__ = [
    "PAGE_BYTES",
    "BackendError",
    "array_module",
    "backend_name",
    "blas_controller",
    "cpu_workers",
    "cuda_function",
    "device_info",
    "dtype_kind",
    "native_float",
    "get_xp",
    "one_blas_thread",
    "gpu_available",
    "page_aligned",
    "require_cupy",
    "to_numpy",
]

_ENV = "ACCELSIM_BACKEND"
_EXTRA_FLOATS = frozenset({"bfloat16"})


def dtype_kind(dtype) -> str:
    """NumPy's kind letter of ``dtype``, with ml_dtypes' bfloat16 counted as a float (``"f"``).

    NumPy and CuPy report bfloat16 as kind ``"V"`` (a user-defined type), so a plain
    ``dtype.kind in "biuf"`` check refuses the 16-bit type the sparse tensor cores take.
    """
    dt = np.dtype(dtype)
    return "f" if dt.kind == "V" and dt.name in _EXTRA_FLOATS else dt.kind


def native_float(x):
    """``x``, or a bfloat16 array widened to float32 (exactly): what magnitudes are compared and NaN is looked
    for on, since bfloat16's own ufuncs depend on the ml_dtypes and CuPy versions."""
    return x.astype(np.float32) if x.dtype.kind == "V" and x.dtype.name in _EXTRA_FLOATS else x


class BackendError(InputError):
    """A backend was requested that this machine cannot provide."""


@functools.cache
def _usable_cupy():
    """Return the cupy module when it imports and sees at least one device, else None."""
    try:
        import cupy
    except ImportError:
        return None
    try:
        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:  # driver missing or broken: CuPy imports but cannot run
        return None


def gpu_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    return _usable_cupy() is not None


def _requested(name: str | None = None) -> str:
    """``name``, else ``ACCELSIM_BACKEND``, else ``"auto"``; a value this machine cannot honour raises
    :class:`BackendError` (the one check :func:`get_xp`, the CLI and :func:`array_module` share)."""
    name = name or os.environ.get(_ENV) or "auto"
    if name not in ("auto", "numpy", "cupy"):
        raise BackendError(f"{_ENV}: unknown backend {name!r}; use numpy, cupy or auto")
    if name == "cupy" and _usable_cupy() is None:
        raise BackendError(
            f"backend 'cupy' requested but no usable CUDA device/CuPy; install accelsim[gpu] "
            f"on a GPU machine or set {_ENV}=numpy"
        )
    return name


def get_xp(name: str | None = None):
    """The array module to compute with.

    ``name`` (or the ``ACCELSIM_BACKEND`` environment variable) forces ``"numpy"`` or
    ``"cupy"``; asking for cupy where no GPU is usable raises :class:`BackendError`
    rather than silently falling back. With neither, CuPy is used when usable.
    """
    name = _requested(name)
    if name == "numpy":
        return np
    cp = _usable_cupy()
    return cp if cp is not None else np


def array_module(*arrays):
    """CuPy when any argument is a CuPy array, else NumPy: the data decides, not a switch.

    ``ACCELSIM_BACKEND=cupy`` on a machine without a usable GPU raises the same
    :class:`BackendError` as :func:`get_xp` (and so the CLI), instead of running on NumPy.
    """
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy

            return cupy
    _requested()
    return np


def backend_name(xp) -> str:
    return "cupy" if xp.__name__.startswith("cupy") else "numpy"


def to_numpy(a) -> np.ndarray:
    """A NumPy copy of ``a`` whether it lives on the host or the device."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def _device_info(backend: str) -> tuple:
    if backend == "cupy":
        import cupy

        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"]
        name = name.decode() if isinstance(name, bytes) else name
        info = {
            "backend": "cupy",
            "device_name": name,
            "compute_capability": f"{props['major']}.{props['minor']}",
            "sm_count": int(props["multiProcessorCount"]),
            "clock_mhz": int(props["clockRate"]) / 1000.0 if props.get("clockRate") else None,  # gone in CUDA 13
            "memory_clock_mhz": int(props.get("memoryClockRate", 0)) / 1000.0,
            "memory_bytes": int(props["totalGlobalMem"]),
        }
    else:
        info = {
            "backend": "numpy",
            "device_name": _cpu_name(),
            "compute_capability": None,
            "sm_count": os.cpu_count() or 1,
            "clock_mhz": None,
            "memory_clock_mhz": None,
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            if hasattr(os, "sysconf")
            else None,
        }
    return tuple(info.items())


def device_info(xp=None) -> dict:
    """Name, compute capability, SM (or core) count, clocks and memory of the device ``xp`` runs on."""
    return dict(_device_info(backend_name(xp or get_xp())))


def require_cupy(feature: str):
    """The cupy module, or an ImportError naming ``feature`` and the extra that provides CuPy."""
    try:
        import cupy
    except ImportError:
        raise ImportError(f"{feature} needs CuPy: pip install 'accelsim[gpu]'") from None
    return cupy


@functools.cache
def _cuda_module(source: str, feature: str):
    cupy = require_cupy(feature)

    @cupy.memoize(for_each_device=True)
    def module():
        return cupy.RawModule(code=Path(source).read_text(), options=("--std=c++17",))

    return module


def cuda_function(source: str | os.PathLike, name: str, feature: str):
    """Kernel ``name`` of the CUDA file ``source``, compiled by NVRTC on first use, once per device.

    CuPy also caches the binary on disk, so later processes skip the compile.
    """
    return _cuda_module(str(source), feature)().get_function(name)


def cpu_workers(tasks: int) -> int:
    """Workers for ``tasks`` independent pieces of NumPy work: ``ACCELSIM_CPU_THREADS`` if set to a positive integer,
    else the CPUs the OS reports, never more than the tasks."""
    env = os.environ.get("ACCELSIM_CPU_THREADS")
    n = int(env) if env and env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    return max(1, min(n, tasks))


@functools.cache
def blas_controller():
    """The loaded BLAS libraries (threadpoolctl), inspected once: ``threadpool_limits`` inspects them on every call,
    0.36 ms on the 2-vCPU EPYC, against 2 µs for a limit through this controller."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread():
    """A context holding BLAS to one thread while the caller's own workers run; restored on exit."""
    return blas_controller().limit(limits=1, user_api="blas")


PAGE_BYTES = 4096


def page_aligned(shape, dtype, offset: int = 0) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting ``offset`` bytes into a 4 KiB page.

    Where a buffer starts within its page decides how fast a copy into or out of it runs on some CPUs: glibc copies
    2 KiB-384 KiB with ``rep movsb`` where the CPU reports it fast (FSRM), and on the 2-vCPU EPYC (Zen 3) that ran
    at 3-6 GB/s, not 16-82, whenever the destination started 1-31 bytes past the source modulo 4 KiB (glibc bug
    30994), as consecutive heap blocks of a multiple of 4 KiB do (16 bytes of header between them). A buffer placed
    here has a known offset, so what is timed in it does not depend on where the heap put it."""
    if not 0 <= offset < PAGE_BYTES:
        raise ValueError(f"offset {offset}: a byte offset within a {PAGE_BYTES}-byte page")
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + 2 * PAGE_BYTES, np.uint8)
    start = -raw.ctypes.data % PAGE_BYTES + offset
    return raw[start: start + nbytes].view(dtype).reshape(shape)
