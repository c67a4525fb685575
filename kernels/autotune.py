"""Per-device autotuning: time each candidate launch configuration once, keep the fastest on disk.

A GPU kernel's best tile shape, split-K or fusion depth depends on the device, the problem
shape, the sparsity pattern and the dtype. :func:`tune` times every candidate the first time a
(kernel, device, key) is seen and caches the winner in a JSON file under the user's cache
directory, so later calls (and later processes) pay nothing. The chosen configuration is
returned as a plain dict, which callers copy into the trace record's ``params``.

Set ``ACCELSIM_CACHE_DIR`` to move the cache (tests point it at a temporary folder) and
``ACCELSIM_AUTOTUNE=0`` to skip timing and take the first candidate (the heuristic default).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from kernels.errors import InputError

__all__ = ["cache_dir", "cache_path", "clear", "lookup", "tune"]

_LOCK = threading.Lock()
_MEMO: dict[str, dict] = {}


def cache_dir() -> Path:
    """``$ACCELSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/accelsim``, else ``~/.cache/accelsim``."""
    env = os.environ.get("ACCELSIM_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "accelsim"


def cache_path() -> Path:
    return cache_dir() / "autotune.json"


def _entry_key(kernel: str, device: str, key: dict) -> str:
    return json.dumps([kernel, device, key], sort_keys=True, separators=(",", ":"))


def _load() -> dict:
    try:
        with open(cache_path(), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):  # no cache yet, or a damaged one: start afresh
        return {}


def _store(entry: str, config: dict) -> None:
    """Merge one entry into the cache file; written to a temporary name, then renamed.

    The read-merge-write holds an advisory lock on a side file (POSIX), so processes tuning at
    once (pytest-xdist workers, Dask workers on one host) do not drop each other's entries.
    """
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            _flock(lock)
            data = _load()
            data[entry] = config
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".autotune-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, sort_keys=True, indent=0)
            os.replace(tmp, path)
    except OSError:  # a read-only home still runs, it only re-tunes next process
        pass


def _flock(fh) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: last writer wins, entries may be re-tuned
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file closes


def lookup(kernel: str, device: str, key: dict) -> dict | None:
    """The cached configuration for this (kernel, device, key), or None."""
    entry = _entry_key(kernel, device, key)
    with _LOCK:
        if entry not in _MEMO:
            found = _load().get(entry)
            if found is None:
                return None
            _MEMO[entry] = found
        return dict(_MEMO[entry])


def tune(
    kernel: str,
    device: str,
    key: dict,
    candidates: Sequence[dict],
    time_fn: Callable[[dict], float],
) -> dict:
    """The fastest of ``candidates`` for this (kernel, device, key), timed once and cached.

    ``time_fn(config)`` runs the kernel with ``config`` and returns seconds (the caller picks
    the timer: CUDA events on GPU, ``perf_counter`` on CPU); a candidate that raises is
    skipped (a tile too large for the shape, shared memory over the limit). Ties keep the
    earlier candidate, so the order of ``candidates`` is the heuristic preference.
    """
    if not candidates:
        raise InputError(f"autotune {kernel}: no candidate configurations")
    found = lookup(kernel, device, key)
    if found is not None:
        return found
    if os.environ.get("ACCELSIM_AUTOTUNE", "1") == "0":
        return dict(candidates[0])
    best, best_t = None, float("inf")
    errors = []
    for cfg in candidates:
        try:
            t = float(time_fn(dict(cfg)))
        except Exception as e:  # noqa: BLE001 - an unlaunchable candidate is just not chosen
            errors.append(f"{cfg}: {e}")
            continue
        if t < best_t:
            best, best_t = dict(cfg), t
    if best is None:
        raise InputError(f"autotune {kernel}: every candidate failed ({errors[0]})")
    entry = _entry_key(kernel, device, key)
    with _LOCK:
        _MEMO[entry] = best
        _store(entry, best)
    return dict(best)


def clear() -> None:
    """Forget every tuned configuration, in memory and on disk."""
    with _LOCK:
        _MEMO.clear()
        try:
            cache_path().unlink()
        except FileNotFoundError:
            pass
