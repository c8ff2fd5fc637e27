"""No import circles in core/: every module's imports, module-level and inside functions, form a DAG.

Imports under ``if TYPE_CHECKING:`` are left out (they never run). A cycle found is printed as the
chain of modules, e.g. ``core.a -> core.b -> core.a``.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def import_graph(root: Path = CORE) -> dict[str, set[str]]:
    """``{module: modules of root's package it imports}``; ``from pkg import name`` counts as
    ``pkg.name`` when that is a module, else as ``pkg``."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def test_the_graph_sees_core_and_its_lazy_imports():
    g = import_graph()
    assert len(g) > 100 and "core.pipeline" in g
    # a function-level import (the render cache loads the layout generator lazily) is an edge too
    assert "core.scenegen.room_layout" in g["core.scenegen.suite"]


def test_core_has_no_import_cycle():
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as e:
        raise AssertionError("import cycle in core/: " + " -> ".join(e.args[1])) from None


def test_a_cycle_is_caught(tmp_path):
    """The check itself: two modules importing each other (one of them lazily) are reported."""
    pkg = tmp_path / "core"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n")
    g = import_graph(pkg)
    assert g["core.a"] == {"core.b"} and g["core.b"] == {"core.a"} and g["core.c"] == set()
    try:
        TopologicalSorter(g).prepare()
    except CycleError as e:
        assert set(e.args[1]) == {"core.a", "core.b"}
    else:
        raise AssertionError("the cycle a <-> b was not found")
