"""A rollback stopped after its restore committed (issue 18: "daemon kill leave every table and the ledger as
before"): its restore's transaction wrote the ledger's rollback row, so the next runner on the same warehouse and
history finishes the published set's switch and the snapshot, and records the rollback as it happened. The stop
is a cancel while the switch blocks on run 1's kept manifest, swapped for a FIFO (no sleep); the e2e test
(tests/e2e/test_pipeline_recovery_daemon.py) does the same with a SIGKILLed daemon."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from helpers import fifo_writer, wait_until
from helpers.pipeline import RunnerFactory
from test_publish_delta import delta_pipeline, duckdb_rows

from foss_supervisor.pipeline.recovery import ROLLBACK_LEFT
from foss_supervisor.pipeline.spec import load_pipeline
from foss_supervisor.pipeline.states import RunStatus


async def test_a_rollback_stopped_after_its_restore_committed_is_finished_by_the_next_runner(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    spec = load_pipeline(delta_pipeline(tmp_path, workspace, publish_format="parquet"))
    runner = await runners.open([spec], workspace["state"])
    folder = runner.publish_dir / "dl"
    first = await asyncio.wait_for(runner.run("dl"), 60)
    at_first = await duckdb_rows(runner)
    (workspace["reference"] / "size.csv").write_text("n\n70\n")
    second = await asyncio.wait_for(runner.run("dl"), 60)
    assert (first.status, second.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    kept = folder / "runs" / first.run_id / "_manifest.json"
    text = kept.read_bytes()
    kept.unlink()
    os.mkfifo(kept)

    task = asyncio.ensure_future(runner.rollback("dl", first.run_id, apply=True))
    writer = await wait_until(lambda: fifo_writer(kept), 60, "the switch reading run 1's manifest")
    try:
        [rollback] = runner.runs("dl", 1)
        assert rollback.reason == "rollback" and rollback.status is RunStatus.RUNNING
        row = (await runner.client.query(f"SELECT run_id, target FROM {spec.ledger}.rollbacks")).rows
        assert row == ((rollback.run_id, first.run_id),)  # written in the restore's own transaction
        assert await duckdb_rows(runner) == at_first
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        os.write(writer, b"not a manifest")  # the blocked reader goes on and fails: nothing it does is kept
        os.close(writer)
    kept.unlink()
    kept.write_bytes(text)
    assert json.loads((folder / "_manifest.json").read_text())["run_id"] == second.run_id
    await runner.aclose()

    again = await runners.open([spec], workspace["state"])  # its start() reads the ledger's rollback row
    [told] = again.runs("dl", 1)
    assert told.run_id == rollback.run_id and told.started_at == rollback.started_at
    assert told.status is RunStatus.SUCCEEDED_WITH_WARNINGS and told.error == ROLLBACK_LEFT, told
    assert told.note == f"rolled back to run {first.run_id}"
    assert json.loads((folder / "_manifest.json").read_text())["run_id"] == first.run_id
    assert again.snapshots("dl")[-1] == told.run_id
    assert await duckdb_rows(again) == at_first
    same = await again.diff(first.run_id, told.run_id)
    assert all((t["added"], t["removed"], t["changed"] or 0) == (0, 0, 0) for t in same["tables"])
    assert await again.recover_rollbacks() == []  # told once
