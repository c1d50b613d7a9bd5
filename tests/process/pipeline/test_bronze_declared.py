"""A bronze table declared in ``setup.sql`` (issue 18, newcomer): its columns may come in any order (ingest
inserts by name), and one that lacks a column ingest writes fails the ingest step with a message naming the
table and the columns, leaving bronze and the file ledger as they were. Real worker, real DuckDB file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers.pipeline import EVENTS_SETUP, RunnerFactory, events_yaml

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.pipeline.engine.spec import load_pipeline

REVERSED = """
CREATE SCHEMA IF NOT EXISTS events_bronze;
CREATE SCHEMA IF NOT EXISTS events_gold;
CREATE TABLE IF NOT EXISTS events_bronze.raw (
    amount VARCHAR, kind VARCHAR, event_id VARCHAR, note VARCHAR DEFAULT 'kept',
    _parse_error VARCHAR, _raw_line VARCHAR, _ingested_at TIMESTAMPTZ NOT NULL, _source_line BIGINT NOT NULL,
    _source_sha256 VARCHAR NOT NULL, _source_file VARCHAR NOT NULL, _batch_id VARCHAR NOT NULL,
    _row_id BIGINT NOT NULL
);
"""


@pytest.mark.parametrize("setup", ["reversed", "lacking"])
async def test_a_bronze_declared_in_setup_sql_is_written_by_name_or_refused_by_name(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory, setup: str
) -> None:
    path = events_yaml(tmp_path, workspace)
    lacking = EVENTS_SETUP.replace("_raw_line VARCHAR, ", "")
    (tmp_path / "events_setup.sql").write_text(REVERSED if setup == "reversed" else lacking)
    (tmp_path / "events_landing" / "e.csv").write_text("event_id,kind,amount\nE1,click,1.50\nE2,view,0\nbad\n")
    runner = await runners.open([load_pipeline(path)], workspace["state"])
    rec = await asyncio.wait_for(runner.run("events"), 60)
    rows = (await runner.client.query("SELECT count(*) FROM events_bronze.raw")).rows[0][0]
    pending = (await runner.client.query("SELECT count(*) FROM events_meta.files WHERE status = 'pending'")).rows[0][0]
    if setup == "reversed":
        assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
        got = await runner.client.query(
            "SELECT event_id, kind, amount, note, _source_line, _parse_error IS NOT NULL, _raw_line"
            " FROM events_bronze.raw ORDER BY _source_line"
        )
        assert [tuple(r) for r in got.rows] == [
            ("E1", "click", "1.50", "kept", 2, False, None),
            ("E2", "view", "0", "kept", 3, False, None),
            (None, None, None, "kept", 4, True, "bad"),
        ]
        assert rows == 3 and pending == 0
    else:
        assert rec.status is RunStatus.FAILED, rec.to_dict()
        ingest = rec.step("ingest")
        assert ingest.state is StepState.FAILED and ingest.error is not None
        assert "bronze table events_bronze.raw" in ingest.error and "_raw_line" in ingest.error, ingest.error
        assert rows == 0 and pending == 1
