"""CLI sub-apps `kernels run` and `traces ...` through typer's runner; bad input exits 2 with one line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import accelsim.cli as cli
import accelsim.cli.kernels_cmd  # noqa: F401  (registers `kernels`)
import accelsim.cli.traces_cmd  # noqa: F401  (registers `traces`)
from kernels.errors import InputError


def invoke(args):
    """Run like `accelsim.cli.main`: InputError -> exit 2 with one line."""
    try:
        res = CliRunner().invoke(cli.app, args, catch_exceptions=False, standalone_mode=False)
    except InputError as exc:
        return 2, str(exc)
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code, text = invoke(["kernels", "run", "--suite", "all", "--out", str(out), "--repeats", "2",
                         "--warmup", "0", "--backend", "numpy", "--format", "json"])
    assert code == 0, text
    from kernels.suites import get_cases

    expected = len(get_cases("all", "small", np, 0))
    assert expected >= 12  # gemm + nm_spmm alone give 12 small cases
    assert len(json.loads(text)["rows"]) == expected
    return out


@pytest.mark.parametrize("cmd", [["summarize"], ["roofline"], ["compare"]])
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_commands_run(run_dir, cmd, fmt):
    paths = [str(run_dir)] * (2 if cmd == ["compare"] else 1)
    code, text = invoke(["traces", *cmd, *paths, "--format", fmt])
    assert code == 0, text
    if fmt == "json":
        json.loads(text)


def test_roofline_plot(run_dir, tmp_path):
    png = tmp_path / "roof.png"
    code, text = invoke(["traces", "roofline", str(run_dir), "--plot", str(png), "--peak-tflops", "1", "--peak-gbs", "10"])
    assert code == 0, text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args",
    [
        ["traces", "summarize", "/nonexistent/trace"],
        ["traces", "roofline", "EMPTY"],
        ["traces", "summarize", "BAD"],
        ["traces", "roofline", "RUN", "--peak-tflops", "-1"],
        ["kernels", "run", "--suite", "nope", "--backend", "numpy"],
        ["kernels", "run", "--suite", "gemm", "--sizes", "huge", "--backend", "numpy"],
        ["kernels", "run", "--suite", "gemm", "--repeats", "0", "--backend", "numpy"],
        ["kernels", "run", "--suite", "gemm", "--backend", "tpu"],
    ],
)
def test_bad_input_exit_2_one_line(run_dir, tmp_path, args):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.parquet").write_bytes(b"garbage")
    subst = {"EMPTY": str(tmp_path / "empty"), "BAD": str(tmp_path / "bad"), "RUN": str(run_dir)}
    code, text = invoke([subst.get(a, a) for a in args])
    assert code == 2
    assert text and "\n" not in text.strip()


def test_main_turns_input_error_into_exit_2(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["accelsim", "traces", "summarize", "/nonexistent/trace"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("accelsim: error:") and "\n" not in err


def test_deterministic_inputs():
    from kernels.suites import get_cases

    a = get_cases("nm_spmm", "small", np, seed=3)[1].prepare()
    b = get_cases("nm_spmm", "small", np, seed=3)[1].prepare()
    assert a.args[0].values.tobytes() == b.args[0].values.tobytes()
    assert a.args[1].tobytes() == b.args[1].tobytes() and a.args[1].any()
    c = get_cases("nm_spmm", "small", np, seed=4)[1].prepare()
    assert c.args[1].tobytes() != a.args[1].tobytes()  # the seed decides the data
