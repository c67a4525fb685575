"""Calibrate the GPU at hand in one go (``accelsim calibrate --backend cupy``): report, measure, write, record, fit.

The directory holds the CPU path's three files (:mod:`accelsim.replay.calibration_dir`), for the GPU unit model:

- ``arch.yaml``: an arch with a ``gpu:`` section whose SM count, clock, memory, L2 and shared-memory
  sizes are what the driver and NVML report (:func:`kernels.trace.gpu_microbench.driver_report`), whose
  matmul rates, HBM and L2 bandwidths and launch and host-call costs are the microbenchmarks' (CUDA
  events: fastest run for a peak, median for a cost), and whose structural values no benchmark gives
  (CTA tiles, split-K, MMA layouts, unmeasured dtypes, energies) are the closest builtin GPU arch's,
  each line saying which;
- ``traces/``: :mod:`kernels.suites`' paper cases in :func:`~kernels.suites.round_robin` order (so any
  budget covers every family), timed as the GPU job's suites time them (median of 10 calls, a >= 1 s
  NVML energy window), within what the microbenchmarks left of the budget;
- ``calibration.json``: the six :class:`~accelsim.model.gpu.DeviceParams` (and the energy scales where
  windows exist) fitted on every configuration and written by
  :func:`~accelsim.replay.device.write_calibration` (tied to one device and one arch), marked
  :data:`FORMAT`, with the held-out MAPE of a fit on half of the configurations, the measurements and the
  driver report.

``accelsim validate --traces RUN --calibration DIR`` replays kernel traces of the same device with it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

from accelsim.errors import AccelsimError
from accelsim.replay.calibration_dir import ARCH_FILE, CALIBRATION_FILE, TRACES_DIR, CalibrationDirError
from accelsim.replay.device_calibration import spread_note

__all__ = [
    "FORMAT",
    "arch_yaml",
    "calibrate_gpu",
    "calibration_cases",
    "closest_arch",
    "copy_buffers",
    "device_xp",
    "is_gpu_calibration_dir",
    "load_gpu_calibration_dir",
    "measure",
    "record",
    "report_of",
]

FORMAT = "accelsim.gpu_calibration"
SUITE = "calibrate"
SEED = 1
"""Case order and data seed: another shuffle than the GPU job's replay suite (seed 0), so a short budget of
each covers different configurations."""
HELD_OUT_FRACTION = 0.5
MIN_CONFIGS = 4
MATMUL_SIZES = (4096, 8192)
"""Square matmul sizes per dtype; the peak is the fastest run of either (8192³ fp16 is ~1.5 ms on an H100)."""
REPEATS = 10
_MIB = 2**20


def device_xp():
    """CuPy, or an :class:`InputError` (one line, exit 2) where it or a GPU is unusable or TF32 would stand in for fp32."""
    from kernels import backend
    from kernels.errors import InputError

    if not backend.gpu_available():
        raise InputError("--backend cupy: no usable CUDA device here (CuPy missing, or no GPU or driver answers); "
                         "calibrate this CPU with --backend numpy")
    if os.environ.get("CUPY_TF32", "0") != "0":
        raise InputError(f"CUPY_TF32={os.environ['CUPY_TF32']}: fp32 matmuls would run as TF32 and the fp32 peak "
                         "would be TF32's; unset it")
    return backend.get_xp("cupy")


def report_of(xp) -> dict:
    """What the driver and NVML say about the current device (:func:`kernels.trace.gpu_microbench.driver_report`)."""
    from kernels.trace.gpu_microbench import driver_report, read_driver

    rep = driver_report(*read_driver(xp))
    for key in ("clock_mhz", "l2_bytes"):
        if key not in rep:
            raise AccelsimError(f"calibrate: neither the driver nor NVML reports {key} for {rep['device_name']!r}")
    return rep


def closest_arch(report: dict) -> tuple:
    """``(arch, why)``: the builtin GPU arch whose name or description shares a distinguishing word with the
    device's name, else the one with the nearest SM count (first by name on a tie)."""
    from accelsim.model.arch import load_arch
    from accelsim.model.gpu import gpu_archs
    from accelsim.replay.project import device_tokens

    archs = [load_arch(n) for n in gpu_archs()]
    if not archs:
        raise AccelsimError("calibrate: no builtin arch has a gpu: section to take the unmeasured values from")
    tokens = device_tokens(report["device_name"])
    for a in archs:
        hit = tokens & device_tokens(f"{a.name} {a.description}")
        if hit:
            return a, f"it names {'/'.join(sorted(hit))}, as the device's name does"
    a = min(archs, key=lambda a: abs(a.gpu.sms - report["sms"]))
    return a, f"no builtin arch names this device; it has the nearest SM count ({a.gpu.sms})"


def copy_buffers(report: dict) -> dict:
    """Bytes per copy side: HBM 8 × L2 (at least 256 MiB, at most an eighth of memory), so the copy spills L2;
    L2 a quarter of it (both sides fit), with copies enough per timed run to move 256 MiB."""
    l2 = report["l2_bytes"]
    hbm = int(min(max(8 * l2, 256 * _MIB), report["memory_bytes"] // 8))
    return {"hbm": hbm, "l2": l2 // 4, "l2_inner": max(1, 256 * _MIB // max(1, l2 // 4))}


def measure(xp, report: dict, sizes=MATMUL_SIZES, repeats: int = REPEATS) -> dict:
    """Matmul TFLOP/s per dtype (fastest size), HBM and L2 copy GB/s, launch and host-call seconds.

    A dtype this CuPy cannot multiply (bfloat16 without ml_dtypes) is listed under ``unsupported`` with why."""
    from kernels.trace import gpu_microbench as gm

    tflops, best, unsupported = {}, {}, {}
    for d in gm.MATMUL_DTYPES:
        try:
            by_n = {n: gm.matmul_tflops(xp, n, d, repeats) for n in sizes}
        except Exception as exc:  # noqa: BLE001 - a dtype the library lacks: the arch says so and takes the base's
            unsupported[d] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        best[d] = max(by_n, key=lambda n: by_n[n]["max"])
        tflops[d] = by_n[best[d]]
    buf = copy_buffers(report)
    return {"matmul_n": best, "matmul_tflops": tflops, "unsupported": unsupported, "copy_bytes": buf,
            "copy_gbs": {"hbm": gm.copy_gbs(xp, buf["hbm"], repeats),
                         "l2": gm.copy_gbs(xp, buf["l2"], repeats, inner=buf["l2_inner"])},
            "launch_s": gm.launch_s(xp), "host_call_s": gm.host_call_s(xp)}


def _num(x) -> str:
    """A number YAML reads back as one (``1.0e-06``, not ``1e-06``, which YAML 1.1 reads as text)."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if not isinstance(x, float):
        return str(x)
    s = f"{x:.6g}"
    mant, _, exp = s.partition("e")
    return f"{mant}.0e{exp}" if exp and "." not in mant else s


def _flow(v) -> str:
    """``v`` as a one-line YAML flow value."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return "null" if v is None else _num(v)


def _rates(report: dict, meas: dict) -> dict:
    """Measured MACs per cycle per SM by dtype, with the comment saying how."""
    hz, sms = report["clock_mhz"] * 1e6, report["sms"]
    out = {}
    for d, r in meas["matmul_tflops"].items():
        n = meas["matmul_n"][d]
        out[d] = (r["max"] * 1e12 / 2 / hz / sms, f"measured {r['max']:.4g} TFLOP/s {d} matmul at {n}^3 "
                  f"({spread_note(r, '.4g')}){', TF32 off' if d == 'float32' else ''} / 2 / clock / SMs")
    return out


def _table(key: str, base: dict, measured: dict, base_name: str, why: dict, indent: str) -> list[str]:
    """A dtype → rate mapping, measured entries first, the base arch's for the rest, one comment each."""
    lines = [f"{indent}{key}:"]
    for d in dict.fromkeys([*measured, *base]):
        if d in measured:
            v, c = measured[d]
        else:
            v, c = base[d], f"from {base_name}, not measured" + (f" ({why[d]})" if d in why else "")
        lines.append(f"{indent}  {d}: {_num(float(v))}  # {c}")
    return lines


_SHORT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def arch_yaml(report: dict, meas: dict, base, why_base: str, name: str, backend: str) -> str:
    """The arch text: driver-reported structure, measured rates, the base arch's other values, each line saying which."""
    ghz, sms, src, b = report["clock_mhz"] / 1e3, report["sms"], report["sources"], base.name
    rates = {_SHORT[d]: v for d, v in _rates(report, meas).items()}
    why = {_SHORT[d]: w for d, w in meas["unsupported"].items()}
    tensor = {d: rates[d] for d in ("fp16", "bf16") if d in rates}
    cuda = {d: rates[d] for d in ("fp32",) if d in rates}
    copy, buf = meas["copy_gbs"], meas["copy_bytes"]
    idle = report.get("idle_power_w")
    desc = f"{report['device_name']} ({sms} SMs), measured by accelsim calibrate through the {backend} backend"
    cap = {"hbm": (report["memory_bytes"], src["memory_bytes"]), "l2": (report["l2_bytes"], src["l2_bytes"])}
    lvl = {m.name: m for m in base.memory}
    if "smem_per_sm_bytes" in report:
        cap["smem"] = (report["smem_per_sm_bytes"] * sms, f"{src['smem_per_sm_bytes']} x SMs")
    else:
        cap["smem"] = (lvl["smem"].capacity_bytes // base.gpu.sms * sms, f"from {b}: per SM x SMs")
    bw = {"hbm": (copy["hbm"]["max"] / ghz, f"measured {copy['hbm']['max']:.4g} GB/s device copy (read + write; "
                  f"{spread_note(copy['hbm'], '.4g')}), {buf['hbm'] // _MIB} MiB per side, / clock"
                  + (f"; the driver's peak is {report['hbm_peak_gbs']:.4g} GB/s" if "hbm_peak_gbs" in report else "")),
          "l2": (copy["l2"]["max"] / ghz, f"measured {copy['l2']['max']:.4g} GB/s device copy "
                 f"({spread_note(copy['l2'], '.4g')}), {buf['l2'] / _MIB:.3g} MiB per side, {buf['l2_inner']} copies per timed run (their launch gaps "
                 "included), / clock"),
          "smem": (base.gpu.smem_bytes_per_cycle * sms, f"from {b}: {base.gpu.smem_bytes_per_cycle:g} B/clk/SM x SMs")}
    lines = [
        f"# Written by `accelsim calibrate --backend {backend}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"# for {report['device_name']} (compute capability {report.get('compute_capability')}, {sms} SMs).",
        "# measured: matmul rates (fastest run: a peak), copy bandwidths, launch and host-call costs (medians), with",
        "#   CUDA events (kernels.trace.gpu_microbench); driver/NVML: SMs, clock, memory, L2, shared memory, idle power;",
        f"# from {b} ({why_base}): CTA tiles, split-K, MMA layouts, stage depths, unmeasured dtypes,",
        f"#   energies (estimates; sources in arch_configs/{b}.yaml).",
        "version: 1",
        f"name: {name}",
        f"description: {json.dumps(desc)}",
        f"clock_ghz: {_num(ghz)}  # {src['clock_mhz']}",
        "compute:",
        "  kind: tensor_core",
        f"  units: {sms}  # {src['sms']}",
        *_table("macs_per_cycle", base.compute.macs_per_cycle, {**tensor, **cuda}, b, why, "  "),
    ]
    c = base.compute.model_dump(mode="json")
    for key in ("tile_m", "tile_n", "tile_k", "tile_options", "default_dtype", "unit_area_mm2", "sparsity"):
        lines.append(f"  {key}: {_flow(c[key])}  # from {b}")
    lines.append("memory:")
    for n in ("hbm", "l2", "smem"):
        lines += [f"  - name: {n}", f"    capacity_bytes: {int(cap[n][0])}  # {cap[n][1]}",
                  f"    bandwidth: {_num(float(bw[n][0]))}  # {bw[n][1]}"]
        lines += [f"    {k}: {_num(getattr(lvl[n], k))}  # from {b}" for k in
                  ("read_pj_per_byte", "write_pj_per_byte", "area_mm2_per_mib") if getattr(lvl[n], k)]
    lines.append("energy:")
    for k, v in base.energy.model_dump(mode="json").items():
        if k == "leakage_pj_per_cycle" and idle is not None:
            lines.append(f"  {k}: {_num(idle / (ghz * 1e9) * 1e12)}  # measured: {src['idle_power_w']} {idle:.4g} W / clock")
        elif v is not None:
            lines.append(f"  {k}: {_flow(v)}  # from {b}")
    g = base.gpu
    lines += ["gpu:", f"  sms: {sms}  # {src['sms']}",
              *_table("cuda_core_macs_per_cycle", g.cuda_core_macs_per_cycle, cuda, b, why, "  "),
              *_table("tensor_core_macs_per_cycle", g.tensor_core_macs_per_cycle, tensor, b, why, "  "),
              *_table("sparse_tensor_core_macs_per_cycle", g.sparse_tensor_core_macs_per_cycle, {}, b, why, "  ")]
    gd = g.model_dump(mode="json")
    for key in ("smem_bytes_per_cycle", "tensor_core_tiles", "cuda_core_tiles", "split_k", "min_split_k_depth",
                "mn_major_dtypes", "k_tile_bytes"):
        lines.append(f"  {key}: {_flow(gd[key])}  # from {b}")
    ls, hc = meas["launch_s"], meas["host_call_s"]
    lines += [f"  launch_s: {_num(ls['median'])}  # measured: median of {ls['repeats']} event-timed one-element adds "
              f"(fastest {ls['min']:.3g}, slowest {ls['max']:.3g} s); the fit's starting point",
              f"  host_call_s: {_num(hc['median'])}  # measured: host seconds per call of back-to-back one-element "
              f"adds, median of {hc['repeats']} runs",
              f"  loop_step_s: {_num(g.loop_step_s)}  # from {b} (estimate)"]
    ge = {**gd["energy"]}
    static = ge.pop("static_w")
    lines += ["  energy:", *(f"    {k}: {_flow(v)}  # from {b} (estimate)" for k, v in ge.items())]
    lines.append(f"    static_w: {_num(idle if idle is not None else static)}  # "
                 + (f"measured: {src['idle_power_w']}" if idle is not None else f"from {b}"))
    return "\n".join(lines) + "\n"


def calibration_cases(xp) -> list:
    """The spanning set: every :mod:`kernels.suites` paper case, round-robin over the families."""
    from kernels.suites import round_robin

    return round_robin("paper", xp, SEED)


def record(recorder, cases, budget_s: float, xp, clock=time.monotonic) -> tuple[list, list]:
    """``(rows, errors)``: ``cases`` recorded (suite ``calibrate``) while ``budget_s`` has room for the slowest so
    far; a case that raises (a kernel this device cannot run) is listed, not fatal."""
    from kernels.suites import record_case, within_budget

    rows, errors = [], []
    for case in within_budget(cases, budget_s, clock):
        try:
            rows.append(record_case(case, xp, recorder, suite=SUITE)[0])
        except Exception as exc:  # noqa: BLE001 - one failing kernel must not lose the calibration
            errors.append(f"{case.label}: {type(exc).__name__}: {exc}"[:300])
        recorder.flush()
    return rows, errors


def calibrate_gpu(out: Path, budget_s: float, *, name: str = "gpu_calibrated", xp=None, report=None, bench=None,
                  cases=None, clock=time.monotonic) -> dict:
    """Report, measure, write ``out/arch.yaml``, record ``out/traces`` in what is left of ``budget_s``, fit and write
    ``out/calibration.json``; returns its document. ``xp``, ``report``, ``bench(xp, report)`` and ``cases`` are
    injectable (tests: NumPy as the device)."""
    from accelsim.model.arch import load_arch
    from accelsim.replay.device import device_of, fit_device, fit_energy, gpu_items, validate_gpu, write_calibration
    from accelsim.replay.traces import load as load_traces
    from kernels.backend import backend_name
    from kernels.io import atomic_path
    from kernels.trace import Recorder

    start = clock()
    xp = xp if xp is not None else device_xp()
    report = report if report is not None else report_of(xp)
    base, why = closest_arch(report)
    meas = (bench or measure)(xp, report)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / ARCH_FILE) as tmp:
        tmp.write_text(arch_yaml(report, meas, base, why, name, backend_name(xp)))
    arch = load_arch(out / ARCH_FILE)
    with Recorder(out / TRACES_DIR) as rec:
        rows, errors = record(rec, cases if cases is not None else calibration_cases(xp),
                              budget_s - (clock() - start), xp, clock)
    table = load_traces(out / TRACES_DIR) if rows else None
    items = gpu_items(table) if rows else []
    if len(items) < MIN_CONFIGS:
        raise AccelsimError(f"--budget-s {budget_s:g}: left time for {len(items)} kernel configurations after the "
                            f"microbenchmarks, {MIN_CONFIGS} at least to fit; raise it"
                            + (f" ({len(errors)} failed: {errors[0]})" if errors else ""))
    held = validate_gpu(table, arch, calibrate_on=HELD_OUT_FRACTION, seed=0)
    p = fit_device(arch, items)
    e = fit_energy(arch, p, items)
    train = [k for k in held["kernels"] if k["split"] == "train"]
    doc = {"format": FORMAT, "backend": backend_name(xp), "arch_file": ARCH_FILE, "base_arch": base.name,
           "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "budget_s": budget_s,
           "configs": len(items), "records": len(rows), "errors": errors,
           "split": {"fraction": HELD_OUT_FRACTION, "seed": 0, "train": len(train),
                     "held_out": held["overall"]["n"], "train_labels": [k["label"] for k in train]},
           "held_out_mape_pct": held["overall"]["mape_pct"],
           "held_out_by_family": {f["family"]: f["mape_pct"] for f in held["families"]},
           "driver": report, "measured": meas}
    write_calibration(out / CALIBRATION_FILE, arch, device_of(items), p, e,
                      {"configurations": len(items), "fraction": None, "seed": 0}, extra=doc)
    return json.loads((out / CALIBRATION_FILE).read_text())


def is_gpu_calibration_dir(path) -> bool:
    """Whether ``path`` is a directory whose calibration file :func:`calibrate_gpu` wrote."""
    f = Path(path) / CALIBRATION_FILE
    try:
        return json.loads(f.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load_gpu_calibration_dir(path) -> tuple:
    """``(arch, calibration file, document)`` of a :func:`calibrate_gpu` directory; its parameters are read and
    checked by :func:`~accelsim.replay.device.load_calibration` when applied."""
    from accelsim.model.arch import load_arch

    path = Path(path)
    for f in (path / ARCH_FILE, path / CALIBRATION_FILE):
        if not f.is_file():
            raise CalibrationDirError(f"--calibration {path}: has no {f.name}; write the directory with "
                                      "`accelsim calibrate --backend cupy --out DIR`")
    return load_arch(path / ARCH_FILE), path / CALIBRATION_FILE, json.loads((path / CALIBRATION_FILE).read_text())
