"""``pipeline runs``: each run's id, status, reason, start, duration and rows, from the records the history keeps."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.cli.pipelines import run_rows, runs_table
from foss_supervisor.pipeline.history import RunRecord, StepRecord
from foss_supervisor.pipeline.states import RunMode, RunStatus, StepState

counts = st.none() | st.integers(0, 10**12)
steps = st.lists(
    st.builds(StepRecord, name=st.from_regex(r"[a-z_]{1,64}", fullmatch=True), rows_out=counts, rows_in=counts),
    max_size=12,
)
runs = st.builds(
    RunRecord,
    run_id=st.from_regex(r"20\d{6}T\d{6}Z-[0-9a-f]{6}", fullmatch=True),
    pipeline=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True),
    mode=st.sampled_from(RunMode),
    trigger=st.sampled_from(["manual", "interval", "cron", "files_landed", "config_changed", "after:orders"]),
    status=st.sampled_from(RunStatus),
    started_at=st.floats(0, 4e9),
    steps=steps.map(tuple),
    finished_at=st.none() | st.floats(4e9, 4.1e9),
    retry_of=st.none() | st.just("20260101T000000Z-abcdef"),
)


@given(st.lists(runs, max_size=20))
def test_every_run_is_one_line_with_its_id_status_reason_start_duration_and_rows(records: list[RunRecord]) -> None:
    lines = runs_table([r.to_dict() for r in records])
    assert lines[0].split() == ["RUN", "PIPELINE", "STATUS", "REASON", "STARTED", "TOOK", "ROWS"]
    assert len(lines) == len(records) + 1
    for record, line in zip(records, lines[1:], strict=True):
        fields = line.split()
        assert fields[:3] == [record.run_id, record.pipeline, record.status.value]
        assert fields[3] == record.reason
        assert ("(retry)" in fields) == (record.retry_of is not None)
        assert " ".join(fields[-4:-2]) == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started_at))
        assert fields[-2] == ("-" if record.duration_s is None else f"{record.duration_s:.2f}s")
        written = [s.rows_out for s in record.steps if s.rows_out is not None]
        assert fields[-1] == (f"{max(written):,}" if written else "-")


def test_rows_are_what_a_step_of_this_run_wrote_not_what_a_reused_step_carries() -> None:
    run = RunRecord(
        run_id="20260101T000000Z-abcdef",
        pipeline="orders",
        mode=RunMode.RUN,
        trigger="manual",
        status=RunStatus.SUCCEEDED,
        started_at=0.0,
        steps=(
            StepRecord("ingest", StepState.SKIPPED, metrics={"rows_out": 400_000}),  # reused by a retry
            StepRecord("validate", StepState.SUCCEEDED, rows_in=400_000, rows_out=399_120),
            StepRecord("aggregate", StepState.SUCCEEDED, rows_in=399_120, rows_out=31),
        ),
        finished_at=2.5,
    )
    assert run_rows(run.to_dict()) == 399_120
    assert runs_table([run.to_dict()])[1].split()[-3:] == [
        time.strftime("%H:%M:%S", time.localtime(0)),
        "2.50s",
        "399,120",
    ]
