"""The box's state while a device is calibrated and while a run is timed: the peaks sampled in rounds between a
calibration's trace passes, the passes of one state it fits (:func:`steady_passes`), how it merges them
(:func:`pass_center`) and how far they spread (:func:`pass_spread`), and what ``calibrate``, ``validate`` and
``run --calibration`` say of the state (:func:`mixed_state_note`, :func:`unsteady_note`, :func:`state_notes`).

On the 2-vCPU EPYC the box has two states at two BLAS threads (a 256³ probe GEMM at 176-219 or 231-263 GFLOP/s,
for tens of seconds to minutes at a time); one thread sees no difference. BENCHMARKS.md "Seventh slice" has what
the slow state slows.
"""

from __future__ import annotations

import statistics

import numpy as np
import pyarrow as pa

from accelsim.replay.labels import params_of
from kernels.trace.microbench import PROBE_N, PROBE_WARM_S

__all__ = ["DTYPES", "GEMM_SIZES", "MIN_PASSES", "MIXED_STATE", "PeakSampler", "STATE_GAP", "STATE_NOTE",
           "NEAR_MEDIAN", "UNSTEADY_PASSES", "choose_state", "compared_state", "gemm_peak", "mixed_state_note",
           "nearest_state", "pass_buffers", "pass_center", "pass_spread", "probe_warm_s", "run_probes", "state_notes",
           "steady_passes", "unsteady_note"]

GEMM_SIZES = (256, 512, 1024)
"""Square GEMM sizes timed per dtype; the peak is the size with the fastest median (:func:`gemm_peak`). On a loaded
2-vCPU box a two-thread matmul waits a 4 ms scheduler step for its preempted thread (256³: 16 ms, against 0.15 ms a
minute later), so the samples are spread over the whole calibration, between the trace passes."""
DTYPES = ("float32", "float64")


def gemm_peak(rate: dict) -> float:
    """The MAC rate a CPU arch takes from a GEMM size's pooled runs (a :class:`~kernels.trace.microbench.Rate`):
    their median, the rate the box sustains, not the fastest. Over five one-thread calibrations on the 2-vCPU Xeon
    VM the fastest fp32 run ranged 158-193 GFLOP/s while the 1024³ median ranged 153-168, and the fitted GEMM
    efficiency against the fastest ranged 0.78-0.89 (14 %) where against the median it ranged 0.89-0.94 (the same
    traces fitted again): the fastest run is an extreme of the box's moments, which a second calibration does not
    meet again. Over 22 fresh calibrations the efficiencies then held within 2.4-5.5 % per set of five or six. A
    kernel may beat this rate for a moment; the fit bounds its efficiency at 1 all the same (fp32 0.88-0.92, fp64
    0.91-0.98 over those 22)."""
    return rate["median"]


class PeakSampler:
    """Peak samples taken in rounds (one before each trace pass), so the peaks and the traces see the same mix of
    quiet and loaded moments: GEMM per dtype and size, copy per level of ``buffers`` (bytes per side), 2:4 scatters
    and rank steps per level (:func:`pass_buffers`). Timed all at once, 21 L3 copies took half a second, and 5 of
    153 two-thread calibrations of the 2-vCPU EPYC got 95-116 GB/s as their fastest, against a median of 133.
    :meth:`summary` gives each over the rounds asked for (its median, fastest and slowest run; per dtype the GEMM
    size with the fastest :func:`gemm_peak`), and the box-state probe's rate
    (:func:`~kernels.trace.microbench.probe_times`): its median per round (:meth:`probe_rounds`) and over the rounds
    asked for."""

    def __init__(self, buffers: dict[str, int], per_round: int, sizes=GEMM_SIZES):
        self.buffers, self.sizes, self.per_round = buffers, sizes, per_round
        self.rounds: list[dict] = []  # {"probe": seconds, "gemm": {(dtype, n): seconds}, kind: {level: GB/s}}

    def round(self) -> None:
        from kernels.trace.microbench import copy_rates, gemm_times, grouped_rates, indexed_rates, probe_times

        r = {"probe": probe_times(),  # first, right after the pass, as `run` probes right after its last pass
             "gemm": {(d, n): gemm_times(n, d, self.per_round) for d in DTYPES for n in self.sizes},
             "copy": {}, "indexed": {}, "grouped": {}}
        for lvl, b in self.buffers.items():
            r["copy"][lvl] = copy_rates(b, 2 * self.per_round)
        for lvl, b in pass_buffers(self.buffers).items():
            r["indexed"][lvl] = indexed_rates(b, self.per_round)
            r["grouped"][lvl] = grouped_rates(b, self.per_round)
        self.rounds.append(r)

    def probe_rounds(self) -> list[float]:
        """The probe's median GFLOP/s per round."""
        from kernels.trace.microbench import Rate, gemm_gflop

        return [Rate.of(gemm_gflop(PROBE_N), r["probe"])["median"] for r in self.rounds]

    def summary(self, rounds=None) -> dict:
        """The peaks and the probe's rate over ``rounds`` (indices; all by default), and every round's probe rate."""
        from kernels.trace.microbench import Rate, gemm_gflop, spread

        picked = [self.rounds[i] for i in (range(len(self.rounds)) if rounds is None else rounds)]

        def pooled(kind, key):
            return [v for r in picked for v in (r[kind] if key is None else r[kind][key])]

        by_size = {d: {n: Rate.of(gemm_gflop(n), pooled("gemm", (d, n))) for n in self.sizes} for d in DTYPES}
        best = {d: max(r, key=lambda n: gemm_peak(r[n])) for d, r in by_size.items()}
        return {"gemm_n": best, "gemm_gflops": {d: by_size[d][best[d]] for d in by_size},
                "probe_rounds": self.probe_rounds(),
                "probe_gflops": Rate.of(gemm_gflop(PROBE_N), pooled("probe", None))["median"],
                "probe_warm_s": PROBE_WARM_S,
                "gemm_gflops_by_size": {d: {str(n): r["median"] for n, r in v.items()} for d, v in by_size.items()},
                "copy_gbs": {lvl: Rate(spread(pooled("copy", lvl))) for lvl in self.buffers},
                **{f"{kind}_gbs": {lvl: Rate(spread(pooled(kind, lvl))) for lvl in pass_buffers(self.buffers)}
                   for kind in ("indexed", "grouped")}}


def pass_buffers(buffers: dict[str, int]) -> dict[str, int]:
    """Bytes per level that the NumPy pass rates (scatters, rank steps) are timed on: a cache level's copy side (a
    rank step holds 2.25 × that: the scores, an int8 rank, four one-byte temporaries, within half the level),
    DRAM's a quarter of its copy side, twice the last level (one rank step over DRAM's 240 MiB side took 0.25 s
    on the 2-vCPU Xeon VM); twice the DRAM size is also what a cold GEMM's operand copies span."""
    return {lvl: b // 4 if lvl == "dram" else b for lvl, b in buffers.items()}


STATE_GAP = 0.08
"""Smallest step between two sorted probe rounds that :func:`steady_passes` takes for a change of the box's state.
On the 2-vCPU EPYC one state's rounds spread 2-13 % (fastest / slowest) in small steps; at two threads the states
lie 20-30 % apart (probe 176-219 or 231-263 GFLOP/s)."""
MIN_PASSES = 3
"""Fewest passes :func:`steady_passes` keeps; with fewer in one state, every pass is kept (and the calibration is
called mixed)."""


def steady_passes(rounds: list[float], passes: int) -> list[int]:
    """Indices of the ``passes`` trace passes a calibration fits on, so the fit sees one state of the box: the
    probe rounds sorted are split at their largest step where it exceeds :data:`STATE_GAP`, the side with more
    rounds is the state kept (the latest round's on a tie: the state the box is in now), and a pass is kept when
    its round before it and the next one after it (the last pass has only its own) are both of it. With 2 threads
    the 2-vCPU EPYC changed state within 15 of 23 calibrations (25-30 s each); fitted across a change, a
    ``nm_gather`` fraction came out 0.38 where one state gave 0.31-0.33 and the other 0.36-0.39. Every pass where
    rounds are missing, no step is that large, or fewer than :data:`MIN_PASSES` would remain."""
    every = list(range(passes))
    if len(rounds) < passes or passes < 2:
        return every
    order = sorted(range(len(rounds)), key=lambda i: rounds[i])
    steps = [rounds[b] / rounds[a] for a, b in zip(order, order[1:])]
    cut = int(np.argmax(steps)) + 1
    if steps[cut - 1] <= 1 + STATE_GAP:
        return every
    low, high = set(order[:cut]), set(order[cut:])
    state = high if (len(high), len(rounds) - 1 in high) > (len(low), len(rounds) - 1 in low) else low
    kept = [p for p in every if p in state and (p + 1 >= passes or p + 1 in state)]
    return kept if len(kept) >= MIN_PASSES else every


STATE_NOTE = 0.10
"""Relative difference of the run's and the calibration's probe GEMM rate above which :func:`state_notes` warns."""
MIXED_STATE = 0.15
"""Spread (fastest / slowest − 1) of a calibration's per-round probe rates above which it is called mixed. On the
2-vCPU EPYC the rounds of 43 calibrations spread 2-13 % where the probe stayed in one state, 16-37 % where it
changed state mid-way (15 of 23 at two threads) or the box was loaded (1 of 20 at one thread, load 2.1)."""


NEAR_MEDIAN = 1.5
"""A pass more than this factor slower or faster than its configuration's median pass is left out of its mean
(:func:`pass_center`): on the 2-vCPU EPYC a pass the scheduler interrupted took 1.6-22× its configuration's time
(one mean of 17 passes came out at 2.2× its median), while the two speeds of small two-thread batches lie 1.17×
apart."""


def pass_center(times: list[float]) -> float:
    """How a calibration merges a configuration's passes: the mean of those within :data:`NEAR_MEDIAN` of their
    median (the median itself where none is). The passes are of one state of the box
    (:func:`steady_passes`), and what the fit predicts are sums over many kernels (a
    loop's pass adds up hundreds of layers), whose expectation the mean is. On the 2-vCPU EPYC small two-thread
    GEMM batches switch between two speeds 15 % apart every 10-20 s: the median took one speed or the other whole,
    and the ``threaded_call_s`` fitted on it was 1.06 or 1.95 µs over ten calibrations (1.18-1.99 with the mean;
    1.44-1.70 with the mean of 18 passes). Eight calibrations of 18 passes per thread count (BENCHMARKS.md "Ninth
    slice"), worst change over the pairs of one state, median / mean / this: one thread, every parameter 10.4 /
    8.3 / 8.3 %; two threads, ``threaded_call_s`` 40.7 / 25.6 / 32.5 % and every other parameter 7.2 / 5.1 / 6.1 %."""
    mid = statistics.median(times)
    near = [t for t in times if mid / NEAR_MEDIAN <= t <= NEAR_MEDIAN * mid]
    return statistics.fmean(near) if near else mid  # an even count split far apart: none near the median


PASS_SPREAD_WORST = 3
"""Configurations :func:`pass_spread` names, the most spread first."""


def pass_spread(items) -> dict:
    """How far each configuration's passes spread (slowest / fastest − 1, over the configurations timed in two or
    more): the median, and the :data:`PASS_SPREAD_WORST` most spread. It says how steady the box was while the
    calibration ran, which no fitted parameter shows: on the 2-vCPU EPYC most configurations' passes spread a few
    %, while two-thread batches of small GEMMs switch between speeds (64 products of 128 × 128 × 64: 1.1 or 1.7 ms
    within one calibration), and a parameter fitted on them moves with the mix of speeds the passes caught."""
    spreads = sorted(((max(t) / min(t) - 1.0, it.label, len(t)) for it in items
                      if len(t := it.row.get("run_times_s") or []) >= 2 and min(t) > 0), key=lambda x: (-x[0], x[1]))
    if not spreads:
        return {"configs": 0, "median_pct": None, "worst": []}
    return {"configs": len(spreads), "median_pct": 100.0 * float(np.median([x[0] for x in spreads])),
            "worst": [{"label": lbl, "spread_pct": 100.0 * x, "passes": n}
                      for x, lbl, n in spreads[:PASS_SPREAD_WORST]]}


UNSTEADY_PASSES = 7.0
"""Median spread, in %, of a calibration's configurations over their passes
(:func:`pass_spread`) above which :func:`unsteady_note` says the box was
unsteady. On the 2-vCPU EPYC at one thread (16 calibrations, 2026-12-05) the quiet ones spread 2.3-6.0 % and kept
every parameter within 6.4 % of their set's median; three spread 7.6-14.3 %, and two of them moved a parameter by
10.2 and 10.5 %. At two threads the box spreads 3-11 % as its threaded calls switch speed."""


def unsteady_note(doc: dict) -> str | None:
    """A note when a calibration's passes spread beyond :data:`UNSTEADY_PASSES` in median: other work on the box
    moved its timings, and its fitted parameters with them; None otherwise."""
    spread = (doc.get("pass_spread") or {}).get("median_pct")
    if spread is None or spread <= UNSTEADY_PASSES:
        return None
    return (f"the box was unsteady during the calibration: a configuration's passes spread {spread:.1f} % in median "
            f"(above {UNSTEADY_PASSES:g} %), so its parameters carry that noise; calibrate again on a quieter box")


def mixed_state_note(doc: dict) -> str | None:
    """A note when the box changed state while the calibration ran: the passes its fit kept
    (:func:`steady_passes`), or, where it kept them all though its probe rounds spread beyond
    :data:`MIXED_STATE`, that its parameters average two states; None otherwise."""
    rounds = doc.get("gemm_probe_rounds") or []
    passes = doc.get("passes") or {}
    kept, recorded = len(passes.get("kept") or []), passes.get("recorded") or 0
    if len(rounds) < 2:
        return None
    seen = (f"the box changed state during the calibration: its probe rounds ran at {min(rounds):.4g}-"
            f"{max(rounds):.4g} GFLOP/s")
    if 0 < kept < recorded:
        return (f"{seen}; it fitted the {kept} of {recorded} passes run in one state (probe "
                f"{doc.get('gemm_probe_gflops'):.4g} GFLOP/s)")
    if max(rounds) > (1 + MIXED_STATE) * min(rounds):
        return f"{seen}, so its parameters average two states"
    return None


def _probed_runs(table: pa.Table) -> list[dict]:
    """The params of one record per run that carries probes (every variant's run record of a run carries the same)."""
    per_run = {}
    for r in table.select(["run_id", "params"]).to_pylist():
        params = params_of(r)
        if params.get("gemm_probe_gflops"):
            per_run.setdefault(r["run_id"], params)
    return list(per_run.values())


def run_probes(table: pa.Table) -> list[float]:
    """The probe rates a run recorded, one per timed pass (:func:`kernels.trace.microbench.gemm_probe_gflops`)."""
    return [v for params in _probed_runs(table) for v in params["gemm_probe_gflops"]]


def probe_warm_s(params: dict) -> float:
    """The warm-up a probe was timed after (``gemm_probe_warm_s`` of a calibration or of a run record's params;
    :data:`~kernels.trace.microbench.PROBE_WARM_S` since it was recorded, 0 before): probes taken after different
    warm-ups read different moments, not different states, and are not compared."""
    return float(params.get("gemm_probe_warm_s") or 0.0)


def _run_warm_s(table: pa.Table) -> float | None:
    """The warm-up the run's probes were timed after (None: a run without probes)."""
    return next((probe_warm_s(params) for params in _probed_runs(table)), None)


def _unlike_note(doc: dict, table: pa.Table) -> list[str]:
    """A note where the calibration and the run both probed the box, after different warm-ups."""
    run, mine = _run_warm_s(table), probe_warm_s(doc)
    if run is None or not doc.get("gemm_probe_gflops") or run == mine:
        return []
    return [f"box state not compared: the run timed its probe after {1e3 * run:g} ms of warm-up, the calibration "
            f"after {1e3 * mine:g} ms (an accelsim before or after the warm-up was added); calibrate again to compare"]


def _copy_note(doc: dict, table: pa.Table) -> list[str]:
    """A note where the calibration and the run both recorded ``GLIBC_TUNABLES``, differently: glibc may then copy by
    another path at another rate in each (:func:`accelsim.replay.cpu_report.near_copy_note`)."""
    run = next((p for p in map(params_of, table.select(["params"]).to_pylist()) if "glibc_tunables" in p), None)
    if run is None or "glibc_tunables" not in doc or run["glibc_tunables"] == doc["glibc_tunables"]:
        return []
    return [f"copies: the run had GLIBC_TUNABLES={run['glibc_tunables'] or '(unset)'}, the calibration "
            f"{doc['glibc_tunables'] or '(unset)'}; glibc may copy at another rate in each: calibrate and run alike"]


def nearest_state(docs: list[dict], table: pa.Table) -> int:
    """Index of the calibration (its document) whose probe rate is nearest the run's median one: given one
    calibration per state of the box, the one made in the run's state. 0 where the run or every calibration
    lacks a probe, or took it after another warm-up than the run (:func:`probe_warm_s`). On the seventh slice's
    two-thread loops (five calibrations each, refitted by this fit; every run against the nearest of its loop's
    instead of its own), the worst whole-run error of a loop went 9.1 -> 6.2 % (`seq_len=8`) and 14.4 -> 6.8 % (full
    size); no median whole-run error moved by more than 1 point."""
    rates, warm = run_probes(table), _run_warm_s(table)
    probes = [d.get("gemm_probe_gflops") if probe_warm_s(d) == warm else None for d in docs]
    if not rates or not any(probes):
        return 0
    run = float(np.median(rates))
    return min((i for i, p in enumerate(probes) if p), key=lambda i: abs(probes[i] - run))


def choose_state(paths: list, docs: list[dict], table: pa.Table) -> tuple[int, list[str], dict | None]:
    """``(pick, notes, state)``: the calibration (of ``docs``, read from ``paths``) that prices the run in ``table``
    (:func:`nearest_state`), what to say of it (which one was picked beside every calibration's probe rate, for
    several, then :func:`state_notes`), and the same comparison as numbers (:func:`compared_state`, the report's
    ``box_state``)."""
    pick = nearest_state(docs, table)
    notes = []
    if len(docs) > 1:
        probes = ", ".join(f"{p}: {d['gemm_probe_gflops']:.4g}" if d.get("gemm_probe_gflops") else f"{p}: none"
                           for p, d in zip(paths, docs))
        notes.append(f"{paths[pick]}'s probe rate is the nearest the run's of the {len(docs)} calibrations ({probes} "
                     "GFLOP/s)")
    state = compared_state(docs[pick], table)
    return pick, notes + state_notes(docs[pick], table, state), state


def compared_state(doc: dict, table: pa.Table) -> dict | None:
    """The box's state during a run against the calibration's, as the report's ``box_state``: the median of the run
    records' ``gemm_probe_gflops`` (:func:`run_probes`, ``run_passes`` of them), the calibration's, their ``ratio``
    (run / calibration) and whether they differ by more than :data:`STATE_NOTE` (``differs``). None where either
    lacks a probe (a GPU run, a calibration made before probes) or the two took it after different warm-ups
    (:func:`probe_warm_s`)."""
    mine = doc.get("gemm_probe_gflops")
    rates = run_probes(table)
    if not mine or not rates or probe_warm_s(doc) != _run_warm_s(table):
        return None
    run = float(np.median(rates))
    return {"run_probe_gflops": run, "run_passes": len(rates), "calibration_probe_gflops": mine, "ratio": run / mine,
            "differs": abs(run / mine - 1.0) > STATE_NOTE}


def state_notes(doc: dict, table: pa.Table, state: dict | None = None) -> list[str]:
    """:func:`compared_state` (or ``state``, already compared) in words; a warning where the states differ, a note
    where the probes cannot be compared, and one where the two copied under different ``GLIBC_TUNABLES``."""
    state = state if state is not None else compared_state(doc, table)
    return _unlike_note(doc, table) + _copy_note(doc, table) + _described(doc, state)


def _described(doc: dict, state: dict | None) -> list[str]:
    if state is None:
        return []
    run, mine, d = state["run_probe_gflops"], state["calibration_probe_gflops"], state["ratio"] - 1.0
    note = (f"box state: a {PROBE_N}^3 fp32 GEMM ran at {run:.4g} GFLOP/s during the run (median of "
            f"{state['run_passes']} passes), {mine:.4g} during the calibration ({d:+.0%})")
    if state["differs"]:
        priced = ("is priced for it by the power the calibration fitted (first order)" if doc.get("probe_power")
                  else "prices the calibration's state")
        note += ("; the box ran " + ("faster" if d > 0 else "slower") + f" than when calibrated, and the projection "
                 f"{priced}: calibrate again, run again, or give a calibration of each state "
                 "(--calibration A --calibration B)")
    return [note] + [n for n in (mixed_state_note(doc), unsteady_note(doc)) if n]
