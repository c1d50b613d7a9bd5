"""A step is a transaction (issue 18, failure 1): a cancel or a worker ``kill -9`` at any point of any step
leaves every table and the ledger as before that step, so rows per batch add up against the ledger after
the next run: no batch half in, no batch lost, no file marked ingested without its rows.

The pipeline ``acct`` has one step of each kind the worker runs: the shipped ``discover`` and ``ingest``
(Python, many statements each), a ``quality`` block (generated SQL) and two SQL steps, one appending by
watermark and one replacing a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from helpers import wait_until
from helpers.pipeline import RunnerFactory, gated_spec, landing_steps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import PipelineBusyError
from foss_supervisor.pipeline.events import PipelineEvent, StepLog, StepStateChanged, WorkerExited

HERE = Path(__file__).parent
STEPS = ["discover", "ingest", "check", "append", "rollup"]

SETUP = """
CREATE SCHEMA IF NOT EXISTS acct_bronze;
CREATE TABLE IF NOT EXISTS acct_bronze.raw (
    _row_id BIGINT NOT NULL, _batch_id VARCHAR NOT NULL, _source_file VARCHAR NOT NULL,
    _source_sha256 VARCHAR NOT NULL, _source_line BIGINT NOT NULL, _ingested_at TIMESTAMPTZ NOT NULL,
    _raw_line VARCHAR, _parse_error VARCHAR, id VARCHAR, v VARCHAR
);
CREATE SCHEMA IF NOT EXISTS acct_silver;
CREATE TABLE IF NOT EXISTS acct_silver.ok AS SELECT * FROM acct_bronze.raw WHERE false;
CREATE TABLE IF NOT EXISTS acct_silver.bad AS SELECT *, []::VARCHAR[] AS reasons FROM acct_bronze.raw WHERE false;
CREATE SCHEMA IF NOT EXISTS acct_gold;
CREATE TABLE IF NOT EXISTS acct_gold.rows (_row_id BIGINT, _batch_id VARCHAR);
"""
APPEND = """
INSERT INTO acct_gold.rows SELECT _row_id, _batch_id FROM acct_silver.ok
WHERE _row_id > (SELECT coalesce(max(_row_id), 0) FROM acct_gold.rows);
SELECT (SELECT count(*) FROM acct_silver.ok) AS rows_in, (SELECT count(*) FROM acct_gold.rows) AS rows_out;
"""
ROLLUP = """
CREATE OR REPLACE TABLE acct_gold.per_batch AS SELECT _batch_id, count(*) AS n FROM acct_gold.rows GROUP BY ALL;
SELECT (SELECT count(*) FROM acct_gold.rows) AS rows_in, (SELECT count(*) FROM acct_gold.per_batch) AS rows_out;
"""


def acct_pipeline(root: Path) -> Path:
    """The pipeline ``acct`` with its own landing folder and warehouse under ``root``; its YAML path."""
    (root / "landing").mkdir()
    (root / "setup.sql").write_text(SETUP)
    (root / "append.sql").write_text(APPEND)
    (root / "rollup.sql").write_text(ROLLUP)
    doc = {
        "name": "acct",
        "folders": {"landing": "landing", "reference": ".", "warehouse": "wh/w.duckdb"},
        "schemas": ["acct_meta", "acct_bronze", "acct_silver", "acct_gold"],
        "setup": "setup.sql",
        "steps": [
            *landing_steps("acct_bronze.raw", ["id", "v"]),
            {
                "name": "check",
                "kind": "quality",
                "depends_on": ["ingest"],
                "params": {
                    "source": "acct_bronze.raw",
                    "valid": "acct_silver.ok",
                    "rejected": "acct_silver.bad",
                    "columns": {"v": ["not_null"]},
                },
            },
            {"name": "append", "sql": "append.sql", "depends_on": ["check"]},
            {"name": "rollup", "sql": "rollup.sql", "depends_on": ["append"]},
        ],
        "checks": ["check.rows_in == check.valid + check.rejected"],
    }
    for step in doc["steps"]:  # type: ignore[attr-defined]
        step["retries"] = 0
    path = root / "acct.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def land(landing: Path, first: int, files: int, rows: int) -> int:
    """``files`` CSV files of ``rows`` data lines each (every 7th value blank: rejected); the lines landed."""
    for i in range(first, first + files):
        lines = [f"{i}-{r},{'' if r % 7 == 0 else r}" for r in range(rows)]
        part = landing / f".f{i:04d}.csv"
        part.write_text("id,v\n" + "\n".join(lines) + "\n")
        part.rename(landing / f"f{i:04d}.csv")
    return files * rows


async def wait_for_event(factory: RunnerFactory, pred: Callable[[PipelineEvent], bool], timeout_s: float = 60) -> None:
    await wait_until(lambda: any(pred(e) for e in factory.events), timeout_s, "the event")


async def wait_running(factory: RunnerFactory, step: str) -> None:
    await wait_for_event(
        factory, lambda e: isinstance(e, StepStateChanged) and e.step == step and e.new is StepState.RUNNING
    )


async def rows(runner: PipelineRunner, sql: str) -> list[Any]:
    res = await runner.client.query(sql, max_rows=100_000, timeout_s=30)
    assert not res.truncated
    return [tuple(r) for r in res.rows]


async def assert_accounts(runner: PipelineRunner, landed: int) -> None:
    """Every landed line is in bronze once, under the batch (run) whose ledger entry says it ingested its
    file, and every layer holds exactly the rows of the layer before it, per batch."""
    files = await rows(runner, "SELECT status, count(*) FROM acct_meta.files GROUP BY ALL")
    assert [s for s, _ in files] == ["ingested"], files
    per_file = await rows(
        runner,
        "SELECT f.sha256, f.lines, f.ingested_run, count(b._row_id), count(DISTINCT b._batch_id),"
        " any_value(b._batch_id)"
        " FROM acct_meta.files f LEFT JOIN acct_bronze.raw b ON b._source_sha256 = f.sha256 GROUP BY ALL",
    )
    for sha, lines, run, in_bronze, batches, batch in per_file:
        assert (lines, batches, batch) == (in_bronze, 1, run), (sha, lines, run, in_bronze, batches, batch)
    assert await rows(runner, "SELECT count(*), count(DISTINCT _row_id) FROM acct_bronze.raw") == [(landed, landed)]
    by_layer = await rows(
        runner,
        """
        WITH b AS (SELECT _batch_id, count(*) AS n FROM acct_bronze.raw GROUP BY ALL),
             l AS (SELECT ingested_run AS _batch_id, sum(lines) AS n FROM acct_meta.files GROUP BY ALL),
             q AS (SELECT _batch_id, count(*) AS n FROM (SELECT _batch_id FROM acct_silver.ok
                   UNION ALL SELECT _batch_id FROM acct_silver.bad) GROUP BY ALL),
             ok AS (SELECT _batch_id, count(*) AS n FROM acct_silver.ok GROUP BY ALL),
             g AS (SELECT _batch_id, count(*) AS n, count(DISTINCT _row_id) AS d FROM acct_gold.rows GROUP BY ALL)
        SELECT b._batch_id, b.n, l.n, q.n, ok.n, g.n, g.d, p.n
        FROM b FULL JOIN l USING (_batch_id) FULL JOIN q USING (_batch_id) FULL JOIN ok USING (_batch_id)
             FULL JOIN g USING (_batch_id) FULL JOIN acct_gold.per_batch p USING (_batch_id)
        """,
    )
    for batch, bronze, ledger, checked, ok, gold, distinct, rollup in by_layer:
        assert bronze == ledger == checked, (batch, bronze, ledger, checked)
        assert ok == gold == distinct == rollup, (batch, ok, gold, distinct, rollup)


#: per step of the first run (into an empty warehouse): what its table holds after it, and the metric saying so
WRITES = {
    "ingest": ("SELECT count(*) FROM acct_bronze.raw", "rows_out"),
    "check": ("SELECT (SELECT count(*) FROM acct_silver.ok) + (SELECT count(*) FROM acct_silver.bad)", "rows_in"),
    "append": ("SELECT count(*) FROM acct_gold.rows", "rows_out"),
}


async def assert_history_tells_the_tables(runner: PipelineRunner) -> None:
    """What the interrupted run's record says of each step is what its tables hold: its rows if it
    succeeded, none if it did not (cancelled, crashed, never ran): a step is never half in, nor in unsaid."""
    (record,) = runner.history.list("acct", 1)
    for step, (sql, metric) in WRITES.items():
        rec = record.step(step)
        expected = rec.metrics.get(metric, 0) if rec.state.ok else 0
        found = await rows(runner, sql)
        assert found == [(expected,)], (step, found, expected, record.to_dict())


async def interrupted_then_complete(root: Path, step: str, delay_ms: int, how: str, more_files: bool) -> None:
    spec = load_pipeline(acct_pipeline(root))
    landed = land(spec.folders.landing, 0, 24, 300)
    factory = RunnerFactory()
    try:
        runner = await factory.open([spec], root / "state")
        run = asyncio.create_task(runner.run("acct"))
        await wait_running(factory, step)
        # The interruption point is the drawn part of the test: a bounded delay into the step's run.
        await asyncio.sleep(delay_ms / 1000)
        if how == "cancel":
            # past the last step and the publish the cancel is refused: too late, the run ends by itself
            with contextlib.suppress(PipelineBusyError):
                await runner.cancel("acct")
        else:
            pid = runner.worker.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await wait_for_event(factory, lambda e: isinstance(e, WorkerExited) and e.pid == pid)
        await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 60)
        await assert_history_tells_the_tables(runner)
        if more_files:
            landed += land(spec.folders.landing, 100, 3, 50)
        second = await asyncio.wait_for(runner.run("acct", trigger="manual"), 60)
        assert second.status is RunStatus.SUCCEEDED, second.to_dict()
        await assert_accounts(runner, landed)
    finally:
        await factory.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    step=st.sampled_from(STEPS),
    delay_ms=st.integers(0, 120),
    how=st.sampled_from(["cancel", "kill"]),
    more_files=st.booleans(),
)
def test_rows_add_up_after_an_interruption_anywhere(
    tmp_path: Path, step: str, delay_ms: int, how: str, more_files: bool
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    asyncio.run(asyncio.wait_for(interrupted_then_complete(root, step, delay_ms, how, more_files), 180))


async def test_a_cancel_while_a_step_is_in_python_rolls_it_back(tmp_path: Path, runners: RunnerFactory) -> None:
    """The issue's case: a cancel that reaches the worker while a step runs Python between two statements,
    where DuckDB's interrupt has nothing to stop, still rolls the step back, even when the step then
    returns well within the cancel's grace time."""
    spec = gated_spec(tmp_path, "writes_then_gated")
    runner = await runners.open([spec], tmp_path / "state", worker_env={"PYTHONPATH": str(HERE)})
    run = asyncio.create_task(runner.run("gated"))
    await wait_until(lambda: (tmp_path / "started").exists(), 60, "the step's write")
    assert await runner.cancel("gated")
    for _ in range(3):  # the run task sends the cancel on its next loop iterations ...
        await asyncio.sleep(0)
    await runner.client.query("SELECT 1")  # ... and the worker reads it before this query
    (tmp_path / "release").write_text("go")
    await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 60)
    (record,) = runner.history.list("gated", 1)
    assert record.status is RunStatus.CANCELLED
    assert record.step("hold").state is StepState.CANCELLED, record.to_dict()
    assert await rows(runner, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'g'") == [(0,)]


async def test_a_cancel_between_two_statements_rolls_the_step_back(tmp_path: Path, runners: RunnerFactory) -> None:
    """The issue's case: a cancel that reaches the worker while ingest is in Python between two statements
    (where DuckDB's interrupt has nothing to stop) still rolls ingest back; the next run ingests it all."""
    spec = load_pipeline(acct_pipeline(tmp_path))
    landed = land(spec.folders.landing, 0, 60, 200)
    runner = await runners.open([spec], tmp_path / "state")
    run = asyncio.create_task(runner.run("acct"))
    await wait_running(runners, "ingest")
    await wait_for_event(runners, lambda e: isinstance(e, StepLog) and e.step == "ingest")  # a file logged
    assert await runner.cancel("acct")
    await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 60)
    (first,) = runner.history.list("acct", 1)
    assert first.status is RunStatus.CANCELLED
    assert first.step("ingest").state is StepState.CANCELLED, first.to_dict()
    assert await rows(runner, "SELECT count(*) FROM acct_bronze.raw") == [(0,)]
    assert await rows(runner, "SELECT count(*) FROM acct_meta.files WHERE status = 'ingested'") == [(0,)]
    second = await asyncio.wait_for(runner.run("acct"), 60)
    assert second.status is RunStatus.SUCCEEDED
    await assert_accounts(runner, landed)
