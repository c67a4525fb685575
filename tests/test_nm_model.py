"""The NumPy model of the packed CUDA kernels (index math, split-K, gather, one-pass TASD) equals decompress @ B."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.errors import InputError
from kernels.nm import nm_compress, nm_decompress
from kernels.nm.configs import TILES, candidates, smem_bytes, threads
from kernels.nm.model import model_packed, thread_map
from kernels.nm.pack import ROW_ALIGN, pack_terms, pad_cols
from kernels.tasd import tasd_decompose, tasd_reconstruct

H200_SMEM = 227 * 1024


@st.composite
def packed_cases(draw):
    """Random terms (one N:M tensor or a TASD series), both layouts, ragged rows, K and columns."""
    layout = draw(st.sampled_from(["element", "vector"]))
    m = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 16, 32]))
    series = [(draw(st.integers(1, m)), m)]
    if draw(st.booleans()):
        m2 = draw(st.sampled_from([m, 2 * m if 2 * m <= 32 else m]))
        series.append((draw(st.integers(1, m2)), m2))
    rows = draw(st.integers(1, 140))
    k = draw(st.integers(1, 70))
    cols = draw(st.integers(1, 140))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = (rng.standard_normal((rows, k)) + 0.01).astype(np.float32)
    b = (rng.standard_normal((k, cols)) + 0.01).astype(np.float32)
    split_pick = draw(st.integers(0, 1000))
    return a, b, series, layout, split_pick


def _terms(a, series, layout):
    if len(series) == 1:
        n, m = series[0]
        return [nm_compress(a, n, m, axis=1, layout=layout)]
    return tasd_decompose(a, series, axis=-1, layout=layout)


@settings(max_examples=25, deadline=None)
@given(packed_cases())
def test_model_of_every_candidate_equals_decompress_matmul(case):
    a, b, series, layout, pick = case
    terms = _terms(a, series, layout)
    ref = tasd_reconstruct(terms).astype(np.float64) @ b.astype(np.float64)
    bp = pad_cols(b, np)
    assert bp.shape[1] % 4 == 0 and np.array_equal(bp[:, : b.shape[1]], b)
    packs = {}
    lblock = int(np.lcm.reduce([m for _, m in series]))
    e_l = sum(n * lblock // m for n, m in series)
    cands = candidates(layout, lblock, e_l, sum(n / m for n, m in series), a.shape[0], bp.shape[1], H200_SMEM)
    if e_l > 32:  # one L-block overflows every tile's entry slots (the wrapper splits the terms)
        assert not cands
        return
    assert cands, (series, layout)
    # every tile once, plus one drawn split variant: the model is slow in pure NumPy
    chosen = [c for c in cands if c["split"] == 1]
    splits = [c for c in cands if c["split"] > 1]
    if splits:
        chosen.append(splits[pick % len(splits)])
    for cfg in chosen:
        if cfg["ks"] not in packs:
            packs[cfg["ks"]] = pack_terms(terms, ke_ks=cfg["ks"] if layout == "element" else None)
        p = packs[cfg["ks"]]
        assert p.rows_pad % ROW_ALIGN == 0 and p.e_per_block == e_l
        got = model_packed(p, bp, cfg)[:, : b.shape[1]]
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(ref).max()), err_msg=str(cfg))


@pytest.mark.parametrize("tile", TILES, ids=[str(t) for t in TILES])
def test_thread_map_partitions_the_tile_and_keeps_rows_in_one_vector(tile):
    mode, bm, bn, tm, stages, emax = tile
    rows, cols = thread_map(bm, bn, tm)
    assert len(rows) == threads(bm, bn, tm) <= 1024
    cells = (rows[:, :, None] * bn + cols[:, None, :]).ravel()
    assert np.array_equal(np.sort(cells), np.arange(bm * bn))  # every C element exactly once
    assert (rows // 32 == rows[:, :1] // 32).all()  # a thread's rows share one 32-row vector
    warp_vec = (rows[:, 0] // 32).reshape(-1, 32)
    assert (warp_vec == warp_vec[:, :1]).all()  # so a whole warp reads one B row per entry
    assert smem_bytes(mode, bm, bn, stages, emax) <= H200_SMEM


def test_gather_loads_only_rows_the_vectors_use():
    # 1:8 vector layout: a gather stage copies n B rows per window per vector, not all m.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((64, 256)).astype(np.float32) + 0.01
    t = nm_compress(a, 1, 8, axis=1, layout="vector")
    p = pack_terms([t])
    cfg = next(c for c in candidates("vector", 8, 1, 0.125, 64, 128, H200_SMEM) if c["mode"] == 1)
    e_stage, stages, ks = p.stage_shape(cfg["ks"])
    assert e_stage == cfg["emax"] and ks == 8 * cfg["emax"]  # emax entries cover 8x as many dense rows
    used = {int(x) for x in np.asarray(p.kv[: 64 // 32]).ravel()}
    assert used == {g * 8 + int(i) for v in range(2) for g, i in enumerate(np.asarray(t.indices[v, :, 0]))}
    assert len(used) <= 2 * 256 // 8  # at most n rows per window per vector are ever copied


def test_tasd_terms_stream_through_one_entry_list():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((40, 24)).astype(np.float32) + 0.01
    terms = tasd_decompose(a, "2:4+1:4")
    p = pack_terms(terms, ke_ks=32)
    assert (p.lblock, p.e_per_block, p.blocks) == (4, 3, 6)  # 2 + 1 entries per window of 4
    dense = tasd_reconstruct(terms)
    kabs = np.asarray(p.ke[:, :40]).astype(int).T + (np.arange(p.e_tot) // 24 * 32)[None, :]
    rebuilt = np.zeros((40, 24))
    np.add.at(rebuilt, (np.arange(40)[:, None], kabs), np.asarray(p.at[:, :40]).T)
    np.testing.assert_array_equal(rebuilt, dense)


def test_pack_refuses_mixed_terms():
    a = np.random.default_rng(0).standard_normal((8, 8)) + 0.01
    with pytest.raises(InputError):
        pack_terms([nm_compress(a, 2, 4), nm_compress(a, 2, 4, layout="vector")])
    with pytest.raises(InputError):
        pack_terms([nm_compress(a, 2, 4)], ke_ks=6)


def test_candidates_prefer_the_variant_that_fits_the_density():
    smem = H200_SMEM
    assert candidates("vector", 4, 2, 0.5, 1024, 4096, smem)[0]["mode"] == 0  # 2:4: whole slab
    assert candidates("vector", 8, 1, 0.125, 1024, 4096, smem)[0]["mode"] == 1  # 1:8: gather used rows
    assert candidates("element", 4, 2, 0.5, 1024, 4096, smem)[0]["mode"] == 3  # 2:4: expand on chip
    assert candidates("element", 8, 1, 0.125, 1024, 4096, smem)[0]["mode"] == 2  # 1:8: per-row slab reads
    small = candidates("vector", 4, 2, 0.5, 128, 128, smem)  # 1-4 blocks: split-K variants offered
    assert {c["split"] for c in small} == {1, 2, 4}
    big = candidates("vector", 4, 2, 0.5, 4096, 4096, smem)  # 1024 blocks: no split
    assert {c["split"] for c in big} == {1}
    assert all(smem_bytes(c["mode"], c["bm"], c["bn"], c["stages"], c["emax"]) <= 100 * 1024
               for c in candidates("vector", 4, 2, 0.5, 128, 128, 100 * 1024))


def test_tasd_spmm_refuses_mixed_layouts():
    from kernels.tasd import tasd_spmm

    a = np.random.default_rng(0).standard_normal((8, 8)) + 0.01
    with pytest.raises(InputError, match="layout"):
        tasd_spmm([nm_compress(a, 2, 4), nm_compress(a, 1, 4, layout="vector")], np.ones((8, 2)))
