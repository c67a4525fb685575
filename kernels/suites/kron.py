"""Kron-matmul suite: ``kernels.kron_matmul`` fused and shuffle on FastKron's (PPoPP'24) shapes."""

from __future__ import annotations

import math

from kernels.kron import kron_config, kron_flops, kron_matmul
from kernels.suites import Case, Prepared, case_rng, register

__all__ = ["PAPER_CASES", "SMALL_CASES", "cases", "kron_case"]

PAPER_CASES = [(8, 5), (8, 6), (16, 4), (16, 5), (32, 3), (32, 4), (64, 2), (64, 3), (128, 2)]
"""(P, N): N square P×P factors, as in FastKron's evaluation (M = 1024)."""
SMALL_CASES = [(8, 4), (16, 3), (32, 2), (64, 2)]
"""CI sizes (M = 64): milliseconds each on a 2-core CPU."""
_ALGORITHMS = ("fused", "shuffle")
_MAX_X_BYTES = 2**30  # cases whose float32 X would exceed this run with fewer rows (M = 128)


def kron_case(
    suite: str, m: int, shapes: list[tuple[int, int]], dtype: str, algorithm: str, xp, seed: int
) -> Case:
    """``kron_matmul(X, factors, algorithm)`` with X ``(m, ∏P)`` and factors of ``shapes``.

    ``params`` carries :func:`kernels.kron.kron_config`: the implementation name and, on a
    GPU, the tuned tile (tuning happens here, before timing).
    """
    key = ("kron_matmul", algorithm, m, tuple(shapes), dtype)
    k, n = math.prod(p for p, _ in shapes), math.prod(q for _, q in shapes)

    def prepare() -> Prepared:
        rng = case_rng(seed, key)
        x = xp.asarray(rng.standard_normal((m, k), dtype="float32").astype(dtype))
        fs = [xp.asarray(rng.standard_normal(s, dtype="float32").astype(dtype)) for s in shapes]
        item = x.dtype.itemsize
        fields = dict(
            kernel=f"kron_matmul_{algorithm}", dtype=dtype, m=m, n=n, k=k,
            shapes={"x": (m, k), "y": (m, n), **{f"f{i + 1}": s for i, s in enumerate(shapes)}},
            pattern=None, density=1.0, flops_dense=kron_flops(m, shapes),
            bytes_min=(m * k + m * n + sum(p * q for p, q in shapes)) * item,
            params={"algorithm": algorithm, "factors": [list(s) for s in shapes], **kron_config(x, fs, algorithm)},
        )
        return Prepared(kron_matmul, (x, fs, algorithm), fields)

    label = f"kron_matmul {algorithm} {dtype} M={m} " + "⊗".join(f"{p}x{q}" for p, q in shapes)
    return Case(suite, key, label, prepare)


@register("kron")
def cases(size: str, xp, seed: int) -> list[Case]:
    table, m = (SMALL_CASES, 64) if size == "small" else (PAPER_CASES, 1024)
    out = []
    for p, n in table:
        rows = m if m * p**n * 4 <= _MAX_X_BYTES else 128
        for alg in _ALGORITHMS:
            out.append(kron_case("kron", rows, [(p, p)] * n, "float32", alg, xp, seed))
    return out
