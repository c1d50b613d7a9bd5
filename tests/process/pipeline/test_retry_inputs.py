"""A good retry counts as a run of the inputs it took (scheduling.py): when nothing landed or changed since its
source run started, the next trigger finds nothing new and records no run; when something did, it runs. A
newcomer saw runs labelled ``files_landed`` that found no file, after a retry had cleared what the last good
run took. A real PipelineService with its DuckDB worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import wait_until

from foss_supervisor.base.pipelinestates import RunMode, RunStatus
from foss_supervisor.config import parse_config
from foss_supervisor.core.events import EventBus
from foss_supervisor.pipeline.engine.service import PipelineService

STEP = """from pathlib import Path


def gate(ctx):
    if not Path(ctx.params["fixed"]).exists():
        raise ValueError("not fixed yet")
    ctx.cursor.execute("CREATE SCHEMA IF NOT EXISTS g_gold")
    ctx.cursor.execute("CREATE OR REPLACE TABLE g_gold.t AS SELECT 1 AS x")
    return {"rows_in": 1, "rows_out": 1}
"""


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[PipelineService]:
    (tmp_path / "steps.py").write_text(STEP)
    (tmp_path / "land").mkdir()
    (tmp_path / "ref").mkdir()
    doc: dict[str, Any] = {
        "name": "g",
        "folders": {"landing": "land", "reference": "ref", "warehouse": "w.duckdb"},
        "schemas": ["g_gold"],
        "steps": [
            {
                "name": "gate",
                "kind": "python",
                "callable": f"{tmp_path / 'steps.py'}:gate",
                "retries": 0,
                "params": {"fixed": str(tmp_path / "fixed")},
            },
        ],
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(doc))
    text = f"state_dir: {tmp_path / 'state'}\npipelines:\n  g: {{file: {tmp_path / 'g.yaml'}, on_new_files: false}}\n"
    svc = PipelineService(parse_config(text, tmp_path / "config.yaml", {}), EventBus())
    shutdown = asyncio.Event()
    task = asyncio.create_task(svc.run(shutdown))
    try:
        await wait_until(lambda: svc._group is not None, 60, "the service started")
        yield svc
    finally:
        shutdown.set()
        await asyncio.wait_for(task, 60)


async def _retried(svc: PipelineService, tmp_path: Path) -> None:
    failed = await asyncio.wait_for(svc.start("g", RunMode.RUN, "manual"), 120)
    assert failed is not None and failed.status is RunStatus.FAILED, failed
    (tmp_path / "fixed").touch()  # outside the pipeline's inputs: the retry's inputs are its source run's
    _, task = svc.start_retry(failed.run_id, None)
    retried = await asyncio.wait_for(task, 120)
    assert retried is not None and retried.status is RunStatus.SUCCEEDED, retried


def _runs_and_skips(svc: PipelineService) -> tuple[int, int]:
    [g] = svc.overview()
    return len(svc.runner.runs("g", limit=50)), int(g["skips"]["count"])


async def test_after_a_good_retry_with_nothing_new_a_trigger_records_no_run(
    service: PipelineService, tmp_path: Path
) -> None:
    await _retried(service, tmp_path)
    runs, skips = _runs_and_skips(service)
    assert service._try_start("g", "interval") is True
    await wait_until(lambda: _runs_and_skips(service)[1] == skips + 1, 60, "the trigger counted as a skip")
    assert _runs_and_skips(service)[0] == runs  # no run recorded


async def test_after_a_good_retry_a_file_landed_since_its_source_starts_a_run(
    service: PipelineService, tmp_path: Path
) -> None:
    await _retried(service, tmp_path)
    (service.config.pipelines["g"].landing / "late.csv").write_text("a\n1\n")  # landed after the source began
    runs, skips = _runs_and_skips(service)
    assert service._try_start("g", "interval") is True
    await wait_until(lambda: _runs_and_skips(service)[0] == runs + 1, 60, "a run for the new file")
    assert _runs_and_skips(service)[1] == skips
