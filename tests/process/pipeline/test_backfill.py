"""Backfill with a real DuckDB worker: 30 landing files are 30 partitions, 3 of them hold an amount that makes
the silver step fail. A first backfill ends 27 succeeded / 3 failed; once the 3 files are fixed, an
``only_failed`` backfill re-runs exactly those 3 (read back from the run history), and every day's bronze and
silver rows equal its file's rows: a partition run replaced the day's earlier rows instead of adding to them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from helpers.partitions import FIRST_DAY, day_rows, sales_yaml, write_day
from helpers.pipeline import RunnerFactory

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.backfill import BackfillProgress, choose_partitions, run_partitions
from foss_supervisor.pipeline.engine.spec import load_pipeline

DAYS = 30
BAD = (4, 16, 22)


def _day(i: int) -> str:
    return FIRST_DAY.fromordinal(FIRST_DAY.toordinal() + i).isoformat()


async def test_only_failed_reruns_exactly_the_failed_partitions_and_rows_add_up(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    for i in range(DAYS):
        write_day(ws["landing"], i, bad=i in BAD)
    spec = load_pipeline(sales_yaml(tmp_path, ws["landing"], ws["reference"], ws["db"]))
    runner = await runners.open([spec], ws["state"])

    everything = choose_partitions(spec, runner.runs("sales", 1000), "", "", only_failed=False)
    assert everything == [_day(i) for i in range(DAYS)]
    assert choose_partitions(spec, [], "2026-01-03", "2026-01-05", only_failed=False) == [_day(i) for i in (2, 3, 4)]
    assert choose_partitions(spec, [], "", "", only_failed=True) == []  # a partition never run has not failed

    first = BackfillProgress("sales", everything, time.time())
    await run_partitions(runner, first)
    failed = sorted(v for v, s in first.done.items() if s == RunStatus.FAILED.value)
    assert failed == [_day(i) for i in BAD]
    assert sum(s == RunStatus.SUCCEEDED.value for s in first.done.values()) == DAYS - len(BAD)
    history = runner.runs("sales", 1000)
    assert len(history) == DAYS and {r.reason for r in history} == {"backfill"}
    for r in history:
        if r.partition in failed:
            assert r.step("silver").state.value == "failed" and "oops" in (r.step("silver").error or "")

    for i in BAD:  # the producer lands the corrected files
        write_day(ws["landing"], i)
    again = choose_partitions(spec, runner.runs("sales", 1000), "", "", only_failed=True)
    assert again == failed
    second = BackfillProgress("sales", again, time.time())
    await run_partitions(runner, second)
    assert second.done == dict.fromkeys(failed, RunStatus.SUCCEEDED.value)
    newer = runner.runs("sales", 1000)[: len(BAD)]
    assert sorted(r.partition or "" for r in newer) == failed
    assert all(r.status is RunStatus.SUCCEEDED and r.reason == "backfill" for r in newer)
    assert len(runner.runs("sales", 1000)) == DAYS + len(BAD)
    for r in newer:  # each replaced the day's earlier bronze rows (the bad file's) by the fixed file's
        assert r.step("ingest").metrics["rows_replaced"] == r.step("ingest").rows_out
    assert choose_partitions(spec, runner.runs("sales", 1000), "", "", only_failed=True) == []

    expected = {_day(i): day_rows(i) for i in range(DAYS)}
    bronze = await runner.client.query("SELECT day, count(*) FROM sales_bronze.raw GROUP BY day", max_rows=100)
    silver = await runner.client.query(
        "SELECT strftime(day, '%Y-%m-%d'), count(*) FROM sales_silver.sales GROUP BY day", max_rows=100
    )
    assert dict(bronze.rows) == expected
    assert dict(silver.rows) == expected
    ledger = await runner.client.query(
        "SELECT status, count(*) FROM sales_meta.files GROUP BY status ORDER BY status", max_rows=10
    )
    assert dict(ledger.rows) == {"changed": len(BAD), "ingested": DAYS}


async def test_cancelling_a_backfill_stops_it_and_records_the_partition_in_progress_as_cancelled(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    for i in range(DAYS):
        write_day(ws["landing"], i)
    spec = load_pipeline(sales_yaml(tmp_path, ws["landing"], ws["reference"], ws["db"]))
    runner = await runners.open([spec], ws["state"])
    progress = BackfillProgress("sales", choose_partitions(spec, [], "", "", only_failed=False), time.time())
    task = asyncio.create_task(run_partitions(runner, progress))
    async with asyncio.timeout(60):
        while not progress.done or runner.active_run("sales") is None:  # one partition done, the next running
            await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert progress.finished_at is not None and progress.current is None
    history = runner.runs("sales", 1000)
    assert len(progress.done) < DAYS and not runner.is_running("sales")
    assert all(r.status is RunStatus.SUCCEEDED for r in history if r.partition in progress.done)
    unfinished = [r for r in history if r.partition not in progress.done]
    assert [r.status for r in unfinished] == [RunStatus.CANCELLED]  # the one in progress, and no later one


async def test_a_partition_run_again_replaces_its_rows_and_a_vanished_file_keeps_them(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    files = [write_day(ws["landing"], i) for i in range(3)]
    spec = load_pipeline(sales_yaml(tmp_path, ws["landing"], ws["reference"], ws["db"]))
    runner = await runners.open([spec], ws["state"])

    async def bronze() -> dict[str, int]:
        found = await runner.client.query("SELECT day, count(*) FROM sales_bronze.raw GROUP BY day", max_rows=10)
        return dict(found.rows)

    expected = {_day(i): day_rows(i) for i in range(3)}
    for _ in range(2):  # the same content twice: the second run replaces the first one's rows
        for i in range(3):
            record = await runner.run("sales", trigger="backfill", partition=_day(i))
            assert record.status is RunStatus.SUCCEEDED and record.partition == _day(i)
        assert await bronze() == expected
    assert record.step("ingest").metrics["rows_replaced"] == day_rows(2) == record.step("ingest").rows_out

    files[1].unlink()  # gone from the landing folder: its rows stay, the run says so
    record = await runner.run("sales", trigger="backfill", partition=_day(1))
    assert any("earlier rows are kept" in w for w in record.step("ingest").warnings)
    assert await bronze() == expected
    # and the day's row accounting (silver rows == rows ingested now) fails it, so it is listed as failed
    assert record.status is RunStatus.FAILED and "row accounting" in (record.step("silver").error or "")


async def test_a_whole_run_of_a_partitioned_pipeline_replaces_a_relanded_file(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    for i in range(3):
        write_day(ws["landing"], i, bad=i == 1)
    # no per-partition check: a whole run rebuilds all of silver from what it ingested now and before
    spec = load_pipeline(sales_yaml(tmp_path, ws["landing"], ws["reference"], ws["db"], checks=[]))
    runner = await runners.open([spec], ws["state"])
    first = await runner.run("sales")  # day 1's amount fails silver; bronze took every file
    assert first.status is RunStatus.FAILED and first.step("ingest").rows_out == sum(day_rows(i) for i in range(3))
    write_day(ws["landing"], 1)  # the producer lands day 1 again, fixed, under the same name
    second = await runner.run("sales")
    assert second.status is RunStatus.SUCCEEDED, second.error
    assert second.step("ingest").rows_out == day_rows(1) == second.step("ingest").metrics["rows_replaced"]
    found = await runner.client.query("SELECT day, count(*) FROM sales_bronze.raw GROUP BY day", max_rows=10)
    assert dict(found.rows) == {_day(i): day_rows(i) for i in range(3)}
    ledger = await runner.client.query("SELECT status, count(*) FROM sales_meta.files GROUP BY 1", max_rows=10)
    assert dict(ledger.rows) == {"ingested": 3, "changed": 1}
