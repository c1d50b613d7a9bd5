"""The house's rules, read from the code: rooms import only downward, no import cycle, no module much over
400 lines. An equivalent of import-linter's layers contract, without the dependency: every ``import`` of
``foss_supervisor`` (module level or inside a function; not under ``if TYPE_CHECKING``) is checked.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest
from helpers import REPO
from helpers.imports import SOURCES, import_graph, imports, module_of, strongly_connected
from helpers.sources import PACKAGE

#: what each room may import besides itself (docs/architecture.md draws it); errors and the version are
#: everyone's. ``systemd.install`` (install-service) sits above the core, the rest of systemd below it.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "config": frozenset({"base"}),
    "systemd": frozenset({"base"}),
    "core": frozenset({"config", "systemd", "base"}),
    "pipeline": frozenset({"core", "config", "base"}),
    "graph": frozenset({"config", "base"}),
    "commands": frozenset({"graph", "pipeline", "core", "config", "base"}),
    "control": frozenset({"commands", "core", "base"}),
    "web": frozenset({"control", "commands", "pipeline", "core", "config", "systemd", "base"}),
    "systemd.install": frozenset({"core", "config", "base"}),
    "daemon": frozenset({"control", "commands", "pipeline", "core", "config", "systemd", "base"}),
    "cli": frozenset(
        {"daemon", "control", "commands", "pipeline", "core", "config", "systemd", "systemd.install", "base"}
    ),
    "__main__": frozenset({"cli"}),
}
EVERYONES = frozenset({"errors", "__version__", "__init__"})
MAX_LINES = 450  # "no file much over 400 lines"


def room(module: str) -> str:
    """``foss_supervisor.core.process`` -> ``core``; ``foss_supervisor.systemd.install`` -> ``systemd.install``."""
    parts = module.split(".")[1:] or ["__init__"]
    if parts[:2] == ["systemd", "install"]:
        return "systemd.install"
    return parts[0]


def test_every_room_has_its_rules() -> None:
    rooms = {room(module_of(p)) for p in SOURCES} - EVERYONES
    assert rooms <= set(MAY_IMPORT), f"rooms without rules: {rooms - set(MAY_IMPORT)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_room_imports_only_downward(path: Path) -> None:
    here = room(module_of(path))
    allowed = MAY_IMPORT.get(here, frozenset()) | EVERYONES | {here}
    if here == "systemd.install":
        allowed |= {"systemd"}
    wrong = [f"{path.name}:{line} imports {target}" for target, line, _ in imports(path) if room(target) not in allowed]
    assert not wrong, f"{here} may import {sorted(allowed)}: " + "; ".join(wrong)


#: what a room sees of the pipeline package: its façade only (the rest is the engine behind it)
PIPELINE_FACADE: dict[str, frozenset[str]] = {"commands": frozenset({"foss_supervisor.pipeline.service"})}


@pytest.mark.parametrize("here", sorted(PIPELINE_FACADE))
def test_a_room_sees_the_pipeline_facade_only(here: str) -> None:
    """The commands reach pipelines through ``PipelineService`` (pipeline/service.py) and nothing else."""
    wrong = [
        f"{path.name}:{line} imports {target}"
        for path in SOURCES
        if room(module_of(path)) == here
        for target, line, _ in imports(path)
        if room(target) == "pipeline" and target not in PIPELINE_FACADE[here]
    ]
    assert not wrong, f"{here} may import of the pipeline package only {sorted(PIPELINE_FACADE[here])}: {wrong}"


def test_no_import_cycle_at_module_level() -> None:
    """Module-level imports form no cycle (a cycle would make import order matter; counting the imports inside
    functions too: tests/unit/test_import_cycles.py)."""
    cycles = strongly_connected(import_graph(module_level=True))
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_is_much_over_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by responsibility: {long}"


def test_each_package_says_what_lives_there_and_what_it_may_import() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if init.parent.name in ("views", "gates"):
            continue  # a room's inner folders: the room's docstring covers them
        assert "May import" in doc or init.parent == PACKAGE, f"{init.relative_to(PACKAGE)} says nothing of its imports"


def test_test_modules_have_unique_names_across_tiers() -> None:
    """pytest imports test modules by basename (no packages): two tiers with one name break the full run's
    collection, which the unit tier alone would never see."""
    names = Counter(p.name for p in (REPO / "tests").rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
