"""What every ``bench/gpu`` suite shares: the command line ``run.sh`` calls it with, and its whole-or-nothing JSON.

Not a suite itself (``run.sh`` runs ``suite_*.py`` only).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kernels.io import atomic_path

__all__ = ["suite_parser", "write_json"]


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
