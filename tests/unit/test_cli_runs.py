"""``pipeline runs``: each run's id, status, reason, start, duration and lines ingested, from the records the history
keeps. Issue 18 (a tester's find): the last column was ROWS, the most rows any one step wrote (a gold table's, a
reused step's), which read like rows ingested; it is now INGESTED, what the shipped ingest steps took in."""

from __future__ import annotations

import json
import string
import time

from helpers.pipeline import ORDERS_YAML
from helpers.strategies import regex_class
from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.base.pipelinestates import RunMode, RunStatus, StepState
from foss_supervisor.cli.pipelines import run_rows, runs_table
from foss_supervisor.pipeline.engine.history import RunRecord, StepRecord
from foss_supervisor.pipeline.engine.runstate import ActiveRun
from foss_supervisor.pipeline.engine.spec import load_pipeline

#: six of what ``\d`` matches: any Unicode decimal digit (category Nd), as st.from_regex drew them
DIGITS_6 = st.text(st.characters(categories=["Nd"]), min_size=6, max_size=6)
counts = st.none() | st.integers(0, 10**12)
steps = st.lists(
    st.builds(StepRecord, name=regex_class("", string.ascii_lowercase + "_", 64, 1), rows_out=counts, rows_in=counts),
    max_size=12,
)
runs = st.builds(
    RunRecord,
    run_id=st.builds("20{}T{}Z-{}".format, DIGITS_6, DIGITS_6, st.text("0123456789abcdef", min_size=6, max_size=6)),
    pipeline=regex_class(string.ascii_letters + string.digits, string.ascii_letters + string.digits + "_.-", 63),
    mode=st.sampled_from(RunMode),
    trigger=st.sampled_from(["manual", "interval", "cron", "files_landed", "config_changed", "after:orders"]),
    status=st.sampled_from(RunStatus),
    started_at=st.floats(0, 4e9),
    steps=steps.map(tuple),
    finished_at=st.none() | st.floats(4e9, 4.1e9),
    retry_of=st.none() | st.just("20260101T000000Z-abcdef"),
    ingested=counts,
    held_rows=counts,
)


@given(st.lists(runs, max_size=20))
def test_every_run_is_one_line_with_its_id_status_reason_start_duration_and_rows(records: list[RunRecord]) -> None:
    lines = runs_table([r.to_dict() for r in records])
    assert lines[0].split() == ["RUN", "PIPELINE", "STATUS", "REASON", "STARTED", "TOOK", "INGESTED"]
    assert len(lines) == len(records) + 1
    for record, line in zip(records, lines[1:], strict=True):
        held = f" ({record.held_rows:,} held)" if record.held_rows else ""  # the rows its hold took out, apart
        assert line.endswith(held)
        fields = line.removesuffix(held).split()
        assert fields[:3] == [record.run_id, record.pipeline, record.status.value]
        assert fields[3] == record.reason
        assert ("(retry)" in fields) == (record.retry_of is not None)
        assert " ".join(fields[-4:-2]) == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started_at))
        assert fields[-2] == ("-" if record.duration_s is None else f"{record.duration_s:.2f}s")
        assert fields[-1] == ("-" if record.ingested is None else f"{record.ingested:,}")
        # the history keeps the figure as written
        again = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
        assert (again.ingested, again.held_rows) == (record.ingested, record.held_rows)


def test_ingested_is_what_the_shipped_ingest_took_in_in_this_run_not_the_most_rows_a_step_wrote() -> None:
    spec = load_pipeline(ORDERS_YAML)
    run = ActiveRun("20260101T000000Z-abcdef", spec, RunMode.RUN, "manual", 0.0)
    assert run.snapshot().ingested is None  # nothing ran yet
    run.steps["ingest"] = StepRecord("ingest", StepState.SUCCEEDED, rows_in=1_000, rows_out=1_000)
    run.steps["validate"] = StepRecord("validate", StepState.SUCCEEDED, rows_in=1_000, rows_out=980)
    big = next(s.name for s in spec.steps if s.layer == "gold")
    run.steps[big] = StepRecord(big, StepState.SUCCEEDED, rows_in=980, rows_out=400_000)  # a whole gold table
    run.finished_at = 2.5
    record = run.snapshot()
    assert record.ingested == 1_000 and run_rows(record.to_dict()) == 1_000
    assert runs_table([record.to_dict()])[1].split()[-3:] == [
        time.strftime("%H:%M:%S", time.localtime(0)),
        "2.50s",
        "1,000",
    ]
    # a retry that reused ingest ingested nothing in this run, whatever its record carries
    run.steps["ingest"] = StepRecord("ingest", StepState.SKIPPED, metrics={"rows_out": 1_000}, rows_out=1_000)
    assert run.snapshot().ingested is None and runs_table([run.snapshot().to_dict()])[1].split()[-1] == "-"
    # a run whose hold took its own 600 lines (and 50 of an earlier run) out of bronze: 400 stayed (tester of
    # issue 18: INGESTED said 1,000 while bronze held 400 of them)
    run.steps["ingest"] = StepRecord("ingest", StepState.SUCCEEDED, rows_in=1_000, rows_out=1_000)
    run.held_rows, run.held_own = 650, 600
    assert run.snapshot().ingested == 400 and runs_table([run.snapshot().to_dict()])[1].endswith(" 400 (650 held)")


def test_a_record_written_before_ingested_was_kept_reads_its_ingest_steps_lines() -> None:
    old = {"run_id": "r", "pipeline": "orders", "status": "succeeded", "started_at": 0.0}
    steps = [{"name": "ingest", "state": "succeeded", "rows_out": 12}, {"name": "gold", "rows_out": 99}]
    assert RunRecord.from_dict(old | {"steps": steps}).ingested == 12
    assert RunRecord.from_dict(old | {"steps": [steps[0] | {"state": "skipped"}]}).ingested is None
    assert RunRecord.from_dict(old | {"steps": steps, "ingested": None}).ingested is None
