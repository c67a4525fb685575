"""Timing and energy of one kernel call: device-event (or wall-clock) times and NVML's energy window.

Shared by every technique's autotuner (which times candidate launches with ``min_window_s=0``) and by
the trace recorder (:mod:`kernels.trace`, which re-exports these names and stores a :class:`Timing`
per row). Imports only the shared top modules.
"""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass

from kernels.backend import array_module, backend_name
from kernels.errors import InputError

__all__ = ["MIN_ENERGY_WINDOW_S", "EnergyWindow", "Timing", "energy_per_call", "energy_window", "idle_power",
           "time_call"]

MIN_ENERGY_WINDOW_S = 1.0
"""The recorder keeps calling a kernel until NVML's energy window is at least this long."""


@dataclass(frozen=True)
class Timing:
    """Per-call wall times of ``repeats`` timed calls after ``warmup`` untimed ones."""

    times_s: tuple
    warmup: int
    energy_j: float | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    energy_window_s: float | None = None
    energy_calls: int | None = None
    idle_power_w: float | None = None

    @property
    def repeats(self) -> int:
        return len(self.times_s)

    @property
    def median_s(self) -> float:
        return float(statistics.median(self.times_s))

    @property
    def min_s(self) -> float:
        return float(min(self.times_s))

    @property
    def max_s(self) -> float:
        return float(max(self.times_s))


@functools.cache
def _nvml_handle():
    """NVML handle of the current CUDA device, or None without nvidia-ml-py / a driver."""
    try:
        import cupy
        import pynvml

        pynvml.nvmlInit()
        pci = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["pciBusID"]
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            if pynvml.nvmlDeviceGetPciInfo(h).bus == pci:
                return h
        return pynvml.nvmlDeviceGetHandleByIndex(cupy.cuda.Device().id)
    except Exception:  # no pynvml, no driver, or a counter this GPU lacks: energy stays null
        return None


def _energy_mj(h) -> int | None:
    try:
        import pynvml

        return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(h))
    except Exception:
        return None


def _clocks(h) -> tuple:
    try:
        import pynvml

        return (
            float(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)),
            float(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM)),
        )
    except Exception:
        return (None, None)


def _power_w(h) -> float | None:
    try:
        import pynvml

        return float(pynvml.nvmlDeviceGetPowerUsage(h)) / 1e3
    except Exception:
        return None


def idle_power(h, samples: int = 5, interval_s: float = 0.02) -> float | None:
    """Median NVML power draw (W) of the idle device over ``samples`` readings; None without NVML."""
    values = []
    for i in range(samples):
        if i:
            time.sleep(interval_s)
        w = _power_w(h)
        if w is not None:
            values.append(w)
    return float(statistics.median(values)) if values else None


def energy_window(call, h, sync, calls_done: int, started: float, min_window_s: float = MIN_ENERGY_WINDOW_S):
    """Extend an energy window opened at ``started`` (``time.perf_counter``) after ``calls_done`` calls.

    Calls ``call()`` until ``min_window_s`` has passed (``sync()`` after each, so the window
    covers finished work), then returns ``(calls, window_s, counter_mJ)``: every call in the
    window and the NVML total-energy counter at its end.
    """
    calls = calls_done
    while time.perf_counter() - started < min_window_s:
        call()
        sync()
        calls += 1
    return calls, time.perf_counter() - started, _energy_mj(h)


def time_call(fn, *args, warmup: int = 3, repeats: int = 10, xp=None, min_window_s: float = MIN_ENERGY_WINDOW_S,
              before=None, **kwargs) -> Timing:
    """Time ``fn(*args, **kwargs)``: ``warmup`` untimed calls, then ``repeats`` timed ones, each after an untimed
    ``before()`` where one is given (a cold-cache measurement streams the caches full of other data there).

    On CuPy (``xp``, or the module of the array arguments) each call is bracketed by CUDA
    events on the current stream, so the time is device time without host-launch skew; on
    NumPy ``time.perf_counter``. Where NVML is available the idle power is read first, the
    total-energy counter before the timed calls and, after calling on until the window is at
    least ``min_window_s`` (NVML's counter steps coarsely), at its end: energy per call is the
    window's energy over its calls; the time stays the median of the timed calls.
    ``min_window_s <= 0`` asks for no energy window (timing only, e.g. autotuning): the idle power,
    whose readings sleep ~80 ms, is then not read.
    """
    if warmup < 0 or repeats < 1:
        raise InputError(f"time_call: need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    xp = xp or array_module(*args)
    if backend_name(xp) == "numpy":
        for _ in range(warmup):
            fn(*args, **kwargs)
        times = []
        for _ in range(repeats):
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn(*args, **kwargs)
            times.append(time.perf_counter() - t0)
        return Timing(tuple(times), warmup)
    stream = xp.cuda.get_current_stream()
    stream.synchronize()
    h = _nvml_handle()
    idle = idle_power(h) if h is not None and min_window_s > 0 else None
    for _ in range(warmup):
        fn(*args, **kwargs)
    stream.synchronize()
    started = time.perf_counter()
    e0 = _energy_mj(h) if h is not None else None
    events = [(xp.cuda.Event(), xp.cuda.Event()) for _ in range(repeats)]
    for start, end in events:
        if before is not None:
            before()
        start.record(stream)
        fn(*args, **kwargs)
        end.record(stream)
    stream.synchronize()
    times = tuple(xp.cuda.get_elapsed_time(s, e) / 1e3 for s, e in events)
    energy = window = calls = None
    if e0 is not None:
        calls, window, e1 = energy_window(lambda: fn(*args, **kwargs), h, stream.synchronize, repeats, started,
                                          min_window_s)
        energy = (e1 - e0) / 1e3 / calls if e1 is not None and e1 > e0 else None
    sm, mem = _clocks(h) if h is not None else (None, None)
    return Timing(times, warmup, energy, sm, mem, window if energy is not None else None,
                  calls if energy is not None else None, idle)


@dataclass(frozen=True)
class EnergyWindow:
    """Energy per call over one NVML window (:func:`energy_per_call`); the field names are :class:`Timing`'s,
    so ``Timing(times, warmup, **asdict(window))`` records the window with the times."""

    energy_j: float
    energy_window_s: float
    energy_calls: int
    idle_power_w: float | None


def energy_per_call(fn, *args, xp=None, min_window_s: float = MIN_ENERGY_WINDOW_S, **kwargs) -> EnergyWindow | None:
    """Joules per call of ``fn`` from NVML's energy counter over a window of at least ``min_window_s``.

    The counter moves in coarse steps (tens of ms), so the call repeats until the window is long
    enough and the energy is divided by the calls made; the window's length and calls, and the
    device's power read just before it (as :func:`time_call` reads idle power), come with it.
    ``None`` on NumPy or without NVML.
    """
    xp = xp or array_module(*args)
    if backend_name(xp) == "numpy":
        return None
    h = _nvml_handle()
    if h is None:
        return None
    stream = xp.cuda.get_current_stream()
    stream.synchronize()
    idle = idle_power(h)
    fn(*args, **kwargs)
    stream.synchronize()
    e0, t0 = _energy_mj(h), time.perf_counter()
    calls, window, e1 = energy_window(lambda: fn(*args, **kwargs), h, stream.synchronize, 0, t0, min_window_s)
    if e0 is None or e1 is None or e1 <= e0:
        return None
    return EnergyWindow((e1 - e0) / 1e3 / calls, window, calls, idle)

