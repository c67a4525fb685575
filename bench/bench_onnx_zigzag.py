"""accelsim's ONNX reader against ZigZag's on the three networks the zigzag-dse 3.9.1 wheel ships.

Run: .venv/bin/python bench/bench_onnx_zigzag.py [--wheel zigzag_dse-3.9.1-py3-none-any.whl]
     [--zigzag-python /work/peers-env/zz-onnx/bin/python] [--arch systolic_ws_32x32] [--repeats 5]

The ONNX files (resnet18, alexnet, mobilenetv2: shape-only, their weights' external data absent) are
read from the wheel itself; without ``--wheel`` it is fetched with ``pip download --no-deps
zigzag-dse==3.9.1``. ZigZag runs in its own venv (``python3.11 -m venv zz && zz/bin/pip install
zigzag-dse==3.9.1 six``) through a subprocess: its ``ONNXModelParser`` parses each file and each
``LayerNode`` gives its name and ``total_mac_count``. accelsim must give the same layers (by node name;
ties in topological order may fall differently) with the same MACs; then ``simulate`` runs each network on ``--arch``. Times: accelsim's
median of ``--repeats`` reads and simulations; ZigZag's one parse, imports excluded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from accelsim import simulate
from accelsim.model.onnx_in import read_onnx

NETWORKS = ("resnet18", "alexnet", "mobilenetv2")
ZIGZAG = "zigzag-dse==3.9.1"

_PEER = r"""
import json, logging, sys, time
logging.disable(logging.CRITICAL)
import zigzag, os
from zigzag.parser.onnx.onnx_model_parser import ONNXModelParser
from zigzag.workload.layer_node import LayerNode
mapping = os.path.join(os.path.dirname(zigzag.__file__), "inputs/mapping/default.yaml")
out = {}
for path in sys.argv[1:]:
    t0 = time.perf_counter()
    wl = ONNXModelParser(path, mapping).run()
    layers = [n for n in wl.topological_sort() if isinstance(n, LayerNode)]
    out[path] = {"seconds": time.perf_counter() - t0,
                 "layers": [[n.name, n.type, int(n.total_mac_count)] for n in layers]}
print("ZIGZAG-JSON " + json.dumps(out))
"""


def _wheel(path: str | None, tmp: Path) -> Path:
    if path:
        return Path(path)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", ZIGZAG, "-d", str(tmp)], check=True)
    return next(tmp.glob("zigzag_dse-*.whl"))


def _zigzag(python: str, files: list[Path]) -> dict:
    proc = subprocess.run([python, "-c", _PEER, *map(str, files)], capture_output=True, text=True, check=True)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("ZIGZAG-JSON "))
    return json.loads(line.removeprefix("ZIGZAG-JSON "))


def _median_s(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", help=f"the {ZIGZAG} wheel (default: pip download it)")
    ap.add_argument("--zigzag-python", default="/work/peers-env/zz-onnx/bin/python",
                    help="python of a venv with zigzag-dse 3.9.1 and six installed")
    ap.add_argument("--arch", default="systolic_ws_32x32")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = _wheel(args.wheel, tmp)
        files = []
        with zipfile.ZipFile(wheel) as z:
            for n in NETWORKS:
                files.append(tmp / f"{n}.onnx")
                files[-1].write_bytes(z.read(f"zigzag/inputs/workload/{n}.onnx"))
        peer = _zigzag(args.zigzag_python, files)
        print(f"{wheel.name}; accelsim: median of {args.repeats}; arch {args.arch}\n")
        print("| network | layers ZigZag / accelsim | MACs per layer equal | total MACs | ops not modelled "
              "| ZigZag parse s | accelsim read s | simulate s | cycles |")
        print("|---|---|---|---|---|---|---|---|---|")
        ok = True
        for path in files:
            ref = {name: macs for name, _, macs in peer[str(path)]["layers"]}
            read_s, net = _median_s(lambda: read_onnx(path), args.repeats)
            ours = {l.name: l.macs for l in net.layers}
            equal = sum(ours.get(name) == macs for name, macs in ref.items())
            ok &= equal == len(ref) == len(ours)
            sim_s, rep = _median_s(lambda: simulate(args.arch, net), args.repeats)
            print(f"| {path.stem} | {len(ref)} / {len(ours)} | {equal}/{len(ref)} | {sum(ours.values()):,} "
                  f"| {sum(rep.not_modelled.values())} ({len(rep.not_modelled)} types) "
                  f"| {peer[str(path)]['seconds']:.3f} | {read_s:.4f} | {sim_s:.4f} | {rep.total['cycles']:,.0f} |")
            for name in sorted(set(ref) | set(ours)):
                if ref.get(name) != ours.get(name):
                    print(f"  differs: {name}: ZigZag {ref.get(name)} vs accelsim {ours.get(name)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
