"""Workloads: conv lowering as SCALE-Sim does it, topology CSV variants, built-in networks, YAML."""

from __future__ import annotations

import pytest

from accelsim.errors import WorkloadError
from accelsim.model.workloads import bert_base, llama_8b_prefill, resnet50
from accelsim.model.workload import Conv, Gemm, KronMatmul, Sparsity
from accelsim.model.workloads import as_network, read_topology_csv
from kernels.nm import NMPattern


def test_conv_lowering_matches_definition():
    c = Conv("c", ifmap_h=230, ifmap_w=229, filt_h=7, filt_w=7, channels=3, num_filters=64, stride_h=2, stride_w=2)
    g = c.as_gemm()
    # SCALE-Sim rounds up: (230 - 7) / 2 = 111.5 -> 112 + 1 = 113 rows; (229 - 7) / 2 = 111 -> 112 cols.
    assert c.ofmap == (113, 112)
    assert (g.m, g.n, g.k) == (113 * 112, 64, 7 * 7 * 3)
    assert c.macs == 113 * 112 * 64 * 147


@pytest.mark.parametrize(
    "header,row",
    [
        ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,",
         "conv1, 10, 12, 3, 3, 4, 8, 1,"),
        ("layer,ifmap_height,ifmap_width,filter_height,filter_width,channels,num_filter,strides",
         "conv1,10,12,3,3,4,8,1"),
        ("Layer name,IFMAP Height,IFMAP Width,Filter Height,Filter Width,Channels,Num Filter,Strides,Sparsity,",
         "conv1,10,12,3,3,4,8,1,2:4,"),
    ],
)
def test_conv_csv_variants(tmp_path, header, row):
    p = tmp_path / "t.csv"
    p.write_text(f"{header}\n{row}\n\n")
    (layer,) = read_topology_csv(p).layers
    assert isinstance(layer, Conv)
    g = layer.as_gemm()
    assert (g.m, g.n, g.k) == (8 * 10, 8, 36)
    if "Sparsity" in header:
        assert layer.weight_sparsity == Sparsity("nm", pattern=NMPattern(2, 4), density=0.5)


def test_gemm_csv_and_strides(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("Layer, M, N, K,\nfc1, 12, 34, 56,\nfc2, 7, 8, 9,\n")
    net = read_topology_csv(p)
    assert [(l.m, l.n, l.k) for l in net.layers] == [(12, 34, 56), (7, 8, 9)]
    q = tmp_path / "s.csv"
    q.write_text("Layer,IFMAP Height,IFMAP Width,Filter Height,Filter Width,Channels,Num Filter,Strides\n"
                 "c,9,9,3,3,2,4,2\n")
    (c,) = read_topology_csv(q).layers
    assert c.ofmap == (4, 4)


def test_network_totals_match_published_macs():
    # Published: ResNet-50 ~4.1 GMACs at 224x224; BERT-base 11.2 GMACs at seq 128 (excl. embeddings).
    assert resnet50().layers and abs(sum(l.macs for l in resnet50().layers) / 4.1e9 - 1) < 0.01
    assert len(resnet50().layers) == 54
    bert = sum(l.macs for l in bert_base(128).layers)
    assert abs(bert / 11.17e9 - 1) < 0.01
    # Llama-3-8B: ~7.0e9 non-embedding weights multiply each of 2048 tokens (+ attention, LM head).
    llama = llama_8b_prefill(2048)
    weight_macs = sum(l.macs for l in llama.layers if l.static_weight and l.name != "lm_head")
    assert abs(weight_macs / (2048 * 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 4096 * 14336)) - 1) < 1e-12


def test_seq_len_param_and_unknown_param():
    assert as_network("bert_base", seq_len=64).layers[0].m == 64
    with pytest.raises(WorkloadError, match="seq_len2"):
        as_network("bert_base", seq_len2=3)


def test_conv_batch_lengthens_m():
    c = Conv("c", 10, 10, 3, 3, 4, 8, batch=5)
    assert c.as_gemm().m == 5 * 8 * 8 and c.macs == 5 * 8 * 8 * 8 * 36
    assert sum(l.macs for l in resnet50(batch=4).layers) == 4 * sum(l.macs for l in resnet50().layers)


def test_transformer_batch_lengthens_projections_not_attention():
    from accelsim.model.workloads import minilm

    for build in (lambda b: bert_base(128, batch=b), lambda b: minilm(128, batch=b)):
        one, four = build(1), build(4)
        assert sum(l.macs for l in four.layers) == 4 * sum(l.macs for l in one.layers)
        for a, b in zip(one.layers, four.layers):
            if a.static_weight:
                assert (b.m, b.count) == (4 * a.m, a.count)
            else:  # attention runs per sequence: same shape, four times as many
                assert (b.m, b.n, b.k, b.count) == (a.m, a.n, a.k, 4 * a.count)


def test_kron_steps_flops():
    k = KronMatmul("k", 16, ((2, 3), (4, 5), (3, 2)))
    # FastKron's count: start k = prod P; for each factor from the last: k <- (k/P)*Q, add k*P.
    kk, total = 2 * 4 * 3, 0
    for p, q in reversed(k.factors):
        kk = kk // p * q
        total += kk * p
    assert k.macs == 16 * total


def test_yaml_workload(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text("workload:\n  name: w\n  layers:\n    - {type: gemm, name: a, m: 8, n: 8, k: 8, weight_sparsity: '2:4'}\n"
                 "    - {type: conv, name: b, ifmap_h: 5, ifmap_w: 5, filt_h: 3, filt_w: 3, channels: 2, num_filters: 4}\n"
                 "  edges: [[a, b]]\n")
    net = as_network(str(p))
    assert [l.name for l in net.layers] == ["a", "b"]
    assert net.layers[0].weight_sparsity.pattern == NMPattern(2, 4)


def test_yaml_workload_unquoted_nm(tmp_path):
    """YAML 1.1 reads an unquoted ``2:4`` as the base-60 integer 124; workload files use the arch
    configs' loader, which keeps it the N:M pattern it says."""
    p = tmp_path / "w.yaml"
    p.write_text("workload:\n  layers:\n    - {type: gemm, m: 8, n: 8, k: 8, weight_sparsity: 2:4}\n"
                 "    - type: gemm\n      m: 4\n      n: 4\n      k: 4\n      input_sparsity: 1:4\n")
    a, b = as_network(str(p)).layers
    assert a.weight_sparsity.pattern == NMPattern(2, 4) and a.weight_sparsity.density == 0.5
    assert b.input_sparsity.pattern == NMPattern(1, 4) and b.input_sparsity.density == 0.25


def test_sparsity_parse():
    assert Sparsity.parse("dense").kind == "dense"
    assert Sparsity.parse("4:4").kind == "dense"
    assert Sparsity.parse("u0.3").density == pytest.approx(0.3)
    t = Sparsity.parse("tasd:2:4+1:4")
    assert t.series == (NMPattern(2, 4), NMPattern(1, 4)) and t.density == pytest.approx(0.75)
    for bad in ("u1.5", "u0", "6:4", "tasd:", "x"):
        with pytest.raises(WorkloadError):
            Sparsity.parse(bad)


def test_gemm_rejects_nonpositive():
    with pytest.raises(WorkloadError, match="field m"):
        Gemm("g", 0, 1, 1)
