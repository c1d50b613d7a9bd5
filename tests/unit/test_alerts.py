"""The alert book as a pure state machine: any sequence of observations, acks and silences keeps its promises.

Promises (foss_supervisor/alerting/alerts.py): at most one open incident per key; a firing notice for a key only
while it holds; a resolved notice only for an incident told firing before, exactly once, when its key stops
holding; a repeat only after the quiet period, never for an acknowledged incident, never while silenced; the
book read back from its JSON behaves as the one in memory (a restart tells nothing again).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.alerting.alerts import AlertBook, Condition
from foss_supervisor.alerting.alertwatch import ALERTS_FILE, AlertWatch, conditions
from foss_supervisor.alerting.objectives import Objectives, RunningLedger
from foss_supervisor.base.filewriter import FileWriter
from foss_supervisor.base.pipelinestates import StepState
from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.config import parse_config
from foss_supervisor.config.model import AlertsConfig
from foss_supervisor.core.events import AlertNotice, EventBus, StateChanged
from foss_supervisor.pipeline.events import StepRegressed, StepStateChanged

KEYS = ["objective:freshness:table:gold.t", "program:api:fatal", "pipeline:orders:failed"]
QUIET_S = 100.0


def _holding(keys: frozenset[str]) -> dict[str, Condition]:
    return {k: Condition(k.split(":")[0], k, f"{k} holds") for k in keys}


#: one step: (seconds later, what holds then, an action: None, ("ack", index of an open incident),
#: ("silence", key index, seconds), ("restart",): the book is read back from its JSON)
STEPS = st.lists(
    st.tuples(
        st.floats(0, 300, allow_nan=False),
        st.frozensets(st.sampled_from(KEYS)),
        st.none()
        | st.tuples(st.just("ack"), st.integers(0, 2))
        | st.tuples(st.just("silence"), st.integers(0, 2), st.floats(1, 500))
        | st.just(("restart",)),
    ),
    max_size=60,
)


@settings(max_examples=examples(400), deadline=None)
@given(STEPS)
def test_any_sequence_keeps_one_incident_per_key_and_resolves_only_what_was_told(steps: list[Any]) -> None:
    book, now = AlertBook(), 0.0
    told: dict[int, list[tuple[float, str, bool]]] = {}  # incident id -> (at, kind, repeat)
    acked: set[int] = set()
    silenced_until: dict[str, float] = {}
    for later, keys, action in steps:
        now += later
        if action is not None and action[0] == "ack" and book.open:
            incident = list(book.open.values())[action[1] % len(book.open)]
            book.ack(incident.id)
            acked.add(incident.id)
        elif action is not None and action[0] == "silence":
            book.silence(KEYS[action[1]], now + action[2])
            silenced_until[KEYS[action[1]]] = now + action[2]
        elif action is not None and action[0] == "restart":
            book = AlertBook.loads(book.dumps())
        open_before = {i.key: i.id for i in book.open.values()}
        notices = book.observe(_holding(keys), now, QUIET_S)
        assert set(book.open) == set(keys)  # one open incident per holding key, none for the others
        assert len({i.id for i in book.open.values()}) == len(book.open)
        for notice in notices:
            inc = notice.incident
            history = told.setdefault(inc["id"], [])
            quiet = silenced_until.get(inc["key"], float("-inf")) > now
            if notice.kind == "alert_firing":
                assert inc["key"] in keys and not quiet
                if notice.repeat:
                    assert inc["id"] not in acked
                    assert now - max(at for at, kind, _ in history if kind == "alert_firing") >= QUIET_S
                else:
                    assert not any(kind == "alert_firing" for _, kind, _ in history)
            else:
                assert inc["key"] not in keys and open_before.get(inc["key"]) == inc["id"]
                assert any(kind == "alert_firing" for _, kind, _ in history)
                assert not any(kind == "alert_resolved" for _, kind, _ in history)
            history.append((now, notice.kind, notice.repeat))
        for key, incident_id in open_before.items():  # a closed incident that had been told is resolved, once
            if key not in keys and told.get(incident_id):
                assert told[incident_id][-1][1] == "alert_resolved"


def test_a_silenced_incident_is_told_once_the_silence_ends_and_a_quiet_one_that_cleared_stays_quiet() -> None:
    book = AlertBook()
    key = KEYS[0]
    book.silence(key, 50.0)
    assert book.observe(_holding(frozenset({key})), 10.0, QUIET_S) == []
    told = book.observe(_holding(frozenset({key})), 60.0, QUIET_S)
    assert [(n.kind, n.repeat) for n in told] == [("alert_firing", False)]
    book.silence(KEYS[1], 500.0)
    assert book.observe(_holding(frozenset({key, KEYS[1]})), 70.0, QUIET_S) == []
    cleared = book.observe(_holding(frozenset()), 80.0, QUIET_S)
    assert [(n.kind, n.incident["key"]) for n in cleared] == [("alert_resolved", key)]


def test_a_book_read_back_does_not_tell_an_open_incident_again() -> None:
    book = AlertBook()
    first = book.observe(_holding(frozenset({KEYS[0]})), 0.0, QUIET_S)
    again = AlertBook.loads(book.dumps())
    assert len(first) == 1 and again.observe(_holding(frozenset({KEYS[0]})), 10.0, QUIET_S) == []
    assert [n.kind for n in again.observe(_holding(frozenset()), 20.0, QUIET_S)] == ["alert_resolved"]


@pytest.mark.parametrize(
    "text",
    ["", "[]", '{"version": 2}', "\x00", "[" * 100_000 + "]" * 100_000],
)
def test_a_damaged_book_is_refused_with_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        AlertBook.loads(text)


def test_a_book_with_a_bad_entry_keeps_the_others_and_counts_it() -> None:
    """One incident or silence not as the book writes it (a wrong type, NaN, a key with a control character or a
    lone surrogate) is left out and counted; the open incident beside it stays open."""
    book = AlertBook()
    book.observe(_holding(frozenset({KEYS[0]})), 0.0, QUIET_S)
    data = json.loads(book.dumps())
    data["open"] += [5, {"id": "x"}, {**data["open"][0], "key": "a\x1b[31m"}, {**data["open"][0], "opened_at": "NaN"}]
    data["silences"] = {"ok:key": 99.0, "bad\udc80": 99.0, "nan:key": float("nan"), "": 1.0}
    again = AlertBook.from_data(data)
    assert list(again.open) == [KEYS[0]] and again.silences == {"ok:key": 99.0}
    assert again.unreadable == 7 and again.listing(0.0)["unreadable"] == 7


def test_the_rules_turn_states_into_conditions_with_stable_keys() -> None:
    objective = {"id": "uptime:program:api", "node": "program:api", "state": "violated", "detail": "down 900s"}
    programs = {
        "db": (ProcessState.FATAL, None),
        "api": (ProcessState.STARTING, 700.0),  # crash-looping for 300 s at 1000: exactly backoff_for
        "web": (ProcessState.BACKOFF, 701.0),  # 299 s: not yet
        "job": (ProcessState.RUNNING, None),
    }
    runs = {
        "orders": {"run_id": "r1", "status": "failed", "error": "boom"},
        "trips": {"run_id": "r2", "status": "succeeded_with_warnings", "error": None},
        "fine": {"run_id": "r3", "status": "succeeded", "error": None},
        "never": None,
    }
    held = conditions(AlertsConfig(), [objective], programs, runs, now=1000.0)
    assert {k: (c.rule, c.subject) for k, c in held.items()} == {
        "objective:uptime:program:api": ("objective", "program:api"),
        "program:db:fatal": ("fatal", "program:db"),
        "program:api:backoff": ("backoff", "program:api"),
        "pipeline:orders:failed": ("pipeline_failed", "pipeline:orders"),
        "pipeline:trips:quality": ("quality", "pipeline:trips"),
    }
    only = AlertsConfig(rules=frozenset({"fatal"}))
    assert set(conditions(only, [objective], programs, runs, now=1000.0)) == {"program:db:fatal"}


def test_a_regressed_step_is_one_incident_that_its_next_quick_run_resolves_and_a_restart_remembers(
    tmp_path: Path,
) -> None:
    """The ``regression`` rule through a real watch and the pipeline's own events: a step's success clears it,
    the ``StepRegressed`` told right after a success sets it; one firing notice, one resolved notice; a watch
    started afresh from the saved book neither tells it again nor forgets it."""

    async def scenario() -> list[tuple[str, str]]:
        config = parse_config(f"state_dir: {tmp_path}\nprograms: {{}}\n", tmp_path / "c.yaml")
        bus, now = EventBus(), [1000.0]
        told: list[tuple[str, str]] = []
        bus.on(lambda e: told.append((e.notice, e.key)) if isinstance(e, AlertNotice) else None)

        def watch() -> AlertWatch:
            objectives = Objectives(lambda: config, lambda: now[0], RunningLedger(lambda: now[0]))
            w = AlertWatch(lambda: config, objectives, bus, lambda: now[0], asyncio.sleep, state_dir=tmp_path)
            bus.on(w.observe)
            return w

        def step(state: StepState, run: str) -> StepStateChanged:
            return StepStateChanged(now[0], run, "orders", "aggregate", StepState.RUNNING, state, 1, 1, 1)

        first = watch()
        first.observe(step(StepState.SUCCEEDED, "r1"))
        first.tick()
        first.observe(step(StepState.SUCCEEDED, "r2"))
        first.observe(StepRegressed(now[0], "r2", "orders", "aggregate", 9.0, 3.0, 3.0, 10))
        first.tick()
        first.tick()  # still holding: told once
        restarted = watch()  # what a daemon restart reads back from alerts.json
        assert restarted.regressed == first.regressed
        restarted.tick()
        now[0] += 60.0
        restarted.observe(step(StepState.FAILED, "r3"))  # a failed run is not a quick one
        restarted.tick()
        restarted.observe(step(StepState.SUCCEEDED_WITH_WARNINGS, "r4"))
        restarted.tick()
        return told

    key = "step:orders/aggregate:regressed"
    assert asyncio.run(scenario()) == [("alert_firing", key), ("alert_resolved", key)]


def test_a_hung_disk_holds_the_writer_thread_not_the_evaluation(tmp_path: Path) -> None:
    """alerts.json is written by the writer's thread: while that thread is stuck (a hung disk), an evaluation
    that opens an incident returns at once and the file is written, whole, once the disk answers."""
    config = parse_config(f"state_dir: {tmp_path}\nprograms: {{p: {{command: [x]}}}}\n", tmp_path / "c.yaml")
    writer, disk = FileWriter(), threading.Event()
    writer.submit(lambda: disk.wait(30.0), 0)  # the thread is in a write that does not return
    now = [1000.0]
    objectives = Objectives(lambda: config, lambda: now[0], RunningLedger(lambda: now[0]))
    watch = AlertWatch(
        lambda: config, objectives, EventBus(), lambda: now[0], asyncio.sleep, state_dir=tmp_path, writer=writer
    )
    watch.observe(StateChanged(name="p", old=ProcessState.BACKOFF, new=ProcessState.FATAL))
    assert [n.kind for n in watch.tick()] == ["alert_firing"]
    assert not (tmp_path / ALERTS_FILE).exists()
    disk.set()
    assert writer.flush(10.0)
    saved = json.loads((tmp_path / ALERTS_FILE).read_text())
    assert AlertBook.from_data(saved).dumps() == watch.book.dumps()
    assert watch.save_failures == 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=examples(200), deadline=None)
@given(uptime=_JSON | st.fixed_dictionaries({"periods": _JSON, "programs": _JSON}))
def test_any_uptime_data_in_alerts_json_loses_only_itself(uptime: Any, tmp_path_factory: Any) -> None:
    """Whatever an edited or damaged alerts.json holds under ``uptime`` (wrong shapes, NaN, reversed pairs), the
    watch starts, keeps the book and its open incident, and counts uptime from its own start at worst."""
    tmp = tmp_path_factory.mktemp("a")
    config = parse_config(f"state_dir: {tmp}\nprograms: {{p: {{command: [x], uptime: 99%}}}}\n", tmp / "c.yaml")
    book = AlertBook()
    book.observe({"program:p:fatal": Condition("fatal", "program:p", "p is FATAL")}, 10.0, 3600.0)
    (tmp / ALERTS_FILE).write_text(book.dumps(uptime=uptime))
    now = [100.0]
    objectives = Objectives(lambda: config, lambda: now[0], RunningLedger(lambda: now[0]))
    watch = AlertWatch(lambda: config, objectives, EventBus(), lambda: now[0], asyncio.sleep, state_dir=tmp)
    assert list(watch.book.open) == ["program:p:fatal"]
    [o] = objectives.evaluate()
    assert 0.0 <= o["up_s"] <= o["observed_s"] and math.isfinite(o["observed_s"])


def test_a_quick_steps_jitter_is_no_incident_but_a_slowdown_of_regression_min_is(tmp_path: Path) -> None:
    """25 ms against a 10 ms median is 2.5x but no incident (a backfill of quick steps flooded the hooks);
    3 s against a 1 s median is; ``alerts.regression_min`` moves the line."""
    config = parse_config(f"state_dir: {tmp_path}\nprograms: {{}}\n", tmp_path / "c.yaml")
    now = [1000.0]
    objectives = Objectives(lambda: config, lambda: now[0], RunningLedger(lambda: now[0]))
    watch = AlertWatch(lambda: config, objectives, EventBus(), lambda: now[0], asyncio.sleep)
    watch.observe(StepRegressed(now[0], "r1", "orders", "quick", 0.025, 0.01, 2.5, 10))
    watch.observe(StepRegressed(now[0], "r1", "orders", "slow", 3.0, 1.0, 3.0, 10))
    assert list(watch.regressed) == ["orders/slow"]
    assert [n.incident["key"] for n in watch.tick()] == ["step:orders/slow:regressed"]
