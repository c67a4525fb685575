"""The implementation descriptions of the current kernels (kernels.nm.impls, impls_kron, projection_impls) against
closed forms recomputed from the record, the names the kernels can record, and the GPU model's time for each."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.model.arch import load_arch
from accelsim.model.gpu import record_time
from accelsim.replay.device import with_defaults
from kernels.kron import plan as kron_plan
from kernels.nm import configs as nm_configs, dispatch as nm_dispatch, sparse_tc
from kernels.errors import InputError
from kernels.impls import IMPLS, Record, describe, infer_impl
from kernels.kron import kron_config, kron_flops
from kernels.projection import bilevel_impl, multilevel_impl
from kernels.impls import passes

VECTOR = {"mode": 0, "bm": 128, "bn": 128, "tm": 8, "stages": 3, "emax": 32, "ks": 128, "split": 1}
ELEMENT_EXPAND = {"mode": 3, "bm": 64, "bn": 128, "tm": 8, "stages": 4, "emax": 32, "ks": 32, "split": 1}


def _nm(impl: str, cfg: dict | None = None, **kw) -> Record:
    base = dict(kernel="nm_spmm", dtype="float32", m=256, n=512, k=1024, pattern="2:8",
                params={"impl": impl, **(cfg or {})})
    return Record(**{**base, **kw})


def _kron(impl: str, factors, m: int = 1024, dtype: str = "float32", **cfg) -> Record:
    k = math.prod(p for p, _ in factors)
    return Record(f"kron_matmul_{'fused' if 'fast' in impl else 'shuffle'}", dtype, "cupy", m,
                  math.prod(q for _, q in factors), k, params={"impl": impl, "factors": [list(f) for f in factors], **cfg})


# --------------------------------------------------------------------------- packed N:M CUDA kernel
def test_vector_kernel_counts_read_off_the_launch():
    # 2:8 vector-wise: 2 entries per 8 K rows -> 256 per row over K = 1024; grid (512/128, 256/128);
    # 256 threads (4 x 2 warps of 32) -> __launch_bounds__(256, 2); 97 KB of shared memory also fits 2 per SM.
    (step,) = describe("nm_vector_cuda").steps(_nm("nm_vector_cuda", VECTOR))
    assert step.unit == "cuda_core" and step.blocks == 4 * 2 and step.blocks_per_sm == 2
    assert step.macs == 256 * 512 * 1024 * 2 // 8  # executed FLOPs / 2 = m n k N/M
    assert step.loop_steps_per_block == 1024 // 128 + 1
    a_bytes = 256 * 256 * 4 + (256 // 32) * 256 * 4  # kept values (fp32) + one int32 K row per entry and vector
    assert step.bytes_read == a_bytes + 1024 * 512 * 4 and step.bytes_written == 256 * 512 * 4
    assert describe("nm_vector_cuda").host_calls(_nm("nm_vector_cuda", VECTOR)) == 2


def test_split_k_adds_blocks_partials_and_the_ordered_reduce():
    cfg = {**VECTOR, "split": 4}
    kern, reduce = describe("nm_vector_cuda").steps(_nm("nm_vector_cuda", cfg))
    c = 256 * 512 * 4
    assert kern.blocks == 8 * 4 and kern.bytes_written == 4 * c and kern.loop_steps_per_block == 8 // 4 + 1
    assert reduce.unit == "memory" and reduce.bytes_read == 4 * c and reduce.bytes_written == c
    # a split beyond the stage count is cut to one stage per split (nm_cuda._launch)
    kern, _ = describe("nm_vector_cuda").steps(_nm("nm_vector_cuda", {**VECTOR, "split": 4, "ks": 512}))
    assert kern.blocks == 8 * 2


def test_expand_mode_executes_dense_fmas_and_dispatcher_nesting_reads_the_same_tile():
    rec = _nm("nm_element_expand_cuda", ELEMENT_EXPAND, pattern="4:8")
    (step,) = describe("nm_element_expand_cuda").steps(rec)
    assert step.macs == 256 * 512 * 1024  # the dense loop over the expanded tile
    assert step.blocks == (512 // 128) * (256 // 64) and step.blocks_per_sm == 2  # 112 KB smem: 2 per SM
    nested = _nm("nm_element_expand_cuda", pattern="4:8")
    nested = Record(**{**nested.__dict__, "params": {"impl": "nm_element_expand_cuda", "cuda_core": ELEMENT_EXPAND}})
    assert describe("nm_element_expand_cuda").steps(nested) == [step]
    with pytest.raises(InputError, match="ks, split"):
        describe("nm_element_cuda").steps(_nm("nm_element_cuda", {k: v for k, v in VECTOR.items()
                                                                 if k not in ("ks", "split")}))


def test_element_mode_is_bound_by_shared_memory_not_fmas():
    # mode 2: per entry and warp 16 LDS.128 of B (4 wavefronts each) + 2 of A + the index: > 64 wavefronts
    cfg = {"mode": 2, "bm": 64, "bn": 128, "tm": 8, "stages": 3, "emax": 32, "ks": 32, "split": 1}
    (el,) = describe("nm_element_cuda").steps(_nm("nm_element_cuda", cfg))
    (vec,) = describe("nm_vector_cuda").steps(_nm("nm_vector_cuda", {**cfg, "mode": 0}))
    assert el.macs == vec.macs == 256 * 512 * 256
    assert el.smem_cycles_per_block > 5 * vec.smem_cycles_per_block


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([(1, 8), (2, 8), (1, 4), (2, 4), (1, 16)]), min_size=2, max_size=3),
       st.integers(1, 8), st.integers(1, 8), st.sampled_from([0, 1, 2, 3]))
def test_tasd_onepass_macs_are_the_series_density(terms, rows32, kblocks, mode):
    series = "+".join(f"{n}:{m}" for n, m in terms)
    lblock = math.lcm(*(m for _, m in terms))
    k = kblocks * 16 * lblock
    cfg = {"mode": mode, "bm": 64, "bn": 128, "tm": 8, "stages": 3, "emax": 32, "ks": 16 * lblock, "split": 1}
    rec = Record("tasd_spmm", "float16", m=32 * rows32, n=200, k=k, tasd_series=series,
                 params={"impl": "tasd_onepass_cuda", **cfg})
    (step,) = describe("tasd_onepass_cuda").steps(rec)
    kept = k if mode == 3 else sum(k * n // m for n, m in terms)
    assert step.macs == 32 * rows32 * 200 * kept
    assert step.bytes_written == 32 * rows32 * 200 * 4  # 200 columns of float32 C (the kernel's 4-wide rows: 200)


# --------------------------------------------------------------------------- library GEMMs
def test_cusparselt_one_matmul_per_term_then_the_cast():
    rec = Record("tasd_spmm", "float16", m=512, n=256, k=1024, tasd_series="2:4+1:4",
                 params={"impl": "nm_2of4_cusparselt", "matmuls": 2})
    lt, cast = describe("nm_2of4_cusparselt").steps(rec)
    assert lt.unit == "sparse_tensor_core" and lt.launches == 2 and lt.gemm == (512, 256, 1024, 1)
    assert lt.macs == 2 * 512 * 256 * 1024 // 2
    one = (512 * 1024 // 2 + 1024 * 256) * 2 + 512 * 1024 // 8
    assert lt.bytes_read == 2 * one + 512 * 256 * 2  # C read back by the second (beta = 1)
    assert cast.bytes_read == 512 * 256 * 2 and cast.bytes_written == 512 * 256 * 4
    assert describe("nm_2of4_cusparselt").host_calls(rec) == 3


def test_cusparselt_and_dense_keep_the_old_records_description():
    old = Record("cusparselt_2_4", "float16", m=512, n=256, k=1024, params={"impl": "cusparselt"})
    assert infer_impl(old) == "nm_2of4_cusparselt"
    (step,) = describe("nm_2of4_cusparselt").steps(old)
    assert step.bytes_read == (512 * 1024 // 2 + 1024 * 256) * 2 + 512 * 1024 // 8 and step.launches == 1
    gemm = Record("gemm", "float32", m=64, n=32, k=16, params={"impl": "dense_cublas", "batch": 3})
    (g,) = describe("dense_cublas").steps(gemm)
    assert g.unit == "cuda_core" and g.gemm == (64, 32, 16, 3) and g.macs == 3 * 64 * 32 * 16


def test_dense_under_the_dispatcher_is_one_gemm_on_the_cached_a_plus_cast():
    rec = _nm("dense_cublas", dtype="float16", tasd_series="2:8+1:8", kernel="tasd_spmm")
    gemm, cast = describe("dense_cublas").steps(rec)
    assert gemm.unit == "tensor_core" and gemm.launches == 1 and gemm.macs == 256 * 512 * 1024
    assert cast.bytes_written == 256 * 512 * 4
    assert [s.name for s in describe("dense_cublas").steps(_nm("dense_cublas"))] == ["cublas_gemm"]  # fp32: no cast


# --------------------------------------------------------------------------- Kron
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_fastkron_macs_are_fastkrons_flop_count_and_launches_follow_the_groups(depth):
    factors = [(8, 8)] * 4
    rec = _kron("kron_fastkron_cuda", factors, variant="4x8", depth=depth, nj=16, tm=1)
    steps = describe("kron_fastkron_cuda").steps(rec)
    assert sum(s.macs for s in steps) == kron_flops(1024, factors) // 2
    assert len(steps) == -(-4 // depth)  # 8x8 factors: every group fits shared memory
    assert describe("kron_fastkron_cuda").host_calls(rec) == 2 + len(steps)
    # each launch reads its group's input and factors once and writes its output once
    assert steps[0].bytes_read == 1024 * 8**4 * 4 + depth * 64 * 4 and steps[-1].bytes_written == 1024 * 8**4 * 4
    assert all(s.unit == "cuda_core" and s.blocks >= 1 and 1 <= s.blocks_per_sm <= 8 for s in steps)


def test_shuffle_is_two_launches_per_factor():
    factors = [(4, 6), (8, 8), (2, 3)]
    steps = describe("kron_shuffle_cupy").steps(_kron("kron_shuffle_cupy", factors, m=100))
    assert len(steps) == 2 * len(factors) and sum(s.macs for s in steps) == kron_flops(100, factors) // 2


# --------------------------------------------------------------------------- projections
def test_device_projection_is_two_reads_one_write_three_kernels_no_sync():
    rec = Record("project_l1inf_bilevel", "float32", shapes={"y": [1000, 300]}, params={"impl": "bilevel_l1inf_device",
                                                                                          "splits": 1})
    (step,) = describe("bilevel_l1inf_device").steps(rec)
    assert (step.bytes_read, step.bytes_written, step.launches) == (2 * 1200000, 1200000, 3)
    split = Record(**{**rec.__dict__, "params": {"impl": "bilevel_l1inf_device", "splits": 4}})
    assert describe("bilevel_l1inf_device").steps(split)[0].launches == 4  # + the memset of the partials
    for name in ("bilevel_l12_device", "bilevel_l11_device", "multilevel_l1_l2_l2_device"):
        assert passes(name, (7, 9)) == (2, 1)


# --------------------------------------------------------------------------- names
def _recordable_names() -> set[str]:
    names = set(nm_configs.IMPL_NAMES.values()) | {nm_configs.impl_name(0, 2), nm_dispatch.DENSE, sparse_tc.IMPL}
    rng = np.random.default_rng(0)
    x, fs = rng.standard_normal((16, 8)), [rng.standard_normal((2, 3)), rng.standard_normal((4, 2))]
    names |= {kron_config(x, fs, a)["impl"] for a in ("auto", "naive", "shuffle", "fused")}  # the NumPy paths
    names |= {n.replace("numpy", "cupy") for n in names if n.startswith(("kron_naive", "kron_shuffle"))}
    names |= {c["impl"] for c in kron_plan.candidates(64, [(4, 4)] * 3, "float32")}
    y = np.ones((4, 6), np.float32)
    names |= {bilevel_impl(y, inner, impl=i) for inner in ("inf", "l2", "l1") for i in ("host", "device", "xp")}
    names |= {multilevel_impl(np.ones((2, 3, 4, 5)[: len(norms)]), norms, impl=i)
              for norms in (("l1", "inf"), ("l1", "inf", "inf"), ("l1", "l2", "l2"), ("l1", "inf", "inf", "inf"))
              for i in ("host", "device", "xp")}
    return names


def test_every_name_the_kernels_record_has_a_description():
    missing = sorted(n for n in _recordable_names() if n not in IMPLS)
    assert not missing


# --------------------------------------------------------------------------- the GPU model times each
def _synthetic() -> list[Record]:
    out = [_nm(name, {**(ELEMENT_EXPAND if mode >= 2 else VECTOR), "mode": mode, "split": 2})
           for mode, name in nm_configs.IMPL_NAMES.items()]
    out.append(Record("tasd_spmm", "float32", m=256, n=512, k=1024, tasd_series="2:8+1:8",
                      params={"impl": "tasd_onepass_cuda", **VECTOR}))
    out.append(_nm("nm_2of4_cusparselt", dtype="float16", pattern="2:4"))
    out.append(_nm("dense_cublas", dtype="float16"))
    out.append(_kron("kron_fastkron_cuda", [(16, 16)] * 3, variant="4x8", depth=3, nj=16, tm=1))
    out.append(_kron("kron_shuffle_cupy", [(16, 16)] * 3))
    for name in ("bilevel_l1inf_device", "bilevel_l12_device", "bilevel_l11_device", "multilevel_l1_inf_inf_device",
                 "multilevel_l1_l2_l2_device"):
        kernel = "project_multilevel" if name.startswith("multi") else "project_l1inf_bilevel"
        out.append(Record(kernel, "float32", shapes={"y": [4096, 11008]}, params={"impl": name}))
    return out


@pytest.mark.parametrize("rec", _synthetic(), ids=lambda r: r.params["impl"])
def test_gpu_model_projects_a_finite_positive_time(rec):
    arch = load_arch("h200_sxm")
    impl = describe(infer_impl(rec))
    seconds, times = record_time(arch, with_defaults(arch), impl.steps(rec), impl.host_calls(rec))
    assert math.isfinite(seconds) and seconds > 0 and all(t.seconds > 0 for t in times)
