"""Bad input through the CLI: one line naming file/field/value, exit 2, no traceback, no output file."""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error

GOOD_ARCH = """\
version: 1
name: tiny
clock_ghz: 1.0
compute:
  kind: systolic
  rows: 8
  cols: 8
  dataflow: ws
memory:
  - {name: dram, bandwidth: 16}
  - {name: sram, capacity_bytes: 65536, bandwidth: 64}
energy: {mac_pj: {int8: 0.2}}
"""


def _arch(tmp_path, text):
    p = tmp_path / "arch.yaml"
    p.write_text(text)
    return str(p)


CASES = {
    "missing file": (None, ["/nonexistent/arch.yaml"], ["/nonexistent/arch.yaml", "not found"]),
    "malformed yaml": ("compute: [rows: 3\n  - :\n", [], ["arch.yaml", "malformed YAML", "line"]),
    "unknown key": (GOOD_ARCH.replace("clock_ghz: 1.0", "clock_ghz: 1.0\nclok: 2"), [], ["unknown key", "clok"]),
    "zero rows": (GOOD_ARCH.replace("rows: 8", "rows: 0"), [], ["compute.rows", "0"]),
    "negative cols": (GOOD_ARCH.replace("cols: 8", "cols: -4"), [], ["compute.cols", "-4"]),
    "unknown dataflow": (GOOD_ARCH.replace("dataflow: ws", "dataflow: xs"), [], ["compute.dataflow", "xs"]),
    "zero bandwidth": (GOOD_ARCH.replace("bandwidth: 16", "bandwidth: 0"), [], ["memory.0.bandwidth", "0"]),
    "bad pattern": (GOOD_ARCH.replace("dataflow: ws", "dataflow: ws\n  sparsity: {patterns: ['2:4', '5:4']}"), [],
                    ["compute.sparsity.patterns", "5:4"]),
    "bypass of the outermost level": (GOOD_ARCH.replace("bandwidth: 16}", "bandwidth: 16, bypass: [weight]}"), [],
                                      ["memory.dram.bypass", "weight"]),
    "bypass of no operand": (GOOD_ARCH.replace("bandwidth: 64}", "bandwidth: 64, bypass: [wieght]}"), [],
                             ["memory.1.bypass", "wieght"]),
    "bypass on tensor cores": (None, ["tensor_core", "memory.l2.bypass=[input]"], ["memory.*.bypass", "systolic"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_arch(cli, tmp_path, case):
    text, arch_args, needles = CASES[case]
    arch = arch_args[0] if arch_args else _arch(tmp_path, text)
    out = tmp_path / "out.json"
    sets = [a for kv in arch_args[1:] for a in ("--set", kv)]
    proc = cli("simulate", "--arch", arch, *sets, "--workload", "resnet50", "--out", str(out))
    assert_one_line_error(proc, *needles)
    assert not out.exists()
    assert list(tmp_path.glob(".out.json*")) == []


def test_bad_override(cli, tmp_path):
    out = tmp_path / "o.json"
    proc = cli("simulate", "--arch", "systolic_ws_32x32", "--workload", "resnet50", "--set", "compute.rows=-3",
               "--out", str(out))
    assert_one_line_error(proc, "compute.rows", "-3")
    assert not out.exists()


CSV_CASES = {
    "malformed row": ("Layer,IFMAP Height,IFMAP Width,Filter Height,Filter Width,Channels,Num Filter,Strides,\n"
                      "c1,8,8,3,3,4,8,1,\nc2,8,eight,3,3,4,8,1,\n", ["topo.csv:3", "IFMAP Width", "eight"]),
    "short row": ("Layer,M,N,K,\ng1,4,4,\n", ["topo.csv:2", "expected 4 columns"]),
    "negative dim": ("Layer,M,N,K,\ng1,4,-4,4,\n", ["topo.csv:2", "N", "-4"]),
    "zero dim": ("Layer,M,N,K,\ng1,0,4,4,\n", ["topo.csv:2", "M", "0"]),
    "N > M sparsity": ("Layer,M,N,K,Sparsity\ng1,4,4,4,5:4\n", ["topo.csv:2", "Sparsity", "5:4"]),
    "bad sparsity": ("Layer,M,N,K,Sparsity\ng1,4,4,4,half\n", ["topo.csv:2", "Sparsity", "half"]),
    "empty": ("", ["topo.csv", "empty"]),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_bad_topology_csv(cli, tmp_path, case):
    text, needles = CSV_CASES[case]
    topo = tmp_path / "topo.csv"
    topo.write_text(text)
    out = tmp_path / "out.parquet"
    proc = cli("simulate", "--arch", "systolic_ws_32x32", "--workload", str(topo), "--out", str(out))
    assert_one_line_error(proc, *needles)
    assert not out.exists()


def test_unknown_workload(cli):
    assert_one_line_error(cli("simulate", "--arch", "systolic_ws_32x32", "--workload", "resnet51"), "resnet51")


def test_bad_out_suffix(cli, tmp_path):
    out = tmp_path / "r.txt"
    assert_one_line_error(cli("simulate", "--arch", "systolic_ws_32x32", "--workload", "resnet50", "--out", str(out)),
                          "r.txt", ".json")
    assert not out.exists()


def test_unsupported_dtype(cli, tmp_path):
    wl = tmp_path / "w.yaml"
    wl.write_text("workload:\n  name: w\n  layers:\n    - {type: gemm, name: g, m: 8, n: 8, k: 8, dtype: fp64}\n")
    assert_one_line_error(cli("simulate", "--arch", "systolic_ws_32x32", "--workload", str(wl)), "fp64", "'g'")
