"""Real weights from an ONNX model: `tasd search --weights model.onnx` prices TASD on the model's own
tensors, laid out (out, in) so N:M groups run along the reduction axis."""

from __future__ import annotations

import json

import numpy as np
import onnx  # the [onnx] extra, in the test extra: CI runs these
from onnx import TensorProto, helper, numpy_helper

from accelsim.codesign.sources import load_weight_file
from accelsim.model.workloads import as_network
from conftest import run_in_process

RNG = np.random.default_rng(11)


def _two_of_four(rows: int, k: int) -> np.ndarray:
    """Laplace values with the 2 smallest of every 4 along the last axis zeroed: exactly 2:4 sparse."""
    w = RNG.laplace(size=(rows, k // 4, 4))
    np.put_along_axis(w, np.argsort(np.abs(w), axis=-1)[..., :2], 0.0, axis=-1)
    return w.reshape(rows, k).astype(np.float32)


def _model(tmp_path):
    """conv (2:4 along C·R·S) → relu → flatten → Gemm (B stored (in, out), 2:4 along in) → MatMul (dense)."""
    w = {
        "wc": _two_of_four(16, 8 * 9).reshape(16, 8, 3, 3),
        "w1": _two_of_four(64, 16 * 36).T.copy(),  # Gemm's B is (K, N): (out, in) is its transpose
        "w2": RNG.laplace(size=(64, 32)).astype(np.float32),
        "dw": RNG.laplace(size=(16, 1, 3, 3)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "wc"], ["c"], name="conv", pads=[1] * 4),
        helper.make_node("Conv", ["c", "dw"], ["d"], name="depthwise", pads=[1] * 4, group=16),
        helper.make_node("Relu", ["d"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w1"], ["h"], name="fc1"),
        helper.make_node("MatMul", ["h", "w2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [32, 8, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(a, n) for n, a in w.items()])
    path = tmp_path / "net.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path, w


def test_weights_come_out_as_out_by_in(tmp_path):
    path, w = _model(tmp_path)
    got = load_weight_file(path, as_network(str(path)))
    np.testing.assert_array_equal(got["conv"], w["wc"].reshape(16, 72))
    np.testing.assert_array_equal(got["fc1"], w["w1"].T)
    np.testing.assert_array_equal(got["fc2"], w["w2"].T)
    np.testing.assert_array_equal(got["depthwise"], w["dw"].reshape(16, 9))  # 16 copies of one 9-tap filter


def _rel_error_2of4(w: np.ndarray) -> float:
    """‖W − keep-2-largest-of-4(W)‖F / ‖W‖F along the last axis, in float64."""
    g = w.astype(np.float64).reshape(w.shape[0], -1, 4)
    kept = np.take_along_axis(g, np.argsort(-np.abs(g), axis=-1)[..., :2], axis=-1)
    return float(np.sqrt(np.sum(g**2) - np.sum(kept**2)) / np.linalg.norm(g))


def test_tasder_prices_the_model_weights(tmp_path):
    from accelsim.codesign.tasder import search

    path, w = _model(tmp_path)
    net = as_network(str(path))
    res = search("tasd_ttc", net, max_error=1.0, weights=load_weight_file(path, net), series=["2:4"])
    opts = {l.name: {(o.weight, o.act): o.error for o in l.options} for l in res.layers}
    assert opts["conv"][("2:4", "dense")] == 0.0 and opts["fc1"][("2:4", "dense")] == 0.0
    np.testing.assert_allclose(opts["fc2"][("2:4", "dense")], _rel_error_2of4(w["w2"].T), rtol=1e-5)
    assert all(l.sources["w_source"] == "real" for l in res.layers)


def test_tasd_search_cli_with_onnx_weights(tmp_path, capsys, monkeypatch):
    """At error cap 0 only exact choices stay: the model's 2:4 layers go 2:4, the dense ones stay dense;
    without --weights (synthetic Laplace weights) every layer stays dense."""
    path, _ = _model(tmp_path)
    args = ("tasd", "search", "--arch", "tasd_ttc", "--workload", str(path), "--max-error", "0", "--format", "json")
    rc, out, err = run_in_process(capsys, monkeypatch, *args, "--weights", str(path))
    assert rc in (0, None), err
    layers = {l["name"]: l for l in json.loads(out)["layers"]}
    assert {n: l["weight"] for n, l in layers.items()} == {"conv": "2:4", "depthwise": "dense", "fc1": "2:4",
                                                            "fc2": "dense"}
    assert {l["w_source"] for l in layers.values()} == {"real"}
    rc, out, err = run_in_process(capsys, monkeypatch, *args)
    assert rc in (0, None), err
    assert {l["weight"] for l in json.loads(out)["layers"]} == {"dense"}


def test_onnx_weights_fit_only_their_model(tmp_path, capsys, monkeypatch):
    from conftest import assert_exit_2

    path, _ = _model(tmp_path)
    assert_exit_2(run_in_process(capsys, monkeypatch, "tasd", "search", "--arch", "tasd_ttc", "--workload", "minilm",
                                 "--weights", str(path), "--max-error", "0"),
                  "--weights", "net.onnx", "fits only --workload", "minilm")
