"""bench/bench_layer_order.py: the mixed pass takes the plan's steps exactly where asked, the timing sums each layer
kind over blocks and takes the median over rounds (checked on a scripted clock), and a run on one bert block."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import load_script

bench = load_script("bench/bench_layer_order.py")


def _steps(tag: str, names):
    return [SimpleNamespace(name=n, tag=tag, fn=lambda: None) for n in names]


def test_mixed_takes_the_plan_step_only_for_the_swapped_kinds():
    names = ["l0.q", "l0.qk", "l0.v", "l1.q", "l1.qk", "l1.v"]
    got = bench.mixed(_steps("dense", names), _steps("plan", names), (".v", ".q"))
    assert [(s.name, s.tag) for s in got] == [(n, "plan" if n.endswith((".v", ".q")) else "dense") for n in names]
    with pytest.raises(ValueError):
        bench.mixed(_steps("dense", names), _steps("plan", names[:-1]), (".v",))


def test_time_passes_sums_blocks_and_takes_the_median_round():
    # A clock that advances by the next scripted amount at every read: each step's time is the difference of two
    # reads. Rounds of (l0.q, l1.q) for one kind: 1+2, 10+20, 4+5 -> median 9 over the rounds 3, 30, 9.
    ticks = iter([0, 1, 1, 3, 0, 10, 10, 30, 0, 4, 4, 9])
    got = bench.time_passes({"only": _steps("dense", ["l0.q", "l1.q"])}, rounds=3, clock=lambda: next(ticks))
    assert got == {"only": {".q": 9}}
    assert bench.suffix("l11.ffn2") == ".ffn2" and bench.suffix("fc") == "fc"


def test_one_bert_block_runs(tmp_path, capsys):
    out = bench.main(["--layers", "0:6", "--rounds", "1", "--swap", ".v", "--json", str(tmp_path / "o.json")])
    assert list(out["seconds"]) == ["dense", "plan", "dense, .v the plan's"]
    assert all(list(per) == [".q", ".k", ".v", ".qk", ".av", ".o"] for per in out["seconds"].values())
    assert all(v > 0 for per in out["seconds"].values() for v in per.values())
    assert "| dense, .v the plan's |" in capsys.readouterr().out and (tmp_path / "o.json").exists()
