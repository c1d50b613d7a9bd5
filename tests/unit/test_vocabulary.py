"""One vocabulary (issue 17): one state-table type and one illegal-transition error for every state machine,
StrEnums for every state, the daemon's phase as a table of its own; one event base whose registry is the one
list of events (the stream, the page script, the OpenAPI description and the docs take theirs from it).
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import itertools
import json
import re
from pathlib import Path

import pytest
from helpers import REPO
from helpers.sources import package_sources
from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor import errors as errors_module
from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.base.processstates import DaemonPhase, ProcessState
from foss_supervisor.base.transitions import TransitionTable
from foss_supervisor.config import parse_config
from foss_supervisor.core.events import EVENTS, Event, event_to_json
from foss_supervisor.core.states import PHASE_TRANSITIONS
from foss_supervisor.daemon import Daemon
from foss_supervisor.errors import CommandError, IllegalTransitionError, SupervisorError
from foss_supervisor.graph.causes import _WRONG
from foss_supervisor.web.core import EVENT_TYPES, LISTED_EVENTS
from foss_supervisor.web.icons import STATE_ICONS

PACKAGE = Path(__file__).resolve().parents[2] / "foss_supervisor"
#: the modules that hold state machines' tables (stdlib-only modules: importing them loads nothing heavy)
STATE_MODULES = ("foss_supervisor.core.states", "foss_supervisor.base.pipelinestates")


def _enums_in_package() -> list[tuple[str, str]]:
    """(module path, class name) of every class in the package that derives from an Enum, read from the source."""
    found = []
    for source in package_sources():
        path = source.path
        for node in source.nodes:
            if isinstance(node, ast.ClassDef) and any("Enum" in ast.unparse(b) for b in node.bases):
                found.append((str(path.relative_to(PACKAGE)), node.name))
    return found


def test_every_enum_of_the_package_is_a_str_enum() -> None:
    """A state is its word everywhere (JSON, logs, pages, metrics labels): no plain Enum whose value differs."""
    enums = _enums_in_package()
    assert len(enums) >= 7  # process, health, phase, step, run, mode, step kind, role
    for path, name in enums:
        module = importlib.import_module("foss_supervisor." + path.removesuffix(".py").replace("/", "."))
        assert issubclass(getattr(module, name), enum.StrEnum), f"{path}: {name} is not a StrEnum"


def test_every_state_table_is_the_one_type_and_every_state_has_an_icon() -> None:
    tables = {
        f"{m}.{name}": value
        for m in STATE_MODULES
        for name, value in vars(importlib.import_module(m)).items()
        if name.endswith("TRANSITIONS")
    }
    assert set(tables) == {
        "foss_supervisor.core.states.TRANSITIONS",
        "foss_supervisor.core.states.PHASE_TRANSITIONS",
        "foss_supervisor.base.pipelinestates.STEP_TRANSITIONS",
        "foss_supervisor.base.pipelinestates.RUN_TRANSITIONS",
    }
    for name, table in tables.items():
        assert isinstance(table, TransitionTable), name
        assert issubclass(table.states, enum.StrEnum) and set(table) == set(table.states), name
        assert all(state in STATE_ICONS for state in table.states), f"{name}: a state without an icon"
    machines = [t.machine for t in tables.values()]
    assert len(set(machines)) == len(machines)  # each names itself differently in its errors


def test_every_table_raises_the_one_error_for_each_missing_edge() -> None:
    for table in (importlib.import_module(m) for m in STATE_MODULES):
        for name, value in vars(table).items():
            if not isinstance(value, TransitionTable):
                continue
            for old, new in itertools.product(value.states, value.states):
                if value.allows(old, new):
                    value.check(old, new)
                    continue
                with pytest.raises(IllegalTransitionError) as caught:
                    value.check(old, new)
                assert isinstance(caught.value, SupervisorError), name
                assert (caught.value.machine, caught.value.old, caught.value.new) == (value.machine, old, new)
                assert str(caught.value) == f"illegal {value.machine} transition {old} -> {new}"


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"
    GREY = "grey"


class Other(enum.StrEnum):
    RED = "red"


@given(st.dictionaries(st.sampled_from(Colour), st.frozensets(st.sampled_from(Colour)), min_size=1))
def test_a_table_is_exactly_its_edges(edges: dict[Colour, frozenset[Colour]]) -> None:
    """Whatever the edges: every state is a key, a state left out is final, check raises iff an edge is missing."""
    table = TransitionTable("colour", edges)
    assert set(table) == set(Colour) and len(table) == len(Colour)
    assert table.edges() == {(old, new) for old, targets in edges.items() for new in targets}
    assert table.final() == {s for s in Colour if not edges.get(s)}
    for old, new in itertools.product(Colour, Colour):
        legal = new in edges.get(old, frozenset())
        assert table.allows(old, new) is legal
        if legal:
            table.check(old, new)
        else:
            with pytest.raises(IllegalTransitionError, match=f"illegal colour transition {old} -> {new}"):
                table.check(old, new)


@given(st.sampled_from(Colour), st.sampled_from(list(Colour) + list(Other)))
def test_a_table_refuses_states_of_another_enum_and_no_edges(old: Colour, new: Colour | Other) -> None:
    if isinstance(new, Other):
        with pytest.raises(ValueError, match="mixes enums"):
            TransitionTable("colour", {old: {new}})  # type: ignore[arg-type]
    else:
        assert TransitionTable("colour", {old: {new}}).allows(old, new)
    with pytest.raises(ValueError, match="no edge"):
        TransitionTable[Colour]("colour", {})


def test_the_daemon_phase_table() -> None:
    p = DaemonPhase
    assert PHASE_TRANSITIONS.final() == {p.STOPPING}  # nothing un-stops a daemon
    assert all(PHASE_TRANSITIONS.allows(s, p.STOPPING) for s in p if s is not p.STOPPING)  # a shutdown always wins
    assert not PHASE_TRANSITIONS.allows(p.READY, p.READY)


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    state = tmp_path / "s"
    state.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {state}\nprograms: {{}}\n")
    return Daemon(parse_config(config.read_text(), config), None)


async def test_a_reload_returns_to_the_phase_it_began_in_and_never_after_a_shutdown(daemon: Daemon) -> None:
    phases: list[object] = []
    daemon.bus.on(lambda e: phases.append(getattr(e, "state", None)))
    assert daemon.phase is DaemonPhase.STARTING
    await daemon.reload(dry_run=False)  # while starting: back to starting, not "ready" before the start is done
    assert daemon.phase is DaemonPhase.STARTING
    daemon.request_shutdown()
    with pytest.raises(CommandError, match="stopping"):
        await daemon.reload(dry_run=False)
    assert daemon.phase is DaemonPhase.STOPPING
    assert [s for s in phases if s is not None] == ["reloading", "starting", "stopping"]


# ------------------------------------------------------------------------------------------------ events


def _event_classes_in_source() -> set[str]:
    """Every class of the package deriving (through any chain) from the one event base, read from the source."""
    bases: dict[str, set[str]] = {}
    for source in package_sources():
        for node in source.nodes:
            if isinstance(node, ast.ClassDef):
                bases[node.name] = {ast.unparse(b).rpartition(".")[2] for b in node.bases}
    found: set[str] = set()
    grown = True
    while grown:
        new = {n for n, b in bases.items() if b & (found | {"Event"})} - found
        found |= new
        grown = bool(new)
    return found


def test_every_event_class_is_registered_under_its_type_and_in_every_list() -> None:
    in_source = _event_classes_in_source()
    assert {"StateChanged", "RunFinished", "PipelineEvent"} <= in_source
    assert set(EVENTS) == in_source - {"PipelineEvent"}  # a family's base is no event of its own
    for name, cls in EVENTS.items():
        assert cls.type == name == cls.__name__ and not cls.base
        assert issubclass(cls, Event) and dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    assert tuple(EVENTS) == EVENT_TYPES
    assert tuple(n for n, c in EVENTS.items() if c.listed) == LISTED_EVENTS
    assert set(build_openapi_events()) == set(EVENTS)


def build_openapi_events() -> dict[str, object]:
    from foss_supervisor.web.openapi import _event_schemas

    return _event_schemas()


@given(st.sampled_from(sorted(EVENTS)).flatmap(lambda name: st.builds(EVENTS[name])))
def test_every_event_becomes_its_json_with_its_type(event: Event) -> None:
    data = event_to_json(event)
    json.dumps(data, allow_nan=False)
    assert data["type"] == type(event).type
    assert set(data) == {f.name for f in dataclasses.fields(event)} | {"type"}


def test_event_to_json_takes_only_events() -> None:
    for wrong in (object(), {"type": "StateChanged"}, EVENTS["StateChanged"]):
        with pytest.raises(TypeError):
            event_to_json(wrong)  # type: ignore[arg-type]


def test_the_page_script_types_no_event_name_and_reads_the_list_from_the_page() -> None:
    script = (PACKAGE.parent / "ui_templates" / "static" / "app.js").read_text()
    typed = [name for name in EVENTS if f'"{name}"' in script or f"'{name}'" in script]
    assert not typed, f"app.js names events itself: {typed}"
    assert 'getElementById("event-types")' in script


async def test_every_page_carries_the_listed_events(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer
    from helpers.webcore import LocalCore

    from foss_supervisor.web.app import create_app

    ctx = Daemon(parse_config(f"state_dir: {tmp_path}\nprograms: {{}}\n", tmp_path / "c.yaml"), None)
    core = LocalCore(ctx, ctx.events)
    async with TestClient(TestServer(create_app(core, "t" * 32, dashboard_host="127.0.0.1"))) as client:
        page = await (await client.get("/login")).text()
    await core.close()
    carried = re.search(r'<script id="event-types" type="application/json">(.*?)</script>', page)
    assert carried is not None and json.loads(carried.group(1)) == list(LISTED_EVENTS)


def events_table() -> str:
    """The table of ``docs/dashboard.md``, made from the registry."""
    rows = ["| event | listed | fields (besides `type`, `at` and `seq`) | what |", "|---|---|---|---|"]
    for name, cls in EVENTS.items():
        fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(cls) if f.name != "at")
        what = (cls.__doc__ or "").strip().splitlines()[0].replace("``", "`")
        rows.append(f"| `{name}` | {'yes' if cls.listed else 'no'} | {fields} | {what} |")
    return "\n".join(rows) + "\n"


def test_the_docs_list_every_event_as_the_registry_says() -> None:
    doc = (PACKAGE.parent / "docs" / "dashboard.md").read_text()
    found = re.search(
        r"<!-- events: made from foss_supervisor.core.events.EVENTS -->\n(.*?)<!-- /events -->", doc, re.S
    )
    assert found is not None, "docs/dashboard.md lost its table of events"
    assert found.group(1) == events_table(), "replace the table in docs/dashboard.md with:\n" + events_table()


def test_an_event_named_by_hand_is_a_registered_one() -> None:
    """Where a module cannot import an event class (the core matching the pipeline's events by ``type``, a page
    reading the journal's bytes, SQL over it), the name it types must still be one the registry knows: a
    renamed event cannot leave a dead match behind. Typed names: a CamelCase word compared with something, or
    given as a ``type`` in a literal (``"type":"X"``, ``'type' = 'X'``); a reply's ``type`` may also name an
    error class (the protocol's error replies carry one)."""
    camel = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]+)+$")
    as_type = re.compile(r"""["']type["']\s*(?::|=|IS DISTINCT FROM)\s*["']([A-Z][a-z]+(?:[A-Z][a-z]+)+)["']""")
    typed: set[tuple[str, str]] = set()
    for source in package_sources():
        path = str(source.path.relative_to(PACKAGE))
        for node in source.nodes:
            if isinstance(node, ast.Compare):
                typed |= {
                    (path, c.value)
                    for c in ast.walk(node)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str) and camel.match(c.value)
                }
            elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
                text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
                typed |= {(path, name) for name in as_type.findall(text)}
    errors = {name for name, value in vars(errors_module).items() if isinstance(value, type)}
    names = {name for _, name in typed}
    assert {"StepLog", "RunFinished", "StepRegressed", "ResourcesSampled"} <= names  # the core's, bytes, SQL
    assert [(path, name) for path, name in sorted(typed) if name not in EVENTS and name not in errors] == []


def test_the_states_the_graph_judges_are_the_state_enums() -> None:
    """graph/causes.py judges states by the enums of the bottom room: a renamed or new state shows up here, not
    silently drops out of ``why``."""
    assert _WRONG["program"] == {s.value for s in ProcessState} - {ProcessState.RUNNING.value}
    assert _WRONG["step"] <= {s.value for s in StepState}
    assert _WRONG["pipeline"] <= {s.value for s in RunStatus}


#: a program's state word written as a string: in a Python or a page script a quote on each side, in a template
#: as a list item or a comparison's operand
_TYPED_STATE = re.compile(rf"(?<![\w.])[\"'](?:{'|'.join(s.value for s in ProcessState)})[\"']")
#: where a state word is written on purpose: the enum itself, and an example of the event stream's text
_WORDS_HOME = {"base/processstates.py", "web/openapi.py"}
_PAGES = REPO / "ui_templates"


def _typed_states() -> list[str]:
    found = []
    for source in package_sources():
        where = str(source.path.relative_to(PACKAGE))
        if where not in _WORDS_HOME:
            found += [f"{where}:{n}" for n, line in enumerate(source.text.splitlines(), 1) if _TYPED_STATE.search(line)]
    for page in sorted([*_PAGES.glob("*.html"), *_PAGES.glob("static/*.js")]):
        lines = page.read_text().splitlines()
        found += [f"{page.relative_to(REPO)}:{n}" for n, line in enumerate(lines, 1) if _TYPED_STATE.search(line)]
    return found


def test_no_module_template_or_page_script_types_a_program_state() -> None:
    """The program states are words of the bottom room's enum (base/processstates.py); every room, template and
    page script takes them from it (the pages from what the templates embed: ``state-looks``, the filter's
    options), so a state renamed or added cannot leave a copy behind that still says the old word."""
    assert _typed_states() == []


def test_the_check_sees_a_typed_state() -> None:
    assert _TYPED_STATE.search('if p["state"] == "RUNNING":')
    assert _TYPED_STATE.search("{% set up = p.state in ['STOPPED', 'EXITED'] %}")
    assert _TYPED_STATE.search('const BAD = ["FATAL", "failed"];')
    assert not _TYPED_STATE.search("ProcessState.RUNNING")
    assert not _TYPED_STATE.search('"RUNNING_STATES"')
