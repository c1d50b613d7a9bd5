"""Telling an abandoned run what had committed (pipeline/engine/recovery.py): whatever the ledger's rows hold (any text
for metrics and warnings, any attempt), the told run keeps its id and step order, marks exactly the committed
steps succeeded (with warnings: succeeded_with_warnings), takes rows only from numbers, and names the steps.
And the rollback a killed daemon left after its restore committed: told from any ledger row, only when unfinished
and the newest run."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from helpers import examples
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.pipelinestates import RunMode, RunStatus, StepState
from foss_supervisor.pipeline.engine.history import ABANDONED_ERROR, RunHistory, RunRecord, StepRecord
from foss_supervisor.pipeline.engine.publish import RUN_ID
from foss_supervisor.pipeline.engine.recovery import ROLLBACK, ROLLBACK_LEFT, left_rollback, told_run

STEPS = ["discover", "ingest", "validate", "report"]
_json_text = st.one_of(
    st.text(max_size=20),
    st.builds(
        json.dumps,
        st.dictionaries(
            st.sampled_from(["rows_in", "rows_out", "x"]),
            st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=3), st.booleans()),
            max_size=3,
        ),
    ),
    st.builds(json.dumps, st.lists(st.text(max_size=5), max_size=2)),
)


@settings(max_examples=examples(200), deadline=None)
@given(
    committed=st.lists(
        st.tuples(st.sampled_from(STEPS), st.integers(1, 5), _json_text, _json_text),
        max_size=4,
        unique_by=lambda r: r[0],
    )
)
def test_a_told_run_marks_exactly_the_committed_steps(committed: list[tuple[str, int, str, str]]) -> None:
    run = RunRecord(
        run_id="20261205T120000Z-abcdef",
        pipeline="p",
        mode=RunMode.RUN,
        trigger="manual",
        status=RunStatus.ABANDONED,
        started_at=1.0,
        steps=tuple(StepRecord(name) for name in STEPS),
        error=ABANDONED_ERROR,
    )
    told = told_run(run, committed, ingest_steps={"ingest"})
    done = {row[0] for row in committed}
    # what its committed ingest took in counts as ingested, as for a finished run (tester of issue 18: null)
    assert told.ingested == (told.step("ingest").rows_out if "ingest" in done else None)
    assert told.run_id == run.run_id and told.status is RunStatus.ABANDONED
    assert [s.name for s in told.steps] == STEPS
    for step in told.steps:
        if step.name in done:
            assert step.state in (StepState.SUCCEEDED, StepState.SUCCEEDED_WITH_WARNINGS)
            assert (step.state is StepState.SUCCEEDED_WITH_WARNINGS) == bool(step.warnings)
            assert step.rows_in is None or isinstance(step.rows_in, int)
        else:
            assert step.state is StepState.PENDING
    named = [s for s in STEPS if s in done]
    assert told.error == ABANDONED_ERROR + (
        f"; steps committed before it stopped: {', '.join(named)}" if named else "; no step had committed"
    )
    again = told_run(told, committed, ingest_steps={"ingest"})
    assert (again.steps, again.ingested) == (told.steps, told.ingested)  # telling twice changes nothing more


# ----------------------------------------------------------------------------- a rollback a killed daemon left

_cell = st.one_of(
    st.none(),
    st.text(max_size=120),
    st.sampled_from(["20261205T120500Z-abcdef", "20261205T110000Z-000001", "../x", "", "a b"]),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
LATE = "20261205T120500Z-abcdef"  # a rollback's run id


def _history(tmp_path_factory: pytest.TempPathFactory, runs: list[RunRecord]) -> RunHistory:
    history = RunHistory(tmp_path_factory.mktemp("h") / "runs.jsonl")
    for run in runs:
        history.append(run)
    return history


def _run(
    run_id: str, started: float, status: RunStatus, trigger: str = "manual", error: str | None = None
) -> RunRecord:
    return RunRecord(
        run_id, "p", RunMode.RUN, trigger, status, started, tuple(StepRecord(n) for n in STEPS), error=error
    )


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    row=st.one_of(
        st.lists(_cell, max_size=5),
        st.tuples(st.sampled_from([LATE, "20261205T110000Z-000001"]), _cell, _cell, st.floats(0.0, 3e9)).map(
            lambda r: [r[0], r[1], r[3] if r[2] is None else r[2]]
        ),
    ),
    known=st.sampled_from(["none", "abandoned", "finished", "abandoned_then_later"]),
    earlier=st.floats(0.0, 2e9),
)
def test_a_left_rollback_is_told_only_when_it_is_the_newest_and_unfinished_whatever_its_ledger_row_holds(
    tmp_path_factory: pytest.TempPathFactory, row: list[object], known: str, earlier: float
) -> None:
    """Whatever ``<ledger>.rollbacks`` holds (any text, numbers, NULLs, too few or too many cells), left_rollback
    never raises; it tells a run only for a run id, never one the history finished or one older than a run
    after it, and what it tells is a rollback run, succeeded_with_warnings, saying the daemon stopped."""
    runs = [_run("20261205T100000Z-000000", earlier, RunStatus.SUCCEEDED)]
    rid = row[0] if row and isinstance(row[0], str) else None
    if rid is not None and RUN_ID.fullmatch(rid) and known != "none":
        status = RunStatus.SUCCEEDED if known == "finished" else RunStatus.RUNNING
        runs.append(_run(rid, earlier + 1.0, status, "rollback"))
        if known == "abandoned_then_later":
            runs.append(_run("20261205T130000Z-000002", earlier + 2.0, RunStatus.SUCCEEDED))
    history = _history(tmp_path_factory, runs)
    history = RunHistory(history.path)  # as a new daemon loads it: a running rollback is abandoned
    left = left_rollback(history, "p", STEPS, row, now=3e9)
    started = row[2] if len(row) > 2 else None
    in_order = (
        isinstance(started, int | float)
        and not isinstance(started, bool)
        and math.isfinite(started)
        and started >= earlier
    )
    expected = (
        rid is not None
        and RUN_ID.fullmatch(rid) is not None
        and (known == "abandoned" or (known == "none" and in_order))
    )
    assert (left is not None) == expected
    event(f"told: {expected}")
    if left is not None:
        record = left.record
        assert record.run_id == rid and record.trigger == ROLLBACK and record.reason == "rollback"
        assert record.status is RunStatus.SUCCEEDED_WITH_WARNINGS and record.error == ROLLBACK_LEFT
        assert [s.name for s in record.steps] == STEPS
        target = row[1] if len(row) > 1 else None
        named = isinstance(target, str) and RUN_ID.fullmatch(target) is not None
        assert left.target == (target if named else None)
        assert record.note == (
            f"rolled back to run {target}" if named else "rolled back to a run its ledger row does not name"
        )
        assert record.finished_at is not None and record.finished_at >= record.started_at
        history.append(record)
        assert left_rollback(history, "p", STEPS, row, now=3e9) is None  # told once


def test_an_abandoned_rollback_without_its_ledger_row_says_its_tables_are_as_they_were() -> None:
    run = _run(LATE, 1.0, RunStatus.ABANDONED, "rollback", ABANDONED_ERROR)
    told = told_run(run, [])
    assert told.error == ABANDONED_ERROR + "; its restore had not committed: every table is as it was"
    noted = told_run(dataclasses.replace(run, note="rolling back to run 20261205T115900Z-abcdef"), [])
    assert (
        noted.note == "rollback to run 20261205T115900Z-abcdef not applied"
    )  # not "rolled back": nothing was (newcomer)
