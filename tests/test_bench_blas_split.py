"""bench/bench_blas_split.py: the shapes it times (its fit is bench_gemm_shapes.fit_terms, tested there)."""

from __future__ import annotations

from conftest import load_script


def test_shapes_cover_the_sides_within_the_mac_range():
    bench = load_script("bench/bench_blas_split.py")
    got = bench.shapes()
    # 27 side triples less 64³ (2^18) and the three orders of 64·64·128 (2^19), below 2^20, and 256³ (2^24), above 2^23
    assert len(got) == len(set(got)) == 22
    assert all(2**20 <= m * n * k <= 2**23 for m, n, k in got)
    assert (128, 128, 64) in got and (128, 64, 128) in got and (64, 64, 64) not in got and (256, 256, 256) not in got
