"""The documentation of the rooms stays true: each package's docstring names every module it holds, and the
paths the docs name exist.

- every package of ``foss_supervisor`` names each of its modules (``*.py`` but ``__init__``) and subpackages in
  its ``__init__`` docstring, as ``name`` in double backticks or as ``:mod:`~.name``` (or the module's full
  dotted name); what it says it may import ("May import:") is held to MAY_IMPORT by test_architecture.py;
- a ``:mod:`~.name``` in a package's docstring names a module that exists in it;
- every ``foss_supervisor/...``, ``tests/...`` or ``benchmarks/...`` path that README.md or docs/*.md write in
  backticks (or as a ``.py`` file in plain text) exists (a ``foss_supervisor/`` path never as a glob; a glob of
  tests matches at least one file), and so does every relative ``.py`` path they write in backticks
  (``core/child.py``, read under ``foss_supervisor/``); what the benchmarks write (GENERATED) is not checked;
- every ``foss_supervisor/...py`` or ``tests/...py`` path a docstring or comment of our code names exists;
- every package is one that pyproject.toml ships (a regular ``pip install .`` lists its packages by name).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import tomllib
from pathlib import Path

import pytest
from helpers import REPO
from helpers.sources import parsed

PACKAGE = REPO / "foss_supervisor"
PACKAGES = sorted(p.parent for p in PACKAGE.rglob("__init__.py"))
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: what the benchmarks write when they run (.gitignore): named by the docs, absent from a checkout
GENERATED = ("benchmarks/results/",)


def dotted(package: Path) -> str:
    return ".".join(package.relative_to(REPO).parts)


def members(package: Path) -> set[str]:
    """The modules (``*.py`` but ``__init__``) and subpackages ``package`` holds."""
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    return modules | {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}


def docstring(package: Path) -> str:
    return ast.get_docstring(parsed(package / "__init__.py").tree) or ""


def named(doc: str, package: str) -> set[str]:
    """The names of ``package``'s members that ``doc`` names: ``name``, :mod:`~.name`, :mod:`package.name`."""
    found = set(re.findall(r"``(\w+)``", doc))
    for target in re.findall(r":mod:`~?([\w.]+)`", doc):
        if target.startswith("."):
            found.add(target[1:].split(".")[0])
        elif target.startswith(package + "."):
            found.add(target[len(package) + 1 :].split(".")[0])
    return found


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: dotted(p))
def test_a_package_docstring_names_every_module_it_holds(package: Path) -> None:
    doc = docstring(package)
    missing = sorted(members(package) - named(doc, dotted(package)))
    assert not missing, f"{dotted(package)}/__init__.py's docstring does not name {len(missing)}: {missing}"
    assert "May import:" in doc, f"{dotted(package)}/__init__.py's docstring has no 'May import:' sentence"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: dotted(p))
def test_a_package_docstring_names_no_module_it_lacks(package: Path) -> None:
    relative = {t.split(".")[0] for t in re.findall(r":mod:`~?\.([\w.]+)`", docstring(package))}
    gone = sorted(relative - members(package))
    assert not gone, f"{dotted(package)}/__init__.py's docstring names modules it does not hold: {gone}"


def test_every_package_ships_in_a_regular_install() -> None:
    """pyproject.toml lists the packages setuptools builds (no discovery): a package left out of the list works in
    an editable install and is missing from the wheel."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert {dotted(p) for p in PACKAGES} <= listed, sorted({dotted(p) for p in PACKAGES} - listed)


def test_the_checks_see_a_missing_module() -> None:
    """The reading of a docstring is strict: a word in prose or another package's module does not count."""
    doc = "What lives here: :mod:`~.alpha`, ``beta``, :mod:`foss_supervisor.x.gamma`; delta in prose."
    assert named(doc, "foss_supervisor.x") == {"alpha", "beta", "gamma"}
    assert named(":mod:`foss_supervisor.y.gamma`", "foss_supervisor.x") == set()


def doc_paths(text: str) -> list[tuple[int, str]]:
    """(line, path) of every path the Markdown ``text`` writes in backticks, or as a ``.py`` path in plain text."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for token in re.findall(r"`([^`\s]+)`", line):
            path = token.split("::")[0].rstrip(",.:;")
            if not re.fullmatch(r"[\w./*?\[\]@-]+", path) or "/" not in path or path.startswith("/"):
                continue
            if path.startswith(GENERATED):
                continue
            if path.startswith(("foss_supervisor/", "tests/", "benchmarks/")) or path.endswith(".py"):
                found.append((number, path))
        bare = re.findall(r"(?<![\w/`])((?:foss_supervisor|tests|benchmarks)/[\w/]+\.py)\b", line)
        found += [(number, path) for path in bare if not path.startswith(GENERATED)]
    return found


def exists(path: str) -> bool:
    if any(c in path for c in "*?["):
        return not path.startswith("foss_supervisor/") and any(REPO.glob(path))
    return (REPO / path).exists() or (not path.startswith(("tests/", "benchmarks/")) and (PACKAGE / path).exists())


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_the_paths_the_docs_name_exist(doc: Path) -> None:
    wrong = [f"{doc.name}:{line} `{path}`" for line, path in doc_paths(doc.read_text()) if not exists(path)]
    assert not wrong, "paths that do not exist (a foss_supervisor/ path may not be a glob): " + "; ".join(wrong)


def test_the_architecture_page_names_the_rooms_and_real_files() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    assert "## Rooms" in text and "tests/unit/test_architecture.py" in text
    named_paths = {path for _, path in doc_paths(text) if path.startswith("foss_supervisor/")}
    assert len(named_paths) >= 10, named_paths
    assert exists("foss_supervisor/core/child.py") and exists("core/child.py")
    assert not exists("foss_supervisor/commands*.py") and not exists("foss_supervisor/daemon.py")


def code_texts(source: str) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment of the Python source ``source``."""
    texts = [
        (node.body[0].lineno, doc)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and (doc := ast.get_docstring(node)) is not None
    ]
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return texts + [(t.start[0], t.string) for t in tokens if t.type == tokenize.COMMENT]


# ours only: benchmarks/ holds the peers' virtualenv once a benchmark ran (benchmarks/.venv-bench)
CODE = sorted(
    p
    for p in [*PACKAGE.rglob("*.py"), *(REPO / "tests").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]
    if not any(part.startswith(".") for part in p.relative_to(REPO).parts)
)


CODE_PATH = re.compile(r"\b(?:foss_supervisor|tests)/[\w/]+\.py\b")


def test_the_paths_our_docstrings_and_comments_name_exist() -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{line} {name}"
        for path in CODE
        if CODE_PATH.search(source := path.read_text())  # parsed only if it names a path at all (most do not)
        for line, text in code_texts(source)
        for name in CODE_PATH.findall(text)
        if not (REPO / name).exists()
    ]
    assert not wrong, "docstrings and comments name files that do not exist: " + "; ".join(wrong)


def test_every_package_is_shipped_by_a_regular_install() -> None:
    """A package missing from ``[tool.setuptools] packages`` works from the checkout's editable install and is
    absent from a wheel: the daemon installed with ``pip install .`` would fail on its first import of it."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    missing = sorted(dotted(p) for p in PACKAGES if dotted(p) not in listed)
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {missing}"


_DOTTED_CALLABLE = re.compile(r"\bfoss_supervisor(?:\.\w+)+:\w+")


def _defines(module: str, name: str) -> bool:
    """Whether ``module`` (dotted, under foss_supervisor) is a file of the package defining ``name`` at its top."""
    path = REPO.joinpath(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        return False
    tree = parsed(path).tree
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    return name in names


def test_every_callable_named_by_its_dotted_path_exists() -> None:
    """A step's ``callable: foss_supervisor.X.Y:name`` written anywhere (the package, the shipped configs, the
    docs) names a module that exists and a function it defines, or is an old name ``callables.RENAMED`` maps to a
    new one (what a user's pipeline file may still say): a module moved leaves no dotted name behind."""
    renamed_at = PACKAGE / "pipeline" / "worker" / "callables.py"
    renamed = next(
        n.value
        for n in parsed(renamed_at).tree.body
        if isinstance(n, ast.AnnAssign) and ast.unparse(n.target) == "RENAMED"
    )
    assert isinstance(renamed, ast.Dict)
    old_names = {k.value for k in renamed.keys if isinstance(k, ast.Constant)}
    files = [*PACKAGE.rglob("*.py"), *(REPO / "configs").rglob("*.yaml"), *DOCS]
    named = {(f, m) for f in files for m in _DOTTED_CALLABLE.findall(f.read_text(encoding="utf-8"))}
    assert len({m for _, m in named}) >= 3  # ingest, discover, report at least
    wrong = sorted(
        f"{f.relative_to(REPO)}: {m}" for f, m in named if m not in old_names and not _defines(*m.split(":"))
    )
    assert not wrong, wrong
    assert all(_defines(*new.value.split(":")) for new in renamed.values if isinstance(new, ast.Constant))
