"""The calibration's spanning set (:mod:`accelsim.replay.calibration_set`): each case computes what it stands for
(float64 references), cold cases turn over copies of their operands, and passes time fast cases more often and stop
at the budget."""

from __future__ import annotations

import json
import time

import numpy as np

from accelsim.replay import calibration_set as cset
from kernels.suites.gemm import dense_case

CASES = [dense_case(cset.SUITE, m, n, k, "float32", np, 0) for m, n, k in ((16, 16, 16), (32, 48, 64), (64, 64, 64),
                                                                         (96, 64, 32))]


def test_fast_cases_are_timed_more_often():
    """From the second pass on a case is timed until its calls fill MIN_TIMED_S: a 16³ GEMM (a few µs a call) more
    often than REPEATS, a call of 4 ms REPEATS times, as every case in the first pass."""
    from kernels.suites import Case, Prepared
    from kernels.trace import Recorder

    base = dense_case(cset.SUITE, 32, 32, 32, "float32", np, 0)

    def prepare():
        p = base.prepare()
        return Prepared(lambda x, y: (time.sleep(0.004), x @ y)[1], p.args, p.fields)

    fast = dense_case(cset.SUITE, 16, 16, 16, "float32", np, 0)
    # The process's one-time costs (the trace's git lookup, BLAS start-up) would count as the fast case's first
    # pass when this test runs first in a loaded worker: paid here, untimed by the passes below.
    cset.record(Recorder(), [fast], deadline=float("inf"), threads=1, passes=1)
    (f1, s1), (f2, s2) = cset.record(Recorder(), [fast, Case(cset.SUITE, ("slow",), "slow", prepare)],
                                     deadline=float("inf"), threads=1, passes=2)
    assert f1["repeats"] == s1["repeats"] == s2["repeats"] == cset.REPEATS
    assert cset.REPEATS < f2["repeats"] <= cset.MAX_CASE_REPEATS


def test_batched_case_multiplies_each_matrix_of_its_stack():
    """A stacked case (as :data:`~accelsim.replay.device_calibration.BATCH_CASES`): its call gives each matrix's
    product (float64 reference), and its record counts the whole stack."""
    p = dense_case(cset.SUITE, 5, 7, 3, "float32", np, 0, batch=4).prepare()
    a, b = p.args
    assert a.shape == (4, 5, 3) and b.shape == (4, 3, 7) and np.abs(a).min() > 0
    ref = np.stack([a[i].astype(np.float64) @ b[i].astype(np.float64) for i in range(4)])
    np.testing.assert_allclose(p.fn(*p.args), ref, rtol=1e-5, atol=1e-5)
    f = p.fields
    assert (f["flops_dense"], f["bytes_min"], f["params"]["batch"]) == (2 * 4 * 5 * 7 * 3, 4 * 4 * (15 + 21 + 35), 4)
    assert f["shapes"]["c"] == (4, 5, 7)
    one = dense_case(cset.SUITE, 5, 7, 3, "float32", np, 0).prepare().fields
    assert "batch" not in one["params"] and one["shapes"]["a"] == (5, 3)


def test_budget_cuts_the_trace_set():
    clock = iter(range(100)).__next__
    from kernels.trace import Recorder

    hooks = []
    # The clock is read once before each pass and once before each case: 0 (pass), 1, 2, 3 (cases), 4 stops.
    (rows,) = cset.record(Recorder(), CASES, deadline=4, threads=7, clock=clock, before_pass=lambda: hooks.append(1),
                          core="SkylakeX")
    assert len(rows) == 3 and hooks == [1] and all(json.loads(r["params"])["blas_threads"] == 7 for r in rows)
    assert all(json.loads(r["params"])["blas_core"] == "SkylakeX" for r in rows)


def test_cold_case_turns_over_copies_of_its_operands():
    """A cold GEMM gives the product (float64 reference) on every call, each call on the next copy of its operands
    (the oldest first, back to the first after the last), and records the bytes the copies span: at least twice
    ``side``, at least 8 copies."""
    side = 2**16
    case = cset.cold_case(24, 40, 16, side=side, seed=3)
    p = case.prepare()
    assert p.args == ()
    per = 4 * (24 * 16 + 16 * 40)
    count = cset.cold_copies(per, side)
    assert count == -(-2 * side // per) == 32 and p.fields["params"]["cold_bytes"] == count * per
    assert cset.cold_copies(per, 1) == 8
    warm = dense_case(cset.SUITE, 24, 40, 16, "float32", np, 3)
    a, b = warm.prepare().args
    assert np.abs(a).min() > 0 and np.abs(b).min() > 0
    ref = a.astype(np.float64) @ b.astype(np.float64)
    seen = []
    real = np.matmul
    try:
        np.matmul = lambda x, y, out=None: seen.append((id(x), id(y))) or real(x, y, out=out)
        results = [p.fn().copy() for _ in range(count + 1)]
    finally:
        np.matmul = real
    for r in results:
        np.testing.assert_allclose(r, ref, rtol=1e-5, atol=1e-5)
    assert len(set(seen[:count])) == count and seen[count] == seen[0]  # every copy once, then round again
    assert case.key != warm.key and "cold_bytes" not in warm.prepare().fields["params"]


def test_calibration_cases_time_the_cold_gemms_only_when_asked():
    warm = cset.calibration_cases(np)
    cold = cset.calibration_cases(np, cold_side=2**22)
    extra = [c for c in cold if c.key not in {w.key for w in warm}]
    assert len(cold) == len(warm) + len(cset.COLD_CASES) == len(warm) + len(extra)
    assert sorted(c.key[2:5] for c in extra) == sorted(cset.COLD_CASES)


def test_grown_batches_stop_at_the_largest_span_asked():
    """A VM that reports its host's 480 MiB L3 as its own (no copy step found) would grow the six batches beyond the
    cache to 2 × 480 MiB and more; given ``largest`` (``calibrate``: the DRAM copy's side, at most an eighth of
    memory), each stops at the most matrices whose 4·(mk + kn + mn) bytes fit in it, and the batches in cache keep
    their counts. With room to spare the cap changes nothing."""
    last, largest = 480 * 2**20, 2**30
    free = cset.batch_cases(last)
    capped = cset.batch_cases(last, largest=largest)
    for (c, m, n, k), (cf, *_), (cc, *_) in zip(cset.BATCH_CASES, free, capped):
        each = 4 * (m * k + k * n + m * n)
        if each * c <= 32 * 2**20:
            assert cc == cf == c
        else:
            assert cf * each > 2 * last and cc * each <= largest < (cc + 1) * each
    assert cset.batch_cases(last, largest=2**40) == free
