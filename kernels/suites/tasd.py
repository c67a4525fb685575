"""TASD SpMM suite: ``kernels.tasd_spmm`` (one pass on CuPy, one SpMM per term on NumPy) against dense GEMM."""

from __future__ import annotations

from kernels.backend import backend_name
from kernels.suites import Case, Prepared, case_rng, register, shapes_for
from kernels.suites.gemm import dense_case, dtypes_for
from kernels.suites.nm_spmm import impl_params
from kernels.tasd import format_series, parse_series, series_density, tasd_decompose, tasd_spmm

__all__ = ["SERIES", "cases", "tasd_case"]

SERIES = ["2:4+1:4", "4:8+2:8", "2:8+1:8"]
"""Two-term series at 75 %, 75 % and 37.5 % of the dense MACs (the first spends one 2:4 pass on top)."""


def tasd_case(suite: str, m: int, n: int, k: int, dtype: str, series: str, xp, seed: int,
              layout: str = "element") -> Case:
    """``tasd_spmm(tasd_decompose(A, series, layout=...), B)``, A ``(m, k)`` decomposed along k (not timed)."""
    terms_spec = parse_series(series)
    name = format_series(terms_spec)
    key = ("tasd_spmm", m, n, k, dtype, name) + (() if layout == "element" else (layout,))

    def prepare() -> Prepared:
        rng = case_rng(seed, key)
        a = xp.asarray(rng.standard_normal((m, k), dtype="float32").astype(dtype))
        b = xp.asarray(rng.standard_normal((k, n), dtype="float32").astype(dtype))
        terms = tasd_decompose(a, terms_spec, axis=-1, layout=layout)
        out_item = 4 if dtype in ("float16", "float32") else 8
        fields = dict(
            kernel="tasd_spmm", dtype=dtype, m=m, n=n, k=k,
            shapes={"a": (m, k), "b": (k, n), "c": (m, n),
                    **{f"t{i}_values": t.values.shape for i, t in enumerate(terms)}},
            pattern=None, density=min(1.0, series_density(terms_spec)), tasd_series=name,
            flops_dense=2 * m * n * k,
            flops_effectual=sum(2 * m * t.groups * t.n * n for t in terms),
            bytes_min=sum(t.nbytes for t in terms) + b.nbytes + m * n * out_item,
            params={"terms": len(terms), "layout": layout,
                    "launches": 1 if backend_name(xp) == "cupy" else len(terms), **impl_params(terms, b, xp)},
        )
        return Prepared(tasd_spmm, (terms, b), fields)

    return Case(suite, key, f"tasd_spmm {name} {layout} {dtype} {m}x{n}x{k}", prepare)


@register("tasd")
def cases(size: str, xp, seed: int) -> list[Case]:
    shapes = shapes_for(size)
    out = []
    for m, n, k in shapes:
        for dt in dtypes_for(xp):
            out.append(dense_case("tasd", m, n, k, dt, xp, seed))
            out.extend(tasd_case("tasd", m, n, k, dt, s, xp, seed) for s in SERIES)
            if dt == "float32":
                out.extend(tasd_case("tasd", m, n, k, dt, s, xp, seed, "vector") for s in SERIES)
    return out
