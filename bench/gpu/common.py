"""What every ``bench/gpu`` suite shares: the command line ``run.sh`` calls it with, its whole-or-nothing JSON,
the per-case guard and the exit on ``timeout``'s SIGTERM.

A suite runs each case through :func:`guarded` and rewrites its JSON after every case, so an error
or a kill loses at most the case in progress. Not a suite itself (``run.sh`` runs ``suite_*.py`` only).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from kernels.io import atomic_path

__all__ = ["exit_on_term", "guarded", "suite_parser", "write_json"]


def suite_parser(doc: str, *, budget_s: float | None, tiny: str, backend: str | None = "cupy") -> argparse.ArgumentParser:
    """``--json FILE --traces DIR --budget-s S [--backend cupy|numpy] [--tiny]``; a suite adds its own options.

    ``budget_s`` None makes the budget required; ``backend`` None lets the suite pick (CuPy where usable).
    """
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--json", required=True, type=Path, help="results file to write")
    ap.add_argument("--traces", required=True, type=Path, help="trace dataset directory")
    ap.add_argument("--budget-s", type=float, default=budget_s, required=budget_s is None,
                    help="seconds; no new configuration starts once they are spent")
    ap.add_argument("--backend", choices=("cupy", "numpy"), default=backend,
                    help="array backend" + (" (default: cupy when usable)" if backend is None else ""))
    ap.add_argument("--tiny", action="store_true", help=tiny)
    return ap


def _plain(obj):
    """JSON for what ``json`` does not know: NumPy scalars as their Python value, anything else as its text."""
    return obj.item() if hasattr(obj, "item") else str(obj)


def write_json(path, data, **dumps) -> None:
    """``data`` as JSON at ``path`` (indent 1 unless ``dumps`` says otherwise), through a temporary name."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, **{"indent": 1, "default": _plain, **dumps}) + "\n")


def guarded(label: str, fn, errors: list):
    """``fn()``, or None with ``{"case": label, "error": "Type: text", "seconds": ...}`` appended to ``errors``
    (and printed): one failing case must not lose the others."""
    t0 = time.monotonic()
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the case's error goes into the JSON; the suite goes on
        errors.append({"case": label, "error": f"{type(e).__name__}: {e}"[:300], "seconds": time.monotonic() - t0})
        print(f"{label}: {errors[-1]['error']}", file=sys.stderr, flush=True)
        return None


def exit_on_term() -> None:
    """SIGTERM (``timeout``'s signal) exits through Python, so a JSON write in progress removes its temporary
    file (:func:`kernels.io.atomic_path`) instead of leaving it beside the results."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
