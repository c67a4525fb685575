"""Every kernels/cuda/*.cu compiles with nvcc for sm_80 and sm_90 with no errors and no register spills."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)
SOURCES = sorted((Path(__file__).resolve().parents[1] / "kernels" / "cuda").glob("*.cu"))

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("src", SOURCES, ids=[s.name for s in SOURCES])
def test_compiles_without_spills(src, arch, tmp_path):
    res = subprocess.run(
        [NVCC, f"-arch={arch}", "-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "k.cubin"), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    log = res.stdout + res.stderr
    assert res.returncode == 0, log
    assert "error" not in log.lower(), log
    spills = [int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", log)]
    assert spills and not any(spills), log


KRON_CU = Path(__file__).resolve().parents[1] / "kernels" / "cuda" / "kron_fastkron.cu"


@pytest.fixture(scope="module")
def kron_sm90(tmp_path_factory):
    """kron_fastkron.cu for sm_90: (cubin path, {entry: (registers, spill bytes, stack bytes)})."""
    cubin = tmp_path_factory.mktemp("kron") / "kron.cubin"
    res = subprocess.run(
        [NVCC, "-arch=sm_90", "-cubin", "-Xptxas", "-v", "-o", str(cubin), str(KRON_CU)],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    stats = {}
    for name, body in re.findall(r"Compiling entry function '(\w+)' for 'sm_90'(.*?)(?=Compiling entry|\Z)", res.stderr, re.S):
        regs = int(re.search(r"Used (\d+) registers", body).group(1))
        spill = sum(int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", body))
        stack = int(re.search(r"(\d+) bytes stack frame", body).group(1))
        stats[name] = (regs, spill, stack)
    return cubin, stats


def test_kron_variants_compile_without_spills(kron_sm90):
    """Every register tile the planner can pick is compiled, spill-free, at <= 128 registers.

    128 registers × 256 threads leaves room for two blocks per SM on sm_90.
    """
    from kernels.kron_plan import VARIANTS, kernel_name

    _, stats = kron_sm90
    expected = {kernel_name(dt, rk, rq) for dt, tiles in VARIANTS.items() for rk, rq in tiles}
    assert set(stats) == expected
    for name, (regs, spill, stack) in stats.items():
        assert spill == 0 and stack == 0 and regs <= 128, (name, regs, spill, stack)


def _cuobjdump():
    found = shutil.which("cuobjdump")
    if found is None and NVCC is not None:
        near = Path(NVCC).resolve().parent / "cuobjdump"
        found = str(near) if near.exists() else None
    return found


@pytest.mark.skipif(_cuobjdump() is None, reason="cuobjdump not found")
@pytest.mark.parametrize(("name", "fma"), [("kron_fk_f32_4x8", "FFMA"), ("kron_fk_f64_4x4", "DFMA")])
def test_kron_inner_loop_sass(kron_sm90, name, fma):
    """The factor step's inner loop: FMAs fed by shared-memory loads, no local memory at all."""
    cubin, _ = kron_sm90
    sass = subprocess.run([_cuobjdump(), "-sass", "-fun", name, str(cubin)],
                          capture_output=True, text=True, timeout=120, check=True).stdout
    ops = re.findall(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", sass)
    assert not [o for o in ops if o.startswith(("LDL", "STL"))]
    fmas = sum(o == fma for o in ops)
    lds = sum(o.startswith("LDS") for o in ops)
    assert fmas >= 4 * 32 // (2 if fma == "DFMA" else 1)  # the unrolled 4 × RK×RQ register tile
    assert lds > 0 and fmas >= 2 * lds  # each shared-memory load feeds several FMAs
