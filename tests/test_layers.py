"""The layering of `paris_node`, computed from the source: every import (at module level or inside a function) goes
down, never up or sideways, and no two modules import each other through any chain. Imports under
`if TYPE_CHECKING:` are left out: they only name types for annotations and never run.

Reads the code with `ast` only (nothing is imported), so it runs in milliseconds. When a test here fails, move the
shared piece down (or split the module), do not add an exception: see docs/architecture.md, "Layers".
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "paris_node"

# Bottom to top. A unit (a sub-package, a top-level module, or `paris_node` itself for `__version__`) may import
# only units in rows below its own. docs/architecture.md shows this table; test_docs_table_is_this_order keeps it so.
LAYERS: list[tuple[str, ...]] = [
    ("paris_node", "errors", "procs"),
    ("fsutil", "canonical", "home", "verdicts"),
    ("identity",),
    ("records",),
    ("models", "content"),
    ("checkpoint", "swarm"),
    ("data", "sampling"),
    ("training", "evaluate"),
    ("dashboard",),
    ("node",),
    ("cli",),
]

# Known upward imports, each with the reason it is still there. An entry that no longer occurs fails the test
# (take it out), so this list only shrinks.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def _owner(name: str) -> str:
    """The module a dotted name lives in (`paris_node.models.presets.expert_preset` -> `paris_node.models.presets`)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` except the bodies of `if TYPE_CHECKING:` (annotations only: they never run)."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _imports(path: Path) -> set[str]:
    """Every paris_node module `path` imports when it runs, wherever the statement is (functions included)."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("paris_node"):
            for alias in node.names:
                found.add(_owner(f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            found |= {_owner(a.name) for a in node.names if a.name.startswith("paris_node")}
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}: relative import; the project writes absolute paris_node imports")
    return found


GRAPH: dict[str, set[str]] = {m: _imports(p) - {m} for m, p in MODULES.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


RANK = {unit: i for i, row in enumerate(LAYERS) for unit in row}


def _package_edges() -> dict[tuple[str, str], list[str]]:
    """(importer unit, imported unit) -> the modules that make the edge."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for m, targets in GRAPH.items():
        for t in targets:
            if _unit(t) != _unit(m):
                edges[(_unit(m), _unit(t))].append(f"{m} -> {t}")
    return edges


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in MODULES}
    assert units == set(RANK), f"add to LAYERS: {sorted(units - set(RANK))}; remove: {sorted(set(RANK) - units)}"


def test_imports_only_go_down():
    upward = {
        edge: where
        for edge, where in _package_edges().items()
        if RANK[edge[1]] >= RANK[edge[0]] and edge not in KNOWN_UPWARD
    }
    assert not upward, "imports that are not to a lower layer:\n" + "\n".join(
        f"  {a} -> {b}: {', '.join(sorted(w))}" for (a, b), w in sorted(upward.items())
    )


def test_known_upward_imports_still_exist():
    edges = _package_edges()
    gone = [edge for edge in KNOWN_UPWARD if edge not in edges]
    assert not gone, f"fixed, take them out of KNOWN_UPWARD: {gone}"


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for start in sorted(GRAPH):
        if start in index:
            continue
        work = [(start, iter(sorted(GRAPH[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(GRAPH[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycles_between_modules():
    """A cycle hidden in a function-level import is still a cycle (models/presets <-> expert was one)."""
    assert not _cycles(), f"import cycles: {_cycles()}"


def test_the_cycle_finder_finds_a_cycle(monkeypatch):
    monkeypatch.setitem(GRAPH, "paris_node.errors", GRAPH["paris_node.errors"] | {"paris_node.cli"})
    assert any("paris_node.errors" in c and "paris_node.cli" in c for c in _cycles())


def test_docs_table_is_this_order():
    """docs/architecture.md's layer table lists LAYERS top to bottom, one row per layer."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\|\s*\d+\s*\|", line)]
    documented = [tuple(re.findall(r"`([\w.]+?)(?:/|\.py)?`", row.split("|")[2])) for row in rows]
    assert [set(r) for r in documented] == [set(r) for r in reversed(LAYERS)], documented


def test_type_checking_imports_are_left_out_and_function_imports_are_not(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from paris_node.cli import main\n"
        "def f():\n    from paris_node.node import verify\n"
    )
    assert _imports(src) == {"paris_node.node.verify"}
