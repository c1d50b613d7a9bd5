"""Each successful step of a run through the real DuckDB worker carries the worker's peak RSS, CPU time and
storage I/O during it (``metrics["worker_peak_rss_bytes"]``, ``worker_cpu_s``, ``worker_read_bytes``,
``worker_write_bytes``: :mod:`foss_supervisor.base.usagespan`), kept in the run history."""

from __future__ import annotations

import asyncio
from pathlib import Path

from golden_data import FILES_BATCH1, write_files
from helpers.pipeline import RunnerFactory, orders_spec

from foss_supervisor.base.pipelinestates import RunStatus, StepState


async def test_every_succeeded_step_says_the_workers_peak_memory(
    workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    runner = await runners.open([orders_spec(workspace)], workspace["state"])
    write_files(workspace["landing"], FILES_BATCH1)
    record = await asyncio.wait_for(runner.run("orders"), 60)
    assert record.status is RunStatus.SUCCEEDED, record.to_dict()
    done = [s for s in record.steps if s.state in (StepState.SUCCEEDED, StepState.SUCCEEDED_WITH_WARNINGS)]
    assert done
    for step in done:
        peak = step.metrics["worker_peak_rss_bytes"]
        # a worker with DuckDB loaded and a database open holds tens of MiB; no process here holds a TiB
        assert isinstance(peak, int) and 16 * 2**20 < peak < 2**40, (step.name, peak)
        assert isinstance(step.metrics["worker_cpu_s"], float) and step.metrics["worker_cpu_s"] >= 0, step.name
        assert step.metrics["worker_read_bytes"] >= 0 and step.metrics["worker_write_bytes"] >= 0, step.name
    assert sum(s.metrics["worker_cpu_s"] for s in done) > 0  # the run's steps made the worker work
    kept = runner.runs("orders", 1)[0]
    assert kept.step(done[-1].name).metrics["worker_peak_rss_bytes"] == done[-1].metrics["worker_peak_rss_bytes"]
