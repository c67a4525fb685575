"""GPU device model with separate units: time and energy of the steps a kernel implementation describes.

The arch's ``gpu:`` section (:class:`accelsim.model.arch.GpuUnits`) gives per-SM rates of the
CUDA cores, tensor cores and sparse tensor cores per dtype, the shared-memory pipe per SM, and
(from the arch's memory levels) L2 and HBM bandwidth and capacity. A trace record becomes steps
through :mod:`kernels.impls`; each step is timed on the unit it names:

- library GEMM (``gemm=(m, n, k, batch)``): for each CTA tile and split-K the arch lists, waves =
  ⌈CTAs / SMs⌉ and time = waves · (fill + tile MACs / per-SM rate / ``mac_efficiency``) + drain
  [+ split-K fix-up]; the fastest tiling is kept (cuBLAS and XLA choose per shape), and the time is
  at least its bytes over the bandwidth of the level holding its working set. The fill: a wave's
  CTAs (at most one per SM) all load their first main-loop stage, (tile_m + tile_n) rows × the
  stage's K depth in bytes (``k_tile_bytes``: 128 for a TMA tile with the 128-byte swizzle), through
  the shared L2/HBM before their first MMA. The drain: each CTA stores its output tile after its
  main loop; later waves hide those stores except the last wave's, m·n·batch·split/waves items
  (split-K slices: fp32 partials). A split-K GEMM then reads its partials back and writes the
  output. Fill, drain and fix-up move bytes at ``bandwidth_efficiency`` of the level holding the
  working set. When B is N-major (``Step.b_mn_major``) and the
  arch's tensor-core MMA cannot read that dtype MN-major from shared memory (``mn_major_dtypes``:
  sm_90 ``wgmma`` transposes only 16-bit operands, so TF32 cannot), the library swaps the operands
  and its MMA warps load B's tile from shared memory into registers themselves before each MMA
  (CUTLASS 3's sm_90 builder: ``SwapAB`` for 4-byte K-major A / MN-major B, register-sourced
  mainloop): each CTA adds tile_n · k_slice · itemsize bytes over the SM's shared-memory pipe at
  ``smem_efficiency``, in series with its MMAs (the same warps issue both);
- hand-written CUDA-core kernel (``blocks``): waves = ⌈blocks / (SMs · blocks per SM)⌉; per wave an
  SM serves its resident blocks' shared-memory wavefronts (or FMAs, whichever is more) at
  ``smem_efficiency`` of the pipe, plus ``loop_step_s`` for every exposed main-loop round trip;
- memory pass: bytes over bandwidth (L2 when the working set fits, else HBM) at ``bandwidth_efficiency``;
  a strided pass moves whole 32-B sectors between L2 and the SMs (``Step.l2_bytes``) and takes the
  longer of that L2 transfer and its HBM transfer.

Every launch adds ``launch_s``; the host dispatches ``host_calls`` operations at ``host_call_s`` each,
asynchronously, so a call takes max(host time, device time). These six are the device's calibration
(:class:`DeviceParams`), each with a physical meaning and a bound.

Energy charges every action on the unit it uses -- MACs per unit type and dtype, register-file
operand accesses (three per MAC), shared-memory, L2 and HBM bytes -- plus static power over the time
(:func:`energy`); its calibration scales the four groups (:class:`EnergyParams`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from accelsim.errors import AccelsimError
from accelsim.model.arch import ArchConfig, GpuUnits

__all__ = [
    "BOUNDS",
    "ENERGY_BOUNDS",
    "DeviceParams",
    "EnergyParams",
    "StepTime",
    "energy",
    "gpu_archs",
    "gpu_of",
    "record_time",
    "register_sourced_b",
    "step_time",
]


_ITEM = {"fp16": 2, "bf16": 2, "tf32": 4, "fp32": 4, "fp64": 8, "fp8": 1, "int8": 1}


@dataclass(frozen=True)
class DeviceParams:
    """The device calibration: six device-level parameters (see :data:`BOUNDS` for meaning and range)."""

    launch_s: float
    host_call_s: float
    loop_step_s: float
    mac_efficiency: float
    smem_efficiency: float
    bandwidth_efficiency: float

    @classmethod
    def defaults(cls, gpu: GpuUnits) -> DeviceParams:
        return cls(gpu.launch_s, gpu.host_call_s, gpu.loop_step_s, 1.0, 1.0, 1.0)

    def to_dict(self) -> dict:
        return asdict(self)


BOUNDS = {
    "launch_s": (0.0, 20e-6, "device-side cost of one kernel launch (launch latency, ramp-up/tail), s"),
    "host_call_s": (0.0, 100e-6, "host cost of one dispatched operation (CuPy/cuBLAS call, or a sync), s"),
    "loop_step_s": (0.0, 5e-6, "exposed round trip of one main-loop step of a hand-written kernel "
                               "(global load + barrier), s"),
    "mac_efficiency": (0.05, 1.0, "fraction of the unit's peak MAC rate a library GEMM's main loop reaches"),
    "smem_efficiency": (0.05, 1.0, "fraction of the SM's shared-memory pipe (wavefronts/cycle) hand kernels and a "
                                   "library GEMM's shared-memory-to-register operand loads reach"),
    "bandwidth_efficiency": (0.05, 1.0, "fraction of L2/HBM peak bandwidth streaming passes reach"),
}
"""Parameter → (lower bound, upper bound, meaning)."""


@dataclass(frozen=True)
class EnergyParams:
    """Energy calibration: scales of the per-action energies and the static power (see :data:`ENERGY_BOUNDS`)."""

    compute_scale: float = 1.0
    onchip_scale: float = 1.0
    dram_scale: float = 1.0
    static_w: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


ENERGY_BOUNDS = {
    "compute_scale": (0.1, 10.0, "scale of MAC + register-file energies"),
    "onchip_scale": (0.1, 10.0, "scale of shared-memory and L2 energies per byte"),
    "dram_scale": (0.1, 10.0, "scale of HBM energy per byte"),
    "static_w": (0.0, 400.0, "power drawn whatever the kernel does (idle + clocks up), W"),
}


@dataclass(frozen=True)
class StepTime:
    """Seconds of one step, and the actions it performs (for energy)."""

    seconds: float
    bound: str
    macs: float
    smem_bytes: float
    l2_bytes: float
    hbm_bytes: float


def gpu_of(arch: ArchConfig) -> GpuUnits:
    """The arch's ``gpu:`` section; :class:`AccelsimError` when it has none."""
    if arch.gpu is None:
        raise AccelsimError(f"arch {arch.name!r} has no gpu: section (units, rates); use a GPU arch such as h200_sxm")
    return arch.gpu


def gpu_archs() -> list[str]:
    """Builtin archs with a ``gpu:`` section (the unit model), sorted by name."""
    from accelsim.model.arch import builtin_archs, load_arch

    return [name for name in builtin_archs() if load_arch(name).gpu is not None]


def _level(arch: ArchConfig, name: str):
    for lvl in arch.memory:
        if lvl.name == name:
            return lvl
    raise AccelsimError(f"arch {arch.name!r}: the gpu model needs a memory level named {name!r}")


def _stream(arch: ArchConfig, p: DeviceParams, read: float, written: float, working_set: float, l2_bytes: float = 0):
    """(seconds, l2 bytes, hbm bytes) of streaming ``read + written`` bytes, warm: L2 when they fit.

    ``l2_bytes`` is the traffic between the SMs and L2 in whole sectors when it exceeds the bytes
    (strided accesses); the pass takes the longer of its L2 and (when it spills L2) HBM transfers.
    """
    hz = arch.clock_ghz * 1e9
    l2 = _level(arch, "l2")
    total = read + written
    l2_total = max(total, l2_bytes)
    l2_s = l2_total / (l2.bandwidth * hz) / p.bandwidth_efficiency
    if l2.capacity_bytes is not None and working_set <= l2.capacity_bytes:
        return l2_s, l2_total, 0.0
    hbm = _level(arch, "hbm")
    return max(l2_s, total / (hbm.bandwidth * hz) / p.bandwidth_efficiency), l2_total, total


def _rate(gpu: GpuUnits, unit: str, dtype: str) -> float:
    table = {"cuda_core": gpu.cuda_core_macs_per_cycle, "tensor_core": gpu.tensor_core_macs_per_cycle,
             "sparse_tensor_core": gpu.sparse_tensor_core_macs_per_cycle}[unit]
    if dtype not in table:
        raise AccelsimError(f"gpu model: the {unit} unit has no {dtype} rate (it has {', '.join(table)})")
    return float(table[dtype])


def register_sourced_b(gpu: GpuUnits, unit: str, dtype: str, b_mn_major: bool) -> bool:
    """Whether a tensor-core GEMM must load an N-major B through registers (its MMA cannot read it from shared memory)."""
    return (unit != "cuda_core" and b_mn_major and gpu.mn_major_dtypes is not None
            and dtype not in gpu.mn_major_dtypes)


def _gemm_seconds(arch: ArchConfig, gpu: GpuUnits, p: DeviceParams, unit: str, dtype: str, gemm,
                  b_mn_major: bool = False, working_set: float = 0.0) -> tuple[float, float]:
    """(seconds, shared-memory bytes loaded into registers) of the fastest tiling and split-K of a library GEMM.

    Seconds = waves x (one CTA's MMAs [+ its register-sourced B]) + the drain: a CTA stores its output
    tile (a split-K slice its fp32 partial tile) after its main loop; other CTAs' main loops hide those
    stores, except the last wave's, so one wave's share of the output, m·n·batch·split/waves items,
    is written after the last MMA, at the bandwidth of the level holding the working set. A split-K GEMM
    then reads its fp32 partials back and writes the output (the fix-up), also after the slices.
    """
    m, n, k, batch = gemm
    hz = arch.clock_ghz * 1e9
    rate = _rate(gpu, unit, dtype)
    tiles = gpu.cuda_core_tiles if unit == "cuda_core" else gpu.tensor_core_tiles
    kept = 0.5 if unit == "sparse_tensor_core" else 1.0
    reg_b = register_sourced_b(gpu, unit, dtype, b_mn_major)
    item = _ITEM.get(dtype, 4)
    best, best_bytes = math.inf, 0.0
    for tm, tn in tiles:
        ctas = -(-m // tm) * -(-n // tn) * batch
        for split in gpu.split_k:
            if split > 1 and (ctas >= gpu.sms or k < split * gpu.min_split_k_depth):
                continue
            waves = -(-ctas * split // gpu.sms)
            k_slice = -(-k // split)
            cta_s = tm * tn * k_slice * kept / rate / hz / p.mac_efficiency
            # the register-sourced B: tn x k_slice items per CTA through the SM's shared-memory pipe, in series
            b_load = tn * k_slice * item if reg_b else 0
            cta_s += b_load / (gpu.smem_bytes_per_cycle * hz) / p.smem_efficiency
            # the fill: a wave's CTAs all load their first stage, (tm + tn) rows x the stage's K depth in bytes,
            # through the shared L2/HBM before their first MMA
            fill = min(ctas * split, gpu.sms) * (tm + tn) * gpu.k_tile_bytes.get(unit, 0)
            cta_s += _stream(arch, p, fill, 0, working_set)[0]
            out_item = item if split == 1 else 4  # split-K slices write fp32 partials
            drain_s = _stream(arch, p, 0, m * n * batch * out_item * split / waves, working_set)[0]
            if split > 1:  # the fix-up: the partials read back and the output written, after the slices
                drain_s += _stream(arch, p, m * n * batch * 4 * split, m * n * batch * item, working_set)[0]
            if waves * cta_s + drain_s < best:
                best, best_bytes = waves * cta_s + drain_s, float(ctas * split * b_load)
    return best, best_bytes


def step_time(arch: ArchConfig, p: DeviceParams, step) -> StepTime:
    """Device seconds of one :class:`kernels.impls.Step` (all its launches, launch costs included)."""
    gpu = gpu_of(arch)
    hz = arch.clock_ghz * 1e9
    mem_s, l2_b, hbm_b = _stream(arch, p, step.bytes_read, step.bytes_written, step.working_set,
                                  step.l2_bytes)
    smem_b = 0.0
    if step.gemm is not None:
        comp, reg_b = _gemm_seconds(arch, gpu, p, step.unit, step.dtype, step.gemm, step.b_mn_major,
                                    step.working_set)
        body, bound = (comp, "compute") if comp >= mem_s else (mem_s, "memory")
        # operands staged through shared memory: an SGEMM thread computes an 8x8 register tile from 8 + 8
        # values per k (1 B/MAC at fp32); a tensor-core CTA tile 128 wide reads (1/128 + 1/128) items per MAC;
        # plus a register-sourced B's loads
        item = _ITEM.get(step.dtype, 4)
        smem_b = step.macs * (item * 2 / 8 if step.unit == "cuda_core" else item * 2 / 128) + reg_b
    elif step.blocks:
        per_sm = max(1, step.blocks_per_sm)
        waves = -(-step.blocks // (gpu.sms * per_sm))
        fma_cycles = step.macs / step.blocks / _rate(gpu, "cuda_core", "fp32")
        # an SM's blocks share its shared-memory pipe: it serves its share of the grid one after another
        sm_cycles = -(-step.blocks // gpu.sms) * max(step.smem_cycles_per_block, fma_cycles)
        comp = sm_cycles / hz / p.smem_efficiency
        loop = waves * step.loop_steps_per_block * p.loop_step_s
        body, bound = (comp + loop, "smem") if comp >= mem_s else (mem_s + loop, "memory")
        smem_b = step.smem_cycles_per_block * step.blocks * gpu.smem_bytes_per_cycle
    else:
        body, bound = mem_s, "memory"
    return StepTime(body + step.launches * p.launch_s, bound, float(step.macs), smem_b, l2_b, hbm_b)


def record_time(arch: ArchConfig, p: DeviceParams, steps, host_calls: int) -> tuple[float, list[StepTime]]:
    """Seconds of one call: max(host dispatch, device work), with each step's times."""
    times = [step_time(arch, p, s) for s in steps]
    device = sum(t.seconds for t in times)
    return max(host_calls * p.host_call_s, device), times


def energy(arch: ArchConfig, steps, times: list[StepTime], seconds: float, e: EnergyParams) -> float:
    """Joules of one call: per-action energies of every unit used, plus static power over ``seconds``."""
    gpu = gpu_of(arch)
    en = gpu.energy
    compute = onchip = dram = 0.0
    for s, t in zip(steps, times):
        if t.macs:
            table = {"cuda_core": en.cuda_core_mac_pj, "tensor_core": en.tensor_core_mac_pj,
                     "sparse_tensor_core": en.tensor_core_mac_pj}.get(s.unit, en.cuda_core_mac_pj)
            mac = table.get(s.dtype, max(table.values()))
            # an FMA reads two operands and the accumulator; an MMA reads its fragments once per 16-deep k-step
            rf = en.register_file_pj_per_access * (3 if s.unit == "cuda_core" else 3 / 16)
            compute += t.macs * (mac + rf)
        onchip += t.smem_bytes * en.smem_pj_per_byte + t.l2_bytes * _level(arch, "l2").read_pj_per_byte
        dram += t.hbm_bytes * _level(arch, "hbm").read_pj_per_byte
    static = en.static_w if e.static_w is None else e.static_w
    return 1e-12 * (e.compute_scale * compute + e.onchip_scale * onchip + e.dram_scale * dram) + static * seconds
