"""How each kernel implementation runs: units, launches, tiles, memory passes and host calls, per trace record.

A replay (``accelsim validate``) reads these descriptions to turn one trace record into the
work a GPU model can time; nothing here imports ``accelsim``. Each implementation is an
:class:`Impl` keyed by the name trace records carry in ``params["impl"]`` (the suites write it;
records made before that get it from :func:`infer_impl`). ``Impl.steps(record)`` lists the
device work of one call as :class:`Step` s, and ``Impl.host_calls(record)`` counts the host-side
operations that dispatch it (CuPy/cuBLAS calls, each host synchronisation counts as one too).

A :class:`Step` is one kind of launch, ``launches`` times, on one unit:

- ``tensor_core`` / ``sparse_tensor_core`` / ``cuda_core`` with ``gemm=(m, n, k, batch)``: a
  library GEMM (cuBLAS, cuSPARSELt); the device model picks its CTA tile and counts waves;
  ``b_mn_major`` says B is stored N-major (a C-ordered k x n array), which the device model
  charges where the arch's tensor-core MMA cannot read that layout from shared memory;
- ``cuda_core`` with ``blocks``: a hand-written kernel, given by what its code does per block:
  shared-memory pipe cycles (wavefronts, bank conflicts included), main-loop steps whose global
  round trip is exposed, and the blocks resident per SM (registers/shared memory, from
  ``nvcc -Xptxas -v`` for sm_90);
- ``memory``: element-wise passes (adds, copies, reductions) that only stream bytes.

Every step carries the bytes it reads and writes in device memory and its working set (which
cache level holds it warm); a strided step also carries ``l2_bytes``, the whole 32-byte sectors its
warps move between L2 and the SMs (:func:`kernels.impl_types.warp_sectors`).

Adding an implementation (e.g. a new CUDA kernel recorded as ``impl="nm_vector_cuda"``)::

    def _nm_vector_steps(r: Record) -> list[Step]:
        ...  # read off the kernel: grid, per-block shared-memory cycles, loop steps, bytes
        return [Step("nm_vector", "cuda_core", "fp32", blocks=..., blocks_per_sm=...,
                     smem_cycles_per_block=..., loop_steps_per_block=..., macs=...,
                     bytes_read=..., bytes_written=..., working_set=...)]

    register(Impl("nm_vector_cuda", "nm_spmm", "cuda_core", "vector-wise N:M, CUDA cores",
                  _nm_vector_steps, host_calls=lambda r: 1))

A library call is shorter: ``Step("lt", "sparse_tensor_core", "fp16", gemm=(m, n, k, 1), ...)``.
The recorder's suite then passes ``params={"impl": "nm_vector_cuda", ...}``. Descriptions live
beside their kernels, in the room's ``impls`` module (:mod:`kernels.nm.impls`, :mod:`kernels.kron.impls`,
:mod:`kernels.projection.impls`: an ``ENTRIES`` tuple, and ``LEGACY`` for records of kernels since replaced,
built from :mod:`kernels.impl_types`), so a new one goes into its room's ``ENTRIES``; this module registers
them and the library GEMMs every room shares, so :data:`IMPLS` is the one registry.
"""

from __future__ import annotations

from kernels.errors import InputError
from kernels.impl_types import UNITS, Impl, Record, Step, _gemm_steps, _need, warp_bank_wavefronts
from kernels.kron import impls as impls_kron
from kernels.nm import impls as impls_nm
from kernels.projection import impls as projection_impls
from kernels.projection.impls import _projection_size

__all__ = [
    "IMPLS",
    "UNITS",
    "Impl",
    "Record",
    "Step",
    "describe",
    "infer_impl",
    "passes",
    "register",
    "warp_bank_wavefronts",
]

IMPLS: dict[str, Impl] = {}


def register(impl: Impl) -> Impl:
    """Add ``impl`` to :data:`IMPLS` (a later registration of a name replaces it)."""
    IMPLS[impl.name] = impl
    return impl


def describe(name: str) -> Impl:
    """The :class:`Impl` called ``name``; :class:`InputError` naming the known ones otherwise."""
    try:
        return IMPLS[name]
    except KeyError:
        raise InputError(f"implementation {name!r} has no description in kernels.impls; "
                         f"known: {', '.join(sorted(IMPLS))}") from None


# --------------------------------------------------------------------------- library GEMMs


def _xla_gemm_steps(r: Record) -> list[Step]:
    """OpenXLA's GEMMs (imported tables): tensor cores at the record's dtype, TF32 included.

    The perf table's dots take ``rhs = [b, k, n]`` contracted on dimension 1 (``GetModule`` in
    ``xla/tools/matmul_perf_table_gen.cc``): B is N-major (``Step.b_mn_major``).
    """
    (step,) = _gemm_steps(r)
    return [Step(step.name, "tensor_core", r.unit_dtype, gemm=step.gemm, macs=step.macs, bytes_read=step.bytes_read,
                 bytes_written=step.bytes_written, working_set=step.working_set, b_mn_major=step.b_mn_major)]


def _dense_steps(r: Record) -> list[Step]:
    """gemm records; under nm_dispatch, the GEMM on the cached dense A of the terms, then the float32 cast."""
    return _gemm_steps(r) + ([] if r.kernel == "gemm" else impls_nm.cast_steps(r, *_need(r, "m", "n")))


register(Impl("dense_cublas", "gemm", "tensor_core", "cupy.matmul: cuBLAS GEMM (fp32 on CUDA cores, TF32 off); "
              "under nm_dispatch on the cached dense A, then the float32 cast", _dense_steps,
              host_calls=lambda r: 1 + (0 if r.kernel == "gemm" else len(impls_nm.cast_steps(r, 1, 1)))))
register(Impl("gemm_xla", "gemm", "tensor_core", "OpenXLA GEMM (imported perf table), tensor cores", _xla_gemm_steps,
              host_calls=lambda r: 0))

# the descriptions kept beside the kernels, older records' first
for _impl in (*impls_nm.LEGACY, *impls_kron.LEGACY, *projection_impls.LEGACY,
              *impls_nm.ENTRIES, *impls_kron.ENTRIES, *projection_impls.ENTRIES):
    register(_impl)


def passes(name: str, shape, dtype: str = "float32") -> tuple[int, int]:
    """(whole-array reads, writes) of one call of projection implementation ``name``, from its steps."""
    impl = describe(name)
    r = Record(impl.kernel, dtype, shapes={"y": list(shape)}, params={"impl": name})
    steps = impl.steps(r)
    size = _projection_size(r)
    return sum(s.bytes_read for s in steps) // size, sum(s.bytes_written for s in steps) // size


_BY_KERNEL = {
    ("gemm", "cupy"): "dense_cublas",
    ("gemm", "xla"): "gemm_xla",
    ("cusparselt_2_4", "cupy"): "nm_2of4_cusparselt",
    ("nm_spmm", "cupy"): "nm_scalar_cuda",
    ("tasd_spmm", "cupy"): "tasd_multipass_cuda",
    ("kron_matmul_fused", "cupy"): "kron_fused_cuda",
    ("kron_matmul_shuffle", "cupy"): "kron_shuffle_cupy",
    ("project_l1inf_bilevel", "cupy"): "bilevel_l1inf_xp",
    ("project_multilevel", "cupy"): "multilevel_l1_inf_inf_xp",
}
"""Implementation of records made before ``params["impl"]`` named one (through commit a1a550e and
its successors up to this module): the trace kernel and backend decide it, since each kernel had
exactly one implementation per backend then (gemm's old ``"matmul"`` and cuSPARSELt's ``"cusparselt"``
tags included)."""


_LEGACY_TAGS = (None, "matmul", "cusparselt")
"""``params["impl"]`` values of records made before the descriptions: they say nothing about the implementation."""


def infer_impl(r: Record) -> str:
    """The implementation name of record ``r``: ``params["impl"]`` when it names a described one; for
    older records (no impl, or a legacy tag) inferred from its kernel and backend (:data:`_BY_KERNEL`).
    :class:`InputError` for an impl without a description (never replayed as another implementation)."""
    name = r.params.get("impl")
    if isinstance(name, str) and name in IMPLS:
        return name
    found = _BY_KERNEL.get((r.kernel, r.backend)) if name in _LEGACY_TAGS else None
    if found is None:
        raise InputError(f"trace record {r.kernel!r} (backend {r.backend!r}, impl {name!r}): no implementation "
                         f"description; add one to kernels.impls (known: {', '.join(sorted(IMPLS))})")
    return found

