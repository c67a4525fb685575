"""Writing simulation reports to files: JSON or parquet, atomically (no partial file on failure)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from accelsim.errors import AccelsimError
from accelsim.model.simulate import Report
from kernels.io import atomic_path

__all__ = ["report_table", "write_report"]


def report_table(report: Report) -> pa.Table:
    """One row per layer; traffic and energy breakdowns flattened to ``traffic_<level>``/``energy_<component>``."""
    rows = []
    for layer in report.layers:
        row = {"arch": report.arch, "workload": report.workload}
        row.update({k: v for k, v in layer.to_dict().items() if k not in ("traffic_bytes", "energy_breakdown")})
        row.update({f"traffic_{lvl}": b for lvl, b in layer.traffic_bytes.items()})
        row.update({f"energy_{comp}": e for comp, e in sorted(layer.energy_breakdown.items())})
        rows.append(row)
    return pa.Table.from_pylist(rows)


def write_report(report: Report, path: str | Path) -> None:
    """Write ``report`` as ``.json`` (the simulate JSON object) or ``.parquet`` (one row per layer)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".parquet"):
        raise AccelsimError(f"--out {path}: unknown file type {suffix or '(none)'!r}; use .json or .parquet")
    with atomic_path(path) as tmp:
        if suffix == ".json":
            tmp.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
        else:
            pq.write_table(report_table(report), tmp)
