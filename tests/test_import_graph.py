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
