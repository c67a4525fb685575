"""Tests for accelsim.codesign.prune, the `prune` CLI command and examples/sparse_classifier.py."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from accelsim.cli import prune_cmd
from accelsim.codesign.prune import METHODS, PruneStructure, prune, prune_structure
from accelsim.codesign.tensors import load_tensor, save_npy
from conftest import load_script
from kernels.errors import InputError


@pytest.fixture(scope="module")
def app():
    from accelsim.cli import app as root

    return root  # the full command set, so `prune` is a named sub-command as in real use


@pytest.fixture
def weights(tmp_path):
    w = np.random.default_rng(0).standard_normal((40, 30))
    path = tmp_path / "w.npy"
    np.save(path, w)
    return w, path


def test_structure_dataclass():
    w = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    st = prune_structure(w)
    assert st == PruneStructure((2, 3), (1,), (0, 2), 1 / 6)
    d = st.to_dict()
    assert d["zero_cols"] == [0, 2] and d["zero_rows"] == [1]
    assert d["zero_col_fraction"] == pytest.approx(2 / 3) and d["zero_row_fraction"] == 0.5
    json.dumps(d)
    assert prune_structure(np.zeros((2, 2, 2))).zero_cols == (0, 1, 2, 3)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("axis", [0, 1])
def test_prune_methods(method, axis):
    w = np.random.default_rng(1).standard_normal((20, 25))
    res = prune(w, 4.0, method, axis)
    assert res.norm_after <= 4.0 * (1 + 1e-9) < res.norm_before
    zeroed = res.structure.zero_cols if axis == 0 else res.structure.zero_rows
    if method.startswith("bilevel"):
        assert len(zeroed) > 0  # bilevel zeroes whole groups at this radius
    assert 0 < res.structure.density <= 1
    assert res.to_dict()["structure"]["shape"] == [20, 25]


def test_prune_unknown_method():
    with pytest.raises(InputError, match="method"):
        prune(np.ones((2, 2)), 1.0, "magnitude")


def test_load_and_save(tmp_path):
    from safetensors.numpy import save_file

    a, b = np.ones((2, 3), np.float32), np.zeros(4, np.float32)
    save_file({"a": a, "b": b}, tmp_path / "m.safetensors")
    assert np.array_equal(load_tensor(tmp_path / "m.safetensors", "a"), a)
    with pytest.raises(InputError, match="holds 2 tensors"):
        load_tensor(tmp_path / "m.safetensors")
    with pytest.raises(InputError, match="no tensor 'c'"):
        load_tensor(tmp_path / "m.safetensors", "c")
    with pytest.raises(InputError, match="unsupported"):
        (tmp_path / "w.txt").write_text("1")
        load_tensor(tmp_path / "w.txt")
    with pytest.raises(InputError, match="must end in .npy"):
        save_npy(a, tmp_path / "out.bin")
    save_npy(a, tmp_path / "out.npy")
    assert np.array_equal(np.load(tmp_path / "out.npy"), a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "out.npy", "w.txt"]


def test_cli_json(app, weights, tmp_path):
    w, path = weights
    out = tmp_path / "o.npy"
    res = CliRunner().invoke(app, ["prune", str(path), "--out", str(out), "--radius", "5",
                                   "--method", "bilevel-l1inf", "--format", "json", "--workers", "2"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    pruned = np.load(out)
    assert report["structure"]["zero_cols"] == list(np.flatnonzero(~pruned.any(axis=0)))
    assert report["norm_after"] == pytest.approx(5.0) and report["norm_before"] > 5
    assert report["structure"]["density"] == pytest.approx((pruned != 0).mean())


def test_cli_table_safetensors(app, tmp_path):
    from safetensors.numpy import save_file

    w = np.random.default_rng(2).standard_normal((16, 12)).astype(np.float32)
    save_file({"fc1.weight": w, "fc1.bias": w[0]}, tmp_path / "m.safetensors")
    out = tmp_path / "o.npy"
    res = CliRunner().invoke(app, ["prune", str(tmp_path / "m.safetensors"), "--tensor", "fc1.weight",
                                   "--out", str(out), "--radius", "2", "--axis", "1", "--method", "exact-l1inf"])
    assert res.exit_code == 0, res.output
    assert "zero rows" in res.output and np.load(out).dtype == np.float32


@pytest.mark.parametrize("args, match", [
    (["--radius", "-1"], "radius"),
    (["--radius", "1", "--axis", "3"], "axis"),
    (["--radius", "1", "--workers", "0"], "workers"),
])
def test_cli_bad_input_writes_nothing(app, weights, tmp_path, args, match):
    _, path = weights
    out = tmp_path / "sub" / "o.npy"
    res = CliRunner().invoke(app, ["prune", str(path), "--out", str(out), *args])
    assert isinstance(res.exception, InputError) and match in str(res.exception)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temporary left behind


def test_cli_refuses_non_npy_and_missing(app, weights, tmp_path):
    _, path = weights
    res = CliRunner().invoke(app, ["prune", str(path), "--out", str(tmp_path / "o.txt"), "--radius", "1"])
    assert isinstance(res.exception, InputError)
    res = CliRunner().invoke(app, ["prune", str(tmp_path / "nope.npy"), "--out", str(tmp_path / "o.npy"), "--radius", "1"])
    assert isinstance(res.exception, InputError) and not (tmp_path / "o.npy").exists()


def test_sparse_classifier_example():
    pytest.importorskip("sklearn")
    mod = load_script("examples/sparse_classifier.py")
    rows = mod.run(radii=(None, 8.0, 2.0), epochs=8, seed=0)
    acc = [r["accuracy"] for r in rows]
    sparsity = [r["sparsity"] for r in rows]
    assert acc[0] > 0.9 and acc[1] > 0.8 and acc[2] > 0.4  # chance is 0.1
    assert sparsity[0] < sparsity[1] < sparsity[2] and sparsity[2] > 0.5
    assert mod.run(radii=(8.0,), epochs=8, seed=0) == rows[1:2]  # deterministic


def test_main_exit_status_2(weights, tmp_path, monkeypatch, capsys):
    from accelsim.cli import main

    _, path = weights
    out = tmp_path / "o.npy"
    monkeypatch.setattr("sys.argv", ["accelsim", "prune", str(path), "--out", str(out), "--radius", "-1"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith("accelsim: error: radius") and "\n" not in err


def test_structure_feeds_the_simulator(tmp_path):
    """Zero columns drop from K, zero rows from N; the pruned layer is faster and its EDP lower."""
    import json

    from accelsim import simulate
    from accelsim.codesign.prune import prune as do_prune
    from accelsim.codesign.prune import structured_gemm
    from conftest import run_cli

    rng = np.random.default_rng(3)
    w = rng.standard_normal((96, 256)) * rng.uniform(0.1, 2.0, size=256)
    res = do_prune(w, radius=40.0)
    st = res.structure
    assert st.zero_cols, "radius small enough to zero whole columns"
    g = structured_gemm(st, 128, "l", residual="2:4")
    assert (g.m, g.n, g.k) == (128, 96 - len(st.zero_rows), 256 - len(st.zero_cols))
    assert np.count_nonzero(res.weights[:, [c for c in range(256) if c not in set(st.zero_cols)]].any(axis=0)) == g.k
    dense = simulate("stc_2of4", structured_gemm(type(st)((96, 256), (), (), 1.0), 128, "l")).total
    assert simulate("stc_2of4", g).total["edp"] < dense["edp"]
    src = tmp_path / "w.npy"
    np.save(src, w)
    proc = run_cli("prune", str(src), "--out", str(tmp_path / "p.npy"), "--radius", "40", "--arch", "stc_2of4",
                   "--tokens", "128", "--residual", "2:4", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    variants = json.loads(proc.stdout)["simulation"]["variants"]
    assert [v["variant"] for v in variants] == ["dense", "pruned", "pruned+2:4"]
    assert variants[1]["k"] == g.k and variants[2]["speedup"] > variants[1]["speedup"] > 1
