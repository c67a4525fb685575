"""Each bad input class of issue 18 ("Why"): one stderr line naming the file/field/value, exit 2, no
traceback, no output file; plus Ctrl-C reports, --weight-sparsity and the demo's reading guide.

The table of every class and its behaviour is docs/robustness.md; the fuzz test is test_fuzz_cli.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, assert_exit_2, run_in_process

ARCH = """\
version: 1
name: tiny
clock_ghz: 1.0
compute: {kind: systolic, rows: 8, cols: 8, dataflow: ws}
memory:
  - {name: dram, bandwidth: 16, read_pj_per_byte: 20.0}
  - {name: sram, capacity_bytes: 65536, bandwidth: 64, read_pj_per_byte: 1.0}
energy: {mac_pj: {int8: 0.2}}
"""
SMALL = "tests/data/topologies/gemm_mix.csv"
CPU_TRACES = ROOT / "traces" / "cpu-amd-epyc-2vcpu"


@pytest.fixture
def run(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    return lambda *args: run_in_process(capsys, monkeypatch, *map(str, args))


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _no_files(folder: Path, *keep: str) -> None:
    """Nothing but ``keep`` in ``folder``: no output and no temporary left behind."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


# -- arch configs -------------------------------------------------------------------------------

ARCH_CASES = {
    "NaN energy": (ARCH.replace("int8: 0.2", "int8: .nan"), ["energy.mac_pj.int8", "finite", "nan"]),
    "inf clock": (ARCH.replace("clock_ghz: 1.0", "clock_ghz: .inf"), ["clock_ghz", "finite", "inf"]),
    "inf bandwidth": (ARCH.replace("bandwidth: 16", "bandwidth: -.inf"), ["memory.0.bandwidth", "-inf"]),
    "rows 10**12": (ARCH.replace("rows: 8", "rows: 1000000000000"), ["compute.rows", "65536", "1000000000000"]),
    "binary garbage": (bytes(range(256)) * 4, ["arch.yaml", "not UTF-8"]),
    "NUL bytes": (b"version: 1\x00\x00", ["arch.yaml", "binary"]),
}


@pytest.mark.parametrize("case", sorted(ARCH_CASES))
@pytest.mark.parametrize("fmt", ["json", "out"])
def test_bad_arch_value(run, tmp_path, case, fmt):
    """NaN/inf used to crash JSON output ("Out of range float") or print 0.000 ms; now refused on load."""
    text, needles = ARCH_CASES[case]
    arch = _write(tmp_path / "arch.yaml", text)
    extra = ["--format", "json"] if fmt == "json" else ["--out", tmp_path / "r.json"]
    assert_exit_2(run("simulate", "--arch", arch, "--workload", SMALL, *extra), *needles)
    _no_files(tmp_path, "arch.yaml")


def test_arch_yaml_is_a_directory(run, tmp_path):
    (tmp_path / "x.yaml").mkdir()
    assert_exit_2(run("simulate", "--arch", tmp_path / "x.yaml", "--workload", SMALL), "x.yaml", "is a directory")


def test_nan_through_sweep_grid(run, tmp_path):
    out = tmp_path / "sweep"
    assert_exit_2(run("sweep", "--arch", "systolic_ws_32x32", "--grid", "energy.mac_pj.int8=0.2,.nan",
                      "--workload", SMALL, "--no-dask", "--out", out, "--format", "json"),
                  "--grid energy.mac_pj.int8=.nan", "finite")
    assert not out.exists()


def test_override_out_of_bounds(run):
    assert_exit_2(run("simulate", "--arch", "systolic_ws_32x32", "--workload", SMALL, "--set", "clock_ghz=1e-9"),
                  "clock_ghz", "0.000001", "1e-09")


# -- workloads ----------------------------------------------------------------------------------

def _yaml_layers(*layers: str, edges: str = "") -> str:
    return "workload:\n  name: w\n  layers:\n" + "".join(f"    - {l}\n" for l in layers) + edges


WORKLOAD_CASES = {
    "binary garbage": (bytes(range(128, 256)) * 8, ["w.yaml", "not UTF-8"]),
    "layer is a string": (_yaml_layers('"gemm 8 8 8"'), ["w.yaml", "workload.layers.0", "mapping"]),
    "kron factor of length 3": (_yaml_layers("{type: kron, name: k, m: 64, factors: [[8, 8, 2], [8, 8]]}"),
                                ["w.yaml", "factors", "[8, 8, 2]"]),
    "edges not pairs": (_yaml_layers("{name: a, m: 8, n: 8, k: 8}", "{name: b, m: 8, n: 8, k: 8}",
                                     edges="  edges: [a, b]\n"), ["w.yaml", "workload.edges.0", "'a'"]),
    "edges a mapping": (_yaml_layers("{name: a, m: 8, n: 8, k: 8}", edges="  edges: {a: b}\n"),
                        ["w.yaml", "workload.edges"]),
    "dtype fp99": (_yaml_layers("{name: g, m: 8, n: 8, k: 8, dtype: fp99}"), ["w.yaml", "layers.0", "fp99"]),
    "conv count -3": (_yaml_layers("{type: conv, name: c, ifmap_h: 8, ifmap_w: 8, filt_h: 3, filt_w: 3, "
                                   "channels: 4, num_filters: 4, count: -3}"), ["w.yaml", "count", "-3"]),
    "m = 10**24": (_yaml_layers("{name: g, m: 1000000000000000000000000, n: 8, k: 8}"),
                   ["w.yaml", "field m", "MAX_DIM"]),
    "m = 1e24 (a float)": (_yaml_layers("{name: g, m: 1e24, n: 8, k: 8}"), ["w.yaml", "field m", "1e+24"]),
    "MACs over 2**53": (_yaml_layers("{name: g, m: 1048576, n: 1048576, k: 1048576}"),
                        ["w.yaml", "MAX_LAYER_MACS"]),
    "type is a list (found by the fuzz test)": (_yaml_layers("{type: [gemm], name: g, m: 8, n: 8, k: 8}"),
                                                ["w.yaml", "layers.0.type", "['gemm']"]),
    "name is a list": (_yaml_layers("{name: [a], m: 8, n: 8, k: 8}"), ["w.yaml", "name"]),
    "unknown field": (_yaml_layers("{name: g, m: 8, n: 8, k: 8, q: 1}"), ["w.yaml", "unexpected keyword", "'q'"]),
}


@pytest.mark.parametrize("case", sorted(WORKLOAD_CASES))
def test_bad_workload_yaml(run, tmp_path, case):
    text, needles = WORKLOAD_CASES[case]
    wl = _write(tmp_path / "w.yaml", text)
    assert_exit_2(run("simulate", "--arch", "systolic_ws_32x32", "--workload", wl, "--out", tmp_path / "r.json"),
                  *needles)
    _no_files(tmp_path, "w.yaml")


def test_workload_yaml_is_a_directory(run, tmp_path):
    (tmp_path / "x.yaml").mkdir()
    assert_exit_2(run("simulate", "--arch", "systolic_ws_32x32", "--workload", tmp_path / "x.yaml"),
                  "x.yaml", "is a directory")


CSV_CASES = {
    "cell inf": ("Layer,M,N,K,\ng1,4,inf,4,\n", ["topo.csv:2", "'N'", "'inf'"]),
    "cell 1e400": ("Layer,M,N,K,\ng1,4,1e400,4,\n", ["topo.csv:2", "'N'", "1e400"]),
    "cell nan": ("Layer,M,N,K,\ng1,nan,4,4,\n", ["topo.csv:2", "'M'", "nan"]),
    "cell 10**12": ("Layer,M,N,K,\ng1,4,1000000000000,4,\n", ["topo.csv:2", "N", "MAX_DIM"]),
    "binary garbage": (b"\xff\xfe\x00L\x00a" * 50, ["topo.csv", "UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_bad_topology_csv(run, tmp_path, case):
    text, needles = CSV_CASES[case]
    topo = _write(tmp_path / "topo.csv", text)
    assert_exit_2(run("simulate", "--arch", "systolic_ws_32x32", "--workload", topo, "--out", tmp_path / "r.parquet"),
                  *needles)
    _no_files(tmp_path, "topo.csv")


@pytest.mark.parametrize("workload, param, needles", [
    ("minilm", "heads=7", ["heads=7", "384", "not divisible"]),
    ("bert_base", "batch=abc", ["batch", "'abc'"]),
    ("bert_base", "batch=.nan", ["batch", "nan"]),
    ("bert_base", "seq_len=0", ["seq_len", "0"]),
    ("bert_base", "layers=1000000000", ["layers", "MAX_BLOCKS"]),
    ("resnet50", "depth=3", ["depth", "batch"]),
])
def test_bad_param(run, workload, param, needles):
    assert_exit_2(run("simulate", "--arch", "dense_tc", "--workload", workload, "--param", param), *needles)


def test_good_param_still_accepted(run):
    code, out, _ = run("simulate", "--arch", "dense_tc", "--workload", "minilm", "--param", "heads=6",
                       "--param", "layers=1", "--format", "json")
    assert code == 0
    qk = next(l for l in json.loads(out)["layers"] if l["name"].endswith("attention.qk"))
    assert qk["macs"] == 128 * 128 * (384 // 6) * 6  # seq² × head dim × heads


# -- destinations -------------------------------------------------------------------------------

@pytest.fixture
def unwritable(tmp_path):
    """A folder no file can be created in: read-only for a normal user, /proc for root (whom modes
    do not stop)."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        (d / ".probe").touch()
    except OSError:
        yield d
    else:
        (d / ".probe").unlink()
        if not Path("/proc/self").is_dir():
            pytest.skip("no read-only folder available to this user")
        yield Path("/proc")
    d.chmod(0o755)


def _out_commands(tmp: Path, dest: Path) -> dict[str, list]:
    """Every command with a file or folder destination, writing into ``dest`` (prune reads tmp/w.npy)."""
    w = tmp / "w.npy"
    if tmp.is_dir():
        np.save(w, np.random.default_rng(0).standard_normal((16, 8)))
    return {
        "calibrate --out": ["calibrate", "--out", dest / "cal"],
        "simulate --out": ["simulate", "--arch", "systolic_ws_32x32", "--workload", SMALL, "--out", dest / "r.json"],
        "sweep --out": ["sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,32", "--workload", SMALL,
                        "--no-dask", "--out", dest / "sweep"],
        "sweep --plot": ["sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,32", "--workload", SMALL,
                         "--no-dask", "--plot", dest / "p.png"],
        "kernels run --out": ["kernels", "run", "--suite", "gemm", "--repeats", "1", "--warmup", "0",
                              "--out", dest / "traces"],
        "compare --plot": ["compare", "--arch", "dense_tc", "--arch", "stc_2of4", "--workload", SMALL,
                           "--plot", dest / "c.png"],
        "prune --out": ["prune", w, "--radius", "1", "--out", dest / "p.npy"],
        "tasd search --out": ["tasd", "search", "--arch", "tasd_ttc", "--workload", SMALL, "--max-error", "0.1",
                              "--out", dest / "t.json"],
        "traces roofline --plot": ["traces", "roofline", CPU_TRACES, "--plot", dest / "r.png"],
        "validate --plot": ["validate", "--traces", CPU_TRACES, "--arch", "cpu_numpy", "--plot", dest / "v.png"],
    }


@pytest.mark.parametrize("command", sorted(_out_commands(Path("/x"), Path("/y"))))
def test_unwritable_destination(run, tmp_path, unwritable, command, monkeypatch):
    """Refused before any work starts: no simulation, kernel or search runs only to fail at the end."""
    import accelsim.model.simulate as sim
    import accelsim.replay.device_calibration as calibration
    import kernels.trace as trace

    def forbidden(*a, **k):
        raise AssertionError("work started before the destination was checked")

    monkeypatch.setattr(sim, "_run_layer", forbidden)
    monkeypatch.setattr(trace, "time_call", forbidden)
    monkeypatch.setattr(calibration, "measure", forbidden)
    args = _out_commands(tmp_path, unwritable)[command]
    assert_exit_2(run(*args), command.split()[-1], str(unwritable), "cannot write")


@pytest.mark.parametrize("command", ["simulate --out", "prune --out", "tasd search --out", "compare --plot"])
def test_destination_is_a_directory(run, tmp_path, command):
    dest = tmp_path / "d"
    args = _out_commands(tmp_path, dest)[command]
    Path(args[-1]).mkdir(parents=True)
    assert_exit_2(run(*args), command.split()[-1], "is a directory")


@pytest.mark.parametrize("command", ["sweep --out", "kernels run --out"])
def test_directory_destination_is_a_file(run, tmp_path, command):
    args = _out_commands(tmp_path, tmp_path)[command]
    Path(args[-1]).write_text("x")
    assert_exit_2(run(*args), command.split()[-1], "is a file")


def test_sweep_resume_with_truncated_part(run, tmp_path):
    """A damaged part stops the resume with its name; moved away, the resume completes the grid."""
    out = tmp_path / "sweep"
    args = ["sweep", "--arch", "systolic_ws_32x32", "--workload", SMALL, "--no-dask", "--out", out, "--format", "json"]
    assert run(*args, "--grid", "compute.rows=16,32")[0] == 0
    good = next(out.glob("part-*.parquet"))
    bad = out / "part-99999999999999999999-truncated.parquet"
    bad.write_bytes(good.read_bytes()[:200])
    assert_exit_2(run(*args, "--grid", "compute.rows=16,32,64"), bad.name, "unreadable sweep part", "move or delete")
    assert_exit_2(run("sweep", "pareto", out), bad.name)
    bad.rename(tmp_path / bad.name)
    code, stdout, _ = run(*args, "--grid", "compute.rows=16,32,64")
    assert code == 0 and json.loads(stdout)["computed"] == 1


# -- traces -------------------------------------------------------------------------------------

def _bad_trace(tmp_path: Path, column: str, value, as_type=None) -> Path:
    table = pq.read_table(next(CPU_TRACES.glob("*.parquet")))
    values = table.column(column).to_pylist()
    if as_type is not None:
        values = [None if v is None else str(v) for v in values]
    values[1] = value
    i = table.schema.get_field_index(column)
    arr = pa.array(values, type=as_type or table.schema.field(column).type)
    table = table.set_column(i, pa.field(column, arr.type), arr).replace_schema_metadata(table.schema.metadata)
    d = tmp_path / "traces"
    d.mkdir()
    pq.write_table(table, d / "part-0.parquet")
    return d


@pytest.mark.parametrize("column, value, as_type, needles", [
    ("time_median_s", 0.0, None, ["row 1", "time_median_s = 0.0", "positive"]),
    ("time_median_s", -1e-3, None, ["row 1", "time_median_s = -0.001"]),
    ("time_median_s", float("nan"), None, ["row 1", "time_median_s = nan"]),
    ("time_min_s", float("inf"), None, ["row 1", "time_min_s = inf"]),
    ("energy_j", -1.0, None, ["row 1", "energy_j = -1.0"]),
    ("density", 1.5, None, ["row 1", "density = 1.5", "(0, 1]"]),
    ("m", "abc", pa.string(), ["column 'm'", "string"]),
    ("m", "128", pa.string(), ["column 'm'", "string"]),
    ("m", -4, None, ["row 1", "m = -4"]),
    ("params", "{not json", None, ["row 1", "params", "JSON object"]),
    ("params", None, None, ["row 1", "params = None", "must not be null"]),  # found by the fuzz test
    ("timestamp", 2**62, None, ["row 1", "timestamp", "1970..9999"]),  # found by the fuzz test
])
def test_bad_trace_rows(run, tmp_path, column, value, as_type, needles):
    """Used to give MAPE −100 % / nan with exit 0, or a LinAlgError traceback (time 0)."""
    d = _bad_trace(tmp_path, column, value, as_type)
    assert_exit_2(run("validate", "--traces", d, "--arch", "cpu_numpy", "--calibrate-on", "0.5", "--format", "json"),
                  "part-0.parquet", *needles)
    assert_exit_2(run("traces", "summarize", d), "part-0.parquet", *needles)


def test_truncated_trace(run, tmp_path):
    d = tmp_path / "traces"
    d.mkdir()
    (d / "part-0.parquet").write_bytes(next(CPU_TRACES.glob("*.parquet")).read_bytes()[:3000])
    assert_exit_2(run("validate", "--traces", d, "--arch", "cpu_numpy"), "part-0.parquet", "truncated")


# -- tensors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("array, needles", [
    (np.zeros((0, 8)), ["empty", "0×8"]),
    (np.array([[1.0, np.nan], [2.0, 3.0]]), ["NaN or inf"]),
    (np.array([["a", "b"]]), ["<U1", "real numbers"]),
])
def test_bad_weight_tensor(run, tmp_path, array, needles):
    np.save(tmp_path / "w.npy", array)
    assert_exit_2(run("prune", tmp_path / "w.npy", "--radius", "1", "--out", tmp_path / "p.npy"), "w.npy", *needles)
    assert_exit_2(run("tasd", "decompose", tmp_path / "w.npy"), "w.npy", *needles)
    _no_files(tmp_path, "w.npy")


def test_roofline_infinite_peak(run):
    assert_exit_2(run("traces", "roofline", CPU_TRACES, "--peak-tflops", "inf", "--peak-gbs", "10", "--format", "json"),
                  "--peak-tflops", "inf")


# -- Ctrl-C -------------------------------------------------------------------------------------

def _interrupt_on_call(monkeypatch, module, name: str, after: int) -> None:
    """Make ``module.name`` raise KeyboardInterrupt on call number ``after + 1``, as Ctrl-C would."""
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapper(*a, **k):
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(module, name, wrapper)


def test_ctrl_c_kernels_run_reports_kept_rows(run, tmp_path, monkeypatch):
    import kernels.trace as trace
    from kernels.suites import get_cases
    from kernels.trace import read_traces

    _interrupt_on_call(monkeypatch, trace, "time_call", 1)
    out = tmp_path / "traces"
    code, _, err = run("kernels", "run", "--suite", "gemm", "--repeats", "1", "--warmup", "0", "--out", out)
    total = len(get_cases("gemm", "small", np, 0))
    assert code == 130 and len(err.strip().splitlines()) == 1, err
    assert total > 1 and f"1 of {total} cases finished" in err and str(out) in err
    assert read_traces(out).num_rows == 1


def test_ctrl_c_sweep_reports_stored_points(run, tmp_path, monkeypatch):
    import accelsim.explore.sweep as sweep

    _interrupt_on_call(monkeypatch, sweep, "evaluate", 1)
    out = tmp_path / "sweep"
    args = ["sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,32,64", "--workload", SMALL,
            "--no-dask", "--out", out, "--format", "json"]
    code, _, err = run(*args)
    assert code == 130 and "1 of 3 new points finished" in err and "re-run" in err, err
    monkeypatch.undo()
    monkeypatch.chdir(ROOT)
    code, stdout, _ = run(*args)
    assert code == 0 and (json.loads(stdout)["computed"], json.loads(stdout)["reused"]) == (2, 1)


def test_ctrl_c_tasd_search_says_nothing_written(run, tmp_path, monkeypatch):
    import accelsim.codesign.tasder as tasder

    _interrupt_on_call(monkeypatch, tasder, "search", 0)
    code, _, err = run("tasd", "search", "--arch", "tasd_ttc", "--workload", SMALL, "--max-error", "0.1",
                       "--out", tmp_path / "t.json")
    assert code == 130 and "nothing written" in err
    _no_files(tmp_path)


# -- sparse workloads and the demo --------------------------------------------------------------

def test_weight_sparsity_makes_compare_rows_differ(run):
    """dense_tc runs 1:4 weights dense, stc_2of4 only as 2:4, tasd_ttc natively: three cycle counts."""
    code, out, _ = run("compare", "--arch", "dense_tc", "--arch", "stc_2of4", "--arch", "tasd_ttc",
                       "--workload", "bert_base", "--param", "layers=1", "--weight-sparsity", "1:4", "--format", "json")
    assert code == 0
    cycles = [a["cycles"] for a in json.loads(out)["archs"]]
    assert cycles[0] > cycles[1] > cycles[2]


def test_weight_sparsity_matches_the_python_api(run):
    from accelsim import Sparsity, load_arch, simulate
    from accelsim.model.workloads import bert_base

    code, out, _ = run("simulate", "--arch", "stc_2of4", "--workload", "bert_base", "--param", "layers=2",
                       "--weight-sparsity", "2:4", "--format", "json")
    rep = simulate(load_arch("stc_2of4"), bert_base(128, layers=2).with_sparsity(weight=Sparsity.parse("2:4")))
    doc = json.loads(out)
    assert code == 0 and doc["workload"] == "bert_base_s128 (weights 2:4)"
    assert doc["total"]["cycles"] == rep.total["cycles"]


def test_bad_weight_sparsity(run):
    assert_exit_2(run("simulate", "--arch", "stc_2of4", "--workload", SMALL, "--weight-sparsity", "5:4"), "5:4")


def test_demo_explains_each_section(run):
    from accelsim.cli.simulate_cmd import DEMO_GUIDE

    code, out, _ = run("demo")
    assert code == 0
    flat = " ".join(out.split())
    titles = ["resnet50 on systolic_ws_32x32", "dense vs sparse tensor core", "validate: committed traces"]
    for key, title in zip(("systolic", "sparse", "replay"), titles):
        guide = " ".join(DEMO_GUIDE[key].split())
        assert guide in flat and flat.index(guide) < flat.index(title), key
    assert "mape_pct is the mean of |projected - measured| / measured" in flat


def test_plot_must_be_png(run, tmp_path):
    """The plots are PNG bytes: a .pdf name would hold a PNG, so it is refused before simulating."""
    assert_exit_2(run("compare", "--arch", "dense_tc", "--arch", "stc_2of4", "--workload", SMALL,
                      "--plot", tmp_path / "c.pdf"), "--plot", "c.pdf", ".png")
    _no_files(tmp_path)


@pytest.mark.parametrize("args, needles", [
    (["kernels", "run", "--suite", "gemm", "--repeats", "1000000000"], ["--repeats", "MAX_REPEATS", "1000000000"]),
    (["sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,32", "--workload", SMALL,
      "--workers", "100000"], ["--workers 100000", "per CPU"]),
])
def test_option_bounds(run, args, needles):
    """Options that would only spend time or processes are bounded, with the bound in the message."""
    assert_exit_2(run(*args), *needles)


@pytest.mark.parametrize("kernel, params, needles", [
    ("kron_matmul_fused", '{"factors": 3}', ["'factors' list"]),
    ("kron_matmul_fused", '{"factors": [[8, "8"]]}', ["'factors' entry", "'8'"]),
    ("gemm", '{"batch": "abc"}', ["'batch'", "'abc'"]),
])
def test_bad_trace_params(run, tmp_path, kernel, params, needles):
    """Kernel-specific params are free-form JSON; replay checks what it reads (found by the fuzz test)."""
    table = pq.read_table(next(CPU_TRACES.glob("*.parquet")))
    values = table.column("params").to_pylist()
    values[table.column("kernel").to_pylist().index(kernel)] = params
    i = table.schema.get_field_index("params")
    table = table.set_column(i, table.schema.field(i), pa.array(values, pa.string()))
    (tmp_path / "t").mkdir()
    pq.write_table(table, tmp_path / "t" / "part-0.parquet")
    assert_exit_2(run("validate", "--traces", tmp_path / "t", "--arch", "cpu_numpy"), f"trace record {kernel!r}",
                  *needles)
