"""The DuckDB worker supervised as ``@pipeline-worker`` (pipeline/engine/workerservice.py), with the real worker
process on a real DuckDB file: program states from the one table, restarted when it dies, a step's timeout
and a recycle as restarts (never a crash), a start that fails reported with the worker's last words and
retried with backoff, a problem for ``/health`` while it crash-loops.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import wait_until

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.core.events import StateChanged
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import WorkerCrashedError
from foss_supervisor.pipeline.events import WorkerStarted

#: a statement that runs far past a step's 0.5 s timeout
SLOW_SQL = "CREATE OR REPLACE TABLE main.slow AS SELECT count(*) AS n FROM range(20000000000);\n"


class Recorded:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def moves(self) -> list[tuple[str, str]]:
        """The worker's state changes so far, as (old, new)."""
        return [(str(e.old), str(e.new)) for e in self.events if isinstance(e, StateChanged)]

    def started(self) -> list[int]:
        return [e.pid for e in self.events if isinstance(e, WorkerStarted)]


@pytest.fixture
async def opened() -> AsyncIterator[list[PipelineRunner]]:
    runners: list[PipelineRunner] = []
    yield runners
    for runner in runners:
        await asyncio.wait_for(runner.aclose(), 60)


def spec_in(tmp_path: Path, warehouse: Path, steps: list[dict[str, Any]]) -> Any:
    doc = {
        "name": "demo",
        "folders": {"landing": str(tmp_path), "reference": str(tmp_path), "warehouse": str(warehouse)},
        "steps": steps,
    }
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(doc))
    return load_pipeline(tmp_path / "demo.yaml")


async def test_the_worker_is_restarted_when_it_dies_and_a_step_timeout_is_a_restart(
    tmp_path: Path, opened: list[PipelineRunner]
) -> None:
    (tmp_path / "slow.sql").write_text(SLOW_SQL)
    spec = spec_in(tmp_path, tmp_path / "wh.duckdb", [{"name": "slow", "sql": "slow.sql", "timeout_s": 0.5}])
    seen = Recorded()
    runner = PipelineRunner([spec], state_dir=tmp_path / "state", on_event=seen)
    opened.append(runner)
    await asyncio.wait_for(runner.start(), 60)
    first = runner.worker.status()
    assert first["name"] == "@pipeline-worker" and first["state"] == "RUNNING" and first["pid"] == seen.started()[0]
    assert seen.moves() == [("STOPPED", "STARTING"), ("STARTING", "RUNNING")]
    assert runner.worker.process.snapshot()["pid"] == first["pid"]  # what status lists under services

    # killed from outside: it exited (a crash, as for any program) and its controller started a new one
    os.kill(first["pid"], signal.SIGKILL)
    await wait_until(lambda: len(seen.started()) == 2, 60, "a new worker")
    await wait_until(lambda: runner.worker.status()["state"] == "RUNNING", 30, "RUNNING again")
    assert seen.moves()[2:] == [("RUNNING", "EXITED"), ("EXITED", "STARTING"), ("STARTING", "RUNNING")]
    status = runner.worker.status()
    assert status["restarts"] == 1 and status["last_restart"]["reason"] == "died"
    assert status["last_restart"]["returncode"] == -signal.SIGKILL and runner.worker.problems() == []

    # a step past its timeout: the worker is killed through its controller, a restart (STOPPING), not a crash
    record = await asyncio.wait_for(runner.run("demo"), 60)
    assert record.status is RunStatus.FAILED and record.step("slow").state is StepState.CRASHED
    assert "timed out" in (record.step("slow").error or "")
    await wait_until(lambda: len(seen.started()) == 3, 60, "the worker after the timeout")
    await wait_until(lambda: runner.worker.status()["state"] == "RUNNING", 30, "RUNNING again")
    assert seen.moves()[5:] == [
        ("RUNNING", "STOPPING"),
        ("STOPPING", "STOPPED"),
        ("STOPPED", "STARTING"),
        ("STARTING", "RUNNING"),
    ]
    assert runner.worker.status()["last_restart"]["reason"] == "killed_timeout"
    assert (await runner.client.query("SELECT 42")).rows == ((42,),)


async def test_a_worker_that_cannot_start_says_why_backs_off_and_starts_once_it_can(
    tmp_path: Path, opened: list[PipelineRunner]
) -> None:
    blocker = tmp_path / "warehouse"
    blocker.write_text("a file where the warehouse's folder should be")
    (tmp_path / "one.sql").write_text(
        "CREATE OR REPLACE TABLE main.one AS SELECT 1 AS x;\nSELECT 1 AS rows_in, 1 AS rows_out;\n"
    )
    spec = spec_in(tmp_path, blocker / "wh.duckdb", [{"name": "one", "sql": "one.sql"}])
    runner = PipelineRunner([spec], state_dir=tmp_path / "state")
    opened.append(runner)
    with pytest.raises(WorkerCrashedError, match="before it was ready") as info:
        await asyncio.wait_for(runner.start(), 60)
    assert "warehouse" in str(info.value)  # the worker's last words name what it could not open
    # its controller keeps trying, ever later: BACKOFF, a problem for /health
    await wait_until(lambda: runner.worker.process.spawns >= 3 and runner.worker.problems(), 60, "BACKOFF, a problem")
    assert runner.worker.problems()[0].startswith("@pipeline-worker is BACKOFF: ")
    assert runner.worker.status()["pid"] is None and runner.worker.status()["starts"] == 0

    blocker.unlink()
    blocker.mkdir()
    await asyncio.wait_for(runner.start(), 60)  # a request cuts the wait short, as an operator's start would
    assert runner.worker.status()["state"] == "RUNNING" and runner.worker.problems() == []
    assert (await asyncio.wait_for(runner.run("demo"), 60)).status is RunStatus.SUCCEEDED
    assert (await runner.client.query("SELECT x FROM main.one")).rows == ((1,),)
