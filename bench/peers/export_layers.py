"""Write accelsim's built-in ResNet-50 and BERT-base layers as plain JSON for the peer-side scripts.

Runs in the project venv (it imports accelsim); the peer scripts read the JSON with the stdlib only, so the
peers' own environments never need accelsim. Identical shapes are listed once with every layer name that
uses them (the peers' results depend only on the shape), and a GEMM's ``count`` (BERT's per-head attention
GEMMs) is kept so the caller can scale: count copies of the same independent GEMM, not a batched dim.

    PYTHONPATH=$PWD python bench/peers/export_layers.py [OUT.json]
"""
import json
import sys

from accelsim.model.workload import Conv
from accelsim.model.workloads import bert_base, resnet50


def layer_shape(layer) -> dict:
    """The peer-relevant shape of one accelsim layer (int8 everywhere, as systolic_ws_32x32)."""
    if isinstance(layer, Conv):
        oy = (layer.ifmap_h - layer.filt_h) // layer.stride_h + 1
        ox = (layer.ifmap_w - layer.filt_w) // layer.stride_w + 1
        return {"kind": "conv", "dims": {"b": layer.batch, "oy": oy, "ox": ox, "c": layer.channels,
                                          "kout": layer.num_filters, "fy": layer.filt_h, "fx": layer.filt_w},
                "stride": [layer.stride_h, layer.stride_w]}
    return {"kind": "gemm", "dims": {"m": layer.m, "n": layer.n, "k": layer.k}}


def export(net) -> dict:
    """{network, layers: [{name, count}], shapes: [{id, problem, layers: [names]}]} in network order."""
    shapes, layers = {}, []
    for layer in net.layers:
        problem = layer_shape(layer)
        key = json.dumps(problem, sort_keys=True)
        if key not in shapes:
            shapes[key] = {"id": f"s{len(shapes)}", "problem": problem, "layers": []}
        shapes[key]["layers"].append(layer.name)
        layers.append({"name": layer.name, "shape": shapes[key]["id"], "count": getattr(layer, "count", 1)})
    return {"network": net.name, "layers": layers, "shapes": list(shapes.values())}


def main(argv) -> None:
    out = argv[1] if len(argv) > 1 else "bench/peers/layers.json"
    doc = {"resnet50": export(resnet50()), "bert_base": export(bert_base())}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    for k, v in doc.items():
        print(k, len(v["layers"]), "layers,", len(v["shapes"]), "distinct shapes")


if __name__ == "__main__":
    main(sys.argv)
