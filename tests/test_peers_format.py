"""bench/peers' pure-Python parts (no peer installed): accelsim mapping JSON -> ZigZag / AccelForge mappings,
the layer export and the per-layer merge. The references are the hand-written peer mappings of accelsim's
fixed mapping in shared/peers (copied here as literals) and closed-form sums."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import ROOT, load_script

fb = load_script("bench/peers/feedback.py")
EXAMPLES = ROOT / "bench" / "peers" / "examples"


def _example(name: str) -> dict:
    return fb.parse(json.loads((EXAMPLES / name).read_text()))


def _nodes(text: str) -> list[str]:
    return [ln.strip()[2:] for ln in text.splitlines() if ln.strip().startswith("- !")]


def test_fixed_mappings_give_the_shared_zigzag_orderings():
    # shared/peers/zigzag/mapping_ws_fixed.yaml, written by hand for accelsim's fixed SCALE-Sim WS order.
    assert fb.zigzag_temporal(_example("gemm_512x768x768_fixed.json")) == [["B", 512], ["C", 24], ["K", 24]]
    assert fb.zigzag_temporal(_example("conv3x3_56x56_64_fixed.json")) == [
        ["OX", 56], ["OY", 56], ["C", 2], ["FX", 3], ["FY", 3], ["K", 2]]


def test_fixed_conv_gives_the_shared_accelforge_loop_tree():
    text, order = fb.accelforge_looptree(_example("conv3x3_56x56_64_fixed.json"))
    # shared/peers/accelforge/conv_fixed.mapping.yaml: same loops and streaming split, T1/I1 kept per output row.
    # Only W1 differs: its whole filter (36 KiB) fits SRAM_W, so it goes to the top, hence the order W, O, I.
    shared = ["!Storage {tensors: [T1, W1, I1], component: DRAM}",
              "!Temporal {rank_variable: m1, tile_shape: 32}", "!Temporal {rank_variable: r1, tile_shape: 1}",
              "!Temporal {rank_variable: s1, tile_shape: 1}", "!Temporal {rank_variable: c1, tile_shape: 32}",
              "!Storage {tensors: [W1], component: SRAM_W}", "!Temporal {rank_variable: p1, tile_shape: 1}",
              "!Storage {tensors: [T1], component: SRAM_O}", "!Storage {tensors: [I1], component: SRAM_I}",
              "!Spatial {rank_variable: c1, tile_shape: 1, component: PE, name: rows}",
              "!Spatial {rank_variable: m1, tile_shape: 1, component: PE, name: cols}",
              "!Storage {tensors: [W1], component: Register}", "!Temporal {rank_variable: q1, tile_shape: 1}",
              "!Compute {einsum: T1, component: MAC}"]
    got = _nodes(text)
    w1 = "!Storage {tensors: [W1], component: SRAM_W}"
    assert [n for n in got if n != w1] == [n for n in shared if n != w1]
    assert got.index(w1) == 1 and order == "WOI"


def test_searched_gemm_keeps_each_operand_under_its_last_dram_loop():
    text, order = fb.accelforge_looptree(_example("gemm_512x768x768_tiled.json"))
    # DRAM loops n, m, k: Z (m x n) stays on chip across the innermost k loop (accelsim refetches a tile only
    # when a loop it does not depend on sits outside one it does), A and B live under k.
    assert _nodes(text)[1:9] == [
        "!Temporal {rank_variable: n, tile_shape: 256}", "!Temporal {rank_variable: m, tile_shape: 256}",
        "!Storage {tensors: [Z], component: SRAM_O}", "!Temporal {rank_variable: k, tile_shape: 256}",
        "!Storage {tensors: [B], component: SRAM_W}", "!Storage {tensors: [A], component: SRAM_I}",
        "!Temporal {rank_variable: n, tile_shape: 32}", "!Temporal {rank_variable: k, tile_shape: 32}"]
    assert order == "OWI"
    assert fb.zigzag_temporal(_example("gemm_512x768x768_tiled.json")) == [
        ["B", 256], ["C", 8], ["K", 8], ["C", 3], ["B", 2], ["K", 3]]


def test_searched_conv_input_stays_across_the_kout_loop():
    text, order = fb.accelforge_looptree(_example("conv3x3_56x56_64_tiled.json"))
    got = _nodes(text)
    # DRAM loops oy 4 (tile 14), kout 2: the input tile (16 x 58 x 64 = 59,392 B) does not depend on kout.
    assert got[1:5] == ["!Temporal {rank_variable: p1, tile_shape: 14}", "!Storage {tensors: [I1], component: SRAM_I}",
                        "!Temporal {rank_variable: m1, tile_shape: 32}", "!Storage {tensors: [T1], component: SRAM_O}"]
    assert order == "IOW"


def _gemm(m, n, k, dram, sram, stream):
    return {"problem": {"kind": "gemm", "dims": {"m": m, "n": n, "k": k}},
            "nest": [{"level": "dram", "loops": dram}, {"level": "sram", "loops": sram},
                     {"level": "array", "spatial": [["k", 32], ["n", 32]], "loops": [["m", stream]]}]}


@pytest.mark.parametrize("m,n,k,dm,dn,dk", [(512, 768, 768, 2, 3, 3), (128, 3072, 768, 1, 12, 2),
                                             (384, 256, 640, 3, 2, 5), (64, 64, 64, 1, 1, 1)])
def test_loop_counts_multiply_back_to_the_dims(m, n, k, dm, dn, dk):
    tm, tn, tk = m // dm, n // dn, k // dk
    mp = fb.parse(_gemm(m, n, k, [["m", dm], ["n", dn], ["k", dk]], [["n", tn // 32], ["k", tk // 32]], tm))
    zz = fb.zigzag_temporal(mp)
    assert math.prod(c for d, c in zz if d == "B") == m
    assert math.prod(c for d, c in zz if d == "K") * 32 == n and math.prod(c for d, c in zz if d == "C") * 32 == k
    text, _ = fb.accelforge_looptree(mp)
    sizes = {"m": m, "n": n, "k": k}
    for node in _nodes(text):               # each rank's tiles shrink by whole factors down to 1
        if node.startswith(("!Temporal", "!Spatial")):
            rank = node.split("rank_variable: ")[1].split(",")[0]
            tile = int(node.split("tile_shape: ")[1].split(",")[0].rstrip("}"))
            assert sizes[rank] % tile == 0
            sizes[rank] = tile
    assert sizes == {"m": 1, "n": 1, "k": 1}


def test_ragged_tiles_are_refused_by_zigzag_only():
    mp = fb.parse(_gemm(500, 768, 768, [["m", 2]], [["n", 24], ["k", 24]], 250))
    with pytest.raises(fb.FeedbackError, match="dims.m: 500"):
        fb.zigzag_temporal(fb.parse(_gemm(500, 768, 768, [["m", 3]], [["n", 24], ["k", 24]], 167)))
    assert fb.zigzag_temporal(mp)[0] == ["B", 250]
    text, _ = fb.accelforge_looptree(fb.parse(_gemm(500, 768, 768, [["m", 3]], [["n", 24], ["k", 24]], 167)))
    assert "!Temporal {rank_variable: m, tile_shape: 167}" in text


@pytest.mark.parametrize("field,value,needle", [
    ("spatial", [["k", 16], ["n", 32]], "nest[2].spatial"),
    ("dram", [["q", 2]], "nest[0].loops[0]"),
    ("stream", [["m", 100]], "nest[2].loops: streams 100"),
])
def test_bad_mapping_is_one_line_and_exit_2(tmp_path, field, value, needle):
    doc = _gemm(512, 768, 768, [], [["n", 24], ["k", 24]], 512)
    if field == "spatial":
        doc["nest"][2]["spatial"] = value
    elif field == "dram":
        doc["nest"][0]["loops"] = value
    else:
        doc["nest"][2]["loops"] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "x", "mapping": doc}))
    r = subprocess.run([sys.executable, str(ROOT / "bench/peers/feedback.py"), str(path), "--envs", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr and str(path) in r.stderr


def test_layer_export_matches_accelsim_networks():
    from accelsim.model.workloads import bert_base, resnet50
    exp = load_script("bench/peers/export_layers.py")
    committed = json.loads((ROOT / "bench/peers/layers.json").read_text())
    assert committed == {"resnet50": exp.export(resnet50()), "bert_base": exp.export(bert_base())}
    for net, build in (("resnet50", resnet50), ("bert_base", bert_base)):
        spec = committed[net]
        shapes = {s["id"]: s["problem"]["dims"] for s in spec["shapes"]}
        macs = sum(math.prod(shapes[lay["shape"]].values()) * lay["count"] for lay in spec["layers"])
        net_layers = build().layers
        assert macs == sum(lay.macs for lay in net_layers) and len(spec["layers"]) == len(net_layers)


def test_merge_scales_counts_and_reuses_shapes():
    mg = load_script("bench/peers/merge.py")
    layers = {"toy": {"network": "toy", "shapes": [{"id": "s0", "problem": {}}, {"id": "s1", "problem": {}}],
                      "layers": [{"name": "a", "shape": "s0", "count": 1}, {"name": "b", "shape": "s0", "count": 1},
                                 {"name": "h", "shape": "s1", "count": 12}]}}
    rec = lambda c, e, w: {"cycles": c, "energy_pj": e, "edp": c * e, "search_wall_s": w}  # noqa: E731
    runs = {"zigzag_loma6": {"peer": "zigzag", "shapes": {"toy/s0": rec(100.0, 5.0, 2.0), "toy/s1": rec(10.0, 3.0, 1.0)}},
            "accelforge": {"peer": "accelforge", "shapes": {"toy/s0/OWI": rec(90.0, 6.0, 1.0),
                                                            "toy/s0/WOI": rec(80.0, 6.0, 2.0),
                                                            "toy/s1/OWI": {"error": "boom"}}}}
    out = mg.merge(layers, runs)["toy"]
    zz, af = out["totals"]["zigzag_loma6"], out["totals"]["accelforge"]
    assert (zz["cycles"], zz["energy_pj"], zz["search_wall_s"]) == (100 + 100 + 12 * 10, 5 + 5 + 12 * 3, 3.0)
    assert zz["sum_layer_edp"] == 500 + 500 + 144 * 30 and zz["network_edp"] == 320 * 46
    assert (af["cycles"], af["layers_done"], af["layers_missing"], af["search_wall_s"]) == (160, 2, 1, 3.0)
    bp = out["totals"]["best_per_layer"]
    assert (bp["cycles"], bp["energy_pj"], bp["by"]) == (80 + 80 + 120, 6 + 6 + 36, {"zigzag_loma6": 1, "accelforge": 2})
    a, b, h = out["layers"]
    assert a["accelforge"]["sram_order"] == "WOI" and b["reuses"] == "a" and "reuses" not in a
    assert a["best"]["by"] == "accelforge" and h["best"] == {"by": "zigzag_loma6", "edp": 144 * 30,
                                                             "cycles": 120.0, "energy_pj": 36.0}


def test_flattened_pixel_tiles_become_row_tiles_or_are_refused():
    dims = {"b": 1, "oy": 56, "ox": 56, "c": 64, "kout": 64, "fy": 3, "fx": 3}

    def conv(count, stream):
        return {"problem": {"kind": "conv", "dims": dims, "stride": [1, 1]},
                "nest": [{"level": "dram", "loops": [["pixels", count]]},
                         {"level": "sram", "loops": [["kout", 2], ["fy", 3], ["fx", 3], ["c", 2]]},
                         {"level": "array", "spatial": [["k", 32], ["n", 32]], "loops": [["m", stream]]}]}
    # 4 tiles of 784 pixels = 14 whole rows of 56: the same as an oy loop of 4.
    assert fb.zigzag_temporal(fb.parse(conv(4, 784)))[-1] == ["OY", 4]
    with pytest.raises(fb.FeedbackError, match=r'\["pixels", 17\] gives tiles of 185 pixels'):
        fb.parse(conv(17, 185))


def test_peer_workloads_match_the_shared_layer_files():
    zz, af = load_script("bench/peers/zz_peer.py"), load_script("bench/peers/af_peer.py")
    conv = {"kind": "conv", "dims": {"b": 1, "oy": 56, "ox": 56, "c": 64, "kout": 64, "fy": 3, "fx": 3}, "stride": [1, 1]}
    # shared/peers/zigzag/conv.yaml and shared/peers/accelforge/conv.workload.yaml (hand-written)
    (layer,) = zz.workload(conv, "res2_conv3x3")
    assert layer["loop_dims"] == ["B", "K", "C", "OY", "OX", "FY", "FX"]
    assert layer["loop_sizes"] == [1, 64, 64, 56, 56, 3, 3]
    assert layer["dimension_relations"] == ["ix=1*ox+1*fx", "iy=1*oy+1*fy"]
    text = af.workload_yaml(conv)
    assert '"T1[p1, q1, n, m1] = I1[n, c1, H: p1 + r1, W: q1 + s1] * W1[r1, s1, c1, m1]"' in text
    assert all(f"0 <= {r} < {s}" in text for r, s in (("p1", 56), ("q1", 56), ("c1", 64), ("m1", 64), ("r1", 3)))
    # A strided 1x1 conv (ResNet's projection) as the example resnet50 workload shipped with AccelForge writes it.
    proj = {"kind": "conv", "dims": {"b": 1, "oy": 28, "ox": 28, "c": 256, "kout": 512, "fy": 1, "fx": 1}, "stride": [2, 2]}
    assert "I1[n, c1, H: p1 * 2, W: q1 * 2] * W1[c1, m1]" in af.workload_yaml(proj)
    assert zz.workload(proj)[0]["dimension_relations"] == ["ix=2*ox+1*fx", "iy=2*oy+1*fy"]
    gemm = af.workload_yaml({"kind": "gemm", "dims": {"m": 512, "n": 768, "k": 768}})
    assert '"Z[m, n] = A[m, k] * B[k, n]"' in gemm and "0 <= k < 768" in gemm
    assert zz.workload({"kind": "gemm", "dims": {"m": 512, "n": 768, "k": 768}})[0]["loop_sizes"] == [512, 768, 768]


def test_stated_on_chip_tile_wins_over_ceil_and_must_match_the_counts():
    # accelsim rounds on-chip tiles up to whole folds: k = 768 in 5 tiles of 160 (the last 128), not ceil = 154.
    doc = _gemm(128, 768, 768, [["n", 2], ["k", 5]], [["n", 12], ["k", 5]], 128)
    doc["nest"][1]["tile"] = {"m": 128, "k": 160, "n": 384}
    got = _nodes(fb.accelforge_looptree(fb.parse(doc))[0])
    assert "!Temporal {rank_variable: k, tile_shape: 160}" in got and "!Temporal {rank_variable: k, tile_shape: 32}" in got
    assert "!Temporal {rank_variable: n, tile_shape: 384}" in got
    with pytest.raises(fb.FeedbackError, match="dims.k: 768"):
        fb.zigzag_temporal(fb.parse(doc))
    doc["nest"][1]["tile"]["k"] = 100
    with pytest.raises(fb.FeedbackError, match=r"nest\[1\].tile.k: 100"):
        fb.parse(doc)


def test_count_scales_the_peers_figures_and_kept_bytes_pass_through(monkeypatch):
    """A layer of 12 identical GEMMs is one problem for the peers: their cycles and energy times 12, EDP times
    144; the bytes accelsim's serpentine walk kept are passed on to reconcile with the peers' raster walk."""
    doc = json.loads((EXAMPLES / "gemm_512x768x768_tiled.json").read_text())
    doc["problem"]["count"] = 12
    doc["nest"][0]["kept"] = {"input": 4096.0}
    m = fb.parse(doc)
    monkeypatch.setattr(fb, "_peer", lambda envs, req: {"cycles": 7.0, "energy_pj": 5.0, "edp": 35.0})
    out = fb.feedback(m, ["accelforge"], "unused")
    assert (out["accelforge"]["cycles"], out["accelforge"]["energy_pj"], out["accelforge"]["edp"]) == (84.0, 60.0, 5040.0)
    assert out["count"] == 12 and out["kept"] == {"input": 4096.0}
    doc["problem"]["count"] = 0
    with pytest.raises(fb.FeedbackError, match="problem.count"):
        fb.parse(doc)
