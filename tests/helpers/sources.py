"""The package's own source, read and parsed once per test process: the tests that check the code's rules
(architecture, vocabulary, conversions, error reasons) walk these trees instead of each parsing all of it again.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from .system import REPO

__all__ = ["PACKAGE", "Source", "package_sources", "parsed"]

#: the package's folder, foss_supervisor/ of this checkout
PACKAGE = REPO / "foss_supervisor"


@dataclass(frozen=True)
class Source:
    """One module of the package: its path, its text, its tree and every node of the tree in ``ast.walk``'s
    order (callers must not change the tree: it is shared by every test of the process)."""

    path: Path
    text: str
    tree: ast.Module
    nodes: tuple[ast.AST, ...]


@functools.cache
def parsed(path: Path) -> Source:
    """``path`` (a Python file, UTF-8) read and parsed once; raises OSError or SyntaxError as ``ast.parse`` does."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    return Source(path, text, tree, tuple(ast.walk(tree)))


@functools.cache
def package_sources() -> tuple[Source, ...]:
    """Every ``*.py`` file under foss_supervisor/, sorted by path, each read and parsed once per process."""
    return tuple(parsed(path) for path in sorted(PACKAGE.rglob("*.py")))
