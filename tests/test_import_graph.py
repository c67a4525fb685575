"""The project's static import graph (accelsim/ and kernels/, every import statement, at module top
or inside a function) has no cycle, and kernels never imports accelsim."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("accelsim", "kernels")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Project modules ``path`` imports; ``from pkg import mod`` counts as importing ``pkg.mod``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph(root: Path = ROOT, packages=PACKAGES) -> nx.DiGraph:
    """Module -> project module it imports (a package's ``__init__`` is the package's node)."""
    files = {_module_name(p, root): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    g = nx.DiGraph()
    g.add_nodes_from(files)
    for name, path in files.items():
        g.add_edges_from((name, dep) for dep in _imports(path, name, set(files)))
    return g


def test_graph_sees_known_edges():
    """The parser finds real imports (the relative ``from . import module`` form is in the next test)."""
    g = import_graph()
    assert g.has_edge("accelsim.model.lowering", "accelsim.model.kron")
    assert g.has_edge("accelsim.model.arch", "kernels.nm.format")
    assert g.has_edge("accelsim.__main__", "accelsim.cli")


def test_graph_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    assert list(nx.simple_cycles(import_graph(tmp_path, ("pkg",)))) in (
        [["pkg.a", "pkg.b"]], [["pkg.b", "pkg.a"]])


def test_no_import_cycle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + [c[0]]) for c in cycles[:5])


def test_kernels_never_imports_accelsim():
    g = import_graph()
    bad = [(a, b) for a, b in g.edges if a.startswith("kernels") and b.startswith("accelsim")]
    assert not bad, bad


KERNELS = ROOT / "kernels"
TECHNIQUES = ("nm", "tasd", "kron", "projection")
BUILDS_ON = {"tasd": {"nm"}}
"""A technique's declared foundations: a TASD series is a sum of N:M terms, run by N:M's kernels."""
REGISTRY = "kernels.impls"
"""The one registry of implementation descriptions: it reads every room's ``impls`` module."""


def _base_modules() -> set[str]:
    """The shared top modules every room may import (not the lazy ``kernels`` face, not the registry)."""
    return {f"kernels.{p.stem}" for p in KERNELS.glob("*.py") if p.stem != "__init__"} - {REGISTRY}


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def room_violations(g: nx.DiGraph, base: set[str]) -> list[tuple[str, str]]:
    """Edges leaving a technique room (or ``kernels.trace``) for anything but the base modules, itself and
    what :data:`BUILDS_ON` declares; edges from a base module to anything but another base module."""
    bad = []
    for a, b in g.edges:
        if a in base:
            ok = b in base
        else:
            room = next((r for r in (*TECHNIQUES, "trace") if _inside(a, f"kernels.{r}")), None)
            if room is None:
                continue
            allowed = {f"kernels.{r}" for r in (room, *BUILDS_ON.get(room, ()))}
            ok = b in base or any(_inside(b, p) for p in allowed)
        if not ok:
            bad.append((a, b))
    return bad


def test_kernels_top_level_is_a_few_shared_modules():
    top = sorted(p.name for p in KERNELS.glob("*.py"))
    assert len(top) <= 8, top
    assert {p.name for p in KERNELS.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == {
        *TECHNIQUES, "trace", "suites"}


def test_room_rule_catches_a_cross_room_edge():
    """The checker below flags a technique importing another technique, the trace room or the registry,
    and a base module importing a room; it lets a room import itself, the base and its declared foundation."""
    g = nx.DiGraph([("kernels.nm.cpu", "kernels.kron.plan"), ("kernels.kron.gpu", "kernels.trace"),
                    ("kernels.projection", REGISTRY), ("kernels.backend", "kernels.nm.format"),
                    ("kernels.nm.cpu", "kernels.nm.format"), ("kernels.kron", "kernels.backend"),
                    ("kernels.tasd", "kernels.nm.dispatch"), ("kernels.suites.kron", "kernels.kron")])
    assert sorted(room_violations(g, {"kernels.backend"})) == [
        ("kernels.backend", "kernels.nm.format"), ("kernels.kron.gpu", "kernels.trace"),
        ("kernels.nm.cpu", "kernels.kron.plan"), ("kernels.projection", REGISTRY)]


def test_technique_rooms_import_only_the_shared_modules_and_themselves():
    """kernels/nm, tasd, kron, projection and trace import only the base top modules and themselves (TASD
    also N:M); the base modules import only each other; the registry and the suites may import every room."""
    g = import_graph()
    base = _base_modules()
    assert {"kernels.backend", "kernels.errors", "kernels.impl_types"} <= base
    assert not room_violations(g, base), room_violations(g, base)
    assert {b for _, b in g.out_edges(REGISTRY)} - base == {f"kernels.{r}.impls" for r in ("nm", "kron", "projection")}


def test_each_cuda_source_sits_in_its_room():
    """Every .cu is in the room of the module that loads it (and no ``kernels/cuda/`` is left behind)."""
    from kernels.kron import gpu
    from kernels.nm import cuda
    from kernels.projection import device

    loaded = {m._SOURCE for m in (cuda, gpu, device)}
    assert all(p.is_file() for p in loaded), loaded
    assert loaded == set(KERNELS.glob("*/*.cu")) and not (KERNELS / "cuda").exists()
    assert {p.parent.name for p in loaded} == {"nm", "kron", "projection"}
