"""Benchmark suites by name: each module here registers one suite; ``all`` runs every one.

Adding a suite is a one-file change: drop ``kernels/suites/<name>.py`` defining a function
``cases(size, xp, seed) -> list[Case]`` decorated with ``@register("<name>")``. Modules in this
package are discovered on first use, so nothing else needs editing. Each :class:`Case` builds
its (seeded, never all-zero) inputs only when run, so large ``paper`` suites do not hold every
operand in memory at once.

The suites room runs every technique, so it may import every room of :mod:`kernels`; no room imports it.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kernels.backend import get_xp
from kernels.errors import InputError

__all__ = [
    "PAPER_SHAPES",
    "PATTERNS",
    "SIZES",
    "SMALL_SHAPES",
    "shapes_for",
    "Case",
    "Prepared",
    "case_rng",
    "get_cases",
    "record_case",
    "register",
    "round_robin",
    "run_suite",
    "suite_names",
    "within_budget",
]

SIZES = ("small", "paper")
SMALL_SHAPES = [(128, 256, 512), (128, 512, 256)]
"""(m, n, k) for CI: a few seconds per suite on a 2-core CPU."""
PAPER_SHAPES = [(m, n, k) for m in (256, 512, 1024, 2048, 4096) for n, k in ((4096, 11008), (11008, 4096), (4096, 4096))]


def shapes_for(size: str) -> list[tuple[int, int, int]]:
    """The (m, n, k) GEMM shapes of a size: ``small`` (CI) or ``paper`` (LLaMA-style)."""
    return SMALL_SHAPES if size == "small" else PAPER_SHAPES
"""LLaMA-style projections: m tokens against (n, k) weight shapes of the MLP and attention."""
PATTERNS = ["2:4", "4:8", "3:8", "2:8", "1:8"]
"""50 %, 50 %, 62.5 %, 75 %, 87.5 % sparsity."""

_REGISTRY: dict[str, Callable] = {}


@dataclass
class Prepared:
    """A ready-to-time call plus the :meth:`kernels.trace.Recorder.add` fields describing it."""

    fn: Callable
    args: tuple
    fields: dict


@dataclass(frozen=True)
class Case:
    """One measurement: ``key`` identifies it (``all`` drops repeated keys, e.g. shared dense baselines)."""

    suite: str
    key: tuple
    label: str
    prepare: Callable[[], Prepared] = field(compare=False)


def register(name: str):
    """Decorator registering ``cases(size, xp, seed) -> list[Case]`` as suite ``name``."""

    def deco(fn):
        _REGISTRY[name] = fn
        return fn

    return deco


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def suite_names() -> list[str]:
    """Registered suite names, sorted, plus ``all``."""
    _discover()
    return sorted(_REGISTRY) + ["all"]


def case_rng(seed: int, key: tuple) -> np.random.Generator:
    """A generator seeded by ``seed`` and the case key: same case, same data, in any order or suite."""
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


def get_cases(name: str, size: str = "small", xp=None, seed: int = 0) -> list[Case]:
    """The cases of suite ``name`` (or every suite for ``all``) at ``size``, duplicates removed."""
    names = suite_names()
    if name not in names:
        raise InputError(f"suite {name!r} is unknown; choose one of {', '.join(names)}")
    if size not in SIZES:
        raise InputError(f"sizes {size!r} is unknown; choose one of {', '.join(SIZES)}")
    xp = xp or get_xp()
    chosen = sorted(_REGISTRY) if name == "all" else [name]
    seen, cases = set(), []
    for s in chosen:
        for case in _REGISTRY[s](size, xp, seed):
            if case.key not in seen:
                seen.add(case.key)
                cases.append(case)
    return cases


def run_suite(name, size="small", recorder=None, repeats=10, warmup=3, xp=None, seed=0, on_case=None) -> list[dict]:
    """Time every case of suite ``name`` and add one trace row each to ``recorder``.

    ``on_case(case, i, total)`` is called before each case (progress bars). Returns the rows.
    """
    from kernels.trace import Recorder

    xp = xp or get_xp()
    recorder = recorder if recorder is not None else Recorder()
    cases = get_cases(name, size, xp, seed)
    rows = []
    for i, case in enumerate(cases):
        if on_case is not None:
            on_case(case, i, len(cases))
        rows.append(record_case(case, xp, recorder, repeats=repeats, warmup=warmup)[0])
    return rows


def record_case(case: Case, xp, recorder, *, repeats: int = 10, warmup: int = 3, suite: str | None = None,
                min_window_s: float | None = None, params: dict | None = None) -> tuple:
    """``(trace row, Timing)`` of one case: prepared, timed by :func:`kernels.trace.time_call` (CUDA events and
    an NVML energy window of ``min_window_s``, default :data:`~kernels.trace.MIN_ENERGY_WINDOW_S`, on CuPy) and
    added to ``recorder`` under ``suite`` (default the case's), ``params`` added to the case's. Its operands are
    freed on return."""
    from kernels.trace import MIN_ENERGY_WINDOW_S, time_call

    p = case.prepare()
    window = MIN_ENERGY_WINDOW_S if min_window_s is None else min_window_s
    timing = time_call(p.fn, *p.args, warmup=warmup, repeats=repeats, xp=xp, min_window_s=window)
    fields = {**p.fields, "params": {**p.fields["params"], **params}} if params else p.fields
    return recorder.add(timing=timing, suite=suite or case.suite, xp=xp, **fields), timing


def round_robin(size: str, xp, seed: int = 0) -> list[Case]:
    """Every suite's cases (repeated keys once), each suite in a seeded shuffled order, interleaved one per
    suite: any prefix, so any time budget, covers every family."""
    queues, seen = [], set()
    for name in suite_names():
        if name == "all":
            continue
        cases = [c for c in get_cases(name, size, xp, seed) if c.key not in seen]
        seen.update(c.key for c in cases)
        order = np.random.default_rng([seed, len(queues)]).permutation(len(cases))
        queues.append([cases[i] for i in order])
    out = []
    for i in range(max(map(len, queues), default=0)):
        out += [q[i] for q in queues if i < len(q)]
    return out


def within_budget(cases, budget_s: float, clock=time.monotonic):
    """Yield ``cases`` in order while ``budget_s`` (from the first call) has room for the slowest so far, the time
    between one yield and the next: a case starts only when one as slow as any before it would still fit."""
    start, slowest = clock(), 0.0
    for case in cases:
        t0 = clock()
        if t0 - start + slowest >= budget_s:
            return
        yield case
        slowest = max(slowest, clock() - t0)
