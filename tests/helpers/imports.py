"""The package's imports as a graph, read from its source: what the architecture tests (rooms import only
downward, tests/unit/test_architecture.py) and the cycle test (tests/unit/test_import_cycles.py) both check.

Every runtime ``import`` of ours is found at any depth (module level and inside functions and methods, each
marked), relative imports resolved; imports under ``if TYPE_CHECKING:`` are for the type checker only and are
left out. ``from X import name`` imports the module ``X.name`` when that is a module of ours, else ``X``.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from .sources import PACKAGE, parsed
from .system import REPO

__all__ = [
    "MODULES",
    "SOURCES",
    "describe",
    "edges_of",
    "import_graph",
    "imports",
    "libraries",
    "module_of",
    "shortest_cycle",
    "strongly_connected",
]

#: every module file of the package, sorted
SOURCES = sorted(PACKAGE.rglob("*.py"))


def module_of(path: Path) -> str:
    """``.../foss_supervisor/web/access.py`` -> ``foss_supervisor.web.access`` (a package: its ``__init__``)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


#: {module name: its file} of the package
MODULES = {module_of(p): p for p in SOURCES}


def _absolute(here: str, node: ast.ImportFrom, path: Path) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved against module ``here``)."""
    if not node.level:
        return node.module or ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


@functools.cache
def imports(path: Path, here: str | None = None) -> tuple[tuple[str, int, bool], ...]:
    """(imported module, line, at module level) of every runtime import of ours in ``path`` (module ``here``,
    by default the package module of that path), read once per process."""
    module = module_of(path) if here is None else here
    return tuple(_imports(parsed(path).tree, module, path))


def _imports(tree: ast.Module, here: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    def walk(node: ast.AST, top: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    yield from walk(other, top)
                continue
            if isinstance(child, ast.Import):
                yield from ((a.name, child.lineno, top) for a in child.names if a.name.startswith("foss_supervisor"))
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(here, child, path)
                if base.startswith("foss_supervisor"):
                    for alias in child.names:  # "from pkg import module" imports that module; else a name of pkg
                        sub = f"{base}.{alias.name}"
                        yield (sub if sub in MODULES or base == "foss_supervisor" else base), child.lineno, top
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, inner)

    yield from walk(tree, True)


@functools.cache
def libraries(path: Path) -> frozenset[str]:
    """The top-level names of the modules not of ours that ``path`` imports at runtime, at any depth (``import
    duckdb`` inside a function counts; under ``if TYPE_CHECKING:`` it does not; relative imports are ours)."""
    found: set[str] = set()

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    walk(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name.split(".")[0] for a in child.names)
            elif isinstance(child, ast.ImportFrom) and not child.level and child.module:
                found.add(child.module.split(".")[0])
            walk(child)

    walk(parsed(path).tree)
    return frozenset(found - {"foss_supervisor"})


def edges_of(path: Path, here: str, *, module_level: bool = False) -> dict[str, int]:
    """{module of ours that ``path`` (module ``here``) imports: the line of its first import}; a name that is
    not a module (``foss_supervisor.__version__``) counts as its package. ``module_level``: those imports only."""
    found: dict[str, int] = {}
    for target, line, top in imports(path, here):
        if module_level and not top:
            continue
        module = target if target in MODULES else target.rpartition(".")[0]
        if module in MODULES and module != here:
            found.setdefault(module, line)
    return found


def import_graph(*, module_level: bool = False) -> dict[str, dict[str, int]]:
    """{module: {imported module: line}} of every module of the package (``module_level``: those imports only)."""
    return {module: edges_of(path, module, module_level=module_level) for module, path in MODULES.items()}


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The components of more than one module (Tarjan, iterative), each sorted: every cycle lies in one."""
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
