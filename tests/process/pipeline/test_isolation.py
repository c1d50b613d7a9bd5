"""Isolation of pipelines that share one warehouse: own file ledgers, own schemas, read-only landing and
reference folders. Real worker, real DuckDB file; expected numbers are counted from the files themselves.
What the sandbox refuses before anything runs: tests/process/pipeline/test_sandbox.py."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from golden_data import FILES_BATCH1, write_files
from helpers.pipeline import RunnerFactory, events_yaml, orders_spec

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.spec import PipelineSpec, load_pipeline


async def run(runner: PipelineRunner, name: str) -> Any:
    return await asyncio.wait_for(runner.run(name), 60)


async def scalar(runner: PipelineRunner, sql: str) -> Any:
    return (await runner.client.query(sql)).rows[0][0]


async def test_two_pipelines_keep_their_own_files_and_rows(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    events = load_pipeline(events_yaml(tmp_path, ws))
    assert events.ledger == "events_meta"  # not the orders ledger (meta)
    runner = await runners.open([orders_spec(ws), events], ws["state"])

    write_files(ws["landing"], FILES_BATCH1)
    ev_landing = tmp_path / "events_landing"
    (ev_landing / "events.csv").write_text("event_id,kind,amount\nE1,click,1.50\nE2,view,0.25\nE3,click,2.00\n")
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT 'P' || i AS event_id, 'buy' AS kind, i * 10 AS amount FROM range(1, 5) t(i))"
        f" TO '{ev_landing / 'events.parquet'}' (FORMAT parquet)"
    )
    con.close()
    # byte for byte the same file as one of orders': each pipeline must still ingest it, into its own tables
    shutil.copy(ws["landing"] / "a_orders.csv", ev_landing / "same_as_orders.csv")
    same_lines = len((ws["landing"] / "a_orders.csv").read_text().splitlines()) - 1  # lines after the header
    expected_events = 3 + 4 + same_lines

    # events runs first: with one shared ledger its ingest took (or its discover hid) orders' files
    ev = await run(runner, "events")
    assert ev.status is RunStatus.SUCCEEDED, ev.to_dict()
    assert ev.step("ingest").rows_out == expected_events
    rec = await run(runner, "orders")
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    assert rec.step("ingest").rows_out == 35  # hand count of FILES_BATCH1 (see test_golden)
    assert (rec.step("validate").metrics["valid"], rec.step("validate").metrics["rejected"]) == (15, 20)

    assert await scalar(runner, "SELECT count(*) FROM bronze.orders_raw") == 35
    assert await scalar(runner, "SELECT count(*) FROM events_bronze.raw") == expected_events
    assert (
        await scalar(runner, "SELECT count(*) FROM bronze.orders_raw WHERE _source_file LIKE '%events_landing%'") == 0
    )
    by_kind = (
        await runner.client.query("SELECT kind, n, CAST(total AS VARCHAR) FROM events_gold.by_kind ORDER BY 1")
    ).rows
    assert [list(r) for r in by_kind] == [["buy", 4, "100.00"], ["click", 2, "3.50"], ["view", 1, "0.25"]]
    ledgers = (
        await runner.client.query(
            "SELECT 'meta', count(*) FILTER (status = 'ingested'), count(*) FROM meta.files UNION ALL "
            "SELECT 'events_meta', count(*) FILTER (status = 'ingested'), count(*) FROM events_meta.files ORDER BY 1"
        )
    ).rows
    assert [list(r) for r in ledgers] == [["events_meta", 3, 3], ["meta", 2, 2]]

    # nothing new: both rerun without ingesting anything again
    for name in ("orders", "events"):
        again = await run(runner, name)
        assert again.status is RunStatus.SUCCEEDED and again.step("ingest").rows_out == 0
    # each pipeline's run history is its own
    assert {r.pipeline for r in runner.runs("events")} == {"events"}
    assert len(runner.runs("orders")) == 2


def failing_step(spec: PipelineSpec, rec: Any, step: str) -> str:
    assert rec.status is RunStatus.FAILED, rec.to_dict()
    assert rec.step(step).state is StepState.FAILED
    return str(rec.step(step).error)


@pytest.mark.parametrize("folder", ["landing", "reference"])
async def test_steps_cannot_write_into_landing_or_reference(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory, folder: str
) -> None:
    ws = workspace
    target = ws[folder] / "planted.csv"
    (tmp_path / "copy_to.sql").write_text(
        f"COPY (SELECT 1 AS x) TO '{target}' (HEADER);\nSELECT 0 AS rows_in, 0 AS rows_out;"
    )
    (tmp_path / "export.sql").write_text(
        f"EXPORT DATABASE '{ws[folder] / 'dump'}';\nSELECT 0 AS rows_in, 0 AS rows_out;"
    )
    (tmp_path / "via_variable.sql").write_text(
        f"COPY (SELECT 1 AS x) TO (getvariable('{folder}_dir') || '/planted2.csv');\n"
        "SELECT 0 AS rows_in, 0 AS rows_out;"
    )
    steps = [{"name": n, "sql": f"{n}.sql", "retries": 0} for n in ("copy_to", "export", "via_variable")]
    steps.append(
        {
            "name": "python_copy",
            "kind": "python",
            "retries": 0,
            "callable": "pipeline_test_steps:copy_into",
            "params": {"path": str(target)},
        }
    )
    spec = load_pipeline(events_yaml(tmp_path, ws, extra_steps=steps))
    runner = await runners.open([spec], ws["state"], worker_env={"PYTHONPATH": str(Path(__file__).parent)})
    write_files(tmp_path / "events_landing", {"e.csv": "event_id,kind,amount\nE1,a,1\n"})
    before = sorted(p.name for p in ws[folder].iterdir())
    rec = await run(runner, "events")
    assert rec.status is RunStatus.FAILED
    for name in ("copy_to", "export", "via_variable", "python_copy"):
        error = str(rec.step(name).error)
        assert rec.step(name).state is StepState.FAILED and error.startswith("access_denied:"), (name, error)
    assert "may not write files" in str(rec.step("copy_to").error)
    assert sorted(p.name for p in ws[folder].iterdir()) == before
    # the rest of the pipeline was unaffected
    assert rec.step("summarize").state is StepState.SUCCEEDED


async def test_reading_another_pipelines_table_needs_an_input(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    (tmp_path / "peek.sql").write_text(
        "CREATE OR REPLACE TABLE events_gold.peek AS SELECT count(*) AS n FROM gold.daily_revenue;\n"
        "SELECT 1 AS rows_in, 1 AS rows_out;"
    )
    (tmp_path / "write_other.sql").write_text("DELETE FROM gold.daily_revenue;\nSELECT 1 AS rows_in, 1 AS rows_out;")
    steps = [
        {"name": "peek", "sql": "peek.sql", "retries": 0},
        {"name": "write_other", "sql": "write_other.sql", "retries": 0},
    ]
    undeclared = load_pipeline(events_yaml(tmp_path, ws, extra_steps=steps))
    runner = await runners.open([orders_spec(ws), undeclared], ws["state"])
    write_files(ws["landing"], FILES_BATCH1)
    assert (await run(runner, "orders")).status is RunStatus.SUCCEEDED
    rec = await run(runner, "events")
    assert "may not read gold.daily_revenue: declare it" in str(rec.step("peek").error)
    assert "may not write gold.daily_revenue" in str(rec.step("write_other").error)
    await runner.aclose()

    declared = load_pipeline(events_yaml(tmp_path, ws, extra_steps=steps, inputs=["gold.daily_revenue"]))
    runner = await runners.open([orders_spec(ws), declared], ws["state"])
    rec = await run(runner, "events")
    assert rec.step("peek").state is StepState.SUCCEEDED  # a declared input may be read ...
    assert "may not write gold.daily_revenue" in str(rec.step("write_other").error)  # ... never written
    assert await scalar(runner, "SELECT count(*) FROM gold.daily_revenue") > 0
