"""GPU suite for issue 13: N:M SpMM and TASD against dense cuBLAS in the same run; ratios JSON + traces.

    python3 bench/gpu/suite_nm.py --json ratios-nm.json --traces DIR --budget-s 200
    python3 bench/gpu/suite_nm.py --backend numpy --tiny --json /tmp/r.json --traces /tmp/t --budget-s 60

Groups, each timed as medians of ``--repeats`` (>= 10) calls after warm-up, CUDA events on a GPU,
dense ``xp.matmul`` of the same shape and dtype timed in the same run (fp32 with TF32 off):

* ``tc_2of4``: 2:4 float16 and bfloat16 through the dispatcher (16-bit result, as ``cupy.matmul``)
  at 8192^3, 16384x4096x4096 and every listed shape; targets on the min ratio and the big shapes;
* ``vector_fp32``: vector-wise N:M at 50 / 62.5 / 75 / 87.5 % (2:4, 3:8, 2:8, 1:8), geomean
  ratios, and the rate on executed FLOPs against cuBLAS's dense rate at m >= 1024;
* ``element_fp32``: element-wise 2:4 and 1:8;
* ``tasd_fp32``: the series 2:4+1:4 (one pass) against dense.

Before each configuration the suite checks the time left against the slowest configuration so
far; once the budget is spent it skips the rest and lists them in the JSON (``budget_exhausted``).
A configuration that fails is listed under ``errors`` and the others still run; the JSON is
rewritten after every configuration. ``ratio`` is what a caller gets (the dispatcher's
choice); where that was not the CUDA-core kernel, ``cuda_core_ratio`` is the kernel's own.
``--tiny`` runs small shapes (CPU check).
"""

from __future__ import annotations

import math
import os
import sys
import time
import zlib
from pathlib import Path

os.environ.setdefault("CUPY_TF32", "0")  # fp32 baselines are true fp32 (cuBLAS without TF32)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import exit_on_term, guarded, suite_parser, write_json  # noqa: E402

__all__ = ["Budget", "TARGETS", "configs", "geomean", "main", "summarize"]

LLAMA_NK = [(4096, 11008), (11008, 4096), (4096, 4096)]
ROWS = [256, 512, 1024, 2048, 4096]
BIG = [(8192, 8192, 8192), (16384, 4096, 4096)]
VECTOR_PATTERNS = {"50%": "2:4", "62.5%": "3:8", "75%": "2:8", "87.5%": "1:8"}
TARGETS = {
    "vector_fp32_geomean": {"50%": 1.8, "62.5%": 2.4, "75%": 3.5, "87.5%": 6.3},
    "vector_fp32_rate_vs_dense_m>=1024": 0.9,
    "element_fp32_geomean": {"2:4": 1.0, "1:8": 3.0},
    "tc_2of4_big": {"float16": 1.15, "bfloat16": 1.0},
    "tc_2of4_min_all": 0.95,
    "tasd_fp32_geomean": {"2:4+1:4": 1.2},
}
TINY_SHAPES = [(32, 64, 96), (64, 96, 64)]


def geomean(xs) -> float | None:
    """Geometric mean of positive ratios (None for none)."""
    xs = [float(x) for x in xs]
    if not xs:
        return None
    if any(x <= 0 or not math.isfinite(x) for x in xs):
        raise ValueError(f"geomean: ratios must be positive and finite, got {xs}")
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


class Budget:
    """Wall-clock budget: a configuration starts only if the time left exceeds 1.5x the slowest one so far
    (the last one's cost would let a cheap configuration open the door to an expensive one)."""

    def __init__(self, seconds: float, clock=time.monotonic):
        self.seconds, self.clock = float(seconds), clock
        self.start = clock()
        self.slowest = 0.0

    def left(self) -> float:
        return self.seconds - (self.clock() - self.start)

    def allows_next(self) -> bool:
        return self.left() > self.slowest * 1.5

    def spent(self, seconds: float) -> None:
        self.slowest = max(self.slowest, seconds)


def configs(tiny: bool) -> list[dict]:
    """Every configuration in priority order: the big 2:4 shapes, then shape by shape (m = 1024, 4096,
    2048, 512, 256) every group at that shape, so a run cut short by its budget still covers each group."""
    rows = [32, 64] if tiny else [1024, 4096, 2048, 512, 256]
    shapes = TINY_SHAPES if tiny else [(m, n, k) for m in rows for n, k in LLAMA_NK]
    out = [dict(group="tc_2of4", m=m, n=n, k=k, dtype=dt, series="2:4", layout="element")
           for m, n, k in ([] if tiny else BIG) for dt in ("float16", "bfloat16")]
    for m, n, k in shapes:
        out += [dict(group="tc_2of4", m=m, n=n, k=k, dtype=dt, series="2:4", layout="element")
                for dt in ("float16", "bfloat16")]
        out += [dict(group="vector_fp32", m=m, n=n, k=k, dtype="float32", series=pat, layout="vector", sparsity=label)
                for label, pat in VECTOR_PATTERNS.items()]
        out += [dict(group="element_fp32", m=m, n=n, k=k, dtype="float32", series=pat, layout="element")
                for pat in ("2:4", "1:8")]
        out.append(dict(group="tasd_fp32", m=m, n=n, k=k, dtype="float32", series="2:4+1:4", layout="element"))
    return out


def _label(c: dict) -> str:
    return f"{c['group']} {c['series']} {c['dtype']} {c['m']}x{c['n']}x{c['k']}"


def summarize(results: list[dict]) -> dict:
    """Per-group figures the targets are stated in (geomeans, minima, rates), from the per-config rows."""
    by = {}
    for r in results:
        by.setdefault(r["group"], []).append(r)
    s = {}
    vec = by.get("vector_fp32", [])
    if vec:
        s["vector_fp32"] = {}
        for label in VECTOR_PATTERNS:
            rows = [r for r in vec if r.get("sparsity") == label]
            if rows:
                s["vector_fp32"][label] = {
                    "geomean": geomean(r["ratio"] for r in rows), "configs": len(rows),
                    "rate_vs_dense_m>=1024": geomean(r["rate_vs_dense"] for r in rows if r["m"] >= 1024),
                }
    for group in ("element_fp32", "tasd_fp32"):
        if by.get(group):
            s[group] = {}
            for pat in sorted({r["series"] for r in by[group]}):
                rat = [r["ratio"] for r in by[group] if r["series"] == pat]
                s[group][pat] = {"geomean": geomean(rat), "min": min(rat), "configs": len(rat)}
    if by.get("tc_2of4"):
        s["tc_2of4"] = {}
        for dt in sorted({r["dtype"] for r in by["tc_2of4"]}):
            rows = [r for r in by["tc_2of4"] if r["dtype"] == dt]
            s["tc_2of4"][dt] = {
                "min_all": min(r["ratio"] for r in rows),
                "big": {f"{r['m']}x{r['n']}x{r['k']}": r["ratio"] for r in rows if (r["m"], r["n"], r["k"]) in BIG},
                "impls": sorted({r["impl"] for r in rows}), "configs": len(rows),
            }
    return s


def _randn(xp, shape, seed: int, dtype: str):
    """Seeded standard normals made on the device (no host transfer at paper sizes)."""
    if xp.__name__ == "numpy":
        x = xp.random.default_rng(seed).standard_normal(shape, dtype=xp.float32)
    else:
        x = xp.random.RandomState(seed).standard_normal(shape, dtype=xp.float32)
    return x.astype(_dtype(xp, dtype))


def _dtype(xp, name: str):
    if name != "bfloat16":
        return xp.dtype(name)
    try:
        import ml_dtypes
    except ImportError:
        raise RuntimeError("bfloat16 needs ml_dtypes") from None
    xp.zeros(1, dtype=ml_dtypes.bfloat16) + 0  # raises where the array module has no bfloat16 arithmetic
    return ml_dtypes.bfloat16


class _Runner:
    """Measures configurations; keeps one dense baseline per (shape, dtype) for the whole run."""

    def __init__(self, xp, rec, warmup: int, repeats: int):
        self.xp, self.rec, self.warmup, self.repeats = xp, rec, warmup, repeats
        self.gpu = xp.__name__ != "numpy"
        self.dense: dict = {}

    def _time(self, fn):
        from kernels.trace import time_call

        # Time only: a >= 1 s NVML window per configuration would not fit the 8-minute job (energy: suite_network).
        return time_call(fn, warmup=self.warmup, repeats=self.repeats, xp=self.xp, min_window_s=0)

    def _dense(self, m, n, k, dtype, a, b):
        key = (m, n, k, dtype)
        if key not in self.dense:
            t = self._time(lambda: self.xp.matmul(a, b))
            item = a.dtype.itemsize
            self.rec.add(kernel="gemm", dtype=dtype, m=m, n=n, k=k, timing=t, suite="gpu_nm",
                         shapes={"a": (m, k), "b": (k, n), "c": (m, n)}, flops_dense=2 * m * n * k,
                         bytes_min=(m * k + k * n + m * n) * item, xp=self.xp,
                         params={"impl": "dense_cublas" if self.gpu else "dense_blas"})
            self.dense[key] = t.median_s
        return self.dense[key]

    def run(self, c: dict) -> dict:
        from kernels.nm import nm_spmm
        from kernels.tasd import parse_series, tasd_decompose, tasd_spmm

        xp, m, n, k, dtype = self.xp, c["m"], c["n"], c["k"], c["dtype"]
        seed = zlib.crc32(repr((m, n, k, dtype, c["series"])).encode()) % (2**31)  # the same in every process
        a = _randn(xp, (m, k), seed, dtype)
        b = _randn(xp, (k, n), seed + 1, dtype)
        dense_s = self._dense(m, n, k, dtype, a, b)
        terms = tasd_decompose(a, c["series"], axis=1) if "+" in c["series"] else None
        if terms is None:
            from kernels.nm import nm_compress

            p = parse_series(c["series"])[0]
            terms = [nm_compress(a, p.n, p.m, axis=1, layout=c["layout"])]
        del a
        out16 = dtype in ("float16", "bfloat16") and self.gpu
        if self.gpu:
            from kernels.nm.dispatch import plan, spmm_cupy

            params = plan(terms, b, b.dtype if out16 else None)
            fn = (lambda: spmm_cupy(terms, b, b.dtype)) if out16 else (
                (lambda: tasd_spmm(terms, b)) if len(terms) > 1 else (lambda: nm_spmm(terms[0], b)))
        else:
            from kernels.nm.cpu import choose_impl

            params = {"impl": f"nm_{c['layout']}_numpy", "cpu_path": choose_impl(terms[0])}
            fn = (lambda: tasd_spmm(terms, b)) if len(terms) > 1 else (lambda: nm_spmm(terms[0], b))
        t = self._time(fn)
        density = sum(x.n / x.m for x in terms)
        flops_eff = int(sum(2 * m * x.groups * x.n * n for x in terms))
        self.rec.add(kernel="tasd_spmm" if len(terms) > 1 else "nm_spmm", dtype=dtype, m=m, n=n, k=k, timing=t,
                     suite="gpu_nm", shapes={"a": (m, k), "b": (k, n), "c": (m, n)}, pattern=c["series"].split("+")[0],
                     density=density, tasd_series=c["series"] if len(terms) > 1 else None,
                     flops_dense=2 * m * n * k, flops_effectual=flops_eff, xp=xp,
                     bytes_min=int(sum(x.nbytes for x in terms) + b.nbytes + m * n * 4),
                     params={**params, "layout": c["layout"], "group": c["group"]})
        ratio = dense_s / t.median_s
        row = {**c, "impl": params.get("impl"), "time_s": t.median_s, "dense_s": dense_s, "ratio": ratio,
               "density": density, "rate_vs_dense": ratio * density}
        if self.gpu and dtype == "float32" and not str(row["impl"]).endswith("_cuda"):
            # The dispatcher fell back: time the CUDA-core kernel anyway, so its own ratio is on record.
            from kernels.nm.cuda import run_packed

            row["cuda_core_ratio"] = dense_s / self._time(lambda: run_packed(terms, b)).median_s
        return row


def main(argv=None) -> int:
    p = suite_parser(__doc__, budget_s=None, tiny="small shapes (a CPU check of the whole suite)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    if args.repeats < 10 and not args.tiny:
        p.error("--repeats: the targets are stated on medians of >= 10 timed calls")

    from kernels.backend import device_info, get_xp
    from kernels.trace import Recorder

    budget = Budget(args.budget_s)
    xp = get_xp(args.backend)
    rec = Recorder(args.traces)
    runner = _Runner(xp, rec, args.warmup, args.repeats)
    results, errors, skipped = [], [], []
    device = device_info(xp)["device_name"]

    def write() -> None:
        """The JSON as it stands (rewritten after every configuration, so a killed run keeps its figures)."""
        out = {
            "suite": "nm", "backend": args.backend, "device": device, "tiny": args.tiny,
            "repeats": args.repeats, "warmup": args.warmup, "budget_s": args.budget_s,
            "elapsed_s": args.budget_s - budget.left(), "budget_exhausted": bool(skipped), "skipped": skipped,
            "errors": errors, "targets": TARGETS, "summary": summarize(results), "results": results,
            "dense_median_s": {f"{m}x{n}x{k} {dt}": t for (m, n, k, dt), t in sorted(runner.dense.items())},
        }
        write_json(args.json, out, sort_keys=True)

    for c in configs(args.tiny):
        if not budget.allows_next():
            skipped.append(_label(c))
            continue
        t0 = time.monotonic()
        r = guarded(_label(c), lambda: runner.run(c), errors)  # one failing configuration must not lose the others
        if r is not None:
            results.append(r)
            print(f"{_label(c)}: {r['ratio']:.2f}x ({r['impl']})", file=sys.stderr, flush=True)
        budget.spent(time.monotonic() - t0)
        rec.flush()
        write()
    write()
    print(f"{len(results)} configs, {len(errors)} errors, {len(skipped)} skipped -> {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    exit_on_term()  # as a script only: tests call main() in their own process
    raise SystemExit(main())
