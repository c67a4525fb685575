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
