"""Landing files read by plain SQL: an empty landing folder is "no input" (the step is skipped), not a failure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb
import yaml
from helpers.pipeline import RunnerFactory, landing_steps

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.pipeline.engine.spec import load_pipeline

LOAD_SQL = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE OR REPLACE TABLE raw.events AS SELECT * FROM read_parquet(getvariable('landing_dir') || '/*.parquet');
SELECT count(*) AS rows_in, count(*) AS rows_out FROM raw.events;
"""
COUNT_SQL = """
CREATE SCHEMA IF NOT EXISTS mart;
CREATE SCHEMA IF NOT EXISTS raw;
CREATE TABLE IF NOT EXISTS raw.events (n BIGINT);
CREATE OR REPLACE TABLE mart.total AS SELECT count(*) AS n FROM raw.events;
SELECT 1 AS rows_in, 1 AS rows_out;
"""


async def test_read_parquet_of_an_empty_landing_skips_the_step(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    (tmp_path / "load.sql").write_text(LOAD_SQL)
    (tmp_path / "count.sql").write_text(COUNT_SQL)
    doc = {
        "name": "pure",
        "folders": {"landing": str(ws["landing"]), "reference": str(ws["reference"]), "warehouse": str(ws["db"])},
        "schemas": ["raw", "mart"],
        "steps": [{"name": "load", "sql": "load.sql"}, {"name": "count", "sql": "count.sql", "depends_on": ["load"]}],
    }
    (tmp_path / "pure.yaml").write_text(yaml.safe_dump(doc))
    runner = await runners.open([load_pipeline(tmp_path / "pure.yaml")], ws["state"])

    rec = await asyncio.wait_for(runner.run("pure"), 60)
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    assert rec.step("load").state is StepState.SKIPPED and "no input" in rec.step("load").warnings[0]
    assert rec.step("count").state is StepState.SUCCEEDED

    con = duckdb.connect()
    con.execute(f"COPY (SELECT range AS n FROM range(5)) TO '{ws['landing'] / 'e.parquet'}' (FORMAT parquet)")
    con.close()
    rec = await asyncio.wait_for(runner.run("pure"), 60)
    assert rec.status is RunStatus.SUCCEEDED and rec.step("load").rows_out == 5
    assert (await runner.client.query("SELECT n FROM mart.total")).rows == ((5,),)


async def test_a_missing_file_outside_landing_is_still_an_error(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    (tmp_path / "ref.sql").write_text(
        "SELECT count(*) AS rows_in, count(*) AS rows_out FROM read_csv(getvariable('reference_dir') || '/nope.csv');"
    )
    doc = {
        "name": "refs",
        "folders": {"landing": str(ws["landing"]), "reference": str(ws["reference"]), "warehouse": str(ws["db"])},
        "steps": [{"name": "ref", "sql": "ref.sql", "retries": 0}],
    }
    (tmp_path / "refs.yaml").write_text(yaml.safe_dump(doc))
    runner = await runners.open([load_pipeline(tmp_path / "refs.yaml")], ws["state"])
    rec = await asyncio.wait_for(runner.run("refs"), 60)
    assert rec.status is RunStatus.FAILED and str(rec.step("ref").error).startswith("sql_error:")


async def test_gzipped_csv_and_jsonl_are_read_like_plain_ones(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    import gzip

    ws = workspace
    doc = {
        "name": "gz",
        "folders": {"landing": str(ws["landing"]), "reference": str(ws["reference"]), "warehouse": str(ws["db"])},
        "steps": [
            *landing_steps("gz_bronze.raw", ["id", "v"]),
        ],
    }
    (tmp_path / "gz.yaml").write_text(yaml.safe_dump(doc))
    spec = load_pipeline(tmp_path / "gz.yaml")
    assert "*.csv.gz" in spec.patterns and spec.schemas == {"gz_meta", "gz_bronze"}
    runner = await runners.open([spec], ws["state"])
    csv_text = "id,v\n1,a\n2,b\n3,c\n"
    (ws["landing"] / "a.csv.gz").write_bytes(gzip.compress(csv_text.encode()))
    (ws["landing"] / "b.jsonl.gz").write_bytes(gzip.compress(b'{"id": "4", "v": "d"}\n{"id": "5", "v": "e"}\n'))
    (ws["landing"] / "c.csv").write_text(csv_text)  # the same content as a.csv.gz: ingested once
    rec = await asyncio.wait_for(runner.run("gz"), 60)
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    assert rec.step("discover").metrics["new_files"] == 2 and rec.step("ingest").rows_out == 5
    rows = await runner.client.query("SELECT id, v, _parse_error FROM gz_bronze.raw ORDER BY id")
    assert [list(r) for r in rows.rows] == [[str(i), c, None] for i, c in enumerate("abcde", 1)]
