"""Bounded queries (issue 15): memory, time and recycling of the real worker process on a real DuckDB file.

Waits are bounded generously (a few times the limit under test), never asserted as timings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import wait_until
from helpers.pipeline import RunnerFactory, gated_spec
from structlog.testing import capture_logs

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.pipeline.engine.limits import MiB, WorkerLimits
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.errors import QueryMemoryError, QueryTimeoutError
from foss_supervisor.pipeline.events import StepStateChanged, WorkerExited, WorkerStarted

HERE = Path(__file__).parent
#: scalar calls on one 40M-element list: DuckDB checks for an interrupt only once they return (5-13 s here,
#: measured with an interrupt at 1 s), well past a 1 s limit plus the 2 s grace
UNINTERRUPTIBLE_SQL = "SELECT len(list_reverse(list_reverse(range(40000000))))"
#: a value whose conversion to Python objects takes seconds and cannot be interrupted
#: a list DuckDB builds (and frees) in memory: 320 MB of integers
BIG_LIST_SQL = "SELECT list(range) AS l FROM range(40000000)"
SLOW_TO_CONVERT_SQL = "SELECT list(TIMESTAMPTZ '2024-01-01' + to_seconds(range)) FROM range(3000000)"


async def open_runner(tmp_path: Path, runners: RunnerFactory, limits: WorkerLimits, **kw: Any) -> PipelineRunner:
    return await runners.open(
        [gated_spec(tmp_path)], tmp_path / "state", worker_env={"PYTHONPATH": str(HERE)}, limits=limits, **kw
    )


def exited(runners: RunnerFactory, pid: int | None) -> list[WorkerExited]:
    return [e for e in runners.events if isinstance(e, WorkerExited) and e.pid == pid]


async def test_a_memory_hungry_query_fails_with_the_limit_and_the_worker_serves_the_next(
    tmp_path: Path, runners: RunnerFactory
) -> None:
    runner = await open_runner(tmp_path, runners, WorkerLimits.resolve(256 * MiB))
    pid = runner.worker.pid
    assert pid is not None and psutil.Process(pid).rlimit(psutil.RLIMIT_DATA) == (1536 * MiB, 1536 * MiB)
    with capture_logs() as logs, pytest.raises(QueryMemoryError) as info:
        await asyncio.wait_for(runner.client.query("SELECT list(range) FROM range(300000000)", timeout_s=60), 90)
    assert str(info.value).startswith("query needs more than the worker's 256 MiB memory limit;")
    assert any(e["event"] == "pipeline_query_limit_hit" and e["limit"] == "memory" for e in logs)
    assert (await runner.client.query("SELECT 42")).rows == ((42,),)
    status = runner.worker.status()
    assert status["pid"] == pid and status["restarts"] == 0  # the error came back; the worker stayed
    assert status["limit_hits"]["memory"] == 1
    assert status["memory_limit"] == 256 * MiB and status["limits"]["os_memory_limit_bytes"] == 1536 * MiB


async def test_a_query_duckdb_cannot_interrupt_is_answered_at_its_limit_and_the_worker_restarted(
    tmp_path: Path, runners: RunnerFactory
) -> None:
    runner = await open_runner(tmp_path, runners, WorkerLimits.resolve(query_grace_s=1.0))
    pid = runner.worker.pid
    with capture_logs() as logs, pytest.raises(QueryTimeoutError) as info:
        await asyncio.wait_for(runner.client.query(UNINTERRUPTIBLE_SQL, timeout_s=1.0), 3 * 2.0)
    assert str(info.value) == "query exceeded its 1 s limit; the worker was restarted"
    told = [e["event"] for e in logs if e["event"] in ("pipeline_query_limit_hit", "pipeline_worker_recycled")]
    assert told == ["pipeline_query_limit_hit", "pipeline_worker_recycled"]
    await wait_until(lambda: exited(runners, pid), 10, "the old worker's exit")
    assert exited(runners, pid)[0].reason == "recycled_query_timeout"
    assert (await asyncio.wait_for(runner.client.query("SELECT 42"), 30)).rows == ((42,),)
    status = runner.worker.status()
    assert status["pid"] not in (None, pid) and status["restarts"] == 1
    assert status["last_restart"]["reason"] == "recycled_query_timeout"
    assert status["recycles"] == {"query_timeout": 1} and status["limit_hits"]["time"] == 1


async def test_a_huge_value_converted_past_the_limit_is_answered_and_the_worker_restarted(
    tmp_path: Path, runners: RunnerFactory
) -> None:
    # a reply bound far above the default, so the value is converted at all: Python then holds the worker
    runner = await open_runner(tmp_path, runners, WorkerLimits.resolve(query_grace_s=0.5), max_result_bytes=512 * MiB)
    pid = runner.worker.pid
    with pytest.raises(QueryTimeoutError, match=r"^query exceeded its 0.5 s limit; the worker was restarted$"):
        await asyncio.wait_for(runner.client.query(SLOW_TO_CONVERT_SQL, timeout_s=0.5), 3 * 1.0)
    await wait_until(lambda: exited(runners, pid), 10, "the old worker's exit")
    assert (await asyncio.wait_for(runner.client.query("SELECT 42"), 30)).rows == ((42,),)
    assert runner.worker.status()["recycles"] == {"query_timeout": 1}


async def test_the_default_bound_never_converts_a_huge_value(tmp_path: Path, runners: RunnerFactory) -> None:
    runner = await open_runner(tmp_path, runners, WorkerLimits.resolve())
    pid = runner.worker.pid
    result = await asyncio.wait_for(runner.client.query(f"SELECT 1 AS small, ({BIG_LIST_SQL}) AS huge"), 30)
    assert result.rows == () and result.truncated
    assert "result larger than 16 MiB; row 1 alone is about" in result.truncated_reason
    assert runner.worker.status()["limit_hits"]["result_size"] == 1 and runner.worker.pid == pid


async def test_a_recycle_waits_for_the_step_running_in_the_worker(tmp_path: Path, runners: RunnerFactory) -> None:
    runner = await open_runner(tmp_path, runners, WorkerLimits.resolve(query_grace_s=1.0))
    pid = runner.worker.pid
    run = asyncio.create_task(runner.run("gated"))
    await wait_until(lambda: (tmp_path / "started").exists(), 30, "the step to start")
    with capture_logs() as logs, pytest.raises(QueryTimeoutError) as info:
        await asyncio.wait_for(runner.client.query(UNINTERRUPTIBLE_SQL, timeout_s=1.0), 3 * 2.0)
    assert "the worker will be restarted as soon as the pipeline step or export running in it ends" in str(info.value)
    assert any(e["event"] == "pipeline_worker_recycle_queued" for e in logs)
    status = runner.worker.status()
    assert status["pid"] == pid and status["recycle_pending"] == "query_timeout"
    assert not exited(runners, pid)  # the step is still running in it

    (tmp_path / "release").touch()
    record = await asyncio.wait_for(run, 60)
    assert record.status is RunStatus.SUCCEEDED  # never killed by the recycle
    await wait_until(lambda: exited(runners, pid), 10, "the queued recycle")
    assert exited(runners, pid)[0].reason == "recycled_query_timeout"
    finished = [e for e in runners.events if isinstance(e, StepStateChanged) and e.new is StepState.SUCCEEDED]
    assert runners.events.index(finished[0]) < runners.events.index(exited(runners, pid)[0])
    assert (await asyncio.wait_for(runner.client.query("SELECT x FROM main.gated"), 30)).rows == ((1,),)
    assert runner.worker.status()["recycle_pending"] is None


async def test_an_idle_worker_whose_memory_stays_high_is_recycled(tmp_path: Path, runners: RunnerFactory) -> None:
    limits = WorkerLimits.resolve(recycle_rss=300 * MiB, recycle_after_s=0.5)
    runner = await open_runner(tmp_path, runners, limits)
    pid = runner.worker.pid
    # the allocator keeps what this query freed: the worker's RSS stays far above its idle size
    with capture_logs() as logs:
        await asyncio.wait_for(runner.client.query(f"SELECT max(len(l)) FROM ({BIG_LIST_SQL})"), 60)
        await wait_until(lambda: exited(runners, pid), 30, "the recycle of the idle worker")
    assert exited(runners, pid)[0].reason == "recycled_rss"
    recycled = [e for e in logs if e["event"] == "pipeline_worker_recycled"]
    assert recycled[0]["reason"] == "rss" and recycled[0]["rss_bytes"] > 300 * MiB
    await wait_until(lambda: any(isinstance(e, WorkerStarted) and e.pid != pid for e in runners.events), 30, "respawn")
    assert (await runner.client.query("SELECT 42")).rows == ((42,),)
    status = runner.worker.status()
    assert status["recycles"] == {"rss": 1} and status["rss_bytes"] < 300 * MiB


async def test_new_limits_restart_the_worker_with_them_once_idle(tmp_path: Path, runners: RunnerFactory) -> None:
    runner = await open_runner(tmp_path, runners, WorkerLimits.resolve(512 * MiB))
    pid = runner.worker.pid
    await runner.worker.set_limits(WorkerLimits.resolve(512 * MiB))  # the same: nothing happens
    assert runner.worker.pid == pid and runner.worker.status()["recycles"] == {}
    await runner.worker.set_limits(WorkerLimits.resolve(256 * MiB))
    await wait_until(lambda: runner.worker.pid not in (None, pid), 30, "the worker restarted with the new limits")
    assert exited(runners, pid)[0].reason == "recycled_limits"
    new_pid = runner.worker.pid
    assert new_pid is not None and psutil.Process(new_pid).rlimit(psutil.RLIMIT_DATA)[0] == 1536 * MiB
    with pytest.raises(QueryMemoryError, match="256 MiB memory limit"):
        await asyncio.wait_for(runner.client.query("SELECT list(range) FROM range(300000000)", timeout_s=60), 90)
