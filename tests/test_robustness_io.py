"""Issue 25, per class: nothing lost, nothing half-written, no traceback.

Readers (FIFOs and devices, size, nesting depth, integer digits, duplicate keys, .npy headers, weight
values), outputs (onto an input, name length, unwritable places, a full disk), signals (SIGTERM like
Ctrl-C, SIGKILL losing at most the record in flight), usage errors as one line, and the listed
tracebacks and accepted nonsense. The table of classes, checks and tests is docs/robustness.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, assert_exit_2, run_in_process
from test_robustness import ARCH, CPU_TRACES

SMALL = str(ROOT / "tests" / "data" / "topologies" / "gemm_mix.csv")
H200_TRACES = ROOT / "traces" / "nvidia-h200-cupy"
WORKLOAD = "workload:\n  name: w\n  layers:\n    - {name: g, m: 8, n: 8, k: 8}\n"


@pytest.fixture
def run(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    return lambda *args: run_in_process(capsys, monkeypatch, *map(str, args))


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _subprocess(args: list[str], *, env: dict | None = None, prelude: str = "", timeout: int = 120, **kw):
    """``python -c PRELUDE; accelsim ARGS`` in a child process (a signal or resource limit must not hit pytest).

    Ctrl-C is restored first: a test run started in the background (``cmd &``) hands its children SIGINT
    ignored, and Python then never raises KeyboardInterrupt, as it would in a terminal."""
    code = ("import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n" + textwrap.dedent(prelude)
            + "\nimport sys\nfrom accelsim.cli import main\nsys.argv = ['accelsim', *sys.argv[1:]]\nmain()\n")
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **(env or {})}
    if "stdout" not in kw:
        kw["capture_output"] = True
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], text=True, cwd=kw.pop("cwd", ROOT),
                          env=full_env, timeout=timeout, **kw)


_MANY = """
import contextlib, io, json, sys
from accelsim.cli import main
results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["accelsim", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def _many_in_child(commands: list[list], *, prelude: str = "", cwd=ROOT) -> list[tuple[int, str]]:
    """Run several ``accelsim`` commands one after another in one child process (one start-up):
    [(exit status, stderr)] in order. For faults that must not reach pytest (a FIFO that could block,
    a file-size limit)."""
    code = textwrap.dedent(prelude) + _MANY
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps([[str(a) for a in c] for c in commands])],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return [tuple(r) for r in json.loads(proc.stdout.splitlines()[-1])]


def _one_line(proc, code: int, *needles: str) -> str:
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == code and len(lines) == 1 and "Traceback" not in proc.stderr, (proc.returncode, proc.stderr)
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# -- readers: what a file is ----------------------------------------------------------------------

def _input_commands(path: Path) -> dict[str, list]:
    """Every CLI input that is a file, given ``path`` in its place."""
    return {
        "arch YAML": ["simulate", "--arch", path, "--workload", SMALL],
        "workload YAML": ["simulate", "--arch", "dense_tc", "--workload", path],
        "topology CSV": ["simulate", "--arch", "dense_tc", "--workload", path],
        "weights .npy": ["tasd", "decompose", path],
        "plan JSON": ["run", "--plan", path, "--out", path.parent / "o"],
        "calibration JSON": ["validate", "--traces", H200_TRACES, "--arch", "h200_sxm", "--calibration", path],
    }


_SUFFIX = {"arch YAML": ".yaml", "workload YAML": ".yaml", "topology CSV": ".csv", "weights .npy": ".npy",
           "plan JSON": ".json", "calibration JSON": ".json"}


def test_fifo_is_refused_not_read(tmp_path):
    """A FIFO used to hang the command forever (nothing ever writes to it); now refused on sight, for
    every kind of input file (in a child process: a regression would block, not fail)."""
    fifos = {what: tmp_path / f"in{i}{suffix}" for i, (what, suffix) in enumerate(sorted(_SUFFIX.items()))}
    for f in fifos.values():
        os.mkfifo(f)
    results = _many_in_child([_input_commands(f)[what] for what, f in fifos.items()])
    for (what, f), (code, err) in zip(fifos.items(), results):
        assert code == 2 and err.count("\n") == 1 and f.name in err and "is a FIFO" in err, (what, err)


@pytest.mark.parametrize("what", ["arch YAML", "workload YAML", "weights .npy", "calibration JSON"])
def test_device_is_refused(run, what):
    """/dev/zero as a config used to allocate until MemoryError (47 s)."""
    assert_exit_2(run(*_input_commands(Path("/dev/zero"))[what]), "/dev/zero", "is a device")


@pytest.mark.parametrize("what", ["arch YAML", "workload YAML", "topology CSV", "plan JSON", "calibration JSON"])
def test_oversized_text_input(run, tmp_path, what):
    """A 200 MB config (sparse on disk) is refused by its size, before a byte is parsed."""
    big = tmp_path / f"big{_SUFFIX[what]}"
    with open(big, "wb") as fh:
        fh.truncate(200 * 2**20)
    assert_exit_2(run(*_input_commands(big)[what]), big.name, "209,715,200 bytes", "MAX_TEXT_BYTES")


def _deep(kind: str, depth: int) -> str:
    if kind == "yaml":
        return "version: 1\nname: " + "[" * depth + "]" * depth + "\n"
    return '{"format": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("what", ["arch YAML", "workload YAML", "plan JSON", "calibration JSON"])
@pytest.mark.parametrize("depth", [65, 5000])
def test_deep_nesting(run, tmp_path, what, depth):
    """5000 levels used to raise RecursionError; 65 is one past MAX_DEPTH (parses, then refused)."""
    f = tmp_path / f"deep{_SUFFIX[what]}"
    f.write_text(_deep("json" if what.endswith("JSON") else "yaml", depth))
    assert_exit_2(run(*_input_commands(f)[what]), f.name, "nested more than 64 levels", "MAX_DEPTH")


@pytest.mark.parametrize("what", ["arch YAML", "workload YAML", "plan JSON", "calibration JSON"])
def test_integer_beyond_digit_limit(run, tmp_path, what):
    f = tmp_path / f"int{_SUFFIX[what]}"
    f.write_text(('{"version": %s}' if what.endswith("JSON") else "version: %s\n") % ("9" * 5001))
    assert_exit_2(run(*_input_commands(f)[what]), f.name, "4300 digits")


@pytest.mark.parametrize("what, text, key", [
    ("arch YAML", ARCH.replace("name: tiny", "name: tiny\nname: other"), "name"),
    ("arch YAML", ARCH.replace("rows: 8,", "rows: 8, rows: 16,"), "rows"),
    ("workload YAML", WORKLOAD.replace("m: 8,", "m: 8, m: 4096,"), "m"),
    ("plan JSON", '{"format": "accelsim.plan", "format": "x"}', "format"),
    ("calibration JSON", '{"version": 1, "params": {"a": 1, "a": 2}}', "a"),
])
def test_duplicate_keys_refused(run, tmp_path, what, text, key):
    """YAML and JSON let the last of two equal keys win silently; a duplicate is now an error naming it."""
    f = tmp_path / f"dup{_SUFFIX[what]}"
    f.write_text(text)
    assert_exit_2(run(*_input_commands(f)[what]), f.name, f"duplicate key {key!r}")


def test_nan_in_json_refused(run, tmp_path):
    f = tmp_path / "plan.json"
    f.write_text('{"format": NaN}')
    assert_exit_2(run("run", "--plan", f, "--out", tmp_path / "o"), "plan.json", "NaN is not a JSON number")


# -- readers: .npy headers and weight values ------------------------------------------------------

def _npy_with_shape(path: Path, shape: str) -> Path:
    np.save(path, np.ones((4, 4)))
    data = path.read_bytes().replace(b"(4, 4)", shape.encode())
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("shape, needles", [
    ("(200000000, 200000000)", ["200000000×200000000", "320,000,000,000,000,000 bytes"]),  # 284 PiB claimed
    ("(4, 5)", ["4×5", "160 bytes", "holds 128"]),                                          # more than the file
    ("(4, 3)", ["4×3", "96 bytes", "holds 128"]),                                           # less than the file
])
def test_npy_header_checked_against_file_size(run, tmp_path, shape, needles):
    """The header's shape used to be allocated first (MemoryError for 35 PiB); now compared with the size."""
    w = _npy_with_shape(tmp_path / "w.npy", shape)
    for args in (["prune", w, "--radius", "1", "--out", tmp_path / "p.npy"], ["tasd", "decompose", w]):
        assert_exit_2(run(*args), "w.npy", "header declares", *needles)
    assert _files(tmp_path) == ["w.npy"]


@pytest.mark.parametrize("array, needles", [
    (np.ones((8, 8), bool), ["bool data", "real numbers"]),
    (np.full((8, 8), 1e308), ["1e+308", "MAX_WEIGHT"]),
    (np.full((8, 8), -4e38), ["4e+38", "MAX_WEIGHT"]),
])
def test_weight_values(run, tmp_path, array, needles):
    """Bool arrays used to raise TypeError in tasd decompose; 1e308 overflowed norms to inf in JSON."""
    np.save(tmp_path / "w.npy", array)
    assert_exit_2(run("tasd", "decompose", tmp_path / "w.npy", "--format", "json"), "w.npy", *needles)
    assert_exit_2(run("prune", tmp_path / "w.npy", "--radius", "1", "--out", tmp_path / "p.npy"), *needles)
    assert _files(tmp_path) == ["w.npy"]


def test_largest_float32_weight_still_accepted(run, tmp_path):
    """The bound is float32's largest: such a tensor still decomposes, with finite JSON numbers."""
    a = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32)
    a[0, 0] = np.finfo(np.float32).max
    np.save(tmp_path / "w.npy", a)
    code, out, _ = run("tasd", "decompose", tmp_path / "w.npy", "--format", "json")
    assert code == 0 and all(np.isfinite(s["rel_error"]) for s in json.loads(out)["series"])


def test_search_weights_must_be_finite(run, tmp_path):
    """+inf weights used to plan 1:4 with error 0 and record NaN later; now refused naming the tensor."""
    from safetensors.numpy import save_file

    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    w[3, 5] = np.inf
    save_file({"g_64cube": w}, str(tmp_path / "w.safetensors"))
    assert_exit_2(run("tasd", "search", "--arch", "tasd_ttc", "--workload", SMALL, "--max-error", "0.1",
                      "--weights", tmp_path / "w.safetensors", "--out", tmp_path / "plan.json"),
                  "--weights tensor 'g_64cube'", "NaN or inf")
    assert _files(tmp_path) == ["w.safetensors"]


# -- outputs --------------------------------------------------------------------------------------

def test_save_calibration_onto_an_input_trace(run, tmp_path):
    """Used to exit 0 after overwriting the input trace with JSON; later reads of the folder failed."""
    traces = tmp_path / "traces"
    traces.mkdir()
    part = next(H200_TRACES.glob("*.parquet"))
    (traces / part.name).write_bytes(part.read_bytes())
    before = (traces / part.name).read_bytes()
    for dest in (traces / part.name, traces / "cal.json", traces):
        assert_exit_2(run("validate", "--traces", traces, "--arch", "h200_sxm", "--save-calibration", dest),
                      "--save-calibration", "input")
    assert (traces / part.name).read_bytes() == before and _files(traces) == [part.name]


@pytest.mark.parametrize("command", ["prune", "prune via a symlink", "simulate", "compare --plot", "tasd search"])
def test_output_onto_an_input_refused(run, tmp_path, command):
    w = tmp_path / "w.npy"
    np.save(w, np.random.default_rng(0).standard_normal((8, 8)))
    (tmp_path / "link.npy").symlink_to(w)
    args = {
        "prune": ["prune", w, "--radius", "1", "--out", w],
        "prune via a symlink": ["prune", w, "--radius", "1", "--out", tmp_path / "link.npy"],
        "simulate": ["simulate", "--arch", "dense_tc", "--workload", SMALL, "--out", SMALL],
        "compare --plot": ["compare", "--arch", "dense_tc", "--arch", "stc_2of4", "--workload", SMALL,
                           "--plot", SMALL],
        "tasd search": ["tasd", "search", "--arch", "tasd_ttc", "--workload", SMALL, "--max-error", "0.1",
                        "--out", SMALL],
    }[command]
    before = {p: p.read_bytes() for p in (w, Path(SMALL))}
    assert_exit_2(run(*args), "is an input of this command")
    assert all(p.read_bytes() == b for p, b in before.items())


def _forbid_work(monkeypatch):
    import accelsim.codesign.tasder as tasder
    import accelsim.model.simulate as sim
    import kernels.trace as trace

    def forbidden(*a, **k):
        raise AssertionError("work started before the destination was checked")

    monkeypatch.setattr(sim, "_run_layer", forbidden)
    monkeypatch.setattr(trace, "time_call", forbidden)
    monkeypatch.setattr(tasder, "search", forbidden)


@pytest.mark.parametrize("command", ["simulate --out", "prune --out", "tasd search --out", "validate --save-calibration",
                                     "compare --plot", "kernels run --out"])
def test_name_too_long_refused_before_work(run, tmp_path, monkeypatch, command):
    """A 300-character name used to fail with OSError (File name too long) after the work had run."""
    _forbid_work(monkeypatch)
    w = tmp_path / "w.npy"
    np.save(w, np.random.default_rng(0).standard_normal((8, 8)))
    name = "a" * 300
    args = {
        "simulate --out": ["simulate", "--arch", "dense_tc", "--workload", SMALL, "--out", tmp_path / f"{name}.json"],
        "prune --out": ["prune", w, "--radius", "1", "--out", tmp_path / f"{name}.npy"],
        "tasd search --out": ["tasd", "search", "--arch", "tasd_ttc", "--workload", SMALL, "--max-error", "0.1",
                              "--out", tmp_path / f"{name}.json"],
        "validate --save-calibration": ["validate", "--traces", H200_TRACES, "--arch", "h200_sxm",
                                        "--save-calibration", tmp_path / f"{name}.json"],
        "compare --plot": ["compare", "--arch", "dense_tc", "--arch", "stc_2of4", "--workload", SMALL,
                           "--plot", tmp_path / f"{name}.png"],
        "kernels run --out": ["kernels", "run", "--suite", "gemm", "--repeats", "1", "--out", tmp_path / name / "t"],
    }[command]
    assert_exit_2(run(*args), command.split()[-1], "bytes long", "this file system allows")
    assert _files(tmp_path) == ["w.npy"]


@pytest.mark.parametrize("where", ["a directory", "under a file", "read-only"])
def test_save_calibration_destination(run, tmp_path, where, monkeypatch):
    import accelsim.replay.device as device

    monkeypatch.setattr(device, "validate_gpu", lambda *a, **k: pytest.fail("fitted before the check"))
    dest = {"a directory": tmp_path / "d.json", "under a file": tmp_path / "f" / "c.json",
            "read-only": tmp_path / "ro" / "c.json"}[where]
    if where == "a directory":
        dest.mkdir()
    elif where == "under a file":
        (tmp_path / "f").write_text("x")
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        if os.access(tmp_path / "ro", os.W_OK):
            dest = Path("/proc/c.json")  # root ignores modes; /proc takes no new files
    needle = {"a directory": "is a directory", "under a file": "is not a directory", "read-only": "cannot write"}
    assert_exit_2(run("validate", "--traces", H200_TRACES, "--arch", "h200_sxm", "--save-calibration", dest),
                  "--save-calibration", needle[where])


_LIMIT = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot  # its font cache is built (written) before the limit
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
"""


def test_full_disk_one_line_nothing_left(tmp_path):
    """Files past 4 KiB fail (RLIMIT_FSIZE: EFBIG, or numpy's short write), as on a full disk: one line,
    exit 2, and neither the destination, nor a temporary, nor a folder the writer created is left;
    for every writer: JSON, parquet, .npy, a trace part, PNG, a plan."""
    np.save(tmp_path / "w.npy", np.random.default_rng(0).standard_normal((64, 64)))
    commands = {
        "simulate --out json": ["simulate", "--arch", "dense_tc", "--workload", "resnet50", "--out", "new/r.json"],
        "simulate --out parquet": ["simulate", "--arch", "dense_tc", "--workload", "resnet50", "--out", "r.parquet"],
        "prune --out": ["prune", "w.npy", "--radius", "1", "--out", "new/p.npy"],
        "kernels run --out": ["kernels", "run", "--suite", "gemm", "--repeats", "1", "--warmup", "0", "--out", "new/t"],
        "compare --plot": ["compare", "--arch", "dense_tc", "--arch", "stc_2of4", "--workload", SMALL, "--plot", "c.png"],
        "tasd search --out": ["tasd", "search", "--arch", "tasd_ttc", "--workload", "resnet50", "--max-error", "0.1",
                              "--out", "plan.json"],
    }
    for name, (code, err) in zip(commands, _many_in_child(list(commands.values()), prelude=_LIMIT, cwd=tmp_path)):
        assert code == 2 and err.count("\n") == 1 and "cannot write" in err and "nothing was written there" in err, \
            (name, err)
    assert _files(tmp_path) == ["w.npy"]


def test_stdout_on_a_full_device(tmp_path):
    """`--format json > /dev/full` used to end in a traceback at the interpreter's final flush."""
    with open("/dev/full", "w") as full:
        proc = _subprocess(["simulate", "--arch", "dense_tc", "--workload", "resnet50", "--format", "json"],
                           stdout=full, stderr=subprocess.PIPE)
    _one_line(proc, 2, "cannot write to standard output", "No space left on device")


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"},
                                 {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}])
def test_output_without_utf8(tmp_path, env):
    """A locale without UTF-8 used to crash on '→' and '‖' in tables; they are replaced instead."""
    np.save(tmp_path / "w.npy", np.random.default_rng(0).standard_normal((8, 8)))
    proc = _subprocess(["prune", tmp_path / "w.npy", "--radius", "1", "--out", tmp_path / "p.npy"], env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "prune w.npy" in proc.stdout and "norm" in proc.stdout


# -- prune: nothing written when a later check fails ----------------------------------------------

@pytest.mark.parametrize("extra, needles", [
    (["--arch", "nosuch"], ["nosuch", "no such arch"]),
    (["--arch", "dense_tc", "--residual", "5:4"], ["--residual", "5:4"]),
    (["--arch", "dense_tc", "--tokens", "0"], ["--tokens", "0"]),
    (["--arch", "dense_tc", "--residual", "u2"], ["--residual", "u2"]),
])
def test_prune_writes_nothing_when_a_later_option_is_bad(run, tmp_path, extra, needles, monkeypatch):
    """`--arch nosuch` (also --residual 5:4, --tokens 0) used to exit 2 after writing p.npy."""
    import accelsim.codesign.prune as prune

    monkeypatch.setattr(prune, "prune", lambda *a, **k: pytest.fail("pruned before the options were checked"))
    np.save(tmp_path / "w.npy", np.random.default_rng(0).standard_normal((16, 8)))
    assert_exit_2(run("prune", tmp_path / "w.npy", "--radius", "5", "--out", tmp_path / "p.npy", *extra), *needles)
    assert _files(tmp_path) == ["w.npy"]


# -- signals --------------------------------------------------------------------------------------

def _fault(target: str, after: int, sig: str) -> str:
    """A prelude that sends ``sig`` to this process on call ``after + 1`` of ``target`` (module:attr)."""
    module, attr = target.split(":")
    return f"""
import importlib, os, signal
_m = importlib.import_module({module!r})
_real = getattr(_m, {attr!r})
_n = [0]
def _wrapped(*a, **k):
    _n[0] += 1
    if _n[0] > {after}:
        os.kill(os.getpid(), signal.{sig})
    return _real(*a, **k)
setattr(_m, {attr!r}, _wrapped)
"""


def _tiny_plan(tmp_path):
    """A plan running one GEMM of the small workload as 2:4 on tasd_ttc, written to ``tmp_path/plan.json``."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format": "accelsim.plan", "version": 1, "network": {"workload": SMALL, "params": {}},
                                "arch": "tasd_ttc", "layers": [{"name": "g_64cube", "kernel": "nm", "pattern": "2:4"}]}))
    return plan


def test_kernels_run_sigkill_keeps_finished_cases(tmp_path):
    """SIGKILL during the fourth case: the three finished cases' rows survive (each flushed on finishing);
    before, every row was lost (written only at the end)."""
    from kernels.trace import read_traces

    out = tmp_path / "t"
    proc = _subprocess(["kernels", "run", "--suite", "nm_spmm", "--repeats", "1", "--warmup", "0", "--backend", "numpy",
                        "--out", out], prelude=_fault("kernels.trace:time_call", 3, "SIGKILL"))
    assert proc.returncode == -signal.SIGKILL
    table = read_traces(out)
    assert table.num_rows == 3 and len(set(table.column("run_id").to_pylist())) == 1
    assert not [p for p in out.rglob(".*")], "temporary file left"


_SIGNAL_CASES = {
    "simulate": ("accelsim.model.simulate:_run_layer", 1, ["interrupted", "nothing written"]),
    "kernels run": ("kernels.trace:time_call", 1, ["1 of", "cases finished", "kept"]),
    "sweep": ("accelsim.explore.sweep:evaluate", 1, ["1 of 2 new points finished", "re-run"]),
    "tasd search": ("accelsim.codesign.tasder:search", 0, ["nothing written"]),
    "run --plan, preparing": ("accelsim.codesign.runplan:prepare_run", 0, ["nothing written", "prepared"]),
}


@pytest.mark.parametrize("sig, command", [*(("SIGTERM", c) for c in _SIGNAL_CASES),
                                          ("SIGINT", "simulate"), ("SIGINT", "run --plan, preparing")])
def test_signal_one_line_exit_130(tmp_path, command, sig):
    """SIGTERM is handled as Ctrl-C by every command: one line saying what was kept, exit 130 (it used to
    kill `run --plan` silently, rc -15); Ctrl-C while a run is prepared used to exit 130 saying nothing."""
    plan = _tiny_plan(tmp_path)
    args = {
        "simulate": ["simulate", "--arch", "dense_tc", "--workload", SMALL, "--out", tmp_path / "r.json"],
        "kernels run": ["kernels", "run", "--suite", "gemm", "--repeats", "1", "--warmup", "0", "--backend", "numpy",
                        "--out", tmp_path / "t"],
        "sweep": ["sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,32", "--workload", SMALL,
                  "--no-dask", "--out", tmp_path / "s"],
        "tasd search": ["tasd", "search", "--arch", "tasd_ttc", "--workload", SMALL, "--max-error", "0.1",
                        "--out", tmp_path / "p.json"],
        "run --plan, preparing": ["run", "--plan", plan, "--out", tmp_path / "o", "--backend", "numpy"],
    }[command]
    target, after, needles = _SIGNAL_CASES[command]
    proc = _subprocess(args, prelude=_fault(target, after, sig))
    line = _one_line(proc, 130, *needles)
    assert line.startswith("accelsim: interrupted")
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "p.json").exists() and not (tmp_path / "o").exists()


def test_run_plan_sigterm_keeps_finished_passes(tmp_path):
    """SIGTERM in the third of 5 timed passes: exit 130, one line, the two finished passes' records kept."""
    from kernels.trace import read_traces

    plan = _tiny_plan(tmp_path)
    # a pass runs 7 layers per variant (dense and the plan): call 29 is in the third pass
    proc = _subprocess(["run", "--plan", plan, "--out", tmp_path / "o", "--repeats", "5", "--warmup", "0",
                        "--backend", "numpy", "--format", "json"],
                       prelude=_fault("accelsim.codesign.runplan:nm_spmm", 2, "SIGTERM"))
    _one_line(proc, 130, "interrupted after 2 of 5 timed passes", "kept")
    rows = read_traces(tmp_path / "o").to_pylist()
    assert rows and all(r["repeats"] == 2 for r in rows)
    assert json.loads(proc.stdout)["interrupted"] is True


# -- usage errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, line", [
    (["simulate", "--arch", "dense_tc", "--workload", SMALL, "--format", "xml"],
     "accelsim: error: --format: 'xml' is not one of table, json"),
    (["prune", "w.npy", "--radius", "1", "--out", "p.npy", "--method", "l0"],
     "accelsim: error: --method: 'l0' is not one of bilevel-l1inf, bilevel-l11, bilevel-l12, exact-l1inf"),
    (["simulate", "--workload", SMALL], "accelsim: error: Missing option '--arch' (see `accelsim simulate --help`)"),
    (["simulate", "--arch", "dense_tc", "--workload", SMALL, "--nope"],
     "accelsim: error: No such option: --nope (see `accelsim simulate --help`)"),
    (["kernels", "run", "--suite", "gemm", "--repeats", "many"], "accelsim: error: --repeats: "),
    (["simulat"], "accelsim: error: No such command 'simulat'"),
    (["tasd", "decompose"], "accelsim: error: Missing argument 'input'"),
])
def test_usage_errors_are_one_line(run, args, line):
    """typer's boxed, multi-line usage errors are one line now, exit 2."""
    code, _, err = run(*args)
    assert code == 2 and err.count("\n") == 1 and err.startswith(line), err


# -- tracebacks and accepted nonsense -------------------------------------------------------------

def test_compare_with_an_all_zero_energy_arch(run, tmp_path):
    """The schema allows all energies 0; compare divided by them (ZeroDivisionError). Ratios are null now."""
    zero = tmp_path / "zero.yaml"
    zero.write_text(ARCH.replace("20.0", "0.0").replace("1.0}", "0.0}").replace("0.2", "0.0"))
    for order in ([zero, "systolic_ws_32x32"], ["systolic_ws_32x32", zero]):
        code, out, _ = run("compare", "--arch", order[0], "--arch", order[1], "--workload", SMALL, "--format", "json",
                           "--plot", tmp_path / "c.png")
        doc = json.loads(out)
        assert code == 0 and (tmp_path / "c.png").exists()
        ratios = [a["energy_ratio"] for a in doc["archs"]]
        assert ratios == ([None, None] if order[0] == zero else [1.0, 0.0])
    code, out, _ = run("compare", "--arch", zero, "--arch", "dense_tc", "--workload", SMALL)
    assert code == 0 and "n/a" in out


@pytest.mark.parametrize("case, needles", [
    ("0 rows", ["no rows"]),
    ("--peak-gbs 1e-320", ["--peak-gbs", "1e-320", "MIN_RATE"]),
    ("--peak-tflops 1e308", ["--peak-tflops", "1e+308", "MAX_RATE"]),
    ("every committed device with one --peak-tflops", ["4 devices", "--peak-tflops/--peak-gbs give one roof"]),
])
def test_roofline_inputs(run, tmp_path, case, needles):
    table = pq.read_table(next(CPU_TRACES.glob("*.parquet")))
    empty = tmp_path / "empty"
    empty.mkdir()
    pq.write_table(table.slice(0, 0).replace_schema_metadata(table.schema.metadata), empty / "part-0.parquet")
    args = {"0 rows": [empty], "--peak-gbs 1e-320": [CPU_TRACES, "--peak-gbs", "1e-320"],
            "--peak-tflops 1e308": [CPU_TRACES, "--peak-tflops", "1e308", "--peak-gbs", "10"],
            "every committed device with one --peak-tflops": [ROOT / "traces", "--peak-tflops", "100"]}[case]
    assert_exit_2(run("traces", "roofline", *args, "--format", "json", "--plot", tmp_path / "r.png"), *needles)
    assert not (tmp_path / "r.png").exists()


@pytest.mark.parametrize("column, value, bound", [
    ("time_median_s", 1e300, "MAX_TIME_S"), ("time_min_s", 1e-300, "MIN_TIME_S"), ("time_max_s", 1e6, "MAX_TIME_S"),
    ("energy_j", 1e308, "MAX_ENERGY_J"), ("energy_window_s", 1e7, "MAX_TIME_S"), ("idle_power_w", 1e9, "MAX_POWER_W"),
])
def test_trace_values_bounded(run, tmp_path, column, value, bound):
    """time_median_s = 1e300 used to crash validate --format json --plot (and leave v.png behind);
    energy_j = 1e308 was accepted and overflowed the energy fit."""
    table = pq.read_table(next(CPU_TRACES.glob("*.parquet")))
    if column not in table.column_names:  # a version-1 file: the energy-window columns came in version 2
        table = table.append_column(column, pa.nulls(table.num_rows, pa.float64()))
    values = table.column(column).to_pylist()
    values[1] = value
    i = table.schema.get_field_index(column)
    table = table.set_column(i, table.schema.field(i), pa.array(values, pa.float64()))
    (tmp_path / "t").mkdir()
    pq.write_table(table, tmp_path / "t" / "part-0.parquet")
    for args in (["validate", "--traces", tmp_path / "t", "--arch", "cpu_numpy", "--format", "json", "--plot",
                  tmp_path / "v.png"], ["traces", "roofline", tmp_path / "t", "--format", "json"]):
        assert_exit_2(run(*args), "row 1", column, bound)
    assert _files(tmp_path) == ["t", "t/part-0.parquet"]


@pytest.mark.parametrize("content, needles", [
    (bytes(range(256)), ["not UTF-8"]),
    ("string param", ["params.", "must be a finite number", "'fast'"]),
    ("params a list", ["field params", "expected a mapping"]),
    ("inf param", ["Infinity is not a JSON number"]),
])
def test_bad_calibration_file(run, tmp_path, content, needles):
    cal = tmp_path / "cal.json"
    assert run("validate", "--traces", H200_TRACES, "--arch", "h200_sxm", "--save-calibration", cal,
               "--format", "json")[0] == 0
    doc = json.loads(cal.read_text())
    name = next(iter(doc["params"]))
    if isinstance(content, bytes):
        cal.write_bytes(content)
    elif content == "string param":
        cal.write_text(json.dumps({**doc, "params": {**doc["params"], name: "fast"}}))
    elif content == "params a list":
        cal.write_text(json.dumps({**doc, "params": [1, 2]}))
    else:
        cal.write_text(json.dumps({**doc, "params": {**doc["params"], name: "INF"}}).replace('"INF"', "Infinity"))
    assert_exit_2(run("validate", "--traces", H200_TRACES, "--arch", "h200_sxm", "--calibration", cal),
                  "cal.json", *needles)


@pytest.mark.parametrize("args, needles", [
    (["validate", "--traces", CPU_TRACES, "--arch", "cpu_numpy", "--seed", "-1"], ["--seed -1", "MAX_SEED"]),
    (["kernels", "run", "--suite", "gemm", "--seed", "-1"], ["--seed -1", "MAX_SEED"]),
    (["kernels", "run", "--suite", "gemm", "--seed", str(2**32)], ["--seed 4294967296", "MAX_SEED"]),
    (["tasd", "search", "--arch", "tasd_ttc", "--workload", SMALL, "--max-error", "0.1", "--refine", "-1"],
     ["--refine -1", "0..10,000"]),
    (["tasd", "search", "--arch", "tasd_ttc", "--workload", SMALL, "--max-error", "0.1", "--refine", "2"],
     ["--refine 2", "--budget"]),
    (["tasd", "search", "--arch", "tasd_ttc", "--workload", "minilm", "--max-error", "0.1", "--param", "seq_len=1000",
      "--out", "/tmp/never-written-plan.json"], ["seq_len=1000", "256 positions", "accelsim run"]),
    (["simulate", "--arch", "dense_tc", "--workload", SMALL, "--weight-sparsity", ""], ["--weight-sparsity", "empty"]),
    (["compare", "--arch", "dense_tc", "--arch", "stc_2of4", "--workload", SMALL, "--weight-sparsity", " "],
     ["--weight-sparsity", "empty"]),
    (["sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,32", "--workload", SMALL, "--scheduler", "X",
      "--no-dask"], ["--scheduler X --no-dask"]),
    (["simulate", "--arch", "dense_tc", "--workload", SMALL, "--param", "seq_len=1000"],
     ["--param seq_len", "only built-in networks"]),
])
def test_accepted_nonsense_refused(run, args, needles, monkeypatch):
    import accelsim.codesign.tasder as tasder

    monkeypatch.setattr(tasder, "search", lambda *a, **k: pytest.fail("searched before the options were checked"))
    assert_exit_2(run(*args), *needles)
    assert not Path("/tmp/never-written-plan.json").exists()


def test_param_for_file_workloads(run, tmp_path):
    """`--param` used to be ignored silently for a CSV or YAML workload, whose layers are fixed."""
    (tmp_path / "w.yaml").write_text(WORKLOAD)
    for wl in (tmp_path / "w.yaml", SMALL):
        for cmd in (["simulate", "--arch", "dense_tc"], ["tasd", "search", "--arch", "tasd_ttc", "--max-error", "0.1"]):
            assert_exit_2(run(*cmd, "--workload", wl, "--param", "batch=2"), "--param batch", "only built-in networks")


@pytest.mark.parametrize("edit, needles", [
    (("rows: 8", "rows: true"), ["compute", "rows", "boolean True"]),
    (("int8: 0.2", "int8: false"), ["mac_pj", "boolean"]),
    (("capacity_bytes: 65536", "capacity_bytes: 1, partition: {input: 1024}"), ["partition input = 1,024 bytes",
                                                                                "capacity_bytes 1"]),
    (("{name: dram", "{name: .dram"), ["memory.0.name", "'.dram'"]),  # found by the long fuzz run: StopIteration
    (("{name: sram", "{name: s ram"), ["memory.1.name", "'s ram'"]),
])
def test_arch_nonsense(run, tmp_path, edit, needles):
    arch = tmp_path / "a.yaml"
    arch.write_text(ARCH.replace(*edit))
    assert_exit_2(run("simulate", "--arch", arch, "--workload", SMALL), "a.yaml", *needles)


def test_layer_and_grid_bounds(run, tmp_path, monkeypatch):
    """A 200k-layer workload and a 10⁶-point grid used to run unbounded; refused before any is built."""
    import accelsim.model.simulate as sim
    from accelsim.checks import MAX_GRID_POINTS, MAX_LAYERS

    monkeypatch.setattr(sim, "_run_layer", lambda *a, **k: pytest.fail("simulated"))
    csv = tmp_path / "big.csv"
    csv.write_text("Layer,M,N,K,\n" + "".join(f"g{i},8,8,8,\n" for i in range(MAX_LAYERS + 1)))
    assert_exit_2(run("simulate", "--arch", "dense_tc", "--workload", csv), "100,001 layers", "MAX_LAYERS")
    import accelsim.checks as checks

    monkeypatch.setattr(checks, "MAX_LAYERS", 10)  # the same check in the YAML reader, without parsing 100k layers
    yml = tmp_path / "big.yaml"
    yml.write_text("workload:\n  name: big\n  layers:\n" + "    - {m: 8, n: 8, k: 8}\n" * 11)
    assert_exit_2(run("simulate", "--arch", "dense_tc", "--workload", yml), "11 layers", "MAX_LAYERS")
    assert_exit_2(run("simulate", "--arch", "dense_tc", "--workload", "bert_base", "--param", "layers=2"),
                  "bert_base", "16 layers", "MAX_LAYERS")  # a built-in's expansion too
    values = ",".join(str(v) for v in range(1, 1001))
    assert_exit_2(run("sweep", "--arch", "systolic_ws_32x32", "--grid", f"compute.rows={values}", "--grid",
                      f"compute.cols={values}", "--workload", SMALL, "--no-dask"),
                  "1,000,000 points", f"{MAX_GRID_POINTS:,}", "MAX_GRID_POINTS")


def test_sweep_pareto_non_finite_metrics(run, tmp_path):
    """Rows with NaN/inf EDP used to give "0 of 4 points" with exit 0."""
    out = tmp_path / "s"
    assert run("sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,32", "--workload", SMALL,
               "--no-dask", "--out", out, "--format", "json")[0] == 0
    part = next(out.glob("part-*.parquet"))
    table = pq.read_table(part)
    for bad in (float("nan"), float("inf")):
        edp = table.column("edp").to_pylist()
        edp[0] = bad
        pq.write_table(table.set_column(table.schema.get_field_index("edp"), "edp", pa.array(edp)), part)
        assert_exit_2(run("sweep", "pareto", out), part.name, f"edp = {bad!r}")


def test_sweep_resume_after_the_workload_changed(run, tmp_path):
    """Old and new rows used to mix under one workload name; the resume is refused instead."""
    wl = tmp_path / "wl.csv"
    wl.write_text(Path(SMALL).read_text())
    args = ["sweep", "--arch", "systolic_ws_32x32", "--grid", "compute.rows=16,32", "--workload", wl, "--no-dask",
            "--out", tmp_path / "s", "--format", "json"]
    assert run(*args)[0] == 0
    assert json.loads(run(*args)[1])["reused"] == 2  # unchanged: resumed
    wl.write_text(Path(SMALL).read_text().replace(" 64, 64, 64,", " 64, 96, 64,"))
    assert_exit_2(run(*args), "--out", "workload 'wl'", "another definition")


def test_run_plan_sigkill_keeps_finished_passes(tmp_path):
    """SIGKILL in the third of 5 timed passes: the two finished passes' records survive (written after each
    pass as the run's part, replaced by the next); before, the records were built only after the loop."""
    from kernels.trace import read_traces

    plan = _tiny_plan(tmp_path)
    proc = _subprocess(["run", "--plan", plan, "--out", tmp_path / "o", "--repeats", "5", "--warmup", "0",
                        "--backend", "numpy", "--format", "json"],
                       prelude=_fault("accelsim.codesign.runplan:nm_spmm", 2, "SIGKILL"))
    assert proc.returncode == -signal.SIGKILL
    out = tmp_path / "o"
    rows = read_traces(out).to_pylist()
    assert len(list(out.glob("*.parquet"))) == 1 and not [p for p in out.rglob(".*")], "one part, no temporary"
    by_role = {(json.loads(r["params"])["role"], json.loads(r["params"])["plan"]) for r in rows}
    assert all(r["repeats"] == 2 for r in rows) and {("run", "dense")} <= by_role and len(by_role) == 4
    assert len({r["run_id"] for r in rows}) == 1 and len(rows) == 2 * 8
