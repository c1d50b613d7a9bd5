"""Delta Lake output (issue 18, ``publish_format: delta``): each published table a Delta table, one commit
per run with the run id in its metadata, read back by deltalake and by pyarrow over the table's files (not
DuckDB), each version compared to what DuckDB held at that run; rollback restores the run's version by a new
commit; ``publish_keep`` keeps the kept runs readable; ``pipeline reset`` removes the tables."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import DeltaTable
from helpers.pipeline import RunnerFactory

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.spec import load_pipeline

GOLD_SQL = """
CREATE SCHEMA IF NOT EXISTS dl_gold;
CREATE OR REPLACE TABLE dl_gold.items AS
SELECT range AS item_id, 'item ' || range AS label, getvariable('run_id') AS run_id
FROM range((SELECT max(n) FROM read_csv(getvariable('reference_dir') || '/size.csv')));
CREATE OR REPLACE TABLE dl_gold.daily AS
SELECT DATE '2024-05-01' + CAST(item_id % 3 AS INTEGER) AS day, CAST(sum(item_id) * 1.25 AS DECIMAL(18, 2)) AS amount,
       count(*) AS items, any_value(run_id) AS run_id
FROM dl_gold.items GROUP BY ALL;
SELECT 0 AS rows_in, (SELECT count(*) FROM dl_gold.items) AS rows_out;
"""
TABLES = ("dl_gold.daily", "dl_gold.items")


def delta_pipeline(tmp_path: Path, ws: dict[str, Path], **top: Any) -> Path:
    """Pipeline ``dl``: one step making two gold tables (``items`` has size.csv's ``n`` rows), published as
    Delta tables, ``daily`` partitioned by ``day``."""
    (ws["reference"] / "size.csv").write_text("n\n40\n")
    (tmp_path / "gold.sql").write_text(GOLD_SQL)
    doc = {
        "name": "dl",
        "folders": {"landing": str(ws["landing"]), "reference": str(ws["reference"]), "warehouse": str(ws["db"])},
        "schemas": ["dl_gold"],
        "steps": [{"name": "gold", "sql": "gold.sql", "retries": 0}],
        "publish": ["dl_gold"],
        "publish_partition_by": ["dl_gold.daily.day"],
        "publish_format": "delta",
        **top,
    }
    path = tmp_path / "dl.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """A table's rows as sorted tuples in column-name order (Delta moves partition columns last)."""
    names = sorted(table.column_names)
    return sorted(tuple(r[n] for n in names) for r in table.to_pylist())


async def duckdb_rows(runner: PipelineRunner) -> dict[str, list[tuple[Any, ...]]]:
    """What DuckDB holds now in each published table, exported by the worker to Parquet and read by pyarrow."""
    out = {}
    for table in TABLES:
        exported = await runner.client.export(table, "parquet")
        try:
            out[table] = rows(pq.read_table(exported["path"]))
        finally:
            Path(exported["path"]).unlink()
    return out


def run_ids(path: Path) -> list[str | None]:
    """The ``foss_supervisor.run_id`` of each commit of the Delta table at ``path``, oldest first."""
    return [c.get("foss_supervisor.run_id") for c in reversed(DeltaTable(path).history())]


async def test_each_run_is_one_delta_version_read_back_and_rolled_back(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    spec = load_pipeline(delta_pipeline(tmp_path, workspace))
    assert spec.publish_format == "delta"
    runner = await runners.open([spec], workspace["state"])
    folder = runner.publish_dir / "dl"

    first = await asyncio.wait_for(runner.run("dl"), 60)
    assert first.status is RunStatus.SUCCEEDED, first.to_dict()
    at_first = await duckdb_rows(runner)
    (workspace["reference"] / "size.csv").write_text("n\n70\n")
    second = await asyncio.wait_for(runner.run("dl"), 60)
    assert second.status is RunStatus.SUCCEEDED, second.to_dict()
    at_second = await duckdb_rows(runner)
    assert at_first != at_second

    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["run_id"] == second.run_id and manifest["publish_format"] == "delta"
    assert (folder / "_SUCCESS").is_file() and not (folder / "runs").exists()
    assert {r: e["versions"] for r, e in manifest["runs"].items()} == {
        first.run_id: dict.fromkeys(TABLES, 0),
        second.run_id: dict.fromkeys(TABLES, 1),
    }
    for table in TABLES:
        path = folder / table
        assert DeltaTable(path).version() == 1
        assert run_ids(path) == [first.run_id, second.run_id]
        assert rows(DeltaTable(path, version=0).to_pyarrow_table()) == at_first[table], table
        assert rows(DeltaTable(path).to_pyarrow_table()) == at_second[table], table
        entry = manifest["tables"][table]
        assert entry["version"] == 1 and entry["rows"] == len(at_second[table])
        # an engine that knows no Delta reads the current version's files the manifest lists
        schema = pa.schema(DeltaTable(path).schema().to_arrow())
        hive = ds.partitioning(pa.schema([schema.field(c) for c in entry["partition_by"]]), flavor="hive")
        files = ds.dataset([str(folder / f) for f in entry["files"]], partitioning=hive, partition_base_dir=str(path))
        assert rows(files.to_table()) == at_second[table], table
    assert DeltaTable(folder / "dl_gold.daily").metadata().partition_columns == ["day"]

    plan = await asyncio.wait_for(runner.rollback("dl", first.run_id, apply=False), 60)
    assert plan["published"] == "restore", plan
    done = await asyncio.wait_for(runner.rollback("dl", first.run_id, apply=True), 60)
    assert done["applied"] is True
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["run_id"] == first.run_id
    for table in TABLES:
        path = folder / table
        assert DeltaTable(path).version() == 2 and manifest["tables"][table]["version"] == 2
        assert rows(DeltaTable(path).to_pyarrow_table()) == at_first[table], table
        assert rows(DeltaTable(path, version=1).to_pyarrow_table()) == at_second[table], table
        newest = DeltaTable(path).history(1)[0]
        assert newest["operation"] == "RESTORE" and newest["foss_supervisor.run_id"] == first.run_id
        assert newest["foss_supervisor.rollback_run"] == done["run_id"]
    assert await duckdb_rows(runner) == at_first

    reset = await runner.reset("dl")
    assert reset["unpublished"] is True and not folder.exists()


async def test_publish_keep_keeps_the_kept_runs_readable_and_vacuums_the_rest(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    spec = load_pipeline(delta_pipeline(tmp_path, workspace, publish_keep=2, snapshot_keep=0))
    runner = await runners.open([spec], workspace["state"])
    folder = runner.publish_dir / "dl"
    seen = []
    for n in (10, 20, 30):
        (workspace["reference"] / "size.csv").write_text(f"n\n{n}\n")
        rec = await asyncio.wait_for(runner.run("dl"), 60)
        assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
        seen.append((rec.run_id, await duckdb_rows(runner)))
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert list(manifest["runs"]) == [r for r, _ in seen[-2:]]
    for table in TABLES:
        path = folder / table
        assert run_ids(path) == [r for r, _ in seen]
        for version in (1, 2):  # the kept runs: their files are still there
            assert rows(DeltaTable(path, version=version).to_pyarrow_table()) == seen[version][1][table]
        with pytest.raises(Exception, match=r"(?i)not found|no such file"):  # run 1's files are vacuumed
            DeltaTable(path, version=0).to_pyarrow_table()
    # a run no longer kept is published anew on rollback (from the snapshot; none here, so refused)
    plan = runner._published_kept(spec, seen[0][0])  # the rule the rollback plan follows
    assert plan is False and runner._published_kept(spec, seen[1][0]) is True


async def test_switching_the_format_replaces_the_other_layout(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    path = delta_pipeline(tmp_path, workspace, publish_format="parquet")
    runner = await runners.open([load_pipeline(path)], workspace["state"])
    folder = runner.publish_dir / "dl"
    assert (await asyncio.wait_for(runner.run("dl"), 60)).status is RunStatus.SUCCEEDED
    assert (folder / "runs").is_dir() and (folder / "current").is_symlink()
    path.write_text(path.read_text().replace("publish_format: parquet", "publish_format: delta"))
    await runner.replace_pipelines([load_pipeline(path)])
    delta = await asyncio.wait_for(runner.run("dl"), 60)
    assert delta.status is RunStatus.SUCCEEDED, delta.to_dict()
    assert sorted(p.name for p in folder.iterdir()) == ["_SUCCESS", "_manifest.json", *TABLES]
    path.write_text(path.read_text().replace("publish_format: delta", "publish_format: parquet"))
    await runner.replace_pipelines([load_pipeline(path)])
    assert (await asyncio.wait_for(runner.run("dl"), 60)).status is RunStatus.SUCCEEDED
    assert sorted(p.name for p in folder.iterdir()) == ["_manifest.json", "current", "runs"]


async def test_a_publish_stopped_midway_leaves_the_manifest_and_undoes_what_it_committed(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """``daily`` (small) commits first, then ``items`` (millions of rows) is stopped while it streams: a
    cancel restores ``daily`` to its previous version (a further commit); a killed worker cannot, and the
    manifest still names the previous run, whose versions read as before either way."""
    spec = load_pipeline(delta_pipeline(tmp_path, workspace))
    runner = await runners.open([spec], workspace["state"])
    folder = runner.publish_dir / "dl"
    first = await asyncio.wait_for(runner.run("dl"), 60)
    assert first.status is RunStatus.SUCCEEDED, first.to_dict()
    at_first = await duckdb_rows(runner)
    (workspace["reference"] / "size.csv").write_text("n\n6000000\n")

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(_publish_stopped(runner, folder, kill_worker=False), 120)
    stopped = runner.history.list("dl", limit=1)[0]  # its steps had committed: too late for the run
    assert stopped.status is RunStatus.SUCCEEDED_WITH_WARNINGS and "publish cancelled" in str(stopped.error)
    assert json.loads((folder / "_manifest.json").read_text())["run_id"] == first.run_id
    daily = folder / "dl_gold.daily"
    cancelled = runner.history.list("dl", limit=1)[0].run_id
    assert DeltaTable(daily).version() == 2 and DeltaTable(daily).history(1)[0]["operation"] == "RESTORE"
    items = DeltaTable(folder / "dl_gold.items")  # interrupted while streaming, or (the cancel came between two
    if items.version() != 0:  # statements, which DuckDB drops) committed and then undone as daily was
        assert items.version() == 2 and items.history(1)[0]["foss_supervisor.undo_of"] == cancelled
    for table in TABLES:
        assert rows(DeltaTable(folder / table).to_pyarrow_table()) == at_first[table], table

    killed = await asyncio.wait_for(_publish_stopped(runner, folder, kill_worker=True), 120)
    assert killed.status is RunStatus.SUCCEEDED_WITH_WARNINGS, killed.to_dict()
    assert killed.error is not None and killed.error.startswith("publish failed:"), killed.error
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["run_id"] == first.run_id and DeltaTable(daily).version() == 3  # ahead of the manifest
    for table in TABLES:
        version = manifest["tables"][table]["version"]
        assert rows(DeltaTable(folder / table, version=version).to_pyarrow_table()) == at_first[table], table


async def _publish_stopped(runner: PipelineRunner, folder: Path, *, kill_worker: bool) -> Any:
    """Run ``dl`` and, once its publish committed ``daily`` (and streams ``items``), SIGKILL the worker or
    cancel the run."""
    task = asyncio.ensure_future(runner.run("dl"))
    log = folder / "dl_gold.daily" / "_delta_log"
    before = len(list(log.glob("*.json")))
    for _ in range(20_000):  # bounded: 100 s at most
        if len(list(log.glob("*.json"))) > before or task.done():
            break
        await asyncio.sleep(0.005)
    assert not task.done(), "the run ended before its publish committed daily"
    if kill_worker:
        pid = runner.worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    else:
        task.cancel()
    return await task


async def test_a_type_or_value_delta_refuses_fails_the_publish_and_undoes_the_tables_before_it(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    path = delta_pipeline(tmp_path, workspace)
    runner = await runners.open([load_pipeline(path)], workspace["state"])
    folder = runner.publish_dir / "dl"
    first = await asyncio.wait_for(runner.run("dl"), 60)
    assert first.status is RunStatus.SUCCEEDED, first.to_dict()
    at_first = await duckdb_rows(runner)
    sql = tmp_path / "gold.sql"
    original = sql.read_text()
    # items (published after daily) gains a TIME column, which Delta has no type for: the type gate refuses it
    # (publishtypes.py) before any table is written, naming the table, the column and the fix
    sql.write_text(original.replace("AS run_id\nFROM range(", "AS run_id, TIME '10:00' AS at\nFROM range("))
    await runner.replace_pipelines([load_pipeline(path)])
    bad = await asyncio.wait_for(runner.run("dl"), 60)
    assert bad.status is RunStatus.SUCCEEDED_WITH_WARNINGS, bad.to_dict()
    assert bad.error == (
        "publish failed: dl_gold.items: column 'at' is TIME, which Delta Lake cannot hold exactly (Delta Lake has"
        ' no time of day); fix: CAST("at" AS VARCHAR) in the step\'s SQL, or publish_format: parquet'
    ), bad.error
    daily = folder / "dl_gold.daily"
    assert [c["operation"] for c in DeltaTable(daily).history()] == ["WRITE"]  # nothing was written
    # a top-level DATE of infinity is refused by the gate's value check, before any table is written
    sql.write_text(original.replace("AS run_id\nFROM range(", "AS run_id, DATE 'infinity' AS at\nFROM range("))
    await runner.replace_pipelines([load_pipeline(path)])
    bad = await asyncio.wait_for(runner.run("dl"), 60)
    assert bad.error is not None and "column 'at' is DATE, and 40 of its values are infinite" in bad.error, bad.error
    assert [c["operation"] for c in DeltaTable(daily).history()] == ["WRITE"]
    # ... and so is one nested at any depth (an infinite DATE inside a STRUCT)
    nested = "AS run_id, {'d': DATE 'infinity'} AS at\nFROM range("
    sql.write_text(original.replace("AS run_id\nFROM range(", nested))
    await runner.replace_pipelines([load_pipeline(path)])
    bad = await asyncio.wait_for(runner.run("dl"), 60)
    assert bad.error is not None and "is STRUCT(d DATE), and 40 of its values hold a date" in bad.error, bad.error
    assert [c["operation"] for c in DeltaTable(daily).history()] == ["WRITE"]
    # what deltalake itself fails on midway (items' log made unreadable: a disk's fault) fails once daily
    # committed: daily is restored
    sql.write_text(original)
    await runner.replace_pipelines([load_pipeline(path)])
    log = folder / "dl_gold.items" / "_delta_log"
    shutil.move(log, tmp_path / "items_log")
    log.write_text("not a folder")
    try:
        bad = await asyncio.wait_for(runner.run("dl"), 60)
    finally:
        log.unlink()
        shutil.move(tmp_path / "items_log", log)
    assert bad.status is RunStatus.SUCCEEDED_WITH_WARNINGS, bad.to_dict()
    assert bad.error is not None and bad.error.startswith("publish failed:") and "deltalake:" in bad.error, bad.error
    assert "Not a directory" in bad.error and "\x1b" not in bad.error, bad.error  # its reason, without colours
    assert "\n" not in bad.error  # deltalake's first line, not its Rust backtrace
    assert json.loads((folder / "_manifest.json").read_text())["run_id"] == first.run_id
    assert [c["operation"] for c in DeltaTable(daily).history()] == ["RESTORE", "WRITE", "WRITE"]
    assert DeltaTable(daily).history(1)[0]["foss_supervisor.undo_of"] == bad.run_id
    for table in TABLES:
        assert rows(DeltaTable(folder / table).to_pyarrow_table()) == at_first[table], table


async def test_after_a_rollback_the_manifest_maps_every_run_to_versions_that_hold_its_rows(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """A rollback's RESTORE commit is a version of the rollback's run: ``runs`` names it (``rollback_to`` the run
    restored) beside the restored run's own versions, and deltalake time-travelling to the version ``runs``
    names for any run reads that run's rows; a later rollback to the rollback's run restores from it."""
    runner = await runners.open([load_pipeline(delta_pipeline(tmp_path, workspace))], workspace["state"])
    folder = runner.publish_dir / "dl"
    held: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for n in (40, 70):
        (workspace["reference"] / "size.csv").write_text(f"n\n{n}\n")
        rec = await asyncio.wait_for(runner.run("dl"), 60)
        assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
        held[rec.run_id] = await duckdb_rows(runner)
    first, second = list(held)

    def check_runs() -> dict[str, Any]:
        manifest = json.loads((folder / "_manifest.json").read_text())
        assert set(manifest["runs"]) == set(held)
        for run_id, entry in manifest["runs"].items():
            for table in TABLES:
                version = entry["versions"][table]
                at = rows(DeltaTable(folder / table, version=version).to_pyarrow_table())
                assert at == held[run_id][table], (run_id, table, version)
        return manifest

    back = await asyncio.wait_for(runner.rollback("dl", first, apply=True), 60)
    held[back["run_id"]] = held[first]
    manifest = check_runs()
    assert manifest["runs"][back["run_id"]]["rollback_to"] == first
    assert manifest["runs"][back["run_id"]]["versions"] == dict.fromkeys(TABLES, 2)
    assert manifest["runs"][first]["versions"] == dict.fromkeys(TABLES, 0)  # still holds run 1's rows
    assert {t: e["version"] for t, e in manifest["tables"].items()} == dict.fromkeys(TABLES, 2)
    assert list(manifest["runs"])[-1] == back["run_id"]
    # what a daemon killed after the restore's COMMIT has its next start do again: nothing more to do here
    spec = runner.pipelines["dl"]
    assert await runner._switch_to_restored(spec, first, back["run_id"]) is None
    assert json.loads((folder / "_manifest.json").read_text()) == manifest
    assert all(DeltaTable(folder / table).version() == 2 for table in TABLES)

    ledger = f"SELECT run_id, target FROM {spec.ledger}.rollbacks"
    assert (await runner.client.query(ledger)).rows == ((back["run_id"], first),)  # what a restart would read
    (workspace["reference"] / "size.csv").write_text("n\n55\n")
    third = await asyncio.wait_for(runner.run("dl"), 60)
    assert third.status is RunStatus.SUCCEEDED, third.to_dict()
    assert (await runner.client.query(ledger)).rows == ()  # a step committed since: no rollback left to finish
    held[third.run_id] = await duckdb_rows(runner)
    del held[first]  # publish_keep: 3, the oldest run dropped
    check_runs()
    plan = await asyncio.wait_for(runner.rollback("dl", back["run_id"], apply=False), 60)
    assert plan["published"] == "restore", plan  # the rollback's own versions are kept like a run's
    again = await asyncio.wait_for(runner.rollback("dl", back["run_id"], apply=True), 60)
    assert await duckdb_rows(runner) == held[back["run_id"]]
    held[again["run_id"]] = held[back["run_id"]]
    del held[second]
    manifest = check_runs()
    assert manifest["run_id"] == back["run_id"] and manifest["runs"][again["run_id"]]["rollback_to"] == back["run_id"]
