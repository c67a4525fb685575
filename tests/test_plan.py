"""The plan format: TASDER export loads back, kernel fields follow the chosen series, bad fields are named."""

from __future__ import annotations

import copy
import json
import math

import pytest

from accelsim.codesign.plan import (FORMAT, PLAN_VERSION, LayerPlan, PlanError, check_network, load_plan, parse_plan,
                                    plan_from_search, write_plan)
from accelsim.codesign.tasder import search, write_result
from accelsim.model.workload import Gemm, Network


def tiny() -> Network:
    return Network.chain("tiny", [Gemm("a", 64, 64, 64), Gemm("b", 32, 128, 96),
                                  Gemm("att", 64, 64, 32, static_weight=False)])


def doc(*layers) -> dict:
    return {"format": FORMAT, "version": PLAN_VERSION, "network": {"workload": "w.yaml", "params": {}},
            "arch": "tasd_ttc", "layers": list(layers)}


def test_search_export_maps_series_to_kernels(tmp_path):
    res = search("tasd_ttc", tiny(), max_error=math.inf)
    write_result(res, tmp_path / "p.json", "tiny.yaml", {"seq_len": 8})
    plan = load_plan(tmp_path / "p.json")
    assert plan.workload == "tiny.yaml" and plan.params == {"seq_len": 8} and plan.arch == "tasd_ttc"
    assert [l.name for l in plan.layers] == ["a", "b", "att"]
    for lp, l in zip(plan.layers, res.layers):
        c = l.choice
        series = c.weight if c.weight != "dense" else c.act
        if series == "dense":
            assert lp.kernel == "dense"
            continue
        assert lp.operand == ("weight" if c.weight != "dense" else "input")
        assert (lp.kernel, lp.pattern or lp.series) == (("tasd", series) if "+" in series else ("nm", series))
    assert plan.layer("att").kernel == "dense" and plan.layer("not planned") == LayerPlan("not planned")
    assert any(l.kernel != "dense" for l in plan.layers)  # an infinite cap must take some sparse option
    on_disk = json.loads((tmp_path / "p.json").read_text())
    assert on_disk["total"]["edp"] > 0 and "error" in on_disk["layers"][0]  # TASDER's figures are kept


def test_roundtrip_and_id(tmp_path):
    d = doc({"name": "a", "kernel": "nm", "pattern": "2:4", "layout": "vector"},
            {"name": "b", "kernel": "tasd", "operand": "input", "series": "2:4 + 1:4"},
            {"name": "c", "kernel": "sparse_tc", "pattern": "2:4"})
    plan = parse_plan(d)
    assert plan.layers[1].series == "2:4+1:4" and plan.layers[0].layout == "vector"
    write_plan(plan, tmp_path / "p.json")
    again = load_plan(tmp_path / "p.json")
    assert again.layers == plan.layers and again.id == plan.id and again.id.startswith("plan-")
    other = copy.deepcopy(d)
    other["layers"][0]["pattern"] = "1:4"
    assert parse_plan(other).id != plan.id


@pytest.mark.parametrize("layer, needle", [
    ({"name": "a", "kernel": "csr"}, "unknown kernel 'csr'"),
    ({"name": "a", "kernel": "nm", "pattern": "2:64"}, "layers[0] (a).pattern"),
    ({"name": "a", "kernel": "nm", "pattern": "5:4"}, "5:4"),
    ({"name": "a", "kernel": "nm", "pattern": "4:4"}, "keeps every value"),
    ({"name": "a", "kernel": "nm"}, "needs 'pattern'"),
    ({"name": "a", "kernel": "tasd", "pattern": "2:4"}, "takes 'series'"),
    ({"name": "a", "kernel": "tasd", "series": "2:4+x"}, "layers[0] (a).series"),
    ({"name": "a", "kernel": "nm", "pattern": "2:4", "layout": "diagonal"}, "unknown N:M layout 'diagonal'"),
    ({"name": "a", "kernel": "sparse_tc", "pattern": "1:4"}, "2:4 on the weight only"),
    ({"name": "a", "kernel": "dense", "pattern": "2:4"}, "no sparsity fields"),
    ({"name": "a", "kernel": "nm", "pattern": "2:4", "operand": "output"}, "'output'"),
    ({"name": "a", "kernel": "nm", "pattern": "2:4", "colour": 1}, "layers[0].colour"),
])
def test_bad_layer_fields_are_named(layer, needle):
    with pytest.raises(PlanError, match="^plan.json: ") as exc:
        parse_plan(doc(layer), "plan.json")
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_bad_top_level(tmp_path):
    with pytest.raises(PlanError, match="version"):
        parse_plan({**doc(), "version": 2})
    with pytest.raises(PlanError, match="format"):
        parse_plan({**doc(), "format": "tasder"})
    with pytest.raises(PlanError, match="planned twice"):
        parse_plan(doc({"name": "a"}, {"name": "a"}))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PlanError, match="bad.json: not a JSON plan"):
        load_plan(tmp_path / "bad.json")
    with pytest.raises(PlanError, match="no such file"):
        load_plan(tmp_path / "missing.json")


def test_check_network():
    check_network(parse_plan(doc({"name": "a", "kernel": "nm", "pattern": "2:4"})), tiny())
    with pytest.raises(PlanError, match="has no layer 'zz'"):
        check_network(parse_plan(doc({"name": "zz"})), tiny())
    with pytest.raises(PlanError, match="two activations"):
        check_network(parse_plan(doc({"name": "att", "kernel": "nm", "pattern": "2:4"})), tiny())


def test_export_options():
    res = search("stc_2of4", tiny(), max_error=math.inf)
    d = plan_from_search(res, "tiny", {}, sparse_tc=True)
    kinds = {l["name"]: l["kernel"] for l in d["layers"]}
    assert kinds["att"] == "dense" and "sparse_tc" in kinds.values()
    with pytest.raises(PlanError, match="--layout"):
        plan_from_search(res, "tiny", {}, layout="blocked")
