"""Evaluate one given mapping on one peer (no search); runs in that peer's venv, called by feedback.py.

Reads a JSON request on stdin ({"peer", "problem", and "spatial"+"temporal" for ZigZag or "mapping_yaml"+"order"
for AccelForge}) and prints one JSON line: cycles, energy_pj (dynamic), edp.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run_peers import AF_ARCH, AF_ORDER_ARCH, ZZ_HW  # noqa: E402


def main() -> None:
    req = json.load(sys.stdin)
    if req["peer"] == "zigzag":
        import zz_peer
        out = zz_peer.evaluate(req["problem"], ZZ_HW, req["spatial"], req["temporal"])
    else:
        import af_peer
        arch = AF_ARCH if req["order"] == "OWI" else AF_ORDER_ARCH
        out = af_peer.evaluate(req["problem"], arch, req["mapping_yaml"], None if req["order"] == "OWI" else req["order"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
