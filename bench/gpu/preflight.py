#!/usr/bin/env python3
"""The GPU job's preflight: what the image holds and whether each GPU piece runs, in a few seconds, first in the log.

    python3 bench/gpu/preflight.py [--backend cupy|numpy]

One line per check, ``ok``, ``MISSING`` or ``FAILED`` with the reason: package versions (cupy,
cuda-core, cuda-pathfinder, cuda-bindings, cuSPARSELt, nvmath-python, typing_extensions, pyarrow,
ml-dtypes, pydantic, pytest-timeout) and whether nvmath-python's and pydantic's own requirements are
met by what is installed, the driver and clocks (nvidia-smi), NVML power, bfloat16 on
the array module, ``cusparseLt.init()`` (:func:`kernels.nm.sparse_tc.unavailable_reason`),
``import accelsim.cli``, and one tiny launch of each CUDA module (``kernels/*/*.cu``: N:M/TASD,
Kron, projection) checked against NumPy. A missing piece is named and the job goes on without it:
the exit status is 0 unless this script itself breaks. ``--backend numpy`` runs the same checks
with NumPy arrays (the CI dry run of ``run.sh``).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

__all__ = ["PACKAGES", "checks", "main"]

PACKAGES = {
    "cupy": ("cupy-cuda13x", "cupy-cuda12x", "cupy"),
    "cuda-core": ("cuda-core", "cuda_core"),
    "cuda-pathfinder": ("cuda-pathfinder", "cuda_pathfinder"),
    "cuda-bindings": ("cuda-bindings", "cuda_bindings"),
    "cusparselt": ("nvidia-cusparselt-cu13", "nvidia-cusparselt-cu12", "cusparselt"),
    "nvmath": ("nvmath-python",),
    "typing_extensions": ("typing-extensions", "typing_extensions"),
    "pyarrow": ("pyarrow",),
    "ml-dtypes": ("ml-dtypes", "ml_dtypes"),
    "pydantic": ("pydantic",),
    "nvidia-ml-py": ("nvidia-ml-py",),
    "pytest-timeout": ("pytest-timeout",),
}
"""What the job needs, as ``label: distribution names`` (the first one installed is reported)."""


class Missing(Exception):
    """A component that is not there: reported as MISSING, not FAILED."""


def _version(names) -> str:
    for name in names:
        try:
            return f"{md.version(name)} ({name})"
        except md.PackageNotFoundError:
            continue
    raise Missing("not installed")


def _requires(dist: str) -> str:
    """Whether the installed versions meet ``dist``'s own Requires-Dist (nvmath-python pins cuda-core and
    cuda-pathfinder ranges; pydantic needs a recent typing-extensions): the mismatch #23 feared, named."""
    try:
        reqs = md.requires(dist) or []
    except md.PackageNotFoundError:
        raise Missing(f"{dist} not installed") from None
    try:
        from packaging.requirements import Requirement
    except ImportError:
        raise Missing("no 'packaging' to read the requirements with") from None
    bad, met = [], 0
    for text in reqs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            bad.append(f"{req} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            bad.append(f"{req} (have {have})")
        else:
            met += 1
    if bad:
        raise RuntimeError(f"{dist} {md.version(dist)} needs " + "; ".join(bad))
    return f"{dist} {md.version(dist)}: {met} requirements met"


def _smi() -> str:
    query = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu,pstate"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=15)
    except FileNotFoundError:
        raise Missing("no nvidia-smi") from None
    if out.returncode:
        raise RuntimeError(out.stderr.strip() or f"exit {out.returncode}")
    return f"{query} = {out.stdout.strip()}"


def _nvml() -> str:
    from kernels.timing import _nvml_handle, _power_w

    h = _nvml_handle()
    if h is None:
        raise Missing("no NVML handle (nvidia-ml-py or a driver missing): energy columns stay null")
    return f"power {_power_w(h)} W"


def _bf16(xp) -> str:
    try:
        import ml_dtypes
    except ImportError:
        raise Missing("no ml_dtypes: bfloat16 configurations will fail") from None
    a = xp.asarray(np.arange(8, dtype=np.float32).reshape(2, 4)).astype(ml_dtypes.bfloat16)
    got = xp.matmul(a, a.T)
    want = np.arange(8.0).reshape(2, 4) @ np.arange(8.0).reshape(2, 4).T
    np.testing.assert_allclose(np.asarray(_host(got), dtype=np.float64), want, rtol=1e-2)
    return f"bfloat16 elementwise and matmul on {xp.__name__}"


def _cusparselt(xp) -> str:
    from kernels.nm import sparse_tc

    why = sparse_tc.unavailable_reason()
    if why is not None:
        raise Missing(f"cusparseLt.init(): {why}")
    from kernels.nm import nm_compress, nm_decompress

    a, b = _rand((64, 64), 1, np.float16), _rand((64, 32), 2, np.float16)
    t = nm_compress(xp.asarray(a), 2, 4, axis=1)
    got = _host(sparse_tc.matmul_terms([t], xp.asarray(b)))
    _close(got, _host(nm_decompress(t)), b, 2e-2)
    return "cusparseLt.init() and one 64x64x32 float16 2:4 matmul"


def _nm(xp) -> str:
    from kernels.tasd import tasd_decompose, tasd_reconstruct

    a, b = _rand((64, 96), 3, np.float32), _rand((96, 32), 4, np.float32)
    terms = tasd_decompose(xp.asarray(a), "2:4+1:4", axis=1)
    if xp is np:
        from kernels.tasd import tasd_spmm

        got, impl = tasd_spmm(terms, b), "numpy"
    else:
        from kernels.nm.dispatch import CUDA_CORE, spmm_cupy

        got, impl = _host(spmm_cupy(terms, xp.asarray(b), impl=CUDA_CORE)), "kernels/nm/nm_spmm_packed.cu"
    _close(got, _host(tasd_reconstruct(terms)), b, 1e-4)
    return f"TASD 2:4+1:4 64x96x32 float32 through {impl}"


def _kron(xp) -> str:
    from kernels.kron import kron_config, kron_matmul

    x, f1, f2 = _rand((16, 64), 5, np.float32), _rand((8, 8), 6, np.float32), _rand((8, 8), 7, np.float32)
    fs = [xp.asarray(f1), xp.asarray(f2)]
    got = _host(kron_matmul(xp.asarray(x), fs, "fused"))
    want = x.astype(np.float64) @ np.kron(f1.astype(np.float64), f2.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    return f"Kron 16x(8x8)^2 float32 fused ({kron_config(xp.asarray(x), fs, 'fused').get('impl')})"


def _projection(xp) -> str:
    from kernels.projection import bilevel_impl, project_l1inf_bilevel

    y = _rand((64, 48), 8, np.float32)
    impl = "host" if xp is np else "device"
    got = _host(project_l1inf_bilevel(xp.asarray(y), 5.0, impl=impl))
    want = project_l1inf_bilevel(y.astype(np.float64), 5.0, impl="host")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    return f"bilevel l1,inf 64x48 float32 ({bilevel_impl(xp.asarray(y), impl=impl)})"


def _cli() -> str:
    import accelsim.cli  # noqa: F401 - pydantic, typing_extensions and the rest of the CLI's imports

    return "import accelsim.cli"


def _rand(shape, seed: int, dtype):
    x = np.random.default_rng(seed).standard_normal(shape) + 0.05
    return x.astype(dtype)


def _host(a):
    from kernels.backend import to_numpy

    return to_numpy(a)


def _close(got, a_dense, b, rel: float) -> None:
    ref = np.asarray(a_dense, np.float64) @ np.asarray(b, np.float64)
    scale = np.abs(np.asarray(a_dense, np.float64)) @ np.abs(np.asarray(b, np.float64))
    err = float((np.abs(np.asarray(got, np.float64) - ref) / scale).max())
    if not err <= rel:
        raise AssertionError(f"largest error {err:.2e} of |A||B| over {rel:.0e}")


def checks(xp) -> list:
    """``(label, fn)`` in the order they run: versions, device, libraries, one launch per CUDA module."""
    out = [(f"version {label}", (lambda names=names: _version(names))) for label, names in PACKAGES.items()]
    out += [(f"requires {dist}", (lambda dist=dist: _requires(dist))) for dist in ("nvmath-python", "pydantic")]
    out += [("driver and clocks", _smi), ("nvml", _nvml), ("bfloat16", lambda: _bf16(xp)),
            ("cusparselt", lambda: _cusparselt(xp)), ("accelsim.cli", _cli),
            ("launch nm_spmm_packed.cu", lambda: _nm(xp)), ("launch kron_fastkron.cu", lambda: _kron(xp)),
            ("launch projection.cu", lambda: _projection(xp))]
    return out


def run(xp, stream=sys.stdout) -> dict:
    """Run every check; print one line each; return ``{label: "ok"|"MISSING"|"FAILED"}``."""
    status = {}
    for label, fn in checks(xp):
        t0 = time.perf_counter()
        try:
            msg, status[label] = fn(), "ok"
        except Missing as e:
            msg, status[label] = str(e), "MISSING"
        except Exception as e:  # noqa: BLE001 - a broken piece is reported; the job goes on without it
            msg, status[label] = f"{type(e).__name__}: {e}".splitlines()[0][:300], "FAILED"
        print(f"preflight {label}: {status[label]} {msg} [{time.perf_counter() - t0:.2f} s]", file=stream, flush=True)
    return status


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("cupy", "numpy"), default="cupy")
    args = ap.parse_args(argv)
    os.environ.setdefault("ACCELSIM_AUTOTUNE", "0")  # tiny launches: the heuristic tile, no timing
    try:
        from kernels.backend import get_xp

        xp = get_xp(args.backend)
    except Exception as e:  # noqa: BLE001 - no CuPy or no device: the checks below still name what is missing
        print(f"preflight backend {args.backend}: MISSING {type(e).__name__}: {e}; checks run on NumPy", flush=True)
        xp = np
    print(f"preflight python {sys.version.split()[0]}, numpy {np.__version__}, backend {xp.__name__}", flush=True)
    status = run(xp)
    bad = sorted(k for k, v in status.items() if v != "ok")
    print(f"preflight: {len(status) - len(bad)} of {len(status)} ok" + (f"; not ok: {', '.join(bad)}" if bad else ""),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
