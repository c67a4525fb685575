"""bench/gpu/suite_replay.py on the CPU (--backend numpy --tiny): every family early, traces, budget."""

import json

import numpy as np

from conftest import load_script
from kernels.suites import get_cases
from kernels.trace import read_traces


def _suite():
    return load_script("bench/gpu/suite_replay.py")


def test_round_robin_covers_every_case_once_and_every_family_first():
    order = _suite().round_robin("small", np)
    every = get_cases("all", "small", np)
    assert sorted(map(repr, (c.key for c in order))) == sorted(map(repr, (c.key for c in every)))
    families = {c.suite for c in every}
    assert {c.suite for c in order[: len(families)]} == families  # one case of each before any second one


def test_tiny_numpy_run_records_what_it_reports(tmp_path):
    out, traces = tmp_path / "r.json", tmp_path / "t"
    assert _suite().main(["--backend", "numpy", "--tiny", "--json", str(out), "--traces", str(traces),
                          "--budget-s", "300"]) == 0
    res = json.loads(out.read_text())
    table = read_traces(traces)
    assert res["recorded"] == res["cases"] == table.num_rows and res["skipped"] == 0
    assert sorted(table.column("time_median_s").to_pylist()) == sorted(r["time_s"] for r in res["rows"])
    assert set(res["families"]) == {"gemm", "kron", "nm_spmm", "projection", "tasd"}
    assert all(r["energy_j"] is None for r in res["rows"])  # NumPy: no energy counter


def test_budget_stops_new_cases(tmp_path):
    out = tmp_path / "r.json"
    _suite().main(["--backend", "numpy", "--tiny", "--json", str(out), "--traces", str(tmp_path / "t"),
                   "--budget-s", "0"])
    res = json.loads(out.read_text())
    assert res["recorded"] == 0 and res["skipped"] == res["cases"] > 0



def test_within_budget_starts_a_case_only_while_the_slowest_fits():
    from kernels.suites import within_budget

    now, ran = [0.0], []
    for case in within_budget(range(10), 10.0, clock=lambda: now[0]):
        ran.append(case)
        now[0] += [1.0, 4.0, 1.0, 1.0][case]
    # starts at 0 s and 1 s (slowest 1 s), at 5 s (5 + 4 < 10); at 6 s, 6 + 4 s reaches the budget
    assert ran == [0, 1, 2]
