"""Tables name what ran: a config changed by `--set` is titled with its overrides, not as the built-in."""

from __future__ import annotations

import json

from conftest import ROOT, run_in_process

WORKLOAD = str(ROOT / "examples" / "topology.csv")


def test_simulate_title_names_overrides(capsys, monkeypatch):
    from accelsim.model.arch import load_arch
    from accelsim.model.simulate import simulate
    from accelsim.model.workloads import as_network

    sets = ["--set", "compute.rows=64", "--set", "memory.dram.bandwidth=32"]
    code, out, err = run_in_process(capsys, monkeypatch, "simulate", "--arch", "systolic_ws_32x32", "--workload",
                                    WORKLOAD, *sets)
    assert code in (0, None), err
    assert "topology on systolic_ws_32x32 (compute.rows=64, memory.dram.bandwidth=32)" in out
    code, out, err = run_in_process(capsys, monkeypatch, "simulate", "--arch", "systolic_ws_32x32", "--workload",
                                    WORKLOAD, *sets, "--format", "json")
    doc = json.loads(out)
    assert doc["arch"] == "systolic_ws_32x32 (compute.rows=64, memory.dram.bandwidth=32)"
    # the name describes the config that ran: the overridden one, not the built-in
    ran = simulate(load_arch("systolic_ws_32x32", {"compute.rows": 64, "memory.dram.bandwidth": 32}), as_network(WORKLOAD))
    built_in = simulate(load_arch("systolic_ws_32x32"), as_network(WORKLOAD))
    assert doc["total"]["cycles"] == ran.total["cycles"] != built_in.total["cycles"]


def test_simulate_title_without_overrides_is_the_name(capsys, monkeypatch):
    code, out, err = run_in_process(capsys, monkeypatch, "simulate", "--arch", "systolic_ws_32x32", "--workload",
                                    WORKLOAD)
    assert code in (0, None), err
    assert [l.strip() for l in out.splitlines() if "topology on" in l] == ["topology on systolic_ws_32x32"]


def test_compare_names_overrides_of_every_arch(capsys, monkeypatch):
    code, out, err = run_in_process(capsys, monkeypatch, "compare", "--arch", "systolic_ws_32x32", "--arch",
                                    "systolic_os_32x32", "--workload", WORKLOAD, "--set", "compute.rows=16")
    assert code in (0, None), err
    assert "topology: against systolic_ws_32x32 (compute.rows=16)" in out
    assert "│ systolic_os_32x32 (compute.rows=16) " in out


def test_brackets_in_an_override_are_shown_as_typed(capsys, monkeypatch):
    """A list value (`memory.sram.bypass=[weight]`) is text, not rich markup: the title keeps it."""
    code, out, err = run_in_process(capsys, monkeypatch, "simulate", "--arch", "systolic_ws_32x32", "--workload",
                                    WORKLOAD, "--set", "memory.sram.bypass=[weight]", "--mapper", "search")
    assert code in (0, None), err
    assert "(memory.sram.bypass=[weight])" in " ".join(out.split())
