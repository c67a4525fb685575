"""Every kernels/*/*.cu compiles with nvcc for sm_80 and sm_90, and every tile configuration of the
packed N:M kernel for sm_90 (the target), with no errors and no register spills; skipped without nvcc."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kernels.nm.configs import TILES, smem_bytes, template_name, threads

NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)
KERNELS = Path(__file__).resolve().parents[1] / "kernels"
SOURCES = sorted(KERNELS.glob("*/*.cu"))
ARGS = "(const float*, const int*, const unsigned char*, const float*, float*, int, int, int, int, int, int, int, int, int)"

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


def _compile(src: Path, arch: str, out: Path) -> str:
    res = subprocess.run(
        [NVCC, f"-arch={arch}", "-std=c++17", "-cubin", "-Xptxas", "-v", "-o", str(out), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    log = res.stdout + res.stderr
    assert res.returncode == 0, log
    assert "error" not in log.lower(), log
    return log


def _no_spills(log: str) -> None:
    spills = [int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", log)]
    assert spills and not any(spills), log


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("src", SOURCES, ids=[s.name for s in SOURCES])
def test_compiles_without_spills(src, arch, tmp_path):
    _no_spills(_compile(src, arch, tmp_path / "k.cubin"))


@pytest.mark.parametrize("arch", ["sm_90"])
def test_every_nm_tile_compiles_without_spills(arch, tmp_path):
    """One translation unit instantiating every tile of kernels.nm.configs.TILES (one nvcc run, ~30 s)."""
    cfgs = [dict(zip(("mode", "bm", "bn", "tm", "stages", "emax"), t)) for t in TILES]
    src = tmp_path / "tiles.cu"
    src.write_text(f'#include "{KERNELS / "nm" / "nm_spmm_packed.cu"}"\n' + "".join(
        f"template __global__ void {template_name(c)}{ARGS};\n" for c in cfgs))
    log = _compile(src, arch, tmp_path / "tiles.cubin")
    _no_spills(log)
    # every instantiation reported, within the register file at its block size, no stack frame
    blocks = re.findall(r"Compiling entry function '(_Z9nm_packed\w+)'.*?(\d+) bytes stack frame.*?Used (\d+) registers",
                        log, flags=re.S)
    assert len(blocks) == len(cfgs), log
    by_name = {name: (int(stack), int(regs)) for name, stack, regs in blocks}
    for c in cfgs:
        mangled = "_Z9nm_packedILi{mode}ELi{bm}ELi{bn}ELi{tm}ELi{stages}ELi{emax}E".format(**c)
        stack, regs = next(v for k, v in by_name.items() if k.startswith(mangled))
        assert stack == 0 and regs * threads(c["bm"], c["bn"], c["tm"]) <= 65536, (c, regs)
        assert smem_bytes(c["mode"], c["bm"], c["bn"], c["stages"], c["emax"]) <= 227 * 1024


KRON_CU = KERNELS / "kron" / "kron_fastkron.cu"


@pytest.fixture(scope="module")
def kron_sm90(tmp_path_factory):
    """kron_fastkron.cu for sm_90: (cubin path, {entry: (registers, spill bytes, stack bytes)})."""
    cubin = tmp_path_factory.mktemp("kron") / "kron.cubin"
    log = _compile(KRON_CU, "sm_90", cubin)
    stats = {}
    for name, body in re.findall(r"Compiling entry function '(\w+)' for 'sm_90'(.*?)(?=Compiling entry|\Z)", log, re.S):
        regs = int(re.search(r"Used (\d+) registers", body).group(1))
        spill = sum(int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", body))
        stack = int(re.search(r"(\d+) bytes stack frame", body).group(1))
        stats[name] = (regs, spill, stack)
    return cubin, stats


def test_kron_variants_compile_without_spills(kron_sm90):
    """Every register tile the planner can pick is compiled, spill-free, at <= 128 registers.

    128 registers × 256 threads leaves room for two blocks per SM on sm_90.
    """
    from kernels.kron.plan import VARIANTS, kernel_name

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
