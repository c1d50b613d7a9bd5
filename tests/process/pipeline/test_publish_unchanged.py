"""Publishing kept in step with the layer tables (issue 18, a newcomer's findings): a run that changed no layer
table keeps the published set as it is (Parquet: no new run folder; Delta: no new version), so real runs stay
within ``publish_keep``, unless the set is damaged or the publish config changed; a table taken out of
``publish:`` leaves the published folder and its manifest; a run whose publish was cancelled after its steps
committed keeps its snapshot (diff and rollback to it work). Read by pyarrow and deltalake, not DuckDB."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import yaml
from deltalake import DeltaTable
from helpers.pipeline import RunnerFactory
from test_publish import _publish_stopped, assert_one_run, publishing_pipeline, read_published
from test_publish_delta import TABLES, delta_pipeline, duckdb_rows, rows

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.spec import load_pipeline


def steady_pipeline(tmp_path: Path, ws: dict[str, Path], publish_format: str, **top: object) -> Path:
    """test_publish_delta's pipeline ``dl`` whose tables hold no run id: a run over the same reference file
    makes the very same tables."""
    path = delta_pipeline(tmp_path, ws, publish_format=publish_format, **top)
    sql = tmp_path / "gold.sql"
    sql.write_text(sql.read_text().replace("getvariable('run_id')", "'steady'"))
    return path


def manifest_of(folder: Path) -> dict[str, object]:
    return dict(json.loads((folder / "_manifest.json").read_text()))


@pytest.mark.parametrize("publish_format", ["parquet", "delta"])
async def test_a_run_that_changed_nothing_keeps_the_published_set_as_it_is(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory, publish_format: str
) -> None:
    path = steady_pipeline(tmp_path, workspace, publish_format, publish_keep=2)
    runner = await runners.open([load_pipeline(path)], workspace["state"])
    folder = runner.publish_dir / "dl"
    first = await asyncio.wait_for(runner.run("dl"), 60)
    (workspace["reference"] / "size.csv").write_text("n\n70\n")
    second = await asyncio.wait_for(runner.run("dl"), 60)
    assert first.status is second.status is RunStatus.SUCCEEDED, second.to_dict()
    published = manifest_of(folder)
    on_disk = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))

    same = [await asyncio.wait_for(runner.run("dl"), 60) for _ in range(3)]  # nothing new: the same tables
    for rec in same:
        assert rec.status is RunStatus.SUCCEEDED and rec.same_as == second.run_id, rec.to_dict()
        assert rec.note is not None and f"published set of run {second.run_id} is kept as it is" in rec.note
    assert manifest_of(folder) == published
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == on_disk
    if publish_format == "delta":
        assert all(DeltaTable(folder / t).version() == 1 for t in TABLES)
    # publish_keep: 2 still holds the two runs that changed something, so a rollback switches back
    plan = await asyncio.wait_for(runner.rollback("dl", first.run_id, apply=False), 60)
    assert plan["published"] == ("restore" if publish_format == "delta" else "switch"), plan

    # a damaged published set is published anew by the next run, even one that changed nothing
    if publish_format == "delta":
        (folder / "dl_gold.items" / "_delta_log" / f"{1:020d}.json").unlink()
    else:
        shutil.rmtree(folder / "runs" / second.run_id / "dl_gold.items")
    mended = await asyncio.wait_for(runner.run("dl"), 60)
    assert mended.status is RunStatus.SUCCEEDED and mended.same_as == second.run_id, mended.to_dict()
    assert mended.note is not None and "published anew" in mended.note, mended.note
    assert manifest_of(folder)["run_id"] == mended.run_id
    at_second = await duckdb_rows(runner)
    if publish_format == "delta":
        for table in TABLES:
            assert rows(DeltaTable(folder / table).to_pyarrow_table()) == at_second[table], table

    # a publish config that changed (a partition column dropped) is published anew too
    doc = yaml.safe_load(path.read_text())
    doc["publish_partition_by"] = []
    path.write_text(yaml.safe_dump(doc))
    await runner.replace_pipelines([load_pipeline(path)])
    changed = await asyncio.wait_for(runner.run("dl"), 60)
    assert changed.status is RunStatus.SUCCEEDED and changed.same_as == second.run_id, changed.to_dict()
    manifest = manifest_of(folder)
    assert manifest["run_id"] == changed.run_id
    assert manifest["tables"]["dl_gold.daily"]["partition_by"] == []  # type: ignore[index]


@pytest.mark.parametrize("publish_format", ["parquet", "delta"])
async def test_a_table_taken_out_of_publish_leaves_the_published_folder_and_manifest(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory, publish_format: str
) -> None:
    path = steady_pipeline(tmp_path, workspace, publish_format)
    runner = await runners.open([load_pipeline(path)], workspace["state"])
    folder = runner.publish_dir / "dl"
    first = await asyncio.wait_for(runner.run("dl"), 60)
    assert first.status is RunStatus.SUCCEEDED, first.to_dict()
    doc = yaml.safe_load(path.read_text())
    doc |= {"publish": ["dl_gold.items"], "publish_partition_by": []}
    path.write_text(yaml.safe_dump(doc))
    await runner.replace_pipelines([load_pipeline(path)])
    (workspace["reference"] / "size.csv").write_text("n\n70\n")
    second = await asyncio.wait_for(runner.run("dl"), 60)
    assert second.status is RunStatus.SUCCEEDED, second.to_dict()
    manifest = manifest_of(folder)
    assert list(manifest["tables"]) == ["dl_gold.items"]  # type: ignore[call-overload]
    if publish_format == "delta":
        assert not (folder / "dl_gold.daily").exists()
        assert all(list(r["versions"]) == ["dl_gold.items"] for r in manifest["runs"].values())  # type: ignore[attr-defined]
        items = (await duckdb_rows(runner))["dl_gold.items"]
        assert rows(DeltaTable(folder / "dl_gold.items").to_pyarrow_table()) == items
    else:
        assert not (folder / "current" / "dl_gold.daily").exists()
        assert sorted(p.name for p in (folder / "current").iterdir()) == ["_SUCCESS", "_manifest.json", "dl_gold.items"]
    # a run that changed nothing after such a reload still leaves the set of the new config alone
    again = await asyncio.wait_for(runner.run("dl"), 60)
    assert again.same_as == second.run_id and manifest_of(folder) == manifest, again.to_dict()

    reset = await runner.reset("dl")
    assert reset["unpublished"] is True and not folder.exists()


async def test_a_run_whose_publish_was_cancelled_keeps_its_snapshot(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    spec = load_pipeline(publishing_pipeline(tmp_path, workspace, rows=50))
    runner = await runners.open([spec], workspace["state"])
    folder = runner.publish_dir / "pub"
    first = await asyncio.wait_for(runner.run("pub"), 60)
    assert first.status is RunStatus.SUCCEEDED, first.to_dict()
    (workspace["reference"] / "size.csv").write_text("n\n3000000\n")  # a publish long enough to stop midway
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(_publish_stopped(runner, folder, kill_worker=False), 120)
    cancelled = runner.history.list("pub", limit=1)[0]
    assert cancelled.status is RunStatus.SUCCEEDED_WITH_WARNINGS, cancelled
    assert cancelled.error is not None and cancelled.error.startswith("publish cancelled"), cancelled.error
    assert "no snapshot" not in cancelled.error
    assert assert_one_run(folder) == first.run_id
    assert runner.snapshots("pub") == [first.run_id, cancelled.run_id]
    diff = {t["table"]: t for t in (await runner.diff(first.run_id, cancelled.run_id))["tables"]}
    assert (diff["pub_gold.wide"]["rows_a"], diff["pub_gold.wide"]["rows_b"]) == (50, 3_000_000)
    plan = await asyncio.wait_for(runner.rollback("pub", first.run_id, apply=False), 60)
    assert plan["published"] == "switch", plan
    back = await asyncio.wait_for(runner.rollback("pub", cancelled.run_id, apply=True), 120)
    assert back["applied"] is True
    run_id, tables = read_published(folder)
    assert run_id == back["run_id"]  # published anew: the cancelled run has no published set of its own
    assert tables["pub_gold.wide"].num_rows == 3_000_000
    assert set(tables["pub_gold.wide"].column("run_id").to_pylist()) == {cancelled.run_id}
