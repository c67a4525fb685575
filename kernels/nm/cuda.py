"""CuPy path of N:M SpMM and one-pass TASD: the packed CUDA-core kernels, plus a cuSPARSELt 2:4 baseline.

Imported only when a :func:`kernels.nm.nm_spmm` / :func:`kernels.tasd.tasd_spmm` argument is a
CuPy array, so NumPy-only machines never need CuPy. Per call: A's packed form
(:mod:`kernels.nm.pack`) is built once per tensor and cached beside it; the tile configuration
is autotuned once per (device, shape, pattern, dtype, layout) (:mod:`kernels.autotune`); each
template instantiation is compiled by NVRTC on first use (``cupy.RawModule``), memoized per
device. One launch per call (two with split-K: the partial tiles, then their ordered sum).
"""

from __future__ import annotations

import functools
import weakref
from pathlib import Path

from kernels import autotune
from kernels.backend import require_cupy
from kernels.errors import InputError
from kernels.nm.configs import MAX_ENTRY_SLOTS, candidates, impl_name, smem_bytes, template_name, threads
from kernels.nm.pack import entries_per_block, pack_terms, pad_cols

__all__ = [
    "cusparselt_2_4_available",
    "cusparselt_2_4_prepare",
    "nm_spmm_cupy",
    "plan",
    "run_config",
    "run_packed",
    "tasd_spmm_cupy",
]

_SOURCE = Path(__file__).parent / "nm_spmm_packed.cu"
_PACKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KERNEL = "nm_spmm_packed"


def _cupy():
    return require_cupy("the CuPy path of nm_spmm")


@functools.cache
def _compiler():
    cupy = _cupy()

    @cupy.memoize(for_each_device=True)
    def function(name: str):
        mod = cupy.RawModule(code=_SOURCE.read_text(), options=("--std=c++17",), name_expressions=[name])
        return mod, mod.get_function(name)

    return function


def _function(name: str):
    return _compiler()(name)[1]


def _reduce_function():
    return _compiler()(template_name(dict(mode=0, bm=128, bn=128, tm=8, stages=3, emax=32)))[0].get_function(
        "nm_splitk_reduce"
    )


def _packed(terms, ks):
    """The packed A of ``terms`` (element layout: relative to stages of ``ks`` rows), cached on terms[0].

    NMTensor arrays are treated as immutable: the cache lives as long as the first term.
    """
    element = terms[0].layout == "element"
    key = (tuple(id(t) for t in terms), ks if element else None)
    per = _PACKS.setdefault(terms[0], {})
    hit = per.get(key)
    if hit is not None and all(r() is t for r, t in zip(hit[0], terms)):
        return hit[1]
    p = pack_terms(terms, ke_ks=ks if element else None)
    per[key] = (tuple(weakref.ref(t) for t in terms), p)
    return p


def _check(terms, b):
    cupy = _cupy()
    for t in terms:
        if cupy.result_type(t.values.dtype, b.dtype) not in (cupy.float16, cupy.float32):
            raise InputError(
                f"nm_spmm on CuPy supports float16 and float32 inputs (computed in float32), "
                f"got {t.values.dtype} and {b.dtype}"
            )


def _device():
    """(autotune device key, opt-in shared memory per block, SM count) of the current device."""
    return _device_of(_cupy().cuda.Device().id)


@functools.cache
def _device_of(dev_id: int):
    cupy = _cupy()
    dev = cupy.cuda.Device(dev_id)
    attrs = dev.attributes
    props = cupy.cuda.runtime.getDeviceProperties(dev_id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"{name} sm_{props['major']}{props['minor']}", int(attrs["MaxSharedMemoryPerBlockOptin"]), int(
        attrs["MultiProcessorCount"]
    )


def _launch(terms, b4, cfg, rows, cols4):
    """Run one configuration: returns C (rows x cols4, float32)."""
    cupy = _cupy()
    p = _packed(terms, cfg["ks"])
    e_stage, stages, ks = p.stage_shape(cfg["ks"])
    split = min(cfg["split"], stages)
    per_split = -(-stages // split)
    split = -(-stages // per_split)
    fn = _function(template_name(cfg))
    smem = smem_bytes(cfg["mode"], cfg["bm"], cfg["bn"], cfg["stages"], cfg["emax"])
    if smem > 48 * 1024:
        fn.max_dynamic_shared_size_bytes = smem
    c = cupy.empty((rows, cols4), dtype=cupy.float32)
    out = c if split == 1 else cupy.empty((split, rows, cols4), dtype=cupy.float32)
    kv = p.kv if p.kv is not None else cupy.zeros(1, dtype=cupy.int32)
    ke = p.ke if p.ke is not None else cupy.zeros(16, dtype=cupy.uint8)
    i32 = cupy.int32
    # grid (ceil(cols/BN), rows_pad/BM, split), block threads(BM, BN, TM): writes out[z] tile by tile.
    fn(
        (-(-cols4 // cfg["bn"]), p.rows_pad // cfg["bm"], split),
        (threads(cfg["bm"], cfg["bn"], cfg["tm"]),),
        (p.at, kv, ke, b4, out, i32(rows), i32(p.rows_pad), i32(p.k), i32(cols4), i32(p.e_tot),
         i32(e_stage), i32(ks), i32(stages), i32(per_split)),
        shared_mem=smem,
    )
    if split > 1:
        n4 = rows * cols4 // 4
        # grid ceil(n4/256), block 256: c = sum of the split partials in z order.
        _reduce_function()((-(-n4 // 256),), (256,), (out, c, i32(n4), i32(split)))
    return c


def _b4(b):
    """B as the kernel reads it: float32, columns padded to a multiple of 4, 16-byte aligned."""
    b4 = pad_cols(b, _cupy())
    return b4.copy() if b4.data.ptr % 16 else b4  # a view at an odd offset: cp.async needs 16 B


def _time(fn, reps: int = 5) -> float:
    cupy = _cupy()
    fn()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(reps):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return sorted(times)[len(times) // 2]


def plan(terms, b) -> dict:
    """The configuration (autotuned, cached) the kernel runs for these terms and this B, plus ``impl``.

    The dict is what trace records carry in ``params``: the tile (``mode``, ``bm``, ``bn``,
    ``tm``, ``stages``, ``emax``), ``ks``, ``split`` and the implementation name.
    """
    terms = list(terms)
    _check(terms, b)
    rows, k = terms[0].shape
    cols4 = -(-int(b.shape[1]) // 4) * 4
    device, smem_limit, sms = _device()
    lblock, e_l = entries_per_block(terms)
    cands = candidates(terms[0].layout, lblock, e_l, sum(t.n / t.m for t in terms), rows, cols4, smem_limit, sms)
    if not cands:
        raise InputError(f"nm_spmm on CuPy: {e_l} entries per {lblock}-row block exceed every tile's 32 slots")
    key = {"m": rows, "n": int(b.shape[1]), "k": k, "pattern": "+".join(str(t.pattern) for t in terms),
           "dtype": str(_cupy().result_type(terms[0].values.dtype, b.dtype)), "layout": terms[0].layout}
    b4 = []  # built only if timing runs: a tuned call pays no padding copy here

    def time_fn(c):
        if not b4:
            b4.append(_b4(b))
        return _time(lambda: _launch(terms, b4[0], c, rows, cols4))

    cfg = autotune.tune(_KERNEL, device, key, cands, time_fn)
    return {**cfg, "impl": impl_name(cfg["mode"], len(terms))}


def run_packed(terms, b):
    """``sum(decompress(t) for t in terms) @ b`` in one pass on the GPU; float32 result.

    Terms whose entries per L-block overflow the kernel's slots (series denser than 32 per
    window block) are split in two halves and summed (more launches; rare).
    """
    terms = list(terms)
    if len(terms) > 1 and entries_per_block(terms)[1] > MAX_ENTRY_SLOTS:
        half = len(terms) // 2
        return run_packed(terms[:half], b) + run_packed(terms[half:], b)
    return run_config(terms, b, plan(terms, b))


def run_config(terms, b, cfg: dict):
    """Like :func:`run_packed` with a given configuration (one of :func:`kernels.nm.configs.candidates`)."""
    cupy = _cupy()
    terms = list(terms)
    _check(terms, b)
    rows, cols = terms[0].shape[0], int(b.shape[1])
    cols4 = -(-cols // 4) * 4
    c = _launch(terms, _b4(b), cfg, rows, cols4)
    return c if cols4 == cols else cupy.ascontiguousarray(c[:, :cols])


def nm_spmm_cupy(a_nm, b):
    """``decompress(a_nm) @ b`` on CUDA cores; float16/float32 inputs, float32 result.

    Inputs are validated by :func:`kernels.nm.nm_spmm`; float64 or integer inputs have no CUDA
    kernel and are refused rather than silently computed at lower precision. float16 runs
    here only when asked (the tensor-core path is the fp16 default elsewhere).
    """
    return run_packed([a_nm], b)


def tasd_spmm_cupy(terms, b):
    """``tasd_reconstruct(terms) @ b`` in ONE kernel launch: B and C tiles stay on chip while the terms stream."""
    return run_packed(terms, b)


@functools.cache
def cusparselt_2_4_available() -> bool:
    """True when CuPy's cuSPARSELt bindings load and a handle initialises on this device."""
    try:
        from cupy_backends.cuda.libs import cusparselt

        handle = cusparselt.Handle()
        cusparselt.init(handle)
        cusparselt.destroy(handle)
        return True
    except Exception:  # bindings absent, library missing, or an unsupported GPU
        return False


def cusparselt_2_4_prepare(a, b):
    """Prune ``a`` to 2:4 and compress it with cuSPARSELt; return ``(fn, args)`` computing ``a @ b``.

    float16 only (cuSPARSELt's common denominator across versions); the plan, workspace and
    compressed A are built here so timing covers only the matmul. Pruning is cuSPARSELt's own,
    not :func:`kernels.nm.nm_compress` (both keep 2 of every 4; the selection may differ).
    """
    import numpy

    cupy = _cupy()
    from cupy.cuda import runtime
    from cupy_backends.cuda.libs import cusparse, cusparselt

    if a.dtype != cupy.float16 or b.dtype != cupy.float16:
        raise InputError(f"cuSPARSELt 2:4 baseline supports float16 only, got {a.dtype} and {b.dtype}")
    a = cupy.ascontiguousarray(a)
    b = cupy.ascontiguousarray(b)
    m, k = a.shape
    n = b.shape[1]
    c = cupy.empty((m, n), dtype=cupy.float16)
    h = cusparselt.Handle()
    mat_a, mat_b, mat_c = cusparselt.MatDescriptor(), cusparselt.MatDescriptor(), cusparselt.MatDescriptor()
    mm, alg_sel, plan = cusparselt.MatmulDescriptor(), cusparselt.MatmulAlgSelection(), cusparselt.MatmulPlan()
    cusparselt.init(h)
    order, f16 = cusparse.CUSPARSE_ORDER_ROW, runtime.CUDA_R_16F
    cusparselt.structuredDescriptorInit(h, mat_a, m, k, k, 128, f16, order, cusparselt.CUSPARSELT_SPARSITY_50_PERCENT)
    cusparselt.denseDescriptorInit(h, mat_b, k, n, n, 128, f16, order)
    cusparselt.denseDescriptorInit(h, mat_c, m, n, n, 128, f16, order)
    op = cusparse.CUSPARSE_OPERATION_NON_TRANSPOSE
    compute = getattr(cusparselt, "CUSPARSE_COMPUTE_32F", None) or cusparselt.CUSPARSE_COMPUTE_16F
    cusparselt.matmulDescriptorInit(h, mm, op, op, mat_a, mat_b, mat_c, mat_c, compute)
    cusparselt.matmulAlgSelectionInit(h, alg_sel, mm, cusparselt.CUSPARSELT_MATMUL_ALG_DEFAULT)
    ws_size = cusparselt.matmulGetWorkspace(h, alg_sel)
    ws = cupy.empty(max(int(ws_size), 1), dtype=cupy.int8)
    cusparselt.matmulPlanInit(h, plan, mm, alg_sel, ws_size)
    cusparselt.spMMAPrune(h, mm, a.data.ptr, a.data.ptr, cusparselt.CUSPARSELT_PRUNE_SPMMA_TILE)
    size = cusparselt.spMMACompressedSize(h, plan)
    size = size[0] if isinstance(size, tuple) else size  # newer bindings also return a buffer size
    a_c = cupy.zeros(int(size), dtype=cupy.uint8)
    cusparselt.spMMACompress(h, plan, a.data.ptr, a_c.data.ptr)
    alpha = numpy.array(1.0, dtype=numpy.float32)
    beta = numpy.array(0.0, dtype=numpy.float32)
    keep = (h, mat_a, mat_b, mat_c, mm, alg_sel, plan, a, b, c, a_c, ws, alpha, beta)

    def run(_keep=keep):
        # C = A_c @ B on the current stream; writes all of c.
        cusparselt.matmul(h, plan, alpha.ctypes.data, a_c.data.ptr, b.data.ptr, beta.ctypes.data,
                          c.data.ptr, c.data.ptr, ws.data.ptr)
        return c

    return run, ()
