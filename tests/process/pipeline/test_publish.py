"""Publish for other engines (issue 18, failure 5): one folder per table, ``_SUCCESS`` and a manifest per run,
the tables of a run made current together, read here by pyarrow (not DuckDB); a publish whose worker is
killed or whose run is cancelled leaves the previous set whole; ``pipeline reset`` removes it all."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml
from helpers.pipeline import RunnerFactory

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import PipelineBusyError, PipelineConfigError
from foss_supervisor.pipeline.worker.validate import validate_spec

GOLD_SQL = """
CREATE SCHEMA IF NOT EXISTS pub_gold;
CREATE OR REPLACE TABLE pub_gold.items AS
SELECT range AS item_id, 'item ' || range AS label, getvariable('run_id') AS run_id FROM range(100);
CREATE OR REPLACE TABLE pub_gold.daily AS
SELECT DATE '2024-05-01' + CAST(range % 3 AS INTEGER) AS day, CAST(range * 1.25 AS DECIMAL(18, 2)) AS amount,
       getvariable('run_id') AS run_id
FROM range(30);
CREATE OR REPLACE TABLE pub_gold.wide AS
SELECT range % 2 = 0 AS flag, md5(CAST(range AS VARCHAR)) AS digest, getvariable('run_id') AS run_id
FROM range(10000000) WHERE range < (SELECT max(n) FROM read_csv(getvariable('reference_dir') || '/size.csv'));
SELECT 0 AS rows_in, (SELECT count(*) FROM pub_gold.wide) AS rows_out;
"""

#: each table's columns as the manifest gives them (DuckDB's types)
SCHEMAS = {
    "pub_gold.daily": [("day", "DATE"), ("amount", "DECIMAL(18,2)"), ("run_id", "VARCHAR")],
    "pub_gold.items": [("item_id", "BIGINT"), ("label", "VARCHAR"), ("run_id", "VARCHAR")],
    "pub_gold.wide": [("flag", "BOOLEAN"), ("digest", "VARCHAR"), ("run_id", "VARCHAR")],
}


def publishing_pipeline(tmp_path: Path, ws: dict[str, Path], *, rows: int = 50, **top: Any) -> Path:
    """Pipeline ``pub``: one step writing three gold tables (``wide`` has ``rows`` rows), all published."""
    (ws["reference"] / "size.csv").write_text(f"n\n{rows}\n")
    (tmp_path / "gold.sql").write_text(GOLD_SQL)
    doc = {
        "name": "pub",
        "folders": {"landing": str(ws["landing"]), "reference": str(ws["reference"]), "warehouse": str(ws["db"])},
        "schemas": ["pub_gold"],
        "steps": [{"name": "gold", "sql": "gold.sql", "retries": 0}],
        "publish": ["pub_gold"],
        "publish_partition_by": ["pub_gold.daily.day"],
        **top,
    }
    path = tmp_path / "pub.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def read_published(folder: Path) -> tuple[str, dict[str, pa.Table]]:
    """What a reader that resolves the manifest sees: (its run id, each table read by pyarrow from its files)."""
    manifest = json.loads((folder / "_manifest.json").read_text())
    tables = {}
    for name, table in manifest["tables"].items():
        if table["partition_by"]:
            data = ds.dataset(folder / table["path"], format="parquet", partitioning="hive").to_table()
        else:
            data = pa.concat_tables([pq.read_table(folder / f) for f in table["files"]])
        tables[name] = data
    return manifest["run_id"], tables


def assert_one_run(folder: Path) -> str:
    """Every table of the manifest's run is whole, alone, with its own schema, and of that run only."""
    manifest = json.loads((folder / "_manifest.json").read_text())
    run_id, tables = read_published(folder)
    assert sorted(tables) == sorted(SCHEMAS)
    for name, data in tables.items():
        entry = manifest["tables"][name]
        assert [(c["name"], c["type"]) for c in entry["schema"]] == SCHEMAS[name]
        assert sorted(data.column_names) == sorted(n for n, _ in SCHEMAS[name]), name  # no other table's columns
        assert data.num_rows == entry["rows"]
        assert set(data.column("run_id").to_pylist()) <= {run_id}, name
    return run_id


async def test_published_tables_are_read_by_pyarrow_one_folder_each_and_switch_together(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    spec = load_pipeline(publishing_pipeline(tmp_path, workspace, publish_keep=2))
    runner = await runners.open([spec], workspace["state"])
    folder = runner.publish_dir / "pub"

    rec = await asyncio.wait_for(runner.run("pub"), 60)
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    assert assert_one_run(folder) == rec.run_id
    run_dir = folder / "runs" / rec.run_id
    assert (folder / "current").resolve() == run_dir.resolve()
    assert (run_dir / "_SUCCESS").is_file()
    assert sorted(p.name for p in run_dir.iterdir()) == ["_SUCCESS", "_manifest.json", *sorted(SCHEMAS)]
    assert sorted(p.name for p in (run_dir / "pub_gold.daily").iterdir()) == [
        "day=2024-05-01",
        "day=2024-05-02",
        "day=2024-05-03",
    ]
    # a path-based reader (Spark's spark.read.parquet) pointed at one table's folder gets that table alone
    items = ds.dataset(folder / "current" / "pub_gold.items", format="parquet").to_table()
    assert items.column_names == ["item_id", "label", "run_id"] and items.num_rows == 100
    assert items.schema.field("item_id").type == pa.int64()
    daily = ds.dataset(folder / "current" / "pub_gold.daily", format="parquet", partitioning="hive").to_table()
    assert daily.schema.field("amount").type == pa.decimal128(18, 2) and daily.num_rows == 30
    # the run folder's own manifest names the same files, relative to that folder
    inner = json.loads((run_dir / "_manifest.json").read_text())
    top = json.loads((folder / "_manifest.json").read_text())
    assert inner["run_id"] == top["run_id"] and top["run_dir"] == f"runs/{rec.run_id}"
    assert [f"runs/{rec.run_id}/{f}" for f in inner["tables"]["pub_gold.wide"]["files"]] == (
        top["tables"]["pub_gold.wide"]["files"]
    )

    # a reader resolving the manifest over and over while three more runs publish never mixes two runs
    seen: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add(assert_one_run(folder))
            except BaseException as exc:  # reported by the test below
                errors.append(exc)
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        later = [await asyncio.wait_for(runner.run("pub"), 60) for _ in range(3)]
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 30)
    assert not thread.is_alive() and not errors, errors
    assert all(r.status is RunStatus.SUCCEEDED for r in later)
    assert len(seen) >= 2 and seen <= {rec.run_id, *(r.run_id for r in later)}, seen
    assert assert_one_run(folder) == later[-1].run_id
    # publish_keep: 2 runs stay on disk, the current and the one before
    assert sorted(p.name for p in (folder / "runs").iterdir()) == sorted(r.run_id for r in later[-2:])

    reset = await runner.reset("pub")
    assert reset["unpublished"] is True and not folder.exists()


async def test_a_publish_whose_worker_dies_or_run_is_cancelled_keeps_the_previous_set(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    spec = load_pipeline(publishing_pipeline(tmp_path, workspace, rows=50))
    runner = await runners.open([spec], workspace["state"])
    folder = runner.publish_dir / "pub"
    first = await asyncio.wait_for(runner.run("pub"), 60)
    assert first.status is RunStatus.SUCCEEDED and assert_one_run(folder) == first.run_id
    before = {p.relative_to(folder): p.stat().st_mtime_ns for p in (folder / "runs").rglob("*")}

    (workspace["reference"] / "size.csv").write_text("n\n3000000\n")  # a publish long enough to stop midway
    rec = await asyncio.wait_for(_publish_stopped(runner, folder, kill_worker=True), 120)
    assert rec.status is RunStatus.SUCCEEDED_WITH_WARNINGS, rec.to_dict()
    assert rec.error is not None and rec.error.startswith("publish failed:"), rec.error
    assert assert_one_run(folder) == first.run_id
    assert {p.relative_to(folder): p.stat().st_mtime_ns for p in (folder / "runs").rglob("*")} == before

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(_publish_stopped(runner, folder, kill_worker=False), 120)
    cancelled = runner.history.list("pub", limit=1)[0]  # its steps had committed: too late for the run
    assert cancelled.status is RunStatus.SUCCEEDED_WITH_WARNINGS, cancelled
    assert cancelled.error is not None and cancelled.error.startswith("publish cancelled"), cancelled.error
    assert assert_one_run(folder) == first.run_id
    # the worker stops writing once its request is interrupted; the partial folder is gone
    assert {p.relative_to(folder): p.stat().st_mtime_ns for p in (folder / "runs").rglob("*")} == before


async def test_a_run_cancelled_while_its_snapshot_is_written_is_recorded_as_done_with_a_warning(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """Once the steps committed and the tables are published a cancel is too late for the run: an operator's
    is refused, saying so; a daemon that stops still stops the snapshot (none is kept), and the run is
    recorded ``succeeded_with_warnings``, not ``cancelled`` (the published set and the tables are this run's)."""
    (workspace["reference"] / "size.csv").write_text("n\n3000000\n")  # a snapshot long enough to stop midway
    spec = load_pipeline(publishing_pipeline(tmp_path, workspace, rows=50))
    runner = await runners.open([spec], workspace["state"])
    snapshots = runner.snapshot_folder("pub")
    task = asyncio.ensure_future(runner.run("pub"))
    for _ in range(40_000):  # bounded: 200 s at most
        if task.done() or (snapshots.is_dir() and any(p.name.endswith(".partial") for p in snapshots.iterdir())):
            break
        await asyncio.sleep(0.005)
    assert not task.done(), "the run ended before its snapshot began"
    with pytest.raises(PipelineBusyError, match="too late to cancel"):  # an operator's cancel: refused
        await runner.cancel("pub")
    task.cancel()  # as a daemon that stops cancels it
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 120)
    rec = runner.history.list("pub", limit=1)[0]
    assert rec.status is RunStatus.SUCCEEDED_WITH_WARNINGS, rec.to_dict()
    assert rec.error is not None and "cancelled while writing its snapshot" in rec.error, rec.error
    assert all(s.state.ok for s in rec.steps), rec.to_dict()
    assert assert_one_run(runner.publish_dir / "pub") == rec.run_id
    assert runner.snapshots("pub") == [] and not any(snapshots.iterdir())  # the partial snapshot is gone


async def _publish_stopped(runner: PipelineRunner, folder: Path, *, kill_worker: bool) -> Any:
    """Run ``pub`` and, once its publish has begun writing, SIGKILL the worker or cancel the run."""
    task = asyncio.ensure_future(runner.run("pub"))
    runs = folder / "runs"
    for _ in range(20_000):  # bounded: 100 s at most
        if any(p.name.endswith(".partial") for p in runs.iterdir()) or task.done():
            break
        await asyncio.sleep(0.005)
    assert not task.done(), "the run ended before its publish began"
    if kill_worker:
        pid = runner.worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    else:
        task.cancel()
    return await task


def test_partition_columns_name_published_tables(tmp_path: Path, workspace: dict[str, Path]) -> None:
    path = publishing_pipeline(tmp_path, workspace, publish_partition_by=["pub_gold.daily.day", "other.t.day"])
    with pytest.raises(PipelineConfigError) as refused:
        load_pipeline(path)
    assert refused.value.key == "publish_partition_by[1]" and refused.value.line is not None
    assert "table 'other.t' is not published" in str(refused.value)


@pytest.mark.parametrize("python_names_it", [False, True])
def test_validate_names_the_publish_line_of_a_table_no_step_makes(
    tmp_path: Path, workspace: dict[str, Path], python_names_it: bool
) -> None:
    """A published table no step makes is an error at its own line of ``publish:`` (it passed, newcomer);
    one a Python step may make (its module names it: validate does not run it) is not checked."""
    path = publishing_pipeline(tmp_path, workspace, publish=["pub_gold.daily", "pub_gold.nothing"])
    doc = yaml.safe_load(path.read_text())
    (tmp_path / "make.py").write_text(
        f"def make(ctx):\n    # {'pub_gold.nothing' if python_names_it else 'another table'}\n"
        "    return {'rows_in': 0, 'rows_out': 0}\n"
    )
    doc["steps"].append({"name": "make", "kind": "python", "callable": "make.py:make", "depends_on": ["gold"]})
    path.write_text(yaml.safe_dump(doc))
    report = {r.step: r for r in validate_spec(load_pipeline(path))}["_publish"]
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text == "- pub_gold.nothing")
    assert report.where == f"{path}:{line}", report
    if python_names_it:
        assert report.status == "not_checked" and "Python step make may make it" in report.message, report
    else:
        assert report.status == "error" and report.message == "publish[1]: no step makes table pub_gold.nothing"


def test_validate_checks_partition_columns_against_the_tables_the_steps_make(
    tmp_path: Path, workspace: dict[str, Path]
) -> None:
    good = {r.step: r for r in validate_spec(load_pipeline(publishing_pipeline(tmp_path, workspace)))}
    assert good["_publish"].status == "ok" and good["gold"].status == "ok", good
    path = publishing_pipeline(tmp_path, workspace, publish_partition_by=["pub_gold.daily.day", "pub_gold.items.dya"])
    bad = {r.step: r for r in validate_spec(load_pipeline(path))}["_publish"]
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("publish_partition_by"))
    assert bad.status == "error" and bad.where == f"{path}:{line}", bad
    assert bad.message == "publish_partition_by: pub_gold.items has no column 'dya'"
