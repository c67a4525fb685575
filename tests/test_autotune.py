"""kernels.autotune: the fastest candidate wins, is cached on disk and survives a new process."""

import json

import pytest

from kernels import autotune
from kernels.errors import InputError


@pytest.fixture(autouse=True)
def _cache(private_autotune_cache):
    yield


def test_fastest_candidate_is_chosen_and_cached(tmp_path):
    times = {1: 3.0, 2: 1.0, 3: 2.0}
    calls = []

    def time_fn(cfg):
        calls.append(cfg["tile"])
        return times[cfg["tile"]]

    cands = [{"tile": t} for t in (1, 2, 3)]
    assert autotune.tune("k", "dev", {"m": 8}, cands, time_fn) == {"tile": 2}
    assert calls == [1, 2, 3]
    # cached: no timing again, and the file holds it for another process
    assert autotune.tune("k", "dev", {"m": 8}, cands, time_fn) == {"tile": 2}
    assert calls == [1, 2, 3]
    data = json.loads((tmp_path / "autotune.json").read_text())
    assert list(data.values()) == [{"tile": 2}]
    autotune._MEMO.clear()
    assert autotune.lookup("k", "dev", {"m": 8}) == {"tile": 2}
    # another key or device is tuned separately
    assert autotune.lookup("k", "other", {"m": 8}) is None


def test_failing_candidates_are_skipped_and_ties_keep_order():
    def time_fn(cfg):
        if cfg["tile"] == 1:
            raise RuntimeError("too much shared memory")
        return 1.0

    assert autotune.tune("k", "d", {}, [{"tile": 1}, {"tile": 2}, {"tile": 3}], time_fn) == {"tile": 2}
    with pytest.raises(InputError, match="every candidate failed"):
        autotune.tune("k2", "d", {}, [{"tile": 1}], time_fn)


def test_disabled_takes_first_candidate(monkeypatch):
    monkeypatch.setenv("ACCELSIM_AUTOTUNE", "0")
    assert autotune.tune("k", "d", {}, [{"a": 1}, {"a": 2}], lambda c: 1.0 / c["a"]) == {"a": 1}


def _store_many(cache, worker, count):
    import os

    os.environ["ACCELSIM_CACHE_DIR"] = cache
    from kernels import autotune

    for i in range(count):
        autotune._store(f"w{worker}-{i}", {"tile": i})


def test_processes_storing_at_once_keep_every_entry(tmp_path):
    # Four processes merge 25 entries each into one cache file: none may be dropped by another's write.
    import json
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_store_many, args=(str(tmp_path), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    data = json.loads((tmp_path / "autotune.json").read_text())
    assert set(data) == {f"w{w}-{i}" for w in range(4) for i in range(25)}
