"""One vocabulary (issue 17): one state-table type and one illegal-transition error for every state machine,
StrEnums for every state, and the daemon's phase as a table of its own.
"""

from __future__ import annotations

import ast
import enum
import importlib
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.base.transitions import TransitionTable
from foss_supervisor.config import parse_config
from foss_supervisor.core.states import PHASE_TRANSITIONS, DaemonPhase
from foss_supervisor.daemon import Daemon
from foss_supervisor.errors import CommandError, IllegalTransitionError, SupervisorError
from foss_supervisor.web.icons import STATE_ICONS

PACKAGE = Path(__file__).resolve().parents[1] / "foss_supervisor"
#: the modules that hold state machines (stdlib-only modules: importing them loads nothing heavy)
STATE_MODULES = ("foss_supervisor.core.states", "foss_supervisor.pipeline.states")


def _enums_in_package() -> list[tuple[str, str]]:
    """(module path, class name) of every class in the package that derives from an Enum, read from the source."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
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
        "foss_supervisor.pipeline.states.STEP_TRANSITIONS",
        "foss_supervisor.pipeline.states.RUN_TRANSITIONS",
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
