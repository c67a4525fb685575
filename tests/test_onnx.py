"""ONNX models in (accelsim.model.onnx_in): small models built with onnx.helper, layer shapes and MACs
against the closed forms of convolution and matrix products, the graph, --param, bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import ROOT, assert_exit_2, run_in_process

import onnx  # the [onnx] extra, in the test extra: CI runs these
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from accelsim.errors import WorkloadError  # noqa: E402
from accelsim.model.workload import Conv, Gemm  # noqa: E402
from accelsim.model.workloads import as_network  # noqa: E402

RNG = np.random.default_rng(7)


def _save(tmp_path, nodes, inputs, outputs, inits=(), name="m", opset=17):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _init(name, shape, values=None):
    arr = RNG.laplace(size=shape).astype(np.float32) if values is None else values.astype(np.float32)
    return numpy_helper.from_array(arr, name)


def _out_size(h, r, s, d, pb, pe):
    """The framework's output length: ⌊(H + pads − d·(R − 1) − 1) / s⌋ + 1."""
    return (h + pb + pe - d * (r - 1) - 1) // s + 1


# (batch, C, H, W, K, R, S, stride, dilation, pads (top, left, bottom, right), group)
CONVS = {
    "padded": (1, 3, 8, 8, 4, 3, 3, 1, 1, (1, 1, 1, 1), 1),
    "strided": (2, 3, 9, 9, 5, 3, 3, 2, 1, (0, 0, 0, 0), 1),
    "strided uneven": (1, 4, 10, 7, 6, 3, 2, 2, 1, (1, 0, 1, 1), 1),
    "dilated": (1, 3, 16, 16, 4, 3, 3, 1, 2, (2, 2, 2, 2), 1),
    "dilated strided": (1, 2, 17, 15, 3, 3, 3, 2, 3, (1, 1, 2, 0), 1),
    "grouped": (1, 8, 6, 6, 12, 3, 3, 1, 1, (1, 1, 1, 1), 4),
    "depthwise": (2, 6, 12, 12, 6, 3, 3, 2, 1, (1, 1, 1, 1), 6),
    "depthwise x2": (1, 4, 7, 7, 8, 5, 5, 1, 1, (2, 2, 2, 2), 4),
}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_shapes_and_macs(tmp_path, case):
    b, c, h, w, k, r, s, st, d, pads, g = CONVS[case]
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[st, st], dilations=[d, d],
                            pads=list(pads), group=g)
    path = _save(tmp_path, [node], [_vi("x", [b, c, h, w])], [_vi("y", None)], [_init("w", (k, c // g, r, s))])
    (layer,) = as_network(str(path)).layers
    e, f = _out_size(h, r, st, d, pads[0], pads[2]), _out_size(w, s, st, d, pads[1], pads[3])
    gm = layer.as_gemm()
    assert isinstance(layer, Conv) and layer.name == "conv"
    assert (gm.m, gm.n, gm.k, gm.count) == (b * e * f, k // g, (c // g) * r * s, g)
    assert layer.macs == b * k * e * f * (c // g) * r * s
    # the ifmap fed to SCALE-Sim's rounding gives the framework's output size
    assert layer.ofmap == (e, f)
    if d == 1:  # undilated: the ifmap is the padded input, less the rows the output never reads
        assert h + pads[0] + pads[2] - st < layer.ifmap_h <= h + pads[0] + pads[2]


def test_conv_output_shape_matches_onnx_reference_run(tmp_path):
    """The closed form above against an actual run of the model (onnx's reference evaluator)."""
    from onnx.reference import ReferenceEvaluator

    b, c, h, w, k, r, s, st, d, pads, g = CONVS["dilated strided"]
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[st, st], dilations=[d, d], pads=list(pads))
    path = _save(tmp_path, [node], [_vi("x", [b, c, h, w])], [_vi("y", None)], [_init("w", (k, c, r, s))])
    (y,) = ReferenceEvaluator(str(path)).run(None, {"x": RNG.standard_normal((b, c, h, w)).astype(np.float32)})
    (layer,) = as_network(str(path)).layers
    assert y.shape == (b, k, *layer.ofmap)


def test_conv_auto_pad_same(tmp_path):
    """SAME_UPPER: E = ⌈H / stride⌉ whatever the kernel."""
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="same", strides=[2, 3], auto_pad="SAME_UPPER")
    path = _save(tmp_path, [node], [_vi("x", [1, 3, 11, 13])], [_vi("y", None)], [_init("w", (4, 3, 4, 3))])
    (layer,) = as_network(str(path)).layers
    assert layer.ofmap == (6, 5) and layer.macs == 6 * 5 * 4 * 3 * 4 * 3


def test_quantized_ops_lower_as_float_ones_in_int8(tmp_path):
    scale, zp = numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")
    wq = numpy_helper.from_array(RNG.integers(-8, 8, size=(6, 2, 3, 3)).astype(np.int8), "wq")
    bq = numpy_helper.from_array(RNG.integers(-8, 8, size=(20, 5)).astype(np.int8), "bq")
    nodes = [helper.make_node("QLinearConv", ["x", "s", "z", "wq", "s", "z", "s", "z"], ["y"], name="qconv",
                              pads=[1] * 4, group=2),
             helper.make_node("MatMulInteger", ["a", "bq"], ["c"], name="qmm")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4, 5, 5]),
              helper.make_tensor_value_info("a", TensorProto.INT8, [3, 7, 20])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.INT8, None), helper.make_tensor_value_info("c", TensorProto.INT32, None)]
    path = _save(tmp_path, nodes, inputs, outputs, [scale, zp, wq, bq], opset=13)
    qconv, qmm = as_network(str(path)).layers
    assert qconv.dtype == qmm.dtype == "int8"
    assert (qconv.count, qconv.channels, qconv.num_filters, qconv.macs) == (2, 2, 3, 5 * 5 * 6 * 2 * 9)
    assert (qmm.m, qmm.n, qmm.k, qmm.static_weight) == (21, 5, 20, True)


def test_matmul_with_vectors(tmp_path):
    """numpy's rules: a 1-D left operand is one row, a 1-D right operand one column."""
    nodes = [helper.make_node("MatMul", ["v", "w"], ["r"], name="row"),
             helper.make_node("MatMul", ["x", "u"], ["col"], name="col")]
    path = _save(tmp_path, nodes, [_vi("v", [12]), _vi("x", [2, 5, 12])], [_vi("r", None), _vi("col", None)],
                 [_init("w", (12, 7)), _init("u", (12,))])
    row, col = as_network(str(path)).layers
    assert (row.m, row.n, row.k) == (1, 7, 12)
    assert (col.m, col.n, col.k, col.macs) == (10, 1, 12, 2 * 5 * 12)


def test_conv1d_and_conv3d(tmp_path):
    n1 = helper.make_node("Conv", ["x", "w1"], ["y1"], name="c1d", strides=[2], pads=[2, 2])
    n3 = helper.make_node("Conv", ["v", "w3"], ["y3"], name="c3d", pads=[1] * 6)
    path = _save(tmp_path, [n1, n3], [_vi("x", [1, 4, 20]), _vi("v", [2, 3, 5, 6, 7])], [_vi("y1", None), _vi("y3", None)],
                 [_init("w1", (6, 4, 5)), _init("w3", (8, 3, 3, 3, 3))])
    c1, c3 = as_network(str(path)).layers
    l1 = (20 + 4 - 5) // 2 + 1
    assert c1.macs == 6 * l1 * 4 * 5 and c1.as_gemm().m == l1
    assert isinstance(c3, Gemm) and (c3.m, c3.n, c3.k) == (2 * 5 * 6 * 7, 8, 3 * 27)


def test_gemm_transposes(tmp_path):
    n1 = helper.make_node("Gemm", ["x", "w1", "b1"], ["y1"], name="fc1", transB=1)
    n2 = helper.make_node("Gemm", ["y1", "w2"], ["y2"], name="fc2")
    n3 = helper.make_node("Gemm", ["xt", "w3"], ["y3"], name="fc3", transA=1)
    path = _save(tmp_path, [n1, n2, n3], [_vi("x", [5, 32]), _vi("xt", [16, 3])], [_vi("y2", None), _vi("y3", None)],
                 [_init("w1", (24, 32)), _init("b1", (24,)), _init("w2", (24, 10)), _init("w3", (16, 7))])
    fc1, fc2, fc3 = as_network(str(path)).layers
    assert (fc1.m, fc1.n, fc1.k, fc1.macs) == (5, 24, 32, 5 * 24 * 32)
    assert (fc2.m, fc2.n, fc2.k) == (5, 10, 24)
    assert (fc3.m, fc3.n, fc3.k) == (3, 7, 16)
    assert all(l.static_weight for l in (fc1, fc2, fc3))


def test_matmul_batched_attention_and_linear(tmp_path):
    """Q·Kᵀ and A·V per (batch, head): count = batch·heads, no static weight; a Linear on (B, S, H) folds B·S into M."""
    nodes = [
        helper.make_node("MatMul", ["h", "wq"], ["q"], name="proj"),
        helper.make_node("Reshape", ["q", "shape"], ["q4"], name="split"),
        helper.make_node("Transpose", ["q4"], ["qt"], name="heads", perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["qt"], ["kt"], name="kT", perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["qt", "kt"], ["s"], name="qk"),
        helper.make_node("Softmax", ["s"], ["p"], name="softmax"),
        helper.make_node("MatMul", ["p", "qt"], ["o"], name="av"),
        helper.make_node("MatMul", ["wl", "o"], ["z"], name="left"),
    ]
    bsz, seq, heads, hd = 2, 10, 4, 8
    shape = numpy_helper.from_array(np.array([bsz, seq, heads, hd], dtype=np.int64), "shape")
    path = _save(tmp_path, nodes, [_vi("h", [bsz, seq, heads * hd])], [_vi("z", None)],
                 [_init("wq", (heads * hd, heads * hd)), shape, _init("wl", (6, seq))])
    net = as_network(str(path))
    proj, qk, av, left = net.layers
    assert (proj.m, proj.n, proj.k, proj.count, proj.static_weight) == (bsz * seq, heads * hd, heads * hd, 1, True)
    assert (qk.m, qk.n, qk.k, qk.count, qk.static_weight) == (seq, seq, hd, bsz * heads, False)
    assert (av.m, av.n, av.k, av.count, av.static_weight) == (seq, hd, seq, bsz * heads, False)
    assert qk.macs == bsz * heads * seq * seq * hd
    # W (6, seq) · O (b, h, seq, hd): a weight on the left, shared by every (batch, head): MACs 6·seq·hd per pair
    assert left.macs == bsz * heads * 6 * seq * hd and left.static_weight and left.n == 6
    assert net.graph.graph["not_modelled"] == {"Reshape": 1, "Softmax": 1, "Transpose": 2}
    assert set(net.graph.edges) == {("proj", "qk"), ("proj", "av"), ("qk", "av"), ("av", "left")}


def test_graph_keeps_node_names_and_counts_other_ops(tmp_path):
    """A residual block: conv → relu → conv, + skip, → pool → fc; edges pass through the data-movement ops."""
    c = 4
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="/block/conv1", pads=[1] * 4),
        helper.make_node("Relu", ["a"], ["ar"], name="/block/relu"),
        helper.make_node("Conv", ["ar", "w2"], ["b"], name="/block/conv2", pads=[1] * 4),
        helper.make_node("Add", ["b", "a"], ["s"], name="/block/add"),
        helper.make_node("Relu", ["s"], ["sr"], name="/block/relu2"),
        helper.make_node("GlobalAveragePool", ["sr"], ["p"], name="/pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="/flatten"),
        helper.make_node("Gemm", ["f", "wf"], ["y"], name="/fc", transB=1),
    ]
    path = _save(tmp_path, nodes, [_vi("x", [1, 3, 8, 8])], [_vi("y", None)],
                 [_init("w1", (c, 3, 3, 3)), _init("w2", (c, c, 3, 3)), _init("wf", (10, c))], name="resblock")
    net = as_network(str(path))
    assert net.name == "resblock"
    assert [l.name for l in net.layers] == ["/block/conv1", "/block/conv2", "/fc"]
    assert set(net.graph.edges) == {("/block/conv1", "/block/conv2"), ("/block/conv1", "/fc"), ("/block/conv2", "/fc")}
    assert net.graph.graph["not_modelled"] == {"Add": 1, "Flatten": 1, "GlobalAveragePool": 1, "Relu": 2}
    assert net.graph.nodes["/block/conv1"]["onnx"]["pads"] == [1, 1, 1, 1]
    assert sum(l.macs for l in net.layers) == 8 * 8 * c * 3 * 9 + 8 * 8 * c * c * 9 + 10 * c


def _symbolic(tmp_path):
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1] * 4)
    return _save(tmp_path, [node], [_vi("x", ["batch", 3, "size", "size"])], [_vi("y", ["batch", 4, "size", "size"])],
                 [_init("w", (4, 3, 3, 3))])


def test_param_sets_symbolic_dims(tmp_path):
    path = _symbolic(tmp_path)
    (layer,) = as_network(str(path), batch=3, size=20).layers
    assert layer.batch == 3 and layer.ofmap == (20, 20) and layer.macs == 3 * 20 * 20 * 4 * 27
    with pytest.raises(WorkloadError, match=r"dimension 0 is symbolic \('batch'\).*--param batch=N"):
        as_network(str(path), size=20)
    with pytest.raises(WorkloadError, match=r"--param seq_len: the model has no symbolic dimension 'seq_len' \(batch, size\)"):
        as_network(str(path), batch=1, size=20, seq_len=4)


def test_missing_extra_is_one_line(tmp_path, monkeypatch):
    path = _symbolic(tmp_path)
    monkeypatch.setitem(sys.modules, "onnx", None)  # what `import onnx` sees without the extra
    with pytest.raises(WorkloadError, match=r"needs the onnx package: pip install 'accelsim\[onnx\]'"):
        as_network(str(path))


def test_bad_input_exits_2(tmp_path, capsys, monkeypatch):
    sim = ("simulate", "--arch", "systolic_ws_32x32", "--workload")
    text = tmp_path / "notes.onnx"
    text.write_text("layer,m,n,k\nfc,1,2,3\n")
    assert_exit_2(run_in_process(capsys, monkeypatch, *sim, str(text)), "notes.onnx", "not an ONNX model")
    good = _symbolic(tmp_path)
    garbled = tmp_path / "garbled.onnx"  # the node name "conv" no longer UTF-8: protobuf gives bytes
    garbled.write_bytes(good.read_bytes().replace(b"\x1a\x04conv", b"\x1a\x04\xffonv"))
    assert_exit_2(run_in_process(capsys, monkeypatch, *sim, str(garbled)), "garbled.onnx", "not UTF-8")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[:-40])
    assert_exit_2(run_in_process(capsys, monkeypatch, *sim, str(cut)), "cut.onnx", "not an ONNX model")
    assert_exit_2(run_in_process(capsys, monkeypatch, *sim, str(good), "--param", "size=8"),
                  "m.onnx", "'x'", "'batch'", "--param batch=N")
    assert_exit_2(run_in_process(capsys, monkeypatch, *sim, str(good), "--param", "batch=0", "--param", "size=8"),
                  "batch", "0")
    # a MatMul fed by an op of an unknown domain: its input shape cannot be inferred
    nodes = [helper.make_node("Mystery", ["x"], ["h"], name="custom", domain="com.example"),
             helper.make_node("MatMul", ["h", "w"], ["y"], name="mm")]
    graph = helper.make_graph(nodes, "g", [_vi("x", [4, 8])], [_vi("y", None)], [_init("w", (8, 5))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    odd = tmp_path / "odd.onnx"
    onnx.save(model, str(odd))
    assert_exit_2(run_in_process(capsys, monkeypatch, *sim, str(odd)), "odd.onnx", "'mm'", "MatMul", "'h'", "unknown")
    # inconsistent shapes: the weight has 5 input channels, the input 3
    bad = _save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [_vi("x", [1, 3, 8, 8])],
                [_vi("y", None)], [_init("w", (4, 5, 3, 3))], name="bad")
    assert_exit_2(run_in_process(capsys, monkeypatch, *sim, str(bad)), "bad.onnx", "'conv'", "[4, 5, 3, 3]",
                  "do not fit a Conv")
    # a MatMul whose operands do not multiply: shape inference refuses it
    bad = _save(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [_vi("x", [4, 8])],
                [_vi("y", None)], [_init("w", (7, 5))], name="bad2")
    assert_exit_2(run_in_process(capsys, monkeypatch, *sim, str(bad)), "bad2.onnx", "shape inference failed")


def test_shape_only_file_loads(tmp_path):
    """Weights saved as external data that is then missing (the file ZigZag ships): the graph still loads."""
    path = _symbolic(tmp_path)
    model = onnx.load(str(path))
    onnx.save(model, str(path), save_as_external_data=True, location="m.data", size_threshold=0)
    (tmp_path / "m.data").unlink()
    (layer,) = as_network(str(path), batch=1, size=8).layers
    assert layer.macs == 8 * 8 * 4 * 27
    from accelsim.codesign.sources import load_weight_file

    with pytest.raises(WorkloadError, match="holds no layer's weights"):
        load_weight_file(path, as_network(str(path), batch=1, size=8))


def test_simulate_json_follows_node_names(tmp_path, capsys, monkeypatch):
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="stem", strides=[2, 2], pads=[1] * 4),
             helper.make_node("Relu", ["a"], ["r"], name="act"),
             helper.make_node("Conv", ["r", "dw"], ["y"], name="depthwise", pads=[1] * 4, group=8)]
    path = _save(tmp_path, nodes, [_vi("x", [1, 3, 16, 16])], [_vi("y", None)],
                 [_init("w", (8, 3, 3, 3)), _init("dw", (8, 1, 3, 3))], name="tiny")
    rc, out, err = run_in_process(capsys, monkeypatch, "simulate", "--arch", "systolic_ws_32x32", "--workload",
                                  str(path), "--format", "json")
    assert rc in (0, None), err
    doc = json.loads(out)
    assert [l["name"] for l in doc["layers"]] == ["stem", "depthwise"]
    assert [l["macs"] for l in doc["layers"]] == [8 * 8 * 8 * 27, 8 * 8 * 8 * 9]
    assert doc["not_modelled"] == {"Relu": 1}
    rc, out, _ = run_in_process(capsys, monkeypatch, "simulate", "--arch", "systolic_ws_32x32", "--workload", str(path))
    assert "not modelled (no MACs): Relu 1" in " ".join(out.split())


EXAMPLE = ROOT / "examples" / "model.onnx"


def test_example_model():
    """The README's examples/model.onnx: its layers' MACs by the closed forms."""
    net = as_network(str(EXAMPLE), batch=8)
    assert [l.macs for l in net.layers] == [8 * 32 * 32 * 32 * 27, 8 * 32 * 32 * 32 * 9, 8 * 32 * 32 * 64 * 32,
                                            8 * 10 * 64]


def test_compare_and_sweep_take_onnx(capsys, monkeypatch):
    rc, out, err = run_in_process(capsys, monkeypatch, "compare", "--arch", "systolic_ws_32x32", "--arch",
                                  "systolic_os_32x32", "--workload", str(EXAMPLE), "--param", "batch=2", "--format", "json")
    assert rc in (0, None), err
    assert [l["name"] for l in json.loads(out)["layers"]] == ["stem", "depthwise", "pointwise", "classifier"]
    rc, out, err = run_in_process(capsys, monkeypatch, "sweep", "--arch", "systolic_ws_32x32", "--grid",
                                  "compute.rows=16,32", "--workload", str(EXAMPLE), "--param", "batch=2", "--no-dask",
                                  "--format", "json")
    assert rc in (0, None), err
    assert json.loads(out)["computed"] == 2
    assert_exit_2(run_in_process(capsys, monkeypatch, "sweep", "--arch", "systolic_ws_32x32", "--grid",
                                 "compute.rows=16,32", "--workload", str(EXAMPLE), "--no-dask"), "--param batch=N")


def test_symbolic_seq_len_through_shape_ops(tmp_path):
    """As exporters write attention: the head split's target shape computed from Shape(x) at run time;
    with --param the inferred shapes are concrete and the score GEMM has seq_len² per head."""
    hidden, heads = 32, 4
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)  # noqa: E731
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="query"),
        helper.make_node("Shape", ["x"], ["xs"], name="shape"),
        helper.make_node("Gather", ["xs", "i0"], ["b"], name="take_batch", axis=0),
        helper.make_node("Gather", ["xs", "i1"], ["s"], name="take_seq", axis=0),
        helper.make_node("Concat", ["b", "s", "nh", "hd"], ["target"], name="target", axis=0),
        helper.make_node("Reshape", ["q", "target"], ["q4"], name="split"),
        helper.make_node("Transpose", ["q4"], ["qh"], name="heads", perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["q4"], ["kh"], name="keys", perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["qh", "kh"], ["scores"], name="scores"),
    ]
    path = _save(tmp_path, nodes, [_vi("x", ["batch", "seq_len", hidden])], [_vi("scores", None)],
                 [_init("wq", (hidden, hidden)), i64("i0", [0]), i64("i1", [1]), i64("nh", [heads]),
                  i64("hd", [hidden // heads])])
    query, scores = as_network(str(path), batch=3, seq_len=10).layers
    assert (query.m, query.n, query.k) == (30, hidden, hidden)
    assert (scores.m, scores.n, scores.k, scores.count, scores.static_weight) == (10, 10, hidden // heads, 3 * heads,
                                                                                   False)
