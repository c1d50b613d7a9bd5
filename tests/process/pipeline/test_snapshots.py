"""Run snapshots, diff and rollback (issue 18) on the shipped orders pipeline with a real DuckDB worker: the
diff's counts against an oracle computed apart (pyarrow and Python sets over the snapshot files), a
rollback that restores every layer table to the same content (compared by a query) and the published
manifest's run, a rollback that fails midway and changes nothing, and retention."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest
import yaml
from helpers.pipeline import RunnerFactory, variant_yaml
from test_publish import publishing_pipeline

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.snapshots import list_snapshots
from foss_supervisor.pipeline.engine.spec import FolderOverrides, PipelineSpec, default_pipelines_dir, load_pipeline
from foss_supervisor.pipeline.errors import PipelineBusyError, SnapshotError
from foss_supervisor.pipeline.worker.callables import load_callable

generate = load_callable(f"{default_pipelines_dir() / 'orders' / 'demo_data.py'}:generate")


def orders_with(tmp_path: Path, ws: dict[str, Path], **top: Any) -> PipelineSpec:
    """The shipped orders pipeline in the test's folders, publishing ``gold``, with ``top`` keys added."""
    path = variant_yaml(tmp_path, "orders", step_overrides={})
    raw = yaml.safe_load(path.read_text())
    raw.update({"publish": ["gold"], **top})
    path.write_text(yaml.safe_dump(raw))
    folders = FolderOverrides(
        landing=ws["landing"], reference=ws["reference"], warehouse=ws["db"], reports=ws["reports"]
    )
    return load_pipeline(path, folders=folders)


async def fingerprints(runner: PipelineRunner) -> dict[str, tuple[Any, ...]]:
    """Every layer table of orders (not the ledger ``meta``): its columns and types, row count and the md5
    of its rows as text in order: equal fingerprints are equal contents."""
    listed = await runner.client.query(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE NOT temporary"
        " AND schema_name IN ('ref', 'bronze', 'work', 'silver', 'gold') ORDER BY 1",
        max_rows=1000,
    )
    out: dict[str, tuple[Any, ...]] = {}
    for (table,) in listed.rows:
        res = await runner.client.query(
            f"SELECT count(*), md5(string_agg(CAST(t AS VARCHAR), chr(10) ORDER BY CAST(t AS VARCHAR))) FROM {table} t",
            timeout_s=30,
        )
        described = await runner.client.query(f"DESCRIBE SELECT * FROM {table}", max_rows=1000)
        out[table] = (tuple((r[0], r[1]) for r in described.rows), *res.rows[0])
    return out


def manifest_run(runner: PipelineRunner) -> str:
    return str(json.loads((runner.publish_dir / "orders" / "_manifest.json").read_text())["run_id"])


def snapshot_rows(runner: PipelineRunner, run_id: str, table: str, pipeline: str = "orders") -> list[dict[str, Any]]:
    """A snapshot's table read by pyarrow (not DuckDB): the rows of the files its manifest lists, in order;
    the oracle's input."""
    folder = runner.snapshot_folder(pipeline) / run_id
    files = json.loads((folder / "_manifest.json").read_text())["tables"][table]["files"]
    return [row for f in files for row in pq.read_table(folder / f["file"]).to_pylist()]


def oracle(a: list[dict[str, Any]], b: list[dict[str, Any]], key: list[str] | None) -> tuple[int, int, int | None]:
    """(added, removed, changed) from a to b computed with Python sets and counters."""
    common = [c for c in (a[0] if a else {}) if not b or c in b[0]]
    if key is None:
        ca = Counter(json.dumps([r[c] for c in common], default=str) for r in a)  # lists, maps: as text
        cb = Counter(json.dumps([r[c] for c in common], default=str) for r in b)
        return sum((cb - ca).values()), sum((ca - cb).values()), None
    by_a = {tuple(r[k] for k in key): r for r in a}
    by_b = {tuple(r[k] for k in key): r for r in b}
    both = by_a.keys() & by_b.keys()
    changed = sum(1 for k in both if any(by_a[k][c] != by_b[k][c] for c in common))
    return len(by_b.keys() - by_a.keys()), len(by_a.keys() - by_b.keys()), changed


async def two_runs(tmp_path: Path, ws: dict[str, Path], runners: RunnerFactory, **top: Any) -> tuple[Any, ...]:
    """Orders run twice on different landed data; returns (runner, run 1, run 2, fingerprints after run 1)."""
    runner = await runners.open([orders_with(tmp_path, ws, **top)], ws["state"])
    generate(ws["landing"], orders=3000, files=2, seed=1, prefix="a")
    first = await asyncio.wait_for(runner.run("orders"), 120)
    assert first.status is RunStatus.SUCCEEDED, first.to_dict()
    before = await fingerprints(runner)
    generate(ws["landing"], orders=2000, files=2, seed=2, prefix="b")
    second = await asyncio.wait_for(runner.run("orders"), 120)
    assert second.status is RunStatus.SUCCEEDED, second.to_dict()
    return runner, first.run_id, second.run_id, before


async def test_diff_counts_match_an_independent_oracle_and_rollback_restores_tables_and_published_set(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    runner, r1, r2, before = await two_runs(tmp_path, workspace, runners)
    after = await fingerprints(runner)
    assert after != before
    manifest = json.loads((runner.snapshot_folder("orders") / r1 / "_manifest.json").read_text())
    assert manifest["tables"]["gold.daily_revenue"]["linked"]  # by reference: the published file, hard-linked
    assert manifest["tables"]["silver.orders"]["key"] == ["order_id"]  # the deduplicate step's key
    assert "meta.files" not in manifest["tables"]  # the ledger is not a layer
    second = json.loads((runner.snapshot_folder("orders") / r2 / "_manifest.json").read_text())
    bronze = second["tables"]["bronze.orders_raw"]  # only grew: run 1's file, hard-linked, then run 2's rows
    first_file = runner.snapshot_folder("orders") / r1 / "bronze.orders_raw.parquet"
    assert [f["linked"] for f in bronze["files"]] == [True, False]
    assert (runner.snapshot_folder("orders") / r2 / bronze["files"][0]["file"]).samefile(first_file)
    assert bronze["bytes"] == bronze["files"][1]["bytes"] and bronze["files"][1]["rows"] > 0

    diff = await runner.diff(r1, r2)
    by_table = {t["table"]: t for t in diff["tables"]}
    assert set(by_table) == set(manifest["tables"]) and not diff["truncated"]
    assert by_table["silver.orders"]["match"] == {"by": "key", "columns": ["order_id"]}
    assert by_table["bronze.orders_raw"]["match"]["by"] == "whole_rows"
    for table, entry in by_table.items():
        key = entry["match"]["columns"] if entry["match"]["by"] == "key" else None
        a, b = snapshot_rows(runner, r1, table), snapshot_rows(runner, r2, table)
        assert (entry["added"], entry["removed"], entry["changed"]) == oracle(a, b, key), table
        assert (entry["rows_a"], entry["rows_b"]) == (len(a), len(b)), table
    assert by_table["bronze.orders_raw"]["added"] > 0 and by_table["silver.orders"]["added"] > 0
    ts = {c["name"]: c for c in by_table["silver.orders"]["columns"]}["order_ts"]
    assert ts["a"]["max"] < ts["b"]["max"] or ts["a"]["max"] == ts["b"]["max"]  # shown on both sides
    assert all(0.0 <= (c["b"] or {}).get("null_rate", 0.0) <= 1.0 for c in by_table["silver.orders"]["columns"])

    plan = await runner.rollback("orders", r1, apply=False)  # what would change, and nothing changes
    assert plan["applied"] is False and plan["published"] == "switch"
    changes = {t["table"]: t for t in plan["changes"]}
    assert changes["silver.orders"]["removed"] == by_table["silver.orders"]["added"]
    assert await fingerprints(runner) == after and manifest_run(runner) == r2

    done = await runner.rollback("orders", r1, apply=True)
    assert done["applied"] is True
    assert await fingerprints(runner) == before  # every layer table as run 1 left it
    assert manifest_run(runner) == r1
    assert (runner.publish_dir / "orders" / "current").resolve().name == r1
    record = runner.get_run(done["run_id"])
    assert record is not None and record.reason == "rollback" and record.status is RunStatus.SUCCEEDED
    assert record.note == f"rolled back to run {r1}"
    back = await runner.diff(r1, done["run_id"])  # the rollback's own snapshot is run 1's tables
    assert all((t["added"], t["removed"], t["changed"] or 0) == (0, 0, 0) for t in back["tables"])
    # the report the dashboard reads (latest.json) is run 1's again: its rows per table are the live tables'
    reports = workspace["reports"] / "orders"
    latest = json.loads((reports / "latest.json").read_text())
    assert latest["run_id"] == done["run_id"] and latest["rolled_back_to"] == r1
    assert latest["layers"] == json.loads((reports / f"{r1}.json").read_text())["layers"]
    assert {t: n for t, n in latest["layers"].items() if t in before} == {t: f[1] for t, f in before.items()}
    assert (reports / f"{done['run_id']}.html").read_text() == (reports / "latest.html").read_text()


async def test_a_rollback_to_a_damaged_snapshot_is_refused_by_the_worker_and_leaves_every_table_as_it_was(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """A snapshot file that is not the one its manifest recorded is refused by the worker's gate
    (pipeline/worker/snapshotfiles.py) before the restore's transaction begins, and by the diff, naming run, table and
    file: the worker's ``snapshot_refused`` reply arrives as SnapshotError."""
    runner, r1, r2, _ = await two_runs(tmp_path, workspace, runners)
    after = await fingerprints(runner)
    damaged = runner.snapshot_folder("orders") / r1 / "silver.orders.parquet"
    damaged.unlink()  # replaced: run 2's snapshot keeps its own file
    damaged.write_bytes(b"PAR1 not parquet at all")
    named = rf"run {r1} cannot be trusted: table silver\.orders, file silver\.orders\.parquet: "
    with pytest.raises(SnapshotError, match=f"every table is as it was: .*{named}"):
        await runner.rollback("orders", r1, apply=True)
    with pytest.raises(SnapshotError, match=named):
        await runner.diff(r1, r2)
    assert await fingerprints(runner) == after
    assert manifest_run(runner) == r2
    failed = runner.runs("orders", 1)[0]
    assert failed.reason == "rollback" and failed.status is RunStatus.FAILED


async def test_retention_keeps_the_newest_and_gone_or_incomplete_snapshots_are_refused(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    runner, r1, r2, _ = await two_runs(tmp_path, workspace, runners, snapshot_keep=2)
    generate(workspace["landing"], orders=500, files=1, seed=3, prefix="c")
    r3 = (await asyncio.wait_for(runner.run("orders"), 120)).run_id
    folder = runner.snapshot_folder("orders")
    assert list_snapshots(folder) == [r2, r3]
    assert sorted(p.name for p in folder.iterdir()) == sorted([r2, r3])
    with pytest.raises(SnapshotError, match="no snapshot"):
        await runner.diff(r1, r3)
    with pytest.raises(SnapshotError, match="no snapshot"):
        await runner.rollback("orders", r1, apply=False)
    (folder / r2 / "_SUCCESS").unlink()  # as a run killed while writing it would leave it
    with pytest.raises(SnapshotError, match="incomplete"):
        await runner.rollback("orders", r2, apply=True)

    generate(workspace["landing"], orders=20000, files=4, seed=4, prefix="d")
    task = asyncio.create_task(runner.run("orders"))
    for _ in range(500):
        if runner.is_running("orders"):
            break
        await asyncio.sleep(0.01)
    with pytest.raises(PipelineBusyError, match="in progress"):
        await runner.rollback("orders", r3, apply=True)
    await asyncio.wait_for(task, 120)


BIG_SQL = """
CREATE SCHEMA IF NOT EXISTS big;
CREATE OR REPLACE TABLE big.t AS SELECT range AS id, getvariable('run_id') AS run_id FROM range(4000000);
CREATE TABLE IF NOT EXISTS big.k (id INTEGER PRIMARY KEY, run_id VARCHAR);
INSERT OR REPLACE INTO big.k SELECT 1, getvariable('run_id') UNION ALL SELECT 2 + count(*), 'new' FROM big.k;
SELECT 0 AS rows_in, (SELECT count(*) FROM big.t) AS rows_out;
"""


async def test_a_rollback_whose_worker_is_killed_midway_leaves_every_table_as_it_was(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    (tmp_path / "big.sql").write_text(BIG_SQL)
    doc = {
        "name": "big",
        "folders": {
            "landing": str(workspace["landing"]),
            "reference": str(workspace["reference"]),
            "warehouse": str(workspace["db"]),
        },
        "schemas": ["big"],
        "steps": [{"name": "make", "sql": "big.sql", "retries": 0}],
    }
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(doc))
    runner = await runners.open([load_pipeline(tmp_path / "big.yaml")], workspace["state"])
    r1 = (await asyncio.wait_for(runner.run("big"), 120)).run_id
    r2 = (await asyncio.wait_for(runner.run("big"), 120)).run_id
    state = "SELECT count(*), min(run_id), max(run_id) FROM big.t"
    assert (await runner.client.query(state)).rows == ((4_000_000, r2, r2),)
    keyed = {t["table"]: t for t in (await runner.diff(r1, r2))["tables"]}["big.k"]  # by its PRIMARY KEY
    assert keyed["match"] == {"by": "key", "columns": ["id"]} and (keyed["added"], keyed["changed"]) == (1, 1)

    snapshot_file = str(runner.snapshot_folder("big") / r1 / "big.t.parquet")
    task = asyncio.ensure_future(runner.rollback("big", r1, apply=True))
    pid = runner.worker.pid
    assert pid is not None
    worker = psutil.Process(pid)
    for _ in range(20_000):  # bounded: 100 s at most; the restore is reading the snapshot once it has it open
        if task.done() or any(f.path == snapshot_file for f in worker.open_files()):
            break
        await asyncio.sleep(0.005)
    assert not task.done(), "the rollback ended before its restore began"
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(SnapshotError, match="every table is as it was"):
        await asyncio.wait_for(task, 60)
    assert (await runner.client.query(state)).rows == ((4_000_000, r2, r2),)  # a new worker, the same tables
    assert runner.runs("big", 1)[0].status is RunStatus.FAILED

    await runner.rollback("big", r1, apply=True)  # and whole, it restores both, the key constraint kept
    assert (await runner.client.query(state)).rows == ((4_000_000, r1, r1),)
    assert (await runner.client.query("SELECT id, run_id FROM big.k ORDER BY id")).rows == ((1, r1), (2, "new"))
    pk = "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'k' AND constraint_type = 'PRIMARY KEY'"
    assert (await runner.client.query(pk)).rows == ((1,),)


async def test_a_rollback_to_a_run_no_longer_published_publishes_its_restored_tables(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    runner, r1, r2, before = await two_runs(tmp_path, workspace, runners, publish_keep=1)
    published = runner.publish_dir / "orders"
    assert sorted(p.name for p in (published / "runs").iterdir()) == [r2]  # run 1's set is gone

    plan = await runner.rollback("orders", r1, apply=False)
    assert plan["published"] == "republish"
    done = await runner.rollback("orders", r1, apply=True)
    assert await fingerprints(runner) == before
    assert manifest_run(runner) == done["run_id"]  # published anew, as the rollback's run
    manifest = json.loads((published / "_manifest.json").read_text())
    for table, entry in manifest["tables"].items():
        files = [pq.read_table(published / f) for f in entry["files"]]
        rows = [r for f in files for r in f.to_pylist()]
        key = lambda r: json.dumps(r, sort_keys=True, default=str)  # noqa: E731
        assert sorted(rows, key=key) == sorted(snapshot_rows(runner, r1, table), key=key), table


async def test_a_run_that_changed_no_table_keeps_no_snapshot_of_its_own(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """Runs with nothing new (the newcomer ran by hand twice) leave every layer table as it was: their
    snapshot would be the previous one's files hard-linked, so none is kept; the run's note names the
    snapshot that stands for it, the retention keeps the snapshots of runs that changed something, and the
    last diff stays the diff of the last change."""
    runner, first, second, _ = await two_runs(tmp_path, workspace, runners, snapshot_keep=2)
    idle = [await asyncio.wait_for(runner.run("orders"), 120) for _ in range(3)]
    for rec in idle:
        assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
        assert rec.note is not None, rec.to_dict()
        same = f"changed no layer table: the snapshot of run {second} stands for this run"
        assert rec.note.startswith(same), rec.note
    assert runner.snapshots("orders") == [first, second]
    last = await runner.last_diff("orders")
    assert last is not None and (last["run_a"], last["run_b"]) == (first, second)
    assert any(t["added"] for t in last["tables"]), last
    # such a run is read through the snapshot that stands for it: rollback to it and diff it as run `second`
    assert all(r.same_as == second for r in idle)
    plan = await runner.rollback("orders", idle[0].run_id, apply=False)
    assert all(t["added"] == t["removed"] == 0 and not t["changed"] for t in plan["changes"]), plan
    same = await runner.diff(second, idle[-1].run_id)
    assert all(t["added"] == t["removed"] == 0 and not t["changed"] for t in same["tables"]), same
    # one value of a table rebuilt each run, the row count the same: the rows are compared, the run is kept
    countries = workspace["reference"] / "countries.csv"
    countries.write_text(countries.read_text().replace("Canada", "Kanada"))
    renamed = await asyncio.wait_for(runner.run("orders"), 120)
    assert renamed.status is RunStatus.SUCCEEDED and renamed.note is None, renamed.to_dict()
    assert runner.snapshots("orders") == [second, renamed.run_id]
    changed = {t["table"]: t for t in (await runner.diff(second, renamed.run_id))["tables"]}["ref.countries"]
    assert changed["match"] == {"by": "key", "columns": ["country_code"]}  # the key orders.yaml declares
    assert (changed["added"], changed["removed"], changed["changed"]) == (0, 0, 1), changed  # the edited row


async def test_a_published_table_that_changed_is_never_taken_for_the_previous_snapshot(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """A published table's snapshot file is hard-linked from the run's own published file, not the previous
    snapshot's (hostile tester: a changed gold table of the same row count was called unchanged): here each
    run rebuilds gold with its run id in every row, nothing new landed, and every run keeps its snapshot."""
    (workspace["reference"] / "size.csv").write_text("n\n10\n")
    spec = load_pipeline(publishing_pipeline(tmp_path, workspace, rows=5, publish_partition_by=[]))
    runner = await runners.open([spec], workspace["state"])  # unpartitioned: every table linked from its publish
    runs = [await asyncio.wait_for(runner.run("pub"), 60) for _ in range(2)]
    assert [(r.status, r.same_as, r.note) for r in runs] == [(RunStatus.SUCCEEDED, None, None)] * 2, runs
    assert runner.snapshots("pub") == [r.run_id for r in runs]
    items = {t["table"]: t for t in (await runner.diff(runs[0].run_id, runs[1].run_id))["tables"]}["pub_gold.items"]
    assert items["rows_a"] == items["rows_b"] == 100 and items["added"] == items["removed"] == 100, items


async def test_the_last_diff_says_so_when_the_last_run_kept_no_snapshot(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """A tester's find: after a run whose snapshot failed (its worker killed while keeping it), the pipeline
    page's "what the last run changed" showed the two runs before it without a word. The record is the one
    such a run leaves (succeeded_with_warnings, ``snapshot failed: ...``); the diff stays the last two
    snapshots' and its note names the run that kept none and why."""
    runner, first, second, _ = await two_runs(tmp_path, workspace, runners)
    assert "note" not in (await runner.last_diff("orders") or {})
    done = runner.history.get(second)
    assert done is not None
    why = "snapshot failed: worker 1234 exited (died) while the request was in flight"
    failed = dataclasses.replace(
        done, run_id=second[:-6] + "ffffff", status=RunStatus.SUCCEEDED_WITH_WARNINGS, error=why, same_as=None
    )
    runner.history.append(failed)
    last = await runner.last_diff("orders")
    assert last is not None and (last["run_a"], last["run_b"]) == (first, second)
    assert last["note"] == f"the last run, {failed.run_id}, kept no snapshot ({why}): this is run {second}'s"
    with pytest.raises(SnapshotError, match="its snapshot failed: see the run's warning"):
        await runner.rollback("orders", failed.run_id, apply=False)
