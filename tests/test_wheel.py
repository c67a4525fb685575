"""The built wheel works for pip users: the arch configs ship inside it (from arch_configs/, the one
source) and ``accelsim simulate`` runs from a fresh venv outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from accelsim.model.arch import load_arch
from accelsim.model.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]


#: What the build reads: the packages, the configs it maps into the wheel, and the packaging files.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "accelsim", "kernels", "arch_configs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a private copy of the sources: setuptools writes ``build/`` and ``*.egg-info``
    into the tree it builds, so two builds of one tree at once (``pytest -n 2`` workers) break each other."""
    src = tmp_path_factory.mktemp("src")
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=junk)
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    # pip's isolated build, as `pip install .` does it: the build backend comes from pip's index or cache.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=600)
    (whl,) = out.glob("accelsim-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_ships_each_arch_config_once(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.endswith(".yaml"))
    assert shipped == sorted(p.name for p in (ROOT / "arch_configs").glob("*.yaml"))
    assert all(n.startswith("accelsim/model/arch_configs/") for n in names if n.endswith(".yaml"))
    assert not any(n.startswith("arch_configs/") for n in names)


@pytest.mark.slow
def test_wheel_ships_each_cuda_source_beside_its_module(wheel):
    """The .cu files the kernel rooms load at run time (``Path(__file__).parent / name``) are in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "kernels").glob("*/*.cu"))
    assert len(sources) == 3 and set(sources) <= names, (sources, sorted(n for n in names if n.endswith(".cu")))


@pytest.mark.slow
def test_pip_install_into_fresh_venv_outside_repo(wheel, tmp_path):
    """``pip install`` the wheel (not editable) into a new venv in a temporary folder and run the
    console script from there. The install itself is offline: the venv sees this environment's
    dependencies through a
    ``.pth`` (a directory a ``.pth`` adds is not scanned for ``.pth`` files, so this environment's
    editable hook for the repository stays inactive there)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                           text=True).strip())
    (purelib / "_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=600)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.check_output([str(py), "-c", "import accelsim; print(accelsim.__file__)"], text=True,
                                    cwd=tmp_path, env=env)
    assert Path(where.strip()).is_relative_to(venv), where
    proc = subprocess.run([str(venv / "bin" / "accelsim"), "simulate", "--arch", "systolic_ws_32x32", "--workload",
                           "resnet50", "--format", "json"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["arch"] == "systolic_ws_32x32"
    assert doc["total"] == simulate(load_arch(ROOT / "arch_configs" / "systolic_ws_32x32.yaml"), "resnet50").total
