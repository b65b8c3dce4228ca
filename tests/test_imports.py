"""The modules of pipeline/ import each other without a circle.

Every ``import pipeline...`` / ``from pipeline... import ...`` a file writes is an
edge: at module level, inside a function (a lazy import: it still ties the two
modules together, and hiding a circle in a function is how circles are usually
"fixed") and under ``if TYPE_CHECKING:`` (a circle the type checker sees). The
implicit import of a parent package (``pipeline.models.late`` runs
``pipeline/models/__init__.py``) is not an edge: a package ``__init__`` may name its
submodules, e.g. a registry, as long as they do not import it back.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"


def module_names() -> dict[str, Path]:
    """``pipeline.x.y`` -> its file, for every module of the package."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_edges(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line of the first import}}`` over every import statement in each file."""
    edges: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..y import z
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
                found = submodules if len(submodules) == len(node.names) else [base, *submodules]
            else:
                continue
            for target in found:
                while target and target not in modules:  # import pipeline.a.b.c where c is a name
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.setdefault(target, node.lineno)
        edges[name] = targets
    return edges


def find_cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules (Tarjan), as ``[a, b, ..., a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_circle_in(group, edges) for group in sorted(groups)]


def _circle_in(group: list[str], edges: dict[str, dict[str, int]]) -> list[str]:
    """A shortest circle from the group's first module back to it, staying inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(edges[node]):
                if nxt == start:
                    return paths[node] + [start]
                if nxt in members and nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"no circle in strongly connected group {group}")


def describe(circle: list[str], edges: dict[str, dict[str, int]], modules: dict[str, Path]) -> str:
    """``a -> b (a.py:12) -> a (b.py:40)``: each step with the file and line of its import."""
    steps = [circle[0]]
    for a, b in itertools.pairwise(circle):
        steps.append(f"{b} ({modules[a].relative_to(PACKAGE.parent)}:{edges[a][b]})")
    return " -> ".join(steps)


def test_the_cycle_finder_names_a_circle():
    edges = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 7, "d": 1}, "d": {}}
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_circle_in_pipeline():
    modules = module_names()
    edges = import_edges(modules)
    assert edges["pipeline.stages.musicnn_features"]  # the walk sees the imports at all
    circles = [describe(circle, edges, modules) for circle in find_cycles(edges)]
    assert not circles, "import circles (function-level and TYPE_CHECKING imports count):\n" + "\n".join(circles)
