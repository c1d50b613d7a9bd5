"""Crash safety (SIGKILL mid-step, step timeout), reads while a step writes, and hostile queries."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from golden_data import FILES_BATCH1, FILES_BATCH2, write_files
from helpers import wait_until
from helpers.pipeline import RunnerFactory, dump_tables, orders_spec, variant_yaml

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.pipeline.errors import QueryFailedError, QueryRefusedError, QueryTimeoutError
from foss_supervisor.pipeline.events import PipelineEvent, StepStateChanged, WorkerExited

#: after the step's writes, before its metrics: a statement that would run for hours
SLOW = "CREATE TEMP TABLE _slow AS SELECT count(*) AS n FROM range(1000000000000) t(x) WHERE hash(x) = 42;"


async def wait_event(factory: RunnerFactory, pred: Callable[[PipelineEvent], bool], timeout_s: float = 30.0) -> None:
    await wait_until(lambda: any(pred(e) for e in factory.events), timeout_s, "the event")


@pytest.mark.parametrize(
    ("victim", "table"), [("quarantine", "silver.orders_quarantine"), ("enrich", "silver.orders_enriched")]
)
async def test_sigkill_halfway_then_rerun_equals_uninterrupted(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory, victim: str, table: str
) -> None:
    ws = workspace
    write_files(ws["landing"], FILES_BATCH1)

    # Reference: an uninterrupted history (batch 1, then batch 2) in its own database.
    ref_db = tmp_path / "ref" / "wh.duckdb"
    ref_runner = await runners.open([orders_spec(ws, db=ref_db)], tmp_path / "ref_state")
    assert (await asyncio.wait_for(ref_runner.run("orders"), 60)).status is RunStatus.SUCCEEDED

    # Victim: same first batch, then batch 2 with a step SIGKILLed after it wrote but before it committed.
    normal = orders_spec(ws)
    victim_runner = await runners.open([normal], ws["state"])
    assert (await asyncio.wait_for(victim_runner.run("orders"), 60)).status is RunStatus.SUCCEEDED
    write_files(ws["landing"], FILES_BATCH2)
    write_files(ws["landing"], {})
    assert (await asyncio.wait_for(ref_runner.run("orders"), 60)).status is RunStatus.SUCCEEDED
    expected = await dump_tables(ref_runner)
    await ref_runner.aclose()
    before_batch2 = await dump_tables(victim_runner)
    await victim_runner.aclose()

    slow_yaml = variant_yaml(tmp_path, "slow", step_overrides={victim: {"retries": 0}}, extra_sql={victim: SLOW})
    slow_runner = await runners.open([orders_spec(ws, yaml_path=slow_yaml)], ws["state"])
    runners.events.clear()
    run_task = asyncio.create_task(slow_runner.run("orders"))
    await wait_event(
        runners, lambda e: isinstance(e, StepStateChanged) and e.step == victim and e.new is StepState.RUNNING
    )
    await asyncio.sleep(0.5)  # the step's DELETE/INSERTs are done; it is inside the slow statement now
    # a read during the write sees the last committed state and answers promptly
    t0 = time.monotonic()
    during = await asyncio.wait_for(slow_runner.client.query(f"SELECT count(*) FROM {table}"), 10)
    assert time.monotonic() - t0 < 5
    assert during.rows[0][0] == len(before_batch2[table]), [
        (e.step, e.new.value) for e in runners.events if isinstance(e, StepStateChanged)
    ]
    pid = slow_runner.worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    rec = await asyncio.wait_for(run_task, 60)
    assert rec.status is RunStatus.FAILED
    assert rec.step(victim).state is StepState.CRASHED
    assert rec.step("report").state is StepState.UPSTREAM_FAILED
    await wait_event(runners, lambda e: isinstance(e, WorkerExited) and e.pid == pid)
    await slow_runner.aclose()

    # Rerun with the normal pipeline: the killed step's writes were never committed; the result is
    # exactly the uninterrupted one.
    rerun = await runners.open([orders_spec(ws)], ws["state"])
    rec2 = await asyncio.wait_for(rerun.run("orders"), 60)
    assert rec2.status is RunStatus.SUCCEEDED, rec2.to_dict()
    assert await dump_tables(rerun) == expected


async def test_timeout_kills_worker_and_leaves_tables(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:

    ws = workspace
    write_files(ws["landing"], FILES_BATCH1)
    slow_yaml = variant_yaml(
        tmp_path,
        "timeout",
        step_overrides={"reference": {"timeout_s": 1.5, "retries": 0}},
        extra_sql={"reference": SLOW},
    )
    runner = await runners.open([orders_spec(ws, yaml_path=slow_yaml)], ws["state"])
    first_pid = runner.worker.pid
    rec = await asyncio.wait_for(runner.run("orders"), 60)
    assert rec.status is RunStatus.FAILED
    assert rec.step("ingest").state is StepState.SUCCEEDED
    assert rec.step("reference").state is StepState.CRASHED
    assert "timed out" in (rec.step("reference").error or "")
    assert rec.step("validate").state is StepState.UPSTREAM_FAILED
    # the reference step's writes were rolled back (its tables as setup left them, empty), nothing past
    # bronze exists; a new worker answers
    res = await asyncio.wait_for(
        runner.client.query(
            "SELECT (SELECT count(*) FROM ref.products) + (SELECT count(*) FROM ref.fx_rates),"
            " (SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'silver'"
            " AND table_name IN ('orders', 'orders_valid', 'orders_rejected')),"
            " (SELECT count(*) FROM bronze.orders_raw)"
        ),
        30,
    )
    assert res.rows[0] == (0, 0, 35)
    assert runner.worker.pid not in (None, first_pid)


async def test_hostile_queries_are_refused_or_stopped(workspace: dict[str, Path], runners: RunnerFactory) -> None:
    ws = workspace
    write_files(ws["landing"], FILES_BATCH1)
    runner = await runners.open([orders_spec(ws)], ws["state"])
    assert (await asyncio.wait_for(runner.run("orders"), 60)).status is RunStatus.SUCCEEDED

    refused = {
        "INSERT INTO gold.daily_revenue VALUES ('2024-01-01', 'US', 1, 1)": "INSERT statements are refused",
        "DELETE FROM silver.orders": "DELETE statements are refused",
        "UPDATE silver.orders SET quantity = 0": "UPDATE statements are refused",
        "DROP TABLE gold.customer_ltv": "DROP statements are refused",
        "CREATE TABLE gold.x AS SELECT 1": "CREATE statements are refused",
        "ATTACH '/tmp/evil.duckdb' AS evil": "ATTACH statements are refused",
        "COPY silver.orders TO '/tmp/leak.csv'": "COPY statements are refused",
        "INSTALL httpfs": "statements are refused",
        "LOAD httpfs": "statements are refused",
        "SET enable_external_access = true": "SET statements are refused",
        "PRAGMA database_list": "PRAGMA statements are refused",
        "SELECT * FROM read_csv('/etc/passwd')": "table function read_csv() is not allowed",
        "SELECT * FROM read_csv_auto('/etc/passwd')": "table function read_csv_auto() is not allowed",
        "SELECT * FROM read_parquet('/tmp/x.parquet')": "table function read_parquet() is not allowed",
        "SELECT * FROM read_json('/etc/passwd')": "table function read_json() is not allowed",
        "SELECT * FROM read_text('/etc/passwd')": "table function read_text() is not allowed",
        "SELECT * FROM glob('/etc/*')": "table function glob() is not allowed",
        "SELECT * FROM '/etc/passwd'": "looks like a file path",
        "SELECT * FROM query('SELECT 1')": "table function query() is not allowed",
        "SELECT 1; DROP TABLE gold.daily_revenue": "exactly one statement",
        "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x": "read_csv() is not allowed",
        "SELECT (SELECT count(*) FROM read_csv('/etc/passwd'))": "read_csv() is not allowed",
        "SELECT current_setting('allowed_directories')": "current_setting() is not allowed",
        "SELECT * FROM evil.main.t": "catalog 'evil' is not available",
    }
    for sql, message in refused.items():
        with pytest.raises(QueryRefusedError) as info:
            await asyncio.wait_for(runner.client.query(sql), 10)
        assert message in str(info.value), (sql, str(info.value))

    with pytest.raises(QueryFailedError, match="syntax error"):
        await runner.client.query("SELEC 1")
    with pytest.raises(QueryFailedError, match="does not exist"):
        await runner.client.query("SELECT * FROM gold.nope")

    t0 = time.monotonic()
    with pytest.raises(QueryTimeoutError, match="time limit"):
        await asyncio.wait_for(
            runner.client.query("SELECT count(*) FROM range(1000000000000) t(x) WHERE hash(x) = 42", timeout_s=0.5), 15
        )
    assert time.monotonic() - t0 < 5

    # the engine still answers, row-limited, and the data is intact
    res = await runner.client.query("SELECT * FROM range(10)", max_rows=3)
    assert res.truncated and len(res.rows) == 3
    res = await runner.client.query("DESCRIBE gold.daily_revenue")
    assert [r[0] for r in res.rows] == ["day", "country", "orders", "revenue_usd"]
    res = await runner.client.query("SELECT count(*) FROM silver.orders")
    assert res.rows[0][0] == 12


async def test_query_results_keep_exact_numbers(workspace: dict[str, Path], runners: RunnerFactory) -> None:
    """A DECIMAL is its exact text with its scale, an integer beyond 2**53 its digits: a float (or a
    JavaScript number) would change them. Smaller integers and floats stay JSON numbers."""
    ws = workspace
    runner = await runners.open([orders_spec(ws)], ws["state"])
    result = await runner.client.query(
        "SELECT 12345678901234567.89::DECIMAL(38,2), 952.70::DECIMAL(18,2), 9007199254740993::BIGINT,"
        " 12345678901234567890::HUGEINT, -9007199254740993::BIGINT, 9007199254740991::BIGINT, 42, 0.5::DOUBLE"
    )
    assert [list(r) for r in result.rows] == [
        [
            "12345678901234567.89",
            "952.70",
            "9007199254740993",
            "12345678901234567890",
            "-9007199254740993",
            9007199254740991,
            42,
            0.5,
        ],
    ]


async def test_a_querys_whole_result_exports_and_hostile_ones_are_refused(
    workspace: dict[str, Path], runners: RunnerFactory, tmp_path: Path
) -> None:
    """export(sql=...) writes a read-only query's whole result (no row cap) inside the export folder; what
    the query engine refuses is refused here too, and no text can reach past the COPY's parentheses."""
    ws = workspace
    runner = await runners.open([orders_spec(ws)], ws["state"])
    done = await runner.client.export("", "csv", sql="SELECT range AS n FROM range(300000)")
    path = Path(done["path"])
    assert done["rows"] == 300_000 and path.parent == runner.export_dir
    assert len(path.read_text().splitlines()) == 300_001
    path.unlink()
    done = await runner.client.export("", "csv", sql="SELECT 42 AS answer;  \n")  # as the SQL box takes it
    assert Path(done["path"]).read_text().splitlines() == ["answer", "42"]
    Path(done["path"]).unlink()
    outside = tmp_path / "pwn.csv"
    hostile = [
        "DELETE FROM silver.orders",
        f"SELECT 1) TO '{outside}' (FORMAT csv); SELECT (1",
        f"SELECT 1 -- ) TO '{outside}'",
        f"SELECT * FROM read_csv('{ws['landing']}/x.csv')",
        "SELECT 1; SELECT 2",
    ]
    for sql in hostile:
        try:
            done = await runner.client.export("", "csv", sql=sql)
        except (QueryRefusedError, QueryFailedError):
            continue
        assert Path(done["path"]).parent == runner.export_dir, sql  # ran as a plain SELECT, nothing else
        Path(done["path"]).unlink()
    assert not outside.exists()
