"""Every kernels/cuda/*.cu compiles with nvcc for sm_80 and sm_90, and every tile configuration of the
packed N:M kernel for sm_90 (the target), with no errors and no register spills; skipped without nvcc."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kernels.nm_configs import TILES, smem_bytes, template_name, threads

NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)
CUDA = Path(__file__).resolve().parents[1] / "kernels" / "cuda"
SOURCES = sorted(CUDA.glob("*.cu"))
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
    """One translation unit instantiating every tile of kernels.nm_configs.TILES (one nvcc run, ~30 s)."""
    cfgs = [dict(zip(("mode", "bm", "bn", "tm", "stages", "emax"), t)) for t in TILES]
    src = tmp_path / "tiles.cu"
    src.write_text(f'#include "{CUDA / "nm_spmm_packed.cu"}"\n' + "".join(
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
