"""Run a plan on real kernels: a network's GEMM layers in order, each with its planned kernel, timed.

What ``accelsim run`` does. Each layer becomes a :class:`Step` — a ready call on operands already
on the device, weights already compressed (a deployment compresses them once); an activation
(``operand: input``) plan compresses at run time, inside the timed call, since that work is
part of running it. The dense baseline and the plan run as alternating passes over all layers
in network order (dense, plan, dense, plan, …), so a machine whose load drifts slows both
alike; each layer's time is the median over the timed passes, and the whole run is timed as
one span per pass. On CuPy, CUDA events bracket every layer and NVML energy is read over
windows of at least one second (:func:`kernels.trace.energy_per_call`), per layer and per run;
each record keeps its window's length and calls and the idle power read before it.

Trace records (:mod:`kernels.trace`, suite ``network``): one per layer and variant, kernel
``gemm`` / ``nm_spmm`` / ``tasd_spmm`` / ``cusparselt_2_4`` as the replay knows them, ``params``
holding ``role: layer``, ``network``, ``workload``, ``layer``, ``layer_index``, ``plan`` (the plan
id, or ``dense``), ``plan_kernel``, ``impl`` and ``output_rel_error`` (the layer's output
against the dense layer's, float64); and one per variant for the whole run, kernel ``network``,
``params.role: run``. An interrupted run writes the layers and passes it finished.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from accelsim.codesign.operands import Operands
from accelsim.codesign.plan import LayerPlan, Plan, PlanError
from kernels.nm import sparse_tc
from kernels.backend import backend_name
from kernels.nm import nm_compress, nm_spmm
from kernels.suites.gemm import dense_impl
from kernels.suites.nm_spmm import impl_params
from kernels.tasd import parse_series, tasd_decompose, tasd_spmm
from kernels.trace import EnergyWindow, Recorder, Timing, energy_per_call

__all__ = ["DENSE", "Prepared", "RunResult", "Step", "build_steps", "check_kernels", "layer_step", "prepare_run", "run_passes"]

DENSE = "dense"
"""Plan id of the all-dense baseline in trace records."""


@dataclass
class Step:
    """One layer ready to run: ``fn()`` computes its output (transposed when ``transposed``)."""

    index: int
    name: str
    plan: LayerPlan
    fn: Callable
    fields: dict
    transposed: bool = False


@dataclass
class RunResult:
    """Rows written, passes finished, and whether the run was cut short."""

    rows: list = field(default_factory=list)
    passes: int = 0
    interrupted: bool = False


def _layout_kw(layout: str) -> dict:
    return {} if layout == "element" else {"layout": layout}


def _layouts_supported() -> bool:
    return "layout" in inspect.signature(nm_compress).parameters


def check_kernels(plan: Plan, xp) -> None:
    """Refuse, before anything runs, a planned kernel this backend cannot run (named by layer)."""
    for i, lp in enumerate(plan.layers):
        where = f"{plan.source}: layers[{i}] ({lp.name})"
        if lp.kernel == "nm" and lp.layout != "element" and not _layouts_supported():
            raise PlanError(f"{where}.layout: {lp.layout!r} is not supported by this kernels version (element only)")
        if lp.kernel == "sparse_tc":
            ok = backend_name(xp) == "cupy"
            if ok:
                from kernels.nm.cuda import cusparselt_2_4_available

                ok = cusparselt_2_4_available()
            if not ok:
                raise PlanError(f"{where}.kernel: 'sparse_tc' needs cuSPARSELt on a GPU (CuPy); this backend is "
                                f"{backend_name(xp)}; plan 'nm' 2:4 instead")


def layer_step(index: int, layer, lp: LayerPlan, ops: Operands, xp, dtype) -> Step:
    """Prepare ``layer`` (anything with a ``name``) under ``lp``: operands moved to ``xp``, weights compressed
    (untimed); ``accelsim calibrate`` times its run-time compression cases through here too."""
    item = np.dtype(dtype).itemsize
    base = {"layer": layer.name, "layer_index": index, "plan_kernel": lp.label, "operands": ops.source}
    if not ops.static:
        a, b = xp.asarray(ops.a, dtype=dtype), xp.asarray(ops.b, dtype=dtype)
        c, m, k, n = a.shape[0], a.shape[1], a.shape[2], b.shape[2]
        fields = dict(kernel="gemm", m=m, n=n, k=k, shapes={"a": a.shape, "b": b.shape, "c": (c, m, n)},
                      flops_dense=2 * c * m * n * k, bytes_min=c * (m * k + k * n + m * n) * item,
                      params={**base, "batch": c, "impl": dense_impl(xp)})
        return Step(index, layer.name, lp, lambda: xp.matmul(a, b), fields)
    x, w = xp.asarray(ops.x, dtype=dtype), xp.asarray(ops.w, dtype=dtype)
    mt, k = x.shape
    n = w.shape[0]
    dense_flops = 2 * mt * n * k
    if lp.kernel == "dense":
        wt = xp.ascontiguousarray(w.T)
        fields = dict(kernel="gemm", m=mt, n=n, k=k, shapes={"a": x.shape, "b": wt.shape, "c": (mt, n)},
                      flops_dense=dense_flops, bytes_min=(mt * k + k * n + mt * n) * item,
                      params={**base, "impl": dense_impl(xp)})
        return Step(index, layer.name, lp, lambda: xp.matmul(x, wt), fields)
    if lp.kernel == "sparse_tc":
        from kernels.nm.cuda import cusparselt_2_4_prepare

        xt16 = xp.ascontiguousarray(x.T.astype(xp.float16))
        fn, args = cusparselt_2_4_prepare(w.astype(xp.float16), xt16)
        fields = dict(kernel="cusparselt_2_4", dtype="float16", m=n, n=mt, k=k,
                      shapes={"a": (n, k), "b": (k, mt), "c": (n, mt)}, pattern="2:4", density=0.5,
                      flops_dense=dense_flops, flops_effectual=dense_flops // 2,
                      bytes_min=(n * k // 2 + k * mt + n * mt) * 2 + n * k // 8,
                      params={**base, "operand": "weight", "impl": sparse_tc.IMPL})
        return Step(index, layer.name, lp, lambda: fn(*args), fields, transposed=True)
    pats = [(p.n, p.m) for p in _patterns(lp)]
    density = min(1.0, sum(n_ / m_ for n_, m_ in pats))
    spec = dict(pattern=lp.pattern, tasd_series=None) if lp.kernel == "nm" else dict(pattern=None, tasd_series=lp.series)
    extra = {"operand": lp.operand, "layout": lp.layout}

    def compress(t):
        if lp.kernel == "nm":
            return [nm_compress(t, pats[0][0], pats[0][1], axis=1, **_layout_kw(lp.layout))]
        return tasd_decompose(t, lp.series, axis=-1, **_layout_kw(lp.layout))

    def spmm(terms, b):
        return nm_spmm(terms[0], b) if lp.kernel == "nm" else tasd_spmm(terms, b)

    kern = "nm_spmm" if lp.kernel == "nm" else "tasd_spmm"
    if lp.operand == "weight":
        terms = compress(w)
        xt = xp.ascontiguousarray(x.T)
        eff = sum(2 * n * t.groups * t.n * mt for t in terms)
        fields = dict(kernel=kern, m=n, n=mt, k=k, shapes={"a": (n, k), "b": xt.shape, "c": (n, mt)}, density=density,
                      flops_dense=dense_flops, flops_effectual=eff,
                      bytes_min=sum(t.nbytes for t in terms) + (k * mt + n * mt) * item,
                      params={**base, **extra, **impl_params(terms, xt, xp), "terms": len(terms)}, **spec)
        return Step(index, layer.name, lp, lambda: spmm(terms, xt), fields, transposed=True)
    wt = xp.ascontiguousarray(w.T)
    probe = compress(x)  # what the timed call will build: its path and layout are recorded
    eff = sum(2 * mt * math.ceil(k / m_) * n_ * n for n_, m_ in pats)
    fields = dict(kernel=kern, m=mt, n=n, k=k, shapes={"a": x.shape, "b": wt.shape, "c": (mt, n)}, density=density,
                  flops_dense=dense_flops, flops_effectual=eff,
                  bytes_min=(mt * k + k * n + mt * n) * item,
                  params={**base, **extra, **impl_params(probe, wt, xp), "terms": len(pats),
                          "runtime_compress": True, "compress_layout": probe[0].layout}, **spec)
    return Step(index, layer.name, lp, lambda: spmm(compress(x), wt), fields)


def _patterns(lp: LayerPlan):
    return parse_series(lp.series if lp.kernel == "tasd" else lp.pattern)


def build_steps(layers: Sequence, indices: Sequence[int], plan: Plan, operands: dict, xp, dtype="float32",
                dense: bool = True) -> dict[str, list[Step]]:
    """``{variant: steps}``: ``dense`` (every layer dense, unless ``dense=False``) and ``plan.id``."""
    out = {}
    if dense:
        out[DENSE] = [layer_step(i, l, LayerPlan(l.name), operands[l.name], xp, dtype) for i, l in zip(indices, layers)]
    out[plan.id] = [layer_step(i, l, plan.layer(l.name), operands[l.name], xp, dtype) for i, l in zip(indices, layers)]
    return out


def _rel_error(y, ref, transposed: bool, xp) -> float:
    y = y.T if transposed else y
    d = y.astype(xp.float64) - ref.astype(xp.float64)
    den = float(xp.linalg.norm(ref.astype(xp.float64).ravel()))
    return float(xp.linalg.norm(d.ravel())) / den if den else 0.0


class _Clock:
    """Per-layer and per-pass times: CUDA events on CuPy (read after the pass), perf_counter on NumPy."""

    def __init__(self, xp):
        self.xp = xp
        self.gpu = backend_name(xp) == "cupy"

    def mark(self):
        if self.gpu:
            ev = self.xp.cuda.Event()
            ev.record(self.xp.cuda.get_current_stream())
            return ev
        return time.perf_counter()

    def seconds(self, a, b) -> float:
        if self.gpu:
            return self.xp.cuda.get_elapsed_time(a, b) / 1e3
        return b - a

    def sync(self):
        if self.gpu:
            self.xp.cuda.get_current_stream().synchronize()


def run_passes(steps: dict[str, list[Step]], *, xp, repeats: int, warmup: int, meta: dict,
               recorder: Recorder, energy_s: float = 1.0, layer_energy: bool = True, on_step=None,
               probe=None) -> RunResult:
    """Time ``warmup + repeats`` alternating passes over ``steps`` and add the trace rows to ``recorder``.

    ``meta`` (network, workload, dtype, plan file) goes into every row's params. ``on_step(variant,
    step, pass_no)`` is called before each layer (a progress bar). Energy windows last ``energy_s``
    (0: none) per run and, with ``layer_energy``, per layer too. After each timed pass the rows of
    the passes so far are written as the recorder's next part (:meth:`Recorder.provisional`), so a
    kill, even SIGKILL, keeps them; Ctrl-C or SIGTERM stops the loop, the finished passes' rows are
    added and the result says it was interrupted. ``probe()`` (a NumPy run:
    :func:`kernels.trace.microbench.gemm_probe_gflops`) runs before each timed pass; its values go into the run
    records' params as ``gemm_probe_gflops``, so ``validate`` can compare the box's state with the calibration's.
    """
    clock = _Clock(xp)
    times = {v: {s.name: [] for s in ss} for v, ss in steps.items()}
    runs = {v: [] for v in steps}
    probes = []
    res = RunResult()
    try:
        for p in range(warmup + repeats):
            if probe is not None and p >= warmup:
                probes.append(probe())
            for variant, ss in steps.items():
                marks = [clock.mark()]
                for s in ss:
                    if on_step is not None:
                        on_step(variant, s, p)
                    s.fn()
                    marks.append(clock.mark())
                clock.sync()
                if p >= warmup:
                    for s, a, b in zip(ss, marks, marks[1:]):
                        times[variant][s.name].append(clock.seconds(a, b))
                    runs[variant].append(clock.seconds(marks[0], marks[-1]))
            if p >= warmup:
                res.passes += 1
                scratch = Recorder(run_id=recorder.run_id)
                recorder.provisional(_add_rows(scratch, steps, times, runs, res.passes, warmup, meta, xp, probes=probes))
    except KeyboardInterrupt:
        res.interrupted = True
    if res.passes:
        final = not res.interrupted and energy_s > 0
        res.rows = _add_rows(recorder, steps, times, runs, res.passes, warmup, meta, xp,
                             errors={} if res.interrupted else _output_errors(steps, xp),
                             energy_s=energy_s if final else 0.0, layer_energy=layer_energy, probes=probes)
    return res


def _add_rows(recorder: Recorder, steps, times, runs, passes: int, warmup: int, meta: dict, xp, *,
              errors: dict | None = None, energy_s: float = 0.0, layer_energy: bool = False,
              probes=()) -> list[dict]:
    """One row per layer and one per whole run of each variant, over the first ``passes`` timed passes;
    energy windows of ``energy_s`` (0: none) are measured here, after the timed passes."""
    rows = []
    for variant, ss in steps.items():
        pass_energy = None
        if energy_s > 0:
            pass_energy = energy_per_call(lambda ss=ss: [s.fn() for s in ss], xp=xp, min_window_s=energy_s)
        for s in ss:
            ts = times[variant][s.name][:passes]
            e = energy_per_call(s.fn, xp=xp, min_window_s=energy_s) if energy_s > 0 and layer_energy else None
            f = dict(s.fields)
            params = {**meta, **f.pop("params"), "role": "layer", "plan": variant,
                      "output_rel_error": (errors or {}).get((variant, s.name))}
            f.setdefault("dtype", meta["dtype"])
            rows.append(recorder.add(timing=Timing(tuple(ts), warmup, **_energy(e)), suite="network", xp=xp,
                                     params=params, **f))
        fl = [s.fields for s in ss]
        rows.append(recorder.add(
            kernel="network", dtype=meta["dtype"], timing=Timing(tuple(runs[variant][:passes]), warmup,
                                                                    **_energy(pass_energy)),
            shapes={}, suite="network", xp=xp, flops_dense=sum(f["flops_dense"] for f in fl),
            flops_effectual=sum(f.get("flops_effectual") or f["flops_dense"] for f in fl),
            bytes_min=sum(f["bytes_min"] for f in fl),
            params={**meta, "role": "run", "plan": variant, "layers": [s.name for s in ss],
                    **({"gemm_probe_gflops": probes[:passes]} if probes else {})}))
    return rows


def _energy(window: EnergyWindow | None) -> dict:
    """The :class:`Timing` energy fields of an NVML window (energy, its length and calls, idle power); none without one."""
    return {} if window is None else asdict(window)


def _output_errors(steps: dict[str, list[Step]], xp) -> dict:
    """Each non-dense layer's output against the dense layer on the same operands (relative, float64)."""
    if DENSE not in steps:
        return {}
    ref = {s.name: s for s in steps[DENSE]}
    out = {}
    for variant, ss in steps.items():
        for s in ss:
            if variant == DENSE or s.plan.kernel == "dense":
                out[(variant, s.name)] = 0.0 if variant != DENSE else None
                continue
            out[(variant, s.name)] = _rel_error(s.fn(), ref[s.name].fn(), s.transposed, xp)
    return out


@dataclass
class Prepared:
    """A run ready to start: the network, the layers that run (with their indices), steps and record metadata."""

    network: object
    layers: list
    indices: list
    steps: dict
    meta: dict
    xp: object
    probe: object = None
    """A NumPy run's :func:`kernels.trace.microbench.gemm_probe_gflops`, for :func:`run_passes`; None on a GPU."""


def _slice(spec: str | None, n: int) -> range:
    if spec is None:
        return range(n)
    try:
        a, b = (int(p) if p.strip() else None for p in spec.split(":"))
    except ValueError:
        raise PlanError(f"--layers {spec!r}: expected START:STOP layer indices, e.g. 5:9") from None
    r = range(n)[slice(a, b)]
    if not r:
        raise PlanError(f"--layers {spec!r}: selects no layer of the network's {n}")
    return r


def prepare_run(plan: Plan, *, params: dict | None = None, layers: str | None = None, weights: str | None = None,
                backend: str | None = None, dtype: str = "float32", dense: bool = True,
                plan_file: str | None = None, prune: float = 0.0) -> Prepared:
    """Check everything, build operands and steps; nothing is run or written here.

    ``params`` override the plan's network parameters (e.g. ``seq_len`` for a shorter CPU run);
    ``layers`` is a ``START:STOP`` slice of the network's layers; ``weights`` is ``minilm`` (real,
    the default for MiniLM), a ``.safetensors`` file, or ``synthetic`` (seeded; the default elsewhere),
    magnitude-pruned by ``prune`` as ``tasd search --prune`` assumed.

    Raises
    ------
    PlanError, InputError
        A plan layer the network lacks, a kernel this backend cannot run, weights of the wrong
        shape, a bad slice, backend or dtype.
    """
    from accelsim.codesign.operands import minilm_operands, network_operands
    from accelsim.codesign.plan import check_network
    from accelsim.model.workloads import as_network
    from kernels.backend import get_xp
    from kernels.errors import InputError

    if dtype not in ("float32", "float16"):
        raise InputError(f"--dtype {dtype!r}: use float32 or float16")
    if not 0 <= prune < 1:
        raise InputError(f"--prune: expected a fraction in [0, 1), got {prune!r}")
    params = {**plan.params, **(params or {})}
    net = as_network(plan.workload, **params)
    check_network(plan, net)
    xp = get_xp(backend)
    check_kernels(plan, xp)
    idx = list(_slice(layers, len(net.layers)))
    chosen = [net.layers[i] for i in idx]
    weights = weights if weights is not None else ("minilm" if plan.workload == "minilm" else "synthetic")
    real, wfile = None, None
    if weights == "minilm":
        if plan.workload != "minilm":
            raise InputError(f"--weights minilm: only fits the minilm workload, the plan runs {plan.workload!r}")
        from accelsim.codesign.accuracy import load_sentences
        from accelsim.codesign.minilm import load_minilm

        sentences = load_sentences()
        batch = int(params.get("batch", 1))
        if batch > len(sentences):
            raise InputError(f"--param batch={batch}: only {len(sentences)} sentences ship with accelsim")
        real = minilm_operands(load_minilm(), sentences[:batch], int(params.get("seq_len", 128)),
                               [l.name for l in chosen])
    elif weights != "synthetic":
        from accelsim.codesign.sources import load_weight_file

        wfile = load_weight_file(weights, net)
    operands = network_operands(net, chosen, wfile, real, prune)
    meta = {"network": net.name, "workload": plan.workload, "network_params": params, "dtype": dtype, "prune": prune,
            "plan_id": plan.id, "plan_file": plan_file, "plan_arch": plan.arch}
    probe = None
    if backend_name(xp) == "numpy":  # a device calibration holds for one BLAS thread count (accelsim calibrate)
        from kernels.trace.microbench import PROBE_WARM_S, blas_core, blas_threads, gemm_probe_gflops, keep_freed_memory

        probe = gemm_probe_gflops
        meta["gemm_probe_warm_s"] = PROBE_WARM_S
        meta["blas_threads"] = blas_threads()
        meta["blas_core"] = blas_core()
        meta["freed_memory_kept"] = keep_freed_memory()  # as CuPy's pool keeps GPU memory: no fresh pages per call
        meta["glibc_tunables"] = os.environ.get("GLIBC_TUNABLES")  # how glibc copies (a calibration records it too)
    steps = build_steps(chosen, idx, plan, operands, xp, dtype, dense)
    return Prepared(net, chosen, idx, steps, meta, xp, probe)
