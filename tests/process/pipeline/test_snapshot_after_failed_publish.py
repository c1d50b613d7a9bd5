"""A run whose tables committed but whose publish failed still keeps its snapshot (issue 18: the snapshot is of
the layer tables, not of the published set): a diff shows what it did, and a rollback to it, having no published
set of that run to switch to, publishes the restored tables anew as the rollback's run."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from helpers.pipeline import RunnerFactory
from test_publish_delta import delta_pipeline, duckdb_rows, rows

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.snapshots import list_snapshots
from foss_supervisor.pipeline.engine.spec import load_pipeline


async def test_a_run_whose_publish_failed_keeps_its_snapshot_and_a_rollback_to_it_republishes(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    spec = load_pipeline(delta_pipeline(tmp_path, workspace, publish_format="parquet"))
    runner = await runners.open([spec], workspace["state"])
    folder = runner.publish_dir / "dl"
    first = await asyncio.wait_for(runner.run("dl"), 60)
    assert first.status is RunStatus.SUCCEEDED, first.to_dict()

    # a file where the publish's runs/ folder belongs: the worker cannot stage the run, the publish fails
    os.rename(folder / "runs", tmp_path / "runs.away")
    (folder / "runs").write_text("in the way\n")
    (workspace["reference"] / "size.csv").write_text("n\n70\n")
    failed = await asyncio.wait_for(runner.run("dl"), 60)
    at_failed = await duckdb_rows(runner)
    (folder / "runs").unlink()
    os.rename(tmp_path / "runs.away", folder / "runs")
    assert failed.status is RunStatus.SUCCEEDED_WITH_WARNINGS, failed.to_dict()
    assert failed.error is not None and failed.error.startswith("publish failed:"), failed.error
    assert "snapshot failed" not in failed.error
    assert list_snapshots(runner.snapshot_folder("dl")) == [first.run_id, failed.run_id]
    assert json.loads((folder / "_manifest.json").read_text())["run_id"] == first.run_id

    changed = {t["table"]: t for t in (await runner.diff(first.run_id, failed.run_id))["tables"]}
    assert (changed["dl_gold.items"]["rows_a"], changed["dl_gold.items"]["rows_b"]) == (40, 70)

    (workspace["reference"] / "size.csv").write_text("n\n55\n")
    third = await asyncio.wait_for(runner.run("dl"), 60)
    assert third.status is RunStatus.SUCCEEDED, third.to_dict()
    plan = await asyncio.wait_for(runner.rollback("dl", failed.run_id, apply=False), 60)
    assert plan["published"] == "republish", plan  # it has no published set to switch back to
    done = await asyncio.wait_for(runner.rollback("dl", failed.run_id, apply=True), 60)
    record = runner.get_run(done["run_id"])
    assert record is not None and record.status is RunStatus.SUCCEEDED, record
    assert await duckdb_rows(runner) == at_failed
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["run_id"] == done["run_id"]  # published anew, as the rollback's run
    items = manifest["tables"]["dl_gold.items"]["files"]  # read by pyarrow from the files the manifest lists
    assert rows(pa.concat_tables([pq.read_table(folder / f) for f in items])) == at_failed["dl_gold.items"]
    assert manifest["tables"]["dl_gold.daily"]["rows"] == len(at_failed["dl_gold.daily"])
    # what a daemon killed after the restore's COMMIT has its next start do again: the same published set
    assert await runner._switch_to_restored(spec, failed.run_id, done["run_id"]) is None
    assert json.loads((folder / "_manifest.json").read_text()) == manifest
    assert runner.snapshots("dl")[-1] == done["run_id"]
