"""bench/bench_layer_order.py: the mixed pass takes the plan's steps exactly where asked, inserted work runs before
each layer of its kind, the timing sums each layer kind over blocks and takes the median over rounds (checked on a
scripted clock), and a run on one bert block."""

from __future__ import annotations

import time
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


def test_inserted_work_runs_before_each_layer_of_its_kind():
    names = ["l0.q", "l0.v", "l1.q", "l1.v"]
    ran = []
    got = bench.inserted(_steps("dense", names), ".v", lambda: ran.append(1))
    assert [s.name for s in got] == ["l0.q", "l0.inserted", "l0.v", "l1.q", "l1.inserted", "l1.v"]
    for s in got:
        s.fn()
    assert ran == [1, 1]
    # a read of 2 MB sums 2**19 ones; a 16³ product of ones holds 16 everywhere
    assert bench._work("read", 2)() == 2**19 and (bench._work("gemm", 16)() == 16).all()
    t0 = time.perf_counter()
    bench._work("busy", 2000)()
    assert time.perf_counter() - t0 >= 0.002
    with pytest.raises(ValueError):
        bench._work("sleep", 1)


def test_time_passes_sums_blocks_and_takes_the_median_round():
    # A clock that advances by the next scripted amount at every read: each step's time is the difference of two
    # reads. Rounds of (l0.q, l1.q) for one kind: 1+2, 10+20, 4+5 -> median 9 over the rounds 3, 30, 9.
    ticks = iter([0, 1, 1, 3, 0, 10, 10, 30, 0, 4, 4, 9])
    got = bench.time_passes({"only": _steps("dense", ["l0.q", "l1.q"])}, rounds=3, clock=lambda: next(ticks))
    assert got == {"only": {".q": 9}}
    assert bench.suffix("l11.ffn2") == ".ffn2" and bench.suffix("fc") == "fc"


def test_one_bert_block_runs(tmp_path, capsys):
    out = bench.main(["--layers", "0:6", "--rounds", "1", "--swap", ".v", "--insert", ".v:gemm:32",
                      "--json", str(tmp_path / "o.json")])
    assert list(out["seconds"]) == ["dense", "plan", "dense, .v the plan's", "dense, gemm 32 before .v"]
    kinds = [".q", ".k", ".v", ".qk", ".av", ".o"]
    assert [list(per) for per in out["seconds"].values()] == [kinds] * 3 + [[".q", ".k", ".inserted", *kinds[2:]]]
    assert all(v > 0 for per in out["seconds"].values() for v in per.values())
    assert "| dense, .v the plan's |" in capsys.readouterr().out and (tmp_path / "o.json").exists()
