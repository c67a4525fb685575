"""bench/bench_near_copies.py: a rate for every size and offset, the environment it ran under, bad input refused."""

from __future__ import annotations

import json

import pytest

from conftest import load_script


def test_every_size_and_offset_gets_a_rate_and_the_tunables_are_recorded(tmp_path, monkeypatch):
    bench = load_script("bench/bench_near_copies.py")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.x86_rep_movsb_threshold=4294967295")
    doc = bench.main(["--runs", "2", "--sizes", "4", "64", "--offsets", "0", "16", "2048",
                      "--json", str(tmp_path / "t.json")])
    assert json.loads((tmp_path / "t.json").read_text()) == doc
    assert doc["glibc_tunables"] == "glibc.cpu.x86_rep_movsb_threshold=4294967295" and doc["runs"] == 2
    assert set(doc["gbs"]) == {"4", "64"} and all(set(row) == {"0", "16", "2048"} for row in doc["gbs"].values())
    assert all(0.05 < v < 5000 for row in doc["gbs"].values() for v in row.values())  # GB/s a CPU copy can reach


@pytest.mark.parametrize("args", [["--runs", "0"], ["--offsets", "4096"], ["--sizes", "0"]])
def test_bad_input_is_refused(args, capsys):
    bench = load_script("bench/bench_near_copies.py")
    with pytest.raises(SystemExit) as e:
        bench.main(args)
    assert e.value.code == 2 and "--runs and --sizes at least 1" in capsys.readouterr().err
