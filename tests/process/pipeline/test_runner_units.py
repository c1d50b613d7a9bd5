"""The runner with a real worker: transient faults retried with their write rolled back, a step bug failing
without retry and blocking its dependents, runs of one pipeline never overlapping (spec loading, the state
table and history: tests/unit/pipeline/test_spec_and_history.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import wait_until
from helpers.pipeline import RunnerFactory, write_yaml

from foss_supervisor.base.pipelinestates import (
    RunStatus,
    StepState,
)
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import PipelineBusyError, UnknownPipelineError
from foss_supervisor.pipeline.events import RunFinished, StepLog, StepStateChanged

HERE = Path(__file__).parent


def flaky_yaml(tmp_path: Path, *, step: str = "flaky", retries: int = 2) -> Path:
    (tmp_path / "after.sql").write_text("SELECT count(*) AS rows_in, count(*) AS rows_out FROM main.t;")
    doc = {
        "name": "flaky",
        "folders": {"landing": str(tmp_path), "reference": str(tmp_path), "warehouse": str(tmp_path / "wh.duckdb")},
        "steps": [
            {
                "name": "first",
                "kind": "python",
                "callable": f"pipeline_test_steps:{step}",
                "retries": retries,
                "params": {"marker": str(tmp_path / "marker")},
            },
            {"name": "after", "sql": "after.sql", "depends_on": ["first"]},
            {"name": "warn", "kind": "python", "callable": "pipeline_test_steps:warns"},
        ],
    }
    return write_yaml(tmp_path, doc, "flaky.yaml")


async def test_transient_fault_is_retried_with_its_write_rolled_back(tmp_path: Path, runners: RunnerFactory) -> None:
    spec = load_pipeline(flaky_yaml(tmp_path))
    runner = await runners.open(
        [spec], tmp_path / "state", worker_env={"PYTHONPATH": str(HERE)}, retry_initial_s=0.01, retry_max_s=0.05
    )
    rec = await asyncio.wait_for(runner.run("flaky"), 60)
    assert rec.status is RunStatus.SUCCEEDED_WITH_WARNINGS, rec.to_dict()
    assert rec.step("first").attempts == 2
    assert rec.step("warn").state is StepState.SUCCEEDED_WITH_WARNINGS
    assert rec.step("warn").warnings == ("3 rows looked odd",)
    # the failed attempt's insert was rolled back: only the second attempt's row exists
    assert rec.step("after").rows_out == 1
    res = await runner.client.query("SELECT attempt FROM main.t")
    assert res.rows == ((2,),)
    edges = [(e.old, e.new) for e in runners.events if isinstance(e, StepStateChanged) and e.step == "first"]
    assert edges == [
        (StepState.PENDING, StepState.QUEUED),
        (StepState.QUEUED, StepState.RUNNING),
        (StepState.RUNNING, StepState.RETRYING),
        (StepState.RETRYING, StepState.QUEUED),
        (StepState.QUEUED, StepState.RUNNING),
        (StepState.RUNNING, StepState.SUCCEEDED),
    ]
    assert any(isinstance(e, StepLog) and e.message == "second attempt goes through" for e in runners.events)
    assert any(isinstance(e, RunFinished) and e.status is RunStatus.SUCCEEDED_WITH_WARNINGS for e in runners.events)


async def test_step_bug_fails_without_retry_and_blocks_dependents(tmp_path: Path, runners: RunnerFactory) -> None:
    spec = load_pipeline(flaky_yaml(tmp_path, step="broken"))
    runner = await runners.open([spec], tmp_path / "state", worker_env={"PYTHONPATH": str(HERE)}, retry_initial_s=0.01)
    rec = await asyncio.wait_for(runner.run("flaky"), 60)
    assert rec.status is RunStatus.FAILED
    assert rec.step("first").state is StepState.FAILED and rec.step("first").attempts == 1
    assert "bug in step" in (rec.step("first").error or "")
    assert rec.step("after").state is StepState.UPSTREAM_FAILED
    assert rec.step("warn").state is StepState.SUCCEEDED_WITH_WARNINGS  # independent branch still runs
    with pytest.raises(UnknownPipelineError):
        await runner.run("nope")


async def test_runs_of_one_pipeline_never_overlap_and_cancel(tmp_path: Path, runners: RunnerFactory) -> None:
    (tmp_path / "slow.sql").write_text(
        "CREATE TABLE main.s AS SELECT 1 AS x;\n"
        "SELECT count(*) AS rows_in, count(*) AS rows_out FROM range(1000000000000) t(x) WHERE hash(x) = 42;"
    )
    doc = {
        "name": "slow",
        "folders": {"landing": str(tmp_path), "reference": str(tmp_path), "warehouse": str(tmp_path / "wh.duckdb")},
        "steps": [{"name": "slow", "sql": "slow.sql"}, {"name": "next", "sql": "slow.sql", "depends_on": ["slow"]}],
    }
    spec = load_pipeline(write_yaml(tmp_path, doc, "slow.yaml"))
    runner = await runners.open([spec], tmp_path / "state", cancel_grace_s=30.0)  # a loaded CI machine took > 5 s
    pid = runner.worker.pid
    task = asyncio.create_task(runner.run("slow"))
    await wait_until(lambda: runner.is_running("slow"), 5, "the run to start")
    with pytest.raises(PipelineBusyError):
        await runner.run("slow")
    await wait_until(  # the cancel meets the step's query in the worker
        lambda: any(
            isinstance(e, StepStateChanged) and e.step == "slow" and e.new is StepState.RUNNING for e in runners.events
        ),
        30,
        "the slow step running",
    )
    assert await runner.cancel("slow")
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)
    rec = runner.runs("slow")[0]
    assert rec.status is RunStatus.CANCELLED
    assert rec.step("slow").state is StepState.CANCELLED and rec.step("next").state is StepState.CANCELLED
    # the interrupt was enough: same worker, and the step's CREATE TABLE was rolled back
    assert runner.worker.pid == pid
    res = await runner.client.query("SELECT count(*) FROM duckdb_tables() WHERE table_name = 's'")
    assert res.rows == ((0,),)
