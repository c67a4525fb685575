"""bench/bench_loop_refit.py: ``--arch-set`` sets a field of each copied arch; a bad setting stops it."""

from __future__ import annotations

import pytest
import yaml

from accelsim.model.arch import load_arch
from conftest import load_script


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
