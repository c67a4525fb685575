"""Run one peer mapper over accelsim's ResNet-50 / BERT-base layer shapes; resumable, one write per layer.

Runs inside a peer's own venv (bench/peers/setup.sh): imports only that peer, yaml and the stdlib. The shapes
come from bench/peers/layers.json (bench/peers/export_layers.py); each distinct shape runs once and the merge
step (bench/peers/merge.py) hands its result to every layer of that shape.

    zigzag/bin/python bench/peers/run_peers.py --peer zigzag --engine loma --lpf 6 --out RUN.json
    accelforge/bin/python bench/peers/run_peers.py --peer accelforge --orders OWI,OIW --out RUN.json
"""
import argparse
import json
import os
import platform
import sys
import time
from importlib.metadata import version

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("PEERS_SHARED", os.path.join(os.path.dirname(ROOT), "shared", "peers"))
ZZ_HW = os.path.join(SHARED, "zigzag", "accelsim_ws_32x32_duplex.yaml")
ZZ_MAP = os.path.join(SHARED, "zigzag", "mapping_ws.yaml")
AF_ARCH = os.path.join(SHARED, "accelforge", "accelsim_ws_32x32.arch.yaml")
AF_ORDER_ARCH = os.path.join(SHARED, "accelforge", "accelsim_ws_32x32_order.arch.yaml")


def _save(path: str, doc: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


def _one(args, problem: dict, order: str | None) -> dict:
    if args.peer == "zigzag":
        import zz_peer
        return zz_peer.search(problem, ZZ_HW, ZZ_MAP, args.engine, args.lpf)
    import af_peer
    # OWI is the plain arch file's own order; the others go through the order-parameter file.
    return af_peer.search(problem, AF_ARCH) if order == "OWI" else af_peer.search(problem, AF_ORDER_ARCH, order)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer", choices=["zigzag", "accelforge"], required=True)
    p.add_argument("--engine", choices=["loma", "salsa"], default="loma", help="ZigZag temporal mapping engine")
    p.add_argument("--lpf", type=int, default=6, help="ZigZag LOMA lpf_limit")
    p.add_argument("--orders", default="OWI", help="AccelForge SRAM orders to try, comma-separated")
    p.add_argument("--nets", default="resnet50,bert_base")
    p.add_argument("--layers", default=os.path.join(HERE, "layers.json"))
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    sys.path.insert(0, HERE)
    layers = json.load(open(args.layers))
    orders = args.orders.split(",") if args.peer == "accelforge" else [None]
    pkg = "zigzag-dse" if args.peer == "zigzag" else "accelforge"
    doc = json.load(open(args.out)) if os.path.exists(args.out) else {}
    doc.update({"peer": args.peer, "peer_version": version(pkg), "python": platform.python_version(),
                "settings": {"engine": args.engine, "lpf_limit": args.lpf, "opt": "EDP"} if args.peer == "zigzag"
                else {"metrics": "ENERGY_DELAY_PRODUCT", "orders": orders, "n_parallel_jobs": 1},
                "command": " ".join([os.path.basename(sys.executable)] + sys.argv)})
    doc.setdefault("shapes", {})
    for net in args.nets.split(","):
        for shape in layers[net]["shapes"]:
            for order in orders:
                key = f"{net}/{shape['id']}" + (f"/{order}" if order else "")
                if key in doc["shapes"]:
                    continue
                load0 = os.getloadavg()[0]
                try:
                    rec = _one(args, shape["problem"], order)
                except Exception as e:  # a peer crash on one layer is a result to record, not a stop
                    rec = {"error": f"{type(e).__name__}: {e}"[:500]}
                rec.update({"problem": shape["problem"], "loadavg_1min": [load0, os.getloadavg()[0]],
                            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                doc["shapes"][key] = rec
                _save(args.out, doc)
                print(key, {k: rec.get(k) for k in ("cycles", "energy_pj", "search_wall_s", "error")}, flush=True)


if __name__ == "__main__":
    main()
