"""The FastKron kernel's index mapping (NumPy model of kron_fastkron.cu) and launch plans, on the CPU."""

import functools
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.kron.model import emulate, step_accesses, worst_conflict
from kernels.kron.plan import MAX_FACTORS, META_BYTES, THREADS, VARIANTS, candidates, kernel_name, plan

CU = (Path(__file__).resolve().parents[1] / "kernels" / "kron" / "kron_fastkron.cu").read_text()
PAPER = [(8, 5), (8, 6), (16, 4), (16, 5), (32, 3), (32, 4), (64, 2), (64, 3), (128, 2)]


def _reference(x, factors):
    return x.astype(np.float64) @ functools.reduce(np.kron, [f.astype(np.float64) for f in factors])


def _rand(rng, shape, dtype):
    a = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return a.astype(dtype)


dims = st.integers(1, 6)
shapes_st = st.lists(st.tuples(dims, dims), min_size=1, max_size=4).filter(
    lambda s: math.prod(p for p, _ in s) <= 216 and math.prod(q for _, q in s) <= 216
)


@settings(max_examples=40, deadline=None)
@given(
    shapes=shapes_st,
    m=st.integers(1, 6),
    dtype=st.sampled_from(["float32", "float64"]),
    pick=st.integers(0, 10**6),
    smem_kb=st.sampled_from([4, 16, 227]),
    seed=st.integers(0, 2**32 - 1),
)
def test_model_computes_kron_product(shapes, m, dtype, pick, smem_kb, seed):
    """Any tuning candidate, under any shared-memory limit, writes exactly X·(F1⊗…⊗FN)."""
    rng = np.random.default_rng(seed)
    factors = [_rand(rng, s, dtype) for s in shapes]
    x = _rand(rng, (m, math.prod(p for p, _ in shapes)), dtype)
    cands = candidates(m, shapes, dtype, smem_limit=smem_kb * 1024)
    cfg = cands[pick % len(cands)]
    y = emulate(x, factors, cfg, smem_limit=smem_kb * 1024)
    ref = _reference(x, factors)
    assert y.shape == ref.shape and not np.isnan(y).any()  # NaN: a read of unwritten shared memory
    # Rounding is bounded by |X|·(|F1|⊗…⊗|FN|) elementwise: a norm-relative check fails where terms cancel.
    scale = _reference(np.abs(x), [np.abs(f) for f in factors])
    eps = np.finfo(dtype).eps
    assert (np.abs(y - ref) <= 8 * len(shapes) * math.prod(p for p, _ in shapes) * eps * scale).all()


@pytest.mark.parametrize(
    "shapes",
    [[(8, 8)] * 3, [(4, 4)] * 4, [(16, 16)] * 2, [(2, 3), (3, 2), (4, 5)], [(3, 1), (1, 4), (2, 2)], [(32, 4)]],
    ids=str,
)
def test_every_candidate_of_a_shape(shapes):
    rng = np.random.default_rng(len(shapes))
    factors = [_rand(rng, s, np.float64) for s in shapes]
    x = _rand(rng, (7, math.prod(p for p, _ in shapes)), np.float64)
    ref = _reference(x, factors)
    for cfg in candidates(7, shapes, "float64"):
        y = emulate(x, factors, cfg)
        assert np.linalg.norm(y - ref) <= 1e-12 * np.linalg.norm(ref), cfg


def test_factor_too_large_for_shared_memory_becomes_a_shuffle_step():
    rng = np.random.default_rng(5)
    shapes = [(4, 4), (64, 64)]
    factors = [_rand(rng, s, np.float32) for s in shapes]
    x = _rand(rng, (3, 256), np.float32)
    cfg = candidates(3, shapes, "float32", smem_limit=8 * 1024)[0]
    launches = plan(3, shapes, "float32", cfg, smem_limit=8 * 1024)
    assert [la.impl for la in launches] == ["shuffle", "fastkron"]
    y = emulate(x, factors, cfg, smem_limit=8 * 1024)
    ref = _reference(x, factors)
    assert np.linalg.norm(y - ref) <= 1e-5 * np.linalg.norm(ref)


@pytest.mark.parametrize(("p", "n"), PAPER)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_paper_plans_fit_and_fuse(p, n, dtype):
    """Every candidate fits 227 KB; the favourite fuses (fewer launches than factors where slices allow)."""
    shapes = [(p, p)] * n
    cands = candidates(1024, shapes, dtype)
    for cfg in cands:
        for la in plan(1024, shapes, dtype, cfg):
            assert la.impl == "fastkron" and la.smem_bytes <= 227 * 1024
            assert la.grid[1] <= 65535 and la.nj & (la.nj - 1) == 0
    first = plan(1024, shapes, dtype, cands[0])
    assert len(first) < n or p >= 64  # 64×64 and larger: one factor's slice already fills the tile
    assert min(len(plan(1024, shapes, dtype, c)) for c in cands) == min(len(first), n)


@pytest.mark.parametrize("p", [2, 4, 8, 16, 32, 64, 128])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_slice_reads_are_bank_conflict_free(p, dtype):
    """Neighbouring lanes read neighbouring slices: with the padding no bank serves two words."""
    n = max(2, round(math.log(4096, p)))
    shapes = [(p, p)] * n
    item = 4 if dtype == "float32" else 8
    for cfg in candidates(64, shapes, dtype)[:4]:
        for la in plan(64, shapes, dtype, cfg):
            for g in range(len(la.shapes)):
                for inner in (0, la.shapes[g][0] - 1):
                    assert worst_conflict(step_accesses(la, g, item, inner), item) == 1, (cfg, g)


def test_padding_is_what_removes_conflicts():
    """Control: the same reads without padding (stride P = 32) hit one bank 32 times."""
    words = (np.arange(32) * 32)[None, :]
    assert worst_conflict(words, 4) == 32
    assert worst_conflict(words + np.arange(32)[None, :], 4) == 1


def test_python_mirror_matches_cuda_constants():
    defines = dict(re.findall(r"#define (KFK_\w+) (\d+)", CU))
    assert int(defines["KFK_THREADS"]) == THREADS
    assert int(defines["KFK_MAX_FACTORS"]) == MAX_FACTORS
    assert int(defines["KFK_META_BYTES"]) == META_BYTES
    compiled = set(re.findall(r"KFK_KERNEL\((\w+), (float|double), (\d+), (\d+)\)", CU))
    listed = {
        (kernel_name(dt, rk, rq), "float" if dt == "float32" else "double", str(rk), str(rq))
        for dt, tiles in VARIANTS.items()
        for rk, rq in tiles
    }
    assert compiled == listed
