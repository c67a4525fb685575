"""Dense GEMM suite: ``xp.matmul`` (cuBLAS through CuPy, the host BLAS through NumPy), the baseline for speedups."""

from __future__ import annotations

from kernels.backend import backend_name
from kernels.nm.dispatch import DENSE
from kernels.suites import Case, Prepared, case_rng, register, shapes_for

__all__ = ["cases", "dense_case", "dense_impl", "dtypes_for"]


def dense_impl(xp) -> str:
    """``params["impl"]`` of ``xp.matmul``: cuBLAS on CuPy (:data:`kernels.nm.dispatch.DENSE`), NumPy's BLAS otherwise."""
    return DENSE if backend_name(xp) == "cupy" else "matmul"


def dtypes_for(xp) -> list[str]:
    """float32 everywhere; float16 too on the GPU (NumPy has no fast float16 matmul)."""
    return ["float32", "float16"] if backend_name(xp) == "cupy" else ["float32"]


def dense_case(suite: str, m: int, n: int, k: int, dtype: str, xp, seed: int, batch: int = 1) -> Case:
    """The dense ``(m, k) @ (k, n)`` case, or ``batch`` of them in one stacked ``matmul`` (``params.batch``, as an
    attention layer's per-head products); other suites add it so they carry their own baseline."""
    key = ("gemm", m, n, k, dtype) + ((batch,) if batch > 1 else ())
    lead = (batch,) if batch > 1 else ()

    def prepare() -> Prepared:
        rng = case_rng(seed, key)
        a = xp.asarray(rng.standard_normal(lead + (m, k), dtype="float32").astype(dtype))
        b = xp.asarray(rng.standard_normal(lead + (k, n), dtype="float32").astype(dtype))
        item = a.dtype.itemsize
        fields = dict(
            kernel="gemm", dtype=dtype, m=m, n=n, k=k,
            shapes={"a": a.shape, "b": b.shape, "c": lead + (m, n)},
            pattern=None, density=1.0, flops_dense=2 * batch * m * n * k,
            bytes_min=batch * (m * k + k * n + m * n) * item,
            params={"impl": dense_impl(xp), **({"batch": batch} if batch > 1 else {})},
        )
        return Prepared(xp.matmul, (a, b), fields)

    return Case(suite, key, f"gemm {dtype} {m}x{n}x{k}" + (f" x{batch}" if batch > 1 else ""), prepare)


@register("gemm")
def cases(size: str, xp, seed: int) -> list[Case]:
    shapes = shapes_for(size)
    return [dense_case("gemm", m, n, k, dt, xp, seed) for (m, n, k) in shapes for dt in dtypes_for(xp)]
