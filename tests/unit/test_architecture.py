"""The house's rules, read from the code: rooms import only downward, no import cycle, no module much over
400 lines. An equivalent of import-linter's layers contract, without the dependency: every ``import`` of
``foss_supervisor`` (module level or inside a function; not under ``if TYPE_CHECKING``) is checked. Inside the
pipeline package, its own rooms (the engine, the worker, the shared modules at its top) keep their rules too,
and nothing the daemon side imports, at any depth, loads DuckDB.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest
from helpers import REPO
from helpers.imports import MODULES, SOURCES, import_graph, imports, libraries, module_of, strongly_connected
from helpers.sources import PACKAGE

#: what each room may import besides itself (docs/architecture.md draws it); errors and the version are
#: everyone's. ``systemd.install`` (install-service) sits above the core, the rest of systemd below it.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "config": frozenset({"base"}),
    "systemd": frozenset({"base"}),
    "core": frozenset({"config", "systemd", "base"}),
    "alerting": frozenset({"core", "config", "systemd", "base"}),
    "pipeline": frozenset({"core", "config", "base"}),
    "graph": frozenset({"config", "base"}),
    "commands": frozenset({"graph", "pipeline", "alerting", "core", "config", "base"}),
    "control": frozenset({"commands", "core", "base"}),
    "web": frozenset({"control", "commands", "pipeline", "core", "config", "systemd", "base"}),
    "systemd.install": frozenset({"core", "config", "base"}),
    "daemon": frozenset({"control", "commands", "pipeline", "alerting", "core", "config", "systemd", "base"}),
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
PIPELINE = "foss_supervisor.pipeline"
#: (the shared vocabulary at the package's top, ``pipeline.events`` or ``pipeline.errors``, is every room's; the
#: engine's modules only those listed; the worker's none: it is a process of its own)
PIPELINE_FACADE: dict[str, frozenset[str]] = {
    "commands": frozenset({f"{PIPELINE}.engine.service"}),
    "daemon": frozenset({f"{PIPELINE}.engine.service"}),
    "web": frozenset(),
    # `pipeline validate` and `config check` run the same checks as the daemon, in the CLI's own process
    "cli": frozenset({f"{PIPELINE}.engine.configcheck", f"{PIPELINE}.engine.reloadcheck", f"{PIPELINE}.engine.spec"}),
}


def _behind_the_facade(target: str) -> bool:
    """A module of the pipeline's engine or worker room (not its shared vocabulary at the top)."""
    return target.startswith((f"{PIPELINE}.engine", f"{PIPELINE}.worker"))


@pytest.mark.parametrize("here", sorted(PIPELINE_FACADE))
def test_a_room_sees_the_pipeline_facade_only(here: str) -> None:
    """The commands and the daemon reach pipelines through ``PipelineService`` (pipeline/engine/service.py), the
    dashboard process only through the shared vocabulary, the CLI also through the checks it runs itself."""
    wrong = [
        f"{path.name}:{line} imports {target}"
        for path in SOURCES
        if room(module_of(path)) == here
        for target, line, _ in imports(path)
        if _behind_the_facade(target) and target not in PIPELINE_FACADE[here]
    ]
    assert not wrong, f"{here} may import of the pipeline's rooms only {sorted(PIPELINE_FACADE[here])}: {wrong}"


def test_no_import_cycle_at_module_level() -> None:
    """Module-level imports form no cycle (a cycle would make import order matter; counting the imports inside
    functions too: tests/unit/test_import_cycles.py)."""
    cycles = strongly_connected(import_graph(module_level=True))
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_is_much_over_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by responsibility: {long}"


#: how a docstring names a room in its "May import:" sentence
ROOM_WORDS = {
    "base": r"\bbase\b",
    "config": r"\bconfig\b",
    "systemd": r"\bsystemd\b",
    "core": r"\bcore\b",
    "alerting": r"\balerting\b",
    "pipeline": r"\bpipelines?\b",
    "graph": r"\bgraph\b",
    "commands": r"\bcommands?\b",
    "control": r"\bcontrol\b",
    "web": r"\bweb\b",
    "daemon": r"\bdaemon\b",
    "cli": r"\bCLI\b|\bcli\b",
}


def without_asides(text: str) -> str:
    """``text`` without what it says in brackets, nested ones too."""
    while (shorter := re.sub(r"\([^()]*\)", "", text)) != text:
        text = shorter
    return text


def said_may_import(doc: str) -> set[str] | None:
    """The rooms a package docstring's "May import:" sentence grants, or None when it has none: its first
    clause (to the first ``;`` or sentence end), asides in brackets left out (``systemd (its protocol
    modules)``: a detail, not another room); ``systemd.install`` counts as ``systemd``."""
    at = doc.find("May import:")
    if at < 0:
        return None
    text = without_asides(" ".join(doc[at + len("May import:") :].split()))
    clause = re.split(r";|\.(?:\s|$)", text)[0]
    return {name for name, pattern in ROOM_WORDS.items() if re.search(pattern, clause)}


@pytest.mark.parametrize("init", sorted(PACKAGE.rglob("__init__.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_package_says_what_it_may_import_as_the_rules_say(init: Path) -> None:
    """Each package's docstring says what it may import, and the rooms its "May import:" sentence names are the
    rooms MAY_IMPORT gives it (an inner folder, ``web/views``, says its room's)."""
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    said = said_may_import(doc)
    if init.parent == PACKAGE:
        assert said == set(), "the package's own __init__ may import nothing of ours"
        return
    here = room(module_of(init))
    assert said is not None, f"{init.relative_to(PACKAGE)} says nothing of its imports"
    assert said == {r.split(".")[0] for r in MAY_IMPORT[here]}, f"{init.relative_to(PACKAGE)} says {sorted(said)}"


def test_test_modules_have_unique_names_across_tiers() -> None:
    """pytest imports test modules by basename (no packages): two tiers with one name break the full run's
    collection, which the unit tier alone would never see."""
    names = Counter(p.name for p in (REPO / "tests").rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []


def test_the_readme_layout_table_gives_each_room_the_imports_its_rules_give() -> None:
    """README's Layout table: each package's "may import" cell names the rooms MAY_IMPORT gives it (asides in
    brackets, such as "(not graph)", left out)."""
    readme = (REPO / "README.md").read_text()
    rows = re.findall(
        r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", readme.split("## Layout", 1)[1].split("\n## ", 1)[0], re.M
    )
    assert {name for name, _ in rows} == {r for r in MAY_IMPORT if "." not in r and r != "__main__"}
    for name, cell in rows:
        said = {r for r, pattern in ROOM_WORDS.items() if re.search(pattern, without_asides(cell))}
        assert said == {r.split(".")[0] for r in MAY_IMPORT[name]}, f"README says {name} may import {sorted(said)}"


#: what the engine (the daemon side) imports of the worker room: modules it reads for names, SQL text and file
#: helpers, never for DuckDB (pipeline/worker/__init__.py says what of each)
ENGINE_READS_OF_WORKER = frozenset(
    f"{PIPELINE}.worker.{m}" for m in ("callables", "hold", "ledger", "report", "snapshotstats", "supervision")
)
#: what the worker room imports of the engine: the declarations and layouts the DuckDB process works by
WORKER_READS_OF_ENGINE = frozenset(
    f"{PIPELINE}.engine.{m}" for m in ("limits", "partition", "publish", "snapshots", "spec", "workerargs")
)
#: the worker process's own libraries: nothing the daemon side imports, at any depth, imports one of them
WORKER_LIBRARIES = frozenset({"duckdb", "sqlglot", "deltalake", "pyarrow"})


def pipeline_room(module: str) -> str | None:
    """The pipeline package's room of ``module``: ``engine``, ``worker`` or ``shared`` (a module at the package's
    top, or the package itself); None for a module outside the package."""
    if module != PIPELINE and not module.startswith(PIPELINE + "."):
        return None
    sub = module.removeprefix(PIPELINE).removeprefix(".").split(".")[0]
    return sub if sub in ("engine", "worker") else "shared"


def pipeline_rule_broken(importer: str, target: str) -> str | None:
    """Why module ``importer`` may not import ``target`` by the pipeline package's room rules (pipeline/__init__.py),
    or None when it may: a shared module imports only shared ones; the engine imports of the worker room only
    ENGINE_READS_OF_WORKER, the worker of the engine only WORKER_READS_OF_ENGINE; outside the package nothing
    imports the worker room."""
    here, there = pipeline_room(importer), pipeline_room(target)
    if there is None or there == here or (there == "shared" and here is not None):
        return None
    if here is None:
        return "outside the pipeline package nothing imports its worker room" if there == "worker" else None
    if here == "shared":
        return f"a shared module imports only shared ones, not the {there}'s"
    allowed = ENGINE_READS_OF_WORKER if here == "engine" else WORKER_READS_OF_ENGINE
    if target not in allowed:
        return f"the {here} imports of the {there} room only {sorted(m.rpartition('.')[2] for m in allowed)}"
    return None


def test_the_pipeline_rooms_import_each_other_only_as_their_rules_say() -> None:
    wrong = [
        f"{module_of(path)}:{line} imports {target}: {why}"
        for path in SOURCES
        for target, line, _ in imports(path)
        if (why := pipeline_rule_broken(module_of(path), target))
    ]
    assert not wrong, "; ".join(wrong)


def test_the_pipeline_room_rules_see_a_broken_one() -> None:
    """The rules themselves: each kind of wrong import is seen, the listed exceptions are real modules."""
    engine, worker = f"{PIPELINE}.engine", f"{PIPELINE}.worker"
    assert pipeline_rule_broken(f"{engine}.runner", f"{worker}.server")  # the daemon loading the DuckDB process
    assert pipeline_rule_broken(f"{engine}.runner", worker)
    assert pipeline_rule_broken(f"{PIPELINE}.events", f"{engine}.spec")
    assert pipeline_rule_broken(f"{worker}.server", f"{engine}.runner")
    assert pipeline_rule_broken("foss_supervisor.web.core", f"{worker}.query")
    assert pipeline_rule_broken(f"{engine}.runner", f"{worker}.ledger") is None
    assert pipeline_rule_broken(f"{worker}.server", f"{engine}.spec") is None
    assert pipeline_rule_broken(f"{worker}.server", f"{PIPELINE}.protocol") is None
    assert pipeline_rule_broken("foss_supervisor.web.core", f"{PIPELINE}.events") is None
    assert pipeline_rule_broken("foss_supervisor.web.core", "foss_supervisor.core.events") is None
    assert set(MODULES) >= ENGINE_READS_OF_WORKER | WORKER_READS_OF_ENGINE


def reached_from(starts: list[str], graph: dict[str, dict[str, int]]) -> dict[str, str | None]:
    """{module reached from ``starts`` over ``graph``'s edges: the module it was first reached from (None: a
    start)}, breadth first."""
    before: dict[str, str | None] = dict.fromkeys(starts)
    queue = list(starts)
    for module in queue:
        for target in sorted(graph.get(module, {})):
            if target not in before:
                before[target] = module
                queue.append(target)
    return before


def test_nothing_the_daemon_side_imports_at_any_depth_loads_duckdb() -> None:
    """The engine and the shared modules (what the daemon and the web import), and every module of ours they
    import, at module level or inside a function, import none of WORKER_LIBRARIES (tests/e2e/test_lazy_start.py
    checks a running daemon's memory maps; this says which import it would be, without a daemon)."""
    starts = sorted(m for m in MODULES if pipeline_room(m) in ("engine", "shared"))
    before = reached_from(starts, import_graph())
    wrong = []
    for module in before:
        if found := libraries(MODULES[module]) & WORKER_LIBRARIES:
            chain = [module]
            while (up := before[chain[-1]]) is not None:
                chain.append(up)
            wrong.append(f"{' <- '.join(chain)} imports {sorted(found)}")
    assert len(before) > len(starts) and not wrong, "; ".join(wrong)


def test_the_reach_and_the_library_reader_see_a_deep_import(tmp_path: Path) -> None:
    """The reader itself: a library imported inside a function counts, one under ``if TYPE_CHECKING:`` does not;
    a module two imports away is reached, with the chain to it."""
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pyarrow\n"
        "def f() -> None:\n    import duckdb.typing\n"
    )
    assert libraries(source) & WORKER_LIBRARIES == {"duckdb"}
    assert reached_from(["a"], {"a": {"b": 1}, "b": {"c": 2}, "c": {}}) == {"a": None, "b": "a", "c": "b"}
