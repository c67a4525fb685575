"""GPU microbenchmarks and driver report for ``accelsim calibrate --backend cupy``: what the GPU unit model needs.

Matmul peak per dtype, device-to-device copy bandwidth at a size that spills L2 (HBM) and one that
fits it, the device time of one tiny launch and the host time of one dispatched call. Every device
time comes from :func:`kernels.timing.time_call` (CUDA events on CuPy; ``time.perf_counter`` on
NumPy, which tests pass in as a stand-in), each rate as the median, fastest and slowest of its
runs (:func:`kernels.trace.microbench.spread`). :func:`driver_report` turns what the driver and NVML
say into the numbers an arch needs, each with the name of the property it came from.
"""

from __future__ import annotations

import numpy as np

from kernels.backend import backend_name, device_info
from kernels.timing import time_call
from kernels.trace.microbench import Rate, samples, spread

__all__ = ["MATMUL_DTYPES", "copy_gbs", "driver_report", "host_call_s", "launch_s", "matmul_tflops", "read_driver"]

MATMUL_DTYPES = ("float32", "float16", "bfloat16")
"""The dtypes the GPU model times library GEMMs at: fp32 on CUDA cores (CuPy leaves TF32 off), fp16/bf16 on tensor cores."""

_PROPS = ("memoryBusWidth", "l2CacheSize", "sharedMemPerMultiprocessor")


def _sync(xp) -> None:
    if backend_name(xp) == "cupy":
        xp.cuda.get_current_stream().synchronize()


def _dtype(name: str):
    if name == "bfloat16":
        import ml_dtypes  # CuPy and NumPy know bfloat16 only through ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(name)


def matmul_tflops(xp, n: int, dtype: str, repeats: int = 10) -> Rate:
    """TFLOP/s (2n³ per call) of ``xp.matmul`` on ``n × n`` operands of ``dtype``; raises where the dtype is unsupported."""
    rng = np.random.default_rng(0)
    a = xp.asarray(rng.standard_normal((n, n), dtype=np.float32)).astype(_dtype(dtype))
    b = xp.asarray(rng.standard_normal((n, n), dtype=np.float32)).astype(_dtype(dtype))
    t = time_call(xp.matmul, a, b, warmup=3, repeats=repeats, xp=xp, min_window_s=0)
    return Rate.of(2 * n**3 / 1e12, list(t.times_s))


def copy_gbs(xp, nbytes: int, repeats: int = 10, inner: int = 1) -> Rate:
    """GB/s of ``inner`` back-to-back device-to-device copies of ``nbytes`` (read + write counted) per timed call;
    a small buffer needs several per call to rise above the launch cost and the event resolution."""
    src = xp.ones(max(1, nbytes // 4), dtype=xp.float32)
    dst = xp.empty_like(src)

    def run():
        for _ in range(inner):
            xp.copyto(dst, src)

    t = time_call(run, warmup=2, repeats=repeats, xp=xp, min_window_s=0)
    return Rate.of(2 * src.nbytes * inner / 1e9, list(t.times_s))


def launch_s(xp, repeats: int = 50) -> dict:
    """Device seconds of one launch of a one-element add, bracketed by events: launch latency, ramp-up and tail."""
    x = xp.zeros(1, dtype=xp.float32)
    t = time_call(lambda: xp.add(x, 1, out=x), warmup=5, repeats=repeats, xp=xp, min_window_s=0)
    return spread(t.times_s)


def host_call_s(xp, calls: int = 500, repeats: int = 5) -> dict:
    """Host seconds per dispatched call: ``calls`` one-element adds issued back to back, then one sync, per run."""
    x = xp.zeros(1, dtype=xp.float32)

    def run():
        for _ in range(calls):
            xp.add(x, 1, out=x)
        _sync(xp)

    return spread(t / calls for t in samples(run, repeats))


def read_driver(xp) -> tuple[dict, dict, dict]:
    """``(device_info, properties, nvml)`` of the current CUDA device: what :func:`driver_report` maps."""
    props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
    return device_info(xp), {k: props.get(k) for k in _PROPS}, _nvml()


def _nvml() -> dict:
    """Max SM clock (MHz), memory bus width (bits), enforced power limit and idle draw (W) from NVML; {} without it."""
    from kernels.timing import _nvml_handle, idle_power

    h = _nvml_handle()
    if h is None:
        return {}
    import pynvml

    out = {}
    for key, read in (("max_sm_clock_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)),
                      ("memory_bus_bits", lambda: pynvml.nvmlDeviceGetMemoryBusWidth(h)),
                      ("power_limit_w", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1e3)):
        try:
            out[key] = float(read())
        except Exception:  # a counter this GPU or driver lacks: the report says where else it looked
            pass
    out["idle_power_w"] = idle_power(h)
    return {k: v for k, v in out.items() if v is not None}


def driver_report(info: dict, props: dict, nvml: dict) -> dict:
    """The device's structure from :func:`read_driver`'s three parts, and ``sources``: where each value came from.

    The clock is the driver's ``clockRate`` (the maximum SM clock), else NVML's; the HBM peak is the
    driver's ``2 × memoryClockRate × memoryBusWidth / 8`` (two transfers per clock), as CUDA's
    bandwidthTest computes it. A value neither reports is absent.
    """
    src = {"device_name": "driver name", "sms": "driver multiProcessorCount", "memory_bytes": "driver totalGlobalMem"}
    rep = {"device_name": info["device_name"], "compute_capability": info.get("compute_capability"),
           "sms": int(info["sm_count"]), "memory_bytes": int(info["memory_bytes"])}
    if info.get("clock_mhz"):
        rep["clock_mhz"], src["clock_mhz"] = float(info["clock_mhz"]), "driver clockRate"
    elif nvml.get("max_sm_clock_mhz"):
        rep["clock_mhz"], src["clock_mhz"] = nvml["max_sm_clock_mhz"], "NVML max SM clock"
    bus = props.get("memoryBusWidth") or nvml.get("memory_bus_bits")
    if bus and info.get("memory_clock_mhz"):
        rep["hbm_peak_gbs"] = 2 * info["memory_clock_mhz"] * 1e6 * bus / 8 / 1e9
        src["hbm_peak_gbs"] = (f"driver 2 x memoryClockRate {info['memory_clock_mhz']:g} MHz x "
                               f"{'memoryBusWidth' if props.get('memoryBusWidth') else 'NVML bus width'} {bus:g} bits / 8")
    for key, prop in (("l2_bytes", "l2CacheSize"), ("smem_per_sm_bytes", "sharedMemPerMultiprocessor")):
        if props.get(prop):
            rep[key], src[key] = int(props[prop]), f"driver {prop}"
    for key in ("idle_power_w", "power_limit_w"):
        if nvml.get(key) is not None:
            rep[key], src[key] = float(nvml[key]), f"NVML {key.removesuffix('_w').replace('_', ' ')}"
    rep["sources"] = src
    return rep
