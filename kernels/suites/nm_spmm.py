"""N:M SpMM suite: ``kernels.nm_spmm`` at 2:4 and 4:8 … 1:8, element- and vector-wise, against dense GEMM
(and cuSPARSELt 2:4 where usable)."""

from __future__ import annotations

from kernels.backend import backend_name
from kernels.nm import NMPattern, nm_compress, nm_spmm
from kernels.suites import PATTERNS, Case, Prepared, case_rng, register, shapes_for
from kernels.suites.gemm import dense_case, dtypes_for

__all__ = ["cases", "impl_params", "nm_case"]


def impl_params(terms, b, xp) -> dict:
    """``params`` naming the implementation a call runs: on CuPy the dispatcher's tuned choice
    (:func:`kernels.nm.dispatch.plan`, tuned here, before timing), on NumPy the CPU path, and for terms on the
    gather path how each cuts the work (:func:`kernels.nm.cpu.gather_plan`; ``gathers``, one per term, for TASD)."""
    if backend_name(xp) == "cupy":
        from kernels.nm.dispatch import plan

        return plan(terms, b)
    from kernels.nm.cpu import choose_impl, gather_plan

    path = choose_impl(terms[0])
    out = {"impl": f"nm_{terms[0].layout}_numpy", "cpu_path": path}
    if path == "gather_gemm" and all(choose_impl(t) == path for t in terms):
        plans = [gather_plan(t, int(b.shape[1]), max(4, b.dtype.itemsize)) for t in terms]
        if len(plans) == 1:
            out["gather"] = plans[0]
        else:  # tasd_spmm: one nm_spmm per term
            out["gathers"] = plans
    return out


def nm_case(suite: str, m: int, n: int, k: int, dtype: str, pattern: str, xp, seed: int,
            layout: str = "element") -> Case:
    """``nm_spmm(nm_compress(A, N, M, layout=...), B)`` with A ``(m, k)`` random, compressed along k (not timed)."""
    pat = NMPattern.parse(pattern)
    key = ("nm_spmm", m, n, k, dtype, str(pat)) + (() if layout == "element" else (layout,))

    def prepare() -> Prepared:
        rng = case_rng(seed, key)
        a = xp.asarray(rng.standard_normal((m, k), dtype="float32").astype(dtype))
        b = xp.asarray(rng.standard_normal((k, n), dtype="float32").astype(dtype))
        t = nm_compress(a, pat.n, pat.m, axis=1, layout=layout)
        out_item = 4 if dtype in ("float16", "float32") else 8
        fields = dict(
            kernel="nm_spmm", dtype=dtype, m=m, n=n, k=k,
            shapes={"a": (m, k), "a_values": t.values.shape, "b": (k, n), "c": (m, n)},
            pattern=str(pat), density=pat.density, flops_dense=2 * m * n * k,
            flops_effectual=2 * m * t.groups * pat.n * n,
            bytes_min=t.nbytes + b.nbytes + m * n * out_item,
            params={"layout": layout,
                    "metadata": "uint8 per value" if layout == "element" else "uint8 per value per 32 rows",
                    **impl_params([t], b, xp)},
        )
        return Prepared(nm_spmm, (t, b), fields)

    return Case(suite, key, f"nm_spmm {pat} {layout} {dtype} {m}x{n}x{k}", prepare)


def cusparselt_case(suite: str, m: int, n: int, k: int, dtype: str, xp, seed: int) -> Case | None:
    """cuSPARSELt 2:4 on the same shape at float16, when CuPy exposes it (else None)."""
    from kernels.nm.cuda import cusparselt_2_4_available, cusparselt_2_4_prepare

    if backend_name(xp) != "cupy" or dtype != "float16" or not cusparselt_2_4_available():
        return None
    key = ("cusparselt_2_4", m, n, k, dtype)

    def prepare() -> Prepared:
        rng = case_rng(seed, key)
        a = xp.asarray(rng.standard_normal((m, k), dtype="float32").astype(dtype))
        b = xp.asarray(rng.standard_normal((k, n), dtype="float32").astype(dtype))
        fn, args = cusparselt_2_4_prepare(a, b)
        item = a.dtype.itemsize
        fields = dict(
            kernel="cusparselt_2_4", dtype=dtype, m=m, n=n, k=k,
            shapes={"a": (m, k), "b": (k, n), "c": (m, n)}, pattern="2:4", density=0.5,
            flops_dense=2 * m * n * k, flops_effectual=m * n * k,
            bytes_min=(m * k // 2 + k * n + m * n) * item + m * k // 8, params={"impl": "cusparselt"},
        )
        return Prepared(fn, args, fields)

    return Case(suite, key, f"cusparselt 2:4 {dtype} {m}x{n}x{k}", prepare)


@register("nm_spmm")
def cases(size: str, xp, seed: int) -> list[Case]:
    shapes = shapes_for(size)
    out = []
    for m, n, k in shapes:
        for dt in dtypes_for(xp):
            out.append(dense_case("nm_spmm", m, n, k, dt, xp, seed))
            out.extend(nm_case("nm_spmm", m, n, k, dt, p, xp, seed) for p in PATTERNS)
            if dt == "float32":  # the vector layout's kernel is the CUDA-core fp32 one
                out.extend(nm_case("nm_spmm", m, n, k, dt, p, xp, seed, "vector") for p in PATTERNS)
            lt = cusparselt_case("nm_spmm", m, n, k, dt, xp, seed)
            if lt is not None:
                out.append(lt)
    return out
