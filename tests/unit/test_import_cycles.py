"""No import cycle in ``foss_supervisor``, counting every import: module level and inside functions and
methods alike (a lazy import that closes a cycle only hides it: import order then decides what works).
Imports under ``if TYPE_CHECKING:`` are for the type checker only and are left out.

The graph is read from the AST of every module; ``from X import name`` is an edge to the submodule
``X.name`` when that is a module of ours, else to ``X``.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "foss_supervisor"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def module_of(path: Path) -> str:
    """``.../foss_supervisor/web/access.py`` -> ``foss_supervisor.web.access`` (a package: its ``__init__``)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_of(p): p for p in SOURCES}


def _absolute(module: str, node: ast.ImportFrom, path: Path) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved against ``module``)."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _under_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def edges_of(path: Path, here: str) -> dict[str, int]:
    """{imported module of ours: first line} of every runtime import in ``path`` (module ``here``), at any
    depth."""
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target in MODULES and target != here:
            found.setdefault(target, line)

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _under_type_checking(child.test):
                for other in child.orelse:
                    walk(other)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, child.lineno)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(here, child, path)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    add(sub if sub in MODULES else base, child.lineno)
            walk(child)

    walk(ast.parse(path.read_text(), filename=str(path)))
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """{module: {imported module: line}} for every module of the package."""
    return {module: edges_of(path, module) for module, path in MODULES.items()}


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, pending = work[-1]
            if pending:
                w = pending.pop()
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, sorted(graph[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def shortest_cycle(graph: dict[str, dict[str, int]], members: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, as [m0, m1, ..., m0]."""
    start, inside = members[0], set(members)
    before: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v]):
            if w not in inside:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(before[path[-1]])
                return [*reversed(path), start]
            if w not in before:
                before[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")  # a component of two or more always has one


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    """``a (a.py:12) -> b (b.py:40) -> a``: each edge with the file and line of its import."""
    hops = [f"{a} ({MODULES[a].relative_to(REPO)}:{graph[a][b]})" for a, b in itertools.pairwise(cycle)]
    return " -> ".join([*hops, cycle[-1]])


def test_no_import_cycle_counting_lazy_imports() -> None:
    graph = import_graph()
    components = strongly_connected(graph)
    report = [
        f"{len(members)} modules {members}; e.g. {describe(graph, shortest_cycle(graph, members))}"
        for members in components
    ]
    assert not components, "import cycles:\n" + "\n".join(report)


def test_the_graph_sees_lazy_imports_and_skips_type_checking(tmp_path: Path) -> None:
    """The reader itself: an import inside a method counts, one under ``if TYPE_CHECKING:`` does not."""
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from foss_supervisor.web import routes\n"
        "class A:\n"
        "    def f(self) -> None:\n"
        "        from foss_supervisor.pipeline import ingest\n"
        "        import foss_supervisor.cli.dispatch\n"
    )
    found = edges_of(source, "foss_supervisor.probe")
    assert found == {"foss_supervisor.pipeline.ingest": 6, "foss_supervisor.cli.dispatch": 7}


def test_a_cycle_is_found_and_told_in_order() -> None:
    graph = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 7, "d": 1}, "d": {}}
    components = strongly_connected(graph)
    assert components == [["a", "b", "c"]]
    assert shortest_cycle(graph, components[0]) == ["a", "b", "c", "a"]
