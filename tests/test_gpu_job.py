"""The GPU job, bench/gpu/run.sh, dry-run on the CPU (GPU_DRY_RUN=1: NumPy backend, tiny suites, a 10 s CPU
calibration) into a fake $OUT: every step runs, the files it writes are the 8 named ones, and a failed step is
named and fails the job."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # ~1 minute on 2 cores: every suite runs once

SUITES = sorted(p.stem.removeprefix("suite_") for p in (ROOT / "bench/gpu").glob("suite_*.py"))


def _job(out, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "GPU_DRY_RUN": "1", "OUT": str(out), "GPU_PYTHON": sys.executable,
            "ACCELSIM_CACHE_DIR": str(out.parent / "cache"), **env}
    return subprocess.run(["bash", str(ROOT / "bench/gpu/run.sh")], capture_output=True, text=True, env=full,
                          timeout=3600)  # the dry run's own budgets (run.sh) bound it well before this


def test_dry_run_runs_every_step_and_writes_at_most_8_files(tmp_path):
    out = tmp_path / "out"
    proc = _job(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["pytest-gpu.log", "traces.parquet", "validate.json", *(f"ratios-{s}.json" for s in SUITES)])
    assert len(names) <= 8  # what the device tool brings back
    log = (out / "pytest-gpu.log").read_text()
    lines = log.splitlines()
    # the preflight comes first and names every check
    from bench.gpu.preflight import checks

    assert lines[1].startswith("preflight ") and all(f"preflight {label}: " in log for label, _ in checks(None))
    for step in ["preflight", "pytest", "calibrate", *(f"suite {s}" for s in SUITES), "traces", "replay_check"]:
        assert f"step {step}: exit 0" in log, step
    assert "skipped" in log and "tests/test_tasd_gpu.py" in log  # pytest reached the last test file
    assert lines[-1].startswith("== summary: 0 step(s) failed; 8 files in $OUT")
    # every suite's JSON holds results, and every suite's records are in the one trace file
    docs = {s: json.loads((out / f"ratios-{s}.json").read_text()) for s in SUITES}
    assert docs["nm"]["results"] and docs["kron"]["cases"] and docs["projection"]["rows"]
    assert docs["replay"]["recorded"] > 0 and docs["network"]["cases"]
    assert all(not d.get("errors") for d in docs.values()), {s: d.get("errors") for s, d in docs.items()}
    suites = set(pq.read_table(out / "traces.parquet").column("suite").to_pylist())
    assert {"gpu_nm", "kron", "gpu-projection", "calibrate"} <= suites
    validate = json.loads((out / "validate.json").read_text())
    assert "nothing replayed" in " ".join(validate["notes"])  # CPU records
    # the calibration directory, in validate.json (no ninth file): its arch, its fit, its held-out MAPE as printed
    cal = validate["calibrate"]
    assert "name: cpu_calibrated" in cal["arch_yaml"] and cal["calibration"]["format"] == "accelsim.cpu_calibration"
    assert f"held-out MAPE {cal['held_out_mape_pct']:.1f} %" in log


def test_a_failed_step_is_named_and_fails_the_job(tmp_path):
    """A failing GPU test and no time for the suites: the job goes on, names each failed step, exits 1."""
    bad = tmp_path / "test_bad_gpu.py"
    bad.write_text("import pytest\n\n\n@pytest.mark.gpu\ndef test_fails():\n    assert 1 == 2\n")
    out = tmp_path / "out"
    proc = _job(out, GPU_TESTS=str(bad), GPU_BUDGET_S="0")
    assert proc.returncode == 1, proc.stdout[-3000:]
    log = (out / "pytest-gpu.log").read_text()
    assert "step preflight: exit 0" in log and "step pytest: exit 1" in log and "assert 1 == 2" in log
    summary = log.splitlines()[-1]
    assert summary.startswith(f"== summary: {1 + 1 + len(SUITES) + 2} step(s) failed: pytest (exit 1)")
    for name in ["calibrate (no time)", *(f"{s} (no time)" for s in SUITES), "traces (exit 1)", "replay_check (exit 4)"]:
        assert name in summary, name
    assert sorted(p.name for p in out.iterdir()) == ["pytest-gpu.log"]
