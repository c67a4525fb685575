#!/usr/bin/env python3
"""Peer runner: execute SCALE-Sim v3 (PyPI ``scalesim==3.0.0``) on a topology
and report per-layer compute-report numbers as JSON.

SCALE-Sim is *not* a dependency of accelsim.  This script keeps it isolated in
its own virtual environment (``bench/.venv-scalesim``, created on first use)
and drives it through a subprocess, so it can be run with any Python >= 3.10
(the system ``python3.11`` or the accelsim venv).  Only the standard library is
imported at module level.

Usage examples::

    python bench/peer_scalesim.py TOPO.csv --rows 32 --cols 32 --dataflow ws
    python bench/peer_scalesim.py GEMM.csv --gemm --rows 8 --cols 8 --dataflow os --json
    python bench/peer_scalesim.py GEMM.csv --gemm --sparsity 2:4 --dataflow ws
    python bench/peer_scalesim.py TOPO.csv --compare      # side by side with accelsim

Importable API::

    from peer_scalesim import run_scalesim
    layers, wall = run_scalesim("topo.csv", 32, 32, "ws")

Topology formats accepted (the file is re-emitted in canonical form before it
is handed to SCALE-Sim, because SCALE-Sim silently drops the last field of a
row that lacks a trailing comma):

* conv:  ``name, ifmap_h, ifmap_w, filt_h, filt_w, channels, num_filters,
  stride[, N:M]``  (one header line; a single stride used for both axes)
* gemm:  ``name, M, N, K[, N:M]``  (one header line)
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: SCALE-Sim's own venv; ``SCALESIM_VENV`` points at an existing one kept outside the tree.
VENV = Path(os.environ.get("SCALESIM_VENV") or HERE / ".venv-scalesim")
SCALESIM_VERSION = "3.0.0"
PIP_REQUIREMENTS = [f"scalesim=={SCALESIM_VERSION}", "numpy<2", "pandas<2.3"]

# "Ample" memory system: with these settings SCALE-Sim reports zero stall
# cycles, so its "Total Cycles" equals the pure compute-pipeline cycle count.
# CALC (estimate-bandwidth) mode makes the read buffers stall-free by
# construction; the only remaining stall source is the OFMAP write buffer,
# which never fills when the OFMAP SRAM is large.
DEFAULT_MEMORY = {
    "ifmap_kb": 8192,
    "filter_kb": 8192,
    "ofmap_kb": 8192,
    "bandwidth_mode": "CALC",  # CALC = estimate bandwidth (no read stalls)
    "bandwidth": 1 << 10,      # words/cycle, only used when bandwidth_mode == USER
    "read_request_buffer": 32,
    "write_request_buffer": 32,
}


# ---------------------------------------------------------------------------
# venv management
# ---------------------------------------------------------------------------
def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(python: str | None = None, quiet: bool = True) -> Path:
    """Create ``bench/.venv-scalesim`` with SCALE-Sim installed, if missing."""
    py = _venv_python()
    if py.exists():
        ok = subprocess.run([str(py), "-c", "import scalesim.scale_sim"],
                            capture_output=True).returncode == 0
        if ok:
            return py
    base = python or (sys.executable if sys.version_info >= (3, 9) else "python3.11")
    if not py.exists():
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    cmd = [str(py), "-m", "pip", "install"] + (["-q"] if quiet else []) + PIP_REQUIREMENTS
    subprocess.run(cmd, check=True)
    return py


# ---------------------------------------------------------------------------
# topology handling
# ---------------------------------------------------------------------------
def _is_int(s: str) -> bool:
    try:
        int(s.strip())
        return True
    except ValueError:
        return False


def parse_topology(path: str | os.PathLike, gemm: bool = False) -> list[dict]:
    """Parse a SCALE-Sim style topology CSV (tolerant of missing trailing
    commas, blank lines, whitespace).  The first line is a header and is
    skipped (as SCALE-Sim does), unless it is all data."""
    text = Path(path).read_text()
    rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text))]
    rows = [[c for c in r if c != ""] for r in rows]
    rows = [r for r in rows if r]
    if rows and not all(_is_int(c) for c in rows[0][1:4]):
        rows = rows[1:]          # header
    layers = []
    for r in rows:
        sp = None
        if r and ":" in r[-1]:
            sp = r[-1]
            r = r[:-1]
        if gemm:
            if len(r) < 4:
                raise ValueError(f"gemm row needs name,M,N,K: {r}")
            layers.append({"type": "gemm", "name": r[0], "M": int(r[1]),
                           "N": int(r[2]), "K": int(r[3]), "sparsity": sp})
        else:
            if len(r) < 8:
                raise ValueError(f"conv row needs 8 fields: {r}")
            if len(r) > 8 and int(r[8]) != int(r[7]):
                raise ValueError(f"SCALE-Sim conv format has one stride; got {r[7]},{r[8]}")
            layers.append({"type": "conv", "name": r[0], "ifmap_h": int(r[1]),
                           "ifmap_w": int(r[2]), "filt_h": int(r[3]), "filt_w": int(r[4]),
                           "channels": int(r[5]), "num_filters": int(r[6]),
                           "stride": int(r[7]), "sparsity": sp})
    return layers


def write_topology(layers: list[dict], path: str | os.PathLike, gemm: bool,
                   with_sparsity: bool) -> None:
    """Write layers in the canonical SCALE-Sim format (trailing commas)."""
    out = []
    if gemm:
        hdr = "Layer, M, N, K,"
    else:
        hdr = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
               "Channels, Num Filter, Strides,")
    if with_sparsity:
        hdr += " Sparsity,"
    out.append(hdr)
    for L in layers:
        if gemm:
            f = [L["name"], L["M"], L["N"], L["K"]]
        else:
            f = [L["name"], L["ifmap_h"], L["ifmap_w"], L["filt_h"], L["filt_w"],
                 L["channels"], L["num_filters"], L.get("stride", 1)]
        if with_sparsity:
            f.append(L.get("sparsity") or "1:1")
        out.append(", ".join(str(x) for x in f) + ",")
    Path(path).write_text("\n".join(out) + "\n")


def gemm_dims(layer: dict) -> tuple[int, int, int]:
    """(M, N, K) as SCALE-Sim lowers the layer."""
    if layer["type"] == "gemm":
        return layer["M"], layer["N"], layer["K"]
    s = layer.get("stride", 1)
    oh = -(-(layer["ifmap_h"] - layer["filt_h"] + s) // s)
    ow = -(-(layer["ifmap_w"] - layer["filt_w"] + s) // s)
    return oh * ow, layer["num_filters"], layer["filt_h"] * layer["filt_w"] * layer["channels"]


# ---------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------
def make_config(rows: int, cols: int, dataflow: str, *, sparsity: bool,
                sparse_rep: str = "ellpack_block", memory: dict | None = None,
                run_name: str = "peer") -> str:
    m = dict(DEFAULT_MEMORY)
    m.update(memory or {})
    lines = [
        "[general]",
        f"run_name = {run_name}",
        "",
        "[architecture_presets]",
        f"ArrayHeight = {rows}",
        f"ArrayWidth = {cols}",
        f"IfmapSramSzkB = {m['ifmap_kb']}",
        f"FilterSramSzkB = {m['filter_kb']}",
        f"OfmapSramSzkB = {m['ofmap_kb']}",
        "IfmapOffset = 0",
        "FilterOffset = 10000000",
        "OfmapOffset = 20000000",
        f"Bandwidth = {m['bandwidth']}",
        f"Dataflow = {dataflow}",
        "MemoryBanks = 1",
        f"ReadRequestBuffer = {m['read_request_buffer']}",
        f"WriteRequestBuffer = {m['write_request_buffer']}",
        "",
        "[layout]",
        "IfmapCustomLayout = False",
        f"IfmapSRAMBankBandwidth = {m['bandwidth']}",
        "IfmapSRAMBankNum = 1",
        "IfmapSRAMBankPort = 2",
        "FilterCustomLayout = False",
        f"FilterSRAMBankBandwidth = {m['bandwidth']}",
        "FilterSRAMBankNum = 1",
        "FilterSRAMBankPort = 2",
        "",
        "[sparsity]",
        f"SparsitySupport = {'true' if sparsity else 'false'}",
        f"SparseRep = {sparse_rep}",
        "OptimizedMapping = false",
        "BlockSize = 4",
        "RandomNumberGeneratorSeed = 40",
        "",
        "[run_presets]",
        f"InterfaceBandwidth = {m['bandwidth_mode']}",
        "UseRamulatorTrace = False",
        "",
    ]
    return "\n".join(lines)


# Code executed inside the SCALE-Sim venv.  It drives SCALE-Sim's public
# ``scalesim`` class (with trace saving disabled) and times each layer.
_RUNNER = r"""
import json, sys, time
t0 = time.perf_counter()
from scalesim.scale_sim import scalesim
from scalesim import single_layer_sim as sls
t_import = time.perf_counter() - t0
per_layer = []
_orig = sls.single_layer_sim.run
def _timed(self):
    t = time.perf_counter()
    _orig(self)
    per_layer.append(time.perf_counter() - t)
sls.single_layer_sim.run = _timed
cfg, topo, layout, outdir, gemm, verbose = sys.argv[1:7]
t1 = time.perf_counter()
s = scalesim(save_disk_space=True, verbose=(verbose == "1"), config=cfg,
             topology=topo, layout=layout, input_type_gemm=(gemm == "1"))
s.run_scale(top_path=outdir)
t_run = time.perf_counter() - t1
print("@@PEER@@" + json.dumps({"import_s": t_import, "run_s": t_run, "layer_s": per_layer}))
"""


def _parse_report(path: Path) -> list[list[str]]:
    rows = []
    with open(path) as f:
        rdr = csv.reader(f)
        header = [h.strip() for h in next(rdr) if h.strip()]
        for r in rdr:
            r = [c.strip() for c in r if c.strip() != ""]
            if r:
                rows.append(dict(zip(header, r)))
    return rows


def run_scalesim(topology_csv, rows: int, cols: int, dataflow: str, *, gemm: bool = False,
                 sparsity=None, memory: dict | None = None, sparse_rep: str = "ellpack_block",
                 keep_dir: str | None = None, timeout: float | None = None,
                 verbose: bool = False):
    """Run SCALE-Sim v3 on ``topology_csv`` and return ``(layers, wall_seconds)``.

    ``sparsity``: None/False -> SparsitySupport off (any Sparsity column is
    ignored by SCALE-Sim); True -> support on, N:M taken per layer from the
    CSV's Sparsity column (missing = 1:1); "N:M" -> support on, every layer
    forced to that ratio.
    ``memory``: overrides for DEFAULT_MEMORY (SRAM kB, bandwidth mode, ...).
    ``wall_seconds`` is the wall time of the whole SCALE-Sim subprocess
    (interpreter start + imports + simulation); per-layer simulation times
    are in each layer dict as ``sim_seconds``.
    """
    dataflow = dataflow.lower()
    if dataflow not in ("ws", "os", "is"):
        raise ValueError("dataflow must be ws, os or is")
    py = ensure_venv()
    layers = parse_topology(topology_csv, gemm=gemm)
    sp_on = bool(sparsity)
    if isinstance(sparsity, str):
        n, m = (int(x) for x in sparsity.split(":"))
        if not (1 <= n <= m):
            raise ValueError("sparsity must be N:M with 1 <= N <= M")
        for L in layers:
            L["sparsity"] = sparsity
    tmp = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="peer_scalesim_"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        topo = tmp / ("topology_gemm.csv" if gemm else "topology.csv")
        write_topology(layers, topo, gemm, with_sparsity=sp_on)
        layout = tmp / "layout.csv"
        layout.write_text("Layer name,\n")   # unused unless custom layouts are on
        cfg = tmp / "peer.cfg"
        cfg.write_text(make_config(rows, cols, dataflow, sparsity=sp_on,
                                   sparse_rep=sparse_rep, memory=memory))
        outdir = tmp / "out"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(py), "-c", _RUNNER, str(cfg), str(topo), str(layout), str(outdir),
             "1" if gemm else "0", "1" if verbose else "0"],
            capture_output=True, text=True, timeout=timeout, cwd=str(tmp))
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"SCALE-Sim failed (rc={proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        timing = {}
        for line in proc.stdout.splitlines():
            if line.startswith("@@PEER@@"):
                timing = json.loads(line[len("@@PEER@@"):])
        rep_dir = outdir / "peer"
        comp = _parse_report(rep_dir / "COMPUTE_REPORT.csv")
        bw = _parse_report(rep_dir / "BANDWIDTH_REPORT.csv")
        det = _parse_report(rep_dir / "DETAILED_ACCESS_REPORT.csv")
        out = []
        for i, c in enumerate(comp):
            L = layers[i] if i < len(layers) else {"name": f"layer{i}"}
            M, N, K = gemm_dims(L) if "type" in L else (None, None, None)
            d = {
                "layer_id": int(c["LayerID"]),
                "name": L["name"],
                "M": M, "N": N, "K": K,
                "sparsity": L.get("sparsity") if sp_on else None,
                "total_cycles_incl_prefetch": int(float(c["Total Cycles (incl. prefetch)"])),
                "total_cycles": int(float(c["Total Cycles"])),
                "stall_cycles": int(float(c["Stall Cycles"])),
                "overall_util": float(c["Overall Util %"]),
                "mapping_efficiency": float(c["Mapping Efficiency %"]),
                "compute_util": float(c["Compute Util %"]),
                "bandwidth": {k: float(v) for k, v in bw[i].items() if k != "LayerID"},
                "access": {k: float(v) for k, v in det[i].items() if k != "LayerID"},
            }
            ls = timing.get("layer_s", [])
            d["sim_seconds"] = ls[i] if i < len(ls) else None
            out.append(d)
        if len(comp) != len(layers):
            # e.g. layers whose name contains "DP" are expanded per channel by SCALE-Sim
            for d in out:
                d["name"] = f"layer{d['layer_id']}"
        return out, wall
    finally:
        if not keep_dir:
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# accelsim comparison (guarded: the script works without accelsim)
# ---------------------------------------------------------------------------
def accelsim_cycles(topology_csv, rows, cols, dataflow, gemm=False):
    """Per-layer cycles from accelsim in SCALE-Sim's convention (index of the last cycle: count − 1)."""
    sys.path.insert(0, str(REPO))
    from accelsim import simulate, load_arch  # noqa: E402
    from accelsim.model.workloads import read_topology_csv  # noqa: E402
    arch = load_arch(f"systolic_{dataflow}_32x32", overrides={
        "compute.rows": rows, "compute.cols": cols, "compute.dataflow": dataflow})
    rep = simulate(arch, read_topology_csv(str(topology_csv), gemm=gemm))
    return [int(l.compute_cycles) - 1 for l in rep.layers]


def _fmt_table(rows: list[list[str]]) -> str:
    w = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).rjust(w[i]) for i, c in enumerate(r)) for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("topology")
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--dataflow", default="ws", choices=["ws", "os", "is"])
    ap.add_argument("--gemm", action="store_true", help="topology is name,M,N,K")
    ap.add_argument("--sparsity", default=None,
                    help="'csv' = per-layer N:M from the Sparsity column; 'N:M' = force")
    ap.add_argument("--sparse-rep", default="ellpack_block", choices=["ellpack_block", "csr", "csc"])
    ap.add_argument("--ifmap-kb", type=int)
    ap.add_argument("--filter-kb", type=int)
    ap.add_argument("--ofmap-kb", type=int)
    ap.add_argument("--bandwidth", type=int, help="words/cycle; implies USER bandwidth mode")
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--compare", action="store_true", help="compare with accelsim.model.simulate")
    ap.add_argument("--keep-dir", help="keep cfg/topology/reports in this directory")
    ap.add_argument("--timeout", type=float)
    a = ap.parse_args(argv)

    mem = {}
    if a.ifmap_kb: mem["ifmap_kb"] = a.ifmap_kb
    if a.filter_kb: mem["filter_kb"] = a.filter_kb
    if a.ofmap_kb: mem["ofmap_kb"] = a.ofmap_kb
    if a.bandwidth:
        mem["bandwidth"] = a.bandwidth
        mem["bandwidth_mode"] = "USER"
    sp = None
    if a.sparsity:
        sp = True if a.sparsity.lower() == "csv" else a.sparsity

    layers, wall = run_scalesim(a.topology, a.rows, a.cols, a.dataflow, gemm=a.gemm,
                                sparsity=sp, memory=mem, sparse_rep=a.sparse_rep,
                                keep_dir=a.keep_dir, timeout=a.timeout)
    theirs = None
    cmp_err = None
    if a.compare:
        try:
            theirs = accelsim_cycles(a.topology, a.rows, a.cols, a.dataflow, gemm=a.gemm)
        except Exception as e:  # accelsim API may not exist yet
            cmp_err = f"{type(e).__name__}: {e}"

    if a.json:
        doc = {"scalesim_version": SCALESIM_VERSION, "rows": a.rows, "cols": a.cols,
               "dataflow": a.dataflow, "gemm": a.gemm, "sparsity": a.sparsity,
               "wall_seconds": wall, "layers": layers}
        if a.compare:
            doc["accelsim"] = theirs
            doc["accelsim_error"] = cmp_err
        print(json.dumps(doc, indent=2))
        return 0

    hdr = ["layer", "M", "N", "K", "total", "stall", "incl_prefetch", "util%", "map_eff%",
           "comp_util%", "sim_s"]
    if a.compare:
        hdr += ["accelsim", "diff%"]
    tab = [hdr]
    for i, d in enumerate(layers):
        r = [d["name"], d["M"], d["N"], d["K"], d["total_cycles"], d["stall_cycles"],
             d["total_cycles_incl_prefetch"], f"{d['overall_util']:.2f}",
             f"{d['mapping_efficiency']:.2f}", f"{d['compute_util']:.2f}",
             f"{d['sim_seconds']:.2f}" if d["sim_seconds"] is not None else "-"]
        if a.compare:
            if theirs is not None and i < len(theirs):
                diff = 100.0 * (theirs[i] - d["total_cycles"]) / d["total_cycles"]
                r += [theirs[i], f"{diff:+.3f}"]
            else:
                r += ["-", "-"]
        tab.append(r)
    print(_fmt_table(tab))
    print(f"SCALE-Sim {SCALESIM_VERSION} wall time: {wall:.2f} s "
          f"({a.rows}x{a.cols} {a.dataflow.upper()})")
    if cmp_err:
        print(f"accelsim comparison unavailable: {cmp_err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
