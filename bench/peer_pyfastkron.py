"""Run pyfastkron 1.1.0 (its NumPy x86 backend) in its own venv on inputs saved as .npy files."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["PEER_VENV", "ensure_venv", "run_peer"]

PEER_VENV = Path(__file__).parent / ".venv-pyfastkron"
PEER_PACKAGE = "pyfastkron==1.1.0"


def _python() -> Path:
    return PEER_VENV / "bin" / "python"


def ensure_venv() -> Path:
    """Create bench/.venv-pyfastkron with pyfastkron and NumPy; return its interpreter.

    pyfastkron declares torch as a dependency, but its NumPy backend (``fastkronnumpy``)
    only needs the bundled FastKronX86 extension, so it is installed with ``--no-deps``
    next to a plain NumPy: the accelsim venv and its NumPy stay untouched.
    """
    py = _python()
    ok = py.exists() and subprocess.run(
        [str(py), "-c", "import pyfastkron.fastkronnumpy"], capture_output=True
    ).returncode == 0
    if not ok:
        venv.EnvBuilder(with_pip=True, clear=True).create(PEER_VENV)
        pip = [str(py), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--no-deps", PEER_PACKAGE], check=True)
        subprocess.run([*pip, "numpy"], check=True)
    return py


def run_peer(workdir: Path, n_factors: int, repeats: int) -> list[float]:
    """Time pyfastkron on workdir/x.npy and f0..fN-1.npy; it writes workdir/y_peer.npy."""
    out = subprocess.run(
        [str(ensure_venv()), __file__, "--worker", str(workdir), str(n_factors), str(repeats)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _worker(workdir: str, n_factors: str, repeats: str) -> None:
    """Inside the peer venv: load, check the x86 backend is live, warm up, time, save."""
    import time

    import numpy as np
    from pyfastkron import fastkronbase, fastkronnumpy

    if fastkronbase.fastkronX86 is None:
        raise SystemExit("pyfastkron's FastKronX86 extension did not load; timings would be its fallback")
    d = Path(workdir)
    x = np.load(d / "x.npy")
    fs = [np.load(d / f"f{i}.npy") for i in range(int(n_factors))]
    if not fastkronnumpy.fastkronnumpy.isSupported(x, fs):
        raise SystemExit("pyfastkron does not support these inputs on x86; it would fall back to its shuffle")
    y = fastkronnumpy.gemkm(x, fs)
    times = []
    for _ in range(int(repeats)):
        t0 = time.perf_counter()
        fastkronnumpy.gemkm(x, fs)
        times.append(time.perf_counter() - t0)
    np.save(d / "y_peer.npy", y)
    print(json.dumps(times))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        _worker(*sys.argv[2:])
    else:
        print(f"python: {ensure_venv()}")
