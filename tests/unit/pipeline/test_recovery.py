"""Telling an abandoned run what had committed (pipeline/recovery.py): whatever the ledger's rows hold (any text
for metrics and warnings, any attempt), the told run keeps its id and step order, marks exactly the committed
steps succeeded (with warnings: succeeded_with_warnings), takes rows only from numbers, and names the steps."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.history import ABANDONED_ERROR, RunRecord, StepRecord
from foss_supervisor.pipeline.recovery import told_run
from foss_supervisor.pipeline.states import RunMode, RunStatus, StepState

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


@settings(max_examples=200, deadline=None)
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
    told = told_run(run, committed)
    done = {row[0] for row in committed}
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
    assert told_run(told, committed).steps == told.steps  # telling twice changes nothing more
