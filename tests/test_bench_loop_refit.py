"""bench/bench_loop_refit.py: ``--arch-set`` sets a field of each copied arch; a bad setting stops it; the runs are
validated as the CLI would; ``--variant`` prices them as bench/loop_variants.py says."""

from __future__ import annotations

import json
import shutil

import pyarrow.compute as pc
import pytest
import yaml

from accelsim.model.arch import load_arch
from conftest import ROOT, load_script, run_cli


def test_set_fields_sets_nested_fields_read_as_yaml(tmp_path):
    """A calibrated CPU arch with ``compute.k_multiple`` set to 8 and ``compute.tile_options`` to a list: both as
    given, every other field as written, and the file loads as an arch."""
    refit = load_script("bench/bench_loop_refit.py")
    src = load_arch("cpu_numpy")
    text = (tmp_path / "in.yaml")
    text.write_text(yaml.safe_dump(src.model_dump(mode="json")))
    out = refit.set_fields(text.read_text(), ["compute.k_multiple=8", "compute.tile_options=[[32, 32, 16]]"])
    (tmp_path / "out.yaml").write_text(out)
    got = load_arch(tmp_path / "out.yaml")
    assert got.compute.k_multiple == 8 and [tuple(t) for t in got.compute.tile_options] == [(32, 32, 16)]
    assert got.model_copy(update={"compute": src.compute}) == src
    back = {"k_multiple": src.compute.k_multiple, "tile_options": src.compute.tile_options}
    assert got.compute.model_copy(update=back) == src.compute


def test_a_bad_setting_exits_2_naming_it_and_writes_nothing(tmp_path, capsys):
    """``--arch-set`` without ``=``, or naming a section the arch lacks: one line naming the setting, exit 2, no
    directory made."""
    refit = load_script("bench/bench_loop_refit.py")
    cal = tmp_path / "src" / "t1" / "p1" / "cal"
    cal.mkdir(parents=True)
    (cal / "calibration.json").write_text("{}")
    (cal / "arch.yaml").write_text(yaml.safe_dump(load_arch("cpu_numpy").model_dump(mode="json")))
    for bad in ("compute.k_multiple", "nosuch.k_multiple=1", "compute.units.x=1"):
        with pytest.raises(SystemExit) as e:
            refit.main([str(tmp_path / "src"), str(tmp_path / "dst"), "--arch-set", bad])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert bad in err and "Traceback" not in err
        assert not (tmp_path / "dst").exists()


LOOPS = ROOT / "traces" / "loops-xeon-2vcpu"


@pytest.fixture(scope="module")
def one_pass(tmp_path_factory):
    """The first two-thread pass of a loop stored from the 2-vCPU Xeon VM, alone: a refit's SRC."""
    src = tmp_path_factory.mktemp("loop")
    shutil.copytree(LOOPS / "f2b7f70-a" / "t2" / "p1", src / "t2" / "p1")
    return src


@pytest.fixture(scope="module")
def refitted(one_pass, tmp_path_factory):
    dst = tmp_path_factory.mktemp("refit")
    load_script("bench/bench_loop_refit.py").main([str(one_pass), str(dst)])
    return dst / "t2" / "p1"


def test_the_in_process_validation_gives_what_the_cli_prints(refitted):
    """Each stored run validated in the refit's process reports what ``accelsim validate`` prints as a subprocess."""
    for loop in ("seq", "full", "bert"):
        cli = run_cli("validate", "--traces", str(refitted / loop), "--calibration", str(refitted / "cal"),
                      "--format", "json")
        assert cli.returncode == 0, cli.stderr
        assert json.loads((refitted / f"{loop}.json").read_text()) == json.loads(cli.stdout)


def test_net_peak_takes_the_peak_sizes_pack_pass_off_its_time(one_pass, tmp_path):
    """``--variant net_peak``: each dtype's MAC rate is the peak size's n³ multiply over its measured time less the
    pack pass, one read and one write of 3n² values at the L3's copy rate (closed form from the stored files)."""
    cal = one_pass / "t2" / "p1" / "cal"
    doc = json.loads((cal / "calibration.json").read_text())
    arch = load_arch(cal / "arch.yaml")
    l3 = next(lvl for lvl in arch.memory if lvl.name == "l3")
    load_script("bench/bench_loop_refit.py").main([str(one_pass), str(tmp_path), "--variant", "net_peak"])
    got = load_arch(tmp_path / "t2" / "p1" / "cal" / "arch.yaml")
    for dtype, short, item in (("float32", "fp32", 4), ("float64", "fp64", 8)):
        rate = doc["measured"]["gemm_gflops"][dtype]["median"]
        (n,) = [int(s) for s, r in doc["measured"]["gemm_gflops_by_size"][dtype].items() if r == rate]
        t = 2 * n ** 3 / (rate * 1e9)
        pack = 2 * 3 * n * n * item / (l3.bandwidth * arch.clock_ghz * 1e9)
        assert 0 < pack < t / 5
        want = arch.compute.macs_per_cycle[short] * t / (t - pack)
        assert got.compute.macs_per_cycle[short] == pytest.approx(want, rel=1e-5)
    assert got.model_copy(update={"compute": arch.compute}) == arch
    refit_doc = json.loads((tmp_path / "t2" / "p1" / "cal" / "calibration.json").read_text())
    assert refit_doc["measured"] == doc["measured"]


def test_gather_at_cold_reprices_the_gather_layers_fetch_only(one_pass, refitted, tmp_path):
    """``--variant gather_at_cold`` (the pricing before f2b7f70): the plan's gather-path layers (the 1:8 vector FFNs)
    fetch at the cold GEMMs' scale, which on this calibration is below their own, so they come out cheaper; every
    other layer, and the measured times, as the replay prices them now."""
    from accelsim.replay.calibration_dir import load_calibration_dir
    from accelsim.replay.project import GATHER, items_from_table
    from accelsim.replay.traces import load as load_traces

    load_script("bench/bench_loop_refit.py").main([str(one_pass), str(tmp_path), "--variant", "gather_at_cold"])
    arch, cal, _ = load_calibration_dir(refitted / "cal")
    assert cal["groups"]["cold_gemm float32"].memory_scale < cal["groups"]["nm_gather float32"].memory_scale
    table = load_traces(refitted / "bert")
    layers = table.filter(pc.not_equal(table.column("kernel"), "network"))  # the whole-run record is no layer
    gather = {json.loads(it.row["params"])["layer"] for it in items_from_table(layers, arch) if it.family == GATHER}
    assert gather
    now = json.loads((refitted / "bert.json").read_text())["variants"]
    then = json.loads((tmp_path / "t2" / "p1" / "bert.json").read_text())["variants"]
    for v_now, v_then in zip(now, then):
        for a, b in zip(v_now["layers"], v_then["layers"]):
            assert a["measured_s"] == b["measured_s"]
            if v_now["plan"] != "dense" and a["layer"] in gather:
                assert b["projected_s"] < a["projected_s"]
            else:
                assert b["projected_s"] == a["projected_s"]


def test_an_unknown_variant_exits_2_and_writes_nothing(one_pass, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        load_script("bench/bench_loop_refit.py").main([str(one_pass), str(tmp_path / "dst"), "--variant", "nosuch"])
    assert e.value.code == 2 and "nosuch" in capsys.readouterr().err
    assert not (tmp_path / "dst").exists()


def test_fetch_only_prices_a_fetching_dense_layer_at_the_gemm_groups_fit(tmp_path):
    """``--variant fetch_only`` (the pricing before the thirty-second slice) on a one-thread pass, whose cold GEMMs
    fitted a memory scale above the ``gemm`` group's: the dense layers that fetch (``bert_base``'s, every one of them
    in a pass of 340 MB) come out cheaper than the replay prices them now, by their warm memory time over the two
    scales' difference; the plan's sparse layers and the measured times as they are."""
    from accelsim.replay.calibration_dir import load_calibration_dir
    from accelsim.replay.project import items_from_table, project
    from accelsim.replay.traces import load as load_traces

    src = tmp_path / "src"
    shutil.copytree(LOOPS / "f26c971" / "t1" / "p1", src / "t1" / "p1")
    script = load_script("bench/bench_loop_refit.py")
    script.main([str(src), str(tmp_path / "now")])
    script.main([str(src), str(tmp_path / "then"), "--variant", "fetch_only"])
    arch, cal, _ = load_calibration_dir(tmp_path / "now" / "t1" / "p1" / "cal")
    cold, gemm = cal["groups"]["cold_gemm float32"], cal["groups"]["gemm float32"]
    assert cold.memory_scale > gemm.memory_scale
    table = load_traces(tmp_path / "now" / "t1" / "p1" / "bert")
    layers = table.filter(pc.not_equal(table.column("kernel"), "network"))
    memory = {json.loads(it.row["params"])["layer"]: project(arch, it.workload, it.working_set).memory_s
              for it in items_from_table(layers, arch) if it.family == "gemm"}
    now, then = ([v for v in json.loads((tmp_path / d / "t1" / "p1" / "bert.json").read_text())["variants"]]
                 for d in ("now", "then"))
    dense = 0
    for v_now, v_then in zip(now, then):
        for a, b in zip(v_now["layers"], v_then["layers"]):
            assert a["measured_s"] == b["measured_s"]
            if a["kernel"] == "gemm" and a["layer"] in memory:
                dense += 1
                want = (cold.memory_scale - gemm.memory_scale) * memory[a["layer"]]
                assert a["projected_s"] - b["projected_s"] == pytest.approx(want, rel=1e-6)
            else:
                assert b["projected_s"] == a["projected_s"]
    assert dense >= 72  # the dense run's 72 projections and FFNs at least
