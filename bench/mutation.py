"""Mutation testing of the model's memory side, calibration and the trace recorder: is each change to the code caught?

Usage::

    python bench/mutation.py [--module NAME ...] [--jobs 1] [--timeout 60] [--json docs/results/mutation.json]
    python bench/mutation.py --list            # the mutants, not run
    python bench/mutation.py --markdown docs/results/mutation.json   # its tables, for docs/mutation.md

Each mutant is one small change to one module (the operators below), applied alone; the module's
targeted tests (``TARGETS``) then run with ``-x``: a failing test *kills* the mutant, a passing run
lets it *survive*; a test running past ``TEST_ALARM_S`` or a run past ``--timeout`` is a *timeout*, counted
as killed (the change made the code hang). Each outcome names the first failing test.
The score is killed / (generated − equivalent), where equivalent mutants are the ones listed in
``EQUIVALENT`` (by module, source line, column and operator, which survive edits elsewhere) with the reason
no test can tell them apart from the original; an entry whose line was edited is reported as stale.

Self-contained (``ast``, no mutmut or cosmic-ray): those rewrite the tree and start pytest afresh per
mutant, seconds of imports each on a shared 2-core machine. Here a parent process imports the heavy
dependencies once and forks one child per mutant; the child compiles the mutated module from the
modified syntax tree, serves it to ``import`` in place of the file (nothing on disk changes, so
parallel runs and other checkouts are unaffected) and runs pytest in-process. Tests that run the CLI
in a subprocess cannot see the mutant and are deselected.

Operators: arithmetic swaps (+ −, * /, // /, % //, ** *), comparison flips (< <=, > >=, == !=, in / not in,
is / is not), and / or, a removed ``not`` or unary minus, numbers + 1, max / min, a ``return`` of None,
and swaps of paired names (read / write prices, metadata / index prices, min / max times, dense /
effectual FLOPs, compute / memory time ...) as names, attributes and string keys. Docstrings, ``__all__``,
annotations, f-strings and error-message text are not mutated; nor are the functions listed in
``SKIP`` (reachable only with a GPU, NVML or a plotting backend), named in the report.
"""

from __future__ import annotations

import argparse
import ast
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Module → (file, the tests that exercise it in-process, pytest -k deselection of subprocess tests).
_CLI = "not cli and not demo and not json_output and not parquet_out and not compare_cli"
#: The 230-layer simpy comparison costs most of the engine's subset; the random pipelines and layers cover it.
_ENGINE = _CLI + " and not tile_by_tile_on_scalesim_cases and not never_loses and not dominated"
TARGETS = {
    "accelsim.model.engine": (["tests/test_energy_hand.py", "tests/test_engine_steady.py", "tests/test_engine.py",
                               "tests/test_scalesim_parity.py", "tests/test_sparsity.py",
                               "tests/test_scalesim_stalls.py", "tests/test_staging_wiring.py", "tests/test_mapper.py"],
                              _ENGINE),
    "accelsim.model.energy": (["tests/test_energy_hand.py", "tests/test_engine.py"], _CLI),
    "accelsim.model.mapping": (["tests/test_energy_hand.py", "tests/test_engine.py", "tests/test_scalesim_parity.py",
                                "tests/test_sparsity.py", "tests/test_engine_steady.py",
                                "tests/test_scalesim_stalls.py", "tests/test_staging_wiring.py", "tests/test_mapper.py"],
                               _ENGINE),
    "accelsim.model.sparsity": (["tests/test_energy_hand.py", "tests/test_sparsity.py", "tests/test_engine.py"], _CLI),
    "accelsim.replay.calibrate": (["tests/test_calibrate_fit.py", "tests/test_replay.py"], _CLI),
    "kernels.trace": (["tests/test_trace_roundtrip.py", "tests/test_trace.py", "tests/test_trace_energy.py"], _CLI),
    "kernels.timing": (["tests/test_trace_roundtrip.py", "tests/test_trace.py", "tests/test_trace_energy.py"], _CLI),
}

#: Functions not mutated, with the reason: they only run with hardware or tools the CPU suite lacks.
SKIP = {
    "kernels.trace": {"_versions": "its CuPy branch needs CuPy; the NumPy branch is one dict",
                      "_git_commit": "reads git: which commit depends on the checkout"},
    "kernels.timing": {"_nvml_handle": "needs NVML and CuPy", "_energy_mj": "needs NVML", "_clocks": "needs NVML",
                       "_power_w": "needs NVML"},
    "accelsim.replay.calibrate": {"plot_validation": "draws a figure (matplotlib), no number to check"},
}

_E = "accelsim.model.engine"
_NO_DIFF = "; 0 of 2000 random pipelines differ (bench/mutation_engine_equiv.py)"
_P2 = ("only changes how two passes compose into one period (p = 2); no mapping reaches a period-2 steady state "
       "(none of 2000 random pipelines, none in the suite), so every jump has p = 1" + _NO_DIFF)
#: Mutant signature (module, source line, function:columns, operator; see ``Mutant.signature``) → why no
#: test can tell the mutant from the original. Signatures survive edits elsewhere in a module; an entry
#: whose line was edited no longer matches and is reported as stale.
_C, _K, _T, _M = "accelsim.replay.calibrate", "kernels.trace", "kernels.timing", "accelsim.model.mapping"
_REPEAT_IF = "if len(history) > p and done + p <= times:"
EQUIVALENT: dict[tuple[str, str, str, str], str] = {
    (_E, "_PERIODS = (1, 2)", ":12-13", "1->2"):
        "periods (2, 2): a period-1 steady state is also one of period 2, found a pass later" + _NO_DIFF,
    (_E, "_PERIODS = (1, 2)", ":15-16", "2->3"): "periods (1, 3): detection of period 2 dropped; " + _P2,
    (_E, "total_macs = sum(g.total_macs for g in mapping.groups) or 1.0", "._plan:62-65", "1.0->2.0"):
        "`or 2.0` replaces a zero MAC total, and every mapping has a group with MACs (m, n, k >= 1)",
    (_E, "free = simpy.Container(env, capacity=2, init=2)", ".simulate_tiles:41-42", "2->3"):
        "the free-buffer container never holds more than its 2 initial slots (each put follows a get), "
        "so a capacity of 3 never binds" + _NO_DIFF,
    (_E, "filled = simpy.Container(env, capacity=2, init=0)", ".simulate_tiles:43-44", "2->3"):
        "the filled-buffer container never holds more than 2 (the loader needs a free slot first)" + _NO_DIFF,
    (_E, _REPEAT_IF, "._repeat:36-53.0", "LtE->Lt"):
        "`done + p < times`: the last period is then run pass by pass instead of jumped: same events" + _NO_DIFF,
    (_E, _REPEAT_IF, "._repeat:36-44", "Add->Sub"):
        "`done - p <= times` admits a jump of q = 0 periods when fewer than p passes remain; with p = 1 "
        "that never happens (q >= 1 whenever a pass remains)" + _NO_DIFF,
    (_E, "q = (times - done) // p", "._repeat:24-43", "FloorDiv->Div"): "`(times - done) / p` equals `//` for p = 1; " + _P2,
    (_E, "done += q * p", "._repeat:28-33", "Mult->Div"): "`q / p` equals `q * p` for p = 1; " + _P2,
    (_E, "a, b = a + a1, max(b + a1, b1)", "._repeat:43-49", "Add->Sub"):
        "`b - a1` in composing passes: b starts at -inf, so only a second pass (p = 2) sees it; " + _P2,
    (_E, "cycles = float(math.ceil(max(w, s[1])))", ".run_mapping:38-39", "1->2"):
        "max(w, s[2]) = max(w, s[1]) = w: the writer finishes after the last compute, which ends after "
        "the one before it" + _NO_DIFF,
    (_E, 'bufs = {op: BufferSpec(int(sram.capacity_for(op) // eb), (dram.bandwidth if op != "output" else',
     "._staged:31-58", "FloorDiv->Div"):
        "`int(capacity / eb)` equals `int(capacity // eb)` for a positive capacity and word size",
    (_M, "compute = math.ceil(ctas * split / c.units) * math.ceil(kt / split) * step",
     "._tensor_core_groups.estimate:28-40", "Mult->Div"):
        "`ctas / split` for `ctas * split` in the split estimate: the candidates keep ctas·split <= units "
        "(split <= units // ctas), so both round up to one wave; with split = 1 they are equal",
    (_C, 'borrow = (groups.get(g.replace(f, "gemm", 1)) or fams.get("gemm") or glob).compute_scale \\',
     ".fit_groups:54-55", "1->2"):
        "replacing the family name twice instead of once in a group name that holds it once (`runtime_compress "
        "float32`): the same name",
    (_C, "held = [j for j in (1, 2) if np.any(a[:, j] > 0) and np.count_nonzero(a[:, j] > NEGLIGIBLE) < MIN_DETERMINING]",
     ".fit:74-94.0",
     "Gt->GtE"):
        "`>= NEGLIGIBLE` for `> NEGLIGIBLE`: differs only for a part exactly NEGLIGIBLE of a measured time",
    (_M, "run_macs = sum(g.total_macs for g in groups) or 1.0", "._map_gemm:52-55", "1.0->2.0"):
        "`or 2.0` replaces a zero MAC total; every GEMM has MACs",
    (_M, "return arch.memory[-2] if len(arch.memory) > 1 else arch.memory[0]", "._reduction_level:49-50", "1->2"):
        "`len(memory) > 2`: with two levels memory[-2] is memory[0] anyway",
    (_C, "for size in range(1, len(live) + 1):", "._nnls:37-38", "1->2"):
        "`range(1, len(live) + 2)`: the extra size exceeds the live columns, and combinations of more items "
        "than there are yield nothing",
    (_C, "if err < best_err - 1e-12:", "._nnls:15-37.0", "Lt->LtE"):
        "`err <= best - 1e-12` differs from `<` only on an exact tie of two subsets' squared errors, which "
        "then fit the data equally",
    (_C, "if np.any(coef < 0):", "._nnls:22-30.0", "Lt->LtE"):
        "refusing a subset with a coefficient exactly 0.0 as well as negative ones: a least-squares "
        "coefficient on a live (non-zero) column is never exactly 0",
    (_C, "if err < best_err - 1e-12:", "._nnls:21-37", "Sub->Add"):
        "accepting a subset up to 1e-12 worse in squared relative error: the same fit to far below the "
        "data's precision",
    (_C, "r_log = pearson_r(np.log10(p), np.log10(m)) if all(v > 0 for v in p + m) else None", "._errors:55-60.0",
     "Gt->GtE"):
        "`v >= 0` for `v > 0`: measured and projected times are positive (the trace reader refuses others; "
        "a projection has a positive time)",
    (_T, "while time.perf_counter() - started < min_window_s:", ".energy_window:10-54.0", "Lt->LtE"):
        "`<=` for `<` on elapsed wall time against the window: equality has probability zero",
    (_K, "return str(t)", "._kind:4-17", "return None"):
        "_kind's fallback for a type that is neither number, text nor time: None or its name, both unequal "
        "to every schema kind, so the same error",
    (_K, "row = table.slice(i, 1).to_pylist()[0]", "._check_rows.fail:29-30", "1->2"):
        "`table.slice(i, 2)` for `slice(i, 1)` before taking the first row: the same row",
}

_PAIRS = [("min", "max"), ("min_s", "max_s"), ("time_min_s", "time_max_s"), ("read", "write"),
          ("read_pj_per_byte", "write_pj_per_byte"), ("metadata_decode_pj", "index_select_pj"),
          ("compute.metadata_decode", "compute.index_select"), ("flops_dense", "flops_effectual"),
          ("compute_s", "memory_s"), ("compute_scale", "memory_scale"), ("input", "weight"), ("reads", "writes"),
          ("load", "store"), ("rows", "cols"), ("bandwidth", "write_bandwidth"), ("energy_j", "idle_power_w"),
          ("sm_clock_mhz", "mem_clock_mhz"), ("energy_window_s", "energy_calls")]
SWAP = {a: b for p in _PAIRS for a, b in (p, p[::-1])}
_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
        ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
        ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


@dataclass
class Mutant:
    module: str
    id: int
    line: int
    op: str
    code: str
    at: str = ""
    outcome: str = ""
    seconds: float = 0.0
    killed_by: str | None = None

    @property
    def signature(self) -> tuple[str, str, str, str]:
        """(module, source line, function:columns, operator): names the mutant across edits elsewhere in the
        module, where its id changes; an edit of the line itself changes it (and the verdict must be redone)."""
        return self.module, self.code, self.at, self.op


def _frozen(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, ``__all__``, annotations, f-strings, raise messages, SKIP'd functions."""
    out: set[int] = set()

    def freeze(n):
        if n is not None:
            out.update(id(x) for x in ast.walk(n))

    for n in ast.walk(tree):
        body = getattr(n, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            freeze(body[0])
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets):
            freeze(n)
        if isinstance(n, ast.AnnAssign):
            freeze(n.annotation)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            freeze(n.returns)
            for a in (*n.args.args, *n.args.kwonlyargs, *n.args.posonlyargs, n.args.vararg, n.args.kwarg):
                if a is not None:
                    freeze(a.annotation)
        if isinstance(n, ast.JoinedStr):
            freeze(n)
        if isinstance(n, ast.Raise):
            freeze(n.exc)
    return out


def _points(tree: ast.AST, module: str) -> list[tuple[ast.AST, str, object]]:
    """Every (node, operator name, replacement) in ``tree``, in a fixed order."""
    frozen = _frozen(tree)
    skip = SKIP.get(module, {})
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in skip:
            frozen.update(id(x) for x in ast.walk(n))
    pts = []
    for n in ast.walk(tree):
        if id(n) in frozen:
            continue
        if isinstance(n, (ast.BinOp, ast.AugAssign)) and type(n.op) in _BIN:
            pts.append((n, f"{type(n.op).__name__}->{_BIN[type(n.op)].__name__}", None))
        elif isinstance(n, ast.Compare):
            for i, op in enumerate(n.ops):
                if type(op) in _CMP:
                    pts.append((n, f"{type(op).__name__}->{_CMP[type(op)].__name__}", i))
        elif isinstance(n, ast.BoolOp):
            pts.append((n, "and<->or", None))
        elif isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.Not, ast.USub)):
            pts.append((n, f"drop {type(n.op).__name__}", None))
        elif isinstance(n, ast.Constant) and type(n.value) in (int, float):
            pts.append((n, f"{n.value!r}->{n.value + 1!r}", None))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in SWAP:
            pts.append((n, f"'{n.value}'->'{SWAP[n.value]}'", None))
        elif isinstance(n, ast.Name) and n.id in SWAP and isinstance(n.ctx, ast.Load):
            pts.append((n, f"{n.id}->{SWAP[n.id]}", None))
        elif isinstance(n, ast.Attribute) and n.attr in SWAP and isinstance(n.ctx, ast.Load):
            pts.append((n, f".{n.attr}->.{SWAP[n.attr]}", None))
        elif isinstance(n, ast.Return) and n.value is not None and not (
                isinstance(n.value, ast.Constant) and n.value.value is None):
            pts.append((n, "return None", None))
    return pts


def _apply(node: ast.AST, op: str, arg) -> None:
    if isinstance(node, (ast.BinOp, ast.AugAssign)):
        node.op = _BIN[type(node.op)]()
    elif isinstance(node, ast.Compare):
        node.ops[arg] = _CMP[type(node.ops[arg])]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.Constant):
        node.value = SWAP[node.value] if isinstance(node.value, str) else node.value + 1
    elif isinstance(node, ast.Name):
        node.id = SWAP[node.id]
    elif isinstance(node, ast.Attribute):
        node.attr = SWAP[node.attr]
    elif isinstance(node, ast.Return):
        node.value = ast.Constant(None)
    else:  # UnaryOp: the operand alone; done by the caller, which owns the parent
        raise TypeError(node)


class _Unwrap(ast.NodeTransformer):
    def __init__(self, target):
        self.target = target

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        return node.operand if node is self.target else node


def source_of(module: str) -> Path:
    path = ROOT / (module.replace(".", "/") + ".py")
    return path if path.exists() else ROOT / module.replace(".", "/") / "__init__.py"


def _enclosing(tree: ast.AST) -> dict[int, str]:
    """Node id -> the name of the innermost function (or class) holding it, dotted from the module."""
    where: dict[int, str] = {}

    def visit(node, name):
        for child in ast.iter_child_nodes(node):
            inner = f"{name}.{child.name}" if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                 ast.ClassDef)) else name
            where[id(child)] = inner
            visit(child, inner)

    visit(tree, "")
    return where


def mutants(module: str) -> list[Mutant]:
    tree = ast.parse(source_of(module).read_text())
    lines = source_of(module).read_text().splitlines()
    where = _enclosing(tree)
    out, seen = [], {}
    for i, (n, op, arg) in enumerate(_points(tree, module)):
        at = f"{where.get(id(n), '')}:{n.col_offset}-{n.end_col_offset}" + (f".{arg}" if arg is not None else "")
        code = lines[n.lineno - 1].strip()
        k = (code, at, op)
        seen[k] = seen.get(k, 0) + 1
        out.append(Mutant(module, i, n.lineno, op, code, at if seen[k] == 1 else f"{at}#{seen[k]}"))
    return out


def mutated_code(module: str, index: int):
    """The code object of ``module`` with mutant ``index`` applied (compiled from the modified tree)."""
    path = source_of(module)
    tree = ast.parse(path.read_text())
    node, op, arg = _points(tree, module)[index]
    if isinstance(node, ast.UnaryOp):
        tree = _Unwrap(node).visit(tree)
    else:
        _apply(node, op, arg)
    return compile(ast.fix_missing_locations(tree), str(path), "exec")


class _Serve(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import ``name`` from ``code`` instead of its file."""

    def __init__(self, name: str, code):
        self.name, self.code = name, code

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, str(source_of(fullname)), loader=self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.code, module.__dict__)


def _pytest_args(module: str) -> list[str]:
    tests, deselect = TARGETS[module]
    return [*tests, "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-o", "addopts=", "--no-header",
            "-W", "ignore", "--hypothesis-seed=0", "-k", deselect, "--rootdir", str(ROOT)]


#: A single test running longer than this under a mutant has hung (the slowest targeted test takes ~4 s alone).
TEST_ALARM_S = 60
#: Where children leave their first failing test for the parent.
_VERDICTS = Path(tempfile.mkdtemp(prefix="accelsim-mutation-"))


class _Hung(Exception):
    pass


class _TestAlarm:
    """pytest plugin: a test still running after ``seconds`` fails (SIGALRM), so a mutant that makes a loop
    endless is killed in seconds instead of waiting out the whole run's timeout."""

    def __init__(self, seconds: int):
        self.seconds = seconds
        self.first: tuple[str, bool] | None = None  # the first failing test, and whether it hung

    def pytest_runtest_logreport(self, report):
        if report.failed and self.first is None:
            self.first = (report.nodeid, "_Hung" in str(report.longrepr))

    def pytest_runtest_setup(self, item):
        def ring(signum, frame):
            raise _Hung(f"{item.nodeid} ran over {self.seconds} s")

        signal.signal(signal.SIGALRM, ring)
        signal.alarm(self.seconds)

    def pytest_runtest_teardown(self, item):
        signal.alarm(0)


def _child(module: str, index: int | None) -> int:
    import pytest
    from hypothesis import Phase, settings

    # A failing property test stops at its first counterexample (no shrinking: the mutant is dead either way)
    # and nothing is saved to the example database, which would replay mutants' failures on later runs.
    settings.register_profile("mutation", phases=[Phase.explicit, Phase.generate], database=None, deadline=None)
    settings.load_profile("mutation")
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT / "tests"))
    if index is not None:
        sys.meta_path.insert(0, _Serve(module, mutated_code(module, index)))
    devnull = os.open(os.devnull, os.O_WRONLY)
    alarm = _TestAlarm(TEST_ALARM_S)
    if index is not None:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    code = int(pytest.main(_pytest_args(module), plugins=[alarm] if index is not None else []))
    if index is not None and alarm.first is not None:
        (_VERDICTS / f"{os.getpid()}.json").write_text(json.dumps(alarm.first))
    return code


def _spawn(module: str, index: int | None) -> int:
    """Fork a child that runs the module's tests against mutant ``index`` (None: unmutated); its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            code = _child(module, index)
        except BaseException:
            code = 99
        os._exit(code)
    return pid


def _verdict(pid: int, status: int) -> tuple[str, str | None]:
    """(outcome, first failing test) of a finished child; a test that hung makes it a timeout."""
    f = _VERDICTS / f"{pid}.json"
    first = json.loads(f.read_text()) if f.exists() else None
    f.unlink(missing_ok=True)
    if os.waitstatus_to_exitcode(status) == 0:
        return "survived", None
    return ("timeout" if first and first[1] else "killed"), first[0] if first else None


def run_one(module: str, index: int | None, timeout: float) -> tuple[str, float]:
    """Run the module's tests against the mutant in a child; (outcome, seconds)."""
    t0 = time.perf_counter()
    pid = _spawn(module, index)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return _verdict(pid, status)[0], time.perf_counter() - t0
        if time.perf_counter() > t0 + timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - t0
        time.sleep(0.02)


def _preload() -> None:
    """Import the heavy third-party dependencies once, in the parent, so each forked child starts warm."""
    for name in ("numpy", "scipy.optimize", "scipy.stats", "pyarrow", "pyarrow.parquet", "pyarrow.compute", "pydantic",
                 "yaml", "simpy", "networkx", "hypothesis", "pytest", "typer", "rich", "threadpoolctl"):
        try:
            __import__(name)
        except ImportError:
            pass


def stale(todo: list[Mutant]) -> list[list[str]]:
    """EQUIVALENT entries of the modules run that name no mutant of today's sources (a line was edited)."""
    run = {m.module for m in todo}
    have = {m.signature for m in todo}
    return [list(k) for k in EQUIVALENT if k[0] in run and k not in have]


def summary(results: list[Mutant]) -> dict:
    by = {}
    for m in results:
        s = by.setdefault(m.module, {"generated": 0, "killed": 0, "timeout": 0, "survived": 0, "equivalent": 0})
        s["generated"] += 1
        if m.signature in EQUIVALENT and m.outcome == "survived":
            s["equivalent"] += 1
        else:
            s[m.outcome] += 1
    tot = {k: sum(s[k] for s in by.values()) for k in ("generated", "killed", "timeout", "survived", "equivalent")}
    for s in [*by.values(), tot]:
        scored = s["generated"] - s["equivalent"]
        s["score_pct"] = 100.0 * (s["killed"] + s["timeout"]) / scored if scored else None
    return {"modules": by, "total": tot}


def markdown(report: dict) -> str:
    """The summary, the surviving and the equivalent mutants of a ``--json`` report as markdown tables."""
    out = ["| module | mutants | killed | timeout (hung) | equivalent | survived | score |", "|---|---:|---:|---:|---:|---:|---:|"]
    for mod, v in [*report["summary"]["modules"].items(), ("**all**", report["summary"]["total"])]:
        out.append(f"| {mod} | {v['generated']} | {v['killed']} | {v['timeout']} | {v['equivalent']} | {v['survived']} "
                   f"| {v['score_pct']:.1f} % |")
    eq = {tuple(e[:4]): e[4] for e in report["equivalent"]}
    survivors, equivalent = [], []
    for m in report["mutants"]:
        if m["outcome"] != "survived":
            continue
        sig = (m["module"], m["code"], m["at"], m["op"])
        code = m["code"] if len(m["code"]) <= 70 else m["code"][:67] + "..."
        row = f"| {m['module'].rsplit('.', 1)[-1]}:{m['id']} | {m['line']} | {m['op']}: `{code}` |"
        (equivalent if sig in eq else survivors).append(row + (f" {eq[sig]} |" if sig in eq else ""))
    out += ["", "Surviving (not equivalent):", ""]
    out += (["| mutant | line | change |", "|---|---:|---|", *survivors] if survivors else ["none"])
    out += ["", "| mutant | line | change | why it is equivalent |", "|---|---:|---|---|", *equivalent]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", action="append", choices=sorted(TARGETS), help="only these modules (repeatable)")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at once (forked children)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds before a mutant's whole run counts as killed (a hung test fails sooner)")
    ap.add_argument("--json", type=Path, help="write every mutant's outcome and the summary here")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--ids", help="only these mutants: comma-separated ids, or module:id")
    ap.add_argument("--markdown", type=Path, metavar="JSON", help="print a --json report's tables as markdown and exit")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    modules = args.module or sorted(TARGETS)
    todo = [m for mod in modules for m in mutants(mod)]
    if args.ids:
        keep = {(i.rpartition(":")[0], int(i.rpartition(":")[2])) for i in args.ids.split(",")}
        todo = [m for m in todo if (m.module, m.id) in keep or ("", m.id) in keep]
    if args.list:
        for m in todo:
            print(f"{m.module}:{m.id} line {m.line} col {m.at} {m.op}: {m.code}")
        print(f"{len(todo)} mutants")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _preload()
    for mod in modules:
        outcome, secs = run_one(mod, None, args.timeout * 3)
        if outcome != "survived":
            print(f"baseline: the tests of {mod} fail without any mutant ({outcome}); fix them first", file=sys.stderr)
            return 1
        print(f"baseline {mod}: passes in {secs:.1f} s", flush=True)
    running: dict[int, tuple[Mutant, float]] = {}
    queue = list(todo)
    t_start = time.perf_counter()
    done = 0
    while queue or running:
        while queue and len(running) < args.jobs:
            m = queue.pop(0)
            running[_spawn(m.module, m.id)] = (m, time.perf_counter())
        for pid, (m, t0) in list(running.items()):
            got, status = os.waitpid(pid, os.WNOHANG)
            now = time.perf_counter()
            if got:
                m.outcome, m.killed_by = _verdict(pid, status)
            elif now - t0 > args.timeout:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                m.outcome = "timeout"
            else:
                continue
            m.seconds = round(now - t0, 2)
            del running[pid]
            done += 1
            flag = "SURVIVED " if m.outcome == "survived" else ""
            print(f"[{done}/{len(todo)} {now - t_start:.0f}s] {flag}{m.module}:{m.id} line {m.line} {m.op}: "
                  f"{m.code} -> {m.outcome} ({m.seconds} s) {m.killed_by or ''}", flush=True)
        time.sleep(0.02)
    summ = summary(todo)
    print(json.dumps(summ, indent=1))
    for k in stale(todo):
        print(f"stale EQUIVALENT entry (its line changed; judge the mutant again): {k}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summ, "mutants": [asdict(m) for m in todo],
                                         "equivalent": [[*k, v] for k, v in EQUIVALENT.items()],
                                         "stale_equivalent": stale(todo)},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
